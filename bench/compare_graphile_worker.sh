#!/usr/bin/env bash
# stockx-sync and graphile-worker 0.16 side by side, alternating, at the same durability.
#
#   mkdir -p /tmp/gw && (cd /tmp/gw && npm install graphile-worker@0.16)
#   cargo build --release
#   bench/compare_graphile_worker.sh [rounds=3] [queue_commit=off] [insert_commit=off]
#
# Needs DATABASE_URL (a server where it may create scratch databases; both sides drop theirs).
# Both workers run at concurrency 8 over 20,000 no-op jobs, then time 300 single inserts into an
# idle worker. `queue_commit` is the workers' own synchronous_commit, `insert_commit` the timed
# inserts' (`server`: as the server is configured, as a Budibase insert commits).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
queue_commit=${2:-off}
insert_commit=${3:-off}
: "${DATABASE_URL:?set DATABASE_URL, e.g. postgres://postgres@127.0.0.1/postgres}"
export NODE_PATH=${NODE_PATH:-/tmp/gw/node_modules}
bin=target/release/stockx-sync
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
[ -d "$NODE_PATH/graphile-worker" ] || { echo "install the peer first: see the top of $0" >&2; exit 2; }

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$rounds"); do
    echo "== round $round: stockx-sync"
    "$bin" bench --import-rows 0 --queue-commit "$queue_commit" --insert-commit "$insert_commit"
    echo "== round $round: graphile-worker"
    node bench/peer_graphile_worker.js "$DATABASE_URL" 20000 8 "$queue_commit" "$insert_commit" 300
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
