#!/usr/bin/env bash
# redis-local.sh start|stop|status - a throwaway Redis (Debian's redis-server) on 127.0.0.1.
#
# start   start redis-server in the background in a temp dir, no persistence, wait until it answers
#         PING, print its URL (redis://127.0.0.1:PORT/0)
# stop    SIGTERM by the recorded PID (SIGKILL after 10 s), remove its temp dir
# status  print "running URL pid=PID dir=DIR" (exit 0) or "not running" (exit 3)
#
# Each instance has its own state file, so several servers can run at once:
#   REDIS_INSTANCE        instance name (default "default"); state file STATE_DIR/redis-NAME.env
#   REDIS_STATE_FILE      explicit state file (overrides the instance name)
#   STREAM_NER_LOCAL_STATE_DIR   where instance state files live (default: deploy/local/.run)
#   REDIS_PORT            port; empty: a free port
#   REDIS_RUN_DIR         working dir + log; empty: a new temp dir, removed on stop
#   REDIS_OWNER_PID       when set, the server is stopped once that process is gone (test runs)
#   REDIS_TLS_CERT, REDIS_TLS_KEY   PEM files: the port speaks TLS only (rediss://), no client certificates
#   REDIS_ACLFILE         users and passwords (redis ACL file); readiness is then the log line, not PING
#   REDIS_SERVER          the redis-server binary (default: redis-server on PATH), REDIS_START_TIMEOUT (s)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REDIS_PORT="${REDIS_PORT:-}"
REDIS_INSTANCE="${REDIS_INSTANCE:-default}"
STATE_DIR="${STREAM_NER_LOCAL_STATE_DIR:-$HERE/.run}"
REDIS_STATE_FILE="${REDIS_STATE_FILE:-$STATE_DIR/redis-$REDIS_INSTANCE.env}"
REDIS_START_TIMEOUT="${REDIS_START_TIMEOUT:-20}"
REDIS_SERVER="${REDIS_SERVER:-redis-server}"
REDIS_TLS_CERT="${REDIS_TLS_CERT:-}"
REDIS_TLS_KEY="${REDIS_TLS_KEY:-}"
REDIS_ACLFILE="${REDIS_ACLFILE:-}"

die() { echo "redis-local: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
port_is_free() { python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.close()' "$1" 2>/dev/null; }

# PING over bash's /dev/tcp: no redis-cli needed
ping_ok() {
  local reply
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  IFS= read -r -t 2 reply <&3 || reply=""
  exec 3<&- 3>&-
  [ "${reply%$'\r'}" = "+PONG" ]
}

# readiness: PING, or the server's own log line when PING needs TLS or a password
ready() {
  if [ -n "$REDIS_TLS_CERT$REDIS_ACLFILE" ]; then grep -q 'Ready to accept connections' "$2/redis.log" 2>/dev/null
  else ping_ok "$1"; fi
}

# is PID alive and the server of RUN (guards against a recycled PID)?
is_ours() { [ -r "/proc/$1/cwd" ] && [ "$(readlink "/proc/$1/cwd")" = "$2" ]; }

start() {
  if [ -f "$REDIS_STATE_FILE" ]; then
    # shellcheck disable=SC1090
    . "$REDIS_STATE_FILE"
    if is_ours "$REDIS_PID" "$REDIS_RUN"; then die "instance already running at $REDIS_URL (pid $REDIS_PID); stop it first"; fi
    rm -f "$REDIS_STATE_FILE"       # stale: its server is gone
  fi
  command -v "$REDIS_SERVER" >/dev/null 2>&1 \
    || die "'$REDIS_SERVER' not found; install it with deploy/local/install-deps.sh (Debian: apt-get install redis-server)"
  local port="${REDIS_PORT:-$(free_port)}" run owned=0
  port_is_free "$port" || die "port $port on 127.0.0.1 is already in use"
  if [ -n "${REDIS_RUN_DIR:-}" ]; then mkdir -p "$REDIS_RUN_DIR"; run="$(cd "$REDIS_RUN_DIR" && pwd -P)"
  else run="$(cd "$(mktemp -d -t stream-ner-redis.XXXXXX)" && pwd -P)"; owned=1; fi
  mkdir -p "$(dirname "$REDIS_STATE_FILE")"
  local -a listen=(--port "$port") auth=()
  local tls=0 scheme=redis
  if [ -n "$REDIS_TLS_CERT" ]; then
    [ -r "$REDIS_TLS_CERT" ] && [ -r "$REDIS_TLS_KEY" ] || die "REDIS_TLS_CERT and REDIS_TLS_KEY must be readable PEM files"
    listen=(--port 0 --tls-port "$port" --tls-cert-file "$REDIS_TLS_CERT" --tls-key-file "$REDIS_TLS_KEY" --tls-auth-clients no)
    tls=1 scheme=rediss
  fi
  if [ -n "$REDIS_ACLFILE" ]; then auth=(--aclfile "$REDIS_ACLFILE"); fi
  # the server runs with its working dir = RUN, which is how stop/status recognise it
  (cd "$run" && exec nohup "$REDIS_SERVER" --bind 127.0.0.1 "${listen[@]}" "${auth[@]}" --dir "$run" --daemonize no \
      --save "" --appendonly no --protected-mode yes --logfile "$run/redis.log" \
      > "$run/redis.out" 2>&1 < /dev/null) &
  local pid=$!
  printf 'REDIS_PID=%s\nREDIS_RUN=%s\nREDIS_RUN_OWNED=%s\nREDIS_ADDRESS=127.0.0.1:%s\nREDIS_URL=%s://127.0.0.1:%s/0\nREDIS_LOG=%s\nREDIS_TLS=%s\n' \
      "$pid" "$run" "$owned" "$port" "$scheme" "$port" "$run/redis.log" "$tls" > "$REDIS_STATE_FILE"
  if [ -n "${REDIS_OWNER_PID:-}" ]; then
    # watchdog: a killed owner (e.g. a test run ended with kill -9) leaves no orphan server behind.
    # It watches the PID, not is_ours: until the child has changed directory its cwd is not RUN yet, and
    # a watchdog that took that for "server gone" would then stop the server it sees next.
    ( while kill -0 "$REDIS_OWNER_PID" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do sleep 1; done
      if ! kill -0 "$REDIS_OWNER_PID" 2>/dev/null && is_ours "$pid" "$run"; then
        REDIS_STATE_FILE="$REDIS_STATE_FILE" bash "${BASH_SOURCE[0]}" stop
      fi
    ) < /dev/null > /dev/null 2>&1 &
  fi
  local deadline=$((SECONDS + REDIS_START_TIMEOUT))
  until ready "$port" "$run"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$run/redis.out" >&2; tail -n 20 "$run/redis.log" >&2 2>/dev/null || true
      rm -f "$REDIS_STATE_FILE"
      die "redis-server exited during start-up (logs kept in $run)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      REDIS_KEEP_RUN_DIR=1 stop
      die "redis-server did not answer PING after ${REDIS_START_TIMEOUT}s (logs kept in $run)"
    fi
    sleep 0.05
  done
  echo "$scheme://127.0.0.1:$port/0"
}

stop() {
  [ -f "$REDIS_STATE_FILE" ] || { echo "redis-local: not running" >&2; return 0; }
  # shellcheck disable=SC1090
  . "$REDIS_STATE_FILE"
  if is_ours "$REDIS_PID" "$REDIS_RUN"; then
    kill -TERM "$REDIS_PID"
    for _ in $(seq 1 100); do is_ours "$REDIS_PID" "$REDIS_RUN" || break; sleep 0.1; done
    if is_ours "$REDIS_PID" "$REDIS_RUN"; then kill -KILL "$REDIS_PID"; fi
  fi
  if [ "$REDIS_RUN_OWNED" = 1 ] && [ -z "${REDIS_KEEP_RUN_DIR:-}" ]; then rm -rf "$REDIS_RUN"; fi
  rm -f "$REDIS_STATE_FILE"
}

status() {
  if [ -f "$REDIS_STATE_FILE" ]; then
    # shellcheck disable=SC1090
    . "$REDIS_STATE_FILE"
    if is_ours "$REDIS_PID" "$REDIS_RUN"; then echo "running $REDIS_URL pid=$REDIS_PID dir=$REDIS_RUN"; return 0; fi
  fi
  echo "not running"
  return 3
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
