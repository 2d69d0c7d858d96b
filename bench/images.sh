#!/usr/bin/env bash
# Image figures: create from a cached image (overlay and full copy), and rootfs unpack
# throughput against GNU tar on the same archives, runs interleaved.
# Usage: sudo bench/images.sh [RUNS]   (default 5; needs tests/images/build.sh's Debian rootfs)
# Writes bench/results/images-DATE.md. The archives are made with GNU tar (bench input only).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
SRC=${HUTCH_TEST_IMAGES:-/var/cache/hutch-tests}/debian-bookworm
[ -x "$SRC/sbin/init" ] || { echo "bench: no Debian rootfs at $SRC; run tests/images/build.sh" >&2; exit 1; }
cargo build --release -q
BIN=$PWD/target/release/hutch
W=$(mktemp -d /var/tmp/hutch-bench.XXXXXX)
trap 'for c in $(ls "$W/root/containers" 2>/dev/null); do "$BIN" --root "$W/root" destroy --force "$c" >/dev/null 2>&1 || true; done; rm -rf "$W"' EXIT
H() { "$BIN" --root "$W/root" "$@"; }
U() { "$BIN" --root "$W/unpack" "$@"; } # a second tree, so each import unpacks afresh
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
stats() { sort -n | awk '{a[NR]=$1} END {printf "%d | %d | %d", a[int((NR+1)/2)], a[1], a[NR]}'; }

echo "bench: archives of $SRC"
tar --numeric-owner --xattrs --xattrs-include='*' -C "$SRC" -cf "$W/rootfs.tar" .
xz -T0 -3 -k "$W/rootfs.tar"
zstd -q -T0 -3 "$W/rootfs.tar" -o "$W/rootfs.tar.zst"
SIZE_MB=$(( $(stat -c %s "$W/rootfs.tar") / 1048576 ))

H image import "$W/rootfs.tar.zst" --alias deb >/dev/null
: >"$W/ov"; : >"$W/dir"
for i in $(seq "$RUNS"); do
    sync; t=$(date +%s%N); H create "ov$i" --image deb >/dev/null; ms "$t" >>"$W/ov"
    sync; t=$(date +%s%N); H create "dir$i" --image deb --storage dir >/dev/null; ms "$t" >>"$W/dir"
done

for fmt in xz zst; do
    : >"$W/tar-$fmt"; : >"$W/hutch-$fmt"
    for i in $(seq "$RUNS"); do
        rm -rf "$W/x"; mkdir "$W/x"; sync
        t=$(date +%s%N); tar --numeric-owner --xattrs --xattrs-include='*' -xpf "$W/rootfs.tar.$fmt" -C "$W/x"; ms "$t" >>"$W/tar-$fmt"
        rm -rf "$W/x"; sync
        t=$(date +%s%N); U image import "$W/rootfs.tar.$fmt" --alias "deb-$fmt" >/dev/null 2>&1; ms "$t" >>"$W/hutch-$fmt"
        U image rm "deb-$fmt" >/dev/null
    done
done

out=bench/results/images-$(date -u +%Y-%m-%d).md
{
    echo "# Image figures, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "Machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r), $(df -T /var/tmp | awk 'NR==2 {print $2}') under /var/tmp. Runs: $RUNS each, interleaved. Rootfs: Debian bookworm, ${SIZE_MB} MiB."
    echo
    echo "| figure | median ms | min | max |"
    echo "|---|---|---|---|"
    echo "| hutch create --image (overlay) | $(stats <"$W/ov") |"
    echo "| hutch create --image --storage dir (full copy) | $(stats <"$W/dir") |"
    for fmt in xz zst; do
        echo "| GNU tar -xpf rootfs.tar.$fmt | $(stats <"$W/tar-$fmt") |"
        echo "| hutch image import rootfs.tar.$fmt (sha256 + unpack) | $(stats <"$W/hutch-$fmt") |"
    done
} >"$out"
cat "$out"
