#!/usr/bin/env bash
# From a fresh machine to a booted Debian container: installs missing packages, builds
# hutch, builds a Debian bookworm rootfs with debootstrap from this host's apt mirror,
# creates an unprivileged container from it, boots it and runs a command inside.
# Run as root from the repository: ./scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "quickstart: run as root (hutch needs namespaces, mounts and cgroups)" >&2; exit 1; }
scripts/deps.sh
cargo build --release --quiet
install -m 0755 target/release/hutch target/release/hutch-monitor /usr/local/bin/
tests/images/build.sh debian
IMAGES=${HUTCH_TEST_IMAGES:-/var/cache/hutch-tests}
NAME=${1:-demo}
if ! hutch info "$NAME" >/dev/null 2>&1; then
    hutch create "$NAME" --from-dir "$IMAGES/debian-bookworm"
fi
hutch info "$NAME" --format json | grep -q '"state": "stopped"' && hutch start "$NAME" --wait
hutch exec "$NAME" -- sh -c 'echo "hello from $(hostname): $(grep PRETTY_NAME /etc/os-release | cut -d\" -f2), PID 1 is $(cat /proc/1/comm), boot state: $(systemctl is-system-running)"'
echo
echo "Try: hutch shell $NAME    hutch list    hutch stop $NAME    hutch destroy $NAME"
