//! Runtime state that must never be mistaken for something else (issue 10): container
//! names that are also the names of hutch's own runtime directories, state that cannot
//! be read (never deleted), state left by an older hutch's layout, a create's staging
//! directory while its lock is held, and a `start` killed while its monitor sets up.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{Hutch, eventually, require};
use hutch::base::lock::Lock;
use hutch::base::state::{Phase, Proc, RuntimeState};

/// Pids of the processes whose command line has every one of `words`.
fn processes_with(words: &[&str]) -> Vec<i32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if words.iter().all(|w| cmdline.contains(w)) {
            pids.push(pid);
        }
    }
    pids
}

fn monitors(h: &Hutch, name: &str) -> Vec<i32> {
    let root = h.root.display().to_string();
    processes_with(&[&format!("hutch-monitor {name} "), &root])
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn list_state(h: &Hutch, name: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&h.ok(&["list", "--format", "json"])).unwrap();
    let c = v["containers"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap().clone();
    c["state"].as_str().unwrap().to_string()
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn containers_named_like_hutch_s_own_runtime_directories() {
    let Some(img) = require("state_names", &["dnsmasq", "nft"]) else {
        return;
    };
    let h = Hutch::new("state-names");
    let p = h.paths();
    h.create("web", &img.busybox(), &["--network", "none"]);
    h.create("locks", &img.busybox(), &["--network", "none"]);
    // On the default network, so its start brings up the network's dnsmasq.
    h.create("networks", &img.busybox(), &[]);
    h.create("containers", &img.busybox(), &["--network", "none"]);
    let held = Lock::acquire(&p.lock("web")).unwrap();
    let inode = std::fs::metadata(p.lock("web")).unwrap().ino();
    for c in ["locks", "networks", "containers"] {
        h.ok(&["start", c]);
        assert_eq!(h.state(c), "running", "{c}");
        assert!(p.runtime(c).join("state.json").exists(), "{c}");
    }
    for c in ["locks", "networks", "containers"] {
        h.ok(&["stop", c, "--timeout", "5"]);
        assert_eq!(h.state(c), "stopped", "{c}");
        assert!(!p.runtime(c).exists(), "{c}");
    }
    // Another container's lock survived, and is still the one held.
    assert_eq!(std::fs::metadata(p.lock("web")).map(|m| m.ino()).ok(), Some(inode), "web's lock file was removed");
    assert!(Lock::try_acquire(&p.lock("web")).unwrap().is_none());
    drop(held);
    // The network's dnsmasq is hutch's own, and goes with the network.
    h.ok(&["start", "networks"]);
    h.ok(&["destroy", "--force", "networks"]);
    for n in h.networks() {
        h.ok(&["network", "delete", &n]);
    }
    let root = h.root.display().to_string();
    assert!(
        eventually(Duration::from_secs(5), || processes_with(&["dnsmasq", &root]).is_empty()),
        "stray dnsmasq: {:?}",
        processes_with(&["dnsmasq", &root])
    );
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn unreadable_state_is_reported_and_left_alone() {
    let Some(img) = require("state_unreadable", &[]) else {
        return;
    };
    let h = Hutch::new("state-unreadable");
    let p = h.paths();
    h.create("bb", &img.busybox(), &["--network", "none"]);
    h.ok(&["start", "bb"]);
    let good = std::fs::read(p.state_file("bb")).unwrap();
    let init = h.info("bb")["pid"].as_i64().unwrap() as i32;
    for (bad, says) in [
        (&b"{\"version\": 1, \"boot_id\": \"6b1"[..], "unreadable"),
        (&br#"{"version": 99, "from": "the future"}"#[..], "newer hutch"),
    ] {
        std::fs::write(p.state_file("bb"), bad).unwrap();
        assert_eq!(list_state(&h, "bb"), "unknown");
        assert_eq!(h.state("bb"), "unknown");
        for cmd in [&["stop", "bb"][..], &["start", "bb"], &["destroy", "--force", "bb"], &["kill", "bb"]] {
            let err = h.fails(cmd);
            assert!(err.contains("the state of bb is unreadable") && err.contains("leaves it alone"), "{cmd:?}: {err}");
            assert!(err.contains(says), "{cmd:?}: {err}");
        }
        assert_eq!(std::fs::read(p.state_file("bb")).unwrap(), bad, "the state file was changed");
        assert!(p.monitor_socket("bb").exists() && p.container("bb").exists());
        assert!(alive(init), "init was stopped");
        assert_eq!(monitors(&h, "bb").len(), 1);
    }
    std::fs::write(p.state_file("bb"), &good).unwrap();
    assert_eq!(h.state("bb"), "running");
    h.ok(&["stop", "bb", "--timeout", "5"]);
    assert!(eventually(Duration::from_secs(5), || !alive(init)));
}

/// State as a hutch from before the per-kind runtime layout left it, at `run/NAME`.
fn legacy_state(h: &Hutch, name: &str, monitor: Proc) -> std::path::PathBuf {
    let dir = h.paths().run.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let layout = hutch::cgroup::Layout::detect().unwrap();
    let s = RuntimeState {
        version: hutch::base::state::VERSION,
        boot_id: hutch::sys::boot_id(),
        phase: Phase::Running,
        monitor,
        init: None,
        started_at_ms: 1,
        ready_at_ms: None,
        boots: 1,
        privileged: false,
        idmap: None,
        cgroup: hutch::cgroup::ContainerCgroup::new(&layout, &h.paths().cgroup_parent, name),
        halt_signal: libc::SIGPWR,
        stop_timeout: 1,
        timeline: None,
        restarts: 0,
        last_restart: None,
    };
    s.save(&dir.join("state.json")).unwrap();
    dir
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn an_older_hutch_s_runtime_layout_is_reported_while_alive_and_cleared_when_stale() {
    let Some(img) = require("state_legacy", &[]) else {
        return;
    };
    let h = Hutch::new("state-legacy");
    h.create("old", &img.busybox(), &["--network", "none"]);
    // A live "monitor" (this test process stands in for it).
    let me = Proc::of(std::process::id() as i32).unwrap();
    let dir = legacy_state(&h, "old", me);
    assert_eq!(h.state("old"), "unknown");
    let err = h.fails(&["start", "old"]);
    assert!(err.contains("older hutch") && err.contains(&dir.display().to_string()), "{err}");
    assert!(dir.join("state.json").exists(), "a live older hutch's state was removed");
    // Its monitor gone: the old entry is stale, and is cleared like any other.
    let dead = Proc { start_time: me.start_time + 1, ..me };
    legacy_state(&h, "old", dead);
    assert_eq!(h.state("old"), "stopped");
    h.ok(&["start", "old"]);
    assert!(!dir.exists(), "stale old-layout state was left");
    assert_eq!(h.state("old"), "running");
    h.ok(&["stop", "old", "--timeout", "5"]);
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn a_staging_directory_whose_create_holds_its_lock_is_not_collected() {
    let Some(img) = require("state_staging", &[]) else {
        return;
    };
    let h = Hutch::new("state-staging");
    let p = h.paths();
    let staging = p.containers().join(".staging-new");
    std::fs::create_dir_all(staging.join("rootfs")).unwrap();
    let held = Lock::acquire(&p.lock("new")).unwrap();
    // `create` collects leftovers first.
    h.create("a", &img.busybox(), &["--network", "none"]);
    assert!(staging.exists(), "a create's staging directory was removed while its lock was held");
    drop(held);
    h.create("b", &img.busybox(), &["--network", "none"]);
    assert!(!staging.exists(), "an abandoned staging directory was left");
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn a_start_killed_while_the_monitor_sets_up_keeps_the_container_locked() {
    let Some(img) = require("state_killed_start", &[]) else {
        return;
    };
    let h = Hutch::new("state-killed-start");
    let p = h.paths();
    h.create("slow", &img.busybox(), &["--network", "none"]);
    let mut cli = h
        .cmd(&["start", "slow"])
        .env(hutch::monitor::launch::TEST_SETUP_DELAY_ENV, "3000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(10), || !monitors(&h, "slow").is_empty()), "no monitor");
    cli.kill().unwrap();
    cli.wait().unwrap();
    // The monitor still sets up: the lock is still held although the CLI is gone.
    assert!(Lock::try_acquire(&p.lock("slow")).unwrap().is_none(), "the lock was released with the killed CLI");
    // A second start waits for the first one's monitor, then finds it running.
    let err = h.fails(&["start", "slow"]);
    assert!(err.contains("already running"), "{err}");
    assert_eq!(h.state("slow"), "running");
    assert_eq!(monitors(&h, "slow").len(), 1, "a second monitor was started");
    assert!(p.state_file("slow").exists());
    h.ok(&["stop", "slow", "--timeout", "5"]);
    assert_eq!(h.state("slow"), "stopped");
}
