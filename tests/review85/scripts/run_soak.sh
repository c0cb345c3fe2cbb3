#!/bin/sh
# review85: the whole soak, bounded: cluster up, load generator for $MIN minutes, sampler
# for $MIN + 1 minutes (every 30 s), then the cluster stopped.
#   sh run_soak.sh WORKDIR MINUTES [BASEPORT]
set -u
W=$1; MIN=$2; BASE=${3:-21000}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$W"
python "$HERE/cluster.py" start "$W" --base "$BASE" > "$W/cluster.out" 2>&1
python "$HERE/loadgen.py" --cluster "$W/cluster.json" --minutes "$MIN" --out "$W/loadgen.jsonl" \
    > "$W/loadgen.out" 2> "$W/loadgen.err" &
LG=$!
echo "$LG" > "$W/loadgen.pid"
timeout $(( (MIN + 3) * 60 )) python "$HERE/sampler.py" --cluster "$W/cluster.json" \
    --loadgen-pid "$LG" --minutes "$(echo "$MIN + 1" | bc)" --every 30 --out "$W/samples.jsonl" \
    > "$W/sampler.out" 2> "$W/sampler.err"
wait "$LG"
python "$HERE/cluster.py" stop "$W"
echo done > "$W/DONE"
