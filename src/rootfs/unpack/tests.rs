//! Hostile archives (security.md C4–C10): each either fails with a clear error or is
//! unpacked with the hostile entry contained, and nothing outside the destination
//! changes. Headers carry the test runner's own ids, so these pass without root;
//! what needs root (other owners, device nodes, security.* and trusted.* attributes)
//! is checked only as root.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

use super::*;
use rustix::fs::XattrFlags;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn my_ids() -> (u64, u64) {
    (nix::unistd::getuid().as_raw().into(), nix::unistd::getgid().as_raw().into())
}

/// A tar archive written header by header, so names can hold what tar::Builder
/// refuses (`..`, absolute paths).
struct Raw {
    out: Vec<u8>,
}

impl Raw {
    fn new() -> Raw {
        Raw { out: Vec::new() }
    }

    fn header(name: &str, kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        assert!(name.len() <= 100, "{name} is too long for a plain header");
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        let (uid, gid) = my_ids();
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(1_700_000_000);
        h
    }

    fn push(&mut self, mut h: tar::Header, data: &[u8]) -> &mut Raw {
        h.set_cksum();
        self.out.extend_from_slice(h.as_bytes());
        self.out.extend_from_slice(data);
        self.out.resize(self.out.len().div_ceil(512) * 512, 0);
        self
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Raw {
        self.file_mode(name, data, 0o644)
    }

    fn file_mode(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Raw {
        self.push(Raw::header(name, tar::EntryType::Regular, data.len() as u64, mode), data)
    }

    fn dir(&mut self, name: &str) -> &mut Raw {
        self.dir_mode(name, 0o755)
    }

    fn dir_mode(&mut self, name: &str, mode: u32) -> &mut Raw {
        self.push(Raw::header(name, tar::EntryType::Directory, 0, mode), b"")
    }

    fn link(&mut self, kind: tar::EntryType, name: &str, target: &str) -> &mut Raw {
        let mut h = Raw::header(name, kind, 0, 0o777);
        h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
        self.push(h, b"")
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Raw {
        self.link(tar::EntryType::Symlink, name, target)
    }

    fn hardlink(&mut self, name: &str, target: &str) -> &mut Raw {
        self.link(tar::EntryType::Link, name, target)
    }

    fn node(&mut self, name: &str, kind: tar::EntryType, major: u32, minor: u32) -> &mut Raw {
        let mut h = Raw::header(name, kind, 0, 0o640);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.push(h, b"")
    }

    /// A PAX extended header describing the next entry.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Raw {
        let mut body = Vec::new();
        for (key, value) in records {
            let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
            let mut digits = 1;
            while (digits + rest).to_string().len() != digits {
                digits += 1;
            }
            body.extend_from_slice(format!("{} {key}=", digits + rest).as_bytes());
            body.extend_from_slice(value);
            body.push(b'\n');
        }
        self.push(Raw::header("PaxHeader", tar::EntryType::XHeader, body.len() as u64, 0o644), &body)
    }

    /// The archive with its end-of-archive marker.
    fn bytes(&self) -> Vec<u8> {
        let mut b = self.out.clone();
        b.extend_from_slice(&[0; 1024]);
        b
    }
}

/// A destination `root` next to things an archive might aim at: `outside/canary`
/// and `outside/sub`.
struct World {
    dir: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(outside.join("sub")).unwrap();
    std::fs::create_dir_all(dir.path().join("archives")).unwrap();
    std::fs::write(outside.join("canary"), b"canary").unwrap();
    World { dir, root, outside }
}

impl World {
    /// Everything in the temporary directory except the destination and the
    /// archives: kind, size, mode, link count, mtime, and file contents.
    fn outside_snapshot(&self) -> BTreeMap<PathBuf, String> {
        fn walk(p: &Path, skip: &[PathBuf], out: &mut BTreeMap<PathBuf, String>) {
            for e in std::fs::read_dir(p).unwrap().flatten() {
                let path = e.path();
                if skip.contains(&path) {
                    continue;
                }
                let md = std::fs::symlink_metadata(&path).unwrap();
                let mut desc = format!(
                    "{:?} {} {:o} {} {} {}",
                    md.file_type(),
                    md.len(),
                    md.mode(),
                    md.nlink(),
                    md.mtime(),
                    md.ino()
                );
                if md.is_file() {
                    desc.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
                }
                out.insert(path.clone(), desc);
                if md.is_dir() {
                    walk(&path, skip, out);
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(self.dir.path(), &[self.root.clone(), self.dir.path().join("archives")], &mut out);
        out
    }

    fn archive(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.path().join("archives").join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// Unpacks `bytes` into the root and checks that nothing outside it changed.
    fn unpack(&self, bytes: &[u8], opts: &Options) -> Result<Stats, Error> {
        let a = self.archive("a.tar", bytes);
        let before = self.outside_snapshot();
        let r = unpack_with(&a, &self.root, opts, None);
        assert_eq!(self.outside_snapshot(), before, "something outside the destination changed");
        r
    }

    fn unprivileged(&self, a: &Raw) -> Result<Stats, Error> {
        self.unpack(&a.bytes(), &Options::default())
    }

    /// The root's view of an absolute host path (where RESOLVE_IN_ROOT puts it).
    fn inside(&self, host: &Path) -> PathBuf {
        self.root.join(host.strip_prefix("/").unwrap())
    }
}

fn read(p: impl AsRef<Path>) -> Vec<u8> {
    std::fs::read(p.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display()))
}

fn is_symlink(p: impl AsRef<Path>) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

fn build_tar(dir: &Path, entries: &[(&str, &[u8])]) -> PathBuf {
    let p = dir.join("a.tar");
    let mut b = tar::Builder::new(File::create(&p).unwrap());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        // Owned by whoever runs the test, so it passes without root too.
        let (uid, gid) = my_ids();
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.finish().unwrap();
    p
}

fn gz(raw: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(raw).unwrap();
    e.finish().unwrap()
}

fn xz(raw: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
    e.write_all(raw).unwrap();
    e.finish().unwrap()
}

fn zst(raw: &[u8]) -> Vec<u8> {
    // With the content checksum, as the zstd tool writes it.
    let mut e = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    e.include_checksum(true).unwrap();
    e.write_all(raw).unwrap();
    e.finish().unwrap()
}

/// Bytes that do not compress, so a cut lands in the middle of the data.
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn sniffs_compression_by_content() {
    assert_eq!(sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
    assert_eq!(sniff(&[0xfd, b'7', b'z', b'X', b'Z', 0]), Compression::Xz);
    assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
    assert_eq!(sniff(b"usr/\0\0"), Compression::None);
}

#[test]
fn unpacks_plain_and_compressed_archives() {
    let d = tempfile::tempdir().unwrap();
    let tar = build_tar(d.path(), &[("sbin/init", b"#!/bin/sh\n"), ("etc/hostname", b"x\n")]);
    let raw = std::fs::read(&tar).unwrap();
    let mut halves = xz(&raw[..1024]);
    halves.extend_from_slice(&[0; 4]); // stream padding, as xz allows
    halves.extend_from_slice(&xz(&raw[1024..]));
    let variants: Vec<(&str, Vec<u8>)> = vec![
        ("plain", raw.clone()),
        ("gz", gz(&raw)),
        ("xz", xz(&raw)),
        ("xz-concatenated", halves),
        ("zst", zst(&raw)),
    ];
    for (name, bytes) in variants {
        let a = d.path().join(format!("rootfs.{name}"));
        std::fs::write(&a, bytes).unwrap();
        let out = d.path().join(format!("out-{name}"));
        std::fs::create_dir(&out).unwrap();
        let s = unpack(&a, &out, false).unwrap();
        assert_eq!(s.entries, 2, "{name}");
        assert_eq!(s.bytes, 12, "{name}");
        assert_eq!(std::fs::read(out.join("sbin/init")).unwrap(), b"#!/bin/sh\n", "{name}");
        // sbin/ was not in the archive: made like tar makes it.
        assert_eq!(std::fs::metadata(out.join("sbin")).unwrap().mode() & 0o700, 0o700, "{name}");
    }
}

#[test]
fn progress_reports_the_compressed_bytes_read() {
    let d = tempfile::tempdir().unwrap();
    let mut a = Raw::new();
    for i in 0..8 {
        a.file(&format!("f{i}"), &noise(700_000));
    }
    let bytes = zst(&a.bytes());
    let p = d.path().join("a.tar.zst");
    std::fs::write(&p, &bytes).unwrap();
    let out = d.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let mut seen = Vec::new();
    let mut cb = |n: u64| seen.push(n);
    let s = unpack_with(&p, &out, &Options::default(), Some(&mut cb)).unwrap();
    assert_eq!(s.bytes, 8 * 700_000);
    assert!(seen.len() > 2, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert_eq!(*seen.last().unwrap(), bytes.len() as u64);
}

#[test]
fn truncated_and_empty_archives_fail_cleanly() {
    let d = tempfile::tempdir().unwrap();
    let tar = build_tar(d.path(), &[("big", &[7u8; 100_000])]);
    let raw = std::fs::read(&tar).unwrap();
    let cut = d.path().join("cut.tar");
    std::fs::write(&cut, &raw[..20_000]).unwrap();
    let out = d.path().join("o1");
    std::fs::create_dir(&out).unwrap();
    let err = unpack(&cut, &out, false).unwrap_err().to_string();
    assert!(err.starts_with("failed to unpack"), "{err}");
    assert!(err.contains("corrupt or truncated archive"), "{err}");
    let empty = d.path().join("empty.tar");
    std::fs::write(&empty, [0u8; 1024]).unwrap();
    let out = d.path().join("o2");
    std::fs::create_dir(&out).unwrap();
    assert!(unpack(&empty, &out, false).unwrap_err().to_string().contains("empty"));
}

/// C4: `..` is refused (and counted); a leading `/` is dropped.
#[test]
fn c4_dot_dot_and_absolute_paths_stay_inside() {
    let w = world();
    let host_canary = w.outside.join("canary");
    let host_canary = host_canary.to_str().unwrap();
    let mut a = Raw::new();
    a.file("../escaped.txt", b"x")
        .file("a/../../escaped2", b"x")
        .file("./../outside/canary", b"pwned")
        .dir("..")
        .file(host_canary, b"pwned")
        .file("/abs", b"abs")
        .file("//etc///./hostname", b"h")
        .hardlink("h", "../outside/canary")
        .symlink("s", "../../outside/canary");
    let s = w.unprivileged(&a).unwrap();
    assert_eq!(s.refused, 5, "{s:?}");
    assert_eq!(s.entries, 9);
    assert!(!w.dir.path().join("escaped.txt").exists());
    assert_eq!(read(w.inside(Path::new(host_canary))), b"pwned");
    assert_eq!(read(w.root.join("abs")), b"abs");
    assert_eq!(read(w.root.join("etc/hostname")), b"h");
    assert!(!w.root.join("h").exists());
    // A symlink's target is only text: it is never followed out of the root.
    assert_eq!(std::fs::read_link(w.root.join("s")).unwrap(), Path::new("../../outside/canary"));
}

/// C5: a symlink to `/` or `..`, then a write through it, lands inside the root.
#[test]
fn c5_writes_through_escaping_symlinks_land_inside() {
    let w = world();
    let mut a = Raw::new();
    a.dir("etc")
        .symlink("l", "/")
        .file("l/etc/shadow", b"root:*:")
        .symlink("up", "..")
        .file("up/up/etc/passwd", b"root:x:")
        .symlink("deep", "../../../../../../../..")
        .file("deep/outside/canary", b"inside")
        .file("deep/outside/sub/new", b"inside");
    w.unprivileged(&a).unwrap();
    assert_eq!(read(w.root.join("etc/shadow")), b"root:*:");
    assert_eq!(read(w.root.join("etc/passwd")), b"root:x:");
    assert_eq!(read(w.root.join("outside/canary")), b"inside");
    assert_eq!(read(w.root.join("outside/sub/new")), b"inside");
    assert!(is_symlink(w.root.join("l")) && is_symlink(w.root.join("up")));

    // An absolute symlink to a host directory: inside the root that path does not
    // exist, so the write fails instead of escaping.
    let w = world();
    let mut a = Raw::new();
    a.symlink("abs", w.outside.to_str().unwrap()).file("abs/canary", b"pwned");
    let err = w.unprivileged(&a).unwrap_err().to_string();
    assert!(err.starts_with(&format!("failed to unpack {}", w.dir.path().join("archives/a.tar").display())), "{err}");
    assert!(err.contains("abs/canary: open its directory"), "{err}");
}

/// C6: a directory, then a symlink of the same name, then a file under it: the
/// path is resolved again, never through a stale directory.
#[test]
fn c6_a_directory_replaced_by_a_symlink_is_resolved_afresh() {
    let w = world();
    let mut a = Raw::new();
    a.dir("d1")
        .dir("d2")
        .symlink("s", "d1")
        .file("s/f1", b"1")
        .file("s/f1b", b"1b")
        .symlink("s", "d2")
        .file("s/f2", b"2")
        .dir("outside")
        .dir("a")
        .symlink("a", "../../../outside")
        .file("a/canary", b"inside")
        .file("a/canary2", b"inside");
    w.unprivileged(&a).unwrap();
    assert_eq!(read(w.root.join("d1/f1")), b"1");
    assert_eq!(read(w.root.join("d1/f1b")), b"1b");
    assert_eq!(read(w.root.join("d2/f2")), b"2");
    assert!(!w.root.join("d1/f2").exists());
    assert_eq!(read(w.root.join("outside/canary")), b"inside");
    assert_eq!(read(w.root.join("outside/canary2")), b"inside");
    assert!(is_symlink(w.root.join("a")) && is_symlink(w.root.join("s")));

    // A directory with something in it is not swapped for a symlink.
    let w = world();
    let mut a = Raw::new();
    a.dir("x").file("x/f", b"f").symlink("x", w.outside.to_str().unwrap()).file("x/canary", b"pwned");
    let err = w.unprivileged(&a).unwrap_err().to_string();
    assert!(err.contains("x: replace what is there: a directory that is not empty is in the way"), "{err}");
}

/// A symlink already at an entry's name (planted in the destination, or by an
/// earlier entry) is replaced, never written through.
#[test]
fn symlinks_at_the_name_are_replaced_not_followed() {
    let w = world();
    std::fs::create_dir_all(w.root.join("etc")).unwrap();
    std::os::unix::fs::symlink(w.outside.join("canary"), w.root.join("etc/passwd")).unwrap();
    std::os::unix::fs::symlink(w.outside.join("sub"), w.root.join("etc/dir")).unwrap();
    std::os::unix::fs::symlink(w.outside.join("canary"), w.root.join("etc/fifo")).unwrap();
    let mut a = Raw::new();
    a.symlink("etc/group", "../../outside/canary")
        .file("etc/group", b"g")
        .file("etc/passwd", b"p")
        .dir("etc/dir")
        .file("etc/dir/f", b"f")
        .node("etc/fifo", tar::EntryType::Fifo, 0, 0)
        .symlink("etc/ln", w.outside.join("canary").to_str().unwrap())
        .hardlink("etc/passwd", "etc/group");
    w.unprivileged(&a).unwrap();
    assert_eq!(read(w.root.join("etc/passwd")), b"g");
    assert!(!is_symlink(w.root.join("etc/passwd")));
    assert!(std::fs::symlink_metadata(w.root.join("etc/dir")).unwrap().is_dir());
    assert!(std::fs::symlink_metadata(w.root.join("etc/fifo")).unwrap().file_type().is_fifo());
    assert!(is_symlink(w.root.join("etc/ln")));
}

/// Builds an archive aimed at a given world's paths.
type ArchiveFor = Box<dyn Fn(&World) -> Raw>;

/// C7: a hard link's target is opened inside the root: no archive can link to a
/// host file.
#[test]
fn c7_hard_links_never_reach_host_files() {
    let host_canary = |w: &World| w.outside.join("canary").to_str().unwrap().to_string();
    let cases: Vec<(&str, ArchiveFor, Option<&str>)> = vec![
        (
            "dot-dot",
            Box::new(|_| {
                let mut a = Raw::new();
                a.file("f", b"f").hardlink("h", "../outside/canary");
                a
            }),
            None,
        ),
        (
            "absolute",
            Box::new(move |w| {
                let mut a = Raw::new();
                a.hardlink("h", &host_canary(w));
                a
            }),
            Some("h: hard link to"),
        ),
        (
            "through-symlink",
            Box::new(|w| {
                let mut a = Raw::new();
                a.symlink("s", w.outside.to_str().unwrap()).hardlink("h", "s/canary");
                a
            }),
            Some("h: hard link to s/canary: No such file or directory"),
        ),
        (
            "through-dot-dot-symlink",
            Box::new(|_| {
                let mut a = Raw::new();
                a.symlink("s", "../../../../..").hardlink("h", "s/outside/canary");
                a
            }),
            Some("h: hard link to s/outside/canary"),
        ),
    ];
    for (name, build, want) in cases {
        let w = world();
        let r = w.unprivileged(&build(&w));
        match want {
            None => assert_eq!(r.unwrap().refused, 1, "{name}"),
            Some(want) => {
                let err = r.unwrap_err().to_string();
                assert!(err.contains(want), "{name}: {err}");
            }
        }
        assert!(!w.root.join("h").exists(), "{name}");
        assert_eq!(std::fs::metadata(w.outside.join("canary")).unwrap().nlink(), 1, "{name}");
    }

    // A hard link to a symlink links the symlink itself, not what it points at.
    let w = world();
    let mut a = Raw::new();
    a.symlink("t", w.outside.join("canary").to_str().unwrap()).hardlink("h", "t").file("f", b"f").hardlink("g", "f");
    w.unprivileged(&a).unwrap();
    assert!(is_symlink(w.root.join("h")));
    let (t, h) =
        (std::fs::symlink_metadata(w.root.join("t")).unwrap(), std::fs::symlink_metadata(w.root.join("h")).unwrap());
    assert_eq!(t.ino(), h.ino());
    assert_eq!(std::fs::metadata(w.root.join("g")).unwrap().ino(), std::fs::metadata(w.root.join("f")).unwrap().ino());
    assert_eq!(std::fs::metadata(w.outside.join("canary")).unwrap().nlink(), 1);
}

/// C8: device nodes (overlay whiteouts too) are skipped for an unprivileged
/// container; fifos are made.
#[test]
fn c8_device_nodes_only_when_privileged() {
    let w = world();
    let mut a = Raw::new();
    a.dir("dev")
        .node("dev/null", tar::EntryType::Char, 1, 3)
        .node("dev/sda", tar::EntryType::Block, 8, 0)
        .node("usr/lib/whiteout", tar::EntryType::Char, 0, 0)
        .node("run/initctl", tar::EntryType::Fifo, 0, 0);
    let s = w.unprivileged(&a).unwrap();
    assert_eq!(s.devices_skipped, 3, "{s:?}");
    assert!(!w.root.join("dev/null").exists() && !w.root.join("dev/sda").exists());
    assert!(!w.root.join("usr/lib/whiteout").exists());
    let fifo = std::fs::symlink_metadata(w.root.join("run/initctl")).unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o7777, 0o640);

    if is_root() {
        let w = world();
        let s = w.unpack(&a.bytes(), &Options { privileged: true, max_bytes: None }).unwrap();
        assert_eq!(s.devices_skipped, 0);
        let null = std::fs::symlink_metadata(w.root.join("dev/null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
        assert_eq!(null.mode() & 0o7777, 0o640);
        assert!(std::fs::symlink_metadata(w.root.join("dev/sda")).unwrap().file_type().is_block_device());
        assert_eq!(std::fs::symlink_metadata(w.root.join("usr/lib/whiteout")).unwrap().rdev(), 0);
    }
}

/// `security.capability` granting cap_dac_read_search (+ep), VFS_CAP_REVISION_2.
const CAP_DAC_READ_SEARCH: [u8; 20] = [0x01, 0, 0, 0x02, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    let n = rustix::fs::lgetxattr(p, name, &mut buf[..]).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// C9: setuid and setgid bits, extended attributes (file capabilities included),
/// owners and times survive; a read-only directory gets its mode after its children.
#[test]
fn c9_setuid_capabilities_xattrs_owners_and_times_survive() {
    let w = world();
    // Does this filesystem take user.* attributes at all?
    let probe = w.dir.path().join("probe");
    std::fs::write(&probe, b"").unwrap();
    let user_xattrs = rustix::fs::lsetxattr(&probe, "user.probe", b"1", XattrFlags::empty()).is_ok();
    std::fs::remove_file(&probe).unwrap();

    let mut a = Raw::new();
    a.dir_mode("ro", 0o555)
        .file_mode("ro/f", b"x", 0o644)
        .file_mode("bin/su", b"su", 0o4755)
        .file_mode("bin/wall", b"wall", 0o2755)
        .pax(&[("SCHILY.xattr.user.hutch", b"kept"), ("mtime", b"1700000001.5")])
        .file("bin/x", b"x")
        .pax(&[("SCHILY.xattr.user.dir", b"d")])
        .dir_mode("sticky", 0o1777)
        .symlink("bin/sh", "su");
    let root_only = is_root();
    if root_only {
        let mut h = Raw::header("bin/ping", tar::EntryType::Regular, 4, 0o4711);
        h.set_uid(1234);
        h.set_gid(5678);
        a.pax(&[("SCHILY.xattr.security.capability", &CAP_DAC_READ_SEARCH), ("SCHILY.xattr.trusted.hutch", b"t")])
            .push(h, b"ping");
        let mut h = Raw::header("home/u", tar::EntryType::Directory, 0, 0o700);
        h.set_uid(4321);
        h.set_gid(4321);
        a.push(h, b"");
        let mut h = Raw::header("home/u/link", tar::EntryType::Symlink, 0, 0o777);
        h.as_old_mut().linkname[..2].copy_from_slice(b"..");
        h.set_uid(4321);
        h.set_gid(99);
        a.push(h, b"");
    }
    w.unprivileged(&a).unwrap();
    let mode = |p: &str| std::fs::symlink_metadata(w.root.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("ro"), 0o555);
    assert_eq!(read(w.root.join("ro/f")), b"x");
    assert_eq!(mode("bin/su"), 0o4755);
    assert_eq!(mode("bin/wall"), 0o2755);
    assert_eq!(mode("sticky"), 0o1777);
    let x = std::fs::metadata(w.root.join("bin/x")).unwrap();
    assert_eq!((x.mtime(), x.mtime_nsec()), (1_700_000_001, 500_000_000));
    assert_eq!(std::fs::metadata(w.root.join("ro")).unwrap().mtime(), 1_700_000_000);
    assert_eq!(std::fs::symlink_metadata(w.root.join("bin/sh")).unwrap().mtime(), 1_700_000_000);
    if user_xattrs {
        assert_eq!(xattr(&w.root.join("bin/x"), "user.hutch").as_deref(), Some(&b"kept"[..]));
        assert_eq!(xattr(&w.root.join("sticky"), "user.dir").as_deref(), Some(&b"d"[..]));
    }
    if root_only {
        let ping = std::fs::metadata(w.root.join("bin/ping")).unwrap();
        assert_eq!((ping.uid(), ping.gid(), ping.mode() & 0o7777), (1234, 5678, 0o4711));
        assert_eq!(xattr(&w.root.join("bin/ping"), "security.capability").unwrap(), CAP_DAC_READ_SEARCH);
        assert_eq!(xattr(&w.root.join("bin/ping"), "trusted.hutch").unwrap(), b"t");
        let home = std::fs::metadata(w.root.join("home/u")).unwrap();
        assert_eq!((home.uid(), home.gid(), home.mode() & 0o7777), (4321, 4321, 0o700));
        let link = std::fs::symlink_metadata(w.root.join("home/u/link")).unwrap();
        assert_eq!((link.uid(), link.gid()), (4321, 99));
    }
}

/// C10: corrupt or truncated compressed archives fail with a clear message.
#[test]
fn c10_corrupt_and_truncated_compressed_archives_fail_cleanly() {
    let mut a = Raw::new();
    a.dir("etc").file("etc/big", &noise(300_000)).file("etc/small", b"s");
    let raw = a.bytes();
    for (name, bytes) in [("gz", gz(&raw)), ("xz", xz(&raw)), ("zst", zst(&raw)), ("tar", raw.clone())] {
        let truncated = bytes[..bytes.len() / 2].to_vec();
        let mut corrupt = bytes.clone();
        let mid = corrupt.len() / 2;
        for b in &mut corrupt[mid..mid + 16] {
            *b ^= 0x5a;
        }
        let mut short_tail = bytes.clone();
        short_tail.truncate(bytes.len() - 4);
        let mut cases = vec![("truncated", truncated)];
        // (A plain archive missing part of its second zero block is still whole.)
        if name != "tar" {
            cases.push(("short-tail", short_tail));
            cases.push(("corrupt", corrupt));
        }
        for (how, bytes) in cases {
            let w = world();
            let Err(err) = w.unpack(&bytes, &Options::default()) else { panic!("{name} {how}: unpacked") };
            let msg = err.to_string();
            let want = format!(
                "failed to unpack {}: corrupt or truncated archive: ",
                w.dir.path().join("archives/a.tar").display()
            );
            assert!(msg.starts_with(&want), "{name} {how}: {msg}");
            assert!(err.hint().unwrap().contains("complete .tar"), "{name} {how}");
        }
    }
    // A plain archive cut at an entry boundary lacks its end-of-archive marker.
    let w = world();
    let err = w.unpack(&a.out, &Options::default()).unwrap_err().to_string();
    assert!(err.contains("corrupt or truncated archive: it ends before its end-of-archive marker"), "{err}");
}

/// C10: the file data written is capped (by the destination's free space, or here
/// by an injected limit): a decompression bomb stops with an error.
#[test]
fn c10_size_cap_stops_a_decompression_bomb() {
    let w = world();
    let mut a = Raw::new();
    a.file("a", &[0; 1 << 20]).file("b", &[0; 1 << 20]).file("c", &vec![0; 8 << 20]).file("d", b"d");
    let bomb = xz(&a.bytes());
    assert!(bomb.len() < 10_000, "{}", bomb.len());
    let err = w.unpack(&bomb, &Options { privileged: false, max_bytes: Some((2 << 20) + 100) }).unwrap_err();
    let msg = err.to_string();
    let want = format!(
        "failed to unpack {}: it needs more than the 2 MiB free on {} (unpacked so far: 2 MiB)",
        w.dir.path().join("archives/a.tar").display(),
        w.root.display()
    );
    assert_eq!(msg, want);
    assert!(err.hint().unwrap().contains("decompression bomb"), "{:?}", err.hint());
    assert!(!w.root.join("d").exists());

    // A header claiming more than the disk holds fails before anything is written,
    // against the real free space.
    let w = world();
    let mut a = Raw::new();
    a.file("small", b"s").push(Raw::header("huge", tar::EntryType::Regular, 1 << 50, 0o644), &[0; 512]);
    let msg = w.unpack(&zst(&a.out), &Options::default()).unwrap_err().to_string();
    assert!(msg.contains("MiB free on") && msg.ends_with("(unpacked so far: 0 MiB)"), "{msg}");
    assert!(!w.root.join("huge").exists());

    // Zeros after the end-of-archive marker are not decompressed forever.
    let w = world();
    let mut raw = Raw::new().file("f", b"f").bytes();
    raw.resize(raw.len() + (64 << 20), 0);
    w.unpack(&zst(&raw), &Options { privileged: false, max_bytes: Some(1) }).unwrap();
    assert_eq!(read(w.root.join("f")), b"f");
}
