//! Autostart and restart policies on real busybox containers: `hutch autostart` after a
//! simulated host boot starts them by order with their delays, `--stop` stops them in
//! reverse; a killed init comes back under `on-failure` and `always` and not under
//! `no`, a poweroff inside never does, a stop ends a pending restart, and five quick
//! failures in a row leave the container stopped with the reason.

mod common;

use std::time::Duration;

use common::{Hutch, eventually, require};

fn set(h: &Hutch, c: &str, kv: &[(&str, &str)]) {
    for (k, v) in kv {
        h.ok(&["config", "set", c, k, v]);
    }
}

/// A host crash and reboot, as far as hutch can tell: every monitor and container
/// process killed at once, the runtime directories and cgroups gone.
fn simulate_host_boot(h: &Hutch, names: &[&str]) {
    for n in names {
        let state_file = h.paths().state_file(n);
        let Ok(text) = std::fs::read_to_string(&state_file) else { continue };
        let state: serde_json::Value = serde_json::from_str(&text).unwrap();
        let monitor = state["monitor"]["pid"].as_i64().unwrap() as i32;
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(monitor), nix::sys::signal::Signal::SIGKILL);
        let cgroup = state["cgroup"]["unified"].as_str().unwrap().to_string();
        std::fs::write(format!("{cgroup}/cgroup.kill"), "1").unwrap();
        assert!(eventually(Duration::from_secs(5), || {
            std::fs::read_to_string(format!("{cgroup}/cgroup.procs")).unwrap_or_default().trim().is_empty()
        }));
        let _ = std::fs::remove_dir(&cgroup);
        for v1 in state["cgroup"]["v1"].as_array().into_iter().flatten() {
            if let Some(p) = v1.as_str().or_else(|| v1["path"].as_str()) {
                let _ = std::fs::remove_dir(p);
            }
        }
        std::fs::remove_dir_all(h.paths().runtime(n)).unwrap();
    }
}

fn started_ms(h: &Hutch, c: &str) -> u64 {
    h.info(c)["started_at_ms"].as_u64().unwrap_or_else(|| panic!("{c} has not started"))
}

fn last_exit(h: &Hutch, c: &str) -> serde_json::Value {
    h.info(c)["last_exit"].clone()
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn autostart_keeps_order_and_delay_after_a_host_boot_and_stops_in_reverse() {
    if require("autostart_order", &["busybox"]).is_none() {
        return;
    }
    let h = Hutch::new("autostart");
    for c in ["a", "b", "c", "off"] {
        h.ok(&["create", c, "-t", "busybox", "--network", "none"]);
    }
    set(&h, "a", &[("autostart.enabled", "true"), ("autostart.order", "1"), ("autostart.delay", "2")]);
    for c in ["b", "c"] {
        set(&h, c, &[("autostart.enabled", "true"), ("autostart.order", "2")]);
    }
    let plan: serde_json::Value = serde_json::from_str(&h.ok(&["autostart", "--dry-run", "--format", "json"])).unwrap();
    let names: Vec<&str> = plan["autostart"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a", "b", "c"], "by order, then name; not the disabled one");
    assert_eq!(h.state("a"), "stopped", "a dry run starts nothing");

    for c in ["a", "b", "c", "off"] {
        h.ok(&["start", c, "--wait"]);
    }
    simulate_host_boot(&h, &["a", "b", "c", "off"]);
    for c in ["a", "b", "c", "off"] {
        assert_eq!(h.state(c), "stopped", "{c} after the host boot");
    }
    let out = h.ok(&["autostart"]);
    assert!(out.contains("a: started (order 1)") && out.contains("b: started (order 2)"), "{out}");
    for c in ["a", "b", "c"] {
        assert_eq!(h.state(c), "running", "{c}");
    }
    assert_eq!(h.state("off"), "stopped", "autostart.enabled is off");
    let (a, b, c) = (started_ms(&h, "a"), started_ms(&h, "b"), started_ms(&h, "c"));
    assert!(b >= a + 2000 && c >= a + 2000, "order 2 waits for order 1 and its 2 s delay: a {a}, b {b}, c {c}");
    // Run again: nothing to do, and it says so.
    assert!(h.ok(&["autostart"]).contains("a: already running"));

    h.ok(&["start", "off", "--wait"]);
    let out = h.ok(&["autostart", "--stop", "--timeout", "10"]);
    assert!(out.contains("stopped"), "{out}");
    for c in ["a", "b", "c", "off"] {
        assert_eq!(h.state(c), "stopped", "{c} after --stop");
    }
    let at = |c: &str| last_exit(&h, c)["at_ms"].as_u64().unwrap();
    assert!(at("a") >= at("b") && at("a") >= at("c"), "order 2 stops before order 1");
    assert!(at("a") <= at("off"), "order 0 (no autostart) stops after order 1");
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn a_killed_init_comes_back_only_under_a_restart_policy() {
    if require("restart_policy", &["busybox"]).is_none() {
        return;
    }
    let h = Hutch::new("restart");
    for (c, policy) in [("never", "no"), ("onfail", "on-failure"), ("always", "always")] {
        h.ok(&["create", c, "-t", "busybox", "--network", "none"]);
        set(&h, c, &[("restart", policy)]);
        h.ok(&["start", c, "--wait"]);
    }
    let pid = |c: &str| h.info(c)["pid"].as_i64();
    let before: Vec<_> = ["never", "onfail", "always"].iter().map(|c| pid(c)).collect();
    for c in ["never", "onfail", "always"] {
        h.ok(&["kill", c]);
    }
    assert!(eventually(Duration::from_secs(10), || h.state("never") == "stopped"));
    assert!(last_exit(&h, "never")["detail"].as_str().unwrap().contains("SIGKILL"));
    for (i, c) in ["onfail", "always"].iter().enumerate() {
        assert!(
            eventually(Duration::from_secs(15), || h.state(c) == "running"
                && pid(c).is_some()
                && pid(c) != before[i + 1]),
            "{c} came back: {}",
            h.state(c)
        );
        let info = h.info(c);
        assert_eq!(info["restarts"], 1, "{c}");
        assert!(info["last_restart"]["detail"].as_str().unwrap().contains("SIGKILL"), "{info}");
        assert!(h.ok(&["info", c]).contains("1 restart,"));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(h.state("never"), "stopped", "restart = no stays down");

    // A poweroff inside is never unexpected.
    h.exec_status("always", &["poweroff"]);
    assert!(eventually(Duration::from_secs(15), || h.state("always") == "stopped"), "{}", h.state("always"));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(h.state("always"), "stopped", "a poweroff inside is not restarted");
    assert!(last_exit(&h, "always")["detail"].as_str().unwrap().contains("powered off"));

    // A stop while a restart is pending (the second failure waits 2 s) ends it.
    h.ok(&["kill", "onfail"]);
    assert!(eventually(Duration::from_secs(5), || pid("onfail").is_none() || h.state("onfail") != "running"));
    h.ok(&["stop", "onfail"]);
    assert_eq!(h.state("onfail"), "stopped");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(h.state("onfail"), "stopped", "a stop cancels the pending restart");
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn five_quick_failures_in_a_row_leave_it_stopped_with_the_reason() {
    if require("restart_give_up", &["busybox"]).is_none() {
        return;
    }
    let h = Hutch::new("restart-giveup");
    h.ok(&["create", "crash", "-t", "busybox", "--network", "none"]);
    set(&h, "crash", &[("restart", "always"), ("init.ready", "exec")]);
    h.ok(&["config", "set", "crash", "init.command", r#"["/bin/sh", "-c", "sleep 0.2; exit 3"]"#]);
    h.ok(&["start", "crash"]);
    // Restarts after 1, 2, 4 and 8 s, then it gives up.
    assert!(eventually(Duration::from_secs(45), || h.state("crash") == "stopped"), "{}", h.state("crash"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(h.state("crash"), "stopped");
    let detail = last_exit(&h, "crash")["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("exited with status 3") && detail.contains("5 failures in a row"), "{detail}");
    assert!(h.ok(&["info", "crash"]).contains("5 failures in a row"));
}
