//! Hostile archives through the real binary (security.md C4–C10): `hutch create
//! --from-tar` either fails with a clear message and leaves the containers directory
//! as it was, or succeeds with the hostile entry kept inside the root filesystem.
//! Canaries next to the state tree (`<root>/canary`) are what the archives aim at.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{Hutch, require};

/// Every path under `dir` (not following symlinks): kind, size, mode, owner, link
/// count, mtime and inode.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(p: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let Ok(rd) = std::fs::read_dir(p) else { return };
        for e in rd.flatten() {
            let md = std::fs::symlink_metadata(e.path()).unwrap();
            out.insert(
                e.path(),
                format!(
                    "{:?} {} {:o} {}:{} {} {} {}",
                    md.file_type(),
                    md.len(),
                    md.mode(),
                    md.uid(),
                    md.gid(),
                    md.nlink(),
                    md.mtime(),
                    md.ino()
                ),
            );
            if md.is_dir() {
                walk(&e.path(), out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, &mut out);
    out
}

/// `<root>/canary/file` and `<root>/canary/dir`: what hostile entries aim at.
fn plant_canary(h: &Hutch) -> PathBuf {
    let c = h.root.join("canary");
    std::fs::create_dir_all(c.join("dir")).unwrap();
    std::fs::write(c.join("file"), b"canary").unwrap();
    c
}

/// A header with a name (or link target) written as raw bytes: tar::Builder's
/// own setters refuse `..`.
fn header(name: &str, kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    assert!(name.len() <= 100, "{name}");
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

/// Extra entries appended after the busybox rootfs.
#[derive(Default)]
struct Evil {
    out: Vec<(tar::Header, Vec<u8>)>,
}

impl Evil {
    fn add(&mut self, mut h: tar::Header, data: &[u8]) -> &mut Evil {
        h.set_cksum();
        self.out.push((h, data.to_vec()));
        self
    }
    fn file(&mut self, name: &str, data: &[u8]) -> &mut Evil {
        self.add(header(name, tar::EntryType::Regular, data.len() as u64, 0o644), data)
    }
    fn dir(&mut self, name: &str) -> &mut Evil {
        self.add(header(name, tar::EntryType::Directory, 0, 0o755), b"")
    }
    fn link(&mut self, kind: tar::EntryType, name: &str, target: &str) -> &mut Evil {
        let mut h = header(name, kind, 0, 0o777);
        h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
        self.add(h, b"")
    }
    fn symlink(&mut self, name: &str, target: &str) -> &mut Evil {
        self.link(tar::EntryType::Symlink, name, target)
    }
    fn hardlink(&mut self, name: &str, target: &str) -> &mut Evil {
        self.link(tar::EntryType::Link, name, target)
    }
    fn node(&mut self, name: &str, kind: tar::EntryType, major: u32, minor: u32) -> &mut Evil {
        let mut h = header(name, kind, 0, 0o666);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.add(h, b"")
    }
    /// A PAX extended header for the next entry.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Evil {
        let mut body = Vec::new();
        for (key, value) in records {
            let rest = key.len() + value.len() + 3;
            let mut digits = 1;
            while (digits + rest).to_string().len() != digits {
                digits += 1;
            }
            body.extend_from_slice(format!("{} {key}=", digits + rest).as_bytes());
            body.extend_from_slice(value);
            body.push(b'\n');
        }
        self.add(header("PaxHeader", tar::EntryType::XHeader, body.len() as u64, 0o644), &body)
    }
}

/// The busybox rootfs followed by `evil`'s entries, as an uncompressed tar.
fn busybox_tar(src: &Path, evil: &Evil) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", src).unwrap();
    for (h, data) in &evil.out {
        b.append(h, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

fn xz(raw: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
    e.write_all(raw).unwrap();
    e.finish().unwrap()
}

/// Writes `bytes` as `<root>/<name>` and runs `hutch create c --from-tar` on it.
fn create_from(h: &Hutch, name: &str, bytes: &[u8]) -> (std::process::Output, PathBuf) {
    let file = h.root.join(name);
    std::fs::write(&file, bytes).unwrap();
    (h.run(&["create", "c", "--from-tar", file.to_str().unwrap()]), file)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Fails with `want` in the message, and nothing is left in or added to the
/// containers directory or the canary.
fn assert_refused(h: &Hutch, canary: &Path, name: &str, bytes: &[u8], want: &str) {
    let (containers, canaries) = (snapshot(&h.paths().containers()), snapshot(canary));
    let (out, file) = create_from(h, name, bytes);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{name}: created:\n{err}");
    assert!(err.contains(&format!("hutch: error: failed to unpack {}: ", file.display())), "{name}: {err}");
    assert!(err.contains(want), "{name}: {err}");
    assert!(err.contains("hint:"), "{name}: {err}");
    assert_eq!(snapshot(&h.paths().containers()), containers, "{name}: the containers directory changed");
    assert_eq!(snapshot(canary), canaries, "{name}: the canary changed");
}

/// Succeeds; returns stderr (the notices). The canary is untouched.
fn assert_contained(h: &Hutch, canary: &Path, name: &str, bytes: &[u8]) -> String {
    let canaries = snapshot(canary);
    let (out, _) = create_from(h, name, bytes);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{name}: create failed:\n{err}");
    assert_eq!(snapshot(canary), canaries, "{name}: the canary changed");
    err
}

fn rootfs(h: &Hutch) -> PathBuf {
    h.paths().container("c").join("rootfs")
}

/// C4: `..` entries are refused (with a notice); absolute ones stay inside.
#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn dot_dot_and_absolute_entries_stay_inside() {
    let Some(img) = require("hostile_dot_dot", &[]) else {
        return;
    };
    let h = Hutch::new("hostile-dotdot");
    let canary = plant_canary(&h);
    let abs = canary.join("pwned-abs");
    let mut e = Evil::default();
    // From <root>/containers/.staging-c/rootfs, three levels up is <root>.
    e.file("../../../canary/pwned", b"x")
        .file("bin/../../../../canary/pwned2", b"x")
        .hardlink("bin/h", "../../../canary/file")
        .file(abs.to_str().unwrap(), b"inside")
        .hardlink("bin/sh-hardlink", "/bin/busybox");
    let err = assert_contained(&h, &canary, "dotdot.tar.xz", &xz(&busybox_tar(&img.busybox(), &e)));
    assert!(err.contains("refused 3 archive entries that pointed outside the root filesystem"), "{err}");
    let r = rootfs(&h);
    assert_eq!(std::fs::read(r.join(abs.strip_prefix("/").unwrap())).unwrap(), b"inside");
    assert!(!r.join("bin/h").exists());
    // An absolute hard link target is resolved inside the rootfs too.
    let busybox = std::fs::metadata(r.join("bin/busybox")).unwrap();
    assert_eq!(std::fs::metadata(r.join("bin/sh-hardlink")).unwrap().ino(), busybox.ino());
    h.ok(&["destroy", "c"]);
    h.assert_gone("c");
}

/// C5: `l -> /` or `l -> ..`, then a write through `l`: it lands inside. A symlink
/// to a host directory that does not exist inside the rootfs makes create fail.
#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn writes_through_escaping_symlinks_stay_inside() {
    let Some(img) = require("hostile_symlink", &[]) else {
        return;
    };
    let h = Hutch::new("hostile-symlink");
    let canary = plant_canary(&h);
    let mut e = Evil::default();
    e.symlink("l", "/").file("l/etc/shadow", b"root:*:").symlink("up", "../../..").file("up/canary/file", b"inside");
    assert_contained(&h, &canary, "symlink.tar.xz", &xz(&busybox_tar(&img.busybox(), &e)));
    let r = rootfs(&h);
    assert_eq!(std::fs::read(r.join("etc/shadow")).unwrap(), b"root:*:");
    assert_eq!(std::fs::read(r.join("canary/file")).unwrap(), b"inside");
    h.ok(&["destroy", "c"]);

    let mut e = Evil::default();
    e.symlink("abs", canary.to_str().unwrap()).file("abs/file", b"pwned");
    assert_refused(
        &h,
        &canary,
        "symlink-abs.tar.xz",
        &xz(&busybox_tar(&img.busybox(), &e)),
        "abs/file: open its directory: No such file or directory",
    );
}

/// C6: a directory, then a symlink of the same name, then a file under it.
#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn a_directory_swapped_for_a_symlink_is_resolved_afresh() {
    let Some(img) = require("hostile_swap", &[]) else {
        return;
    };
    let h = Hutch::new("hostile-swap");
    let canary = plant_canary(&h);
    let mut e = Evil::default();
    e.dir("canary").dir("evil").symlink("evil", "../../../canary").file("evil/file", b"inside");
    assert_contained(&h, &canary, "swap.tar.xz", &xz(&busybox_tar(&img.busybox(), &e)));
    assert_eq!(std::fs::read(rootfs(&h).join("canary/file")).unwrap(), b"inside");
    h.ok(&["destroy", "c"]);

    let mut e = Evil::default();
    e.dir("evil").symlink("evil", canary.to_str().unwrap()).file("evil/file", b"pwned");
    assert_refused(
        &h,
        &canary,
        "swap-abs.tar.xz",
        &xz(&busybox_tar(&img.busybox(), &e)),
        "evil/file: open its directory: No such file or directory",
    );
}

/// C7: no archive can hard link a host file into the container.
#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn hard_links_to_host_files_are_impossible() {
    let Some(img) = require("hostile_hardlink", &[]) else {
        return;
    };
    let h = Hutch::new("hostile-hardlink");
    let canary = plant_canary(&h);
    let host_file = canary.join("file");
    let mut e = Evil::default();
    e.hardlink("bin/h", host_file.to_str().unwrap());
    let want =
        format!("bin/h: hard link to {}: No such file or directory", host_file.strip_prefix("/").unwrap().display());
    assert_refused(&h, &canary, "hardlink-abs.tar.xz", &xz(&busybox_tar(&img.busybox(), &e)), &want);
    let mut e = Evil::default();
    e.symlink("s", canary.to_str().unwrap()).hardlink("bin/h", "s/file");
    assert_refused(
        &h,
        &canary,
        "hardlink-symlink.tar.xz",
        &xz(&busybox_tar(&img.busybox(), &e)),
        "bin/h: hard link to s/file: No such file or directory",
    );
    let mut e = Evil::default();
    e.symlink("up", "../../../..").hardlink("bin/h", "up/canary/file");
    assert_refused(
        &h,
        &canary,
        "hardlink-up.tar.xz",
        &xz(&busybox_tar(&img.busybox(), &e)),
        "bin/h: hard link to up/canary/file: No such file or directory",
    );
    assert_eq!(std::fs::metadata(&host_file).unwrap().nlink(), 1);
}

/// C8: device nodes are skipped for an unprivileged container (with a notice);
/// fifos are kept; the container boots.
#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn device_nodes_are_skipped_and_the_container_boots() {
    let Some(img) = require("hostile_devices", &[]) else {
        return;
    };
    let h = Hutch::new("hostile-devices");
    let canary = plant_canary(&h);
    let mut e = Evil::default();
    e.node("dev/sda", tar::EntryType::Block, 8, 0)
        .node("dev/mem", tar::EntryType::Char, 1, 1)
        .node("etc/.wh.passwd", tar::EntryType::Char, 0, 0)
        .node("etc/fifo", tar::EntryType::Fifo, 0, 0);
    let err = assert_contained(&h, &canary, "devices.tar.xz", &xz(&busybox_tar(&img.busybox(), &e)));
    assert!(err.contains("skipped 3 device nodes in the archive"), "{err}");
    let r = rootfs(&h);
    for n in ["dev/sda", "dev/mem", "etc/.wh.passwd"] {
        assert!(std::fs::symlink_metadata(r.join(n)).is_err(), "{n} was made");
    }
    h.ok(&["start", "c", "--wait"]);
    assert_eq!(h.exec_status("c", &["test", "-p", "/etc/fifo"]), 0);
    assert_eq!(h.exec("c", &["cat", "/etc/hostname"]), "c");
    h.ok(&["destroy", "--force", "c"]);
    h.assert_gone("c");
}

/// C10: corrupt and truncated archives fail cleanly; nothing is left behind.
#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn corrupt_and_truncated_archives_fail_cleanly() {
    let Some(img) = require("hostile_corrupt", &[]) else {
        return;
    };
    let h = Hutch::new("hostile-corrupt");
    let canary = plant_canary(&h);
    let raw = busybox_tar(&img.busybox(), &Evil::default());
    let good = xz(&raw);
    let mut corrupt = good.clone();
    let mid = corrupt.len() / 2;
    for b in &mut corrupt[mid..mid + 64] {
        *b ^= 0xa5;
    }
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&raw).unwrap();
        e.finish().unwrap()
    };
    let zst = zstd::encode_all(&raw[..], 3).unwrap();
    let cases = [
        ("truncated.tar.xz", good[..good.len() / 2].to_vec()),
        ("short.tar.xz", good[..good.len() - 8].to_vec()),
        ("corrupt.tar.xz", corrupt),
        ("truncated.tar.gz", gz[..gz.len() / 2].to_vec()),
        ("truncated.tar.zst", zst[..zst.len() / 2].to_vec()),
        ("truncated.tar", raw[..raw.len() / 2].to_vec()),
    ];
    for (name, bytes) in cases {
        assert_refused(&h, &canary, name, &bytes, "corrupt or truncated archive: ");
    }
    // The archive itself was fine.
    let (out, _) = create_from(&h, "good.tar.xz", &good);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(rootfs(&h).join("bin/busybox").exists());
}

/// `security.capability` granting cap_dac_read_search (+ep), VFS_CAP_REVISION_2:
/// magic_etc = 0x02000000 | VFS_CAP_FLAGS_EFFECTIVE, permitted bit 2, the rest 0.
const CAP_DAC_READ_SEARCH: [u8; 20] = [0x01, 0, 0, 0x02, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// The `n`th value on the `key` line of /proc/PID/status.
fn field<'a>(status: &'a str, key: &str, n: usize) -> &'a str {
    let line = status.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no {key} in {status}"));
    line.split_whitespace().nth(n + 1).unwrap_or_else(|| panic!("{line}"))
}

fn cap_eff(status: &str) -> u64 {
    u64::from_str_radix(field(status, "CapEff:", 0), 16).unwrap()
}

/// C9: setuid bits and file capabilities survive the unpack and work under the id
/// map. (busybox runs the applet named by argv[0], or by argv[1] when argv[0]
/// starts with "busybox": hence the names.)
#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn setuid_and_file_capabilities_work_under_the_id_map() {
    let Some(img) = require("hostile_caps", &[]) else {
        return;
    };
    let h = Hutch::new("hostile-caps");
    let busybox = std::fs::read(img.busybox().join("bin/busybox")).unwrap();
    let mut e = Evil::default();
    e.pax(&[("SCHILY.xattr.security.capability", &CAP_DAC_READ_SEARCH)])
        .add(header("bin/busybox-capcat", tar::EntryType::Regular, busybox.len() as u64, 0o4755), &busybox)
        .pax(&[("SCHILY.xattr.security.capability", &CAP_DAC_READ_SEARCH)])
        .add(header("bin/busybox-capcat-nosuid", tar::EntryType::Regular, busybox.len() as u64, 0o755), &busybox);
    let (out, _) = create_from(&h, "caps.tar.xz", &xz(&busybox_tar(&img.busybox(), &e)));
    assert!(out.status.success(), "{}", text(&out.stderr));
    // On disk: the distro's own ids, the bit and the attribute as archived.
    let md = std::fs::metadata(rootfs(&h).join("bin/busybox-capcat")).unwrap();
    assert_eq!((md.uid(), md.mode() & 0o7777), (0, 0o4755));
    h.ok(&["start", "c", "--wait"]);
    assert_eq!(h.exec("c", &["stat", "-c", "%a %u", "/bin/busybox-capcat"]), "4755 0");
    let nobody = |args: &[&str]| {
        let mut a = vec!["exec", "c", "--user", "65534", "--"];
        a.extend_from_slice(args);
        h.ok(&a)
    };
    assert_eq!(cap_eff(&nobody(&["cat", "/proc/self/status"])), 0, "nobody has no capabilities of its own");
    // The file capability alone: exactly cap_dac_read_search.
    assert_eq!(cap_eff(&nobody(&["/bin/busybox-capcat-nosuid", "cat", "/proc/self/status"])), 1 << 2);
    // setuid root (container root through the id map) with the capability: the
    // kernel made the saved uid 0 and granted the capability. (busybox then drops
    // the effective uid for applets that do not need it, which clears CapEff.)
    let status = nobody(&["/bin/busybox-capcat", "cat", "/proc/self/status"]);
    assert_eq!(field(&status, "Uid:", 2), "0", "{status}");
    assert_ne!(u64::from_str_radix(field(&status, "CapPrm:", 0), 16).unwrap() & (1 << 2), 0, "{status}");
    // What the capability is for: reading a file only root may read.
    h.ok(&["exec", "c", "--", "sh", "-c", "echo secret > /root/secret && chmod 600 /root/secret"]);
    assert_ne!(h.run(&["exec", "c", "--user", "65534", "--", "cat", "/root/secret"]).status.code(), Some(0));
    assert_eq!(nobody(&["/bin/busybox-capcat-nosuid", "cat", "/root/secret"]).trim(), "secret");
    h.ok(&["stop", "c"]);
    h.ok(&["destroy", "c"]);
    h.assert_gone("c");
}
