#!/bin/sh
# Measures mediamtx-sim's startup time and idle CPU with N paths (default 64).
#
#   sim/bench.sh                 # builds the dev binary, 64 paths, 10 s idle
#   RECORD=yes N=64 sim/bench.sh # same, with every path recording
#   BIN=/path/to/mediamtx-sim sim/bench.sh
#
# Startup = from exec to the first 200 answer of GET /v3/paths/list (all listeners
# bound, all path objects created; includes curl's polling), and the sim's own
# measure (/state.startup_ms: from main() to the same point). Idle CPU = (utime+stime) of the process over
# IDLE seconds, after the paths are ready, as a percentage of one core.
set -eu
N=${N:-64}
IDLE=${IDLE:-10}
RECORD=${RECORD:-no}
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${BIN:-}" ]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-sim}
  (cd "$root" && cargo build -q -p mediamtx-sim)
  BIN=$CARGO_TARGET_DIR/debug/mediamtx-sim
fi
dir=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"; }
# Also on signals (e.g. SIGPIPE when piped into `head`), so no sim is left behind.
trap cleanup EXIT
trap 'cleanup; exit 1' INT TERM HUP PIPE
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
{
  echo "api: yes"
  echo "apiAddress: 127.0.0.1:$port"
  echo "rtspAddress: 127.0.0.1:0"
  echo "hlsAddress: 127.0.0.1:0"
  echo "webrtcAddress: 127.0.0.1:0"
  echo "pathDefaults:"
  echo "  record: $RECORD"
  echo "  recordPath: $dir/rec/%path/%Y-%m-%d_%H-%M-%S-%f"
  echo "paths:"
  i=1
  while [ $i -le "$N" ]; do
    echo "  cam_$i:"
    echo "    source: rtsp://10.0.0.$i:554/stream"
    i=$((i + 1))
  done
} > "$dir/mediamtx.yml"

t0=$(date +%s%N)
MTXSIM_CONTROL=127.0.0.1:0 "$BIN" "$dir/mediamtx.yml" > "$dir/out.log" &
pid=$!
while ! curl -sf -o /dev/null "http://127.0.0.1:$port/v3/paths/list"; do
  sleep 0.002
done
t1=$(date +%s%N)
ctl=$(grep -o 'control listener on [0-9.:]*' "$dir/out.log" | awk '{print $NF}')
inner=$(curl -s "http://$ctl/state" | python3 -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["startup_ms"])')
echo "startup: $(( (t1 - t0) / 1000000 )) ms from exec to the first API answer, ${inner} ms inside the sim (main to listeners bound and $N paths created)"

# Wait until every path is ready (0.5 s simulated connect), then measure idle CPU.
while [ "$(curl -s "http://127.0.0.1:$port/v3/paths/list" | grep -o '"ready":true' | wc -l)" -lt "$N" ]; do
  sleep 0.1
done
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
c0=$(ticks)
sleep "$IDLE"
c1=$(ticks)
echo "idle CPU: $(awk -v d=$((c1 - c0)) -v hz="$hz" -v s="$IDLE" 'BEGIN{printf "%.2f", 100*d/hz/s}')% of one core over ${IDLE} s (record: $RECORD)"
echo "RSS: $(awk '/VmRSS/{print $2, $3}' "/proc/$pid/status")"
kill -INT $pid
wait $pid || true
