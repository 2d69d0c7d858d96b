//! The monitor is its own binary, installed beside `hutch`: a `hutch` whose
//! `hutch-monitor` is missing refuses to start a container, says what to install, and
//! leaves the container stopped and startable.

mod common;

use common::{BIN, Hutch, require};

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn a_missing_monitor_binary_is_named_and_leaves_the_container_stopped() {
    let Some(img) = require("install_missing_monitor", &[]) else {
        return;
    };
    let h = Hutch::new("inst-mon");
    h.create("bb", &img.busybox(), &["--network", "none"]);
    // This hutch alone in a directory, without hutch-monitor beside it.
    let lone = h.root.join("lone-bin");
    std::fs::create_dir_all(&lone).unwrap();
    let exe = lone.join("hutch");
    std::fs::copy(BIN, &exe).unwrap();
    let out = std::process::Command::new(&exe).args(["start", "bb"]).env("HUTCH_ROOT", &h.root).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started without a monitor binary: {err}");
    assert!(err.contains("hutch: error: failed to find the monitor's binary:"), "{err}");
    assert!(err.contains(&lone.join("hutch-monitor").display().to_string()), "{err}");
    assert!(err.contains("hint: install hutch-monitor in the same directory as hutch"), "{err}");
    assert_eq!(h.state("bb"), "stopped");
    assert!(!h.paths().runtime("bb").exists(), "a runtime directory was left");
    // Nothing holds the container: the installed pair starts it.
    h.ok(&["start", "bb", "--wait"]);
    assert_eq!(h.state("bb"), "running");
    h.ok(&["stop", "bb", "--force"]);
    h.ok(&["destroy", "bb"]);
}
