#!/usr/bin/env bash
# install-deps.sh - everything the local stack needs besides Python packages; safe to run again.
#
#   redis-server   from Debian packages (apt-get, as root or through sudo) when it is not on PATH
#   Kafka jars     from Maven Central into deploy/local/kafka/.libs/VERSION (kafka-local.sh fetch)
#   chromium       with --browser: Debian's chromium and chromium-driver, for the dashboard's browser test
#
# Java 17+ (the broker) and Maven 3 (the one-time jar fetch) must already be installed: this script
# stops with a clear message when they are not, rather than guessing which JDK to install.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
KAFKA_VERSION="${KAFKA_VERSION:-4.1.2}"
KAFKA_LIB_DIR="${KAFKA_LIB_DIR:-$HERE/kafka/.libs/$KAFKA_VERSION}"

BROWSER=0
for arg in "$@"; do
  case "$arg" in
    --browser) BROWSER=1 ;;
    *) echo "usage: install-deps.sh [--browser]" >&2; exit 2 ;;
  esac
done

die() { echo "install-deps: $*" >&2; exit 1; }
say() { echo "install-deps: $*" >&2; }
apt_install() {  # apt_install WHAT PACKAGE...: Debian packages, as root or through sudo
  local what="$1"; shift
  command -v apt-get >/dev/null 2>&1 || die "$what not found and no apt-get here; install: $*"
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "$what not found; run as root or install it: apt-get install $*"
    sudo=(sudo)
  fi
  say "installing $* with apt-get"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# 1. Java 17+
command -v "$JAVA" >/dev/null 2>&1 \
  || die "Java 17+ is required for the local Kafka broker; '$JAVA' not found (Debian: apt-get install openjdk-17-jre-headless, or set JAVA_HOME)"
java_major=$("$JAVA" -version 2>&1 | sed -E -n 's/.* version "([0-9]+)(\.[0-9]+)*.*".*/\1/p' | head -n1)
[ "${java_major:-0}" -ge 17 ] || die "Java 17+ is required for the local Kafka broker; found '${java_major:-unknown}' ($JAVA)"
say "java $java_major ok"

# 2. Maven, needed only while the jar cache is empty
if [ ! -f "$KAFKA_LIB_DIR/.complete" ]; then
  command -v mvn >/dev/null 2>&1 \
    || die "Maven is required to fetch the Kafka jars from Maven Central; 'mvn' not found (Debian: apt-get install maven)"
fi

# 3. redis-server
if command -v redis-server >/dev/null 2>&1; then
  say "redis-server ok ($(redis-server --version | sed -E -n 's/.*v=([^ ]+).*/\1/p'))"
else
  apt_install redis-server redis-server
  command -v redis-server >/dev/null 2>&1 || die "apt-get finished but redis-server is still not on PATH"
  say "redis-server installed ($(redis-server --version | sed -E -n 's/.*v=([^ ]+).*/\1/p'))"
fi

# 4. Kafka jars
KAFKA_VERSION="$KAFKA_VERSION" KAFKA_LIB_DIR="$KAFKA_LIB_DIR" bash "$HERE/kafka/kafka-local.sh" fetch >/dev/null
say "kafka $KAFKA_VERSION jars ok ($(find "$KAFKA_LIB_DIR" -name '*.jar' | wc -l) jars in $KAFKA_LIB_DIR)"

# 5. Chromium and chromedriver (--browser): the dashboard's browser test drives the system browser
if [ "$BROWSER" = 1 ]; then
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    apt_install chromium chromium chromium-driver
    command -v chromedriver >/dev/null 2>&1 || die "apt-get finished but chromedriver is still not on PATH"
  fi
  say "chromium ok ($(chromium --version 2>/dev/null | head -n1))"
fi
