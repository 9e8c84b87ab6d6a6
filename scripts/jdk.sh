# Sourced by ./cask and ./run-tests: sets JAVA_HOME to a JDK 25 or newer, or explains how to get one.
# Order: $JAVA_HOME if it is 25+, then the newest 25+ JDK under /usr/lib/jvm.
cask_java_major() { # JAVA_BIN -> major version number, or 0 (reads the JDK's release file; no JVM start)
  local home=${1%/bin/java}
  if [ -f "$home/release" ]; then
    sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$home/release" | head -1
  else
    "$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -1
  fi
}
cask_find_jdk() {
  local cand major
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/javac" ]; then
    major=$(cask_java_major "$JAVA_HOME/bin/java"); major=${major:-0}
    if [ "$major" -ge 25 ]; then return 0; fi
  fi
  for cand in $(ls -d /usr/lib/jvm/*/ 2>/dev/null | sort -rV); do
    cand=${cand%/}
    [ -x "$cand/bin/javac" ] || continue
    major=$(cask_java_major "$cand/bin/java"); major=${major:-0}
    if [ "$major" -ge 25 ]; then export JAVA_HOME=$cand; return 0; fi
  done
  cat >&2 <<'MSG'
cask: needs a JDK 25 or newer, and found none (JAVA_HOME is not 25+, nothing 25+ under /usr/lib/jvm).
      Get one with: apt-get install temurin-25-jdk (Adoptium's Debian repository), or unpack
      https://adoptium.net/temurin/releases/?version=25 and set JAVA_HOME to it.
MSG
  return 1
}
cask_find_jdk || exit 1
export PATH="$JAVA_HOME/bin:$PATH"
