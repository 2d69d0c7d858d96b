//! Writing an effective table into a rootfs. Every path goes through the
//! `crate::rootfs` primitives, which resolve it inside the rootfs.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::FileType;

use super::network::{self, Enable};
use super::schema::{Effective, FileSpec, SetSpec};
use super::{Applied, Context, Error};
use crate::rootfs;

/// Where vendor unit files live, in the order they are looked for.
const UNIT_DIRS: &[&str] = &["/usr/lib/systemd/system", "/lib/systemd/system"];

/// Bound on a file that a `[[set]]` edits.
const SET_LIMIT: u64 = 1 << 20;

/// Records what it writes; gives new entries to the rootfs root's owner when that is
/// not us (a rootfs owned by the container's shifted root).
struct Writer<'a> {
    rootfs: &'a Path,
    owner: Option<(u32, u32)>,
    written: Vec<String>,
    skipped: Vec<String>,
}

impl<'a> Writer<'a> {
    fn new(rootfs: &'a Path) -> Result<Self, Error> {
        let m = std::fs::metadata(rootfs).map_err(|source| Error::apply("inspect", "/", rootfs, source))?;
        let me = (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw());
        let owner = Some((m.uid(), m.gid())).filter(|o| *o != me);
        Ok(Writer { rootfs, owner, written: Vec::new(), skipped: Vec::new() })
    }

    fn err(&self, action: &'static str, path: &str) -> impl FnOnce(io::Error) -> Error + '_ {
        let rootfs = self.rootfs;
        let path = path.to_string();
        move |source| Error::apply(action, &path, rootfs, source)
    }

    fn dir(&self, path: &str) -> Result<(), Error> {
        rootfs::mkdir_in_root_owned(self.rootfs, path, 0o755, self.owner)
            .map(|_| ())
            .map_err(self.err("create directory", path))
    }

    fn parent(&self, path: &str) -> Result<(), Error> {
        match path.rsplit_once('/') {
            Some((dir, _)) if !dir.is_empty() => self.dir(dir),
            _ => Ok(()),
        }
    }

    fn chown(&self, path: &str) -> Result<(), Error> {
        match self.owner {
            Some((uid, gid)) => rootfs::chown_in_root(self.rootfs, path, uid, gid).map_err(self.err("chown", path)),
            None => Ok(()),
        }
    }

    fn file(&mut self, path: &str, contents: &str, mode: u32) -> Result<(), Error> {
        self.parent(path)?;
        rootfs::write_file(self.rootfs, path, contents.as_bytes(), mode).map_err(self.err("write", path))?;
        self.chown(path)?;
        self.written.push(path.to_string());
        Ok(())
    }

    fn link(&mut self, path: &str, target: &str) -> Result<(), Error> {
        self.parent(path)?;
        rootfs::symlink_in_root(self.rootfs, path, target).map_err(self.err("link", path))?;
        self.chown(path)?;
        self.written.push(path.to_string());
        Ok(())
    }

    fn exists(&self, path: &str) -> bool {
        rootfs::exists_in_root(self.rootfs, path)
    }

    /// The type of `path` itself (not followed), if it exists.
    fn kind(&self, path: &str) -> Option<FileType> {
        rootfs::lstat_in_root(self.rootfs, path).ok().map(|st| FileType::from_raw_mode(st.st_mode))
    }

    fn unit_file(&self, unit: &str) -> Option<String> {
        UNIT_DIRS.iter().map(|d| format!("{d}/{unit}")).find(|p| self.exists(p))
    }
}

pub(super) fn apply(rootfs: &Path, eff: &Effective, ctx: &Context) -> Result<Applied, Error> {
    ctx.validate()?;
    let mut w = Writer::new(rootfs)?;

    w.file("/etc/hostname", &format!("{}\n", ctx.hostname), 0o644)?;
    w.file(
        "/etc/hosts",
        &format!("127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{}\n", ctx.hostname),
        0o644,
    )?;
    let machine_id = format!("{}\n", ctx.machine_id);
    w.file("/etc/machine-id", &machine_id, 0o444)?;
    // Debian links it to /etc/machine-id; an old-style copy must match.
    if w.kind("/var/lib/dbus/machine-id") == Some(FileType::RegularFile) {
        w.file("/var/lib/dbus/machine-id", &machine_id, 0o444)?;
    }

    let style = network::choose(rootfs, &eff.network.styles);
    for d in network::dirs(style) {
        w.dir(d)?;
    }
    for (path, content, mode) in network::files(style, &eff.network, &ctx.hostname) {
        w.file(&path, &content, mode)?;
    }
    if eff.network.enable {
        enable(&mut w, style.enable())?;
    }

    if let Some(sd) = &eff.systemd {
        for unit in &sd.mask {
            let path = format!("/etc/systemd/system/{unit}");
            match w.kind(&path) {
                // `systemctl mask` does not replace a unit file of the admin either.
                Some(k) if k != FileType::Symlink => {
                    w.skipped.push(format!("{path} is a unit file, not masked"));
                }
                _ => w.link(&path, "/dev/null")?,
            }
        }
        if let Some(getty) = &sd.getty {
            match w.unit_file(getty) {
                Some(target) => w.link(&format!("/etc/systemd/system/getty.target.wants/{getty}"), &target)?,
                None => w.skipped.push(format!("{getty} is not in the rootfs, not enabled")),
            }
        }
    }

    for f in &eff.files {
        if condition_holds(&w, f) {
            w.file(&f.path, &ctx.substitute(&f.content, &eff.network.interface), f.mode)?;
        }
    }
    for s in &eff.set {
        set(&mut w, s, &ctx.substitute(&s.value, &eff.network.interface))?;
    }

    Ok(Applied {
        written: w.written,
        skipped: w.skipped,
        network: style,
        init: eff.init.to_config(),
        reboot_signal: eff.init.reboot_signal.to_string(),
    })
}

fn condition_holds(w: &Writer, f: &FileSpec) -> bool {
    f.if_exists.as_deref().is_none_or(|p| w.exists(p)) && f.if_missing.as_deref().is_none_or(|p| !w.exists(p))
}

fn enable(w: &mut Writer, how: Enable) -> Result<(), Error> {
    match how {
        Enable::Systemd(links) => {
            for (link, unit) in links {
                match w.unit_file(unit) {
                    Some(target) => w.link(&format!("/etc/systemd/system/{link}"), &target)?,
                    None => w.skipped.push(format!("{unit} is not in the rootfs, not enabled")),
                }
            }
        }
        Enable::OpenRc(links) => {
            for (runlevel, service) in links {
                let script = format!("/etc/init.d/{service}");
                if w.exists(&script) {
                    w.link(&format!("/etc/runlevels/{runlevel}/{service}"), &script)?;
                } else {
                    w.skipped.push(format!("{script} is not in the rootfs, not added to runlevel {runlevel}"));
                }
            }
        }
    }
    Ok(())
}

/// Applies one `[[set]]` to an existing file, keeping its mode.
fn set(w: &mut Writer, s: &SetSpec, value: &str) -> Result<(), Error> {
    let text = match rootfs::read_file_in_root(w.rootfs, &s.path, SET_LIMIT) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            w.skipped.push(format!("{} is not in the rootfs, {} not set", s.path, s.key));
            return Ok(());
        }
        Err(e) => return Err(w.err("read", &s.path)(e)),
    };
    // A symlinked file is replaced by a regular one: keep the mode of a regular file only.
    let mode = rootfs::lstat_in_root(w.rootfs, &s.path)
        .ok()
        .filter(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile)
        .map_or(0o644, |st| st.st_mode & 0o777);
    let edited = set_line(&text, &s.key, value);
    if edited != text {
        w.file(&s.path, &edited, mode)?;
    }
    Ok(())
}

/// `text` with `key=value` set: the first active assignment replaced, else the first
/// commented-out one, else appended.
pub(super) fn set_line(text: &str, key: &str, value: &str) -> String {
    let assigns = |line: &str| line.trim_start().strip_prefix(key).is_some_and(|r| r.starts_with('='));
    let commented = |line: &str| line.trim_start().strip_prefix('#').is_some_and(assigns);
    let mut lines: Vec<&str> = text.lines().collect();
    let new = format!("{key}={value}");
    match lines.iter().position(|l| assigns(l)).or_else(|| lines.iter().position(|l| commented(l))) {
        Some(i) => lines[i] = &new,
        None => lines.push(&new),
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}
