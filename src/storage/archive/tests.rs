use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::*;

fn header(snapshots: &[&str]) -> String {
    let h = Header {
        format: FORMAT,
        name: "web".into(),
        exported_ms: 1,
        hutch: "test".into(),
        storage: Kind::Dir,
        snapshots: snapshots.iter().map(|s| SnapshotEntry { name: (*s).into(), created_ms: 2 }).collect(),
    };
    toml::to_string(&h).unwrap()
}

/// A small rootfs: a file, a setuid file, a hard link, a symlink, a directory.
fn tree(at: &Path, marker: &str) {
    std::fs::create_dir_all(at.join("etc/sub")).unwrap();
    std::fs::write(at.join("etc/hostname"), marker).unwrap();
    std::fs::write(at.join("etc/su"), b"#!/bin/true\n").unwrap();
    std::fs::set_permissions(at.join("etc/su"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::hard_link(at.join("etc/hostname"), at.join("etc/sub/again")).unwrap();
    std::os::unix::fs::symlink("../hostname", at.join("etc/sub/link")).unwrap();
}

fn export(d: &Path, compression: Compression, snapshots: &[&str]) -> PathBuf {
    let root = d.join("src");
    tree(&root, "current");
    let out = d.join(format!("web-{compression:?}.hutch"));
    let mut w = Writer::create(&out, compression).unwrap();
    w.add_file(HEADER, header(snapshots).as_bytes()).unwrap();
    w.add_file(CONFIG, b"init = \"/sbin/init\"\n").unwrap();
    w.add_tree(ROOTFS, &root).unwrap();
    for s in snapshots {
        let sroot = d.join(format!("snap-{s}"));
        tree(&sroot, s);
        w.add_file(&format!("{SNAPSHOTS}/{s}/{CONFIG}"), format!("# {s}\n").as_bytes()).unwrap();
        w.add_tree(&Tree::Snapshot((*s).into()).prefix(), &sroot).unwrap();
    }
    w.finish().unwrap();
    out
}

fn open_dir(p: &Path) -> std::os::fd::OwnedFd {
    std::fs::create_dir_all(p).unwrap();
    rustix::fs::open(p, rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY, rustix::fs::Mode::empty()).unwrap()
}

fn verify_path(p: &Path) -> Result<Verified, Error> {
    verify(&File::open(p).unwrap(), p)
}

fn corrupt_message(r: Result<Verified, Error>) -> String {
    match r {
        Err(Error::Corrupt { message, .. }) => message,
        other => panic!("expected a corrupt archive, got {other:?}"),
    }
}

#[test]
fn round_trip_in_every_compression_keeps_trees_and_configs() {
    for c in [Compression::Zstd, Compression::Xz, Compression::None] {
        let d = tempfile::tempdir().unwrap();
        let file = export(d.path(), c, &["snap0", "before-upgrade"]);
        let v = verify_path(&file).unwrap();
        assert_eq!(v.header.name, "web");
        assert_eq!(v.header.snapshots.len(), 2);
        assert_eq!(v.config, "init = \"/sbin/init\"\n");
        assert_eq!(v.snapshot_configs["before-upgrade"], "# before-upgrade\n");
        let f = File::open(&file).unwrap();
        let dst = d.path().join("out");
        extract(&f, &file, &v, &Tree::Rootfs, open_dir(&dst), &dst).unwrap();
        assert_eq!(std::fs::read_to_string(dst.join("etc/hostname")).unwrap(), "current");
        assert_eq!(std::fs::metadata(dst.join("etc/su")).unwrap().mode() & 0o7777, 0o4755);
        assert_eq!(std::fs::read_link(dst.join("etc/sub/link")).unwrap(), Path::new("../hostname"));
        let (a, b) = (
            std::fs::metadata(dst.join("etc/hostname")).unwrap(),
            std::fs::metadata(dst.join("etc/sub/again")).unwrap(),
        );
        assert_eq!(a.ino(), b.ino(), "the hard link stays one");
        let sdst = d.path().join("snap");
        extract(&f, &file, &v, &Tree::Snapshot("snap0".into()), open_dir(&sdst), &sdst).unwrap();
        assert_eq!(std::fs::read_to_string(sdst.join("etc/hostname")).unwrap(), "snap0");
        assert!(!sdst.join("rootfs").exists() && !dst.join("snapshots").exists(), "each tree only in its place");
    }
}

#[test]
fn a_flipped_byte_a_cut_or_garbage_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let file = export(d.path(), Compression::None, &[]);
    let bytes = std::fs::read(&file).unwrap();
    // The data of etc/hostname ("current") changed to "CURRENT".
    let at = bytes.windows(7).position(|w| w == b"current").unwrap();
    let mut flipped = bytes.clone();
    flipped[at..at + 7].copy_from_slice(b"CURRENT");
    let p = d.path().join("flipped");
    std::fs::write(&p, &flipped).unwrap();
    assert!(corrupt_message(verify_path(&p)).contains("is not what its MANIFEST says"));

    let p = d.path().join("cut");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let m = corrupt_message(verify_path(&p));
    assert!(m.contains("cut short"), "{m}");

    let p = d.path().join("garbage");
    std::fs::write(&p, b"this is not an archive at all, just some text that goes on").unwrap();
    corrupt_message(verify_path(&p));

    // A compressed archive cut short fails in the decompressor.
    let z = export(&d.path().join("z"), Compression::Zstd, &[]);
    let zb = std::fs::read(&z).unwrap();
    let p = d.path().join("zcut");
    std::fs::write(&p, &zb[..zb.len() - 20]).unwrap();
    corrupt_message(verify_path(&p));
}

fn gnu() -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_mode(0o644);
    h
}

/// Builds an archive from raw entries and seals it with a correct manifest, as an
/// attacker who knows the format can.
struct Raw(tar::Builder<Vec<u8>>);

impl Raw {
    fn new() -> Raw {
        Raw(tar::Builder::new(Vec::new()))
    }
    fn file(mut self, path: &str, data: &[u8]) -> Raw {
        let mut h = gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }
    fn dir(mut self, path: &str) -> Raw {
        let mut h = gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        self.0.append(&h, &[][..]).unwrap();
        self
    }
    fn link(mut self, kind: tar::EntryType, path: &str, target: &str) -> Raw {
        let mut h = gnu();
        h.set_entry_type(kind);
        h.set_mode(0o777);
        h.set_size(0);
        h.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_link_name(target).unwrap();
        h.set_cksum();
        self.0.append(&h, &[][..]).unwrap();
        self
    }
    fn base(snapshots: &[&str]) -> Raw {
        Raw::new().file(HEADER, header(snapshots).as_bytes()).file(CONFIG, b"# c\n").dir(ROOTFS)
    }
    fn seal(self, at: &Path) -> PathBuf {
        let mut body = self.0.into_inner().unwrap();
        let mut lines = Vec::new();
        manifest::scan(&body[..], &|_| None, &mut |s| {
            lines.push(s.line);
            Ok(())
        })
        .unwrap();
        let text = manifest::render(&lines);
        let mut b = tar::Builder::new(Vec::new());
        let mut h = gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o600);
        h.set_size(text.len() as u64);
        b.append_data(&mut h, MANIFEST, &text[..]).unwrap();
        // `body` ends with the end-of-archive marker: put the manifest before it.
        body.truncate(body.len() - 1024);
        body.extend(b.into_inner().unwrap());
        std::fs::File::create(at).unwrap().write_all(&body).unwrap();
        at.to_path_buf()
    }
}

#[test]
fn entries_out_of_place_are_refused_even_with_a_true_manifest() {
    let d = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Raw, &str)> = vec![
        ("outside", Raw::base(&[]).file("etc/passwd", b"x"), "no entry of that name"),
        ("dotdot", Raw::base(&[]).file("rootfs/../../evil", b"x"), "with `..`"),
        ("absolute", Raw::base(&[]).file("/rootfs/etc", b"x"), "absolute"),
        ("unlisted", Raw::base(&[]).file("snapshots/other/config.toml", b"x"), "does not list"),
        ("badsnap", Raw::base(&[]).dir("snapshots/.hidden/rootfs"), "no entry of that name"),
        ("nohead", Raw::new().file(CONFIG, b"x"), "does not start with"),
        ("twice", Raw::base(&[]).file(CONFIG, b"again"), "twice"),
        (
            "hardlink",
            Raw::base(&["s"]).file("snapshots/s/config.toml", b"x").dir("snapshots/s/rootfs").link(
                tar::EntryType::Link,
                "snapshots/s/rootfs/passwd",
                "rootfs/etc/shadow",
            ),
            "outside its own tree",
        ),
        ("missing-snapshot", Raw::base(&["s"]), "not all there"),
        ("config-dir", Raw::new().file(HEADER, header(&[]).as_bytes()).dir(CONFIG), "is not a file"),
    ];
    for (name, raw, want) in cases {
        let p = raw.seal(&d.path().join(name));
        let m = corrupt_message(verify_path(&p));
        assert!(m.contains(want), "{name}: {m:?} should say {want:?}");
    }
    // An entry after the manifest.
    let p = Raw::base(&[]).seal(&d.path().join("after"));
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.truncate(bytes.len() - 1024);
    let mut b = tar::Builder::new(Vec::new());
    let mut h = gnu();
    h.set_size(1);
    b.append_data(&mut h, "rootfs/late", &b"x"[..]).unwrap();
    bytes.extend(b.into_inner().unwrap());
    std::fs::write(&p, &bytes).unwrap();
    let m = corrupt_message(verify_path(&p));
    assert!(m.contains("follows the MANIFEST"), "{m}");
}

#[test]
fn a_newer_format_is_named_as_such() {
    let d = tempfile::tempdir().unwrap();
    let text = header(&[]).replace("format = 1", "format = 2");
    let p = Raw::new().file(HEADER, text.as_bytes()).seal(&d.path().join("v2"));
    match verify_path(&p) {
        Err(Error::Version { found: 2, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_symlink_in_the_archive_never_leads_out_of_the_tree() {
    let d = tempfile::tempdir().unwrap();
    let outside = d.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let target = outside.to_str().unwrap();
    let p = Raw::base(&[])
        .link(tar::EntryType::Symlink, "rootfs/up", "../../..")
        .file("rootfs/up/planted", b"owned")
        .seal(&d.path().join("up"));
    let v = verify_path(&p).unwrap();
    let dst = d.path().join("dst");
    extract(&File::open(&p).unwrap(), &p, &v, &Tree::Rootfs, open_dir(&dst), &dst).unwrap();
    assert!(!d.path().join("planted").exists() && !Path::new("/planted").exists());
    assert!(dst.join("planted").exists(), "`..` from the root stays at the root");

    let p = Raw::base(&[])
        .link(tar::EntryType::Symlink, "rootfs/escape", target)
        .file("rootfs/escape/planted", b"owned")
        .seal(&d.path().join("escape"));
    let v = verify_path(&p).unwrap();
    let dst = d.path().join("dst2");
    // The symlink leads to a path inside the tree, which does not exist there: an
    // error, or a file inside; never one in `outside`.
    let _ = extract(&File::open(&p).unwrap(), &p, &v, &Tree::Rootfs, open_dir(&dst), &dst);
    assert!(!outside.join("planted").exists(), "wrote through an absolute symlink");
}

#[test]
fn an_archive_changed_between_the_passes_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let file = export(d.path(), Compression::None, &[]);
    let v = verify_path(&file).unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.windows(7).position(|w| w == b"current").unwrap();
    bytes[at..at + 7].copy_from_slice(b"CURRENT");
    std::fs::write(&file, &bytes).unwrap();
    let dst = d.path().join("dst");
    match extract(&File::open(&file).unwrap(), &file, &v, &Tree::Rootfs, open_dir(&dst), &dst) {
        Err(Error::Corrupt { message, .. }) => assert!(message.contains("changed"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_writer_refuses_an_existing_file_and_leaves_nothing_when_dropped() {
    let d = tempfile::tempdir().unwrap();
    let dest = d.path().join("a.hutch");
    std::fs::write(&dest, b"keep me").unwrap();
    assert!(matches!(Writer::create(&dest, Compression::Zstd), Err(Error::DestinationExists { .. })));
    assert_eq!(std::fs::read(&dest).unwrap(), b"keep me");
    let dest = d.path().join("b.hutch");
    let mut w = Writer::create(&dest, Compression::Zstd).unwrap();
    w.add_file(HEADER, header(&[]).as_bytes()).unwrap();
    drop(w);
    let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("a.hutch")]);
}

#[test]
fn paths_are_classified_strictly() {
    assert_eq!(classify(b"rootfs"), Some(Part::InTree(Tree::Rootfs, vec![])));
    assert_eq!(classify(b"rootfs/etc/x"), Some(Part::InTree(Tree::Rootfs, b"etc/x".to_vec())));
    assert_eq!(classify(b"rootfsx/etc"), None);
    assert_eq!(classify(b"snapshots/s1/config.toml"), Some(Part::SnapshotConfig("s1".into())));
    assert_eq!(classify(b"snapshots/s1/rootfs/a"), Some(Part::InTree(Tree::Snapshot("s1".into()), b"a".to_vec())));
    assert_eq!(classify(b"snapshots/s1"), None);
    assert_eq!(classify(b"snapshots/s1/other"), None);
    assert_eq!(manifest::escape(b"a b%\n\xff"), "a%20b%25%0A%FF");
    assert_eq!(manifest::normalize(b"./a//b/"), Some(b"a/b".to_vec()));
    assert_eq!(manifest::normalize(b"/a"), None);
}
