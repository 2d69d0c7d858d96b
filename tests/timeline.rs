//! The start timeline: `hutch info` shows when each stage of a start happened, in
//! order, for a busybox init (ready at exec) and for systemd (ready at READY=1).
//! Durations are only checked to be non-negative: timings are measured in bench/.

mod common;

use common::{Hutch, require};

const STAGES: [&str; 8] =
    ["cli_invoked", "monitor_started", "cloned", "id_maps_written", "mounts_done", "pivot_root", "init_exec", "ready"];

/// The stamps of `info --format json`, checked to name every stage once, in order,
/// with no stamp earlier than the one before.
fn assert_timeline(h: &Hutch, name: &str) -> Vec<u64> {
    let info = h.info(name);
    let stages = info["timeline"]["stages"].as_array().unwrap_or_else(|| panic!("no timeline in {info:#}"));
    let names: Vec<&str> = stages.iter().map(|m| m["stage"].as_str().unwrap()).collect();
    assert_eq!(names, STAGES, "{info:#}");
    let at: Vec<u64> = stages.iter().map(|m| m["at_us"].as_u64().unwrap()).collect();
    for w in at.windows(2) {
        assert!(w[0] <= w[1], "a stage went back in time: {at:?}");
    }
    assert!(at[0] > 0, "{at:?}");
    let text = h.ok(&["info", name]);
    let line = text.lines().find(|l| l.trim_start().starts_with("Timeline")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("cli +0.0") && line.contains("hutch's share"), "{line}");
    at
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn busybox_start_shows_every_stage_in_order() {
    let Some(img) = require("timeline_busybox", &[]) else {
        return;
    };
    let h = Hutch::new("tl-bb");
    h.create("bb", &img.busybox(), &["--network", "none"]);
    h.ok(&["start", "bb", "--wait"]);
    let first = assert_timeline(&h, "bb");
    h.ok(&["stop", "bb", "--force"]);
    // A later start records a new timeline, not the old one.
    h.ok(&["start", "bb", "--wait"]);
    let second = assert_timeline(&h, "bb");
    assert!(second[0] > first[STAGES.len() - 1], "{first:?} then {second:?}");
    h.ok(&["stop", "bb", "--force"]);
    assert!(h.info("bb").get("timeline").is_none(), "a stopped container shows no timeline");
    h.ok(&["destroy", "bb"]);
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn debian_start_shows_every_stage_up_to_ready() {
    let Some(img) = require("timeline_debian", &[]) else {
        return;
    };
    let h = Hutch::new("tl-deb");
    h.create("deb", &img.debian(), &[]);
    h.ok(&["start", "deb", "--wait"]);
    let at = assert_timeline(&h, "deb");
    // systemd's boot comes after hutch's share: READY=1 is no earlier than the exec.
    assert!(at[7] >= at[6], "{at:?}");
    h.ok(&["stop", "deb"]);
    h.ok(&["destroy", "deb"]);
}
