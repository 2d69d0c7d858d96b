//! Building a rootfs from a distribution's own packages, for sources other than an
//! image server: debootstrap (Debian, Ubuntu), `dnf --installroot` (CentOS, Fedora)
//! and the host's static busybox. The external programs are the ones the whole
//! ecosystem uses for this; a missing one is named with its package.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::Error;

fn require(program: &str, package: &str) -> Result<std::path::PathBuf, Error> {
    crate::base::fsutil::which(program)
        .ok_or_else(|| Error::MissingProgram { program: program.into(), package: package.into() })
}

/// Runs `cmd`, its output going to `log`; on failure the error quotes the log's tail.
fn run(mut cmd: Command, what: &str, log: &Path) -> Result<(), Error> {
    let file = std::fs::File::create(log).map_err(|e| Error::Io { action: "create", path: log.into(), source: e })?;
    let err = file.try_clone().map_err(|e| Error::Io { action: "open", path: log.into(), source: e })?;
    // SAFETY: the pre_exec closure only makes async-signal-safe system calls.
    unsafe {
        cmd.pre_exec(|| {
            // The builder's mounts (debootstrap mounts /proc and /sys in the target)
            // stay private and vanish with it; and it dies with hutch.
            if libc::unshare(libc::CLONE_NEWNS) != 0
                || libc::mount(
                    c"none".as_ptr(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) != 0
                || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .env("LC_ALL", "C")
        .status()
        .map_err(|e| Error::Build { what: what.into(), message: format!("failed to run it: {e}") })?;
    if status.success() {
        return Ok(());
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(12).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(Error::Build { what: what.into(), message: format!("it exited with {status}:\n{}", tail.join("\n")) })
}

pub struct Debootstrap<'a> {
    pub suite: &'a str,
    pub mirror: &'a str,
    pub arch: &'a str,
    pub variant: Option<&'a str>,
    pub components: &'a [String],
    pub include: &'a [String],
    pub exclude: &'a [String],
}

pub(crate) fn debootstrap(d: &Debootstrap<'_>, rootfs: &Path, log: &Path) -> Result<(), Error> {
    let bin = require("debootstrap", "debootstrap")?;
    let mut cmd = Command::new(bin);
    // Release files must verify against the distribution's keyring: no silent
    // fallback to unchecked packages (debian-archive-keyring, ubuntu-keyring).
    cmd.arg("--force-check-gpg").arg(format!("--arch={}", d.arch));
    if let Some(v) = d.variant {
        cmd.arg(format!("--variant={v}"));
    }
    if !d.components.is_empty() {
        cmd.arg(format!("--components={}", d.components.join(",")));
    }
    if !d.include.is_empty() {
        cmd.arg(format!("--include={}", d.include.join(",")));
    }
    if !d.exclude.is_empty() {
        cmd.arg(format!("--exclude={}", d.exclude.join(",")));
    }
    cmd.arg(d.suite).arg(rootfs).arg(d.mirror);
    run(cmd, &format!("debootstrap {} from {}", d.suite, d.mirror), log)?;
    // Downloaded packages are not part of the image.
    if let Ok(entries) = std::fs::read_dir(rootfs.join("var/cache/apt/archives")) {
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "deb") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

pub struct Dnf<'a> {
    pub releasever: &'a str,
    pub arch: &'a str,
    /// (name, baseurl) pairs; empty means the host's own repositories.
    pub repos: &'a [(String, String)],
    pub packages: &'a [String],
}

pub(crate) fn dnf(d: &Dnf<'_>, rootfs: &Path, log: &Path) -> Result<(), Error> {
    let bin = require("dnf", "dnf")?;
    let mut cmd = Command::new(bin);
    cmd.arg("-y")
        .arg(format!("--installroot={}", rootfs.display()))
        .arg(format!("--releasever={}", d.releasever))
        .arg(format!("--forcearch={}", d.arch))
        .arg("--setopt=install_weak_deps=False")
        .arg("--setopt=tsflags=nodocs");
    if !d.repos.is_empty() {
        cmd.arg("--disablerepo=*");
        for (name, url) in d.repos {
            cmd.arg(format!("--repofrompath=hutch-{name},{url}")).arg(format!("--enablerepo=hutch-{name}"));
        }
        // Packages are checked against the keys in the host's rpm keyring.
        cmd.arg("--setopt=gpgcheck=1");
    }
    cmd.arg("install").args(d.packages);
    run(cmd, &format!("dnf --installroot (release {})", d.releasever), log)?;
    let _ = crate::base::fsutil::remove_tree(&rootfs.join("var/cache/dnf"));
    Ok(())
}

/// Whether the ELF file at `path` is statically linked (it has no PT_INTERP).
pub(crate) fn is_static_elf(path: &Path) -> bool {
    let Ok(data) = std::fs::read(path) else { return false };
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 {
        return false; // only 64-bit ELF is checked; others are treated as dynamic
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(data[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(32), u16_at(54), u16_at(56));
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        o + 4 <= data.len() && u32::from_le_bytes(data[o..o + 4].try_into().unwrap()) != 3 // PT_INTERP
    })
}

/// A minimal bootable rootfs around the host's static busybox: busybox init, a
/// console shell, applet links, passwd and group.
pub(crate) fn busybox(candidates: &[String], rootfs: &Path) -> Result<String, Error> {
    let bin = candidates.iter().map(Path::new).find(|p| p.is_file() && is_static_elf(p)).ok_or_else(|| {
        Error::MissingProgram { program: "a static busybox".into(), package: "busybox-static".into() }
    })?;
    let io = |action: &'static str, p: &Path| {
        let path = p.to_path_buf();
        move |e| Error::Io { action, path, source: e }
    };
    for d in ["bin", "sbin", "usr/bin", "usr/sbin", "etc/init.d", "proc", "sys", "dev", "run", "tmp", "root", "var/log"]
    {
        let p = rootfs.join(d);
        std::fs::create_dir_all(&p).map_err(io("create", &p))?;
    }
    std::fs::set_permissions(rootfs.join("tmp"), std::fs::Permissions::from_mode(0o1777))
        .map_err(io("chmod", rootfs))?;
    std::fs::set_permissions(rootfs.join("root"), std::fs::Permissions::from_mode(0o700))
        .map_err(io("chmod", rootfs))?;
    let target = rootfs.join("bin/busybox");
    std::fs::copy(bin, &target).map_err(io("copy", bin))?;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).map_err(io("chmod", &target))?;
    let out = Command::new(bin)
        .arg("--list-full")
        .output()
        .map_err(|e| Error::Build { what: format!("{} --list-full", bin.display()), message: e.to_string() })?;
    for applet in String::from_utf8_lossy(&out.stdout).lines().map(str::trim).filter(|a| !a.is_empty()) {
        if applet == "bin/busybox" || applet.contains("..") || applet.starts_with('/') {
            continue;
        }
        let link = rootfs.join(applet);
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent).map_err(io("create", parent))?;
        }
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("/bin/busybox", &link).map_err(io("link", &link))?;
    }
    let files: [(&str, &str, u32); 4] = [
        ("etc/inittab", "::sysinit:/etc/init.d/rcS\nconsole::respawn:-/bin/sh\n::shutdown:/bin/sync\n", 0o644),
        (
            "etc/init.d/rcS",
            "#!/bin/sh\n[ -r /etc/hostname ] && hostname -F /etc/hostname\nmkdir -p /dev/pts /dev/shm\n",
            0o755,
        ),
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n", 0o644),
        ("etc/group", "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n", 0o644),
    ];
    for (path, text, mode) in files {
        let p = rootfs.join(path);
        std::fs::write(&p, text).map_err(io("write", &p))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).map_err(io("chmod", &p))?;
    }
    let version = String::from_utf8_lossy(&Command::new(bin).output().map(|o| o.stdout).unwrap_or_default())
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("unknown")
        .trim_start_matches('v')
        .to_string();
    Ok(format!("{} {version}", bin.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_static_and_dynamic_binaries() {
        // The test binary itself is dynamically linked.
        assert!(!is_static_elf(&std::env::current_exe().unwrap()));
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("x"), b"#!/bin/sh\n").unwrap();
        assert!(!is_static_elf(&d.path().join("x")));
        if let Some(b) = crate::base::fsutil::which("busybox").filter(|b| is_static_elf(b)) {
            let root = d.path().join("root");
            std::fs::create_dir(&root).unwrap();
            busybox(&[b.display().to_string()], &root).unwrap();
            assert!(root.join("sbin/init").is_symlink());
            assert!(crate::rootfs::detect_init(&root).is_ok());
        }
    }
}
