#!/bin/bash
# submit.sh — submit the shard array and the merge job that depends on it (docs/batch.md "Slurm").
# Usage: submit.sh ARCHIVE|MANIFEST.csv MODEL OUT_DIR SHARDS [extra sbatch options for the array]
# Honours WV_BIN, WV_JOBS, WV_DEVICES, WV_BATCH_ARGS (see batch_array.sbatch). Prints both job ids.
set -euo pipefail
if (( $# < 4 )); then
  echo "usage: $0 ARCHIVE|MANIFEST.csv MODEL OUT_DIR SHARDS [sbatch options]" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
archive=$(realpath "$1"); model=$(realpath "$2"); out=$(realpath -m "$3"); n=$4
shift 4
mkdir -p "$out"
export WV_ARCHIVE=$archive WV_MODEL=$model WV_OUT=$out WV_SHARDS=$n
array=$(sbatch --parsable --array="0-$((n - 1))" --export=ALL --chdir="$out" "$@" "$here/batch_array.sbatch")
array=${array%%;*}
merge=$(sbatch --parsable --dependency="afterany:$array" --export=ALL --chdir="$out" "$here/merge.sbatch")
merge=${merge%%;*}
echo "array job $array ($n shards), merge job $merge -> $out/merged"
