//! LXCFS inside a real Debian container: with LXCFS running, a container limited to
//! 256 MiB and one CPU sees them in `free -b`, `nproc` and its own uptime; when LXCFS
//! dies, the next start says how to recover; without it, `auto` starts with a notice
//! and `on` refuses.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Hutch, eventually, require};

/// An LXCFS instance of the test's own, mounted at `mnt` (hutch finds it through
/// `[lxcfs] path` in the root's hutch.toml); killed and unmounted on drop.
struct Lxcfs {
    child: Option<Child>,
    mnt: PathBuf,
}

impl Lxcfs {
    fn start(h: &Hutch) -> Lxcfs {
        let mnt = h.root.join("lxcfs");
        std::fs::create_dir_all(&mnt).unwrap();
        let child = Command::new("lxcfs")
            .arg("-p")
            .arg(h.root.join("lxcfs.pid"))
            .arg(&mnt)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("lxcfs runs");
        assert!(eventually(Duration::from_secs(10), || mnt.join("proc/uptime").exists()), "lxcfs never mounted");
        std::fs::write(h.root.join("hutch.toml"), format!("[lxcfs]\npath = \"{}\"\n", mnt.display())).unwrap();
        Lxcfs { child: Some(child), mnt }
    }

    /// The daemon dies and its mount stays: what a crash or an upgrade's restart leaves.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn unmount(mnt: &Path) {
        // Test scaffolding only: the product never runs umount.
        let _ = Command::new("umount").arg("-l").arg(mnt).stderr(Stdio::null()).status();
    }
}

impl Drop for Lxcfs {
    fn drop(&mut self) {
        self.kill();
        Lxcfs::unmount(&self.mnt);
    }
}

fn mem_total(free: &str) -> u64 {
    let line = free.lines().find(|l| l.starts_with("Mem:")).unwrap_or_else(|| panic!("no Mem: line in {free}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn the_container_sees_its_own_limits_and_uptime_through_lxcfs() {
    let Some(img) = require("lxcfs", &["lxcfs"]) else {
        return;
    };
    let h = Hutch::new("lxcfs");
    let mut fs = Lxcfs::start(&h);
    h.create("box", &img.debian(), &["--network", "none"]);
    for (k, v) in [("limits.memory", "256MiB"), ("limits.cpus", "1"), ("limits.cpuset", "0")] {
        h.ok(&["config", "set", "box", k, v]);
    }
    let out = h.run(&["start", "box", "--wait"]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("LXCFS"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(mem_total(&h.exec("box", &["free", "-b"])), 256 << 20);
    assert_eq!(h.exec("box", &["nproc"]), "1");
    assert_eq!(h.exec("box", &["sh", "-c", "grep -c ^processor /proc/cpuinfo"]), "1");
    let uptime: f64 = h.exec("box", &["cat", "/proc/uptime"]).split_whitespace().next().unwrap().parse().unwrap();
    assert!(uptime < 300.0, "the container's uptime, not the host's: {uptime}");
    assert_eq!(h.exec("box", &["systemctl", "is-system-running"]), "running");

    // The daemon dies: the binds inside go dead, and the next start says how to recover.
    fs.kill();
    let status = h.exec_status("box", &["cat", "/proc/meminfo"]);
    assert_ne!(status, 0, "a dead LXCFS cannot answer");
    h.ok(&["create", "other", "-t", "busybox", "--network", "none"]);
    let out = h.run(&["start", "other"]);
    assert!(out.status.success(), "auto starts without it");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not answering") && stderr.contains("restart"), "{stderr}");
    h.ok(&["stop", "other"]);

    // None at all: auto starts with a notice and the host's figures; on refuses.
    Lxcfs::unmount(&fs.mnt);
    h.ok(&["stop", "box"]);
    let out = h.run(&["start", "box", "--wait"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("LXCFS is not running"));
    assert!(mem_total(&h.exec("box", &["free", "-b"])) > 256 << 20);
    h.ok(&["stop", "box"]);
    h.ok(&["config", "set", "box", "security.lxcfs", "on"]);
    let err = h.fails(&["start", "box"]);
    assert!(err.contains("LXCFS") && err.contains("install and start lxcfs"), "{err}");
    assert_eq!(h.state("box"), "stopped");
}
