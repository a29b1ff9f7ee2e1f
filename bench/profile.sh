#!/usr/bin/env bash
# Repeatable instruction counts per request (valgrind --tool=callgrind) for ezrouter, the bare
# Pingora proxy and nginx, on the pass-through and translated scenarios of bench/run.sh.
#
#   bash bench/profile.sh [OUT_DIR]     (default /tmp/ezrouter-profile; ~6 minutes)
#   SCENARIOS=chat,stream50 bash bench/profile.sh   (a subset of chat, stream50, chat-xlate,
#                                                   stream50-xlate; N_JSON / N_STREAM: requests)
#   TARGETS=ezrouter bash bench/profile.sh          (a subset of bare, nginx, ezrouter)
#   SLOW=1 SCENARIOS=stream50 bash bench/profile.sh (the mock sends each event 2 ms after the
#                                                   last: one event per read and per write, as
#                                                   in the slow scenarios; N_STREAM 200)
#
# Each proxy runs under callgrind with instrumentation off; per scenario: warm up, zero the
# counters, switch instrumentation on, send N requests (4 connections), switch it off, dump. The dumps are
# callgrind.out.<target>.<scenario>; `callgrind_annotate --inclusive=yes FILE` lists the hot spots
# with file:line (release builds carry line tables: `debug = 1` in Cargo.toml). Prints instructions
# per request for each scenario and target. nginx (bench/nginx.conf.tmpl, one process:
# `master_process off`) runs the pass-through scenarios when it is installed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
OUT=${1:-/tmp/ezrouter-profile}
N_JSON=${N_JSON:-2000}
SLOW=${SLOW:-0}
if [ "$SLOW" = 1 ]; then N_STREAM=${N_STREAM:-200}; MOCK_ARGS=(--chunk-delay-ms 2); LABEL=" (events 2 ms apart)"; else N_STREAM=${N_STREAM:-400}; MOCK_ARGS=(); LABEL=""; fi
mkdir -p "$OUT"
TGT="${CARGO_TARGET_DIR:-$ROOT/target}/release"
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
(cd "$ROOT" && cargo build --release --bins --example bare_proxy --example sse_probe 2>&1 | tail -1 >&2)

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; sleep 1; for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

"$TGT/ezrouter" mock-upstream --listen 127.0.0.1:0 --chunks 50 --threads 1 "${MOCK_ARGS[@]}" >"$OUT/mock.out" 2>&1 &
PIDS+=($!)
MOCK=$(wait_line "$OUT/mock.out" 'listening on ([0-9.:]+)')

sed "s/@UPSTREAM@/$MOCK/" "$ROOT/bench/ezrouter.toml.tmpl" >"$OUT/ezrouter.toml"

msg='[{"role":"user","content":"Write a haiku about proxies, then explain it in two sentences."}]'
CHAT=$(printf '{"model":"m","messages":%s,"max_tokens":256}' "$msg")
STREAM=$(printf '{"model":"m","messages":%s,"max_tokens":256,"stream":true}' "$msg")

probe() { # ADDR PATH BODY COUNT HEADER...
  local addr=$1 path=$2 body=$3 count=$4; shift 4
  local hs=() h
  for h in "$@"; do hs+=(-H "$h"); done
  "$TGT/examples/sse_probe" --url "http://$addr$path" --body "$body" --concurrency 4 --count "$count" "${hs[@]}" --timeout-s 120
}

profile() { # NAME CMD...
  local name=$1; shift
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/callgrind.out.$name.%p" "$@" \
    >"$OUT/$name.out" 2>"$OUT/$name.err" &
  local pid=$!; PIDS+=($pid)
  local addr; addr=$(wait_line "$OUT/$name.out" 'listening on [a-z=]*([0-9.:]+)' 120)
  sleep 2
  echo "$pid $addr"
}

run_scenarios() { # NAME PID ADDR AUTH SCENARIOS...
  local name=$1 pid=$2 addr=$3 auth=$4; shift 4
  local s n out ir
  for s in "$@"; do
    [[ ",${SCENARIOS:-$s}," == *",$s,"* ]] || continue
    case "$s" in
      chat) n=$N_JSON; out=$(probe "$addr" /v1/chat/completions "$CHAT" 50 "$auth" >/dev/null; callgrind_control -z "$pid" >/dev/null; callgrind_control -i on "$pid" >/dev/null; probe "$addr" /v1/chat/completions "$CHAT" "$n" "$auth") ;;
      stream50) n=$N_STREAM; out=$(probe "$addr" /v1/chat/completions "$STREAM" 20 "$auth" >/dev/null; callgrind_control -z "$pid" >/dev/null; callgrind_control -i on "$pid" >/dev/null; probe "$addr" /v1/chat/completions "$STREAM" "$n" "$auth") ;;
      chat-xlate) n=$N_JSON; out=$(probe "$addr" /anthropic/v1/messages "$(printf '{"model":"m","max_tokens":256,"messages":%s}' "$msg")" 50 "x-api-key: sk-bench" "anthropic-version: 2023-06-01" >/dev/null; callgrind_control -z "$pid" >/dev/null; callgrind_control -i on "$pid" >/dev/null; probe "$addr" /anthropic/v1/messages "$(printf '{"model":"m","max_tokens":256,"messages":%s}' "$msg")" "$n" "x-api-key: sk-bench" "anthropic-version: 2023-06-01") ;;
      stream50-xlate) n=$N_STREAM; out=$(probe "$addr" /anthropic/v1/messages "$(printf '{"model":"m","max_tokens":256,"messages":%s,"stream":true}' "$msg")" 20 "x-api-key: sk-bench" "anthropic-version: 2023-06-01" >/dev/null; callgrind_control -z "$pid" >/dev/null; callgrind_control -i on "$pid" >/dev/null; probe "$addr" /anthropic/v1/messages "$(printf '{"model":"m","max_tokens":256,"messages":%s,"stream":true}' "$msg")" "$n" "x-api-key: sk-bench" "anthropic-version: 2023-06-01") ;;
    esac
    callgrind_control -i off "$pid" >/dev/null
    callgrind_control -d "$s" "$pid" >/dev/null
    sleep 1
    local f; f=$(ls -t "$OUT"/callgrind.out."$name".*.* 2>/dev/null | head -1)
    ir=$(grep -m1 '^totals:' "$f" | awk '{print $2}')
    mv "$f" "$OUT/callgrind.out.$name.$s"
    echo "$name $s$LABEL: $(( ir / n )) instructions/request ($(echo "$out" | jq -c '{requests, errors}'))"
  done
}

TARGETS=${TARGETS:-bare,nginx,ezrouter}
wanted() { [[ ",$TARGETS," == *",$1,"* ]]; }
: >"$OUT/summary.txt"

if wanted bare; then
  read -r P A < <(profile bare "$TGT/examples/bare_proxy" "$MOCK" 127.0.0.1:0 2)
  PIDS+=("$P")
  run_scenarios bare "$P" "$A" "authorization: Bearer ok-bench" chat stream50 | tee -a "$OUT/summary.txt"
  kill -TERM "$P" 2>/dev/null || true; for _ in $(seq 1 50); do kill -0 "$P" 2>/dev/null || break; sleep 0.1; done
fi

NGINX=$(command -v nginx || true)
if ! wanted nginx; then
  :
elif [ -n "$NGINX" ]; then
  # One nginx process does all the work, so its counts are per request as the others' are.
  mkdir -p "$OUT/nginx/logs"
  port=$(free_port)
  sed -e "s|@PREFIX@|$OUT/nginx|g" -e "s|@LISTEN@|127.0.0.1:$port|g" -e "s|@UPSTREAM@|$MOCK|g" \
      -e "s|@NOFILE@|4096|g" -e "s|@WORKER_CONNECTIONS@|4000|g" -e "s|^master_process on;|master_process off;|" \
      "$ROOT/bench/nginx.conf.tmpl" >"$OUT/nginx/nginx.conf"
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/callgrind.out.nginx.%p" \
    "$NGINX" -p "$OUT/nginx" -c "$OUT/nginx/nginx.conf" -e "$OUT/nginx/error.log" >"$OUT/nginx.out" 2>"$OUT/nginx.err" &
  P=$!; PIDS+=("$P")
  wait_port "$port" 120 || { cat "$OUT/nginx.err" "$OUT/nginx/error.log" >&2; exit 1; }
  sleep 2
  run_scenarios nginx "$P" "127.0.0.1:$port" "authorization: Bearer ok-bench" chat stream50 | tee -a "$OUT/summary.txt"
  kill -TERM "$P" 2>/dev/null || true; for _ in $(seq 1 50); do kill -0 "$P" 2>/dev/null || break; sleep 0.1; done
else
  echo "nginx: not installed (EZROUTER_BENCH=1 bash scripts/setup.sh), skipped" | tee -a "$OUT/summary.txt"
fi

if wanted ezrouter; then
  read -r P A < <(profile ezrouter "$TGT/ezrouter" serve -c "$OUT/ezrouter.toml")
  PIDS+=("$P")
  run_scenarios ezrouter "$P" "$A" "authorization: Bearer sk-bench" chat stream50 chat-xlate stream50-xlate | tee -a "$OUT/summary.txt"
  kill -TERM "$P" 2>/dev/null || true; for _ in $(seq 1 50); do kill -0 "$P" 2>/dev/null || break; sleep 0.1; done
fi
echo "dumps in $OUT; e.g. callgrind_annotate --inclusive=yes $OUT/callgrind.out.ezrouter.stream50 | head -60"
