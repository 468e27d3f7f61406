#!/usr/bin/env bash
# What the P2P agent adds in front of one OpenStack, against nginx as a plain
# keep-alive reverse proxy (issue 17).
#
#   scripts/bench-proxy.sh           # 3 interleaved runs of 5 s per measurement
#   RUNS=5 SECS=10 scripts/bench-proxy.sh
#   BIN_DIR=/tmp/old scripts/bench-proxy.sh  # binaries built elsewhere (no build)
#
# Starts mock-openstack (time scale 0.001), nginx in front of it
# (`worker_processes auto`, upstream keepalive, HTTP/1.1) and p2p-agent in
# front of it (a one-member federation, random cluster secret). Boots one
# server directly and one through the agent, then, RUNS times and alternating
# direct / nginx / agent: wrk `GET /compute/v2.1/servers/{id}` at 1
# connection (p50, p99) and at 64 connections (throughput; CPU per request
# of the proxy from /proc/PID/stat). Prints the latency each proxy adds over
# the direct call (per run, then the median), the ratios agent/nginx and the
# issue's targets. Installs nginx and wrk with apt-get when missing (root);
# builds the release binaries it uses.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/bench.sh

RUNS=${RUNS:-3} SECS=${SECS:-5} CONNS=${CONNS:-64} TIME_SCALE=${TIME_SCALE:-0.001}
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
  echo "installing nginx and wrk ..." >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk; } >"$BENCH_DIR/apt.log" 2>&1 ||
    { tail -5 "$BENCH_DIR/apt.log" >&2; die "cannot install nginx and wrk (apt-get, as root)"; }
fi
need cargo curl wrk nginx python3
build_release mock-openstack agent
BIN=$(bin_dir)

PM=$(free_port) PN=$(free_port) PA=$(free_port) PG=$(free_port)
spawn mock "$BIN/mock-openstack" --listen "127.0.0.1:$PM" --time-scale "$TIME_SCALE"
MOCK_PID=$SPAWNED
wait_http "http://127.0.0.1:$PM/identity/v3" || { tail -5 "$BENCH_DIR/mock.log" >&2; die "mock not ready"; }

# A one-member federation: the secret is drawn here and lives only in this run.
P2P_CLUSTER_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n') \
  spawn agent "$BIN/p2p-agent" --name bench-1 --listen "127.0.0.1:$PA" \
  --cloudlet-auth-url "http://127.0.0.1:$PM/identity" --gossip-listen "127.0.0.1:$PG"
AGENT_PID=$SPAWNED
wait_http "http://127.0.0.1:$PA/identity/v3" 60 || { tail -5 "$BENCH_DIR/agent.log" >&2; die "agent not ready"; }

mkdir -p "$BENCH_DIR/nginx"
cat >"$BENCH_DIR/nginx/nginx.conf" <<CONF
worker_processes auto; daemon off; pid $BENCH_DIR/nginx/pid; error_log $BENCH_DIR/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  upstream mock { server 127.0.0.1:$PM; keepalive 128; }
  server {
    listen 127.0.0.1:$PN;
    location / {
      proxy_pass http://mock; proxy_http_version 1.1;
      proxy_set_header Connection ""; proxy_set_header Host \$host;
    }
  }
}
CONF
spawn nginx nginx -c "$BENCH_DIR/nginx/nginx.conf" -p "$BENCH_DIR/nginx"
NGINX_PID=$SPAWNED
wait_http "http://127.0.0.1:$PN/identity/v3" || { cat "$BENCH_DIR/nginx/error.log" >&2; die "nginx not ready"; }
# CPU of nginx = master + workers.
NGINX_PIDS=$(echo "$NGINX_PID" $(pgrep -P "$NGINX_PID") | tr ' ' ',')

MT=$(token "http://127.0.0.1:$PM") AT=$(token "http://127.0.0.1:$PA")
[ -n "$MT" ] && [ -n "$AT" ] || die "no token (mock: ${MT:+ok}, agent: ${AT:+ok})"
MID=$(boot "http://127.0.0.1:$PM" "$MT") || die "no ACTIVE server on the mock"
AID=$(boot "http://127.0.0.1:$PA" "$AT") || die "no ACTIVE server through the agent"
DIRECT="http://127.0.0.1:$PM/compute/v2.1/servers/$MID"
NGINX="http://127.0.0.1:$PN/compute/v2.1/servers/$MID"
AGENT="http://127.0.0.1:$PA/compute/v2.1/servers/$AID"

echo "$RUNS runs x ${SECS}s per measurement; mock at time scale $TIME_SCALE; nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), $(nproc) cores"
: >"$BENCH_DIR/direct.txt"; : >"$BENCH_DIR/nginx.txt"; : >"$BENCH_DIR/agent.txt"
for r in $(seq "$RUNS"); do
  for c in 1 "$CONNS"; do
    wrk_run "$BENCH_DIR/direct.txt" "$c" "$SECS" "$MT" "$DIRECT" "$MOCK_PID"
    wrk_run "$BENCH_DIR/nginx.txt" "$c" "$SECS" "$MT" "$NGINX" "$NGINX_PIDS"
    wrk_run "$BENCH_DIR/agent.txt" "$c" "$SECS" "$AT" "$AGENT" "$AGENT_PID"
  done
  echo "run $r/$RUNS done" >&2
done

python3 - "$BENCH_DIR" "$CONNS" <<'PY'
import statistics as st, sys
d, conns = sys.argv[1], int(sys.argv[2])
def load(name):
    rows = [l.split() for l in open(f"{d}/{name}.txt") if l.strip()]
    return [dict(conns=int(r[0]), rps=float(r[1]), p50=float(r[3]), p99=float(r[4]), cpu=float(r[5])) for r in rows]
direct, nginx, agent = load("direct"), load("nginx"), load("agent")
one = lambda rows: [r for r in rows if r["conns"] == 1]
many = lambda rows: [r for r in rows if r["conns"] == conns]
med = st.median
print("latency at 1 connection, µs (runs):")
for k in ("p50", "p99"):
    dd, nn, aa = [x[k] for x in one(direct)], [x[k] for x in one(nginx)], [x[k] for x in one(agent)]
    print(f"  {k}: direct {dd}  nginx {nn}  agent {aa}")
    na = [n - x for n, x in zip(nn, dd)]
    ag = [a - x for a, x in zip(aa, dd)]
    print(f"  {k} added: nginx {[round(v) for v in na]} -> {med(na):.0f} µs; agent {[round(v) for v in ag]} -> {med(ag):.0f} µs")
print(f"throughput at {conns} connections, req/s (runs) and CPU µs per request of the proxy:")
for name, rows in (("direct", direct), ("nginx", nginx), ("agent", agent)):
    m = many(rows)
    print(f"  {name:6} {med([x['rps'] for x in m]):8.0f} req/s {[round(x['rps']) for x in m]}  "
          f"CPU {med([x['cpu'] for x in m]):6.1f} µs/req {[x['cpu'] for x in m]}")
ratios = {}
for k in ("p50", "p99"):
    na = med([n[k] - x[k] for n, x in zip(one(nginx), one(direct))])
    ag = med([a[k] - x[k] for a, x in zip(one(agent), one(direct))])
    ratios[k] = ag / na if na > 0 else float("inf")
tput = med([x["rps"] for x in many(agent)]) / med([x["rps"] for x in many(nginx)])
cpu = med([x["cpu"] for x in many(agent)]) / med([x["cpu"] for x in many(nginx)])
print(f"agent/nginx: added latency p50 {ratios['p50']:.2f}x, p99 {ratios['p99']:.2f}x; "
      f"throughput {tput:.2f}x; CPU per request {cpu:.2f}x")
ok = lambda b: "met" if b else "NOT met"
print(f"targets (issue 17): added latency <= 1.5x nginx at p50 {ok(ratios['p50'] <= 1.5)}, "
      f"at p99 {ok(ratios['p99'] <= 1.5)}; throughput >= 0.8x nginx {ok(tput >= 0.8)}")
PY
echo "load average: $(cat /proc/loadavg)"
