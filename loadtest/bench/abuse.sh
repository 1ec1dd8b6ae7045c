#!/usr/bin/env bash
# The abuse benchmark (issue 13): well-behaved clients chat in 20 rooms of 10 while, in every
# other run, hostile clients attack from addresses of their own (the loadtest's --attack: a flood
# into a measured room, 20 joins asking for 240 kB of history that never read, 40 unread REST
# pages, 4 room squatters, 300 half-sent 400 kB request heads). Quiet and attacked runs
# alternate, each with a fresh server at its default limits (rate limits on); the summary gives
# the good clients' p99 and losses, and the server's peak memory.
#
#   loadtest/bench/abuse.sh [RUNS]        # default 3 of each, ~3 minutes
#   ATTACKERS=oversized-head loadtest/bench/abuse.sh 3   # one kind of attacker only
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
PORT=${PORT:-18080}
OUT=${OUT:-target/bench/abuse}
LOADTEST=${LOADTEST:-target/release/chatterbox-loadtest}
SERVER=${SERVER:-target/release/chatterbox}
mkdir -p "$OUT"

run() { # run LABEL N [extra generator flags…]
  local label=$1 n=$2 db pid
  shift 2
  db=$(mktemp -d)
  # The server's defaults, except that it listens on every loopback address.
  RUST_LOG=warn PORT="$PORT" BIND_ADDR=127.0.0.1 DB_PATH="$db/chat.db" \
    "$SERVER" >"$OUT/$label-$n.server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    (echo >/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break
    sleep 0.1
  done
  "$LOADTEST" --url "ws://127.0.0.1:$PORT/ws" --server-pid "$pid" --threads 1 -q --json \
    --scenario rooms -c 200 --members 10 --rate 2 --message-size 100 --duration 20s \
    --ramp-rate 40 --source-addrs 127.0.0.10,127.0.0.11,127.0.0.12,127.0.0.13 \
    "$@" >"$OUT/$label-$n.json" || echo "!! $label-$n failed" >&2
  grep -E "VmHWM" "/proc/$pid/status" >"$OUT/$label-$n.hwm" || true
  kill -TERM "$pid"
  wait "$pid" || true
  rm -rf "$db"
}

for i in $(seq "$RUNS"); do
  echo "== abuse run $i/$RUNS: quiet" >&2
  run quiet "$i"
  echo "== abuse run $i/$RUNS: attacked" >&2
  # ATTACKERS=flood,squat (say) runs only those, to see which one costs what.
  run attacked "$i" --attack ${ATTACKERS:+--attackers "$ATTACKERS"}
done
python3 - "$OUT" "$RUNS" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
def load(label):
    rs = []
    for n in range(1, runs + 1):
        try:
            r = json.load(open(f"{out}/{label}-{n}.json"))["result"]
            hwm = open(f"{out}/{label}-{n}.hwm").read().split()
            r["peak_rss_mib"] = int(hwm[1]) / 1024 if len(hwm) > 1 else None
            rs.append(r)
        except Exception as e:
            print(f"skipping {label}-{n}: {e}", file=sys.stderr)
    return rs
q, a = load("quiet"), load("attacked")
def med(rs, f):
    vals = [f(r) for r in rs if f(r) is not None]
    return statistics.median(vals) if vals else None, vals
rows = [
    ("good clients' delivery p99 ms", lambda r: r["delivery"]["p99_ms"], 2),
    ("good clients' delivery p50 ms", lambda r: r["delivery"]["p50_ms"], 2),
    ("good clients' messages lost", lambda r: r["lost"], 0),
    ("server peak RSS MiB (VmHWM)", lambda r: r["peak_rss_mib"], 1),
]
print(f"\n### abuse: quiet vs attacked, {len(q)}/{len(a)} alternating runs, medians\n")
print("| | quiet | attacked | attacked/quiet | quiet runs | attacked runs |\n|---|---:|---:|---:|---|---|")
for title, f, d in rows:
    mq, vq = med(q, f)
    ma, va = med(a, f)
    fmt = lambda v: "n/a" if v is None else f"{v:.{d}f}"
    ratio = f"{ma / mq:.2f}" if mq and ma is not None else "n/a"
    print(f"| {title} | {fmt(mq)} | {fmt(ma)} | {ratio} | {', '.join(map(fmt, vq))} | {', '.join(map(fmt, va))} |")
if a and a[-1].get("attack"):
    print("\nwhat the attackers of the last attacked run did, and what the server refused:\n")
    for k, v in a[-1]["attack"].items():
        print(f"- {k}: {v}")
PY
