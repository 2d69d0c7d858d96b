#!/usr/bin/env bash
# hutch against LXC 5.0 and systemd-nspawn on one Debian rootfs, tools interleaved run by run.
# Usage: sudo bench/run.sh [--quick] [--runs N] [--density N] [--density-runs N] [--exec-runs N] [--out DIR]
#   full (default): 5 runs, density 20; writes bench/results/DATE.{md,json,svg} and refreshes
#                   the results section of docs/benchmarks.md
#   --quick:        1 run of each, density 3 (what CI runs); writes bench/results/quick-DATE.*
#                   (not committed) and leaves docs/ alone
# Needs root, tests/images/build.sh's Debian rootfs, and installs lxc, systemd-container and
# hyperfine when missing. No network: every container of every tool gets only loopback.
# What each figure measures: docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
QUICK=0 RUNS= DENSITY= DRUNS= XRUNS= OUT=
while [ $# -gt 0 ]; do
    case $1 in
    --quick) QUICK=1 ;;
    --runs) RUNS=$2; shift ;;
    --density) DENSITY=$2; shift ;;
    --density-runs) DRUNS=$2; shift ;;
    --exec-runs) XRUNS=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "bench: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
if [ $QUICK = 1 ]; then
    RUNS=${RUNS:-1} DENSITY=${DENSITY:-3} DRUNS=${DRUNS:-1} XRUNS=${XRUNS:-5}
else
    RUNS=${RUNS:-5} DENSITY=${DENSITY:-20} DRUNS=${DRUNS:-$RUNS} XRUNS=${XRUNS:-20}
fi
[ "$(id -u)" = 0 ] || { echo "bench: run as root" >&2; exit 1; }
SRC=${HUTCH_TEST_IMAGES:-/var/cache/hutch-tests}/debian-bookworm
[ -x "$SRC/sbin/init" ] || { echo "bench: no Debian rootfs at $SRC; run tests/images/build.sh" >&2; exit 1; }

# --- peers ---------------------------------------------------------------------------------
have() { command -v "$1" >/dev/null 2>&1; }
pkgs=()
have lxc-start || pkgs+=(lxc)
have systemd-nspawn || pkgs+=(systemd-container)
have hyperfine || pkgs+=(hyperfine)
have nsenter || pkgs+=(util-linux)
have rsync || pkgs+=(rsync) # lxc-copy copies dir rootfs with it
have mkfs.btrfs || pkgs+=(btrfs-progs) # figure 8 makes a scratch btrfs
if [ ${#pkgs[@]} -gt 0 ]; then
    echo "bench: installing ${pkgs[*]}"
    # Keep the packages' services (lxc-net's bridge, lxc autostart) from starting.
    rcd=
    [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; rcd=1; }
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
    [ -z "$rcd" ] || rm -f /usr/sbin/policy-rc.d
fi

cargo build --release -q
BIN=$REPO/target/release/hutch
STAMP=$(date -u +%Y-%m-%d)
if [ -z "$OUT" ]; then
    if [ $QUICK = 1 ]; then OUT=$REPO/bench/results/quick-$STAMP; else OUT=$REPO/bench/results/$STAMP; fi
fi
mkdir -p "$(dirname "$OUT")"

# --- state, cleanup ------------------------------------------------------------------------
W=$(mktemp -d /var/tmp/hutch-bench.XXXXXX)
chmod 755 "$W" # unprivileged LXC's container root must traverse it to its rootfs
TAG=b$$ # prefix of every container name, so cgroups cannot collide with anyone else's
L=$W/lxc
HR=$W/hutch
mkdir -p "$L" "$HR" "$W/ns"
if [ -d /sys/fs/cgroup/unified ]; then CGV=hybrid; else CGV=unified; fi
CGS=hbench-$$ # the parent of the cgroups this script makes for nspawn
NSPAWN_RUNDIRS= # what systemd-nspawn makes in /run and this script removes again
for d in /run/systemd/nspawn /run/systemd/nspawn-uid; do [ -d $d ] || NSPAWN_RUNDIRS="$NSPAWN_RUNDIRS $d"; done
H() { "$BIN" --root "$HR" "$@"; }
HB() { "$BIN" --root "$W/btrfs/hutch" "$@"; } # a tree on the scratch btrfs of figure 8

cleanup() {
    set +e
    for p in $(cat "$W/nspawn.pids" 2>/dev/null); do
        kill -KILL "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    for c in $(ls "$HR/containers" 2>/dev/null); do H destroy --force "$c" >/dev/null 2>&1; done
    for c in $(ls "$W/unpack/containers" 2>/dev/null); do "$BIN" --root "$W/unpack" destroy --force "$c" >/dev/null 2>&1; done
    for c in $(ls "$W/btrfs/hutch/containers" 2>/dev/null); do HB destroy --force "$c" >/dev/null 2>&1; done
    for c in $(lxc-ls -P "$L" 2>/dev/null); do
        lxc-stop -P "$L" -n "$c" -k >/dev/null 2>&1
        lxc-destroy -P "$L" -n "$c" >/dev/null 2>&1
    done
    findmnt -rn -o TARGET | grep "^$W/" | sort -r | xargs -r -n1 umount -l 2>/dev/null
    for h in /sys/fs/cgroup/*/; do
        [ -d "$h$CGS" ] && find "$h$CGS" -depth -type d -exec rmdir {} + 2>/dev/null
        [ -d "${h}lxc.pivot" ] && rmdir "${h}lxc.pivot" 2>/dev/null
    done
    [ -d /sys/fs/cgroup/$CGS ] && find /sys/fs/cgroup/$CGS -depth -type d -exec rmdir {} + 2>/dev/null
    for d in $NSPAWN_RUNDIRS; do find "$d" -depth -type d -empty -delete 2>/dev/null; done
    rm -rf "$W"
    # put back unless someone else changed it meanwhile
    [ -z "${INOTIFY_NOW:-}" ] || [ "$(cat /proc/sys/fs/inotify/max_user_instances)" != "$INOTIFY_NOW" ] ||
        echo "$INOTIFY_WAS" >/proc/sys/fs/inotify/max_user_instances
}
trap cleanup EXIT

# Every Debian guest's systemd holds a few inotify instances, charged to host root for all
# containers of every tool (limit fs.inotify.max_user_instances, 128 by default): past about
# 17 containers, units fail and boots hang. Raised for the run, as Incus's production setup
# advises, and put back at exit.
INOTIFY_WAS=$(cat /proc/sys/fs/inotify/max_user_instances)
INOTIFY_NOW=$(( 64 * DENSITY + 512 ))
if [ "$INOTIFY_NOW" -gt "$INOTIFY_WAS" ]; then
    echo "$INOTIFY_NOW" >/proc/sys/fs/inotify/max_user_instances
else
    INOTIFY_NOW=$INOTIFY_WAS
fi
trap 'exit 130' INT TERM

us() { echo "${EPOCHREALTIME/./}"; }                # microseconds, no fork
ms_since() { local d=$(( $(us) - $1 )); printf '%d.%03d\n' $((d / 1000)) $((d % 1000)); } # ms since a us() stamp
rec() { printf '%s\t%s\t%s\n' "$1" "$RUN" "$2" >>"$W/samples.tsv"; } # KEY VALUE
state() { printf '%s\t%s\t%s\n' "$1" "$RUN" "$2" >>"$W/states.tsv"; } # KEY TEXT
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
quiet() { # CMD...: its output only when it fails (then the script stops, set -e)
    local o rc=0
    o=$("$@" 2>&1) || rc=$?
    [ $rc = 0 ] || { printf 'bench: failed (%s): %s\n%s\n' "$rc" "$*" "$o" >&2; return $rc; }
}
RUN=0
ERRORS=0
fail() { log "$*"; state error "$*"; ERRORS=$((ERRORS + 1)); }

# The idmap every unprivileged hutch and LXC container uses: root's range in /etc/subuid.
read -r IDB IDN < <(awk -F: '$1=="root" {print $2, $3; exit}' /etc/subuid 2>/dev/null || true)
IDB=${IDB:-100000} IDN=${IDN:-65536}

# --- readiness: the one criterion for every tool -------------------------------------------
# `systemctl is-system-running` inside, entered with nsenter on the container's init for every
# tool (so polling costs the same everywhere), every 20 ms until it answers running/degraded.
sysstate() { nsenter -t "$1" -a systemctl is-system-running 2>/dev/null || true; }
failed_units() { nsenter -t "$1" -a systemctl --failed --plain --no-legend 2>/dev/null | awk '{print $1}' | paste -sd, || true; }
hutch_pid() { H info "$1" --format json 2>/dev/null | sed -n 's/^  "pid": \([0-9]*\),$/\1/p'; }
# From `info --format json`: the start timeline's init_exec minus cli_invoked, in ms.
SHARE="(lambda s: '%.3f' % ((s['init_exec'] - s['cli_invoked']) / 1000))({m['stage']: m['at_us'] for m in d['timeline']['stages']})"
hutch_json() { H info "$1" --format json | python3 -c "import json,sys; d=json.load(sys.stdin); print($2)"; }
lxc_pid() { lxc-info -P "$L" -n "$1" -p -H 2>/dev/null || true; }
nspawn_pid() { # the container's init: the child of systemd-nspawn that has exec'd systemd
    local p
    for p in $(pgrep -P "$1" 2>/dev/null); do
        [ "$(cat /proc/$p/comm 2>/dev/null)" = systemd ] && { echo "$p"; return 0; }
    done
    return 0
}
initpid() { # TOOL NAME
    case $1 in
    hutch) hutch_pid "$2" ;;
    lxc) lxc_pid "$2" ;;
    nspawn) nspawn_pid "$(cat "$W/ns/$2.pid")" ;;
    esac
}
wait_ready() { # TOOL NAME -> prints "PID STATE" (STATE timeout if not ready in 120 s)
    local pid= s= end=$(( $(us) + 120000000 ))
    while [ "$(us)" -lt $end ]; do
        [ -n "$pid" ] && [ -d /proc/$pid ] || pid=$(initpid "$1" "$2" || true)
        if [ -n "$pid" ]; then
            s=$(sysstate "$pid")
            case $s in running | degraded) echo "$pid $s"; return 0 ;; esac
        fi
        sleep 0.02
    done
    echo "${pid:-0} timeout"
}

# --- the three tools -----------------------------------------------------------------------
fresh_ids() { # ROOTFS NAME: what hutch's create writes too (a fresh machine-id, the hostname)
    tr -d - </proc/sys/kernel/random/uuid >"$1/etc/machine-id"
    echo "$2" >"$1/etc/hostname"
}
lxc_config() { # NAME ROOTFS priv|idmap|shifted
    {
        echo "lxc.include = /usr/share/lxc/config/common.conf"
        [ "$3" = priv ] || echo "lxc.include = /usr/share/lxc/config/userns.conf"
        echo "lxc.arch = linux64"
        echo "lxc.uts.name = $1"
        echo "lxc.rootfs.path = dir:$2"
        [ "$3" = idmap ] && echo "lxc.rootfs.options = idmap=container"
        [ "$3" = priv ] || printf 'lxc.idmap = u 0 %s %s\nlxc.idmap = g 0 %s %s\n' "$IDB" "$IDN" "$IDB" "$IDN"
        echo "lxc.net.0.type = empty"
        echo "lxc.apparmor.profile = unconfined"
        echo "lxc.signal.halt = SIGRTMIN+3"
    } >"$L/$1/config"
}
cg_dir() { # CONTROLLER-HIERARCHY NAME: the cgroup this script makes for an nspawn container
    echo "/sys/fs/cgroup/$1/$CGS/$2"
}
nspawn_cgroups() { # NAME: hierarchies the nspawn supervisor is moved into before exec
    if [ $CGV = hybrid ]; then
        echo "$(cg_dir memory "$1") $(cg_dir unified "$1") $(cg_dir systemd "$1")"
    else
        echo "/sys/fs/cgroup/$CGS/$1"
    fi
}
prepare() { # TOOL MODE NAME: untimed; a fresh copy of the pristine rootfs for this boot
    local tool=$1 mode=$2 n=$3
    case $tool in
    hutch)
        quiet H create "$n" --from-dir "$SRC" --network none $([ "$mode" = priv ] && echo --privileged)  ;;
    lxc)
        mkdir -p "$L/$n"
        cp -a "$SRC" "$L/$n/rootfs"
        fresh_ids "$L/$n/rootfs" "$n"
        lxc_config "$n" "$L/$n/rootfs" "$([ "$mode" = priv ] && echo priv || echo idmap)" ;;
    nspawn)
        cp -a "$SRC" "$W/ns/$n"
        fresh_ids "$W/ns/$n" "$n"
        local d
        if [ $CGV = unified ]; then
            mkdir -p /sys/fs/cgroup/$CGS
            grep -qw memory /sys/fs/cgroup/$CGS/cgroup.subtree_control || echo +memory >/sys/fs/cgroup/$CGS/cgroup.subtree_control 2>/dev/null || true
        fi
        for d in $(nspawn_cgroups "$n"); do mkdir -p "$d"; done ;;
    esac
}
start() { # TOOL MODE NAME: the start command, returning as soon as the tool does
    case $1 in
    hutch) H start "$3" >/dev/null ;;
    lxc) lxc-start -P "$L" -n "$3" -l WARN -o "$L/$3.log" || { tail -20 "$L/$3.log" >&2; return 1; } ;;
    nspawn)
        local d
        (
            for d in $(nspawn_cgroups "$3"); do echo "$BASHPID" >"$d/cgroup.procs"; done
            exec systemd-nspawn -q -b -D "$W/ns/$3" -M "$3" --register=no --keep-unit --private-network \
                $([ "$2" = unpriv ] && echo -U) </dev/null >"$W/ns/$3.log" 2>&1
        ) &
        echo $! >"$W/ns/$3.pid"
        echo $! >>"$W/nspawn.pids" ;;
    esac
}
stop() { # TOOL NAME: graceful (the init's halt signal), returning when the container is gone
    case $1 in
    hutch) H stop "$2" >/dev/null ;;
    lxc) lxc-stop -P "$L" -n "$2" ;;
    nspawn) # SIGTERM to systemd-nspawn sends the container SIGRTMIN+3 and waits for it
        local p; p=$(cat "$W/ns/$2.pid")
        kill -TERM "$p"; wait "$p" || true ;;
    esac
}
discard() { # TOOL NAME
    case $1 in
    hutch) H destroy --force "$2" >/dev/null ;;
    lxc) lxc-destroy -P "$L" -n "$2" >/dev/null ;;
    nspawn)
        # nspawn leaves its lock file for a directory image behind
        [ -d "$W/ns/$2" ] && rm -f "/run/systemd/nspawn/locks/inode-$(stat -c %d:%i "$W/ns/$2")"
        rm -rf "$W/ns/$2" "$W/ns/$2".*
        local d
        for d in $(nspawn_cgroups "$2"); do find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; done ;;
    esac
}
memcg() { # TOOL NAME: the container's memory cgroup directory
    case $1 in
    hutch) hutch_json "$2" "[p for p in d['cgroup'].get('v1',[]) if '/memory/' in p][:1] and [p for p in d['cgroup']['v1'] if '/memory/' in p][0] or d['cgroup']['unified']" ;;
    lxc) if [ $CGV = hybrid ]; then echo "/sys/fs/cgroup/memory/lxc.payload.$2"; else echo "/sys/fs/cgroup/lxc.payload.$2"; fi ;;
    nspawn) if [ $CGV = hybrid ]; then cg_dir memory "$2"; else echo "/sys/fs/cgroup/$CGS/$2"; fi ;;
    esac
}
mem_bytes() { # CGROUP-DIR: charged memory (cgroup2 memory.current, v1 memory.usage_in_bytes)
    if [ -e "$1/memory.current" ]; then cat "$1/memory.current"; else cat "$1/memory.usage_in_bytes"; fi
}
anon_bytes() { # CGROUP-DIR: anonymous memory (cgroup2 anon, v1 total_rss)
    awk '$1=="anon" || $1=="total_rss" {print $2; exit}' "$1/memory.stat"
}
monitor_pid() { # TOOL NAME INITPID
    case $1 in
    hutch) hutch_json "$2" "d['monitor_pid']" ;;
    lxc) awk '/^PPid:/ {print $2}' "/proc/$3/status" ;; # [lxc monitor] is init's parent
    nspawn) cat "$W/ns/$2.pid" ;;
    esac
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
pss_kib() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
mem_used_kib() { awk '/^MemTotal:/ {t=$2} /^MemAvailable:/ {a=$2} END {print t-a}' /proc/meminfo; }

# --- setup ---------------------------------------------------------------------------------
LOAD_START=$(cat /proc/loadavg)
T_START=$(us)
log "bench: work dir $W; runs $RUNS, density $DENSITY x $DRUNS, exec $XRUNS per run; load $LOAD_START"

log "archives of $SRC (GNU tar; xz -3 and zstd -3, multithreaded)"
# (no --acls: hutch's unpacker refuses the SCHILY.acl.* records it writes, see docs/benchmarks.md)
tar --numeric-owner --xattrs --xattrs-include='*' -C "$SRC" -cf "$W/rootfs.tar" .
xz -T0 -3 -k "$W/rootfs.tar"
zstd -q -T0 -3 "$W/rootfs.tar" -o "$W/rootfs.tar.zst"
TAR_BYTES=$(stat -c %s "$W/rootfs.tar")

log "cached image for hutch (import of the .tar.zst); shifted base container for lxc-copy"
quiet H image import "$W/rootfs.tar.zst" --alias deb
BASE=${TAG}base
mkdir -p "$L/$BASE"
cp -a "$SRC" "$L/$BASE/rootfs"
fresh_ids "$L/$BASE/rootfs" "$BASE"
python3 "$REPO/bench/shift.py" "$L/$BASE/rootfs" "$IDB"
lxc_config "$BASE" "$L/$BASE/rootfs" shifted

# --- figures 1, 2, 3, 5: boot, stop, exec, monitor and container memory ---------------------
CONFIGS=(hutch:priv hutch:unpriv lxc:priv lxc:unpriv nspawn:priv nspawn:unpriv)
cname() { local t=${1%%:*} m=${1##*:}; echo "$TAG${t:0:1}${m:0:1}$RUN"; } # e.g. b123hu1

exec_figure() { # NAME(hutch) INITPID(hutch) NAME(lxc): hyperfine, commands in rotated order
    local cmds=("$BIN --root $HR exec $1 -- true" "lxc-attach -P $L -n $3 -- true" "nsenter -t $2 -a true")
    local keys=(hutch-exec lxc-attach nsenter) i k order=()
    for i in 0 1 2; do order+=($(( (i + RUN) % 3 ))); done
    local args=()
    for k in "${order[@]}"; do args+=("${cmds[$k]}"); done
    if hyperfine -N --style none --warmup 3 --runs "$XRUNS" --export-json "$W/exec.json" "${args[@]}" >/dev/null 2>"$W/exec.err"; then
        python3 - "$W/exec.json" "${order[@]}" >>"$W/samples.tsv" <<EOF
import json, sys
keys = ["hutch-exec", "lxc-attach", "nsenter"]
res = json.load(open(sys.argv[1]))["results"]
for k, r in zip(sys.argv[2:], res):
    for t in r["times"]:
        print(f"exec.{keys[int(k)]}\t$RUN\t{t * 1000:.2f}")
EOF
    else
        log "exec figure failed: $(tail -3 "$W/exec.err")"
        state exec.error "$(tail -1 "$W/exec.err")"
    fi
}

boot_cycle() {
    local n=${#CONFIGS[@]} i c tool mode name t pid s ms
    log "run $RUN: preparing ${n} fresh rootfs copies"
    for c in "${CONFIGS[@]}"; do prepare "${c%%:*}" "${c##*:}" "$(cname "$c")"; done
    sync
    for i in $(seq 0 $((n - 1))); do
        c=${CONFIGS[$(( (i + RUN) % n ))]}
        tool=${c%%:*} mode=${c##*:} name=$(cname "$c")
        sleep 1
        t=$(us)
        if ! start "$tool" "$mode" "$name"; then
            fail "run $RUN: $tool $mode: start failed"
            state "end.$tool.$mode" start-failed
            continue
        fi
        read -r pid s < <(wait_ready "$tool" "$name")
        ms=$(ms_since "$t")
        state "end.$tool.$mode" "$s"
        if [ "$s" != running ] && [ "$s" != degraded ]; then
            fail "run $RUN: $tool $mode: not ready in 120 s"
        else
            rec "boot.$tool.$mode" "$ms"
            state "failed.$tool.$mode" "$(failed_units "$pid")"
            [ "$tool" = hutch ] && rec "boot.hutch-notify.$mode" "$(hutch_json "$name" "d['boot_ms']")"
            # hutch's own share of the boot, from its start timeline: CLI invoked to init exec'd
            [ "$tool" = hutch ] && rec "share.hutch.$mode" "$(hutch_json "$name" "$SHARE")"
            # memory: one second after ready, the container's own cgroup; the monitor's RSS
            while [ $(( ($(us) - t) / 1000 )) -lt $((${ms%.*} + 1000)) ]; do sleep 0.05; done
            local cg mp
            cg=$(memcg "$tool" "$name")
            rec "mem.$tool.$mode" "$(mem_bytes "$cg")"
            rec "anon.$tool.$mode" "$(anon_bytes "$cg")"
            mp=$(monitor_pid "$tool" "$name" "$pid")
            rec "monrss.$tool.$mode" "$(rss_kib "$mp")"
            rec "monpss.$tool.$mode" "$(pss_kib "$mp")"
        fi
        log "run $RUN: $tool $mode: ready in ${ms} ms ($s)"
        t=$(us)
        stop "$tool" "$name"
        rec "stop.$tool.$mode" "$(ms_since "$t")"
    done
    # exec: both unprivileged containers booted again (untimed) and running side by side
    local hn ln hp
    hn=$(cname hutch:unpriv) ln=$(cname lxc:unpriv)
    if start hutch unpriv "$hn" && start lxc unpriv "$ln"; then
        read -r hp s < <(wait_ready hutch "$hn")
        read -r pid s < <(wait_ready lxc "$ln")
        exec_figure "$hn" "$hp" "$ln"
    else
        fail "run $RUN: exec figure: a container did not start"
    fi
    stop hutch "$hn" >/dev/null 2>&1 || true
    stop lxc "$ln" >/dev/null 2>&1 || true
    for c in "${CONFIGS[@]}"; do discard "${c%%:*}" "$(cname "$c")"; done
}

# --- figure 4: create from a cached image -------------------------------------------------
create_cycle() {
    local ops=(hutch-overlay hutch-dir lxc-copy-overlay lxc-copy-full) i op n t
    for i in 0 1 2 3; do
        op=${ops[$(( (i + RUN) % 4 ))]}
        n=$TAG${op//-/}$RUN n=${n:0:40}
        sync
        t=$(us)
        case $op in
        hutch-overlay) quiet H create "$n" --image deb --network none ;;
        hutch-dir) quiet H create "$n" --image deb --storage dir --network none ;;
        lxc-copy-overlay) quiet lxc-copy -P "$L" -n "$BASE" -N "$n" -s -B overlay ;;
        lxc-copy-full) quiet lxc-copy -P "$L" -n "$BASE" -N "$n" ;;
        esac
        rec "create.$op" "$(ms_since "$t")"
    done
    for op in "${ops[@]}"; do
        n=$TAG${op//-/}$RUN n=${n:0:40}
        case $op in hutch-*) discard hutch "$n" ;; *) discard lxc "$n" ;; esac
    done
}

# --- figure 7: rootfs unpack throughput ---------------------------------------------------
unpack_cycle() {
    local jobs=(tar:xz hutch:xz tar:zst hutch:zst) i j tool fmt t ms
    for i in 0 1 2 3; do
        j=${jobs[$(( (i + RUN) % 4 ))]} tool=${j%%:*} fmt=${j##*:}
        rm -rf "$W/x"
        mkdir "$W/x"
        sync
        t=$(us)
        case $tool in
        tar)
            tar --numeric-owner --xattrs --xattrs-include='*' -xpf "$W/rootfs.tar.$fmt" -C "$W/x"
            ms=$(ms_since "$t")
            rec "unpack.tar.$fmt" "$ms"
            # hutch's import ends with a syncfs; so does this variant of GNU tar's figure
            sync -f "$W/x"
            rec "unpack.tar-syncfs.$fmt" "$(ms_since "$t")" ;;
        hutch)
            quiet "$BIN" --root "$W/unpack" image import "$W/rootfs.tar.$fmt" --alias "d$fmt"
            rec "unpack.hutch.$fmt" "$(ms_since "$t")"
            "$BIN" --root "$W/unpack" image rm "d$fmt" >/dev/null ;;
        esac
    done
    rm -rf "$W/x"
}

# --- figure 8: snapshots and copies -------------------------------------------------------
# Stopped containers, each as created ("small") and with 1 GiB of its own data written into
# the layer it owns ("1g": overlay's upper directory, the btrfs subvolume, LXC's overlay
# delta), so a figure that grows with the data shows it. hutch on overlay (this host's
# ext4) and on btrfs (a scratch loop filesystem made for the run, test scaffolding only);
# LXC's lxc-snapshot and lxc-copy -s on an overlay clone of the base (lxc-snapshot of an
# overlay container makes an overlay clone: it copies the delta).
snap_setup() {
    truncate -s 6G "$W/btrfs.img"
    quiet mkfs.btrfs -q "$W/btrfs.img"
    mkdir -p "$W/btrfs"
    mount -o loop "$W/btrfs.img" "$W/btrfs"
    quiet HB image import "$W/rootfs.tar.zst" --alias deb
}
fill() { # DIR: 1 GiB of data in DIR/root/fill, on disk
    mkdir -p "$1/root"
    dd if=/dev/urandom of="$1/root/fill" bs=1M count=1024 status=none
    sync -f "$1/root/fill"
}
snap_cycle() {
    local size tools=(hutch-overlay hutch-btrfs lxc) i tool n t
    for size in small 1g; do
        quiet H create "${TAG}so$size" --image deb --network none
        quiet HB create "${TAG}sb$size" --image deb --network none
        quiet lxc-copy -P "$L" -n "$BASE" -N "${TAG}sl$size" -s -B overlay
        if [ $size = 1g ]; then
            fill "$HR/containers/${TAG}so$size/overlay/upper"
            fill "$W/btrfs/hutch/containers/${TAG}sb$size/rootfs"
            fill "$L/${TAG}sl$size/overlay/delta"
        fi
        for i in 0 1 2; do
            tool=${tools[$(( (i + RUN) % 3 ))]}
            sync
            case $tool in
            hutch-overlay) n=${TAG}so$size
                t=$(us); quiet H snapshot create "$n" s1; rec "snap.create.$tool.$size" "$(ms_since "$t")"
                t=$(us); quiet H snapshot restore "$n" s1; rec "snap.restore.$tool.$size" "$(ms_since "$t")"
                t=$(us); quiet H copy "$n" "${n}c"; rec "copy.$tool.$size" "$(ms_since "$t")" ;;
            hutch-btrfs) n=${TAG}sb$size
                t=$(us); quiet HB snapshot create "$n" s1; rec "snap.create.$tool.$size" "$(ms_since "$t")"
                t=$(us); quiet HB snapshot restore "$n" s1; rec "snap.restore.$tool.$size" "$(ms_since "$t")"
                t=$(us); quiet HB copy "$n" "${n}c"; rec "copy.$tool.$size" "$(ms_since "$t")" ;;
            lxc) n=${TAG}sl$size
                t=$(us); quiet lxc-snapshot -P "$L" -n "$n"; rec "snap.create.$tool.$size" "$(ms_since "$t")"
                t=$(us); quiet lxc-snapshot -P "$L" -n "$n" -r snap0; rec "snap.restore.$tool.$size" "$(ms_since "$t")"
                t=$(us); quiet lxc-copy -P "$L" -n "$n" -N "${n}c" -s -B overlay; rec "copy.$tool.$size" "$(ms_since "$t")" ;;
            esac
        done
        for n in "${TAG}so$size" "${TAG}so${size}c"; do discard hutch "$n"; done
        for n in "${TAG}sb$size" "${TAG}sb${size}c"; do HB destroy "$n" >/dev/null; done
        for n in "${TAG}sl${size}c" "${TAG}sl$size"; do lxc-destroy -P "$L" -n "$n" -s >/dev/null 2>&1 || discard lxc "$n"; done
    done
}

# --- figure 6: density ---------------------------------------------------------------------
density_round() {
    local tools=(hutch lxc) modes=(seq par) i j tool mode k n t before pending p s
    for i in 0 1; do
        tool=${tools[$(( (i + RUN) % 2 ))]}
        for j in 0 1; do
            mode=${modes[$(( (j + RUN) % 2 ))]}
            log "run $RUN: density $tool $mode ($DENSITY containers)"
            for k in $(seq "$DENSITY"); do
                n=${TAG}d$k
                case $tool in
                hutch) quiet H create "$n" --image deb --network none ;;
                lxc) quiet lxc-copy -P "$L" -n "$BASE" -N "$n" -s -B overlay ;;
                esac
            done
            sync
            sleep 2
            before=$(mem_used_kib)
            declare -A pid=() st=()
            t=$(us)
            if [ "$mode" = seq ]; then
                for k in $(seq "$DENSITY"); do
                    n=${TAG}d$k
                    start "$tool" unpriv "$n" || fail "run $RUN: density $tool: $n did not start"
                    read -r p s < <(wait_ready "$tool" "$n")
                    pid[$n]=$p st[$n]=$s
                    [ "$s" != timeout ] || fail "run $RUN: density $tool: $n not ready"
                done
            else
                for k in $(seq "$DENSITY"); do start "$tool" unpriv "${TAG}d$k" || log "density $tool: ${TAG}d$k did not start" & done
                wait
                pending=$(seq "$DENSITY")
                local end=$(( $(us) + 300000000 ))
                while [ -n "$pending" ] && [ "$(us)" -lt $end ]; do
                    local left=
                    for k in $pending; do
                        n=${TAG}d$k
                        [ -n "${pid[$n]:-}" ] || pid[$n]=$(initpid "$tool" "$n" || true)
                        s=
                        [ -z "${pid[$n]}" ] || s=$(sysstate "${pid[$n]}")
                        case $s in running | degraded) st[$n]=$s ;; *) left="$left $k" ;; esac
                    done
                    pending=$left
                    [ -z "$pending" ] || sleep 0.05
                done
                for k in $pending; do st[${TAG}d$k]=timeout; fail "run $RUN: density $tool: ${TAG}d$k not ready"; done
            fi
            rec "density.$tool.$mode.ms" "$(ms_since "$t")"
            sleep 1
            rec "density.$tool.$mode.hostmem" "$(( ($(mem_used_kib) - before) * 1024 ))"
            local cgsum=0 monsum=0 nrun=0 ndeg=0 ntime=0 failed=
            for k in $(seq "$DENSITY"); do
                n=${TAG}d$k
                case ${st[$n]} in running) nrun=$((nrun + 1)) ;; degraded) ndeg=$((ndeg + 1)) ;; *) ntime=$((ntime + 1)) ;; esac
                [ "${st[$n]}" = degraded ] && failed="$failed,$(failed_units "${pid[$n]}")"
                [ "${st[$n]}" = timeout ] && continue
                cgsum=$((cgsum + $(mem_bytes "$(memcg "$tool" "$n")")))
                monsum=$((monsum + $(rss_kib "$(monitor_pid "$tool" "$n" "${pid[$n]}")")))
            done
            rec "density.$tool.$mode.cgmem" "$cgsum"
            rec "density.$tool.$mode.monrss" "$((monsum * 1024))"
            state "density.$tool.$mode" "running=$nrun degraded=$ndeg timeout=$ntime failed=$(echo "${failed#,}" | tr , '\n' | grep . | sort | uniq -c | awk '{printf "%s%s x%s", (NR>1?", ":""), $2, $1}')"
            unset pid st
            for k in $(seq "$DENSITY"); do stop "$tool" "${TAG}d$k" >/dev/null 2>&1 & done
            wait
            for k in $(seq "$DENSITY"); do discard "$tool" "${TAG}d$k"; done
        done
    done
}

# --- runs, interleaved ---------------------------------------------------------------------
for RUN in $(seq "$RUNS"); do
    state load "$(cat /proc/loadavg)"
    boot_cycle
    log "run $RUN: create from a cached image"
    create_cycle
    log "run $RUN: unpack"
    unpack_cycle
    log "run $RUN: snapshots and copies"
    [ "$RUN" -gt 1 ] || snap_setup
    snap_cycle
    [ "$RUN" -gt "$DRUNS" ] || density_round
done
RUN=0

# --- report --------------------------------------------------------------------------------
LOAD_END=$(cat /proc/loadavg)
WALL_S=$(( ($(us) - T_START) / 1000000 ))
python3 - "$W/meta.json" <<EOF
import json, os, platform, subprocess, sys
def out(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except Exception:
        return "?"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
meta = {
    "date": "$(date -u +%Y-%m-%dT%H:%MZ)", "quick": $QUICK == 1, "runs": $RUNS, "density": $DENSITY,
    "density_runs": min($DRUNS, $RUNS), "exec_runs_per_run": $XRUNS, "wall_s": $WALL_S,
    "load_start": "$LOAD_START", "load_end": "$LOAD_END",
    "machine": {"cpu": cpu, "cpus": os.cpu_count(), "mem_gib": round(mem / 1048576, 1),
                "kernel": platform.release(), "cgroups": "$CGV" + (" (v1 controllers + cgroup2 for the guests)" if "$CGV" == "hybrid" else ""),
                "fs": out("findmnt", "-n", "-o", "FSTYPE", "-T", "/var/tmp"),
                "os": next((l.split("=", 1)[1].strip().strip('"') for l in open("/etc/os-release") if l.startswith("PRETTY_NAME")), "?")},
    "versions": {"hutch": out("git", "-C", "$REPO", "describe", "--always", "--dirty"),
                 "lxc": out("lxc-start", "--version"), "nspawn": out("systemd-nspawn", "--version"),
                 "tar": out("tar", "--version"), "xz": out("xz", "--version"), "zstd": out("zstd", "--version"),
                 "hyperfine": out("hyperfine", "--version")},
    "rootfs": {"path": "$SRC", "tar_bytes": $TAR_BYTES, "xz_bytes": os.path.getsize("$W/rootfs.tar.xz"),
               "zst_bytes": os.path.getsize("$W/rootfs.tar.zst")},
    "idmap": "$IDB:$IDN", "inotify_max_user_instances": [$INOTIFY_WAS, $INOTIFY_NOW],
}
json.dump(meta, open(sys.argv[1], "w"), indent=1)
EOF
python3 "$REPO/bench/report.py" --samples "$W/samples.tsv" --states "$W/states.tsv" --meta "$W/meta.json" \
    --out "$OUT" $([ $QUICK = 1 ] || echo "--docs $REPO/docs/benchmarks.md")
log "bench: done in ${WALL_S} s; load $LOAD_START -> $LOAD_END"
echo "bench: wrote $OUT.md, $OUT.json, $OUT.svg"
[ $ERRORS = 0 ] || { echo "bench: $ERRORS error(s), listed in $OUT.md" >&2; exit 1; }
