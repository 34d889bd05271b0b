#!/bin/sh
# build_and_run.sh — build the libFuzzer targets with clang (-fsanitize=fuzzer,address,undefined)
# and run each for SECONDS (default 180), one at a time, merging new inputs into a scratch corpus.
#   tests/fuzz/build_and_run.sh [SECONDS] [target...]
# targets: fuzz_safetensors fuzz_pth fuzz_pickle (weights), fuzz_asap_xml fuzz_geojson (annotations),
# fuzz_csv (labels, manifest and evaluation CSVs); default: all six.
# Outputs under build-fuzz/ (binaries, logs, crash-* reproducers). Copy any reproducer into
# tests/fuzz/corpus/<target>/ after fixing the bug, so the replay test keeps it fixed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${1:-180}
[ $# -gt 0 ] && shift
targets=${*:-"fuzz_safetensors fuzz_pth fuzz_pickle fuzz_asap_xml fuzz_geojson fuzz_csv"}
out=${WV_FUZZ_OUT:-$root/build-fuzz}
mkdir -p "$out"
cc=${CC_FUZZ:-clang}
flags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -std=gnu11 -I$root"
base="$root/src/error.c $root/src/util.c $root/src/sha256.c"
annot="$root/wsi/annot.c $root/wsi/annot_asap.c $root/wsi/annot_geojson.c $root/wsi/annot_json.c $root/wsi/annot_raster.c"
for t in $targets; do
  case $t in
    fuzz_safetensors|fuzz_pth|fuzz_pickle)
      srcs="$root/src/weights.c $root/src/safetensors.c $root/src/pth.c $root/src/pickle.c"
      pkgs="libzip libcjson" ;;
    fuzz_asap_xml|fuzz_geojson)
      srcs="$annot"
      pkgs="libxml-2.0 libcjson" ;;
    fuzz_csv) # report_inputs.c also holds the database and --slides readers: link their modules
      srcs="$annot $root/src/labels.c $root/src/manifest.c $root/src/slide_id.c $root/src/report_inputs.c"
      srcs="$srcs $root/heatmaps/resultsdb.c $root/wsi/slide.c $root/wsi/resample.c"
      pkgs="libxml-2.0 libcjson sqlite3 openslide libtiff-4" ;;
    *) echo "unknown target $t" >&2; exit 2 ;;
  esac
  $cc $flags -o "$out/$t" "$here/$t.c" $srcs $base $(pkg-config --cflags --libs $pkgs) -lz -lm -lpthread
  mkdir -p "$out/corpus_$t" "$out/artifacts_$t"
  start=$(date +%s)
  "$out/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$out/artifacts_$t/" \
    "$out/corpus_$t" "$here/corpus/$t" > "$out/$t.log" 2>&1 || echo "$t: fuzzer exited non-zero (see $out/$t.log)"
  end=$(date +%s)
  echo "$t: $((end - start)) s, $(grep -E 'stat::number_of_executed_units' "$out/$t.log" | awk '{print $2}') execs," \
       "$(ls "$out/artifacts_$t" | wc -l) artifacts, corpus $(ls "$out/corpus_$t" | wc -l) files"
done
