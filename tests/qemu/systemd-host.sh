#!/usr/bin/env bash
# hutch on a cgroup v2 + systemd host, emulated with QEMU (these machines have no
# systemd; most users' hosts do). One guest boot runs every check (a boot costs about
# a minute under TCG emulation), inside the guest, as root:
#   - a Debian container boots to `running` with no failed units, in its own delegated
#     scope machine.slice/hutch-deb.scope (init in payload/, the monitor in
#     supervisor/), registered with systemd-machined (`machinectl list`);
#   - an in-guest reboot re-registers the new init; stop, a stop after the monitor was
#     killed, and destroy leave no scope, machine or cgroup behind;
#   - a busybox container runs the same way;
#   - packaging/hutch@.service: `systemctl start/stop hutch@deb`, and a poweroff from
#     inside ends the service.
#
# usage: tests/qemu/systemd-host.sh [HUTCH_BINARY]   (default: cargo build, target/debug/hutch)
# env:   W        guest work directory, kept between runs (default /var/tmp/hutch-qemu-systemd)
#        TIMEOUT  seconds for the whole guest run (default 900)
#        CI=true  a missing prerequisite (root, QEMU, the guest) fails instead of skipping
# Builds the guest with tests/qemu/systemd-host-guest.sh when missing (a few minutes),
# from the Debian test rootfs of tests/images/build.sh. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
W=${W:-/var/tmp/hutch-qemu-systemd}
export TIMEOUT=${TIMEOUT:-900}
IMAGES=${HUTCH_TEST_IMAGES:-/var/cache/hutch-tests}
RECIPE=$REPO/tests/qemu/systemd-host-guest.sh
T0=$(date +%s)

unable() { # the test cannot run here: fail under CI, skip otherwise
    if [ "${CI:-}" = true ]; then echo "systemd-host: FAILED: $*" >&2; exit 1; fi
    echo "systemd-host: SKIPPED: $*" >&2
    exit 0
}
[ "$(id -u)" = 0 ] || unable "needs root (it builds a guest image and boots it)"
[ "$(uname -m)" = x86_64 ] || unable "needs an x86_64 host for qemu-system-x86_64"

BIN=${1:-}
if [ -z "$BIN" ]; then
    cargo build --locked --quiet --bin hutch
    BIN=$REPO/target/debug/hutch
fi
[ -x "$BIN" ] || { echo "systemd-host: $BIN is not an executable" >&2; exit 1; }
tests/images/build.sh >/dev/null || unable "could not build the test root filesystems (tests/images/build.sh)"

# The guest: rebuilt when missing or when its recipe's build changed.
stamp=$(sed -n '/^build() {/,/^}/p' "$RECIPE" | sha256sum | cut -d' ' -f1)
mkdir -p "$W"
if [ ! -s "$W/guest.img" ] || [ "$(cat "$W/recipe.sha256" 2>/dev/null)" != "$stamp" ]; then
    echo "systemd-host: building the guest in $W (a few minutes; log: $W/build.log)"
    rm -f "$W/recipe.sha256"
    if ! W=$W SRC=$IMAGES/debian-bookworm bash "$RECIPE" build >"$W/build.log" 2>&1; then
        tail -20 "$W/build.log" >&2
        unable "could not build the guest image"
    fi
    echo "$stamp" >"$W/recipe.sha256"
fi
command -v qemu-system-x86_64 >/dev/null || unable "qemu-system-x86_64 is not installed"

# The share (/mnt/host in the guest): binary, unit file, root filesystems, the script.
S=$W/share
mkdir -p "$S"
rm -rf "$S/diag" "$S/rc"
mkdir -p "$S/diag"
install -m 755 "$BIN" "$S/hutch"
# The monitor is its own binary, installed beside hutch.
install -m 755 "$(dirname "$BIN")/hutch-monitor" "$S/hutch-monitor"
install -m 644 packaging/hutch@.service "$S/hutch@.service"
install -m 644 packaging/hutch.service "$S/hutch.service"
# As archives: one file each is far quicker through 9p under emulation than 10k files.
for img in debian-bookworm busybox; do
    rm -rf "${S:?}/$img"
    if [ ! -s "$S/$img.tar.zst" ] || [ "$IMAGES/$img" -nt "$S/$img.tar.zst" ]; then
        tar -C "$IMAGES/$img" --numeric-owner --xattrs -cf - . | zstd -q -T0 -3 >"$S/$img.tar.zst.tmp"
        mv "$S/$img.tar.zst.tmp" "$S/$img.tar.zst"
    fi
done

cat >"$S/run.sh" <<'GUEST'
#!/bin/bash
# Runs inside the guest (systemd 252, cgroup v2) as root; see tests/qemu/systemd-host.sh.
set -u
export SYSTEMD_PAGER=cat PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
cp /mnt/host/hutch /mnt/host/hutch-monitor /usr/bin/   # the guest disk is a throwaway snapshot
H=/usr/bin/hutch
D=/mnt/host/diag
passed=0 failed=0
up() { cut -d' ' -f1 /proc/uptime; }
ok()   { echo "[$(up)] PASS: $*"; passed=$((passed + 1)); }
bad()  { echo "[$(up)] FAIL: $*"; failed=$((failed + 1)); logs; }
logs() { # the monitors' logs as they are now (a destroy removes them)
    mkdir -p $D
    for c in deb bb; do cp /var/lib/hutch/containers/$c/logs/monitor.log $D/$c-monitor.log 2>/dev/null; done
}
check() { # check DESCRIPTION COMMAND...: the command's output is shown if it fails
    local d=$1; shift
    if "$@" >/tmp/check.out 2>&1; then ok "$d"; else bad "$d (status $?)"; tail -15 /tmp/check.out | sed 's/^/    /'; fi
}
expect() { # expect DESCRIPTION WANT GOT
    if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: want [$2], got [$3]"; fi
}
eventually() { # eventually SECONDS COMMAND...: true once COMMAND succeeds
    local end=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do [ $SECONDS -ge $end ] && return 1; sleep 0.5; done
}
hx() { timeout 600 $H "$@"; }
field() { hx info "$1" --format json | grep -o "\"$2\": *[0-9]*" | head -1 | grep -o '[0-9]*$'; }
cg() { sed -n 's/^0:://p' "/proc/$1/cgroup"; }
no_scope() { ! systemctl is-active -q "$1" && [ ! -e "/sys/fs/cgroup/machine.slice/$1" ]; }
no_machine() { ! machinectl list --no-legend | grep -qw "^$1"; }
diag() { # keep what explains a failure
    mkdir -p $D
    journalctl -b --no-pager -n 300 >$D/journal.txt 2>&1
    systemctl list-units --all --no-pager 'hutch*' >$D/units.txt 2>&1
}

# Limits on cgroup v2, for a running container $1 whose cgroup is /sys/fs/cgroup$2
# (set before its start: memory 256MiB, pids 300, cpus 1, cpu_weight 200).
check_limits() {
    local d=/sys/fs/cgroup$2
    expect "$1 memory.max" 268435456 "$(cat $d/memory.max)"
    expect "$1 pids.max" 300 "$(cat $d/pids.max)"
    expect "$1 cpu.max" "100000 100000" "$(cat $d/cpu.max)"
    expect "$1 cpu.weight" 200 "$(cat $d/cpu.weight)"
    check "$1 limits live: memory 300MiB" hx config set "$1" limits.memory 300MiB
    expect "$1 memory.max after the live change" 314572800 "$(cat $d/memory.max)"
    # The guest's systemd still runs its services with controllers in the delegated subtree.
    expect "$1 guest subtree has memory and pids" "memory pids" \
        "$(hx exec "$1" -- sh -c 'tr " " "\n" </sys/fs/cgroup/cgroup.subtree_control | grep -E "^(memory|pids)$" | tr "\n" " " | sed "s/ $//"')"
    # A real allocation past the limit is OOM-killed inside; the container lives on. It
    # runs as a guest service (collected when it fails), as a real workload would: a
    # process that `hutch exec` puts in init's own cgroup and the OOM killer takes marks
    # the guest's init.scope failed (seen here; where exec places its command is left
    # for the exec issue).
    if hx exec "$1" -- systemd-run --quiet --wait --pipe --collect sh -c 'head -c 600M /dev/zero | tail >/dev/null' >/dev/null 2>&1; then
        bad "$1: an allocation past memory.max was not stopped"
    else
        ok "$1: an allocation past memory.max was OOM-killed"
    fi
    local state
    state=$(hx exec "$1" -- systemctl is-system-running)
    expect "$1 still running after the OOM kill" running "$state"
    # Which guest unit failed, if one did (kept in the diagnostics).
    [ "$state" = running ] || hx exec "$1" -- sh -c 'systemctl --failed --no-legend; for u in $(systemctl --failed --no-legend --plain | cut -d" " -f1); do journalctl -b -u "$u" --no-pager | tail -20; done' 2>&1 | sed 's/^/    /'
    check "$1 info counts the OOM kill" sh -c "$H info $1 --format json | grep -q '\"oom_kills\": [1-9]'"
    check "$1 top shows it" sh -c "$H top --format json -n 1 --interval 0.3 | grep -q '\"name\":\"$1\"'"
}

echo "kernel $(uname -r), $(systemctl --version | head -1), $(stat -fc %T /sys/fs/cgroup)"
check "PID 1 is systemd" test -d /run/systemd/system
expect "cgroup2 only" cgroup2fs "$(stat -fc %T /sys/fs/cgroup)"
check "systemd-machined is installed" test -x /lib/systemd/systemd-machined

# 1. A Debian container in its own delegated scope.
# No NIC: networking (dnsmasq, nftables) is tested elsewhere and not installed here.
check "create deb" hx create deb --from-tar /mnt/host/debian-bookworm.tar.zst --network none
for kv in memory=256MiB memory_swap=0 pids=300 cpus=1 cpu_weight=200; do
    check "deb limits.${kv%%=*}" hx config set deb "limits.${kv%%=*}" "${kv#*=}"
done
[ $failed = 0 ] || { diag; echo "systemd-host: $passed passed, $failed failed"; exit 1; }
check "start deb" hx start deb --wait
init=$(field deb pid); mon=$(field deb monitor_pid)
expect "deb boots to running" running "$(hx exec deb -- systemctl is-system-running)"
expect "deb has no failed units" "" "$(hx exec deb -- systemctl --failed --no-legend --plain)"
check "hutch-deb.scope is active" systemctl is-active -q hutch-deb.scope
systemctl status --no-pager hutch-deb.scope | head -12
expect "hutch-deb.scope is delegated" Delegate=yes "$(systemctl show -p Delegate hutch-deb.scope)"
expect "hutch-deb.scope is in machine.slice" Slice=machine.slice "$(systemctl show -p Slice hutch-deb.scope)"
expect "init's cgroup is the payload's (the guest's systemd made init.scope)" \
    /machine.slice/hutch-deb.scope/payload/init.scope "$(cg "$init")"
expect "the monitor's cgroup is the supervisor leaf" /machine.slice/hutch-deb.scope/supervisor "$(cg "$mon")"
expect "hutch info names the payload" 1 "$(hx info deb --format json | grep -c '"/sys/fs/cgroup/machine.slice/hutch-deb.scope/payload"')"
machinectl list --no-pager
check "machinectl list shows deb" sh -c "machinectl list --no-legend | grep -qw '^deb'"
expect "machine deb is the scope" Unit=hutch-deb.scope "$(machinectl show deb -p Unit)"
expect "machine deb is a container of hutch" "Class=container Service=hutch" \
    "$(machinectl show deb -p Class --value | sed 's/^/Class=/') $(machinectl show deb -p Service --value | sed 's/^/Service=/')"
expect "machine deb's leader is init" "Leader=$init" "$(machinectl show deb -p Leader)"
check_limits deb /machine.slice/hutch-deb.scope/payload

# 2. An in-guest reboot: same scope and monitor, the new init registered.
rebooted() { [ "$(field deb boots)" = 2 ] && [ "$(hx exec deb -- systemctl is-system-running)" = running ]; }
hx exec deb -- systemctl reboot >/dev/null 2>&1
check "deb rebooted from inside" eventually 120 rebooted
init2=$(field deb pid)
expect "the monitor survives the reboot" "$mon" "$(field deb monitor_pid)"
expect "machine deb's leader is the new init" "Leader=$init2" "$(machinectl show deb -p Leader)"
expect "the new init is in the payload" /machine.slice/hutch-deb.scope/payload/init.scope "$(cg "$init2")"

# 3. stop: the scope, the machine and the cgroup all go.
check "stop deb" hx stop deb
check "no hutch-deb.scope after stop" eventually 30 no_scope hutch-deb.scope
check "no machine deb after stop" eventually 30 no_machine deb

# 4. The monitor killed, then a stop done by the CLI alone.
check "start deb again" hx start deb --wait
kill -9 "$(field deb monitor_pid)"
check "stop deb without its monitor" hx stop deb
check "no hutch-deb.scope after a monitor-less stop" eventually 30 no_scope hutch-deb.scope
check "no machine deb after a monitor-less stop" eventually 30 no_machine deb

# 5. busybox, the same way.
check "create bb" hx create bb --from-tar /mnt/host/busybox.tar.zst --network none
check "start bb" hx start bb --wait
expect "bb runs" bb "$(hx exec bb -- hostname)"
check "hutch-bb.scope is active" systemctl is-active -q hutch-bb.scope
check "machinectl list shows bb" sh -c "machinectl list --no-legend | grep -qw '^bb'"
expect "bb's init is in its payload" /machine.slice/hutch-bb.scope/payload "$(cg "$(field bb pid)")"
check "stop bb" hx stop bb
check "destroy bb" hx destroy bb
check "no hutch-bb.scope after destroy" eventually 30 no_scope hutch-bb.scope
check "no machine bb after destroy" eventually 30 no_machine bb

# 6. hutch@.service: the container in the service's own (delegated) cgroup.
cp /mnt/host/hutch@.service /etc/systemd/system/ && systemctl daemon-reload
check "systemctl start hutch@deb" timeout 360 systemctl start hutch@deb
systemctl status --no-pager hutch@deb | head -14
check "hutch@deb is active" systemctl is-active -q hutch@deb
expect "deb runs under hutch@deb" running "$(hx exec deb -- systemctl is-system-running)"
expect "the service's main pid is the monitor" "MainPID=$(field deb monitor_pid)" "$(systemctl show -p MainPID hutch@deb)"
expect "init is in the service's payload" /machine.slice/hutch@deb.service/payload/init.scope "$(cg "$(field deb pid)")"
expect "machine deb is the service" Unit=hutch@deb.service "$(machinectl show deb -p Unit)"
check "no scope of its own" no_scope hutch-deb.scope
check "systemctl stop hutch@deb" timeout 300 systemctl stop hutch@deb
expect "deb is stopped by the service's stop" stopped "$(hx info deb --format json | grep -o '"state": *"[a-z]*"' | grep -o '[a-z]*"$' | tr -d '"')"
expect "it was a clean shutdown" 1 "$(hx info deb --format json | grep -c 'shut down by hutch stop')"
check "hutch@deb is inactive" sh -c "! systemctl is-active -q hutch@deb"
check "no machine deb after the service stopped" eventually 30 no_machine deb
check "no cgroup of hutch@deb left" eventually 30 test ! -e /sys/fs/cgroup/machine.slice/hutch@deb.service
# A poweroff from inside ends the service too.
check "systemctl start hutch@deb again" timeout 360 systemctl start hutch@deb
hx exec deb -- systemctl poweroff >/dev/null 2>&1
check "a poweroff inside ends hutch@deb" eventually 120 sh -c "! systemctl is-active -q hutch@deb"
expect "and leaves it inactive, not failed" ActiveState=inactive "$(systemctl show -p ActiveState hutch@deb)"
expect "and it ended as a poweroff" 1 "$(hx info deb --format json | grep -c '"how": *"poweroff"')"
check "no machine deb after the poweroff" eventually 30 no_machine deb

# 6b. hutch.service (what the package enables): autostart containers come up in order
# when it starts, and go down highest order first when it stops, as at a shutdown.
cp /mnt/host/hutch.service /etc/systemd/system/ && systemctl daemon-reload
for c in first second; do
    check "create $c" hx create $c --from-tar /mnt/host/busybox.tar.zst --network none
    check "autostart $c" hx config set $c autostart.enabled true
done
hx config set first autostart.order 1 >/dev/null && hx config set first autostart.delay 1 >/dev/null
hx config set second autostart.order 2 >/dev/null
check "systemctl start hutch.service" timeout 300 systemctl start hutch.service
for c in first second; do
    expect "$c runs after hutch.service started" running "$(hx info $c --format json | grep -o '"state": *"[a-z]*"' | grep -o '[a-z]*"$' | tr -d '"')"
done
f=$(field first started_at_ms) s=$(field second started_at_ms)
check "order 2 started after order 1 and its 1 s delay" test $((s - f)) -ge 1000
check "the scopes wait for hutch.service at shutdown" sh -c "systemctl show -p Before hutch-first.scope | grep -q hutch.service"
check "systemctl stop hutch.service" timeout 300 systemctl stop hutch.service
for c in first second; do
    expect "$c shut down cleanly by hutch.service's stop" 1 "$(hx info $c --format json | grep -c 'shut down by hutch stop')"
done
fa=$(hx info first --format json | grep -o '"at_ms": *[0-9]*' | grep -o '[0-9]*$')
sa=$(hx info second --format json | grep -o '"at_ms": *[0-9]*' | grep -o '[0-9]*$')
check "order 2 stopped before order 1" test "$sa" -le "$fa"
for c in first second; do check "destroy $c" hx destroy $c; done

# 7. destroy leaves nothing.
check "destroy deb" hx destroy deb
check "no hutch cgroups left" sh -c "! find /sys/fs/cgroup -name 'hutch*' | grep -q ."
expect "no hutch machines left" "" "$(machinectl list --no-legend)"
check "no hutch mounts left" sh -c "! grep -q hutch /proc/self/mountinfo"

# 8. The guest's own shutdown and its next boot: two autostart containers and
# hutch.service enabled. The guest powers off after this script (hutch.service stops
# them; what they said then is kept on the share, which the drop-in keeps mounted until
# it has stopped), then boots again from the same disk (boot.sh: hutch.service starts
# them in order). Both are checked from the host.
for c in first second; do
    hx create $c --from-tar /mnt/host/busybox.tar.zst --network none >/dev/null
    hx config set $c autostart.enabled true >/dev/null
done
hx config set first autostart.delay 1 >/dev/null
hx config set second autostart.order 2 >/dev/null
mkdir -p /etc/systemd/system/hutch.service.d
cat >/etc/systemd/system/hutch.service.d/keep.conf <<'UNIT'
[Unit]
RequiresMountsFor=/mnt/host
[Service]
ExecStopPost=/bin/sh -c 'for c in first second; do /usr/bin/hutch info $c --format json >/mnt/host/diag/shutdown-$c.json; done'
UNIT
systemctl daemon-reload
check "systemctl enable hutch.service" systemctl enable -q hutch.service
check "hutch.service up for the shutdown" timeout 300 systemctl restart hutch.service
expect "second runs before the shutdown" running "$(hx info second --format json | grep -o '"state": *"[a-z]*"' | grep -o '[a-z]*"$' | tr -d '"')"

[ $failed = 0 ] || diag
echo "systemd-host: $passed passed, $failed failed"
[ $failed = 0 ]
GUEST
chmod 755 "$S/run.sh"

# The second boot's checks (section 8).
cat >"$S/boot.sh" <<'GUEST'
#!/bin/bash
set -u
export SYSTEMD_PAGER=cat PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
passed=0 failed=0
ok()  { echo "PASS: $*"; passed=$((passed + 1)); }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }
state() { hutch info "$1" --format json | grep -o '"state": *"[a-z]*"' | grep -o '[a-z]*"$' | tr -d '"'; }
for _ in $(seq 300); do systemctl is-active -q hutch.service && break; sleep 1; done
if systemctl is-active -q hutch.service; then ok "hutch.service started at boot"; else bad "hutch.service did not start at boot"; systemctl status --no-pager hutch.service | tail -20; fi
for c in first second; do
    if [ "$(state $c)" = running ]; then ok "$c came up at boot"; else bad "$c is $(state $c) after the boot"; fi
done
f=$(hutch info first --format json | grep -o '"started_at_ms": *[0-9]*' | grep -o '[0-9]*$')
s=$(hutch info second --format json | grep -o '"started_at_ms": *[0-9]*' | grep -o '[0-9]*$')
if [ -n "$f" ] && [ -n "$s" ] && [ $((s - f)) -ge 1000 ]; then ok "order 2 came up after order 1 and its delay"; else bad "boot order: first $f, second $s"; fi
echo "systemd-host (second boot): $passed passed, $failed failed"
[ $failed = 0 ]
GUEST
chmod 755 "$S/boot.sh"

# Both boots on one copy-on-write disk over the guest image, which stays as built.
command -v qemu-img >/dev/null || unable "qemu-img is not installed"
rm -f "$W/boot.qcow2"
qemu-img create -q -f qcow2 -F raw -b "$W/guest.img" "$W/boot.qcow2"
export DRIVE=file=$W/boot.qcow2,format=qcow2,if=virtio
echo "systemd-host: booting the guest (a few minutes under emulation; console: $W/console.log)"
rc=0
(cd "$W" && W=$W bash "$RECIPE" run) || rc=$?
cp "$W/console.log" "$W/console-1.log"
for f in "$S"/diag/*; do
    [ -e "$f" ] || continue
    echo "----- $(basename "$f") (last 40 lines)"
    tail -40 "$f"
done
echo "systemd-host: guest exit status $rc after $(($(date +%s) - T0)) s"
# What hutch.service's stop left at the guest's shutdown (section 8).
for c in first second; do
    f=$S/diag/shutdown-$c.json
    if grep -q 'shut down by hutch stop' "$f" 2>/dev/null; then
        echo "systemd-host: PASS: $c was shut down cleanly by hutch.service at the guest's shutdown"
    else
        echo "systemd-host: FAIL: $c was not shut down cleanly at the guest's shutdown: $(cat "$f" 2>/dev/null | tr -d '\n' | head -c 300)"
        [ "$rc" = 0 ] && rc=1
    fi
done
if [ "$rc" = 0 ]; then
    fa=$(grep -o '"at_ms": *[0-9]*' "$S/diag/shutdown-first.json" | grep -o '[0-9]*$')
    sa=$(grep -o '"at_ms": *[0-9]*' "$S/diag/shutdown-second.json" | grep -o '[0-9]*$')
    if [ "$sa" -le "$fa" ]; then echo "systemd-host: PASS: at the shutdown, order 2 stopped before order 1"
    else echo "systemd-host: FAIL: at the shutdown, order 1 stopped before order 2 ($fa < $sa)"; rc=1; fi
fi
if [ "$rc" = 0 ]; then
    echo "systemd-host: booting the guest again from the same disk (console: $W/console.log)"
    mv "$S/boot.sh" "$S/run.sh"
    (cd "$W" && W=$W bash "$RECIPE" run) || rc=$?
    grep -a -E '^(PASS|FAIL): ' "$W/console.log" | sed 's/^/systemd-host (second boot): /'
    echo "systemd-host: second boot exit status $rc"
fi
rm -f "$W/boot.qcow2"
if [ "$rc" = 98 ]; then
    tail -30 "$W/console.log" >&2
    echo "systemd-host: the guest did not run the checks (see $W/console.log)" >&2
fi
# The guest's summary ("N passed, M failed") last, for whoever reads the closing line.
grep -a -o 'systemd-host: [0-9]* passed, [0-9]* failed' "$W/console-1.log" | tail -1 || true
exit "$rc"
