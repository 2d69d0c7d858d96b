#!/usr/bin/env bash
# Builds and caches the root filesystems the tests boot:
#   debian-bookworm/  Debian bookworm minbase with systemd, by debootstrap from the
#                     host's own apt mirror (read from /etc/apt/sources.list*)
#   busybox/          a tiny rootfs around Debian's busybox-static, with busybox init
# Usage: tests/images/build.sh [debian] [busybox]   (default: both)
# Cache: $HUTCH_TEST_IMAGES (default /var/cache/hutch-tests). Each image is built in a
# temporary directory and renamed into place, so an interrupted build leaves nothing.
set -euo pipefail

CACHE=${HUTCH_TEST_IMAGES:-/var/cache/hutch-tests}
SUITE=${HUTCH_TEST_SUITE:-bookworm}
mkdir -p "$CACHE"

need() { # need PROGRAM PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    echo "build.sh: installing $2 (for $1)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

# The Debian mirror this host already uses: the first URI of an entry for the main
# suite in deb822 .sources files, else the first matching `deb` line.
host_mirror() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        uri=$(awk -v suite="$SUITE" '
            BEGIN { RS=""; FS="\n" }
            {
                uris=""; ok=0
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^URIs:/)   { sub(/^URIs:[ \t]*/, "", $i); split($i, u, /[ \t]+/); uris=u[1] }
                    if ($i ~ /^Suites:/) { n = split($i, s, /[ \t]+/); for (j = 2; j <= n; j++) if (s[j] == suite) ok=1 }
                }
                if (ok && uris != "") { print uris; exit }
            }' "$f")
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    if [ -r /etc/apt/sources.list ]; then
        uri=$(awk -v suite="$SUITE" '$1 == "deb" && $3 == suite { print $2; exit }' /etc/apt/sources.list)
        [ -n "$uri" ] && { echo "$uri"; return; }
    fi
    echo "build.sh: no apt source for suite $SUITE in /etc/apt/sources.list*; set HUTCH_MIRROR" >&2
    return 1
}

build_debian() {
    local dest="$CACHE/debian-$SUITE"
    [ -x "$dest/sbin/init" ] && { echo "debian-$SUITE: cached at $dest"; return; }
    need debootstrap debootstrap
    local mirror=${HUTCH_MIRROR:-$(host_mirror)}
    local tmp="$CACHE/.debian-$SUITE.tmp"
    rm -rf "$tmp"
    echo "debian-$SUITE: debootstrap from $mirror (about a minute)"
    debootstrap --variant=minbase \
        --include=systemd,systemd-sysv,dbus,iproute2,ifupdown,isc-dhcp-client,procps \
        "$SUITE" "$tmp" "$mirror" >"$CACHE/debootstrap.log" 2>&1 || {
        tail -20 "$CACHE/debootstrap.log" >&2; rm -rf "$tmp"; return 1; }
    # A rootfs is not a host: no copied hostname, a fresh machine-id at first boot.
    : >"$tmp/etc/machine-id"
    echo localhost >"$tmp/etc/hostname"
    rm -rf "$tmp/var/cache/apt/archives/"*.deb
    mv -T "$tmp" "$dest"
    echo "debian-$SUITE: built at $dest"
}

build_busybox() {
    local dest="$CACHE/busybox"
    [ -x "$dest/bin/busybox" ] && { echo "busybox: cached at $dest"; return; }
    local work="$CACHE/.busybox.work" tmp="$CACHE/.busybox.tmp"
    rm -rf "$work" "$tmp"
    mkdir -p "$work"
    (cd "$work" && apt-get download busybox-static >/dev/null 2>&1) || {
        apt-get update -qq >/dev/null && (cd "$work" && apt-get download busybox-static >/dev/null); }
    dpkg-deb -x "$work"/busybox-static_*.deb "$work/x"
    mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc/init.d,proc,sys,dev,run,tmp,root}
    chmod 1777 "$tmp/tmp"; chmod 700 "$tmp/root"
    install -m 0755 "$work/x/bin/busybox" "$tmp/bin/busybox"
    local applet
    for applet in $("$tmp/bin/busybox" --list-full); do
        [ "$applet" = bin/busybox ] && continue
        mkdir -p "$tmp/$(dirname "$applet")"
        ln -sf /bin/busybox "$tmp/$applet"
    done
    cat >"$tmp/etc/inittab" <<'INITTAB'
::sysinit:/etc/init.d/rcS
console::respawn:-/bin/sh
::shutdown:/bin/sync
INITTAB
    cat >"$tmp/etc/init.d/rcS" <<'RCS'
#!/bin/sh
[ -r /etc/hostname ] && hostname -F /etc/hostname
echo "busybox init: up as $(hostname)"
RCS
    chmod 0755 "$tmp/etc/init.d/rcS"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$tmp/etc/passwd"
    printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' >"$tmp/etc/group"
    echo busybox >"$tmp/etc/hostname"
    rm -rf "$work"
    mv -T "$tmp" "$dest"
    echo "busybox: built at $dest"
}

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(debian busybox)
for t in "${targets[@]}"; do
    case "$t" in
        debian) build_debian ;;
        busybox) build_busybox ;;
        *) echo "build.sh: unknown image $t (debian, busybox)" >&2; exit 2 ;;
    esac
done
