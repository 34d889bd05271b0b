#!/bin/bash
# gpu_analyze_bench.sh — end-to-end `wsi-vmamba analyze` throughput of ONE real-size synthetic
# slide, meant for a GPU host: synthesise the slide (`synth`), make a VMamba-T[s1l8]-shaped model
# with a random backbone and head (`model init --random-backbone t-s1l8`), run `analyze` on it and
# report the slide size, regions and tissue cells, the process and slide wall time, slides per
# hour, where the slide's time goes (setup, waiting for the readers, encoder incl. host↔device,
# head, writing; the reader threads run beside the encoder and are reported apart), peak RSS
# and, with nvidia-smi, the GPU memory in use. It reports; it does not pass or fail (STYLE.md
# 2.6). Documented in docs/benchmarks.md "analyze on the GPU (end to end)".
#
# Needs only the wsi-vmamba binary, bash and coreutils/awk (no python, sqlite3 or h5py); uses
# /usr/bin/time -v for peak RSS and nvidia-smi for GPU memory when they are there.
#
# Usage: gpu_analyze_bench.sh [--bin PATH] [--device cuda|cpu|auto] [--size W[,H]] [--out DIR]
#                             [--model FILE] [-- ANALYZE-OPTIONS...]
#   --bin PATH     the CLI (default $WV_BIN, else ./build/src/wsi-vmamba)
#   --device D     analyze --device: cuda, cuda:N, cpu or auto (default auto)
#   --size W[,H]   level-0 size of the slide in px at 0.25 µm/px (default 99840,79872: a
#                  CAMELYON16-sized 25 × 20 mm slide, 8 Gpx, analysed at the model's 0.5 µm/px
#                  in exactly 5 × 4 regions of 9,984 px); H defaults to 4/5 of W
#   --out DIR      keep everything in DIR and reuse its slide (slide-WxH/) and model on a later
#                  run (default: a fresh temporary folder, removed at the end)
#   --model FILE   an existing model file instead of the random VMamba-T[s1l8] one
#   -- ...         further options for analyze (e.g. --dtype bf16 --readers 4 --region 4992)
# Env: WV_BIN; WV_TIME (GNU time for peak RSS, default /usr/bin/time; empty: sample VmHWM).
set -euo pipefail
export LC_ALL=C

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "gpu_analyze_bench: $*" >&2; exit 2; }

BIN=${WV_BIN:-./build/src/wsi-vmamba}
DEVICE=auto
SIZE=99840,79872
OUT=
MODEL=
EXTRA=()
while [ $# -gt 0 ]; do
    case $1 in
    --bin) [ $# -ge 2 ] || die "--bin needs a value"; BIN=$2; shift 2 ;;
    --device) [ $# -ge 2 ] || die "--device needs a value"; DEVICE=$2; shift 2 ;;
    --size) [ $# -ge 2 ] || die "--size needs a value"; SIZE=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || die "--out needs a value"; OUT=$2; shift 2 ;;
    --model) [ $# -ge 2 ] || die "--model needs a value"; MODEL=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) die "unknown argument '$1' (--help)" ;;
    esac
done
case $DEVICE in auto | cpu | cuda | cuda:[0-9]*) ;; *) die "--device: '$DEVICE' is not cuda, cuda:N, cpu or auto" ;; esac
case $SIZE in
*[!0-9,]* | ,* | *, | *,*,* | '') die "--size: '$SIZE' is not W or W,H (px)" ;;
*,*) W=${SIZE%,*}; H=${SIZE#*,} ;;
*) W=$SIZE; H=$((10#$SIZE * 4 / 5)) ;;
esac
if [ ${#W} -gt 9 ] || [ ${#H} -gt 9 ]; then die "--size: '$SIZE': too large"; fi
W=$((10#$W)) H=$((10#$H))
if [ "$W" -lt 512 ] || [ "$H" -lt 512 ]; then die "--size: each side must be at least 512 px (synth)"; fi
[ -x "$BIN" ] || die "$BIN: not an executable (give --bin PATH or set WV_BIN)"
[ -z "$MODEL" ] || [ -f "$MODEL" ] || die "--model $MODEL: no such file"

TMPOUT=
if [ -z "$OUT" ]; then
    OUT=$(mktemp -d "${TMPDIR:-/tmp}/gpu_analyze_bench.XXXXXX")
    TMPOUT=$OUT
fi
mkdir -p "$OUT"
APID='' SPID=''
cleanup() {
    if [ -n "$APID" ]; then # analyze, and its own child when it runs under GNU time
        local kids=()
        read -r -a kids <"/proc/$APID/task/$APID/children" 2>/dev/null || true
        kill "${kids[@]}" "$APID" 2>/dev/null || true
        wait "$APID" 2>/dev/null || true
    fi
    [ -z "$SPID" ] || kill "$SPID" 2>/dev/null || true
    [ -z "$TMPOUT" ] || rm -rf "$TMPOUT"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { date +%s.%N; }
# awk does the arithmetic (no bc on a bare host): calc 'expression with the numbers in it'
calc() { awk "BEGIN { print $1 }" </dev/null; }
secs() { calc "sprintf(\"%.1f\", $1)"; }

echo "gpu_analyze_bench: $(date -u +%FT%TZ), commit $(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo ?)"
echo "host: $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null), load $(cut -d' ' -f1-3 /proc/loadavg)"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader 2>/dev/null |
        sed 's/^/gpu: /' || true
fi
echo "binary: $BIN ($("$BIN" --version 2>&1 | tr '\n' ' ' | sed 's/ *$//'))"
echo "work folder: $OUT${TMPOUT:+ (temporary, removed at the end)}"

# 1. the slide: synthesised once per size into slide-WxH/ (renamed only when complete)
SD=$OUT/slide-${W}x$H
shopt -s nullglob
TIFS=("$SD"/*.tif)
if [ ${#TIFS[@]} = 0 ]; then
    rm -rf "$SD.part"
    t0=$(now)
    if ! "$BIN" synth "$SD.part" --slides 1 --seed 7 --size "$W,$H" --mpp 0.25 --quiet; then
        echo "gpu_analyze_bench: synth failed" >&2; exit 1
    fi
    t1=$(now)
    mv "$SD.part" "$SD"
    SYNTH="$(secs "$t1 - $t0") s on $(nproc) threads"
else
    SYNTH="reused from $SD"
fi
TIFS=("$SD"/*.tif)
[ ${#TIFS[@]} -gt 0 ] || { echo "gpu_analyze_bench: no slide in $SD" >&2; exit 1; }
SLIDE=${TIFS[0]}
BYTES=$(wc -c <"$SLIDE")

# 2. the model: VMamba-T[s1l8] (dims 96/192/384/768, depths 2/2/8/2, D = 768), random backbone
#    and head, target 0.5 µm/px, region 10,000 (→ 9,984), overlap 256 — the defaults of model init
MODEL_WHAT="given"
if [ -z "$MODEL" ]; then
    MODEL_WHAT="VMamba-T[s1l8]-shaped, random backbone and head (model init --random-backbone t-s1l8 --seed 1)"
    MODEL=$OUT/model-t-s1l8.safetensors
    if [ ! -f "$MODEL" ]; then
        "$BIN" model init --random-backbone t-s1l8 --seed 1 --out "$MODEL.part" 2>"$OUT/model-init.log" ||
            { echo "gpu_analyze_bench: model init failed:" >&2; cat "$OUT/model-init.log" >&2; exit 1; }
        mv "$MODEL.part" "$MODEL"
    fi
fi
INSPECT=$("$BIN" model inspect "$MODEL")
field() { printf '%s\n' "$INSPECT" | awk -v k="$1" 'index($0, k) == 1 { sub("^" k " *", ""); print; exit }'; }

echo "slide: $(basename "$SLIDE"), $W × $H px level 0 at 0.25 µm/px ($(calc "sprintf(\"%.2f\", $W * $H / 1e9)") Gpx, $(calc "sprintf(\"%.0f\", $BYTES / 1048576)") MiB); synth: $SYNTH"
echo "model: $MODEL ($MODEL_WHAT): backbone $(field backbone | cut -d' ' -f1-5); target $(field 'target mpp' | cut -d' ' -f1-2); the model's region $(field region) (analyze rounds the region down to whole 32-px cells, 10000 -> 9984; -- --region N overrides)"

# 3. analyze, timed; peak RSS from /usr/bin/time -v, else VmHWM sampled every second; GPU memory
#    (whole device, minus what was in use before) from nvidia-smi every second when present
RES=$OUT/results-${DEVICE%%:*}
rm -rf "$RES"
LOGO=$OUT/analyze.stdout LOGE=$OUT/analyze.stderr SAMP=$OUT/samples TIMEF=$OUT/time.txt
rm -f "$SAMP" "$TIMEF"
TIMEV=0
TIMEB=${WV_TIME-/usr/bin/time} # GNU time; WV_TIME= (empty) to sample VmHWM instead
if [ -n "$TIMEB" ] && [ -x "$TIMEB" ] && "$TIMEB" -v -o /dev/null true >/dev/null 2>&1; then TIMEV=1; fi
GPU=0
if [ "$DEVICE" != cpu ] && command -v nvidia-smi >/dev/null 2>&1 &&
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits >/dev/null 2>&1; then GPU=1; fi
gpu_used() {
    local i=${DEVICE#cuda:}
    case $i in '' | *[!0-9]*) i=0 ;; esac
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i "$i" 2>/dev/null | head -1
}
GBASE=0
[ $GPU = 0 ] || GBASE=$(gpu_used || true)
case $GBASE in '' | *[!0-9]*) GBASE=0 ;; esac
CMD=("$BIN" analyze "$SLIDE" --model "$MODEL" --out "$RES" --device "$DEVICE" "${EXTRA[@]}")
echo "command: ${CMD[*]}"
t0=$(now)
if [ $TIMEV = 1 ]; then
    "$TIMEB" -v -o "$TIMEF" "${CMD[@]}" >"$LOGO" 2>"$LOGE" &
else
    "${CMD[@]}" >"$LOGO" 2>"$LOGE" &
fi
APID=$!
(
    hwm=0 g=0
    while kill -0 "$APID" 2>/dev/null; do
        if [ $TIMEV = 0 ]; then
            v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$APID/status" 2>/dev/null || true)
            [ -n "$v" ] && [ "$v" -gt "$hwm" ] && hwm=$v
        fi
        if [ $GPU = 1 ]; then
            v=$(gpu_used || true)
            case $v in '' | *[!0-9]*) ;; *) [ "$v" -gt "$g" ] && g=$v ;; esac
        fi
        echo "$hwm $g" >"$SAMP.tmp" && mv "$SAMP.tmp" "$SAMP"
        sleep 1
    done
) &
SPID=$!
rc=0
wait "$APID" || rc=$?
t1=$(now)
APID=''
wait "$SPID" 2>/dev/null || true
SPID=''
if [ $rc != 0 ]; then
    echo "gpu_analyze_bench: analyze exited $rc; the end of its stderr ($LOGE):" >&2
    tail -n 20 "$LOGE" >&2
    exit 1
fi
WALL=$(calc "$t1 - $t0")

# 4. what analyze printed: the summary (stdout), device, Mpix to encode and the timing line
#    "<slide>: timing: read=…s encode=…s head=…s write=…s total=…s setup=…s readers=…s wait=…s"
SUM=$(grep -m1 'slide probability' "$LOGO" || true)
TIM=$(grep -m1 ': timing: ' "$LOGE" || true)
if [ -z "$SUM" ] || [ -z "$TIM" ]; then
    echo "gpu_analyze_bench: no summary / timing line from analyze (a binary older than the timing line?)" >&2
    exit 1
fi
t() { printf '%s\n' "$TIM" | sed -n "s/.* $1=\([0-9.]*\)s.*/\1/p"; }
T_READ=$(t read) T_ENC=$(t encode) T_HEAD=$(t head) T_WRITE=$(t write) T_TOT=$(t total)
T_SETUP=$(t setup) T_READERS=$(t readers) T_WAIT=$(t wait)
NREADERS=$(printf '%s\n' "$TIM" | sed -n 's/.*summed over \([0-9]*\) threads.*/\1/p')
CELLS=$(printf '%s\n' "$SUM" | sed -n 's/.*, \([0-9]*\) tissue cells.*/\1/p')
GRID=$(printf '%s\n' "$SUM" | sed -n 's/.*tissue cells (\([^ ]*\) grid).*/\1/p')
NREG=$(printf '%s\n' "$SUM" | sed -n 's/.* \([0-9]*\) regions,.*/\1/p')
PROB=$(printf '%s\n' "$SUM" | sed -n 's/.*slide probability \([^,]*\),.*/\1/p')
MPIX=$(sed -n 's/.*: [0-9]* regions, \([0-9.]*\) Mpix to encode.*/\1/p' "$LOGE" | head -1)
DEV=$(sed -n 's/^analyze: device //p' "$LOGE" | head -1)

echo "device: ${DEV:-?}"
echo "tissue: $NREG regions, ${MPIX:-?} Mpix through the backbone (regions + halo); $CELLS tissue cells of a $GRID grid; slide probability $PROB (random head)"
echo "wall: $(secs "$WALL") s for the process (model load, device start, database, the slide) → $(calc "sprintf(\"%.1f\", 3600 / $WALL)") slides/hour;"
echo "      $(secs "$T_TOT") s for the slide itself → $(calc "sprintf(\"%.1f\", 3600 / $T_TOT)") slides/hour once started"
OTHER=$(calc "$T_TOT - $T_SETUP - $T_WAIT - $T_ENC - $T_HEAD - $T_WRITE")
row() { printf '  %-50s %9s s  %5s %%\n' "$1" "$(calc "sprintf(\"%.2f\", $2)")" "$(calc "sprintf(\"%.1f\", 100 * $2 / $T_TOT)")"; }
echo "where the slide's $(secs "$T_TOT") s go (the encoding thread, one after another; they add up):"
row "setup: open, hash, tissue mask, region plan" "$T_SETUP"
row "waiting for the readers (read/decode not hidden)" "$T_WAIT"
row "encoder: backbone incl. host->device->host" "$T_ENC"
row "head: head_run_add/finish + coords to the .h5" "$T_HEAD"
row "write: lesions, .h5, CSV" "$T_WRITE"
row "other (buffers, .h5 create, reader start/stop)" "$OTHER"
echo "in parallel with the encoder (overlaps it, so it does not add to the above):"
printf '  %-50s %9s s  (%s s per reader; encode %s Mpix/s)\n' \
    "read/decode: ${NREADERS:-?} reader threads' busy time, summed" "$(calc "sprintf(\"%.2f\", $T_READERS)")" \
    "$(calc "sprintf(\"%.2f\", $T_READERS / ${NREADERS:-1})")" \
    "$(calc "sprintf(\"%.2f\", ${MPIX:-0} / ($T_ENC + 1e-9))")"
echo "  (results.sqlite's seconds_read = setup + readers = $(secs "$T_READ") s; read + encode + head + write can exceed the total)"

S=$(cat "$SAMP" 2>/dev/null || echo "0 0")
if [ $TIMEV = 1 ] && [ -f "$TIMEF" ]; then
    RSS=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$TIMEF")
    echo "peak RSS: $(calc "sprintf(\"%.2f\", $RSS / 1048576)") GiB ($TIMEB -v)"
elif [ "${S% *}" -gt 0 ]; then
    echo "peak RSS: ≥ $(calc "sprintf(\"%.2f\", ${S% *} / 1048576)") GiB (VmHWM sampled every second; no /usr/bin/time)"
else
    echo "peak RSS: not measured (no /usr/bin/time, and the process ended before a sample)"
fi
if [ $GPU = 1 ]; then
    echo "GPU memory: peak $(calc "(${S#* } > $GBASE) ? ${S#* } - $GBASE : 0") MiB above the $GBASE MiB in use before (nvidia-smi, whole device, sampled every second)"
fi
echo "logs: $LOGO, $LOGE${TMPOUT:+ (removed with the temporary folder; give --out DIR to keep them)}"
