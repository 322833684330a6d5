#!/usr/bin/env bash
# kafka-local.sh start|stop|status|fetch|stop-node|start-node - a local KRaft Kafka cluster (one node by
# default) from Maven Central jars.
#
# start       fetch the jars if needed, format fresh data dirs, start every node in the background (each a
#             broker and a controller, static quorum), wait for their "Kafka Server started" log lines, print
#             the bootstrap servers (127.0.0.1:PORT,...)
# stop        SIGTERM every node by its recorded PID (SIGKILL after 30 s), remove the temp dir
# status      print "running BOOTSTRAP pid=PID dir=DIR" (exit 0: at least one node runs) or "not running" (3)
# fetch       only download the jars into the cache (KAFKA_LIB_DIR)
# stop-node   stop node KAFKA_NODE with signal KAFKA_SIGNAL (TERM: controlled shutdown, or KILL); its data is kept
# start-node  start node KAFKA_NODE again on its data and wait until it serves
#
# Each instance has its own state file, so several clusters can run at once:
#   KAFKA_INSTANCE         instance name (default "default"); state file STATE_DIR/kafka-NAME.env
#   KAFKA_STATE_FILE       explicit state file (overrides the instance name)
#   STREAM_NER_LOCAL_STATE_DIR   where instance state files live (default: deploy/local/.run)
#   KAFKA_BROKERS          nodes in the cluster (default 1)
#   KAFKA_PORT             client port of node 1, node N gets PORT+N-1; empty: free ports
#   KAFKA_CONTROLLER_PORT  controller port of node 1, likewise; empty: free ports
#   KAFKA_TLS_PEM          PEM file with the brokers' private key (unencrypted PKCS#8) and certificate chain:
#                          the client listener becomes SASL_SSL (SCRAM-SHA-512 and -256; create users with
#                          an admin client on KAFKA_INTERNAL_BOOTSTRAP, a plaintext listener on loopback that
#                          also carries the traffic between brokers)
#   KAFKA_RUN_DIR          data + logs dir (node-N/ per node); empty: a new temp dir, removed on stop
#   KAFKA_CACHE_DIR        jar caches by version (default: deploy/local/kafka/.libs)
#   KAFKA_LIB_DIR          this version's jar cache (default: KAFKA_CACHE_DIR/VERSION)
#   KAFKA_OWNER_PID        when set, the cluster is stopped once that process is gone (test runs)
#   KAFKA_VERSION, KAFKA_START_TIMEOUT (s), KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS, KAFKA_OPTS
# Needs Java 17+ and, for the first fetch, Maven 3 with access to Maven Central.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_VERSION="${KAFKA_VERSION:-4.1.2}"
KAFKA_BROKERS="${KAFKA_BROKERS:-1}"
KAFKA_PORT="${KAFKA_PORT:-}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-}"
KAFKA_TLS_PEM="${KAFKA_TLS_PEM:-}"
KAFKA_INSTANCE="${KAFKA_INSTANCE:-default}"
STATE_DIR="${STREAM_NER_LOCAL_STATE_DIR:-$(dirname "$HERE")/.run}"
KAFKA_STATE_FILE="${KAFKA_STATE_FILE:-$STATE_DIR/kafka-$KAFKA_INSTANCE.env}"
KAFKA_CACHE_DIR="${KAFKA_CACHE_DIR:-$HERE/.libs}"
KAFKA_LIB_DIR="${KAFKA_LIB_DIR:-$KAFKA_CACHE_DIR/$KAFKA_VERSION}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
if [ "$KAFKA_BROKERS" -gt 1 ]; then KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms64m -Xmx384m}"
else KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"; fi
KAFKA_JVM_PERFORMANCE_OPTS="${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
LOG4J="-Dlog4j2.configurationFile=$HERE/log4j2.xml"

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

# is PID alive and the broker of node dir DIR (guards against a recycled PID)?
is_ours() { [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' < "/proc/$1/cmdline" | grep -qF "$2/server.properties"; }

load_state() {
  [ -f "$KAFKA_STATE_FILE" ] || return 1
  KAFKA_NODES="" LEGACY=""
  # shellcheck disable=SC1090
  . "$KAFKA_STATE_FILE"
  if [ -z "$KAFKA_NODES" ]; then  # written by an earlier single-broker version of this script
    KAFKA_NODES=1 LEGACY=1 KAFKA_PID_1="$KAFKA_PID"
  fi
}

node_pid() { local var="KAFKA_PID_$1"; echo "${!var:-}"; }
node_dir() { if [ -n "${LEGACY:-}" ]; then echo "$KAFKA_RUN"; else echo "$KAFKA_RUN/node-$1"; fi; }

set_state() {  # KEY VALUE: replace one line of the state file
  sed -i "s|^$1=.*|$1=$2|" "$KAFKA_STATE_FILE"
}

# start node N's JVM in the background on its server.properties; prints its PID
launch_node() {
  local dir="$KAFKA_RUN/node-$1" cp="$KAFKA_LIB_DIR/*"   # cp quoted: the JVM expands the wildcard
  [ -f "$dir/logs/server.out" ] && mv -f "$dir/logs/server.out" "$dir/logs/server.out.1"
  # output to a file and stdin from /dev/null: a caller's pipes (subprocess capture_output) are not held open
  # shellcheck disable=SC2086
  nohup "$JAVA" $KAFKA_HEAP_OPTS $KAFKA_JVM_PERFORMANCE_OPTS "$LOG4J" -Dkafka.logs.dir="$dir/logs" \
      ${KAFKA_OPTS:-} -cp "$cp" kafka.Kafka "$dir/server.properties" \
      > "$dir/logs/server.out" 2>&1 < /dev/null &
  echo $!
}

# wait until node N logs "Kafka Server started"; on failure print its log and return 1
wait_started() {
  local n="$1" pid="$2" dir="$KAFKA_RUN/node-$1" deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  until grep -q 'Kafka Server started' "$dir/logs/server.out" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$dir/logs/server.out" >&2
      echo "kafka-local: node $n exited during start-up (logs kept in $dir/logs)" >&2
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 40 "$dir/logs/server.out" >&2
      echo "kafka-local: node $n not ready after ${KAFKA_START_TIMEOUT}s (logs kept in $dir/logs)" >&2
      return 1
    fi
    sleep 0.2
  done
}

# pick COUNT distinct free ports, or BASE, BASE+1, ... when BASE is given; checks they are free
pick_ports() {
  local base="$1" count="$2" what="$3" ports=() p i
  for ((i = 0; i < count; i++)); do
    if [ -n "$base" ]; then p=$((base + i)); port_is_free "$p" || die "$what port $p on 127.0.0.1 is already in use"
    else
      p="$(free_port)"
      while [[ " ${USED_PORTS:-} " == *" $p "* ]]; do p="$(free_port)"; done
    fi
    USED_PORTS="${USED_PORTS:-} $p"
    ports+=("$p")
  done
  echo "${ports[@]}"
}

start() {
  if load_state; then
    for ((i = 1; i <= KAFKA_NODES; i++)); do
      if is_ours "$(node_pid "$i")" "$(node_dir "$i")"; then die "instance already running at $KAFKA_BOOTSTRAP (pid $(node_pid "$i")); stop it first"; fi
    done
    rm -f "$KAFKA_STATE_FILE"       # stale: its brokers are gone
  fi
  [ "$KAFKA_BROKERS" -ge 1 ] || die "KAFKA_BROKERS must be 1 or more, got $KAFKA_BROKERS"
  if [ -n "$KAFKA_TLS_PEM" ] && [ ! -r "$KAFKA_TLS_PEM" ]; then die "KAFKA_TLS_PEM $KAFKA_TLS_PEM is not readable"; fi
  check_java
  ensure_libs
  local n="$KAFKA_BROKERS" owned=0 secure=0 i
  [ -n "$KAFKA_TLS_PEM" ] && secure=1
  local -a ports cports iports
  local picked
  picked="$(pick_ports "$KAFKA_PORT" "$n" client)" || exit 1
  read -r -a ports <<< "$picked"
  picked="$(USED_PORTS="${ports[*]}" pick_ports "$KAFKA_CONTROLLER_PORT" "$n" controller)" || exit 1
  read -r -a cports <<< "$picked"
  iports=("${ports[@]}")
  if [ "$secure" = 1 ]; then
    picked="$(USED_PORTS="${ports[*]} ${cports[*]}" pick_ports "" "$n" internal)" || exit 1
    read -r -a iports <<< "$picked"
  fi
  if [ -n "${KAFKA_RUN_DIR:-}" ]; then KAFKA_RUN="$KAFKA_RUN_DIR"; mkdir -p "$KAFKA_RUN"
  else KAFKA_RUN="$(mktemp -d -t stream-ner-kafka.XXXXXX)"; owned=1; fi
  mkdir -p "$(dirname "$KAFKA_STATE_FILE")"
  local voters="" rf=$((n < 3 ? n : 3)) min_isr=$((n < 3 ? 1 : 2)) cluster_id
  for ((i = 1; i <= n; i++)); do voters+="${voters:+,}$i@127.0.0.1:${cports[i-1]}"; done
  cluster_id="$(new_cluster_id)"
  local -a format_pids=()
  for ((i = 1; i <= n; i++)); do
    local dir="$KAFKA_RUN/node-$i" listeners inter map
    rm -rf "$dir/data"
    mkdir -p "$dir/data" "$dir/logs"
    if [ "$secure" = 1 ]; then
      listeners="CLIENT://127.0.0.1:${ports[i-1]},INTERNAL://127.0.0.1:${iports[i-1]},CONTROLLER://127.0.0.1:${cports[i-1]}"
      inter=INTERNAL map="CLIENT:SASL_SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"
    else
      listeners="PLAINTEXT://127.0.0.1:${ports[i-1]},CONTROLLER://127.0.0.1:${cports[i-1]}"
      inter=PLAINTEXT map="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    fi
    sed -e "s|@NODE_ID@|$i|g" -e "s|@VOTERS@|$voters|g" -e "s|@LISTENERS@|$listeners|g" \
        -e "s|@ADVERTISED@|$listeners|g" -e "s|@INTER@|$inter|g" -e "s|@PROTOCOL_MAP@|$map|g" \
        -e "s|@DATA_DIR@|$dir/data|g" -e "s|@RF@|$rf|g" -e "s|@MIN_ISR@|$min_isr|g" \
        "$HERE/server.properties.template" > "$dir/server.properties"
    if [ "$secure" = 1 ]; then
      cat >> "$dir/server.properties" <<PROPS
# the client listener: SCRAM over TLS, the broker's key and certificate chain from one PEM file
listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256
listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.client.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.client.ssl.keystore.type=PEM
listener.name.client.ssl.keystore.location=$KAFKA_TLS_PEM
PROPS
    fi
    "$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 "$LOG4J" -Dkafka.root.loglevel=WARN -cp "$KAFKA_LIB_DIR/*" \
        kafka.tools.StorageTool format --cluster-id "$cluster_id" --config "$dir/server.properties" \
        > "$dir/logs/format.out" 2>&1 &
    format_pids+=($!)
  done
  for ((i = 1; i <= n; i++)); do
    wait "${format_pids[i-1]}" || { cat "$KAFKA_RUN/node-$i/logs/format.out" >&2; die "storage format of node $i failed"; }
  done
  local -a pids=()
  for ((i = 1; i <= n; i++)); do pids+=("$(launch_node "$i")"); done
  local bootstrap="" internal=""
  for ((i = 1; i <= n; i++)); do
    bootstrap+="${bootstrap:+,}127.0.0.1:${ports[i-1]}"; internal+="${internal:+,}127.0.0.1:${iports[i-1]}"
  done
  {
    printf 'KAFKA_NODES=%s\nKAFKA_RUN=%s\nKAFKA_RUN_OWNED=%s\nKAFKA_SECURE=%s\n' "$n" "$KAFKA_RUN" "$owned" "$secure"
    printf 'KAFKA_PID=%s\nKAFKA_ADDRESS=127.0.0.1:%s\nKAFKA_LOG=%s\n' "${pids[0]}" "${ports[0]}" "$KAFKA_RUN/node-1/logs/server.out"
    printf 'KAFKA_BOOTSTRAP=%s\nKAFKA_INTERNAL_BOOTSTRAP=%s\n' "$bootstrap" "$internal"
    for ((i = 1; i <= n; i++)); do
      printf 'KAFKA_PID_%s=%s\nKAFKA_ADDRESS_%s=127.0.0.1:%s\nKAFKA_LOG_%s=%s\n' \
          "$i" "${pids[i-1]}" "$i" "${ports[i-1]}" "$i" "$KAFKA_RUN/node-$i/logs/server.out"
    done
  } > "$KAFKA_STATE_FILE"
  KAFKA_NODES="$n" LEGACY=""
  if [ -n "${KAFKA_OWNER_PID:-}" ]; then
    # watchdog: a killed owner (e.g. a test run ended with kill -9) leaves no orphan broker behind. It
    # watches the owner's PID and the state file (gone once the cluster is stopped), not the nodes: a node
    # may be stopped and started again meanwhile.
    ( while kill -0 "$KAFKA_OWNER_PID" 2>/dev/null && [ -f "$KAFKA_STATE_FILE" ]; do sleep 1; done
      if [ -f "$KAFKA_STATE_FILE" ]; then KAFKA_STATE_FILE="$KAFKA_STATE_FILE" bash "${BASH_SOURCE[0]}" stop; fi
    ) < /dev/null > /dev/null 2>&1 &
  fi
  for ((i = 1; i <= n; i++)); do
    if ! wait_started "$i" "${pids[i-1]}"; then
      KAFKA_KEEP_RUN_DIR=1 stop
      die "the cluster did not start (logs kept in $KAFKA_RUN)"
    fi
  done
  echo "$bootstrap"
}

# SIGNAL then wait for the node of DIR to be gone; SIGKILL after 30 s
signal_node() {
  local pid="$1" dir="$2" sig="$3"
  is_ours "$pid" "$dir" || return 0
  kill "-$sig" "$pid"
  for _ in $(seq 1 150); do is_ours "$pid" "$dir" || return 0; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true
}

stop() {
  load_state || { echo "kafka-local: not running" >&2; return 0; }
  local i
  for ((i = 1; i <= KAFKA_NODES; i++)); do   # controlled shutdown of every node at once
    if is_ours "$(node_pid "$i")" "$(node_dir "$i")"; then kill -TERM "$(node_pid "$i")"; fi
  done
  for ((i = 1; i <= KAFKA_NODES; i++)); do signal_node "$(node_pid "$i")" "$(node_dir "$i")" TERM; done
  if [ "$KAFKA_RUN_OWNED" = 1 ] && [ -z "${KAFKA_KEEP_RUN_DIR:-}" ]; then rm -rf "$KAFKA_RUN"; fi
  rm -f "$KAFKA_STATE_FILE"
}

node_arg() {
  load_state || die "not running (no state file $KAFKA_STATE_FILE)"
  local n="${KAFKA_NODE:-}"
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le "$KAFKA_NODES" ] || die "KAFKA_NODE must be 1..$KAFKA_NODES, got '$n'"
  echo "$n"
}

stop_node() {
  local n; n="$(node_arg)" || exit 1; load_state
  signal_node "$(node_pid "$n")" "$(node_dir "$n")" "${KAFKA_SIGNAL:-TERM}"
}

start_node() {
  local n pid; n="$(node_arg)" || exit 1; load_state
  [ -z "${LEGACY:-}" ] || die "this instance was started by an earlier version of kafka-local.sh"
  if is_ours "$(node_pid "$n")" "$(node_dir "$n")"; then die "node $n is already running (pid $(node_pid "$n"))"; fi
  check_java
  pid="$(launch_node "$n")"
  set_state "KAFKA_PID_$n" "$pid"
  if [ "$n" = 1 ]; then set_state KAFKA_PID "$pid"; fi
  wait_started "$n" "$pid" || die "node $n did not start again"
}

status() {
  if load_state; then
    local i up=""
    for ((i = 1; i <= KAFKA_NODES; i++)); do
      if is_ours "$(node_pid "$i")" "$(node_dir "$i")"; then up+="${up:+,}$i"; fi
    done
    if [ -n "$up" ]; then echo "running $KAFKA_BOOTSTRAP pid=$KAFKA_PID dir=$KAFKA_RUN nodes-up=$up"; return 0; fi
  fi
  echo "not running"
  return 3
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  stop-node) stop_node ;;
  start-node) start_node ;;
  fetch) check_java; ensure_libs; echo "$KAFKA_LIB_DIR" ;;
  *) echo "usage: $0 start|stop|status|fetch|stop-node|start-node" >&2; exit 2 ;;
esac
