#!/usr/bin/env bash
# Runs every test: the unit tests (no root needed) and, as root, the integration tests
# that boot real Debian (systemd) and busybox containers. Installs missing packages and
# builds the test root filesystems first (tests/images/build.sh).
# The root tests are #[ignore]d (a plain non-root `cargo test` lists them as ignored);
# here they run with --include-ignored, and one whose prerequisite is missing fails.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
    scripts/deps.sh --tests
    tests/images/build.sh
fi
cargo test --locked --lib --bins
if [ "$(id -u)" != 0 ]; then
    if [ "${CI:-}" = true ]; then echo "test.sh: the integration tests need root" >&2; exit 1; fi
    echo "test.sh: not root: skipping the integration tests (they boot real containers)"
    exit 0
fi
# Containers boot in parallel; two at a time suits the 2-core machines.
cargo test --locked --test '*' -- --include-ignored --test-threads=2
# The cgroup v2 + systemd host case, in a QEMU guest (minutes; one boot).
tests/qemu/systemd-host.sh target/debug/hutch
