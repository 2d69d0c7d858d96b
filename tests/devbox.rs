//! Dev boxes (`create --devbox`): a host user made by the test is the same user inside,
//! its home shared at the same path with every file keeping its owner, sudo installed
//! at first boot (through the network's NAT, from the host's Debian mirror) and
//! passwordless, and `hutch shell` in the caller's directory.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;

use common::{Hutch, require};

/// A host user for the test, removed (with its home) on drop.
struct HostUser {
    name: String,
    home: PathBuf,
}

impl HostUser {
    fn new(name: &str, uid: u32) -> HostUser {
        let _ = Command::new("userdel").args(["-r", name]).output();
        let out = Command::new("useradd")
            .args(["-m", "-u", &uid.to_string(), "-U", "-s", "/bin/bash", name])
            .output()
            .expect("useradd runs");
        assert!(out.status.success(), "useradd: {}", String::from_utf8_lossy(&out.stderr));
        HostUser { name: name.into(), home: PathBuf::from(format!("/home/{name}")) }
    }
}

impl Drop for HostUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").args(["-r", &self.name]).output();
    }
}

#[test]
#[ignore = "needs root, the test images and the Debian mirror (scripts/test.sh runs it)"]
fn a_dev_box_user_is_the_host_user() {
    let Some(img) = require("devbox", &["useradd", "userdel", "dnsmasq", "nft"]) else {
        return;
    };
    let uid = 1700 + std::process::id() % 200;
    let user = HostUser::new(&format!("hdev{uid}"), uid);
    let proj = user.home.join("proj");
    std::fs::create_dir(&proj).unwrap();
    std::os::unix::fs::chown(&proj, Some(uid), Some(uid)).unwrap();
    let h = Hutch::new("devbox");
    let from = img.debian().display().to_string();
    let out = h
        .cmd(&["launch", "dev", "--from-dir", &from, "--devbox"])
        .env("SUDO_USER", &user.name)
        .current_dir(&proj)
        .output()
        .unwrap();
    assert!(out.status.success(), "launch --devbox: {}", String::from_utf8_lossy(&out.stderr));
    let config = std::fs::read_to_string(h.paths().config("dev")).unwrap();
    assert!(config.contains(&format!("identity_uid = {uid}")), "{config}");

    // The same user inside, with the same ids and home; its files are its own on the host.
    let as_user = |script: &str| h.exec("dev", &["su", "-", &user.name, "-c", script]);
    assert_eq!(as_user("id -u; id -g; echo $HOME"), format!("{uid}\n{uid}\n{}", user.home.display()));
    as_user("touch ~/x");
    let md = std::fs::metadata(user.home.join("x")).unwrap();
    assert_eq!((md.uid(), md.gid()), (uid, uid), "~/x is not the user's on the host");
    assert_eq!(as_user("sudo -n true && echo sudo works"), "sudo works");
    assert_eq!(h.exec("dev", &["systemctl", "is-system-running", "--wait"]), "running");

    // A toolchain from the mirror, a program built in $HOME and run.
    let install = h.run(&[
        "exec",
        "dev",
        "--",
        "sh",
        "-c",
        "DEBIAN_FRONTEND=noninteractive apt-get -q install -y gcc libc6-dev >/dev/null",
    ]);
    assert!(install.status.success(), "apt-get: {}", String::from_utf8_lossy(&install.stderr));
    std::fs::write(
        proj.join("hello.c"),
        "#include <stdio.h>\nint main(void){puts(\"hello from the box\");return 0;}\n",
    )
    .unwrap();
    assert_eq!(as_user("cd ~/proj && cc -o hello hello.c && ./hello"), "hello from the box");
    assert_eq!(std::fs::metadata(proj.join("hello")).unwrap().uid(), uid);

    // `hutch shell` logs the user in, in the caller's directory.
    let out = h
        .cmd(&["shell", "dev"])
        .current_dir(&proj)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"pwd; id -un\n")?;
            c.wait_with_output()
        })
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.trim(), format!("{}\n{}", proj.display(), user.name), "shell: {text}");

    // --env-file, with -e winning over the file.
    std::fs::write(h.root.join("env"), "# vars\nA=1\nB=two words\n").unwrap();
    let env_file = h.root.join("env").display().to_string();
    let got = h.ok(&["exec", "dev", "--env-file", &env_file, "-e", "A=cli", "--", "sh", "-c", "echo \"$A|$B\""]);
    assert_eq!(got.trim(), "cli|two words");

    // devbox.forward: the caller's SSH agent socket (the user's own) and TERM.
    h.ok(&["config", "set", "dev", "devbox.forward", r#"["ssh-agent", "term"]"#]);
    let sockets = PathBuf::from(format!("/var/tmp/hutch-it-shares/devbox-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&sockets);
    std::fs::create_dir_all(&sockets).unwrap();
    let agent = sockets.join("agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&agent).unwrap();
    std::os::unix::fs::chown(&agent, Some(uid), Some(uid)).unwrap();
    let server = std::thread::spawn(move || {
        use std::io::Write;
        let (mut c, _) = listener.accept().unwrap();
        c.write_all(b"agent-ok\n").unwrap();
    });
    let read_agent = "echo $SSH_AUTH_SOCK $TERM; perl -MIO::Socket::UNIX -e 'print IO::Socket::UNIX->new(Peer => $ENV{SSH_AUTH_SOCK})->getline'";
    let out = h
        .cmd(&["exec", "dev", "--user", &user.name, "--", "sh", "-c", read_agent])
        .env("SSH_AUTH_SOCK", &agent)
        .env("TERM", "xterm-256color")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "/run/hutch/ssh-agent.sock xterm-256color\nagent-ok\n");
    server.join().unwrap();
    // Another user's agent is not forwarded.
    let roots = sockets.join("root-agent.sock");
    let _keep = std::os::unix::net::UnixListener::bind(&roots).unwrap();
    let out =
        h.cmd(&["exec", "dev", "--user", &user.name, "--", "true"]).env("SSH_AUTH_SOCK", &roots).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(&format!("it is not owned by uid {uid}")), "{err}");

    h.ok(&["stop", "dev"]);
    h.ok(&["destroy", "dev"]);
    assert!(user.home.join("x").exists(), "destroy removed the shared home's files");
    let _ = std::fs::remove_dir_all(&sockets);
}
