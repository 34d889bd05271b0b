#!/bin/bash
# run.sh LOGDIR — every GPU check of the CUDA backend in one go, on a machine with an NVIDIA GPU,
# from the bundle that tests/gpu/make-bundle.sh builds (binaries + lib/ + golden/ beside this
# script). On the GPU host:
#     cd .gpu && LD_LIBRARY_PATH=$PWD/lib:/usr/local/cuda/lib64 ./run.sh $OUT/logs
# Checks, in order: the op tests (dense ops, scan + SS2D, whole model), the golden v2_ds1 model
# through `wsi-vmamba forward --device cuda` (f32 and bf16) compared file by file with
# ../golden, one 10,000² VMamba-T[s1l8] region with random weights and input on GPU and CPU
# (--threads 16), compute-sanitizer memcheck on small forwards of both families. Full logs stay
# in LOGDIR; a summary table (check, result, figure) is printed last. Without a device every GPU
# check reports SKIP. Budget: < 8 min on an H100 (the 10k² CPU forward dominates).
# Env: WV_BIG_SIZE (default 10000), WV_THREADS (default 16), WV_SKIP_BIG=1, WV_SKIP_SANITIZER=1,
# WV_BENCH=1 (also run gpu_bench; WV_BENCH_CASES, WV_BENCH_TIMEOUT; then again with the opt-in
# kernels, WV_DWCONV_VEC=1 WV_STEM_FUSED=1 gpu_bench --ss2d tile, on WV_BENCH_TILE_CASES, default
# t224,t1024,t10k; WV_BENCH_TILE=0 skips it).
set -u
here=$(cd "$(dirname "$0")" && pwd)
logs=${1:?usage: run.sh LOGDIR}
mkdir -p "$logs"
logs=$(cd "$logs" && pwd)
# make-bundle.sh ships the libraries as lib.tar.gz (size budget); unpack once
if [ ! -d "$here/lib" ] && [ -f "$here/lib.tar.gz" ]; then
  tar -xzf "$here/lib.tar.gz" -C "$here" || { echo "run.sh: cannot unpack lib.tar.gz" >&2; exit 1; }
fi
export WV_SHARED_DIR=$here        # the tests read $WV_SHARED_DIR/golden/...
export WV_TEST_TMP=${TMPDIR:-/tmp}/wv-gpu-$$
mkdir -p "$WV_TEST_TMP"
big=${WV_BIG_SIZE:-10000}
threads=${WV_THREADS:-16}
summary=$logs/summary.tsv
: >"$summary"
t_start=$(date +%s)

# result NAME RESULT FIGURE
result() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$summary"; }

# run_test NAME CMD... : rc 0 PASS, 77 SKIP, else FAIL; figure = the program's last summary line
run_test() {
  local name=$1; shift
  local log=$logs/$name.log t0=$(date +%s)
  "$@" >"$log" 2>&1
  local rc=$? t=$(( $(date +%s) - t0 ))
  local fig
  fig=$(grep -E 'checks, [0-9]+ failed|SKIP' "$log" | tail -1)
  case $rc in
    0) result "$name" PASS "${fig:-ok} (${t}s)" ;;
    77) result "$name" SKIP "${fig:-no device}" ;;
    *) result "$name" FAIL "rc $rc: ${fig:-see $name.log} (${t}s)" ;;
  esac
  return $rc
}

{
  echo "== host"; date -u; uname -a
  command -v nvidia-smi >/dev/null && nvidia-smi || echo "nvidia-smi: not found"
  ls -la "$here"
} >"$logs/host.log" 2>&1

have_gpu=1
if ! "$here/gpu_check" --config tiny-v2 --size 8 --no-cpu --dtypes f32 >"$logs/probe.log" 2>&1; then
  grep -q SKIP "$logs/probe.log" && have_gpu=0
fi
[ $have_gpu = 1 ] && result device INFO "$(grep -m1 'device 0' "$logs/probe.log" | sed 's/^gpu_check: //')" \
                  || result device SKIP "$(grep -m1 SKIP "$logs/probe.log" | sed 's/^gpu_check: //')"

# 1. op tests and the whole-model tests (golden + random models vs CPU + OOM)
for t in test_gpu_ops test_gpu_scan test_gpu_model test_gpu_head; do
  run_test "$t" "$here/$t"
done

# 2. golden through the CLI: forward --device cuda, every output file vs the golden tensors
golden_cli() { # case N H W dtype tol_maps tol_logits
  local c=$1 n=$2 h=$3 w=$4 dt=$5 tm=$6 tl=$7
  local name=golden-cli-$c-$dt out=$WV_TEST_TMP/fwd-$c-$dt log=$logs/golden-cli-$c-$dt.log
  if [ $have_gpu = 0 ]; then result "$name" SKIP "no device"; return; fi
  "$here/wsi-vmamba" forward --weights "$here/golden/v2_ds1_weights.safetensors" \
    --input "$here/golden/v2_ds1_${c}_input.bin" --shape "$n,3,$h,$w" --out "$out" \
    --device cuda --dtype "$dt" >"$log" 2>&1
  local rc=$?
  if [ $rc != 0 ]; then result "$name" FAIL "forward rc $rc: $(tail -1 "$log")"; return; fi
  local worst="" fail=0 f
  for f in logits patch_embed stage0_blocks stage0_downsampled stage1_blocks stage1_downsampled \
           stage2_blocks stage2_downsampled stage3_blocks; do
    local tol=$tm; [ $f = logits ] && tol=$tl
    if ! "$here/gpu_check" --compare "$out/$f.bin" "$here/golden/v2_ds1_${c}_$f.bin" "$tol" >>"$log" 2>&1; then
      fail=1; worst="$worst $f"
    fi
  done
  local maxd
  maxd=$(grep -o 'max|diff|=[0-9.e+-]*' "$log" | sort -t= -k2 -g | tail -1)
  [ $fail = 0 ] && result "$name" PASS "9 tensors, worst $maxd (tol $tm, logits $tl)" \
                || result "$name" FAIL "mismatch in:$worst ($maxd)"
}
golden_cli in 2 64 64 f32 1e-4 1e-4
golden_cli in_odd 1 50 78 f32 1e-4 1e-4
golden_cli in 2 64 64 bf16 5e-2 5e-2
golden_cli in_odd 1 50 78 bf16 5e-2 5e-2

# 2b. the device-input path (vmamba_cuda_forward_device: whole-image groups in the stem and the
#     downsample convs, every op over the whole batch) vs the CPU on the same pixels
if [ $have_gpu = 0 ]; then
  result device-input SKIP "no device"
else
  # 2048²: 1024 scan chunks at stage 0, so the bf16 fast path takes the two-level carry
  for spec in "tiny-v2 --hw 45,61 --batch 5" "tiny-v0 --hw 45,61 --batch 3" "t-s1l8 --size 224 --batch 8" \
              "t-s2l5 --hw 300,197 --batch 2" "t-s1l8 --size 2048"; do
    set -- $spec
    cfg=$1; shift
    log=$logs/devin-$cfg.log
    timeout 300 "$here/gpu_check" --config "$cfg" "$@" --threads "$threads" --dtypes f32,bf16 \
      --device-input >"$log" 2>&1
    rc=$?
    while read -r _ name res fig; do
      [ -n "$name" ] && result "devin-$cfg-$name" "$res" "$fig"
    done < <(grep '^RESULT' "$log")
    [ $rc = 0 ] || result "devin-$cfg" FAIL "rc $rc: $(grep -v '^ ' "$log" | tail -1)"
  done
  # Kernel variants through the environment, bf16 against the CPU: four channels per thread in
  # the chunked SS2D (WV_SS2D_CPT=4), and the opt-in kernels not yet timed on a GPU together
  # ("new": the tiled SS2D, the vectorised dwconv, the fused stem conv) at 224² × 8 (stage 0 in
  # 32² tiles, stages 1-3 fused), on a ragged non-square map and at 2048² (the two-level carry
  # over the tile segments). When a "new" check fails, each kernel alone at 224² × 8 says which.
  newk="WV_SS2D_TILE=1 WV_DWCONV_VEC=1 WV_STEM_FUSED=1"
  variant() { # tag "ENV=1 ..." config args...
    local tag=$1 envs=$2 cfg=$3 rc plan
    shift 3
    log=$logs/devin-$tag.log
    env $envs timeout 300 "$here/gpu_check" --config "$cfg" "$@" --threads "$threads" \
      --dtypes bf16 --device-input >"$log" 2>&1
    rc=$?
    while read -r _ name res fig; do
      [ -n "$name" ] && result "devin-$tag-$name" "$res" "$fig"
    done < <(grep '^RESULT' "$log")
    [ $rc = 0 ] || result "devin-$tag" FAIL "rc $rc: $(grep -v '^ ' "$log" | tail -1)"
    case $envs in *WV_SS2D_TILE=1*)
      plan=$(grep -m1 'ss2d per stage:' "$log" | sed 's/.*ss2d per stage: //')
      if echo "$plan" | grep -q tiled; then result "devin-$tag-plan" PASS "$plan"
      else result "devin-$tag-plan" FAIL "tiled SS2D not taken: ${plan:-no plan line}"; rc=1; fi ;;
    esac
    return $rc
  }
  variant cpt4 WV_SS2D_CPT=4 t-s1l8 --size 224 --batch 8
  newfail=0
  variant new "$newk" t-s1l8 --size 224 --batch 8 || newfail=1
  variant new-s2 "$newk" t-s2l5 --hw 300,197 --batch 2 || newfail=1
  variant new-2048 "$newk" t-s1l8 --size 2048 || newfail=1
  if [ $newfail = 1 ]; then
    variant tile WV_SS2D_TILE=1 t-s1l8 --size 224 --batch 8
    variant dwvec WV_DWCONV_VEC=1 t-s1l8 --size 224 --batch 8
    variant stem WV_STEM_FUSED=1 t-s1l8 --size 224 --batch 8
  fi
fi

# 2c. the benchmark (issue 9), when asked: WV_BENCH=1 [WV_BENCH_CASES=t224,t1024,t10k,s2]. First
#     run: the kernels that the switches of cuda/knobs.h replace, forced; second: the switched
#     kernels (tiled SS2D, vectorised dwconv, fused stem conv) forced on, same cases and weights —
#     the per-section profile separates them (WV_BENCH_TILE=0 skips the second)
bench() { # tag "ENV=0 ..." gpu_bench args...
  local tag=$1 envs=$2 rc
  shift 2
  log=$logs/gpu_$tag.log
  env $envs timeout "${WV_BENCH_TIMEOUT:-400}" "$here/gpu_bench" "$@" >"$log" 2>&1
  rc=$?
  while read -r _ name rest; do
    [ -n "$name" ] && result "$tag-$name" INFO "$rest"
  done < <(grep '^RESULT' "$log")
  [ $rc = 0 ] || result "gpu_$tag" FAIL "rc $rc: $(tail -1 "$log")"
}
if [ "${WV_BENCH:-0}" = 1 ] && [ $have_gpu = 1 ]; then
  bench bench "WV_DWCONV_VEC=0 WV_STEM_FUSED=0" --ss2d chunk --cases "${WV_BENCH_CASES:-all}"
  [ "${WV_BENCH_TILE:-1}" = 1 ] && bench bench-tile "WV_DWCONV_VEC=1 WV_STEM_FUSED=1" --ss2d tile \
    --cases "${WV_BENCH_TILE_CASES:-t224,t1024,t10k}"
fi

# 3. one big region: VMamba-T[s1l8], random weights (written to a safetensors file) and input,
#    GPU (f32 and bf16) vs CPU on the same weights and pixels; stage-3 map and logits
if [ $have_gpu = 0 ] || [ "${WV_SKIP_BIG:-0}" = 1 ]; then
  result "big-${big}" SKIP "$([ $have_gpu = 0 ] && echo 'no device' || echo 'WV_SKIP_BIG=1')"
else
  log=$logs/big-$big.log
  t0=$(date +%s)
  timeout 420 "$here/gpu_check" --config t-s1l8 --size "$big" --threads "$threads" \
    --dtypes f32,bf16 --save "$WV_TEST_TMP/t-s1l8-random.safetensors" >"$log" 2>&1
  rc=$?
  t=$(( $(date +%s) - t0 ))
  cput=$(grep -o 'cpu forward.*' "$log" | head -1)
  while read -r _ name res fig; do
    [ -n "$name" ] && result "big-$big-$name" "$res" "$fig"
  done < <(grep '^RESULT' "$log")
  case $rc in
    0) result "big-$big" PASS "${t}s total; $cput" ;;
    124) result "big-$big" FAIL "timed out after ${t}s" ;;
    *) result "big-$big" FAIL "rc $rc (${t}s): $(grep -v '^ ' "$log" | tail -1)" ;;
  esac
fi

# 4. compute-sanitizer memcheck on small forwards (odd sizes, B = 2, both families)
san=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
if [ $have_gpu = 0 ]; then
  result memcheck SKIP "no device"
elif [ "${WV_SKIP_SANITIZER:-0}" = 1 ]; then
  result memcheck SKIP "WV_SKIP_SANITIZER=1"
elif [ -z "$san" ]; then
  result memcheck SKIP "compute-sanitizer not found"
else
  # tiny-v2-tile: the opt-in kernels (tiled SS2D, vectorised dwconv, fused stem), 161×203 (stage 0 41×51 in
  # 32² tiles: pass 1 / carry / pass 2; the deeper stages fused)
  for cfg in tiny-v2 tiny-v0 tiny-v2-devin tiny-v2-tile; do
    log=$logs/memcheck-$cfg.log
    extra="--hw 45,61 --dtypes f32,bf16" tile=0
    [ $cfg = tiny-v2-devin ] && extra="$extra --device-input"
    [ $cfg = tiny-v2-tile ] && extra="--hw 161,203 --dtypes bf16 --device-input" tile=1
    WV_SS2D_TILE=$tile WV_DWCONV_VEC=$tile WV_STEM_FUSED=$tile timeout 300 "$san" --tool memcheck --leak-check full --error-exitcode 9 \
      "$here/gpu_check" --config "$(echo $cfg | sed 's/-devin$//; s/-tile$//')" --batch 2 --no-cpu \
      $extra >"$log" 2>&1
    rc=$?
    # two verdicts: the sanitizer's (its ERROR SUMMARY; rc 9 = errors found) and the program's
    # own exit status (a failed forward is not a memory error, and a memory error may come with
    # exit 0 from the program)
    nerr=$(grep -o 'ERROR SUMMARY: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
    leaks=$(grep -o 'LEAK SUMMARY: [0-9]* bytes leaked' "$log" | tail -1)
    if [ -z "$nerr" ]; then
      result "memcheck-$cfg" FAIL "no sanitizer summary (rc $rc$([ $rc = 124 ] && echo ', timed out'))"
    elif [ "$nerr" = 0 ] && [ $rc != 9 ]; then
      result "memcheck-$cfg" PASS "0 sanitizer errors${leaks:+; $leaks}"
    else
      result "memcheck-$cfg" FAIL "$nerr sanitizer errors${leaks:+; $leaks} (see memcheck-$cfg.log)"
    fi
    if [ $rc = 0 ]; then
      result "memcheck-$cfg-run" PASS "program exit 0 under the sanitizer"
    elif [ $rc != 9 ]; then
      result "memcheck-$cfg-run" FAIL "program exit $rc under the sanitizer: $(grep -m1 '^RESULT.*FAIL' "$log")"
    fi
  done
fi

rm -rf "$WV_TEST_TMP"
total=$(( $(date +%s) - t_start ))
nfail=$(awk -F'\t' '$2=="FAIL"' "$summary" | wc -l)
echo
echo "== summary (${total}s; logs in $logs)"
{ printf 'check\tresult\tfigure\n'; cat "$summary"; } | column -t -s $'\t' 2>/dev/null || cat "$summary"
[ "$nfail" = 0 ]
