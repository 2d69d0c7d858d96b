//! Crashes, races and reboots: nothing half-done stays visible, a killed monitor does
//! not take its container down, stale state is recognised and cleared, and
//! concurrent commands on one container serialise.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Hutch, eventually, require};

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn a_killed_monitor_leaves_the_container_running_and_stoppable() {
    let Some(img) = require("monitor_killed", &[]) else {
        return;
    };
    let h = Hutch::new("monitor-killed");
    h.create("deb", &img.debian(), &[]);
    h.ok(&["start", "deb", "--wait"]);
    let info = h.info("deb");
    let monitor = info["monitor_pid"].as_i64().unwrap() as i32;
    let init = info["pid"].as_i64().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(monitor), nix::sys::signal::Signal::SIGKILL).unwrap();
    assert!(eventually(Duration::from_secs(5), || { h.info("deb")["monitor_pid"].is_null() }));

    // Still running: list shows it, exec works.
    let list: serde_json::Value = serde_json::from_str(&h.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(list["containers"][0]["state"], "running");
    assert_eq!(list["containers"][0]["pid"].as_i64(), Some(init));
    assert_eq!(h.exec("deb", &["systemctl", "is-system-running"]), "running");
    assert!(h.ok(&["info", "deb"]).contains("monitor is gone"));

    // A second start is refused; stop still stops it, and cleans up.
    let err = h.fails(&["start", "deb"]);
    assert!(err.contains("already running"), "{err}");
    let out = h.ok(&["stop", "deb"]);
    assert!(out.contains("shut down"), "{out}");
    assert_eq!(h.state("deb"), "stopped");
    assert!(!h.paths().runtime("deb").exists());
    for d in h.cgroup_dirs("deb") {
        assert!(!d.exists(), "{} left", d.display());
    }
    // And it starts again normally.
    h.ok(&["start", "deb", "--wait"]);
    h.ok(&["stop", "deb"]);
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn stale_state_from_before_a_host_reboot_is_cleared() {
    let Some(img) = require("stale_state", &[]) else {
        return;
    };
    let h = Hutch::new("stale");
    h.create("bb", &img.busybox(), &[]);
    h.ok(&["start", "bb", "--wait"]);
    // Simulate a host crash: every process dies at once, runtime files stay, and the
    // boot id changes.
    let state_file = h.paths().state_file("bb");
    let mut state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    let cgroup = state["cgroup"]["unified"].as_str().unwrap().to_string();
    let monitor = state["monitor"]["pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(monitor), nix::sys::signal::Signal::SIGKILL).unwrap();
    std::fs::write(format!("{cgroup}/cgroup.kill"), "1").unwrap();
    assert!(eventually(Duration::from_secs(5), || {
        std::fs::read_to_string(format!("{cgroup}/cgroup.procs")).unwrap_or_default().trim().is_empty()
    }));
    state["boot_id"] = "00000000-0000-0000-0000-000000000000".into();
    std::fs::write(&state_file, serde_json::to_vec(&state).unwrap()).unwrap();

    assert_eq!(h.state("bb"), "stopped");
    let out = h.run(&["start", "bb", "--wait"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cleared stale runtime state"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(h.state("bb"), "running");
    h.ok(&["stop", "bb"]);
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn concurrent_starts_give_one_start_and_clear_refusals() {
    let Some(img) = require("concurrent_start", &[]) else {
        return;
    };
    let h = Hutch::new("concurrent");
    h.create("bb", &img.busybox(), &[]);
    let children: Vec<_> = (0..5)
        .map(|_| h.cmd(&["start", "bb"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap())
        .collect();
    let outs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let started = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(started, 1, "exactly one start must win");
    for o in outs.iter().filter(|o| !o.status.success()) {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("already running"), "{err}");
    }
    assert_eq!(h.state("bb"), "running");
    let procs = hutch::cgroup::ContainerCgroup { unified: h.cgroup_dirs("bb")[0].clone(), v1: vec![] }.pids();
    let inits = procs
        .iter()
        .filter(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "init"))
        .count();
    assert_eq!(inits, 1, "one init, not several");

    // Concurrent creates of one name: one container, one "already exists".
    let dir = img.busybox().display().to_string();
    let children: Vec<_> = (0..3)
        .map(|_| {
            h.cmd(&["create", "twin", "--from-dir", &dir])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    assert_eq!(outs.iter().filter(|o| o.status.success()).count(), 1);
    for o in outs.iter().filter(|o| !o.status.success()) {
        assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    }
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn an_interrupted_create_leaves_no_container() {
    let Some(img) = require("interrupted_create", &[]) else {
        return;
    };
    let h = Hutch::new("interrupted");
    let dir = img.debian().display().to_string();
    let mut child =
        h.cmd(&["create", "half", "--from-dir", &dir]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let staging = h.paths().containers().join(".staging-half");
    assert!(
        eventually(Duration::from_secs(10), || staging.join("rootfs").exists()),
        "the create never started copying"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(staging.exists(), "the copy finished before it could be interrupted");

    // Not a container: list does not see it, and (as every command does) clears it
    // and says so; start refuses.
    let out = h.run(&["list", "--format", "json"]);
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["containers"].as_array().unwrap().len(), 0);
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!staging.exists());
    h.fails(&["start", "half"]);
    let bb = img.busybox().display().to_string();
    h.ok(&["create", "half", "--from-dir", &bb]);
    h.ok(&["start", "half", "--wait"]);
    h.ok(&["destroy", "--force", "half"]);
    h.assert_gone("half");
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn a_deep_cgroup_tree_made_inside_is_bounded_and_removed() {
    let Some(img) = require("deep_cgroups", &[]) else { return };
    let h = Hutch::new("deep-cgroups");
    h.create("bb", &img.busybox(), &[]);
    h.ok(&["start", "bb", "--wait"]);
    // 21 levels of 200-character names: past PATH_MAX (4096) on the host. (The shell
    // can cd only 20 levels down; the 21st directory is made from there.)
    let deep = "n=$(printf 'x%.0s' $(seq 1 200)); cd /sys/fs/cgroup; for i in $(seq 1 20); do mkdir $n && cd $n || exit 1; done; mkdir $n";
    assert_eq!(h.exec_status("bb", &["sh", "-c", deep]), 0);
    // ...but not deeper than the limit hutch set.
    let deeper = "cd /sys/fs/cgroup; for i in $(seq 1 40); do mkdir d && cd d || exit 7; done";
    assert_eq!(h.exec_status("bb", &["sh", "-c", deeper]), 7);
    h.ok(&["stop", "bb"]);
    for d in h.cgroup_dirs("bb") {
        assert!(!d.exists(), "{} left", d.display());
    }
}
