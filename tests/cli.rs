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

/// A /29 in 10.214.0.0/16 that no route of this host overlaps (its own range, apart
/// from tests/network.rs's).
fn free_29() -> String {
    let routes = hutch::network::addr::parse_proc_net_route(&std::fs::read_to_string("/proc/net/route").unwrap());
    (0..4096u32)
        .map(|i| {
            format!("{}/29", std::net::Ipv4Addr::from(0x0ad6_0000u32 + ((std::process::id() * 8 + i * 8) & 0xfff8)))
        })
        .find(|s| {
            let net = hutch::network::addr::V4Net::parse(s).unwrap();
            !routes.iter().any(|r| r.overlaps(&net))
        })
        .unwrap()
}

/// Parses `hutch args...` as one JSON document with `format_version` 1.
fn json(h: &Hutch, args: &[&str]) -> serde_json::Value {
    let out = h.ok(args);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("hutch {args:?}: {e}: {out}"));
    assert_eq!(v["format_version"], 1, "hutch {args:?}: {v}");
    v
}

/// Parses `hutch args...` as JSON Lines, each object with `format_version` 1.
fn json_lines(h: &Hutch, args: &[&str]) -> Vec<serde_json::Value> {
    let out = h.ok(args);
    let lines: Vec<serde_json::Value> =
        out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("hutch {args:?}: {e}: {l:?}"))).collect();
    assert!(lines.iter().all(|l| l["format_version"] == 1), "hutch {args:?}: {out}");
    lines
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn every_read_verb_prints_one_json_envelope() {
    let Some(img) = require("cli_json", &["dnsmasq", "nft"]) else {
        return;
    };
    let h = Hutch::new("cli-json");
    h.ok(&["network", "create", "clijson", "--subnet", &free_29()]);
    let from = img.busybox().display().to_string();
    let created = json(&h, &["create", "bb", "--from-dir", &from, "--network", "clijson", "--format", "json"]);
    assert_eq!(created["name"], "bb");
    assert_eq!(created["nics"][0]["network"], "clijson");
    let addr = created["nics"][0]["ipv4"].as_str().expect("an address at create").to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    h.ok(&["port", "add", "bb", &format!("127.0.0.1:{port}"), "80"]);

    let started = json(&h, &["start", "bb", "--wait", "--format", "json"]);
    assert_eq!(started["name"], "bb");
    assert!(started["init_pid"].as_i64().unwrap() > 1, "{started}");
    assert!(started["boot_ms"].is_u64(), "{started}");
    assert_eq!(started["nics"][0]["ipv4"], addr.as_str());

    let list = json(&h, &["list", "--format", "json"]);
    assert_eq!(list["containers"][0]["name"], "bb");
    assert_eq!(list["containers"][0]["state"], "running");
    let info = json(&h, &["info", "bb", "--format", "json"]);
    assert_eq!(info["pid"], started["init_pid"]);
    let config = json(&h, &["config", "show", "bb", "--format", "json"]);
    assert_eq!(config["init"]["command"], serde_json::json!(["/sbin/init"]));
    let get = json(&h, &["config", "get", "bb", "init.halt_signal", "--format", "json"]);
    assert_eq!((&get["key"], &get["value"]), (&"init.halt_signal".into(), &"SIGUSR1".into()));
    assert!(json(&h, &["image", "list", "--format", "json"])["images"].is_array());
    let nets = json(&h, &["network", "list", "--format", "json"]);
    assert!(nets["networks"].as_array().unwrap().iter().any(|n| n["name"] == "clijson"), "{nets}");
    let net = json(&h, &["network", "show", "clijson", "--format", "json"]);
    assert_eq!(net["network"]["containers"][0]["container"], "bb");
    let ports = json(&h, &["port", "list", "bb", "--format", "json"]);
    assert_eq!(ports["ports"][0]["host_port"].to_string(), port);

    let top = json_lines(&h, &["top", "--format", "json", "-n", "2", "--interval", "0.2"]);
    assert_eq!(top.len(), 2);
    assert_eq!(top[0]["containers"][0]["name"], "bb");
    h.exec("bb", &["sh", "-c", "echo cli-json-line > /dev/console"]);
    assert!(common::eventually(std::time::Duration::from_secs(10), || {
        json_lines(&h, &["logs", "bb", "--format", "json"])
            .iter()
            .any(|l| l["log"] == "console" && l["line"].as_str().is_some_and(|s| s.ends_with("cli-json-line")))
    }));
    h.ok(&["stop", "bb", "--force"]);
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn info_says_why_a_state_is_unknown() {
    let Some(img) = require("cli_unknown", &[]) else {
        return;
    };
    let h = Hutch::new("cli-unknown");
    h.create("bb", &img.busybox(), &["--network", "none"]);
    let state = h.paths().state_file("bb");
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    std::fs::write(&state, "{ torn").unwrap();
    let info = h.info("bb");
    assert_eq!(info["state"], "unknown");
    let why = info["unknown"].as_str().unwrap();
    assert!(why.contains("the state of bb is unreadable"), "{info}");
    assert!(info["unknown_hint"].is_string(), "{info}");
    let text = h.ok(&["info", "bb"]);
    assert!(text.contains("unknown: the state of bb is unreadable") && text.contains("Hint:"), "{text}");
    std::fs::remove_file(&state).unwrap();
}

#[test]
fn a_usage_error_reads_like_every_other_error_and_exits_2() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hutch")).args(["list", "--bogus"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("hutch: error: unexpected argument '--bogus' found\n"), "{err}");
    assert!(err.trim_end().ends_with("hint: for more information, try '--help'."), "{err}");
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn errors_go_to_stderr_as_error_then_hint() {
    if require("cli_errors", &[]).is_none() {
        return;
    }
    let h = Hutch::new("cli-errors");
    for args in [&["info", "nosuch"][..], &["start", "nosuch", "--format", "json"], &["config", "get", "nosuch", "x"]] {
        let out = h.run(args);
        assert_eq!(out.status.code(), Some(1), "hutch {args:?}");
        assert!(out.stdout.is_empty(), "hutch {args:?} wrote data: {:?}", String::from_utf8_lossy(&out.stdout));
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        assert!(lines[0].starts_with("hutch: error: failed to "), "hutch {args:?}: {err}");
        assert!(lines[1].starts_with("hint: "), "hutch {args:?}: {err}");
    }
}
