#!/usr/bin/env bash
# Builds the Debian package of cask: target/deb/cask_VERSION_ARCH.deb, made by the JDK's jpackage
# with its own trimmed Java runtime (jlink), so it needs no Java on the machine it is installed on.
#
#   scripts/package-deb.sh [--jar PATH] [--dest DIR]
#   dpkg -i target/deb/cask_*.deb && systemctl enable --now cask
#
# What the package installs:
#   /usr/bin/cask                         jpackage's native launcher
#   /usr/lib/cask/runtime/                the Java runtime: the JDK's modules cask uses, nothing else
#   /usr/lib/cask/app/cask.jar            the CLI jar, without other platforms' native libraries
#   /usr/lib/cask/app/native/             SQLite's and zstd's native libraries for this platform,
#                                         loaded from there (-Dcask.native.dir), not copied to /tmp
#   /usr/lib/cask/app/cask.aot            made by postinst: the JDK start-up cache (AOT) of the common
#                                         commands, as ./cask makes one; prerm deletes it
#   /usr/lib/cask/cask.service            packaging/cask.service; postinst installs it as
#                                         /lib/systemd/system/cask.service (postrm removes it)
# The maintainer scripts are packaging/deb/{postinst,prerm,postrm} (jpackage --resource-dir).
#
# --jar: package this cask.jar instead of building one (mvn -DskipTests package) first.
# Needs a JDK 25 with jpackage and jlink (scripts/jdk.sh finds it), dpkg-deb and fakeroot
# (scripts/install-deps.sh installs them). Takes about a minute; the jlink'ed runtime is kept in
# target/deb/ and reused while the JDK stays the same. The package is compressed with zstd (dpkg
# 1.21.18+, Debian 12, Ubuntu 21.10); DPKG_DEB_COMPRESSOR_TYPE=xz makes a smaller one any dpkg reads,
# in a few minutes instead of seconds.
set -euo pipefail
here=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
. "$here/scripts/jdk.sh"
jar=""
dest="$here/target/deb"
while [ $# -gt 0 ]; do
  case "$1" in
    --jar) jar=$(readlink -f "$2"); shift 2 ;;
    --dest) dest=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -e/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "package-deb: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for tool in dpkg-deb fakeroot zip unzip; do
  command -v "$tool" >/dev/null || { echo "package-deb: $tool is missing (run scripts/install-deps.sh)" >&2; exit 1; }
done
for tool in jpackage jlink; do
  [ -x "$JAVA_HOME/bin/$tool" ] || { echo "package-deb: $JAVA_HOME has no $tool (a full JDK 25 has)" >&2; exit 1; }
done

if [ -z "$jar" ]; then
  echo "package-deb: building cask.jar (mvn -DskipTests package) ..." >&2
  (cd "$here" && { mvn -q -B -o -DskipTests package || mvn -q -B -DskipTests package; }) >&2
  jar="$here/cask-cli/target/cask.jar"
fi
[ -f "$jar" ] || { echo "package-deb: no jar at $jar" >&2; exit 1; }

# Debian versions may not hold '-' without a revision: 0.1.0-SNAPSHOT becomes 0.1.0~snapshot
# (sorts before 0.1.0, as a pre-release should)
version=$(sed -n '0,/<version>/s:.*<version>\(.*\)</version>.*:\1:p' "$here/pom.xml")
version=${version/-SNAPSHOT/~snapshot}
arch=$(dpkg --print-architecture)
case "$arch" in
  amd64) sqlite_dir=Linux/x86_64 zstd_dir=linux/amd64 ;;
  arm64) sqlite_dir=Linux/aarch64 zstd_dir=linux/aarch64 ;;
  *) echo "package-deb: no native-library mapping for $arch (add one here)" >&2; exit 1 ;;
esac

mkdir -p "$dest"
work="$dest/work"
rm -rf "$work"
mkdir -p "$work/input/native"

# The jar carries SQLite's and zstd's libraries for ~40 platforms (55 MB); keep this one's, once in
# the jar (their own loaders' fallback) and once in native/ (what the launcher loads)
cp "$jar" "$work/input/cask.jar"
(cd "$work" && unzip -q -o -j input/cask.jar "org/sqlite/native/$sqlite_dir/libsqlitejdbc.so" -d input/native \
  && unzip -q -o -j input/cask.jar "$zstd_dir/libzstd-jni-*.so" -d input/native \
  && mv input/native/libzstd-jni-*.so input/native/libzstd-jni.so)
unzip -Z1 "$work/input/cask.jar" | grep -E '^(org/sqlite/native/|[^/]+/[^/]+/libzstd-jni-)' \
  | grep -v -e "^org/sqlite/native/$sqlite_dir/" -e "^$zstd_dir/" | zip -q -d "$work/input/cask.jar" -@ >/dev/null

# The runtime: the modules jdeps finds in the jar (java.desktop and java.compiler only back optional
# code paths of jackson, commons-compress and annotations, never used by cask), nothing else;
# java.naming (HikariCP) and java.security.jgss (the PostgreSQL driver's GSS login) for a shared store
jdk_version=$(sed -n 's/^JAVA_VERSION="\(.*\)"/\1/p' "$JAVA_HOME/release" | head -1)
runtime="$dest/runtime-jdk$jdk_version"
modules=java.base,java.logging,java.management,java.naming,java.security.jgss,java.sql,jdk.net,jdk.unsupported
# a module the code starts to use must not go missing silently (jdk.net, for TCP keepalive, did:
# serve's connections died on NoClassDefFoundError): jdeps must find nothing outside the list
for m in $(jdeps --multi-release 25 --ignore-missing-deps --print-module-deps "$work/input/cask.jar" | tr , ' '); do
  case ",$modules,java.desktop,java.compiler," in
    *",$m,"*) ;;
    *) echo "package-deb: the jar uses module $m, which the runtime lacks: add it to modules in $0" >&2; exit 1 ;;
  esac
done
if [ ! -f "$runtime/release" ] || [ "$(cat "$runtime.modules" 2>/dev/null)" != "$modules" ]; then
  echo "package-deb: jlink runtime ($modules) ..." >&2
  rm -rf "$dest"/runtime-jdk*
  jlink --add-modules "$modules" --strip-debug --no-man-pages --no-header-files --output "$runtime"
  echo "$modules" >"$runtime.modules"
fi

# Java options of ./cask that matter in the package: native access for zstd-jni and sqlite-jdbc, the
# native libraries from native/, the start-up cache postinst makes (cask.aot; without it, or with JVM
# options it was not made for, the JVM starts without it, silently: -Xlog:aot=off). (The open-file limit: the JVM raises its soft limit to the hard limit
# itself; the service sets LimitNOFILE. ./cask's per-command JIT choices are start-up tuning for
# import/export that one fixed launcher cannot make; it runs with the default JIT, as serve does.)
# zstd: dpkg-deb's xz takes minutes (63 CPU-s) for 23 MB here, zstd under two seconds for 30 MB; every
# dpkg since 1.21.18 (Debian 12, Ubuntu 21.10) reads it. DPKG_DEB_COMPRESSOR_TYPE=xz for older ones.
export DPKG_DEB_COMPRESSOR_TYPE=${DPKG_DEB_COMPRESSOR_TYPE:-zstd}
echo "package-deb: jpackage --type deb (cask $version, $arch) ..." >&2
rm -f "$dest"/cask_*.deb
jpackage --type deb \
  --name cask --app-version "$version" \
  --description "Content-addressed storage for VM disks, served live over NBD" \
  --vendor "cask developers" --linux-package-name cask --linux-deb-maintainer cask@localhost \
  --linux-app-category admin \
  --input "$work/input" --main-jar cask.jar --main-class dev.cask.cli.Main \
  --java-options --enable-native-access=ALL-UNNAMED \
  --java-options '-Dcask.native.dir=$APPDIR/native' \
  --java-options '-XX:AOTCache=$APPDIR/cask.aot' --java-options -Xlog:aot=off --java-options -Xlog:cds=off \
  --runtime-image "$runtime" \
  --install-dir /usr \
  --app-content "$here/packaging/cask.service" \
  --resource-dir "$here/packaging/deb" \
  --temp "$work/jpackage" \
  --dest "$dest"
rm -rf "$work"
deb=$(ls "$dest"/cask_*.deb)
echo "package-deb: $deb ($(du -h "$deb" | cut -f1))" >&2
echo "$deb"
