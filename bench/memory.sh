#!/usr/bin/env bash
# Memory per held stream, for ezrouter and the bare Pingora proxy: RSS while N slow streams are
# open at once (each ~6 s long), minus the idle RSS, divided by N. With --massif, ezrouter runs
# under valgrind's heap profiler instead and the allocation sites at the peak are listed with
# their bytes per stream (use a small N: valgrind is ~50x slower).
#
#   bash bench/memory.sh [N]            (default 2000; ~30 s)
#   bash bench/memory.sh --massif [N]   (default 300; ~1 min)
#
# Everything binds 127.0.0.1 port 0 and is stopped on exit. Needs a release build
# (cargo build --release --bins --example bare_proxy --example sse_probe).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
TGT="${CARGO_TARGET_DIR:-$ROOT/target}/release"
MASSIF=0
if [ "${1:-}" = --massif ]; then MASSIF=1; shift; fi
N=${1:-$([ "$MASSIF" = 1 ] && echo 300 || echo 2000)}
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# 40 events 150 ms apart: every stream stays open ~6 s, so all N are held at once.
"$TGT/ezrouter" mock-upstream --listen 127.0.0.1:0 --chunks 40 --chunk-delay-ms 150 --ttfb-ms 100 \
  --threads 1 >"$WORK/mock.out" 2>&1 &
PIDS+=($!)
MOCK=$(wait_line "$WORK/mock.out" 'listening on ([0-9.:]+)')
sed "s/@UPSTREAM@/$MOCK/" "$ROOT/bench/ezrouter.toml.tmpl" >"$WORK/ezrouter.toml"
printf '{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}' >"$WORK/body.json"

hold() { # NAME AUTH CMD... : start the proxy, hold N streams, report
  local name=$1 auth=$2; shift 2
  "$@" >"$WORK/$name.out" 2>&1 &
  local pid=$!; PIDS+=($pid)
  local addr; addr=$(wait_line "$WORK/$name.out" 'listening on [a-z=]*([0-9.:]+)' 60)
  sleep 1
  local idle; idle=$(rss_kb "$pid")
  "$TGT/examples/sse_probe" --url "http://$addr/v1/chat/completions" --body "@$WORK/body.json" \
    --concurrency "$N" --count "$N" --ramp-ms 1000 --duration-s 1 --timeout-s 120 -H "$auth" \
    >"$WORK/$name.probe" 2>&1 &
  local probe=$!
  sleep 4 # ramp 1 s + first events: every stream is open now
  local held; held=$(rss_kb "$pid")
  wait "$probe" || true
  local ok; ok=$(grep -oE '"ok":[0-9]+' "$WORK/$name.probe" | cut -d: -f2)
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  awk -v n="$N" -v name="$name" -v i="$idle" -v h="$held" -v ok="${ok:-?}" 'BEGIN {
    printf "%-9s streams %d (ok %s)  idle RSS %.1f MB  held RSS %.1f MB  per stream %.1f KB\n",
      name, n, ok, i / 1024, h / 1024, (h - i) / n }'
}

if [ "$MASSIF" = 0 ]; then
  hold bare "authorization: Bearer ok-bench" "$TGT/examples/bare_proxy" "$MOCK" 127.0.0.1:0 2
  hold ezrouter "authorization: Bearer sk-bench" "$TGT/ezrouter" serve -c "$WORK/ezrouter.toml"
  exit 0
fi

command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
hold ezrouter-massif "authorization: Bearer sk-bench" \
  valgrind --tool=massif --threshold=1 --massif-out-file="$WORK/massif.out" \
  "$TGT/ezrouter" serve -c "$WORK/ezrouter.toml"
sleep 1
# The peak snapshot's top-level allocation sites, each named by its first Pingora or ezrouter frame.
ms_print "$WORK/massif.out" | python3 -c '
import re, sys
n = int(sys.argv[1])
text = sys.stdin.read().split("\n")
peak = next(l for l in text if "(peak)" in l)
snap = re.search(r"(\d+) \(peak\)", peak).group(1)
start = next(i for i, l in enumerate(text) if re.match(r"^\s*%s\s" % snap, l))
entries, cur = [], None
for l in text[start + 1:]:
    if re.match(r"^\s*\d+\s+[\d,]+\s+[\d,]+", l) and entries:
        break
    if l.startswith("->"):
        cur = [l]; entries.append(cur)
    elif cur is not None:
        cur.append(l)
total = 0
for e in entries:
    size = int(re.search(r"\(([\d,]+)B\)", e[0]).group(1).replace(",", ""))
    total += size
    frames = [re.sub(r"^[| ]*->[\d.]+% \([\d,]+B\) ", "", f).strip() for f in e]
    site = next((f for f in frames if re.search(r"pingora|ezrouter", f)), frames[0])
    print("%8.0f B/stream  %s" % (size / n, site[:150]))
print("%8.0f B/stream  heap in all" % (total / n))
' "$N"
