//! Debian bookworm with systemd, booted for real: unprivileged (the default) and
//! privileged. Needs root and tests/images/build.sh.

mod common;

use std::time::Duration;

use common::{Hutch, eventually, require};

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn debian_unprivileged_boots_clean_and_runs_commands() {
    let Some(img) = require("debian_unprivileged", &[]) else {
        return;
    };
    let h = Hutch::new("debian-unpriv");
    h.create("deb", &img.debian(), &[]);
    let out = h.ok(&["start", "deb", "--wait"]);
    assert!(out.contains("Started deb in"), "{out}");

    // PID 1 is systemd, and the boot is clean.
    assert_eq!(h.exec("deb", &["cat", "/proc/1/comm"]), "systemd");
    assert_eq!(h.exec("deb", &["systemctl", "is-system-running"]), "running");
    assert_eq!(h.exec("deb", &["systemctl", "--failed", "--no-legend", "--plain"]), "");
    assert_eq!(h.exec("deb", &["sh", "-c", "echo $container"]), "", "exec'd commands get a clean environment");
    assert_eq!(h.exec("deb", &["systemd-detect-virt", "--container"]), "container-other");

    // A real user namespace: container root is an unprivileged host range.
    let map = h.exec("deb", &["cat", "/proc/self/uid_map"]);
    let fields: Vec<&str> = map.split_whitespace().collect();
    assert_eq!(fields[0], "0");
    assert_ne!(fields[1], "0", "identity map: {map}");
    assert_eq!(fields[2], "65536");
    let info = h.info("deb");
    assert_eq!(info["idmap"]["uid"].as_u64().unwrap().to_string(), fields[1]);

    assert_eq!(h.exec("deb", &["hostname"]), "deb");

    // exec'd commands join the container's cgroup, next to init.
    // (On a v1-hybrid host the v1 lines show the namespace root: the container's own
    // directory in each controller.)
    let cgroups = h.exec("deb", &["cat", "/proc/self/cgroup"]);
    for line in cgroups.lines() {
        if let Some(path) = line.strip_prefix("0::") {
            assert_eq!(path, "/init.scope", "{cgroups}");
        } else {
            assert!(line.ends_with(":/"), "not in the container's cgroup: {cgroups}");
        }
    }
    assert!(cgroups.lines().any(|l| l.starts_with("0::")), "{cgroups}");

    // The boot contract: what init was given.
    let environ = h.exec("deb", &["sh", "-c", "tr '\\0' '\\n' < /proc/1/environ"]);
    assert!(environ.lines().any(|l| l == "container=hutch"), "{environ}");
    assert!(environ.lines().any(|l| l == "NOTIFY_SOCKET=/run/host/notify"), "{environ}");
    assert!(!environ.contains("HUTCH_ROOT"), "host environment leaked into init: {environ}");
    for (path, fstype) in [
        ("/dev", "tmpfs"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
        ("/dev/pts", "devpts"),
        ("/run", "tmpfs"),
        ("/proc", "proc"),
        ("/sys", "sysfs"),
    ] {
        assert_eq!(h.exec("deb", &["stat", "-fc", "%T", path]), fstype, "{path}");
    }
    assert_eq!(h.exec("deb", &["readlink", "/dev/ptmx"]), "pts/ptmx");
    // /dev holds the standard character devices and nothing else (no block devices).
    // (Tested with stat: readdir reports bind-mounted nodes as regular files.)
    let devices = h.exec("deb", &["sh", "-c", "for f in $(find /dev -path /dev/pts -prune -o -print); do if [ ! -L $f ] && { [ -c $f ] || [ -b $f ]; }; then echo $f; fi; done | sort | tr '\\n' ' '"]);
    let mut expected = "/dev/console /dev/full /dev/null /dev/random /dev/tty /dev/urandom /dev/zero".to_string();
    if std::path::Path::new("/dev/net/tun").exists() {
        expected = expected.replace("/dev/null ", "/dev/net/tun /dev/null ");
    }
    assert_eq!(devices.trim(), expected);
    // pivot_root, not chroot: no mount point of the host's tree is left in the
    // container's mount table (field 5 is the mount point).
    let mountinfo = h.exec("deb", &["cat", "/proc/self/mountinfo"]);
    for line in mountinfo.lines() {
        let mount_point = line.split(' ').nth(4).unwrap();
        assert!(
            !mount_point.starts_with("/var/tmp") && !mount_point.starts_with("/run/hutch"),
            "host mount visible inside: {line}"
        );
    }
    assert!(
        mountinfo.lines().any(|l| l.split(' ').nth(4) == Some("/") && l.contains("idmapped")),
        "the root is not the idmapped rootfs:\n{mountinfo}"
    );
    // Private propagation: a mount made inside never reaches the host.
    h.exec("deb", &["mount", "-t", "tmpfs", "hutch-propagation-probe", "/mnt"]);
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!host.contains("hutch-propagation-probe"), "a container mount propagated to the host");

    // Exit statuses pass through; death by signal N is 128+N.
    assert_eq!(h.exec_status("deb", &["true"]), 0);
    assert_eq!(h.exec_status("deb", &["sh", "-c", "exit 3"]), 3);
    assert_eq!(h.exec_status("deb", &["sh", "-c", "kill -9 $$"]), 128 + 9);
    assert_eq!(h.exec_status("deb", &["no-such-command"]), 127);

    // Pipes work without a terminal.
    let out = h.run_with_input(&["exec", "deb", "--", "cat"], b"hi\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");

    // No host variable leaks in.
    let env = h.cmd(&["exec", "deb", "--", "env"]).env("HUTCH_HOST_SECRET", "leaked").output().unwrap();
    assert!(!String::from_utf8_lossy(&env.stdout).contains("HUTCH_HOST_SECRET"));

    // Masked and read-only paths (whichever of the masked files this kernel has).
    for f in ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"] {
        if std::path::Path::new(f).exists() {
            assert_eq!(h.exec("deb", &["sh", "-c", &format!("wc -c < {f}")]), "0", "{f} is not masked");
        }
    }
    assert_ne!(h.exec_status("deb", &["sh", "-c", "echo 1 > /proc/sys/kernel/panic"]), 0);
    assert_ne!(h.exec_status("deb", &["touch", "/sys/kernel/x"]), 0);
    assert_eq!(h.exec("deb", &["stat", "-fc", "%T", "/sys/fs/cgroup"]), "cgroup2fs");

    // stop leaves no process behind.
    let cgroups = h.cgroup_dirs("deb");
    let out = h.ok(&["stop", "deb"]);
    assert!(out.contains("shut down"), "{out}");
    for d in &cgroups {
        let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
        assert!(procs.trim().is_empty(), "processes left in {}: {procs}", d.display());
    }
    assert_eq!(h.state("deb"), "stopped");

    // A reboot from inside brings it back; a poweroff from inside leaves it stopped.
    h.ok(&["start", "deb", "--wait"]);
    let first = h.info("deb")["pid"].as_i64().unwrap();
    let _ = h.run(&["exec", "deb", "--", "systemctl", "reboot"]);
    assert!(
        eventually(Duration::from_secs(60), || {
            let i = h.info("deb");
            i["state"] == "running" && i["pid"].as_i64().is_some_and(|p| p != first) && i["boots"] == 2
        }),
        "did not come back after reboot: {}",
        h.info("deb")
    );
    assert!(eventually(Duration::from_secs(60), || h
        .run(&["exec", "deb", "--", "systemctl", "is-system-running"])
        .stdout
        .starts_with(b"running")));
    let _ = h.run(&["exec", "deb", "--", "systemctl", "poweroff"]);
    assert!(eventually(Duration::from_secs(60), || h.state("deb") == "stopped"), "still up after poweroff");
    assert_eq!(h.info("deb")["last_exit"]["how"], "poweroff");

    // destroy leaves nothing, not even the tree's shared parent cgroups.
    h.ok(&["destroy", "deb"]);
    h.assert_gone("deb");
    for d in h.cgroup_dirs("deb") {
        assert!(!d.parent().unwrap().exists(), "{} left", d.parent().unwrap().display());
    }
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn debian_privileged_boots_clean() {
    let Some(img) = require("debian_privileged", &[]) else {
        return;
    };
    let h = Hutch::new("debian-priv");
    h.create("pdeb", &img.debian(), &["--privileged"]);
    h.ok(&["start", "pdeb", "--wait"]);
    assert_eq!(h.exec("pdeb", &["systemctl", "is-system-running"]), "running");
    assert_eq!(
        h.exec("pdeb", &["cat", "/proc/self/uid_map"]).split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "4294967295"]
    );
    // Even privileged, dangerous capabilities are gone from the bounding set.
    let capbnd = h.exec("pdeb", &["sh", "-c", "grep CapBnd /proc/self/status"]);
    let bits = u64::from_str_radix(capbnd.split_whitespace().last().unwrap(), 16).unwrap();
    for cap in [16, 17, 25] {
        assert_eq!(bits & (1 << cap), 0, "capability {cap} still in {capbnd}");
    }
    h.ok(&["destroy", "--force", "pdeb"]);
    h.assert_gone("pdeb");
}
