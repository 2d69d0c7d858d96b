//! The sending side without root: trees in temporary directories, sent and read back.

use std::io::Read as _;
use std::os::unix::fs::{PermissionsExt, symlink};

use super::*;

fn my_ids() -> (u32, u32) {
    (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw())
}

fn open_dir(p: &Path) -> OwnedFd {
    rustix::fs::open(p, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap()
}

/// Each entry of a tar stream: (path, kind, mode, uid, gid, link target, data).
type Entry = (String, tar::EntryType, u32, u64, u64, Option<String>, Vec<u8>);

fn entries(bytes: &[u8]) -> Vec<Entry> {
    let mut ar = tar::Archive::new(bytes);
    ar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let link = e.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned());
            let path = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (path, h.entry_type(), h.mode().unwrap(), h.uid().unwrap(), h.gid().unwrap(), link, data)
        })
        .collect()
}

fn send(dir: &Path, name: &str, top: &str, recursive: bool, owner: Override) -> Result<(Vec<u8>, Sent), SendError> {
    let mut s = Sender::new(Vec::new(), owner);
    s.add(&open_dir(dir), OsStr::new(name), top.as_bytes(), recursive)?;
    let sent = s.sent;
    Ok((s.finish()?, sent))
}

#[test]
fn headers_take_the_overrides_and_the_mode_only_for_files() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("f"), b"x").unwrap();
    std::fs::set_permissions(d.path().join("f"), std::fs::Permissions::from_mode(0o4750)).unwrap();
    let st = rustix::fs::stat(d.path().join("f")).unwrap();
    let h = header(tar::EntryType::Regular, &st, &Override::default());
    assert_eq!((h.mode().unwrap(), h.uid().unwrap(), h.gid().unwrap()), (0o4750, st.st_uid.into(), st.st_gid.into()));
    let owner = Override { uid: Some(1000), gid: Some(100), mode: Some(0o600) };
    let h = header(tar::EntryType::Regular, &st, &owner);
    assert_eq!((h.mode().unwrap(), h.uid().unwrap(), h.gid().unwrap()), (0o600, 1000, 100));
    let dir = rustix::fs::stat(d.path()).unwrap();
    let h = header(tar::EntryType::Directory, &dir, &owner);
    assert_eq!((h.mode().unwrap(), h.uid().unwrap()), (dir.st_mode & 0o7777, 1000), "a directory keeps its mode");
    let h = header(tar::EntryType::Symlink, &dir, &Override { gid: Some(7), ..Override::default() });
    assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (dir.st_uid.into(), 7));
}

#[test]
fn a_tree_goes_with_its_modes_and_symlinks_as_symlinks() {
    let d = tempfile::tempdir().unwrap();
    let t = d.path().join("tree");
    std::fs::create_dir_all(t.join("sub")).unwrap();
    std::fs::write(t.join("a"), b"alpha").unwrap();
    std::fs::set_permissions(t.join("a"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::write(t.join("sub/b"), b"beta").unwrap();
    symlink("/etc/passwd", t.join("abs")).unwrap();
    symlink("../../../..", t.join("up")).unwrap();
    symlink("/", t.join("root")).unwrap();
    nix::unistd::mkfifo(&t.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (bytes, sent) = send(d.path(), "tree", "top", true, Override::default()).unwrap();
    let got = entries(&bytes);
    let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names, ["top", "top/a", "top/abs", "top/fifo", "top/root", "top/sub", "top/sub/b", "top/up"]);
    let (uid, gid) = my_ids();
    for e in &got {
        assert_eq!((e.3, e.4), (uid.into(), gid.into()), "{}", e.0);
    }
    let by = |n: &str| got.iter().find(|e| e.0 == n).unwrap();
    assert_eq!(
        (by("top/a").1, by("top/a").2, by("top/a").6.as_slice()),
        (tar::EntryType::Regular, 0o640, &b"alpha"[..])
    );
    assert_eq!((by("top/abs").1, by("top/abs").5.as_deref()), (tar::EntryType::Symlink, Some("/etc/passwd")));
    assert_eq!(by("top/up").5.as_deref(), Some("../../../.."));
    assert_eq!(by("top/root").5.as_deref(), Some("/"));
    assert_eq!(by("top/fifo").1, tar::EntryType::Fifo);
    assert_eq!(by("top/sub").1, tar::EntryType::Directory);
    // Nothing behind a link was read: the host's /etc/passwd is not in the stream.
    assert_eq!(sent, Sent { entries: 8, bytes: 9, skipped: 0, vanished: 0 });
}

#[test]
fn a_symlink_named_as_the_source_is_sent_as_itself() {
    let d = tempfile::tempdir().unwrap();
    symlink("/etc", d.path().join("l")).unwrap();
    let (bytes, sent) = send(d.path(), "l", "l", true, Override::default()).unwrap();
    let got = entries(&bytes);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].1, got[0].5.as_deref()), (tar::EntryType::Symlink, Some("/etc")));
    assert_eq!(sent.entries, 1);
}

#[test]
fn long_names_and_link_targets_survive_byte_for_byte() {
    let d = tempfile::tempdir().unwrap();
    let deep = "d".repeat(60);
    let dir = d.path().join("t").join(&deep).join(&deep);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f"), b"x").unwrap();
    let target = format!("{}/./x//", "a".repeat(150));
    symlink(&target, dir.join("l")).unwrap();
    let (bytes, _) = send(d.path(), "t", "t", true, Override::default()).unwrap();
    let got = entries(&bytes);
    let long = format!("t/{deep}/{deep}/l");
    let l = got.iter().find(|e| e.0 == long).expect("the long name");
    assert_eq!(l.5.as_deref(), Some(target.as_str()), "the target is kept as written");
    assert!(got.iter().any(|e| e.0 == format!("t/{deep}/{deep}/f") && e.6 == b"x"));
}

#[test]
fn a_directory_needs_recursive_and_special_files_are_left_out() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("dir")).unwrap();
    let e = send(d.path(), "dir", "dir", false, Override::default()).unwrap_err();
    assert!(matches!(&e, SendError::Read { source, .. } if source.kind() == io::ErrorKind::IsADirectory), "{e}");
    let _sock = std::os::unix::net::UnixListener::bind(d.path().join("dir/sock")).unwrap();
    let (bytes, sent) = send(d.path(), "dir", "dir", true, Override::default()).unwrap();
    assert_eq!(entries(&bytes).len(), 1);
    assert_eq!(sent.skipped, 1);
    let e = send(d.path(), "nope", "nope", false, Override::default()).unwrap_err();
    assert!(e.to_string().starts_with("failed to read nope: "), "{e}");
}

#[test]
fn a_file_that_shrinks_is_padded_to_its_size() {
    let data: &[u8] = b"abc";
    let mut exact = Exact { inner: data, left: 6, path: b"f", failed: None };
    let mut out = Vec::new();
    exact.read_to_end(&mut out).unwrap();
    assert_eq!(out, b"abc\0\0\0");
    let mut exact = Exact { inner: &b"abcdef"[..], left: 2, path: b"f", failed: None };
    out.clear();
    exact.read_to_end(&mut out).unwrap();
    assert_eq!(out, b"ab");
}
