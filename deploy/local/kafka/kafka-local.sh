#!/usr/bin/env bash
# kafka-local.sh start|stop|status|fetch - a single-node KRaft Kafka broker from Maven Central jars.
#
# start   fetch the jars if needed, format a fresh data dir, start the broker in the background, wait
#         for its "Kafka Server started" log line, print the bootstrap address (127.0.0.1:PORT)
# stop    SIGTERM the broker by its recorded PID (SIGKILL after 30 s), remove its temp dir
# status  print "running ADDRESS pid=PID dir=DIR" (exit 0) or "not running" (exit 3)
# fetch   only download the jars into the cache (KAFKA_LIB_DIR)
#
# Each instance has its own state file, so several brokers can run at once:
#   KAFKA_INSTANCE         instance name (default "default"); state file STATE_DIR/kafka-NAME.env
#   KAFKA_STATE_FILE       explicit state file (overrides the instance name)
#   STREAM_NER_LOCAL_STATE_DIR   where instance state files live (default: deploy/local/.run)
#   KAFKA_PORT             client port; empty: a free port
#   KAFKA_CONTROLLER_PORT  controller port; empty: a free port
#   KAFKA_RUN_DIR          data + logs dir; empty: a new temp dir, removed on stop
#   KAFKA_CACHE_DIR        jar caches by version (default: deploy/local/kafka/.libs)
#   KAFKA_LIB_DIR          this version's jar cache (default: KAFKA_CACHE_DIR/VERSION)
#   KAFKA_OWNER_PID        when set, the broker is stopped once that process is gone (test runs)
#   KAFKA_VERSION, KAFKA_START_TIMEOUT (s), KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS, KAFKA_OPTS
# Needs Java 17+ and, for the first fetch, Maven 3 with access to Maven Central.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_VERSION="${KAFKA_VERSION:-4.1.2}"
KAFKA_PORT="${KAFKA_PORT:-}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-}"
KAFKA_INSTANCE="${KAFKA_INSTANCE:-default}"
STATE_DIR="${STREAM_NER_LOCAL_STATE_DIR:-$(dirname "$HERE")/.run}"
KAFKA_STATE_FILE="${KAFKA_STATE_FILE:-$STATE_DIR/kafka-$KAFKA_INSTANCE.env}"
KAFKA_CACHE_DIR="${KAFKA_CACHE_DIR:-$HERE/.libs}"
KAFKA_LIB_DIR="${KAFKA_LIB_DIR:-$KAFKA_CACHE_DIR/$KAFKA_VERSION}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"
KAFKA_JVM_PERFORMANCE_OPTS="${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

die() { echo "kafka-local: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
port_is_free() { python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.close()' "$1" 2>/dev/null; }
new_cluster_id() {  # the text form of org.apache.kafka.common.Uuid: base64url of 16 bytes, never starting with "-"
  python3 -c '
import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"):
        print(s)
        break'
}

check_java() {
  command -v "$JAVA" >/dev/null 2>&1 || die "Java 17+ is required to run the Kafka broker and '$JAVA' was not found (Debian: apt-get install openjdk-17-jre-headless)"
  local v
  v=$("$JAVA" -version 2>&1 | sed -E -n 's/.* version "([0-9]+)(\.[0-9]+)*.*".*/\1/p' | head -n1)
  [ "${v:-0}" -ge 17 ] || die "the Kafka $KAFKA_VERSION broker needs Java 17+, found '${v:-unknown}' ($JAVA)"
}

ensure_libs() {
  [ -f "$KAFKA_LIB_DIR/.complete" ] && return 0
  command -v mvn >/dev/null 2>&1 || die "Maven is required once to fetch the Kafka jars from Maven Central and 'mvn' was not found (Debian: apt-get install maven)"
  local tmp="$KAFKA_LIB_DIR.tmp.$$"
  mkdir -p "$(dirname "$KAFKA_LIB_DIR")"
  rm -rf "$tmp"
  echo "kafka-local: fetching Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIB_DIR" >&2
  if ! mvn -B -Dstyle.color=never -f "$HERE/pom.xml" dependency:copy-dependencies \
      -Dkafka.version="$KAFKA_VERSION" -Dkafka.libdir="$tmp" > "$tmp.log" 2>&1; then
    tail -n 40 "$tmp.log" >&2; rm -rf "$tmp" "$tmp.log"; die "maven could not fetch the Kafka jars"
  fi
  rm -f "$tmp.log"
  [ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ] || { rm -rf "$tmp"; die "kafka_2.13-$KAFKA_VERSION.jar missing after the fetch"; }
  touch "$tmp/.complete"
  # atomic publish: a concurrent fetch that finished first wins, ours is dropped
  mv -T "$tmp" "$KAFKA_LIB_DIR" 2>/dev/null || rm -rf "$tmp"
  [ -f "$KAFKA_LIB_DIR/.complete" ] || die "jar cache $KAFKA_LIB_DIR is incomplete; remove it and retry"
}

# is PID alive and the broker of RUN (guards against a recycled PID)?
is_ours() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' < "/proc/$1/cmdline" | grep -qF "$2/server.properties"; }

start() {
  if [ -f "$KAFKA_STATE_FILE" ]; then
    # shellcheck disable=SC1090
    . "$KAFKA_STATE_FILE"
    if is_ours "$KAFKA_PID" "$KAFKA_RUN"; then die "instance already running at $KAFKA_BOOTSTRAP (pid $KAFKA_PID); stop it first"; fi
    rm -f "$KAFKA_STATE_FILE"       # stale: its broker is gone
  fi
  check_java
  ensure_libs
  local port="${KAFKA_PORT:-$(free_port)}" cport="${KAFKA_CONTROLLER_PORT:-$(free_port)}" run owned=0
  port_is_free "$port" || die "port $port on 127.0.0.1 is already in use"
  port_is_free "$cport" || die "controller port $cport on 127.0.0.1 is already in use"
  if [ -n "${KAFKA_RUN_DIR:-}" ]; then run="$KAFKA_RUN_DIR"; mkdir -p "$run"
  else run="$(mktemp -d -t stream-ner-kafka.XXXXXX)"; owned=1; fi
  rm -rf "$run/data"
  mkdir -p "$run/data" "$run/logs" "$(dirname "$KAFKA_STATE_FILE")"
  sed -e "s|@PORT@|$port|g" -e "s|@CONTROLLER_PORT@|$cport|g" -e "s|@DATA_DIR@|$run/data|g" \
      "$HERE/server.properties.template" > "$run/server.properties"
  local cp="$KAFKA_LIB_DIR/*"       # quoted: the JVM expands the wildcard
  local log4j="-Dlog4j2.configurationFile=$HERE/log4j2.xml"
  "$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 "$log4j" -Dkafka.root.loglevel=WARN -cp "$cp" kafka.tools.StorageTool \
      format --standalone --cluster-id "$(new_cluster_id)" --config "$run/server.properties" \
      > "$run/logs/format.out" 2>&1 || { cat "$run/logs/format.out" >&2; die "storage format failed"; }
  # output to a file and stdin from /dev/null: a caller's pipes (subprocess capture_output) are not held open
  # shellcheck disable=SC2086
  nohup "$JAVA" $KAFKA_HEAP_OPTS $KAFKA_JVM_PERFORMANCE_OPTS "$log4j" -Dkafka.logs.dir="$run/logs" \
      ${KAFKA_OPTS:-} -cp "$cp" kafka.Kafka "$run/server.properties" \
      > "$run/logs/server.out" 2>&1 < /dev/null &
  local pid=$!
  printf 'KAFKA_PID=%s\nKAFKA_RUN=%s\nKAFKA_RUN_OWNED=%s\nKAFKA_ADDRESS=127.0.0.1:%s\nKAFKA_BOOTSTRAP=127.0.0.1:%s\nKAFKA_LOG=%s\n' \
      "$pid" "$run" "$owned" "$port" "$port" "$run/logs/server.out" > "$KAFKA_STATE_FILE"
  if [ -n "${KAFKA_OWNER_PID:-}" ]; then
    # watchdog: a killed owner (e.g. a test run ended with kill -9) leaves no orphan broker behind.
    # It watches the PID, not is_ours: until the child has exec'd java its command line is still this
    # script's, and a watchdog that took that for "broker gone" would then stop the broker it sees next.
    ( while kill -0 "$KAFKA_OWNER_PID" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do sleep 1; done
      if ! kill -0 "$KAFKA_OWNER_PID" 2>/dev/null && is_ours "$pid" "$run"; then
        KAFKA_STATE_FILE="$KAFKA_STATE_FILE" bash "${BASH_SOURCE[0]}" stop
      fi
    ) < /dev/null > /dev/null 2>&1 &
  fi
  local deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  until grep -q 'Kafka Server started' "$run/logs/server.out" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$run/logs/server.out" >&2
      rm -f "$KAFKA_STATE_FILE"
      die "broker exited during start-up (logs kept in $run/logs)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 40 "$run/logs/server.out" >&2
      KAFKA_KEEP_RUN_DIR=1 stop
      die "broker not ready after ${KAFKA_START_TIMEOUT}s (logs kept in $run/logs)"
    fi
    sleep 0.2
  done
  echo "127.0.0.1:$port"
}

stop() {
  [ -f "$KAFKA_STATE_FILE" ] || { echo "kafka-local: not running" >&2; return 0; }
  # shellcheck disable=SC1090
  . "$KAFKA_STATE_FILE"
  if is_ours "$KAFKA_PID" "$KAFKA_RUN"; then
    kill -TERM "$KAFKA_PID"         # shutdown hook: controlled shutdown
    for _ in $(seq 1 150); do is_ours "$KAFKA_PID" "$KAFKA_RUN" || break; sleep 0.2; done
    if is_ours "$KAFKA_PID" "$KAFKA_RUN"; then kill -KILL "$KAFKA_PID"; fi
  fi
  if [ "$KAFKA_RUN_OWNED" = 1 ] && [ -z "${KAFKA_KEEP_RUN_DIR:-}" ]; then rm -rf "$KAFKA_RUN"; fi
  rm -f "$KAFKA_STATE_FILE"
}

status() {
  if [ -f "$KAFKA_STATE_FILE" ]; then
    # shellcheck disable=SC1090
    . "$KAFKA_STATE_FILE"
    if is_ours "$KAFKA_PID" "$KAFKA_RUN"; then echo "running $KAFKA_BOOTSTRAP pid=$KAFKA_PID dir=$KAFKA_RUN"; return 0; fi
  fi
  echo "not running"
  return 3
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  fetch) check_java; ensure_libs; echo "$KAFKA_LIB_DIR" ;;
  *) echo "usage: $0 start|stop|status|fetch" >&2; exit 2 ;;
esac
