#!/usr/bin/env bash
# Installs the Debian packages hutch's scripts and tests use, when missing.
# Usage: scripts/deps.sh [--tests]
set -euo pipefail
pkgs=()
have() { command -v "$1" >/dev/null 2>&1; }
have debootstrap || pkgs+=(debootstrap)
have busybox || pkgs+=(busybox-static)
have dnsmasq || pkgs+=(dnsmasq-base)
have nft || pkgs+=(nftables)
have cc || pkgs+=(gcc)
have pkg-config || pkgs+=(pkg-config)
if [ "${1:-}" = --tests ]; then
    have tmux || pkgs+=(tmux)
    have mkfs.btrfs || pkgs+=(btrfs-progs)
    have lxcfs || pkgs+=(lxcfs)
    have systemd-analyze || pkgs+=(systemd)
    have man || pkgs+=(man-db)
fi
if [ ${#pkgs[@]} -gt 0 ]; then
    echo "deps: installing ${pkgs[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
have cargo || { echo "deps: cargo is missing; install a Rust toolchain (https://rustup.rs)" >&2; exit 1; }
