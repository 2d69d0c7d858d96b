//! Logs stay apart from messages for people: `--log-level` and `HUTCH_LOG` set how much
//! the CLI logs on stderr (`hutch: LEVEL: ...`) and how much its monitor writes to
//! `logs/monitor.log` (stamped `[SECONDS.MS]  LEVEL message`).

mod common;

use common::{Hutch, require};

/// `[1796176233.362]  INFO message`: a wall-clock stamp, then the level.
fn is_monitor_line(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('[') else { return false };
    let Some((stamp, rest)) = rest.split_once(']') else { return false };
    let stamp_ok = stamp.split_once('.').is_some_and(|(s, ms)| {
        s.len() >= 10
            && s.bytes().all(|b| b.is_ascii_digit())
            && ms.len() == 3
            && ms.bytes().all(|b| b.is_ascii_digit())
    });
    let level = rest.split_whitespace().next().unwrap_or("");
    stamp_ok && ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level)
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn log_levels_reach_the_cli_and_its_monitor() {
    let Some(img) = require("log_levels", &[]) else {
        return;
    };
    let h = Hutch::new("logging");
    h.create("bb", &img.busybox(), &["--network", "none"]);

    // By default the CLI logs nothing on a good start: stderr is for people.
    let quiet = h.run(&["start", "bb"]);
    assert!(quiet.status.success());
    let stderr = String::from_utf8_lossy(&quiet.stderr);
    assert!(!stderr.contains("hutch: debug:") && !stderr.contains("hutch: info:"), "{stderr}");
    let log = std::fs::read_to_string(h.paths().monitor_log("bb")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        !lines.is_empty() && lines.iter().all(|l| is_monitor_line(l)),
        "monitor log lines lack stamp or level:\n{log}"
    );
    assert!(log.contains(" INFO ") && !log.contains(" DEBUG "), "the monitor logs from info up by default:\n{log}");
    h.ok(&["stop", "bb"]);

    // The flag raises both the CLI's level and, through HUTCH_LOG, its monitor's.
    let loud = h.run(&["--log-level", "debug", "start", "bb"]);
    assert!(loud.status.success());
    let stderr = String::from_utf8_lossy(&loud.stderr);
    assert!(stderr.lines().any(|l| l.starts_with("hutch: debug: bb: monitor spawned as pid")), "{stderr}");
    h.ok(&["--log-level", "debug", "stop", "bb"]);
    let log = std::fs::read_to_string(h.paths().monitor_log("bb")).unwrap();
    assert!(log.lines().any(|l| is_monitor_line(l) && l.contains(" DEBUG ")), "no debug line from the monitor:\n{log}");

    // HUTCH_LOG works alone; a value it cannot read is said, and the command still runs.
    let bad = h.cmd(&["list"]).env("HUTCH_LOG", "loud").output().unwrap();
    assert!(bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("hutch: warn: failed to read the log level \"loud\""), "{stderr}");
    let off = h.cmd(&["--log-level", "off", "list"]).env("HUTCH_LOG", "loud").output().unwrap();
    assert!(off.status.success() && off.stderr.is_empty(), "{}", String::from_utf8_lossy(&off.stderr));

    // A bad flag is a usage error (exit 2) that names the accepted levels.
    let usage = h.run(&["--log-level", "loud", "list"]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("off, error, warn, info, debug, trace"));
}
