//! busybox init, for the lifecycle paths that do not need systemd: its own halt
//! signal, an init that ignores halting, archives, exec options, freeze, kill.

mod common;

use std::io::Write;
use std::path::Path;

use common::{Hutch, require};

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn busybox_boots_and_stops_with_its_own_signal() {
    let Some(img) = require("busybox_signal", &[]) else {
        return;
    };
    let h = Hutch::new("bb-signal");
    h.create("bb", &img.busybox(), &["--network", "none"]);
    assert_eq!(h.ok(&["config", "get", "bb", "init.halt_signal"]).trim(), "SIGUSR1");
    assert_eq!(h.ok(&["config", "get", "bb", "init.ready"]).trim(), "exec");
    h.ok(&["start", "bb", "--wait"]);
    assert_eq!(h.exec("bb", &["cat", "/proc/1/comm"]), "init");
    assert_eq!(h.exec("bb", &["hostname"]), "bb");
    // The rootfs stays nodev: container root cannot remount it to use device nodes
    // (the flag is locked by the kernel).
    assert_ne!(h.exec_status("bb", &["mount", "-o", "remount,bind,dev", "/"]), 0, "nodev could be cleared");
    let root_mount = h.exec("bb", &["awk", "$5 == \"/\"", "/proc/self/mountinfo"]);
    assert!(root_mount.contains("nodev") && root_mount.contains("idmapped"), "{root_mount}");
    // Networking in a container without a NIC: loopback, up, and nothing else.
    assert_eq!(h.exec("bb", &["ls", "/sys/class/net"]), "lo");
    let flags = h.exec("bb", &["cat", "/sys/class/net/lo/flags"]);
    assert_eq!(u32::from_str_radix(flags.trim_start_matches("0x"), 16).unwrap() & 1, 1, "lo is down: {flags}");
    let out = h.ok(&["stop", "bb", "--timeout", "60"]);
    assert!(out.contains("shut down by hutch stop"), "busybox init did not halt on its own signal: {out}");
    let log = std::fs::read_to_string(h.paths().monitor_log("bb")).unwrap();
    assert!(log.contains("sending SIGUSR1 to init"), "{log}");
    assert_eq!(h.info("bb")["last_exit"]["how"], "poweroff");
    for d in h.cgroup_dirs("bb") {
        assert!(!d.exists(), "{} left after stop", d.display());
    }
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn an_init_that_ignores_its_halt_signal_is_killed_after_the_timeout() {
    let Some(img) = require("busybox_stubborn", &[]) else {
        return;
    };
    let h = Hutch::new("bb-stubborn");
    h.create("stubborn", &img.busybox(), &[]);
    // sleep as PID 1 has no handler for SIGUSR1, so the kernel drops the signal.
    h.ok(&["config", "set", "stubborn", "init.command", r#"["/bin/sleep", "100000"]"#]);
    h.ok(&["start", "stubborn"]);
    // Init inherited nothing but stdio (on the console).
    assert_eq!(h.exec("stubborn", &["ls", "/proc/1/fd"]).split_whitespace().collect::<Vec<_>>(), ["0", "1", "2"]);
    assert_eq!(h.exec("stubborn", &["readlink", "/proc/1/fd/0"]), "/dev/console");
    let out = h.ok(&["stop", "stubborn", "--timeout", "2"]);
    assert!(out.contains("killed after the 2 s stop timeout"), "{out}");
    assert_eq!(h.state("stubborn"), "stopped");
    assert_eq!(h.info("stubborn")["last_exit"]["how"], "killed");
    // --force does not wait at all.
    h.ok(&["start", "stubborn"]);
    let out = h.ok(&["stop", "stubborn", "--force"]);
    assert!(out.contains("killed by hutch stop --force"), "{out}");
}

/// Writes the busybox rootfs as a tar archive compressed with `comp`.
fn archive(src: &Path, dest: &Path, comp: &str) {
    let file = std::fs::File::create(dest).unwrap();
    let writer: Box<dyn Write> = match comp {
        "tar" => Box::new(file),
        "gz" => Box::new(flate2::write::GzEncoder::new(file, flate2::Compression::fast())),
        "xz" => Box::new(liblzma::write::XzEncoder::new(file, 1)),
        "zst" => Box::new(zstd::stream::write::Encoder::new(file, 1).unwrap().auto_finish()),
        _ => unreachable!(),
    };
    let mut b = tar::Builder::new(writer);
    b.follow_symlinks(false);
    b.append_dir_all(".", src).unwrap();
    b.into_inner().unwrap().flush().unwrap();
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn archives_in_every_supported_compression_boot() {
    let Some(img) = require("busybox_archives", &[]) else {
        return;
    };
    let h = Hutch::new("bb-tar");
    for comp in ["tar", "gz", "xz", "zst"] {
        let file = h.root.join(format!("rootfs.{comp}"));
        archive(&img.busybox(), &file, comp);
        let name = format!("from-{comp}");
        h.ok(&["create", &name, "--from-tar", file.to_str().unwrap()]);
        h.ok(&["start", &name, "--wait"]);
        assert_eq!(h.exec(&name, &["cat", "/etc/hostname"]), name);
        h.ok(&["destroy", "--force", &name]);
        h.assert_gone(&name);
    }
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn exec_options_user_cwd_env() {
    let Some(img) = require("busybox_exec", &[]) else {
        return;
    };
    let h = Hutch::new("bb-exec");
    h.create("bb", &img.busybox(), &[]);
    h.ok(&["start", "bb", "--wait"]);
    assert_eq!(h.ok(&["exec", "bb", "--user", "nobody", "--", "id", "-u"]).trim(), "65534");
    assert_eq!(h.ok(&["exec", "bb", "--user", "1234:5", "--", "id", "-g"]).trim(), "5");
    assert_eq!(h.ok(&["exec", "bb", "--cwd", "/etc", "--", "pwd"]).trim(), "/etc");
    assert_eq!(
        h.ok(&["exec", "bb", "-e", "GREETING=hello there", "--", "sh", "-c", "echo $GREETING"]).trim(),
        "hello there"
    );
    assert_eq!(h.ok(&["exec", "bb", "--", "sh", "-c", "echo $HOME"]).trim(), "/root");
    let err = h.fails(&["exec", "bb", "--user", "mallory", "--", "true"]);
    assert!(err.contains("mallory"), "{err}");
    let err = h.fails(&["exec", "bb", "-e", "NOEQUALS", "--", "true"]);
    assert!(err.contains("-e NAME=VALUE"), "{err}");
    // Without a pty the command's stdio are pipes relayed by hutch, never the host's
    // own descriptors (here a host file as stdout).
    let out_path = h.root.join("exec-stdout.txt");
    let status = h
        .cmd(&["exec", "bb", "--", "sh", "-c", "for f in 0 1 2; do readlink /proc/self/fd/$f; done"])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let links = std::fs::read_to_string(&out_path).unwrap();
    assert_eq!(links.lines().count(), 3, "{links}");
    assert!(links.lines().all(|l| l.starts_with("pipe:")), "host descriptors reached the container: {links}");

    // Much input to a command that reads slowly, and much output back.
    let mut child = h
        .cmd(&["exec", "bb", "--", "sh", "-c", "sleep 1; wc -c; seq 1 100000 | tail -n 1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &vec![b'x'; 10 << 20]));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).split_whitespace().collect::<Vec<_>>(), ["10485760", "100000"]);
    // When our reader goes away, the command learns it (EPIPE) instead of running on.
    let mut child = h.cmd(&["exec", "bb", "--", "yes"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut first = [0u8; 2];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let finished = common::eventually(std::time::Duration::from_secs(10), || child.try_wait().unwrap().is_some());
    if !finished {
        let _ = child.kill();
    }
    assert!(finished, "exec kept running after its stdout was closed");
    // A pty with a lot of output and nobody typing.
    let out = h.cmd(&["exec", "-t", "bb", "--", "seq", "1", "50000"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().last().map(str::trim), Some("50000"));

    // Exec'd processes run in the container's cgroup, next to init.
    let cg = &h.cgroup_dirs("bb")[0];
    let pid = h.exec("bb", &["sh", "-c", "sleep 30 </dev/null >/dev/null 2>&1 & echo $!"]);
    let inner: i32 = pid.parse().unwrap();
    assert!(inner > 1);
    assert!(hutch::cgroup::ContainerCgroup { unified: cg.clone(), v1: vec![] }.pids().len() >= 3);
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn freeze_kill_and_list() {
    let Some(img) = require("busybox_freeze", &[]) else {
        return;
    };
    let h = Hutch::new("bb-freeze");
    h.create("bb", &img.busybox(), &[]);
    h.create("other", &img.busybox(), &["--privileged"]);
    h.ok(&["start", "bb", "--wait"]);
    h.ok(&["freeze", "bb"]);
    assert_eq!(h.state("bb"), "frozen");
    let err = h.fails(&["exec", "bb", "--", "true"]);
    assert!(err.contains("frozen"), "{err}");
    h.fails(&["freeze", "bb"]);
    h.ok(&["unfreeze", "bb"]);
    assert_eq!(h.state("bb"), "running");
    assert_eq!(h.exec("bb", &["echo", "thawed"]), "thawed");

    let list: serde_json::Value = serde_json::from_str(&h.ok(&["list", "--format", "json"])).unwrap();
    let rows = list["containers"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["name"], "bb");
    assert_eq!(rows[0]["state"], "running");
    assert_eq!(rows[1]["state"], "stopped");
    assert_eq!(rows[1]["privileged"], true);
    let text = h.ok(&["list"]);
    assert!(text.starts_with("NAME"), "{text}");

    // restart: stop, then a new boot.
    let before = h.info("bb")["pid"].as_i64().unwrap();
    h.ok(&["restart", "bb", "--wait"]);
    assert_eq!(h.state("bb"), "running");
    assert_ne!(h.info("bb")["pid"].as_i64().unwrap(), before);

    // logs -f follows new console output.
    let mut follow = h.cmd(&["logs", "-f", "bb"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    h.exec("bb", &["sh", "-c", "echo followed-line > /dev/console"]);
    let mut seen = String::new();
    let mut reader = std::io::BufReader::new(follow.stdout.take().unwrap());
    let found = common::eventually(std::time::Duration::from_secs(10), || {
        let mut line = String::new();
        while std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) > 0 {
            seen.push_str(&line);
            if line.contains("followed-line") {
                return true;
            }
            line.clear();
        }
        false
    });
    follow.kill().unwrap();
    let _ = follow.wait();
    assert!(found, "logs -f never showed the new line: {seen}");
    let json = h.ok(&["logs", "bb", "--format", "json"]);
    let lines: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        lines.iter().any(|l| l["log"] == "console" && l["line"].as_str().unwrap().ends_with("followed-line")),
        "{json}"
    );

    h.ok(&["kill", "bb", "KILL"]);
    assert!(common::eventually(std::time::Duration::from_secs(10), || h.state("bb") == "stopped"));
    assert_eq!(h.info("bb")["last_exit"]["detail"], "init was killed by SIGKILL");
    h.fails(&["kill", "bb"]);
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn device_nodes_are_left_out_of_unprivileged_copies() {
    let Some(img) = require("copy_devices", &[]) else { return };
    let h = Hutch::new("bb-devices");
    // A rootfs carrying a block device node, as a careless or hostile tree might.
    let src = h.root.join("src");
    hutch::rootfs::copy::copy_tree(&img.busybox(), &src, true).unwrap();
    nix::sys::stat::mknod(
        &src.join("disk"),
        nix::sys::stat::SFlag::S_IFBLK,
        nix::sys::stat::Mode::from_bits_truncate(0o660),
        nix::sys::stat::makedev(7, 0),
    )
    .unwrap();
    let out = h.run(&["create", "unpriv", "--from-dir", src.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("left out 1 device nodes"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!h.paths().container("unpriv").join("rootfs/disk").exists());
    h.ok(&["create", "priv", "--from-dir", src.to_str().unwrap(), "--privileged"]);
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(h.paths().container("priv").join("rootfs/disk"))
            .unwrap()
            .file_type()
            .is_block_device()
    );
}
