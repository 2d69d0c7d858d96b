//! CLI conventions: output to a reader that went away, the JSON envelope of every
//! read verb, and where errors go.

mod common;

use std::process::Stdio;

use common::{Hutch, require};

/// Runs `hutch args...` with stdout a pipe whose read end is already closed, so the
/// first write fails with EPIPE; returns the exit code and stderr.
fn with_closed_stdout(h: &Hutch, args: &[&str]) -> (Option<i32>, String) {
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let out = h.cmd(args).stdout(Stdio::from(write)).stderr(Stdio::piped()).output().expect("hutch runs");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn every_read_command_ends_quietly_when_its_reader_goes_away() {
    let Some(img) = require("cli_closed_pipe", &[]) else {
        return;
    };
    let h = Hutch::new("cli-pipe");
    h.create("bb", &img.busybox(), &["--network", "none"]);
    h.ok(&["start", "bb", "--wait"]);
    for args in [
        &["list"][..],
        &["list", "--format", "json"],
        &["info", "bb"],
        &["info", "bb", "--format", "json"],
        &["config", "show", "bb"],
        &["config", "get", "bb", "init.command"],
        &["logs", "bb"],
        &["logs", "bb", "--format", "json"],
        &["image", "list"],
        &["network", "list"],
        &["network", "list", "--format", "json"],
        &["port", "list", "bb"],
        &["top", "-n", "1", "--interval", "0.2"],
    ] {
        let (code, stderr) = with_closed_stdout(&h, args);
        assert_eq!(code, Some(0), "hutch {args:?} with a closed stdout: {stderr}");
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "hutch {args:?}: {stderr}");
    }
    h.ok(&["stop", "bb", "--force"]);
}
