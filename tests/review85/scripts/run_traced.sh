#!/bin/sh
# review85: the soak's load on a cluster whose first node runs under tracemalloc
# (traced_node.py); snapshots at the given minutes (SIGUSR1), then everything stopped.
#   sh run_traced.sh WORKDIR MINUTES BASEPORT SNAP_MIN...
set -u
W=$1; MIN=$2; BASE=$3; shift 3
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$W"
export R85_TRACE_DIR="$W"
R85_TRACED=1 python "$HERE/cluster.py" start "$W" --base "$BASE" > "$W/cluster.out" 2>&1
P0=$(python -c "import json;print(json.load(open('$W/cluster.json'))['nodes'][0]['pid'])")
python "$HERE/loadgen.py" --cluster "$W/cluster.json" --minutes "$MIN" --out "$W/loadgen.jsonl" \
    > "$W/loadgen.out" 2> "$W/loadgen.err" &
LG=$!
timeout $(( (MIN + 2) * 60 )) python "$HERE/sampler.py" --cluster "$W/cluster.json" \
    --loadgen-pid "$LG" --minutes "$MIN" --every 60 --out "$W/samples.jsonl" \
    > "$W/sampler.out" 2> "$W/sampler.err" &
SP=$!
START=$(date +%s)
for m in "$@"; do
    while [ $(( $(date +%s) - START )) -lt $(echo "$m * 60 / 1" | bc) ]; do sleep 2; done
    kill -USR1 "$P0"; echo "snapshot at $m min" >> "$W/snaps.txt"
done
wait "$LG"
wait "$SP"
python "$HERE/cluster.py" stop "$W"
echo done > "$W/DONE"
