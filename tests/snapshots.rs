//! Snapshots (`hutch snapshot`), copies (`hutch copy`), renames and ephemeral
//! containers, on real containers: data comes back byte for byte on each storage kind,
//! a running Debian is snapshotted and restored with `--stop`, a copy boots beside its
//! original with its own identity, ephemeral containers go when they stop, and
//! interrupted commands leave nothing behind.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Hutch, ScratchBtrfs, eventually, require};

/// Files written in a container, then changed: what each snapshot must bring back.
fn write_v1(h: &Hutch, c: &str) -> String {
    h.exec(c, &["sh", "-c", "mkdir -p /data && dd if=/dev/urandom of=/data/blob bs=64k count=16 2>/dev/null"]);
    h.exec(c, &["sh", "-c", "echo one > /data/small && echo gone-later > /data/doomed && rm -f /etc/motd"]);
    fingerprint(h, c)
}

fn change(h: &Hutch, c: &str) {
    h.exec(c, &["sh", "-c", "dd if=/dev/urandom of=/data/blob bs=64k count=8 conv=notrunc 2>/dev/null"]);
    h.exec(c, &["sh", "-c", "echo two > /data/small && rm /data/doomed && echo new > /data/added"]);
}

/// What the container sees of the test's files: content hashes and which exist.
fn fingerprint(h: &Hutch, c: &str) -> String {
    h.exec(c, &["sh", "-c", "cd /data && sha256sum * && ls -a /data && ls /etc/motd 2>&1 || true"])
}

fn snapshot_names(h: &Hutch, c: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&h.ok(&["snapshot", "list", c, "--format", "json"])).unwrap();
    v["snapshots"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_string()).collect()
}

/// Snapshot, change, snapshot, restore the older, then the newer: each comes back
/// exactly, and restoring the older keeps the newer. Stopped throughout except where
/// a live snapshot is taken.
fn round_trip(h: &Hutch, c: &str) {
    h.ok(&["start", c, "--wait"]);
    let v1 = write_v1(h, c);
    h.ok(&["stop", c]);
    assert!(h.ok(&["snapshot", "create", c]).contains("Snapshot snap0"));
    h.ok(&["start", c, "--wait"]);
    change(h, c);
    let v2 = fingerprint(h, c);
    assert_ne!(v1, v2);
    // A live snapshot: the container is frozen for it and runs on after.
    h.ok(&["snapshot", "create", c, "live"]);
    assert_eq!(h.state(c), "running");
    h.exec(c, &["sh", "-c", "echo three > /data/small"]);
    h.ok(&["stop", c]);
    assert_eq!(snapshot_names(h, c), ["snap0", "live"]);

    h.ok(&["snapshot", "restore", c, "snap0"]);
    h.ok(&["start", c, "--wait"]);
    assert_eq!(fingerprint(h, c), v1, "snap0 comes back byte for byte");
    assert_eq!(snapshot_names(h, c), ["snap0", "live"], "the newer snapshot is kept");
    h.ok(&["snapshot", "restore", c, "live", "--stop"]);
    assert_eq!(h.state(c), "running");
    assert_eq!(fingerprint(h, c), v2, "the live snapshot holds what was on disk when it was taken");

    // Rename and delete; the remaining snapshot still restores.
    h.ok(&["snapshot", "rename", c, "live", "second"]);
    h.ok(&["snapshot", "delete", c, "snap0"]);
    assert_eq!(snapshot_names(h, c), ["second"]);
    h.exec(c, &["sh", "-c", "rm -rf /data"]);
    h.ok(&["snapshot", "restore", c, "second", "--stop"]);
    assert_eq!(fingerprint(h, c), v2);
    let list: serde_json::Value = serde_json::from_str(&h.ok(&["list", "--format", "json"])).unwrap();
    let me = list["containers"].as_array().unwrap().iter().find(|e| e["name"] == c).unwrap().clone();
    assert_eq!(me["snapshots"], 1, "{me}");
    let info = h.info(c);
    assert_eq!(info["disk"]["snapshots"][0]["name"], "second", "{info}");
    assert!(info["disk"]["snapshots"][0]["size"].as_u64().unwrap() > 0, "{info}");
    h.ok(&["stop", c]);
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn snapshots_restore_byte_for_byte_on_overlay_and_dir() {
    if require("snapshots_overlay_dir", &["busybox"]).is_none() {
        return;
    }
    let h = Hutch::new("snap-kinds");
    h.ok(&["create", "ov", "-t", "busybox", "--network", "none"]);
    h.ok(&["create", "full", "-t", "busybox", "--storage", "dir", "--network", "none"]);
    round_trip(&h, "ov");
    round_trip(&h, "full");
    // overlay: snapshots are layers, and nothing unused is left in overlay/.
    let cfg = h.ok(&["config", "show", "ov"]);
    assert!(cfg.contains("layers = ["), "{cfg}");
    let dirs: Vec<String> = std::fs::read_dir(h.paths().container("ov").join("overlay"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let snaps = std::fs::read_to_string(h.paths().container("ov").join("snapshots/second/snapshot.toml")).unwrap();
    for d in &dirs {
        assert!(
            d == "work" || cfg.contains(d.as_str()) || snaps.contains(d.as_str()),
            "unused layer {d} left: {dirs:?}"
        );
    }
    for c in ["ov", "full"] {
        h.ok(&["destroy", c]);
        h.assert_gone(c);
    }
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn snapshots_restore_byte_for_byte_on_btrfs() {
    if require("snapshots_btrfs", &["busybox", "mkfs.btrfs"]).is_none() {
        return;
    }
    let fs = ScratchBtrfs::new("snap-btrfs");
    let h = Hutch::at(&fs.mnt.join("hutch"));
    h.ok(&["create", "bt", "-t", "busybox", "--network", "none"]);
    assert_eq!(h.ok(&["config", "get", "bt", "rootfs.storage"]).trim(), "btrfs");
    round_trip(&h, "bt");
    // A btrfs snapshot is a subvolume (its root directory is inode 256).
    let ino = std::os::unix::fs::MetadataExt::ino(
        &std::fs::metadata(h.paths().container("bt").join("snapshots/second/rootfs")).unwrap(),
    );
    assert_eq!(ino, 256);
    h.ok(&["copy", "bt/second", "bt2"]);
    let ino =
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(h.paths().container("bt2").join("rootfs")).unwrap());
    assert_eq!(ino, 256, "a copy on btrfs is a snapshot");
    // Imported on a btrfs root, the rootfs and each snapshot are subvolumes again.
    let file = h.root.join("bt.hutch").display().to_string();
    h.ok(&["export", "bt", &file, "--snapshots", "--compression", "xz"]);
    h.ok(&["import", &file, "bt3"]);
    assert_eq!(h.ok(&["config", "get", "bt3", "rootfs.storage"]).trim(), "btrfs");
    let subvol =
        |p: &str| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(h.paths().container("bt3").join(p)).unwrap());
    assert_eq!((subvol("rootfs"), subvol("snapshots/second/rootfs")), (256, 256));
    assert_eq!(snapshot_names(&h, "bt3"), snapshot_names(&h, "bt"));
    h.ok(&["snapshot", "restore", "bt3", "second"]);
    for c in ["bt", "bt2", "bt3"] {
        h.ok(&["destroy", c]);
        h.assert_gone(c);
    }
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn bad_snapshot_requests_are_refused_and_change_nothing() {
    if require("snapshots_bad", &["busybox"]).is_none() {
        return;
    }
    let h = Hutch::new("snap-bad");
    h.ok(&["create", "c", "-t", "busybox", "--network", "none"]);
    h.ok(&["snapshot", "create", "c", "one"]);
    let before = h.ok(&["snapshot", "list", "c", "--format", "json"]);
    let err = h.fails(&["snapshot", "restore", "c", "nope"]);
    assert!(err.contains("failed to find snapshot nope of c") && err.contains("hutch snapshot list c"), "{err}");
    let err = h.fails(&["snapshot", "create", "c", "one"]);
    assert!(err.contains("already exists") && err.contains("snapshot delete c one"), "{err}");
    let err = h.fails(&["snapshot", "rename", "c", "nope", "two"]);
    assert!(err.contains("failed to find snapshot nope"), "{err}");
    let err = h.fails(&["snapshot", "create", "c", "../evil"]);
    assert!(err.contains("\"../evil\""), "{err}");
    let err = h.fails(&["snapshot", "delete", "ghost", "one"]);
    assert!(err.contains("failed to find container ghost"), "{err}");
    h.ok(&["start", "c", "--wait"]);
    h.exec("c", &["sh", "-c", "echo running > /root/state"]);
    let err = h.fails(&["snapshot", "restore", "c", "one"]);
    assert!(err.contains("it is running") && err.contains("--stop"), "{err}");
    assert_eq!(h.state("c"), "running");
    assert_eq!(h.exec("c", &["cat", "/root/state"]), "running");
    let err = h.fails(&["copy", "c", "c"]);
    assert!(err.contains("already exists"), "{err}");
    let err = h.fails(&["rename", "c", "d"]);
    assert!(err.contains("failed to rename c: it is running"), "{err}");
    assert_eq!(h.ok(&["snapshot", "list", "c", "--format", "json"]), before);
    assert!(!h.paths().container("d").exists());
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn a_running_debian_is_snapshotted_copied_and_restored_with_stop() {
    let Some(img) = require("snapshots_debian", &[]) else {
        return;
    };
    let h = Hutch::new("snap-debian");
    h.create("web", &img.debian(), &[]);
    h.ok(&["start", "web", "--wait"]);
    assert_eq!(h.exec("web", &["systemctl", "is-system-running"]), "running");
    h.exec("web", &["sh", "-c", "echo before > /root/marker"]);
    h.ok(&["snapshot", "create", "web", "base"]);
    assert_eq!(h.state("web"), "running");
    h.exec("web", &["sh", "-c", "echo after > /root/marker && rm /etc/issue"]);

    // A copy of the running container boots beside it with its own identity.
    let out = h.run(&["copy", "web", "web2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(h.state("web"), "running", "the original runs on after the copy");
    h.ok(&["start", "web2", "--wait"]);
    assert_eq!(h.exec("web2", &["systemctl", "is-system-running"]), "running");
    assert_eq!(h.exec("web2", &["cat", "/root/marker"]), "after");
    assert_eq!(h.exec("web2", &["hostname"]), "web2");
    assert_ne!(h.exec("web2", &["cat", "/etc/machine-id"]), h.exec("web", &["cat", "/etc/machine-id"]));
    let (a, b) = (h.info("web"), h.info("web2"));
    assert_ne!(a["nics"][0]["mac"], b["nics"][0]["mac"]);
    let (ip_a, ip_b) = (a["nics"][0]["ipv4"].as_str().unwrap(), b["nics"][0]["ipv4"].as_str().unwrap());
    assert_ne!(ip_a, ip_b);
    let addr = |ip: &str| ip.split('/').next().unwrap().to_string();
    assert!(
        eventually(Duration::from_secs(20), || h
            .exec("web2", &["ip", "-4", "-o", "addr", "show", "eth0"])
            .contains(&format!("{}/", addr(ip_b)))),
        "web2 got its own address by DHCP"
    );
    let lookup = |c: &str, n: &str| h.exec(c, &["getent", "hosts", &format!("{n}.hutch")]);
    assert!(lookup("web", "web2").starts_with(&addr(ip_b)), "{}", lookup("web", "web2"));
    assert!(lookup("web2", "web").starts_with(&addr(ip_a)), "{}", lookup("web2", "web"));

    // A copy of the snapshot has the data of then.
    h.ok(&["copy", "web/base", "then", "--ephemeral"]);
    h.ok(&["start", "then", "--wait"]);
    assert_eq!(h.exec("then", &["cat", "/root/marker"]), "before");
    h.ok(&["stop", "then"]);
    assert!(!h.paths().container("then").exists(), "an ephemeral copy goes when it stops");

    // Restore with --stop: stopped, restored, started again, booting clean.
    h.ok(&["snapshot", "restore", "web", "base", "--stop"]);
    assert!(h.state("web") == "starting" || h.state("web") == "running");
    assert!(eventually(Duration::from_secs(60), || h.state("web") == "running"), "{}", h.state("web"));
    assert_eq!(h.exec("web", &["systemctl", "is-system-running"]), "running");
    assert_eq!(h.exec("web", &["cat", "/root/marker"]), "before");
    assert_eq!(h.exec_status("web", &["test", "-e", "/etc/issue"]), 0);

    // Rename a stopped container: its DNS name follows and its address stays.
    h.ok(&["stop", "web2"]);
    h.ok(&["rename", "web2", "db"]);
    assert_eq!(h.info("db")["nics"][0]["ipv4"].as_str().unwrap(), ip_b);
    h.ok(&["start", "db", "--wait"]);
    assert_eq!(h.exec("db", &["hostname"]), "db");
    assert!(lookup("web", "db").starts_with(&addr(ip_b)), "{}", lookup("web", "db"));
    for c in ["web", "db"] {
        h.ok(&["destroy", "--force", c]);
        h.assert_gone(c);
    }
    h.assert_gone("web2");
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn ephemeral_containers_go_when_they_stop_and_stay_across_a_reboot() {
    if require("ephemeral", &["busybox"]).is_none() {
        return;
    }
    let h = Hutch::new("ephemeral");
    h.ok(&["create", "a", "-t", "busybox", "--network", "none", "--ephemeral"]);
    h.ok(&["start", "a", "--wait"]);
    h.ok(&["stop", "a"]);
    h.assert_gone("a");

    h.ok(&["launch", "b", "-t", "busybox", "--network", "none", "--ephemeral", "--wait"]);
    let pid = h.info("b")["pid"].as_i64().unwrap();
    h.exec("b", &["reboot"]);
    assert!(eventually(Duration::from_secs(20), || h.info("b")["pid"].as_i64().is_some_and(|p| p != pid)
        && h.state("b") == "running"));
    assert_eq!(h.info("b")["boots"], 2, "rebooted from inside, still there");
    let err = h.fails(&["restart", "b"]);
    assert!(err.contains("ephemeral") && err.contains("reboot"), "{err}");
    h.exec_status("b", &["poweroff"]);
    assert!(eventually(Duration::from_secs(20), || !h.paths().container("b").exists()), "gone after a poweroff inside");
    h.assert_gone("b");

    // Its monitor and init die with no one left to destroy it (as when the host goes
    // down under it). The next command, whatever it is, destroys it.
    h.ok(&["launch", "c", "-t", "busybox", "--network", "none", "--ephemeral", "--wait"]);
    let info = h.info("c");
    let (monitor, init) = (info["monitor_pid"].as_i64().unwrap() as i32, info["pid"].as_i64().unwrap() as i32);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(monitor), nix::sys::signal::Signal::SIGKILL).unwrap();
    std::fs::write(Path::new(info["cgroup"]["unified"].as_str().unwrap()).join("cgroup.kill"), "1").unwrap();
    assert!(eventually(Duration::from_secs(10), || !Path::new(&format!("/proc/{init}")).exists()));
    assert!(h.paths().container("c").exists());
    let out = h.run(&["list"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("destroyed ephemeral container c"), "{out:?}");
    h.assert_gone("c");
    // One created but never started is kept.
    h.ok(&["create", "d", "-t", "busybox", "--network", "none", "--ephemeral"]);
    h.ok(&["list"]);
    assert!(h.paths().container("d").exists());
}

/// Runs `args` and SIGKILLs it as soon as `started` appears.
fn kill_when(h: &Hutch, args: &[&str], started: impl Fn() -> bool) {
    let mut child =
        h.cmd(args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let seen = eventually(Duration::from_secs(30), &started);
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(seen, "{args:?} never reached the point to interrupt ({status})");
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn a_killed_snapshot_or_copy_leaves_no_half_state() {
    if require("snapshots_killed", &["busybox"]).is_none() {
        return;
    }
    let h = Hutch::new("snap-killed");
    h.ok(&["create", "big", "-t", "busybox", "--storage", "dir", "--network", "none"]);
    h.ok(&["start", "big", "--wait"]);
    h.exec("big", &["sh", "-c", "dd if=/dev/zero of=/root/fill bs=1M count=400 2>/dev/null"]);
    h.ok(&["stop", "big"]);
    let snaps = h.paths().container("big").join("snapshots");
    kill_when(&h, &["snapshot", "create", "big", "half"], || {
        entries(&snaps).iter().any(|n| n.starts_with(".staging-"))
    });
    assert!(snapshot_names(&h, "big").is_empty(), "a killed snapshot is not listed");
    // The next snapshot command clears what was left.
    h.ok(&["snapshot", "create", "big", "whole"]);
    assert_eq!(entries(&snaps), ["whole"]);

    let containers = h.paths().containers();
    kill_when(&h, &["copy", "big", "dup"], || entries(&containers).iter().any(|n| n == ".staging-dup"));
    let out = h.run(&["list"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("left by an interrupted command"), "{out:?}");
    assert!(!entries(&containers).iter().any(|n| n.starts_with('.')), "{:?}", entries(&containers));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("dup"));
    h.ok(&["copy", "big", "dup"]);
    h.ok(&["destroy", "dup"]);
    h.assert_gone("dup");

    // A killed export leaves no file (it has no name until complete); a killed import
    // leaves a staging directory the next command clears.
    let out_dir = h.root.join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let file = out_dir.join("big.hutch").display().to_string();
    kill_when(&h, &["export", "big", &file, "--compression", "none"], || {
        std::thread::sleep(Duration::from_millis(300));
        true
    });
    let left = entries(&out_dir);
    assert!(left.is_empty() || left == ["big.hutch"], "{left:?}");
    if left.is_empty() {
        h.ok(&["export", "big", &file, "--compression", "none"]);
    }
    h.ok(&["import", &file, "imp0"]);
    h.ok(&["destroy", "imp0"]);
    kill_when(&h, &["import", &file, "imp"], || {
        std::fs::read_dir(containers.join(".staging-imp").join("rootfs")).is_ok_and(|mut rd| rd.next().is_some())
    });
    assert!(!h.paths().container("imp").exists(), "a killed import is no container");
    let out = h.run(&["list"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("left by an interrupted command"), "{out:?}");
    assert!(!entries(&containers).iter().any(|n| n.starts_with('.')), "{:?}", entries(&containers));
    h.ok(&["import", &file, "imp"]);
    h.ok(&["destroy", "imp"]);
    h.assert_gone("imp");
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn an_export_with_two_snapshots_boots_on_a_second_root() {
    let Some(img) = require("snapshots_export", &[]) else {
        return;
    };
    let h = Hutch::new("export-from");
    h.create("bk", &img.debian(), &[]);
    h.ok(&["start", "bk", "--wait"]);
    h.exec("bk", &["sh", "-c", "echo one > /root/data"]);
    h.ok(&["snapshot", "create", "bk", "first"]);
    h.exec("bk", &["sh", "-c", "echo two > /root/data"]);
    h.ok(&["snapshot", "create", "bk", "second"]);
    h.exec("bk", &["sh", "-c", "echo three > /root/data"]);
    let machine_id = h.exec("bk", &["cat", "/etc/machine-id"]);
    let mac = h.info("bk")["nics"][0]["mac"].clone();
    // Exported while it runs: frozen for the time it takes, running after.
    let file = h.root.join("bk.hutch");
    let f = file.display().to_string();
    assert!(h.ok(&["export", "bk", &f, "--snapshots"]).contains("and 2 snapshots"));
    assert_eq!(h.state("bk"), "running");
    let err = h.fails(&["export", "bk", &f]);
    assert!(err.contains("already exists") && err.contains("another file name"), "{err}");
    h.ok(&["stop", "bk"]);

    // A damaged copy is refused whole: nothing is created, nothing is left.
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    let bad = h.root.join("bad.hutch");
    std::fs::write(&bad, &bytes).unwrap();
    let h2 = Hutch::new("export-to");
    let err = h2.fails(&["import", &bad.display().to_string()]);
    assert!(err.contains("failed to read the archive") && err.contains("nothing was imported"), "{err}");
    assert!(entries(&h2.paths().containers()).is_empty(), "{:?}", entries(&h2.paths().containers()));
    let err = h2.fails(&["import", "/nonexistent/bk.hutch"]);
    assert!(err.contains("/nonexistent/bk.hutch"), "{err}");

    // On a second root: it boots clean as itself, with its data and its snapshots.
    assert!(h2.ok(&["import", &f]).contains("Imported bk"));
    assert_eq!(snapshot_names(&h2, "bk"), ["first", "second"]);
    assert_eq!(h2.info("bk")["nics"][0]["mac"], mac, "imported under its own name it keeps its MAC");
    h2.ok(&["start", "bk", "--wait"]);
    assert_eq!(h2.exec("bk", &["systemctl", "is-system-running"]), "running");
    assert_eq!(h2.exec("bk", &["cat", "/root/data"]), "three");
    assert_eq!(h2.exec("bk", &["cat", "/etc/machine-id"]), machine_id);
    assert_eq!(h2.exec("bk", &["hostname"]), "bk");
    h2.ok(&["snapshot", "restore", "bk", "first", "--stop"]);
    assert!(eventually(Duration::from_secs(60), || h2.state("bk") == "running"), "{}", h2.state("bk"));
    assert_eq!(h2.exec("bk", &["cat", "/root/data"]), "one");
    assert_eq!(snapshot_names(&h2, "bk"), ["first", "second"], "restoring keeps the newer snapshot");
    h2.ok(&["snapshot", "restore", "bk", "second", "--stop"]);
    assert!(eventually(Duration::from_secs(60), || h2.state("bk") == "running"));
    assert_eq!(h2.exec("bk", &["cat", "/root/data"]), "two");
    h2.ok(&["destroy", "--force", "bk"]);
    h2.assert_gone("bk");

    // Back on the first root: the name is taken; under another name it is a copy with
    // its own identity.
    let err = h.fails(&["import", &f]);
    assert!(err.contains("already exists"), "{err}");
    h.ok(&["import", &f, "bk2"]);
    assert_ne!(h.info("bk2")["nics"][0]["mac"], mac);
    let rootfs = h.paths().container("bk2").join("rootfs");
    assert_eq!(std::fs::read_to_string(rootfs.join("etc/hostname")).unwrap().trim(), "bk2");
    assert_ne!(std::fs::read_to_string(rootfs.join("etc/machine-id")).unwrap().trim(), machine_id);
    for c in ["bk", "bk2"] {
        h.ok(&["destroy", "--force", c]);
        h.assert_gone(c);
    }
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn a_running_overlay_container_exports_its_changes_and_deletions() {
    if require("snapshots_export_overlay", &["busybox"]).is_none() {
        return;
    }
    let h = Hutch::new("export-overlay");
    h.ok(&["create", "ov", "-t", "busybox", "--network", "none"]);
    assert_eq!(h.ok(&["config", "get", "ov", "rootfs.storage"]).trim(), "overlay");
    h.ok(&["start", "ov", "--wait"]);
    h.exec("ov", &["sh", "-c", "echo v1 > /root/f"]);
    h.ok(&["snapshot", "create", "ov", "s1"]);
    h.exec("ov", &["sh", "-c", "echo v2 > /root/f && rm /etc/hostname"]);
    let layers_before = entries(&h.paths().container("ov").join("overlay"));
    let file = h.root.join("ov.hutch").display().to_string();
    h.ok(&["export", "ov", &file, "--snapshots"]);
    assert_eq!(h.state("ov"), "running");
    assert_eq!(entries(&h.paths().container("ov").join("overlay")), layers_before, "the upper layer's copy is gone");
    let h2 = Hutch::new("export-overlay-to");
    h2.ok(&["import", &file]);
    assert_eq!(h2.ok(&["config", "get", "ov", "rootfs.storage"]).trim(), "dir");
    h2.ok(&["start", "ov", "--wait"]);
    assert_eq!(h2.exec("ov", &["cat", "/root/f"]), "v2");
    assert_ne!(
        h2.exec_status("ov", &["test", "-e", "/etc/hostname"]),
        0,
        "a deletion in the upper layer stays deleted"
    );
    h2.ok(&["snapshot", "restore", "ov", "s1", "--stop"]);
    assert_eq!(h2.exec("ov", &["cat", "/root/f"]), "v1");
    assert_eq!(h2.exec_status("ov", &["test", "-e", "/etc/hostname"]), 0);
}
