//! `exec -t`, `shell` and `console` driven through a real pseudo-terminal (tmux): a
//! prompt appears, a command runs, the window size arrives, Ctrl-a q detaches.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{BIN, Hutch, eventually, require};

/// A private tmux server running one command in a 100x30 window.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn start(h: &Hutch, tag: &str, command: &str) -> Tmux {
        let socket = h.root.join(format!("tmux-{tag}"));
        let full = format!("HUTCH_ROOT={} {command}; echo EXIT=$?; sleep 30", h.root.display());
        let ok = Command::new("tmux")
            .args(["-S", socket.to_str().unwrap(), "new-session", "-d", "-x", "100", "-y", "30", &full])
            .env("TERM", "xterm")
            .status()
            .unwrap()
            .success();
        assert!(ok, "tmux did not start");
        Tmux { socket }
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["-S", self.socket.to_str().unwrap(), "send-keys", "-t", "0"];
        args.extend_from_slice(keys);
        assert!(Command::new("tmux").args(&args).status().unwrap().success());
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-S", self.socket.to_str().unwrap(), "capture-pane", "-p", "-t", "0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_for(&self, text: &str) -> String {
        let mut last = String::new();
        let found = eventually(Duration::from_secs(20), || {
            last = self.screen();
            last.contains(text)
        });
        assert!(found, "{text:?} never appeared on the screen:\n{last}");
        last
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-S", self.socket.to_str().unwrap(), "kill-server"]).status();
    }
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn exec_t_gives_a_real_terminal_in_debian() {
    let Some(img) = require("exec_t_debian", &["tmux"]) else {
        return;
    };
    let h = Hutch::new("tty-exec");
    h.create("deb", &img.debian(), &[]);
    h.ok(&["start", "deb", "--wait"]);
    let t = Tmux::start(&h, "exec", &format!("{BIN} exec -t deb -- bash"));
    t.wait_for("root@deb");
    t.keys(&["tty; stty size; echo answer-$((6*7)); exit 7", "Enter"]);
    let screen = t.wait_for("EXIT=7");
    assert!(screen.contains("/dev/pts/"), "{screen}");
    assert!(screen.contains("30 100"), "window size not passed on:\n{screen}");
    assert!(screen.contains("answer-42"), "{screen}");

    // SIGWINCH: resizing the terminal resizes the container's pty.
    let t = Tmux::start(&h, "resize", &format!("{BIN} exec -t deb -- bash"));
    t.wait_for("root@deb");
    assert!(
        Command::new("tmux")
            .args(["-S", t.socket.to_str().unwrap(), "resize-window", "-t", "0", "-x", "120", "-y", "40"])
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(Duration::from_millis(300));
    t.keys(&["clear; stty size", "Enter"]);
    t.wait_for("40 120");
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn shell_starts_the_container_and_opens_a_login_shell() {
    let Some(img) = require("shell_busybox", &["tmux"]) else {
        return;
    };
    let h = Hutch::new("tty-shell");
    h.create("bb", &img.busybox(), &[]);
    let t = Tmux::start(&h, "shell", &format!("{BIN} shell bb"));
    t.wait_for("~ #");
    t.keys(&["echo login-$0-$HOME", "Enter"]);
    t.wait_for("login--sh-/root");
    t.keys(&["exit", "Enter"]);
    t.wait_for("EXIT=0");
    assert_eq!(h.state("bb"), "running");
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn console_shows_a_prompt_runs_a_command_and_detaches() {
    let Some(img) = require("console_busybox", &["tmux"]) else {
        return;
    };
    let h = Hutch::new("tty-console");
    h.create("bb", &img.busybox(), &[]);
    h.ok(&["start", "bb", "--wait"]);
    let t = Tmux::start(&h, "console", &format!("{BIN} console bb"));
    t.wait_for("Ctrl-a q");
    t.keys(&["Enter"]);
    t.wait_for("/ #");
    t.keys(&["echo console-$((6*7))", "Enter"]);
    t.wait_for("console-42");
    t.keys(&["C-a", "q"]);
    let screen = t.wait_for("EXIT=0");
    assert!(screen.contains("Detached from bb"), "{screen}");
    // The console log kept it, and the container runs on.
    let log = h.ok(&["logs", "bb"]);
    assert!(log.contains("console-42"), "{log}");
    assert_eq!(h.state("bb"), "running");
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn debian_console_offers_a_login_prompt() {
    let Some(img) = require("console_debian", &["tmux"]) else {
        return;
    };
    let h = Hutch::new("tty-console-deb");
    h.create("deb", &img.debian(), &[]);
    h.ok(&["start", "deb", "--wait"]);
    let t = Tmux::start(&h, "console", &format!("{BIN} console deb"));
    t.wait_for("Ctrl-a q");
    t.keys(&["Enter"]);
    t.wait_for("deb login:");
    t.keys(&["C-a", "q"]);
    t.wait_for("EXIT=0");
}
