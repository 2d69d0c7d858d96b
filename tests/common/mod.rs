//! Shared harness for the root integration tests: each test gets its own hutch state
//! tree (`--root`), runs the real binary, and cleans up on drop. The tests are
//! `#[ignore]`d, so a plain (non-root) `cargo test` lists them as ignored; run them with
//! `-- --include-ignored` (scripts/test.sh does). A test that runs without its
//! prerequisites fails with the reason, in and out of CI: it never shows as passed.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_hutch");

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The test images built by tests/images/build.sh.
pub struct Images {
    pub dir: PathBuf,
}

impl Images {
    pub fn debian(&self) -> PathBuf {
        self.dir.join("debian-bookworm")
    }
    pub fn busybox(&self) -> PathBuf {
        self.dir.join("busybox")
    }
}

/// Checks root, the images and the listed programs, and panics with what is missing:
/// a test that was asked to run (they are ignored otherwise) and could not is a
/// failure, never a pass. Returns `Some` so tests read `let Some(img) = require(..)`.
pub fn require(test: &str, programs: &[&str]) -> Option<Images> {
    let dir = PathBuf::from(std::env::var("HUTCH_TEST_IMAGES").unwrap_or_else(|_| "/var/cache/hutch-tests".into()));
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root".to_string());
    }
    for (img, probe) in [("debian-bookworm", "sbin/init"), ("busybox", "bin/busybox")] {
        if !dir.join(img).join(probe).exists() {
            missing.push(format!("image {} (run tests/images/build.sh)", dir.join(img).display()));
        }
    }
    for p in programs {
        if !Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {p}"))
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            missing.push(format!("program {p}"));
        }
    }
    if missing.is_empty() {
        return Some(Images { dir });
    }
    panic!(
        "{test}: missing prerequisites: {} (root tests are ignored unless asked for; \
         run them as root after tests/images/build.sh, as scripts/test.sh does)",
        missing.join(", ")
    );
}

/// One hutch state tree.
pub struct Hutch {
    pub root: PathBuf,
}

impl Hutch {
    pub fn new(test: &str) -> Hutch {
        let root = PathBuf::from(format!("/var/tmp/hutch-it/{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        Hutch { root }
    }

    /// A state tree at `root` (which must be empty or absent).
    pub fn at(root: &Path) -> Hutch {
        std::fs::create_dir_all(root).unwrap();
        Hutch { root: root.to_path_buf() }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args).env("HUTCH_ROOT", &self.root).stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("hutch runs")
    }

    /// Runs with `input` on stdin (then end-of-file), capturing stdout and stderr.
    pub fn run_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hutch runs");
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), input).unwrap();
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    }

    /// Runs and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "hutch {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs and requires failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "hutch {args:?} should have failed:\nstdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Exit status of `hutch exec NAME -- args...`.
    pub fn exec_status(&self, name: &str, args: &[&str]) -> i32 {
        let mut a = vec!["exec", name, "--"];
        a.extend_from_slice(args);
        self.run(&a).status.code().expect("exited normally")
    }

    /// stdout of `hutch exec NAME -- args...`, trimmed; requires success.
    pub fn exec(&self, name: &str, args: &[&str]) -> String {
        let mut a = vec!["exec", name, "--"];
        a.extend_from_slice(args);
        self.ok(&a).trim().to_string()
    }

    pub fn info(&self, name: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["info", name, "--format", "json"])).expect("info is JSON")
    }

    pub fn state(&self, name: &str) -> String {
        self.info(name)["state"].as_str().unwrap().to_string()
    }

    pub fn paths(&self) -> hutch::base::paths::Paths {
        hutch::base::paths::Paths::new(Some(&self.root))
    }

    /// Every cgroup directory this tree could have made for `name` (the cgroup2 one
    /// first; on systemd hosts, the payload leaf of its scope: hutch::systemd).
    pub fn cgroup_dirs(&self, name: &str) -> Vec<PathBuf> {
        let layout = hutch::cgroup::Layout::detect().unwrap();
        let cg = hutch::cgroup::ContainerCgroup::new(&layout, &self.paths().cgroup_parent, name);
        let mut dirs: Vec<PathBuf> = std::iter::once(cg.unified).chain(cg.v1).collect();
        if hutch::systemd::is_systemd_host() && matches!(layout, hutch::cgroup::Layout::Unified { .. }) {
            let scope = hutch::systemd::scope_cgroup(&self.paths(), name);
            let payload = hutch::cgroup::ContainerCgroup::new(&layout, &scope, hutch::systemd::PAYLOAD);
            dirs.insert(0, payload.unified);
        }
        dirs
    }

    /// Mounts anywhere on the host that mention this tree.
    pub fn mounts(&self) -> Vec<String> {
        let root = self.root.display().to_string();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&root))
            .map(str::to_string)
            .collect()
    }

    /// Creates a container from a directory.
    pub fn create(&self, name: &str, from: &Path, extra: &[&str]) {
        let from = from.display().to_string();
        let mut a = vec!["create", name, "--from-dir", from.as_str()];
        a.extend_from_slice(extra);
        self.ok(&a);
    }

    /// Networks defined in this tree.
    pub fn networks(&self) -> Vec<String> {
        std::fs::read_dir(self.root.join("networks"))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        n.strip_suffix(".toml").filter(|s| !s.ends_with(".reservations")).map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Host interfaces whose name is one of this tree's veths for `name`.
    pub fn veths(&self, name: &str) -> Vec<String> {
        let p = self.paths();
        let mine: Vec<String> = (0..4).map(|i| hutch::network::attach::host_name(&p, name, i)).collect();
        std::fs::read_dir("/sys/class/net")
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| mine.contains(n))
            .collect()
    }

    /// Asserts that nothing of `name` is left: directory, runtime files, lock,
    /// cgroups, mounts, veths.
    pub fn assert_gone(&self, name: &str) {
        let p = self.paths();
        assert!(!p.container(name).exists(), "container directory left");
        assert!(!p.runtime(name).exists(), "runtime directory left");
        assert!(!p.lock(name).exists(), "lock file left");
        for d in self.cgroup_dirs(name) {
            assert!(!d.exists(), "cgroup {} left", d.display());
        }
        assert!(self.mounts().is_empty(), "mounts left: {:?}", self.mounts());
        assert!(self.veths(name).is_empty(), "veths left: {:?}", self.veths(name));
    }
}

impl Drop for Hutch {
    fn drop(&mut self) {
        let names: Vec<String> = std::fs::read_dir(self.root.join("containers"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        for n in names {
            let _ = self.cmd(&["destroy", "--force", &n]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
        for n in self.networks() {
            let _ = self.cmd(&["network", "delete", &n]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Polls `f` until it returns true or `timeout` passes (for state that settles
/// asynchronously, never as a performance assertion).
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// A loop-mounted scratch btrfs filesystem, unmounted and removed on drop.
pub struct ScratchBtrfs {
    pub image: PathBuf,
    pub mnt: PathBuf,
}

impl ScratchBtrfs {
    pub fn new(name: &str) -> ScratchBtrfs {
        let base = PathBuf::from(format!("/var/tmp/hutch-it/{name}-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let image = base.join("fs.img");
        std::fs::File::create(&image).unwrap().set_len(1 << 30).unwrap();
        let mnt = base.join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        // Test scaffolding only: the product itself never runs mkfs or mount.
        let ok = |c: &mut std::process::Command| assert!(c.status().unwrap().success(), "{c:?}");
        ok(std::process::Command::new("mkfs.btrfs").arg("-q").arg(&image));
        ok(std::process::Command::new("mount").arg("-o").arg("loop").arg(&image).arg(&mnt));
        ScratchBtrfs { image, mnt }
    }
}

impl Drop for ScratchBtrfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.mnt).status();
        let _ = std::fs::remove_dir_all(self.image.parent().unwrap());
    }
}
