#!/usr/bin/env bash
# Reproduces BENCHMARKS.md: release builds of the server and the generator, a
# fresh server (and database) per run, the generator reading the server's CPU
# and RSS from /proc via --server-pid. Results land in $OUT as one JSON per
# run; summarize.py turns them into the tables (medians over $RUNS runs).
#
#   loadtest/bench/run.sh                 # everything, 3 runs each (~20 min)
#   RUNS=1 loadtest/bench/run.sh fanout   # one scenario group
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-3}
PORT=${PORT:-18080}
OUT=${OUT:-target/bench}
THREADS=${THREADS:-1}   # generator worker threads: leave the other core to the server
mkdir -p "$OUT"
cargo build --release -q -p chatterbox --bin chatterbox
cargo build --release -q -p chatterbox-loadtest
BIN=$(mktemp -d)
cp target/release/chatterbox target/release/chatterbox-loadtest "$BIN/"
URL="ws://127.0.0.1:$PORT/ws"

# run NAME [generator flags…]: one generator run against a fresh server.
run() {
  local name=$1
  shift
  local db
  db=$(mktemp -d)
  # RATE_LIMITS=off: one publisher sends 100 msg/s and the joins scenario joins 20 times a second
  # per connection, far past the per-connection limits a person never meets.
  RUST_LOG=warn PORT=$PORT BIND_ADDR=127.0.0.1 DB_PATH="$db/chat.db" MAX_ROOMS=10000 MAX_ROOMS_CREATED_PER_IP=0 \
    MAX_CONNECTIONS=0 MAX_CONNECTIONS_PER_IP=0 MAX_CONNECTS_PER_IP_PER_SECOND=0 \
    RATE_LIMITS=off \
    "$BIN/chatterbox" >"$OUT/$name.server.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do
    (echo >/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break
    sleep 0.1
  done
  echo "== $name: $*" >&2
  "$BIN/chatterbox-loadtest" --url "$URL" --server-pid "$pid" --threads "$THREADS" -q --json "$@" \
    >"$OUT/$name.json" || echo "!! $name failed" >&2
  kill -TERM "$pid"
  wait "$pid" || true
  rm -rf "$db"
}

groups=${*:-fanout slo rooms idle bigroom churn storm joins}
for g in $groups; do
  for i in $(seq "$RUNS"); do
    case $g in
      fanout) run "fanout-$i" --scenario fanout -c 1000 --rate 100 --message-size 100 --duration 10s ;;
      slo) [ "$i" = 1 ] && run "slo-$i" --scenario fanout -c 1000 --rate 300 --message-size 100 \
             --duration 10s --slo p99=50ms --slo-runs 3 --slo-max-probes 7 --plot "$OUT/fanout-latency.svg" ;;
      rooms) run "rooms-$i" --scenario rooms -c 5000 --members 10 --rate 5 --message-size 100 --duration 10s ;;
      idle) run "idle-$i" --scenario idle -c 19900 --warmup 0s --duration 10s ;;
      bigroom) run "bigroom-$i" --scenario fanout -c 19000 --rate 2 --message-size 100 --duration 10s ;;
      churn) run "churn-$i" --scenario churn -c 100 --duration 10s ;;
      storm) run "storm-$i" --scenario reconnect-storm -c 5000 --warmup 1s --duration 10s ;;
      joins) run "joins-$i" --scenario joins --join-rate 1000 --seed-history 50 --duration 10s ;;
    esac
  done
done
python3 loadtest/bench/summarize.py "$OUT"
