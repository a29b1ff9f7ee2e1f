#!/usr/bin/env bash
# ezrouter load benchmark: one command, everything on 127.0.0.1, everything stops by itself.
#
#   bash bench/run.sh            # full run (~12 minutes on 2 cores, plus the release build)
#   bash bench/run.sh --quick    # one shorter run per cell, same matrix (~4 minutes)
#
# Options: --quick, --duration S (seconds per measured run), --repeat N (runs per cell, the
#          report takes medians; default 3, 1 with --quick), --tail-repeat N (runs of the cells
#          whose p99 is a target: c=1 chat and stream50, slow at c=256; default 2 x repeat),
#          --no-build, --no-10k,
#          --phases fast,slow,10k (a subset), --scenarios chat,stream50,... (a subset),
#          --conc 1,64 (concurrency levels), --out DIR (default bench/results).
#
# Targets, all in front of the same mock upstream (`ezrouter mock-upstream`):
#   direct   the mock itself (the floor: no proxy hop)
#   nginx    Debian nginx, plain reverse proxy (bench/nginx.conf.tmpl)
#   bare     a bare Pingora proxy with only `upstream_peer` (examples/bare_proxy.rs)
#   ezrouter the gateway (auth, probe, routing, own upstream exchange)
# Scenarios:
#   chat         non-stream OpenAI -> OpenAI pass-through              (wrk)
#   chat-xlate   non-stream Anthropic client -> OpenAI upstream        (wrk, ezrouter only)
#   stream50     50-chunk SSE stream, pass-through                     (examples/sse_probe.rs)
#   stream50-xlate  the same stream, Anthropic client -> OpenAI upstream (ezrouter only)
#   slow         100 ms to the first token, 50 chunks 5 ms apart, pass-through
#   slow-xlate   the same, translated (ezrouter only)
#   slow@10k     `slow` with ~10,000 concurrent streams, one per connection (nginx, bare, ezrouter);
#                10,000 needs `ulimit -n` >= 20,200 (a proxy holds 2 fds per stream), else fewer
# at concurrency 1, 64 and 256. Per run: req/s, latency p50/p99, stream TTFB p50/p99, inter-chunk
# gap p99, CPU microseconds per request of the proxy process(es) and of the mock (utime+stime
# deltas from /proc/PID/stat), peak RSS (VmHWM), errors, truncated and stalled streams, the VM's
# steal time during the run (/proc/stat: the hypervisor ran something else). Idle RSS
# is read once per proxy after start-up.
#
# Results: bench/results/<date>-<host>.{md,json} (and the table on stdout). KEEP_WORK=1 keeps the
# work directory (configs, every process's logs, and the per-request timings of each stream run,
# `samples.TARGET.SCENARIO.cCONC.REP`: start_us ttfb_us latency_us nth) for debugging.
# Needs nginx and wrk: `EZROUTER_BENCH=1 bash scripts/setup.sh` installs them (Debian).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
ARGS="$*"
QUICK=0
DURATION=""
BUILD=1
PHASES="fast,slow,10k"
ONLY_SCENARIOS=""
CONCS_OPT=""
OUT="$ROOT/bench/results"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --duration) DURATION="$2"; shift ;;
    --repeat) REPEAT="$2"; shift ;;
    --tail-repeat) TAIL_REPEAT="$2"; shift ;;
    --no-build) BUILD=0 ;;
    --no-10k) PHASES=${PHASES//,10k/} ;;
    --phases) PHASES="$2"; shift ;;
    --scenarios) ONLY_SCENARIOS="$2"; shift ;;
    --conc) CONCS_OPT="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
# Every (scenario, concurrency) cell runs the targets one after another, REPEAT times over, so
# noise on this shared box hits all targets alike; the report takes medians over the repeats.
if [ "$QUICK" = 1 ]; then
  DURATION=${DURATION:-2}; WARMUP=0.5; REPEAT=${REPEAT:-1}
else
  DURATION=${DURATION:-3}; WARMUP=1; REPEAT=${REPEAT:-3}
fi
# A p99 over a few seconds moves with one scheduling stall of the shared box (wrk also corrects
# for coordinated omission, so one 20 ms stall at c=1 adds a few hundred samples): the cells
# that the targets compare at p99 get more runs, so their median is not one stall's verdict.
TAIL_REPEAT=${TAIL_REPEAT:-$(( REPEAT * 2 ))}
CONCS=${CONCS_OPT:-1 64 256}
CONCS=${CONCS//,/ }

log() { echo "[bench $(date +%H:%M:%S)] $*" >&2; }

command -v nginx >/dev/null && command -v wrk >/dev/null || {
  log "installing nginx and wrk (scripts/setup.sh)"
  EZROUTER_BENCH=1 bash "$ROOT/scripts/setup.sh"
}
NGINX=$(command -v nginx)

# The revision measured: taken before the build (others may commit while the benchmark runs).
REV=$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)
if [ "$BUILD" = 1 ]; then
  log "building release binaries ($REV)"
  (cd "$ROOT" && cargo build --release --bins --example bare_proxy --example sse_probe 2>&1 | tail -2 >&2)
fi
TGT="${CARGO_TARGET_DIR:-$ROOT/target}/release"
EZR="$TGT/ezrouter"
BARE="$TGT/examples/bare_proxy"
PROBE="$TGT/examples/sse_probe"

# File descriptors: a proxy holds two per stream (client + upstream).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
N10K=$(( (NOFILE - 200) / 2 ))
[ "$N10K" -gt 10000 ] && N10K=10000
CLK_TCK=$(getconf CLK_TCK)

WORK=$(mktemp -d /tmp/ezrouter-bench.XXXXXX)
chmod 755 "$WORK" # nginx workers may run as nobody
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "kept $WORK (logs of every process)" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# Processes

stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

declare -A ADDR PID
# start_mock NAME ARGS...
start_mock() {
  local name=$1; shift
  "$EZR" mock-upstream --listen 127.0.0.1:0 --threads 2 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  PID[$name]=$!; PIDS+=($!)
  ADDR[$name]=$(wait_line "$WORK/$name.out" 'mock-upstream listening on ([0-9.:]+)')
}

start_bare() { # UPSTREAM
  "$BARE" "$1" 127.0.0.1:0 2 >"$WORK/bare.out" 2>"$WORK/bare.err" &
  PID[bare]=$!; PIDS+=($!)
  ADDR[bare]=$(wait_line "$WORK/bare.out" 'bare-proxy listening on ([0-9.:]+)')
  wait_port "${ADDR[bare]##*:}"
}

start_nginx() { # UPSTREAM
  local prefix="$WORK/nginx" port
  rm -rf "$prefix"; mkdir -p "$prefix/logs"
  port=$(free_port)
  sed -e "s|@PREFIX@|$prefix|g" -e "s|@LISTEN@|127.0.0.1:$port|g" -e "s|@UPSTREAM@|$1|g" \
      -e "s|@NOFILE@|$NOFILE|g" -e "s|@WORKER_CONNECTIONS@|$((NOFILE - 100))|g" \
      "$ROOT/bench/nginx.conf.tmpl" >"$prefix/nginx.conf"
  "$NGINX" -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" >"$WORK/nginx.out" 2>"$WORK/nginx.err" &
  PID[nginx]=$!; PIDS+=($!)
  ADDR[nginx]="127.0.0.1:$port"
  wait_port "$port" || { cat "$WORK/nginx.err" "$prefix/error.log" >&2; return 1; }
}

start_ezrouter() { # UPSTREAM
  sed "s/@UPSTREAM@/$1/" "$ROOT/bench/ezrouter.toml.tmpl" >"$WORK/ezrouter.toml"
  "$EZR" serve -c "$WORK/ezrouter.toml" >"$WORK/ezrouter.out" 2>"$WORK/ezrouter.err" &
  PID[ezrouter]=$!; PIDS+=($!)
  ADDR[ezrouter]=$(wait_line "$WORK/ezrouter.out" 'listening on proxy=([0-9.:]+)')
  wait_port "${ADDR[ezrouter]##*:}"
}

stop_proxies() {
  local t
  for t in nginx bare ezrouter; do [ -n "${PID[$t]:-}" ] && stop_pid "${PID[$t]}"; PID[$t]=""; done
}

# pids_of TARGET: the process and its children (nginx: master + workers).
pids_of() {
  local pid=${PID[$1]}
  echo "$pid"
  [ "$1" = nginx ] && pgrep -P "$pid" || true
}

# cpu_ticks PID...: utime + stime summed.
cpu_ticks() {
  local sum=0 pid f
  for pid in "$@"; do
    f=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    f=${f##*) }
    set -- $f
    sum=$(( sum + ${12} + ${13} ))
  done
  echo "$sum"
}

# cpu_ns PID...: on-CPU nanoseconds of every thread (/proc/PID/task/*/schedstat): the same
# accounting as utime+stime, without the 10 ms tick granularity (slow streams at c=1 need it).
cpu_ns() {
  local sum=0 pid f a
  for pid in "$@"; do
    for f in /proc/"$pid"/task/*/schedstat; do
      read -r a _ <"$f" 2>/dev/null && sum=$(( sum + a ))
    done
  done
  echo "$sum"
}

# steal_ticks: time the hypervisor ran something else on this VM's CPUs (/proc/stat), all CPUs.
# A c=1 p99 moves with the host's stalls: a run's steal says whether one hit it.
steal_ticks() { awk '$1 == "cpu" {print $9; exit}' /proc/stat; }

# mem_kb FIELD PID...: VmHWM / VmRSS summed, kB.
mem_kb() {
  local field=$1 sum=0 pid v; shift
  for pid in "$@"; do
    v=$(awk -v f="$field:" '$1==f {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    sum=$(( sum + ${v:-0} ))
  done
  echo "$sum"
}

# ---------------------------------------------------------------------------------------------
# Requests

msg='[{"role":"user","content":"Write a haiku about proxies, then explain it in two sentences."}]'
printf '{"model":"m","messages":%s,"max_tokens":256}' "$msg" >"$WORK/chat.json"
printf '{"model":"m","messages":%s,"max_tokens":256,"stream":true}' "$msg" >"$WORK/stream.json"
printf '{"model":"m","max_tokens":256,"messages":%s}' "$msg" >"$WORK/msg.json"
printf '{"model":"m","max_tokens":256,"messages":%s,"stream":true}' "$msg" >"$WORK/msg-stream.json"

RESULTS="$WORK/results.jsonl"
: >"$RESULTS"

# run_load TARGET SCENARIO CONC SECONDS [RAMP_MS]: prints the load tool's JSON line.
run_load() {
  local target=$1 scenario=$2 conc=$3 secs=$4 ramp=${5:-0}
  local addr=${ADDR[$target]} path hdrs body tool
  case "$scenario" in
    *-xlate) path=/anthropic/v1/messages; hdrs="x-api-key: sk-bench|anthropic-version: 2023-06-01" ;;
    *) path=/v1/chat/completions
       if [ "$target" = ezrouter ]; then hdrs="authorization: Bearer sk-bench"; else hdrs="authorization: Bearer ok-bench"; fi ;;
  esac
  case "$scenario" in
    chat) body=chat.json; tool=wrk ;;
    chat-xlate) body=msg.json; tool=wrk ;;
    stream50|slow*) body=stream.json; tool=probe ;;
    stream50-xlate) body=msg-stream.json; tool=probe ;;
  esac
  case "$scenario" in slow*-xlate) body=msg-stream.json ;; esac
  if [ "$tool" = wrk ]; then
    local secs_int; secs_int=$(python3 -c "import math;print(max(1,math.ceil($secs)))")
    BENCH_PATH=$path BENCH_BODY="$WORK/$body" BENCH_HEADERS=$hdrs \
      timeout $((secs_int + 60)) wrk -t1 -c"$conc" -d"${secs_int}s" --timeout 30s -s "$ROOT/bench/post.lua" "http://$addr" \
      | grep -E '^\{' | tail -1
  else
    local args=(--url "http://$addr$path" --body "@$WORK/$body" --concurrency "$conc" --duration-s "$secs" --ramp-ms "$ramp" --timeout-s 60)
    [ -n "${COUNT:-}" ] && args+=(--count "$COUNT")
    # Per-request timings of the measured run (the warm-up's are overwritten), to see a tail's source.
    [ "${KEEP_WORK:-0}" = 1 ] && args+=(--samples "$WORK/samples.$target.$scenario.c$conc.${REP:-1}")
    local IFS='|' h
    for h in $hdrs; do args+=(-H "$h"); done
    unset IFS
    timeout $(( ${secs%.*} + ramp / 1000 + 120 )) "$PROBE" "${args[@]}"
  fi
}

# measure TARGET SCENARIO CONC [RAMP_MS]: warm up, then one measured run; appends a JSON record.
measure() {
  local target=$1 scenario=$2 conc=$3 ramp=${4:-0}
  local pids mock=${PID[$MOCK]} c0 c1 k0 k1 m0 m1 s0 s1 t0 t1 load secs=$DURATION
  if [ "$target" = direct ]; then pids=(); else mapfile -t pids < <(pids_of "$target"); fi
  [ "$WARMUP" = 0 ] || run_load "$target" "$scenario" "$conc" "$WARMUP" "$ramp" >/dev/null || true
  k0=$(cpu_ticks "${pids[@]}"); c0=$(cpu_ns "${pids[@]}"); m0=$(cpu_ns "$mock"); s0=$(steal_ticks); t0=$(date +%s.%N)
  load=$(run_load "$target" "$scenario" "$conc" "$secs" "$ramp") || load='{"requests":0,"errors":-1}'
  k1=$(cpu_ticks "${pids[@]}"); c1=$(cpu_ns "${pids[@]}"); m1=$(cpu_ns "$mock"); s1=$(steal_ticks); t1=$(date +%s.%N)
  [ -n "$load" ] || load='{"requests":0,"errors":-1}'
  local hwm=0 rss=0
  if [ ${#pids[@]} -gt 0 ]; then hwm=$(mem_kb VmHWM "${pids[@]}"); rss=$(mem_kb VmRSS "${pids[@]}"); fi
  local rec
  rec=$(jq -c --arg t "$target" --arg s "$scenario" --argjson c "$conc" --argjson rep "${REP:-1}" \
    --argjson pc "$(( c1 - c0 ))" --argjson mc "$(( m1 - m0 ))" --argjson pk "$(( k1 - k0 ))" --argjson tck "$CLK_TCK" \
    --argjson hwm "$hwm" --argjson rss "$rss" --arg t0 "$t0" --arg t1 "$t1" --argjson st "$(( s1 - s0 ))" \
    '{target:$t, scenario:$s, concurrency:$c, rep:$rep} + . + {
       wall_s: (($t1|tonumber) - ($t0|tonumber)),
       proxy_cpu_s: ($pc / 1e9), proxy_cpu_ticks_s: ($pk / $tck), mock_cpu_s: ($mc / 1e9),
       steal_ms: ($st * 1000 / $tck),
       proxy_cpu_us_per_req: (if $t == "direct" or .requests == 0 then null else ($pc / 1e3 / .requests) end),
       mock_cpu_us_per_req: (if .requests == 0 then null else ($mc / 1e3 / .requests) end),
       peak_rss_kb: (if $t == "direct" then null else $hwm end), rss_kb: (if $t == "direct" then null else $rss end)}' <<<"$load")
  echo "$rec" >>"$RESULTS"
  log "$(jq -r '"\(.scenario) c=\(.concurrency) \(.target): \(.rps) req/s, p50 \(.latency_us.p50) us, p99 \(.latency_us.p99) us, cpu/req \(.proxy_cpu_us_per_req // "-") us, errors \(.errors)"' <<<"$rec")"
}

idle_rss() { # TARGET PHASE
  sleep 1
  local pids; mapfile -t pids < <(pids_of "$1")
  jq -nc --arg t "$1" --arg p "$2" --argjson rss "$(mem_kb VmRSS "${pids[@]}")" \
    '{kind:"idle", target:$t, phase:$p, idle_rss_kb:$rss}' >>"$RESULTS"
}

# ---------------------------------------------------------------------------------------------
has_phase() { [[ ",$PHASES," == *",$1,"* ]]; }
# repeats SCENARIO CONC: runs for that cell.
repeats() {
  case "$1@$2" in
    chat@1|stream50@1|slow@256) echo "$TAIL_REPEAT" ;;
    *) echo "$REPEAT" ;;
  esac
}
wanted() { [ -z "$ONLY_SCENARIOS" ] || [[ ",$ONLY_SCENARIOS," == *",$1,"* ]]; }

# Phase 1: fast mock (no delays), 50 text deltas per answer.
BEGIN=$(date +%s)
log "work dir $WORK, ulimit -n $NOFILE, duration ${DURATION}s per run, phases $PHASES"
if has_phase fast; then
start_mock fast --chunks 50
MOCK=fast; ADDR[direct]=${ADDR[fast]}
start_nginx "${ADDR[fast]}"; start_bare "${ADDR[fast]}"; start_ezrouter "${ADDR[fast]}"
for t in nginx bare ezrouter; do idle_rss "$t" fast; done
log "mock ${ADDR[fast]}  nginx ${ADDR[nginx]}  bare ${ADDR[bare]}  ezrouter ${ADDR[ezrouter]}"

for scenario in chat chat-xlate stream50 stream50-xlate; do
  wanted "$scenario" || continue
  for c in $CONCS; do
    case "$scenario" in
      *-xlate) targets="ezrouter" ;;
      *) targets="direct nginx bare ezrouter" ;;
    esac
    for rep in $(seq 1 "$(repeats "$scenario" "$c")"); do
      for t in $targets; do REP=$rep measure "$t" "$scenario" "$c"; done
    done
  done
done
stop_proxies
fi

# Phase 2: slow realistic streams (100 ms to the first token, 50 chunks 5 ms apart).
if has_phase slow || has_phase 10k; then
start_mock slow --chunks 50 --chunk-delay-ms 5 --ttfb-ms 100
MOCK=slow; ADDR[direct]=${ADDR[slow]}
start_nginx "${ADDR[slow]}"; start_bare "${ADDR[slow]}"; start_ezrouter "${ADDR[slow]}"
has_phase fast || for t in nginx bare ezrouter; do idle_rss "$t" slow; done
has_phase slow && for scenario in slow slow-xlate; do
  wanted "$scenario" || continue
  for c in $CONCS; do
    case "$scenario" in
      *-xlate) targets="ezrouter" ;;
      *) targets="direct nginx bare ezrouter" ;;
    esac
    for rep in $(seq 1 "$(repeats "$scenario" "$c")"); do
      for t in $targets; do REP=$rep measure "$t" "$scenario" "$c"; done
    done
  done
done
if has_phase 10k; then
  log "slow streams at $N10K concurrent connections (ulimit -n $NOFILE)"
  # One stream per connection, all connections opened over 2 s: N streams in flight at once.
  # (On 2 cores this is far past saturation for every target: 50 events in 250 ms per stream.)
  for t in nginx bare ezrouter; do
    WARMUP_SAVE=$WARMUP; WARMUP=0; COUNT=$N10K
    measure "$t" slow "$N10K" 2000
    WARMUP=$WARMUP_SAVE; COUNT=""
  done
fi
stop_proxies
fi
END=$(date +%s)

# ---------------------------------------------------------------------------------------------
# Report
mkdir -p "$OUT"
STAMP="$(date +%Y-%m-%d)-$(hostname -s 2>/dev/null || hostname)"
MODEL=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
jq -nc --arg nproc "$(nproc)" --arg cpu "$MODEL" --arg kernel "$(uname -r)" \
  --arg nginx "$("$NGINX" -v 2>&1 | sed 's/.*: //')" --arg wrk "$(wrk -v 2>&1 | head -1 | awk '{print $2}')" \
  --arg rev "$REV" \
  --arg cmd "bash bench/run.sh $ARGS" --argjson dur "$DURATION" --argjson repeat "$REPEAT" --argjson tail_repeat "$TAIL_REPEAT" \
  --argjson secs "$(( END - BEGIN ))" --argjson n10k "$N10K" --argjson nofile "$NOFILE" \
  '{kind:"meta", nproc:($nproc|tonumber), cpu:$cpu, kernel:$kernel, nginx:$nginx, wrk:$wrk, git:$rev,
    command:$cmd, duration_s:$dur, repeat:$repeat, tail_repeat:$tail_repeat, total_s:$secs, n10k:$n10k, nofile:$nofile,
    date:(now|todate)}' >>"$RESULTS"
python3 "$ROOT/bench/report.py" "$RESULTS" "$OUT/$STAMP"
log "wrote $OUT/$STAMP.md and $OUT/$STAMP.json"
