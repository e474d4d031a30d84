#!/usr/bin/env bash
# The Debian package: cpack builds offerd_<version>_<arch>.deb from the build tree; its files,
# control fields (Depends on the Boost 1.81 runtime, libssl3, libpq5 and libtcmalloc-minimal4 when linked), conffiles and
# maintainer scripts are as intended; unpacked with dpkg -x its offerd runs and reads its own
# default config; the unit passes systemd-analyze verify where systemd-analyze exists.
# With OFFERD_TEST_DPKG_INSTALL=1 (CI, as root) it is also installed with dpkg -i, started with
# systemctl where systemd runs, and removed again.
# Usage: test/package/deb_test.sh BUILD_DIR   (exit 77: skipped, a tool is missing)
set -euo pipefail
build=$(realpath "$1")
for tool in cpack dpkg-deb dpkg; do
  command -v "$tool" >/dev/null || { echo "skipped: $tool is not installed"; exit 77; }
done
tmp=$(mktemp -d /tmp/offerd-deb-test-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

version=$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$build/CPackConfig.cmake")
[ -n "$version" ] || fail "no CPACK_PACKAGE_VERSION in $build/CPackConfig.cmake"
arch=$(dpkg --print-architecture)
if ! log=$(cpack -G DEB --config "$build/CPackConfig.cmake" -B "$tmp/out" 2>&1); then
  echo "$log" >&2
  fail "cpack -G DEB failed"
fi
deb="$tmp/out/offerd_${version}_${arch}.deb"
[ -f "$deb" ] || fail "expected $deb; cpack made: $(ls "$tmp/out")"
echo "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"

# Files.
dpkg-deb -c "$deb" > "$tmp/listing"
awk '{print $6}' "$tmp/listing" > "$tmp/files"
for f in ./usr/bin/offerd ./usr/share/man/man1/offerd.1 ./usr/lib/systemd/system/offerd.service \
         ./etc/offerd/offerd.conf ./etc/default/offerd ./usr/share/doc/offerd/README.md \
         ./usr/share/offerd/log-schema.json ./usr/share/offerd/grafana-dashboard.json ./usr/share/offerd/haproxy.cfg; do
  grep -qx "$f" "$tmp/files" || fail "$f is not in the package: $(tr '\n' ' ' < "$tmp/files")"
done
! grep -q '^./usr/local' "$tmp/files" || fail "files under /usr/local"
grep -q '^-rwxr-xr-x root/root .* ./usr/bin/offerd$' "$tmp/listing" || fail "usr/bin/offerd is not 0755 root:root"

# Control fields.
info=$(dpkg-deb -I "$deb")
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = offerd ] || fail "Package: $(field Package)"
[ "$(field Version)" = "$version" ] || fail "Version: $(field Version)"
[ "$(field Architecture)" = "$arch" ] || fail "Architecture: $(field Architecture)"
depends=$(field Depends)
echo "Depends: $depends"
names=$(sed 's/ *([^)]*)//g; s/ *| */\n/g; s/, */\n/g' <<<"$depends")  # one package name a line
for dep in libboost-json1.81.0 libboost-log1.81.0 libboost-program-options1.81.0 libssl3 libc6 libstdc++6 procps; do
  grep -qxF "$dep" <<<"$names" || fail "Depends lacks $dep: $depends"
done
if readelf -d "$build/offerd" 2>/dev/null | grep -q 'NEEDED.*libpq\.so'; then
  grep -qxF libpq5 <<<"$names" || fail "offerd links libpq but Depends lacks libpq5: $depends"
fi
if readelf -d "$build/offerd" 2>/dev/null | grep -q 'NEEDED.*libtcmalloc_minimal\.so'; then
  grep -qxF libtcmalloc-minimal4 <<<"$names" || fail "offerd links tcmalloc but Depends lacks libtcmalloc-minimal4: $depends"
fi
! grep -q -- '-dev$' <<<"$names" || fail "Depends names a -dev package: $depends"
for script in postinst prerm postrm conffiles; do
  grep -Eq "^ +[0-9]+ bytes, +[0-9]+ lines +\*? *$script( |$)" <<<"$info" || fail "control member $script missing: $info"
done

# Unpacked: the binary runs, and reads the config file the package ships.
dpkg-deb -e "$deb" "$tmp/control"
grep -qx /etc/offerd/offerd.conf "$tmp/control/conffiles" || fail "offerd.conf is not a conffile"
grep -qx /etc/default/offerd "$tmp/control/conffiles" || fail "/etc/default/offerd is not a conffile"
sh -n "$tmp/control/postinst" && sh -n "$tmp/control/prerm" && sh -n "$tmp/control/postrm" || fail "a maintainer script does not parse"
dpkg -x "$deb" "$tmp/root"
"$tmp/root/usr/bin/offerd" --version > "$tmp/version" || fail "offerd --version exited $?"
grep -qx "offerd $version" <(head -n 1 "$tmp/version") || fail "offerd --version says: $(cat "$tmp/version")"
echo "installed offerd --version: $(head -n 1 "$tmp/version")"
"$tmp/root/usr/bin/offerd" config --print --config "$tmp/root/etc/offerd/offerd.conf" > "$tmp/config" ||
  fail "the shipped offerd.conf is refused"
grep -qx 'data-dir = /var/lib/offerd  # .*offerd.conf:[0-9]*' "$tmp/config" || fail "data-dir not from offerd.conf: $(cat "$tmp/config")"
unit="$tmp/root/usr/lib/systemd/system/offerd.service"
grep -qx 'ExecStart=/usr/bin/offerd serve --config /etc/offerd/offerd.conf' "$unit" || fail "ExecStart: $(grep ExecStart "$unit")"
grep -qx 'EnvironmentFile=-/etc/default/offerd' "$unit" || fail "EnvironmentFile: $(grep EnvironmentFile "$unit")"

# The unit, with ExecStart pointing into the unpacked tree (verify checks that it is executable;
# the man page is linted by the e2e tests, so --man=no).
if command -v systemd-analyze >/dev/null; then
  mkdir -p "$tmp/unit"
  sed "s|^ExecStart=/usr/bin/offerd |ExecStart=$tmp/root/usr/bin/offerd |" "$unit" > "$tmp/unit/offerd.service"
  if ! out=$(systemd-analyze verify --man=no "$tmp/unit/offerd.service" 2>&1); then
    echo "$out" >&2
    fail "systemd-analyze verify failed"
  fi
  [ -z "$out" ] || { echo "$out" >&2; fail "systemd-analyze verify warned"; }
  echo "systemd-analyze verify: ok"
else
  echo "systemd-analyze is not installed: the unit was not verified"
fi

if [ "${OFFERD_TEST_DPKG_INSTALL:-}" = 1 ]; then
  [ "$(id -u)" -eq 0 ] || fail "OFFERD_TEST_DPKG_INSTALL=1 needs root"
  dpkg -i "$deb" >/dev/null || apt-get install -y -qq -f >/dev/null || fail "dpkg -i failed"
  /usr/bin/offerd --version | grep -qx "offerd $version" || fail "installed /usr/bin/offerd --version"
  if [ -d /run/systemd/system ]; then
    systemctl start offerd.service || { journalctl -u offerd --no-pager -n 50 >&2; fail "systemctl start"; }
    curl -sf --retry 10 --retry-delay 1 --retry-connrefused http://127.0.0.1:8000/health >/dev/null || { journalctl -u offerd --no-pager -n 50 >&2; fail "no /health after start"; }
    systemctl reload offerd.service || fail "systemctl reload"
    systemctl is-active --quiet offerd.service || fail "not active after reload"
    echo "systemctl start/reload: ok"
  fi
  dpkg --purge offerd >/dev/null || fail "dpkg --purge failed"
fi
echo "ok"
