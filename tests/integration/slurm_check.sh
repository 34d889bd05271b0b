#!/bin/bash
# slurm_check.sh — a real Slurm run of scripts/slurm/ (issue 7): installs Debian's slurm-wlm and
# munge if missing, starts munged + slurmctld + slurmd on this machine (single node, localhost,
# proctrack/linuxproc, task/none, select/cons_tres, no cgroups) with their own config, sockets and
# state under a scratch folder, submits the shard array (3 shards) and the merge job
# (--dependency=afterany) on a small synthetic cohort through scripts/slurm/submit.sh, waits
# (bounded), checks the merged results with sqlite3 + h5py (/usr/bin/python3), and stops the
# daemons it started by PID.
# Needs root (apt-get, daemons). Skips (77) unless WV_RUN_SLURM=1, so the default ctest run stays
# short and harmless: run it with `WV_RUN_SLURM=1 ctest -L slurm` (docs/batch.md).
# Env: WV_BIN, WV_SOURCE_DIR, WV_TEST_TMP (ctest sets them); WV_SLURM_WAIT_S (default 300).
set -uo pipefail
if [[ "${WV_RUN_SLURM:-0}" != 1 ]]; then echo "skip: set WV_RUN_SLURM=1 to run the Slurm test"; exit 77; fi
if [[ $(id -u) != 0 ]]; then echo "skip: needs root (apt-get, slurm daemons)"; exit 77; fi
BIN=${WV_BIN:?}; SRC=${WV_SOURCE_DIR:?}; TMP=${WV_TEST_TMP:-/tmp}
PY=/usr/bin/python3
WAIT_S=${WV_SLURM_WAIT_S:-300}
D=$TMP/slurm_check
pids=()
cleanup() {
  for pf in "$D/slurmd.pid" "$D/slurmctld.pid" "$D/munged.pid"; do
    if [[ -s $pf ]]; then
      pid=$(cat "$pf")
      kill "$pid" 2>/dev/null
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null
    fi
  done
}
trap cleanup EXIT
fail() { echo "FAIL $*"; for f in "$D"/*.log; do echo "--- $f"; tail -n 30 "$f"; done; exit 1; }

# 1. packages (Debian 12: slurm-wlm 22.05)
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  apt-cache policy slurm-wlm | head -3
  if ! apt-cache policy slurm-wlm | grep -q 'Candidate: [0-9]'; then
    echo "skip: no slurm-wlm package candidate (apt-get update?)"; exit 77
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y slurm-wlm munge >"$TMP/slurm_apt.log" 2>&1 ||
    { tail -20 "$TMP/slurm_apt.log"; echo "skip: apt-get install slurm-wlm munge failed"; exit 77; }
fi
echo "slurm $(slurmctld -V 2>&1)"

# 2. config
rm -rf "$D"; mkdir -p "$D/state" "$D/spool" "$D/work"
chmod 755 "$D"
NODE=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P1=$(port); P2=$(port)
mungekey -c -k "$D/munge.key" 2>/dev/null || dd if=/dev/urandom of="$D/munge.key" bs=1024 count=1 2>/dev/null
chmod 400 "$D/munge.key"
cat >"$D/slurm.conf" <<CONF
ClusterName=wvtest
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$P1
SlurmdPort=$P2
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge.sock
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/slurmctld.log
SlurmdLogFile=$D/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
SlurmdTimeout=60
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=wv Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$D/slurm.conf

# 3. daemons (ours alone: own socket, ports, pid files)
munged --force -S "$D/munge.sock" --key-file="$D/munge.key" --pid-file="$D/munged.pid" \
  --log-file="$D/munged.log" --seed-file="$D/munge.seed" || fail "munged did not start"
slurmctld -f "$D/slurm.conf" || fail "slurmctld did not start"
slurmd -f "$D/slurm.conf" -N "$NODE" || fail "slurmd did not start"
for _ in $(seq 60); do
  st=$(sinfo -h -N -o '%t' 2>/dev/null | head -1)
  [[ $st == idle* ]] && break
  sleep 1
done
sinfo || true
[[ $st == idle* ]] || fail "node not idle after 60 s (state '$st')"

# 4. cohort + model, submit
"$BIN" synth "$D/work/archive" --slides 5 --seed 21 --size 1500,1200 --quiet --threads 2 || fail synth
"$BIN" model init --random-backbone tiny --out "$D/work/model.safetensors" >/dev/null || fail "model init"
export WV_BIN=$BIN WV_JOBS=1
export WV_BATCH_ARGS="--region 512 --overlap 32 --device cpu"
out=$("$SRC/scripts/slurm/submit.sh" "$D/work/archive" "$D/work/model.safetensors" "$D/work/out" 3 \
      --cpus-per-task=1 --mem=1G) || fail "submit.sh"
echo "$out"
t0=$(date +%s)
while squeue -h 2>/dev/null | grep -q .; do
  (( $(date +%s) - t0 > WAIT_S )) && { squeue; fail "jobs not finished after $WAIT_S s"; }
  sleep 2
done
echo "jobs finished after $(( $(date +%s) - t0 )) s"
ls "$D/work/out"; cat "$D/work/out"/wv-*.log

# 5. checks
$PY - "$D/work/archive" "$D/work/out" <<'PYEOF' || fail "merged results"
import os, sqlite3, sys
import h5py
arch, out = sys.argv[1], sys.argv[2]
merged = os.path.join(out, "merged")
slides = sorted(n[:-4] for n in os.listdir(arch) if n.endswith(".tif"))
shards = sorted(n for n in os.listdir(out) if n.startswith("shard_"))
assert shards == ["shard_0", "shard_1", "shard_2"], shards
db = sqlite3.connect(os.path.join(merged, "results.sqlite"))
rows = db.execute("SELECT slide_id, status, h5_path FROM slides ORDER BY slide_id").fetchall()
assert [r[0] for r in rows] == slides, (rows, slides)
assert all(r[1] == "done" for r in rows), rows
assert all(r[2] == os.path.join(merged, r[0] + ".h5") for r in rows), rows
assert db.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == len(slides)
per_shard = []
for s in shards:
    d = sqlite3.connect(os.path.join(out, s, "results.sqlite"))
    per_shard.append(d.execute("SELECT COUNT(*) FROM slides").fetchone()[0])
assert sum(per_shard) == len(slides), per_shard
for r in rows:
    with h5py.File(r[2], "r") as f:
        assert f.attrs["complete"] == 1 and f["heatmap"].shape == f["tissue"].shape
print(f"ok   merged: {len(slides)} slides done once ({per_shard} per shard), .h5 valid (h5py)")
PYEOF
echo "slurm_check: ok"
