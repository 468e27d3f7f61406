# Helpers shared by scripts/bench-mock.sh and scripts/bench-proxy.sh (sourced).
# Every process started here is killed on exit; every load run is bounded.

BENCH_DIR=$(mktemp -d)
BENCH_PIDS=()
bench_cleanup() {
  local p
  for p in "${BENCH_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$BENCH_DIR"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "error: $*" >&2; exit 1; }

# need CMD...: every command must exist.
need() { local c; for c in "$@"; do command -v "$c" >/dev/null || die "$c is required"; done; }

# The directory of the release binaries: $BIN_DIR, or the workspace's
# target/release (CARGO_TARGET_DIR respected).
bin_dir() {
  if [ -n "${BIN_DIR:-}" ]; then echo "$BIN_DIR"; else echo "$(target_dir)/release"; fi
}

# The workspace's target directory (CARGO_TARGET_DIR respected).
target_dir() {
  cargo metadata --format-version 1 --no-deps 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])'
}

# build_release PKG...: release binaries of these packages (quiet unless it fails).
# With BIN_DIR set (binaries built elsewhere, e.g. to measure an older
# commit), nothing is built.
build_release() {
  local args=() p
  [ -n "${BIN_DIR:-}" ] && { echo "using the binaries in $BIN_DIR" >&2; return 0; }
  for p in "$@"; do args+=(-p "$p"); done
  echo "building release binaries: $* ..." >&2
  cargo build --release --bins "${args[@]}" >"$BENCH_DIR/build.log" 2>&1 ||
    { tail -20 "$BENCH_DIR/build.log" >&2; die "cargo build --release failed"; }
}

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1]);s.close()'; }

# spawn NAME CMD...: starts CMD in the background (log in $BENCH_DIR/NAME.log);
# its pid is in $SPAWNED.
spawn() {
  local name=$1; shift
  "$@" >"$BENCH_DIR/$name.log" 2>&1 &
  SPAWNED=$!
  BENCH_PIDS+=("$SPAWNED")
}

# wait_http URL [SECONDS]: until URL answers at all (any HTTP status).
wait_http() {
  local url=$1 t=${2:-30} i=0
  while ((i < t * 10)); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null)" != "000" ] && return 0
    sleep 0.1; i=$((i + 1))
  done
  return 1
}

# token BASE_URL: an admin token (Keystone v3 password auth, DevStack defaults).
token() {
  curl -s -i -X POST "$1/identity/v3/auth/tokens" -H 'Content-Type: application/json' \
    -d '{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"name":"Default"},"password":"secret"}}},"scope":{"project":{"name":"admin","domain":{"id":"default"}}}}}' |
    tr -d '\r' | awk -F': ' 'tolower($1)=="x-subject-token"{print $2}'
}

# boot BASE_URL TOKEN: boots one m1.tiny and prints its id once it is ACTIVE (60 s at most).
boot() {
  local id i
  id=$(curl -s -X POST "$1/compute/v2.1/servers" -H "X-Auth-Token: $2" -H 'Content-Type: application/json' \
    -d '{"server":{"name":"bench","flavorRef":"1","imageRef":"5b1c0a2e-7d3f-4e8a-9b6c-2f1e0d9c8b7a","networks":"auto"}}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["server"]["id"])') || return 1
  for i in $(seq 600); do
    curl -s "$1/compute/v2.1/servers/$id" -H "X-Auth-Token: $2" | grep -q '"status":"ACTIVE"' && { echo "$id"; return 0; }
    sleep 0.1
  done
  return 1
}

# cpu_ticks PID[,PID...]: user + system CPU time of these processes (all their
# threads), in clock ticks.
cpu_ticks() {
  local p sum=0
  for p in ${1//,/ }; do sum=$((sum + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$sum"
}

# wrk_run OUT CONNS SECONDS TOKEN URL PIDS: one bounded wrk run; appends to OUT a line
# "conns rps requests p50_us p99_us cpu_us_per_request" (CPU of the processes PIDS,
# comma-separated).
wrk_run() {
  local out=$1 conns=$2 secs=$3 tok=$4 url=$5 pid=$6 threads=1 c0 c1 log
  ((conns > 1)) && threads=2
  log="$BENCH_DIR/wrk.$$.$RANDOM.txt"
  c0=$(cpu_ticks "$pid")
  timeout $((secs + 30)) wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -H "X-Auth-Token: $tok" "$url" >"$log" 2>&1 ||
    { cat "$log" >&2; die "wrk failed on $url"; }
  c1=$(cpu_ticks "$pid")
  python3 - "$log" "$conns" "$c0" "$c1" "$(getconf CLK_TCK)" >>"$out" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
conns, c0, c1, hz = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def us(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", v)
    if not m:
        raise SystemExit(f"cannot read wrk latency {v!r}")
    return float(m[1]) * {"us": 1, "ms": 1e3, "s": 1e6}[m[2]]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text)[1])
reqs = int(re.search(r"(\d+) requests in", text)[1])
pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", text, re.M))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
if errors:
    raise SystemExit(f"{errors[1]} non-2xx answers: {text}")
cpu = (c1 - c0) / hz * 1e6 / max(reqs, 1)
print(conns, rps, reqs, us(pct["50"]), us(pct["99"]), round(cpu, 2))
PY
}
