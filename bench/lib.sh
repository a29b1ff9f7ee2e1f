# Helpers shared by bench/run.sh, bench/profile.sh and bench/memory.sh (sourced, not run).

# wait_line FILE REGEX [SECONDS]: prints the first capture group of the first line of FILE that
# matches REGEX, waiting up to SECONDS (default 10; more for a process under valgrind). On a
# timeout it shows FILE and its .err sibling and fails.
wait_line() {
  local file=$1 regex=$2 tries=$(( ${3:-10} * 20 )) i line
  for i in $(seq 1 "$tries"); do
    line=$(grep -m1 -oE "$regex" "$file" 2>/dev/null || true)
    [ -n "$line" ] && { echo "$line" | sed -E "s/$regex/\1/"; return 0; }
    sleep 0.05
  done
  echo "timed out waiting for '$regex' in $file:" >&2; cat "$file" "${file%.out}.err" >&2 2>/dev/null || true
  return 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_port PORT [SECONDS]: waits until 127.0.0.1:PORT accepts a connection (default 5 s).
wait_port() {
  local i
  for i in $(seq 1 $(( ${2:-5} * 20 ))); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}
