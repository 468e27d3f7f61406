#!/usr/bin/env bash
# The mock against a bare hyper server sending the same body (issue 17).
#
#   scripts/bench-mock.sh            # 3 interleaved runs of 5 s per measurement
#   RUNS=5 SECS=10 scripts/bench-mock.sh
#   BIN_DIR=/tmp/old scripts/bench-mock.sh   # binaries built elsewhere (no build)
#
# Starts mock-openstack (time scale 0.01, so its model is not the limit),
# boots one server, saves the mock's answer to an admin
# `GET /compute/v2.1/servers/{id}` and starts tools/bench-bare serving those
# same bytes. Then, RUNS times, alternating mock and bare: wrk at 64
# connections (throughput, and CPU per request from /proc/PID/stat) and at
# 1 connection (latency p50/p99). Prints every run, the medians and the
# ratios mock/bare. Needs wrk and curl; builds the release binaries it uses.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/bench.sh

RUNS=${RUNS:-3} SECS=${SECS:-5} CONNS=${CONNS:-64} TIME_SCALE=${TIME_SCALE:-0.01}
need cargo curl wrk python3
build_release mock-openstack bench-bare
BIN=$(bin_dir)

PM=$(free_port)
spawn mock "$BIN/mock-openstack" --listen "127.0.0.1:$PM" --time-scale "$TIME_SCALE"
MOCK_PID=$SPAWNED
wait_http "http://127.0.0.1:$PM/identity/v3" || { tail -5 "$BENCH_DIR/mock.log"; die "mock not ready"; }
TOK=$(token "http://127.0.0.1:$PM")
[ -n "$TOK" ] || die "no token from the mock"
ID=$(boot "http://127.0.0.1:$PM" "$TOK") || die "no ACTIVE server on the mock"
MOCK_URL="http://127.0.0.1:$PM/compute/v2.1/servers/$ID"
curl -sf -H "X-Auth-Token: $TOK" -o "$BENCH_DIR/body.json" "$MOCK_URL" || die "GET $MOCK_URL failed"

PB=$(free_port)
spawn bare "$BIN/bench-bare" --listen "127.0.0.1:$PB" --body "$BENCH_DIR/body.json"
BARE_PID=$SPAWNED
wait_http "http://127.0.0.1:$PB/" || { tail -5 "$BENCH_DIR/bare.log"; die "bench-bare not ready"; }
BARE_URL="http://127.0.0.1:$PB/compute/v2.1/servers/$ID"

echo "body: $(wc -c <"$BENCH_DIR/body.json") bytes; $RUNS runs x ${SECS}s per measurement, mock at time scale $TIME_SCALE"
: >"$BENCH_DIR/mock.txt"; : >"$BENCH_DIR/bare.txt"
for r in $(seq "$RUNS"); do
  wrk_run "$BENCH_DIR/mock.txt" "$CONNS" "$SECS" "$TOK" "$MOCK_URL" "$MOCK_PID"
  wrk_run "$BENCH_DIR/bare.txt" "$CONNS" "$SECS" "$TOK" "$BARE_URL" "$BARE_PID"
  wrk_run "$BENCH_DIR/mock.txt" 1 "$SECS" "$TOK" "$MOCK_URL" "$MOCK_PID"
  wrk_run "$BENCH_DIR/bare.txt" 1 "$SECS" "$TOK" "$BARE_URL" "$BARE_PID"
  echo "run $r/$RUNS done" >&2
done

python3 - "$BENCH_DIR/mock.txt" "$BENCH_DIR/bare.txt" "$CONNS" <<'PY'
import statistics as st, sys
def load(p):
    rows = [l.split() for l in open(p) if l.strip()]
    return [dict(conns=int(r[0]), rps=float(r[1]), p50=float(r[3]), p99=float(r[4]), cpu=float(r[5])) for r in rows]
mock, bare, conns = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
def col(rows, c, k): return [r[k] for r in rows if r["conns"] == c]
print(f"{'':24}{'mock':>12}{'bare':>12}{'mock/bare':>11}   runs (mock | bare)")
def line(label, c, k, unit, fmt="{:.0f}"):
    m, b = col(mock, c, k), col(bare, c, k)
    mm, bm = st.median(m), st.median(b)
    runs = " ".join(fmt.format(x) for x in m) + " | " + " ".join(fmt.format(x) for x in b)
    print(f"{label:24}{fmt.format(mm) + unit:>12}{fmt.format(bm) + unit:>12}{mm / bm:>10.2f}x   {runs}")
    return mm / bm
tput = line(f"req/s at {conns} conns", conns, "rps", "")
cpu = line(f"CPU µs/req at {conns}", conns, "cpu", "", "{:.1f}")
line("p50 µs at 1 conn", 1, "p50", "")
line("p99 µs at 1 conn", 1, "p99", "")
p50 = st.median(col(mock, 1, "p50"))
print(f"targets (issue 17): throughput >= 0.6x bare: {tput:.2f}x {'met' if tput >= 0.6 else 'NOT met'}; "
      f"CPU/request <= 2x bare: {cpu:.2f}x {'met' if cpu <= 2 else 'NOT met'}; "
      f"mock p50 at 1 connection < 150 µs: {p50:.0f} µs {'met' if p50 < 150 else 'NOT met'}")
PY
echo "load average: $(cat /proc/loadavg)"
