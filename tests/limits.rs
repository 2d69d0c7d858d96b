//! Resource limits on this host (cgroup v1 controllers beside a cgroup2 tree): a real
//! memory limit OOM-kills a real process inside while the container lives on, a fork
//! bomb stops at pids.max, cpuset and CPU quota shape what runs, a live change reaches
//! the running container, and the figures shown match the cgroup files.

mod common;

use std::time::Instant;

use common::{Hutch, require};

fn res(h: &Hutch, name: &str) -> serde_json::Value {
    h.info(name)["resources"].clone()
}

fn cgroup_file(h: &Hutch, name: &str, controller: &str, file: &str) -> String {
    let dirs = h.cgroup_dirs(name);
    let dir = dirs
        .iter()
        .find(|d| d.components().any(|c| c.as_os_str().to_str().is_some_and(|s| s.split(',').any(|x| x == controller))))
        .or_else(|| dirs.first())
        .unwrap();
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn memory_limit_oom_kills_inside_and_the_container_lives_on() {
    let Some(img) = require("limits_memory", &[]) else {
        return;
    };
    let h = Hutch::new("lim-mem");
    h.create("m", &img.debian(), &["--network", "none"]);
    h.ok(&["config", "set", "m", "limits.memory", "64MiB"]);
    h.ok(&["config", "set", "m", "limits.memory_swap", "0"]);
    h.ok(&["start", "m", "--wait"]);
    // tail holds everything it reads when there is no newline: it grows past the limit.
    let status = h.exec_status("m", &["sh", "-c", "head -c 300M /dev/zero | tail > /dev/null"]);
    assert_ne!(status, 0, "the allocation past the limit was not stopped");
    assert_eq!(h.exec("m", &["systemctl", "is-system-running"]), "running", "the container did not live on");
    let r = res(&h, "m");
    assert!(r["oom_kills"].as_u64().unwrap() >= 1, "{r}");
    assert_eq!(r["memory_limit"].as_u64().unwrap(), 64 << 20);
    assert!(r["memory_peak"].as_u64().unwrap() > 32 << 20, "{r}");
    assert_eq!(cgroup_file(&h, "m", "memory", "memory.limit_in_bytes"), (64u64 << 20).to_string());
    h.ok(&["stop", "m"]);
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn a_fork_bomb_stops_at_the_pids_limit() {
    let Some(img) = require("limits_pids", &[]) else {
        return;
    };
    let h = Hutch::new("lim-pids");
    h.create("p", &img.debian(), &["--network", "none"]);
    h.ok(&["config", "set", "p", "limits.pids", "60"]);
    h.ok(&["start", "p", "--wait"]);
    let out = h.run(&["exec", "p", "--", "bash", "-c", "for i in $(seq 200); do sleep 20 & done; echo all-started"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let r = res(&h, "p");
    assert_eq!(r["pids_max"].as_u64(), Some(60), "{r}");
    assert!(text.contains("fork: Resource temporarily unavailable"), "the bomb was not stopped: {text}");
    assert!(!text.contains("all-started"), "{text}");
    assert!(r["pids_current"].as_u64().unwrap() <= 60, "{r}");
    assert_eq!(cgroup_file(&h, "p", "pids", "pids.max"), "60");
    h.ok(&["stop", "p", "--force"]);
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn cpuset_cpu_quota_and_live_changes() {
    let Some(img) = require("limits_cpu", &[]) else {
        return;
    };
    let cpus = std::thread::available_parallelism().unwrap().get();
    let h = Hutch::new("lim-cpu");
    h.create("c", &img.debian(), &["--network", "none"]);
    h.ok(&["config", "set", "c", "limits.cpus", "0.5"]);
    h.ok(&["start", "c", "--wait"]);
    assert_eq!(h.exec("c", &["nproc"]), cpus.to_string());
    // Live: a static binding seen by the next process inside.
    h.ok(&["config", "set", "c", "limits.cpuset", "0"]);
    assert_eq!(h.exec("c", &["nproc"]), "1");
    assert_eq!(h.ok(&["config", "get", "c", "limits.cpuset"]).trim(), "0", "the change was not saved");
    assert_eq!(cgroup_file(&h, "c", "cpuset", "cpuset.cpus"), "0");
    // A quota of half a CPU: a busy loop's CPU time, read from the cgroup, stays near
    // half the wall time.
    let before = res(&h, "c")["cpu_usage_usec"].as_u64().unwrap();
    let t = Instant::now();
    h.run(&["exec", "c", "--", "timeout", "4", "sh", "-c", "while :; do :; done"]);
    let wall = t.elapsed().as_secs_f64();
    let used = (res(&h, "c")["cpu_usage_usec"].as_u64().unwrap() - before) as f64 / 1e6;
    let share = used / wall;
    assert!((0.05..=0.6).contains(&share), "CPU share {share:.2} ({used:.2} s of {wall:.2} s)");
    assert_eq!(cgroup_file(&h, "c", "cpu", "cpu.cfs_quota_us"), "50000");
    // Removing a limit live resets it.
    h.ok(&["config", "set", "c", "limits.cpus", "max"]);
    assert_eq!(cgroup_file(&h, "c", "cpu", "cpu.cfs_quota_us"), "-1");
    // `top` sees it, with non-zero figures.
    let top: serde_json::Value =
        serde_json::from_str(h.ok(&["top", "--format", "json", "-n", "1", "--interval", "0.3"]).trim()).unwrap();
    let row = &top["containers"][0];
    assert_eq!(row["name"], "c");
    assert!(row["memory_current"].as_u64().unwrap() > 0 && row["pids_current"].as_u64().unwrap() > 0, "{row}");
    h.ok(&["stop", "c"]);
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn bad_limits_are_refused_with_the_accepted_forms() {
    let Some(img) = require("limits_bad", &[]) else {
        return;
    };
    let h = Hutch::new("lim-bad");
    h.create("b", &img.busybox(), &["--network", "none"]);
    let before = std::fs::read_to_string(h.paths().config("b")).unwrap();
    for (key, value, says) in [
        ("limits.memory", "10XB", "not a size"),
        ("limits.memory", "-1", "not a size"),
        ("limits.memory", "1e99", "not a size"),
        ("limits.pids", "0", "from 1 to"),
        ("limits.cpus", "0", "cpus"),
        ("limits.cpus", "999", "CPUs"),
        ("limits.cpu_weight", "0", "1 to 10000"),
        ("limits.cpuset", "0-4096", "not online"),
        ("limits.io_weight", "20000", "1 to 10000"),
    ] {
        let err = h.fails(&["config", "set", "b", key, value]);
        assert!(err.contains(key) && err.contains(says), "{key}={value}: {err}");
    }
    assert_eq!(std::fs::read_to_string(h.paths().config("b")).unwrap(), before, "a refused value was written");
    // Accepted forms are accepted; the container starts with them.
    h.ok(&["config", "set", "b", "limits.memory", "1.5G"]);
    h.ok(&["config", "set", "b", "limits.cpu_weight", "200"]);
    h.ok(&["start", "b", "--wait"]);
    assert_eq!(cgroup_file(&h, "b", "cpu", "cpu.shares"), "2048");
    h.ok(&["stop", "b"]);
}
