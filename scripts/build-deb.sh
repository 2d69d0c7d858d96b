#!/usr/bin/env bash
# Builds the Debian package: dist/hutch_VERSION_ARCH.deb.
#   scripts/build-deb.sh [--bin-dir DIR] [--out DIR]
# It holds hutch and hutch-monitor (a release build, or the ones in --bin-dir), a man
# page for hutch and each subcommand and bash, zsh and fish completions (generated from
# the command definitions by `hutch man` and `hutch completion`), hutch.service and
# hutch@.service, a commented /etc/hutch/hutch.toml, and a postinst that gives root
# subordinate ids when it has none and enables hutch.service.
# Install: apt-get install ./dist/hutch_*.deb
set -euo pipefail
cd "$(dirname "$0")/.."
bin_dir="" out=dist
while [ $# -gt 0 ]; do
    case "$1" in
        --bin-dir) bin_dir=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) echo "build-deb.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
command -v dpkg-deb >/dev/null || { echo "build-deb.sh: dpkg-deb is missing (apt-get install dpkg)" >&2; exit 1; }
# A release build is small: xz. Prebuilt (debug) binaries, for the tests: gzip, quicker.
compress=(-Zgzip -z1)
if [ -z "$bin_dir" ]; then
    cargo build --release --locked --bins -q
    bin_dir=target/release
    compress=(-Zxz)
fi
version=$(awk -F'"' '/^version *=/ { print $2; exit }' Cargo.toml)
arch=$(dpkg --print-architecture)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
chmod 755 "$root"

install -Dm755 "$bin_dir/hutch" "$root/usr/bin/hutch"
install -Dm755 "$bin_dir/hutch-monitor" "$root/usr/bin/hutch-monitor"
man="$root/usr/share/man/man1"
"$root/usr/bin/hutch" man "$man" >/dev/null
gzip -9n "$man"/*.1
hutch() { "$root/usr/bin/hutch" "$@"; }
install -d "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
    "$root/usr/share/fish/vendor_completions.d"
hutch completion bash > "$root/usr/share/bash-completion/completions/hutch"
hutch completion zsh > "$root/usr/share/zsh/vendor-completions/_hutch"
hutch completion fish > "$root/usr/share/fish/vendor_completions.d/hutch.fish"
install -Dm644 packaging/hutch.service "$root/lib/systemd/system/hutch.service"
install -Dm644 packaging/hutch@.service "$root/lib/systemd/system/hutch@.service"
install -Dm644 packaging/hutch.toml "$root/etc/hutch/hutch.toml"
install -Dm644 README.md "$root/usr/share/doc/hutch/README.md"
printf 'hutch\nLicense: Apache-2.0\n' > "$root/usr/share/doc/hutch/copyright"

install -d "$root/DEBIAN"
install -m755 packaging/postinst packaging/postrm "$root/DEBIAN/"
echo /etc/hutch/hutch.toml > "$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: hutch
Version: $version
Architecture: $arch
Maintainer: hutch developers <hutch@localhost>
Installed-Size: $size
Depends: libc6 (>= 2.34), libgcc-s1, dnsmasq-base, nftables
Recommends: debootstrap, lxcfs, btrfs-progs
Section: admin
Priority: optional
Description: system containers: whole distributions booting their own init
 hutch runs whole Linux distributions (Debian, Ubuntu, Alpine, Fedora...) with
 their own init as PID 1 in user, PID, mount, UTS, IPC, network and cgroup
 namespaces, unprivileged by default, each under a small monitor process, on a
 managed bridge network with DHCP, DNS and NAT.
CONTROL
mkdir -p "$out"
deb="$out/hutch_${version}_${arch}.deb"
dpkg-deb --root-owner-group "${compress[@]}" --build "$root" "$deb" >/dev/null
echo "$deb"
