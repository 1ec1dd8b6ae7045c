#!/usr/bin/env bash
# Same-sitting before/after: runs one scenario against two server builds, alternating them run by
# run (A B A B …) with a fresh server and database each time, and prints the medians side by side.
# The machine's speed drifts; alternating puts both builds in the same drift.
#
#   loadtest/bench/ab.sh OLD_BINARY NEW_BINARY RUNS NAME -- [generator flags…]
#   loadtest/bench/ab.sh /tmp/old target/release/chatterbox 5 fanout100 -- \
#       --scenario fanout -c 1000 --rate 100 --message-size 100 --duration 10s
#
# Server settings come from SERVER_ENV (default "RATE_LIMITS=off", as in run.sh; set it to "" for
# the server's defaults), plus SERVER_ENV_A / SERVER_ENV_B for one side only (e.g. the same binary
# twice with SERVER_ENV_B="AUTH_SECRET=…" measures token mode against open mode); results land in
# $OUT/NAME-{a,b}-N.json. The generator is target/release/chatterbox-loadtest (or $LOADTEST).
set -euo pipefail
cd "$(dirname "$0")/../.."
OLD=$1 NEW=$2 RUNS=$3 NAME=$4
shift 4
[ "${1:-}" = "--" ] && shift
PORT=${PORT:-18080}
OUT=${OUT:-target/bench/ab}
LOADTEST=${LOADTEST:-target/release/chatterbox-loadtest}
THREADS=${THREADS:-1}
mkdir -p "$OUT"

run() { # run LABEL BINARY N [generator flags…]
  local label=$1 binary=$2 n=$3 db pid
  shift 3
  db=$(mktemp -d)
  local side_env=${SERVER_ENV_A-}
  [ "$label" = b ] && side_env=${SERVER_ENV_B-}
  # shellcheck disable=SC2086 # SERVER_ENV is a list of NAME=VALUE words
  env RUST_LOG=warn PORT="$PORT" BIND_ADDR=127.0.0.1 DB_PATH="$db/chat.db" MAX_ROOMS=10000 \
    MAX_ROOMS_CREATED_PER_IP=0 \
    MAX_CONNECTIONS=0 MAX_CONNECTIONS_PER_IP=0 MAX_CONNECTS_PER_IP_PER_SECOND=0 \
    ${SERVER_ENV-RATE_LIMITS=off} $side_env "$binary" >"$OUT/$NAME-$label-$n.server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    (echo >/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break
    sleep 0.1
  done
  "$LOADTEST" --url "ws://127.0.0.1:$PORT/ws" --server-pid "$pid" --threads "$THREADS" -q --json \
    "$@" >"$OUT/$NAME-$label-$n.json" || echo "!! $NAME-$label-$n failed" >&2
  kill -TERM "$pid"
  wait "$pid" || true
  rm -rf "$db"
}

for i in $(seq "$RUNS"); do
  echo "== $NAME run $i/$RUNS" >&2
  run a "$OLD" "$i" "$@"
  run b "$NEW" "$i" "$@"
done
python3 - "$OUT" "$NAME" <<'PY'
import glob, json, os, statistics, sys
out, name = sys.argv[1], sys.argv[2]
def runs(label):
    rs = []
    for p in sorted(glob.glob(os.path.join(out, f"{name}-{label}-*.json"))):
        try:
            rs.append(json.load(open(p))["result"])
        except Exception:
            print(f"skipping {p}", file=sys.stderr)
    return rs
def med(rs, *path):
    vals = []
    for r in rs:
        v = r
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        if v is not None:
            vals.append(v)
    return (statistics.median(vals), vals) if vals else (None, [])
rows = [
    ("server CPU µs per delivery", ("resources", "server_cpu_us_per_delivery"), 1, 2),
    ("server CPU %", ("resources", "server_cpu_percent"), 1, 1),
    ("server RSS per connection (B)", ("resources", "server_rss_per_connection_bytes"), 1, 0),
    ("delivery p50 ms", ("delivery", "p50_ms"), 1, 2),
    ("delivery p99 ms", ("delivery", "p99_ms"), 1, 2),
    ("lost", ("lost",), 1, 0),
    ("churn cycles per second", ("churn", "cycles_per_second"), 1, 0),
    ("server CPU µs per churn cycle", ("churn", "server_cpu_us_per_cycle"), 1, 1),
]
a, b = runs("a"), runs("b")
# Churn runs: connect → join → leave → close cycles per second, and server CPU per cycle.
for r in a + b:
    c, res = r.get("counters", {}), r.get("resources", {})
    if c.get("churn_cycles") and res.get("window_secs"):
        r["churn"] = {
            "cycles_per_second": c["churn_cycles"] / res["window_secs"],
            "server_cpu_us_per_cycle": (res.get("server_cpu_secs") or 0) * 1e6 / c["churn_cycles"],
        }
print(f"\n### {name}: A (before) vs B (after), {len(a)}/{len(b)} alternating runs, medians\n")
print("| | A | B | B/A | A runs | B runs |\n|---|---:|---:|---:|---|---|")
for title, path, _, d in rows:
    ma, va = med(a, *path)
    mb, vb = med(b, *path)
    if ma is None and mb is None:
        continue
    ratio = f"{mb / ma:.3f}" if ma and mb is not None else "n/a"
    f = lambda v: "n/a" if v is None else f"{v:.{d}f}"
    print(f"| {title} | {f(ma)} | {f(mb)} | {ratio} | {', '.join(f(v) for v in va)} | {', '.join(f(v) for v in vb)} |")
PY
