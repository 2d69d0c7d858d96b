//! The typed failure path and the monitor's versioned control protocol, against a
//! real busybox container: a request of another protocol version is refused with a
//! clear message (and changes nothing), a failing start reaches the user as a typed
//! message with its hint, and the exec helper's failures arrive typed too.

mod common;

use std::io::{BufRead, BufReader, Write};

use common::{Hutch, require};
use hutch::monitor::proto;

/// Sends one raw line to the monitor of `name` and returns its parsed answer.
fn raw_request(h: &Hutch, name: &str, line: &str) -> serde_json::Value {
    let mut stream = proto::connect(&h.paths().monitor_socket(name)).expect("the monitor's socket accepts");
    stream.write_all(line.as_bytes()).unwrap();
    stream.write_all(b"\n").unwrap();
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("unreadable answer {answer:?}: {e}"))
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn the_monitor_refuses_another_protocol_version() {
    let Some(img) = require("protocol_version", &[]) else {
        return;
    };
    let h = Hutch::new("proto-version");
    h.create("bb", &img.busybox(), &["--network", "none"]);
    h.ok(&["start", "bb", "--wait"]);

    // A newer CLI's stop: refused, explained, and the container keeps running.
    let newer = raw_request(&h, "bb", r#"{"v":99,"op":"stop","timeout_s":0,"force":true}"#);
    assert_eq!(newer["ok"], false, "{newer}");
    assert_eq!(newer["v"], proto::PROTOCOL, "{newer}");
    assert_eq!(newer["error"]["kind"], "protocol", "{newer}");
    let detail = newer["error"]["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("speaks protocol {}", proto::PROTOCOL)) && detail.contains("99"), "{detail}");
    assert!(newer["error"]["hint"].as_str().unwrap().contains("the hutch that started"), "{newer}");
    // An unversioned line (an older CLI) is not guessed at either.
    let older = raw_request(&h, "bb", r#"{"op":"stop","timeout_s":0,"force":true}"#);
    assert_eq!(older["error"]["kind"], "protocol", "{older}");
    assert!(older["error"]["detail"].as_str().unwrap().contains("unversioned"), "{older}");
    assert_eq!(h.state("bb"), "running");
    let log = std::fs::read_to_string(h.paths().monitor_log("bb")).unwrap();
    assert!(log.contains("refused a request in protocol 99"), "{log}");

    // The same request in this protocol is served.
    let status = raw_request(&h, "bb", &format!(r#"{{"v":{},"op":"status"}}"#, proto::PROTOCOL));
    assert_eq!(status["ok"], true, "{status}");
    assert_eq!(status["phase"], "running", "{status}");
    h.ok(&["stop", "bb", "--timeout", "30"]);
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn the_cli_refuses_a_monitor_of_another_version() {
    let Some(img) = require("protocol_cli_refuses", &[]) else {
        return;
    };
    let h = Hutch::new("proto-cli");
    h.create("bb", &img.busybox(), &["--network", "none"]);
    h.ok(&["start", "bb", "--wait"]);
    // Stand in for a monitor from a newer hutch: our socket takes the path of the real
    // one (which keeps running, unreachable), and answers in protocol 2.
    let sock = h.paths().monitor_socket("bb");
    std::fs::remove_file(&sock).unwrap();
    let (bind_at, _keep) = proto::socket_path(&sock).unwrap();
    let listener = std::os::unix::net::UnixListener::bind(&bind_at).unwrap();
    let fake = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut request = String::new();
        BufReader::new(conn.try_clone().unwrap()).read_line(&mut request).unwrap();
        let mut conn = conn;
        conn.write_all(b"{\"v\":2,\"ok\":true,\"detail\":\"stopped, in a way of the future\"}\n").unwrap();
        request
    });
    let err = h.fails(&["stop", "bb", "--timeout", "30"]);
    let request = fake.join().unwrap();
    assert!(request.contains(&format!(r#""v":{}"#, proto::PROTOCOL)), "the CLI's request is versioned: {request}");
    assert!(
        err.contains("hutch: error: failed to stop bb: its monitor speaks protocol 2, this hutch speaks 1"),
        "{err}"
    );
    assert!(err.contains("\nhint: the container was started by another version of hutch"), "{err}");
    assert_eq!(h.state("bb"), "running", "a refusal changes nothing");
    // With the stand-in gone, the monitor is unreachable: the CLI stops it directly.
    std::fs::remove_file(&sock).unwrap();
    let out = h.ok(&["stop", "bb", "--timeout", "30"]);
    assert!(out.contains("shut down by hutch stop"), "{out}");
    assert_eq!(h.state("bb"), "stopped");
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn a_failing_start_shows_a_typed_message_and_its_hint() {
    let Some(img) = require("protocol_start_failure", &[]) else {
        return;
    };
    let h = Hutch::new("proto-start");
    h.create("bb", &img.busybox(), &["--network", "none"]);

    // An init marked executable that the kernel cannot run: only the exec in the
    // container's first process finds out, and its failure crosses two processes.
    let rootfs = h.paths().container("bb").join("rootfs");
    std::fs::write(rootfs.join("bad-init"), "not a program\n").unwrap();
    std::fs::set_permissions(rootfs.join("bad-init"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    h.ok(&["config", "set", "bb", "init.command", r#"["/bad-init"]"#]);
    let err = h.fails(&["start", "bb"]);
    assert!(
        err.contains("hutch: error: failed to start bb: failed to execute init /bad-init: not an executable format"),
        "{err}"
    );
    assert!(err.contains("\nhint: is the root filesystem built for this machine's architecture?"), "{err}");
    assert_eq!(h.state("bb"), "stopped");
    assert_eq!(h.info("bb")["last_exit"]["how"], "failed");
    let log = std::fs::read_to_string(h.paths().monitor_log("bb")).unwrap();
    assert!(log.contains("boot failed: failed to execute init /bad-init") && log.contains("(hint: "), "{log}");

    // A script whose interpreter is missing: the same path, another hint.
    std::fs::write(rootfs.join("bad-init"), "#!/no/such/interpreter\n").unwrap();
    let err = h.fails(&["start", "bb"]);
    assert!(err.contains("failed to execute init /bad-init: it does not exist in the root filesystem"), "{err}");
    assert!(err.contains("\nhint: check init.command"), "{err}");
    assert_eq!(h.state("bb"), "stopped");
    assert!(!h.paths().runtime("bb").exists(), "runtime directory left");
    assert!(h.mounts().is_empty(), "mounts left: {:?}", h.mounts());
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn exec_helper_failures_arrive_typed() {
    let Some(img) = require("protocol_exec_failure", &[]) else {
        return;
    };
    let h = Hutch::new("proto-exec");
    h.create("bb", &img.busybox(), &["--network", "none"]);
    h.ok(&["start", "bb", "--wait"]);
    // The helper fails before the command runs: an error of hutch's, not an exit status.
    let out = h.run(&["exec", "bb", "--user", "nobody-here", "--", "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("hutch: error: failed to run a command in bb: failed to find the user: no user \"nobody-here\""),
        "{err}"
    );
    // A command that cannot be executed did not run: its shell-like status, and why.
    let out = h.run(&["exec", "bb", "--", "no-such-program"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hutch: no-such-program: command not found"));
    // A command's own status 125 is just that (it once meant "the helper failed").
    assert_eq!(h.exec_status("bb", &["sh", "-c", "exit 125"]), 125);
    h.ok(&["freeze", "bb"]);
    let err = h.fails(&["exec", "bb", "--", "true"]);
    assert!(err.contains("it is frozen") && err.contains("hint: thaw it with `hutch unfreeze bb`"), "{err}");
    let err = h.fails(&["freeze", "bb"]);
    assert!(err.contains("already frozen") && err.contains("hint: thaw it with `hutch unfreeze bb`"), "{err}");
    h.ok(&["unfreeze", "bb"]);
    h.ok(&["stop", "bb", "--timeout", "30"]);
}
