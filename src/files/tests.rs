//! Both sides of a copy without root or a container: a temporary directory stands in
//! for the container's tree (the helper's side resolves below it exactly as it does
//! below a container's root), another for the host's destination. Streams carry the
//! test runner's own ids.

use std::fs::File;
use std::io::{Seek, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use super::helper::{Done, Ended, Flow, JobError, Report, Tree};
use super::pull::{Plan, PullJob, PullRequest, plan, send_tree};
use super::push::{PushJob, receive, rename};
use super::spec::{CPath, Spec};
use super::{Error, session};
use crate::rootfs::unpack::{Placement, Stats, unpack_stream};
use crate::runtime::wire::Kind;

fn my_ids() -> (u64, u64) {
    (nix::unistd::getuid().as_raw().into(), nix::unistd::getgid().as_raw().into())
}

/// A tar stream written header by header, so names can be what a hostile container
/// would send (`..`, absolute paths, links through links).
#[derive(Default)]
struct Raw(Vec<u8>);

impl Raw {
    fn entry(&mut self, name: &str, kind: tar::EntryType, mode: u32, link: &str, data: &[u8]) -> &mut Raw {
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        let (uid, gid) = my_ids();
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }
    fn file(&mut self, name: &str, data: &[u8]) -> &mut Raw {
        self.entry(name, tar::EntryType::Regular, 0o644, "", data)
    }
    fn dir(&mut self, name: &str) -> &mut Raw {
        self.entry(name, tar::EntryType::Directory, 0o755, "", b"")
    }
    fn link(&mut self, name: &str, target: &str) -> &mut Raw {
        self.entry(name, tar::EntryType::Symlink, 0o777, target, b"")
    }
    /// A PAX header giving the next entry an extended attribute.
    fn xattr(&mut self, key: &str, value: &str) -> &mut Raw {
        let rec = format!("SCHILY.xattr.{key}={value}\n");
        let mut len = rec.len() + 3;
        len += format!("{len} ").len() - 3;
        let body = format!("{len} {rec}");
        self.entry("pax", tar::EntryType::XHeader, 0o644, "", body.as_bytes())
    }
    fn done(&mut self) -> Vec<u8> {
        let mut out = self.0.clone();
        out.extend_from_slice(&[0; 1024]);
        out
    }
}

/// A host destination `dst/root` beside `dst/outside`, which nothing may touch.
struct Host {
    _dir: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let (root, outside) = (dir.path().join("root"), dir.path().join("outside"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"host").unwrap();
        Host { _dir: dir, root, outside }
    }

    /// Unpacks `stream` as the host side of a pull whose copies are named `tops`.
    fn pull(&self, stream: &[u8], tops: &[&str]) -> Result<Stats, crate::rootfs::Error> {
        let root = Tree::at(&self.root).unwrap().root;
        let place = |p: &[u8]| {
            tops.iter().any(|t| p == t.as_bytes() || p.starts_with(format!("{t}/").as_bytes())).then(|| p.to_vec())
        };
        let placement = Placement {
            label: Path::new("the files from web"),
            dst: &self.root,
            to_host: true,
            place: &place,
            max_bytes: None,
        };
        let before = listing(&self.outside);
        let r = unpack_stream(stream, root, &placement);
        assert_eq!(listing(&self.outside), before, "something outside the destination changed");
        r
    }
}

/// Every path below `dir` with its kind and contents.
fn listing(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for e in walk(dir) {
        let m = std::fs::symlink_metadata(&e).unwrap();
        let what = if m.is_file() {
            String::from_utf8_lossy(&std::fs::read(&e).unwrap()).into_owned()
        } else {
            format!("{:?}", m.file_type())
        };
        out.push((e, what));
    }
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        out.push(e.path());
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        }
    }
    out
}

#[test]
fn a_pull_writes_only_the_names_it_asked_for() {
    let h = Host::new();
    let s = h.pull(&Raw::default().file("/etc/passwd", b"x").file("other", b"x").file("out", b"ok").done(), &["out"]);
    assert_eq!(s.unwrap().refused, 2, "an absolute name and a name outside the plan are refused");
    assert_eq!(std::fs::read(h.root.join("out")).unwrap(), b"ok");
    assert!(!h.root.join("etc").exists() && !h.root.join("other").exists());
    let s = h.pull(&Raw::default().dir("d").file("d/../../outside/secret", b"pwned").done(), &["d"]).unwrap();
    assert_eq!(s.refused, 1, "'..' is refused");
}

#[test]
fn a_pull_never_passes_through_a_symlink_not_even_one_it_made() {
    for (link, target) in [("out", "/"), ("out/l", ".."), ("out/l", "../outside"), ("out/abs", "/etc")] {
        let h = Host::new();
        let outside = h.outside.display().to_string();
        let target = if target == "../outside" { outside.as_str() } else { target };
        let mut raw = Raw::default();
        if link != "out" {
            raw.dir("out");
        }
        raw.link(link, target).file(&format!("{link}/secret"), b"pwned").file(&format!("{link}/x"), b"pwned");
        let err = h.pull(&raw.done(), &["out"]).unwrap_err().to_string();
        assert!(err.contains("symbolic links") || err.contains("Too many"), "{link} -> {target}: {err}");
        assert_eq!(std::fs::read(h.outside.join("secret")).unwrap(), b"host");
        // The link itself is there, as the container had it.
        assert_eq!(std::fs::read_link(h.root.join(link)).unwrap(), Path::new(target));
    }
}

#[test]
fn a_pull_makes_no_setuid_files_hard_links_or_attributes_on_the_host() {
    let h = Host::new();
    std::fs::write(h.root.join("victim"), b"host").unwrap();
    let stream = Raw::default()
        .dir("out")
        .entry("out/suid", tar::EntryType::Regular, 0o6755, "", b"#!/bin/sh\n")
        .entry("out/sticky", tar::EntryType::Directory, 0o1777, "", b"")
        .entry("out/hard", tar::EntryType::Link, 0o644, "victim", b"")
        .entry("out/hard2", tar::EntryType::Link, 0o644, "out/suid", b"")
        .xattr("user.hutch", "from-the-container")
        .file("out/attr", b"a")
        .entry("out/dev", tar::EntryType::Char, 0o666, "", b"")
        .done();
    let s = h.pull(&stream, &["out"]).unwrap();
    assert_eq!(std::fs::metadata(h.root.join("out/suid")).unwrap().mode() & 0o7777, 0o755);
    assert_eq!(std::fs::metadata(h.root.join("out/sticky")).unwrap().mode() & 0o7777, 0o1777);
    assert!(!h.root.join("out/hard").exists() && !h.root.join("out/hard2").exists());
    assert_eq!(s.refused, 2);
    assert!(!h.root.join("out/dev").exists());
    let attrs = rustix::fs::listxattr(h.root.join("out/attr"), &mut [0u8; 256][..]).unwrap_or(0);
    assert_eq!(attrs, 0, "no extended attribute from the stream");
    let (uid, gid) = my_ids();
    let m = std::fs::metadata(h.root.join("out/attr")).unwrap();
    assert_eq!((u64::from(m.uid()), u64::from(m.gid())), (uid, gid), "owners as stored in the stream");
}

#[test]
fn a_pull_stops_at_the_space_it_may_use() {
    let h = Host::new();
    let root = Tree::at(&h.root).unwrap().root;
    let place = |p: &[u8]| Some(p.to_vec());
    let placement = Placement { label: Path::new("s"), dst: &h.root, to_host: true, place: &place, max_bytes: Some(4) };
    let e = unpack_stream(&Raw::default().file("big", b"0123456789").done()[..], root, &placement).unwrap_err();
    assert!(matches!(e, crate::rootfs::Error::NoSpace { .. }), "{e}");
}

fn container() -> (tempfile::TempDir, Tree) {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("real")).unwrap();
    let tree = Tree::at(d.path()).unwrap();
    (d, tree)
}

fn stream_file(bytes: &[u8]) -> File {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(bytes).unwrap();
    f.rewind().unwrap();
    f
}

fn job(target: &str, into_dir: bool, top: &str) -> PushJob {
    PushJob { target: CPath::parse(target).unwrap(), into_dir, create_dirs: false, top: top.into(), name: "web".into() }
}

#[test]
fn a_push_through_the_containers_symlinks_lands_inside_its_root() {
    let (c, tree) = container();
    let outside = tempfile::tempdir().unwrap();
    symlink("/", c.path().join("etc")).unwrap();
    symlink("../../../../real", c.path().join("up")).unwrap();
    symlink(outside.path(), c.path().join("abs")).unwrap();
    let f = || stream_file(&Raw::default().file("f", b"data").done());
    receive(&tree, &job("/etc/hutch-x", false, "f"), f()).unwrap();
    assert_eq!(std::fs::read(c.path().join("hutch-x")).unwrap(), b"data");
    receive(&tree, &job("/up/y", false, "f"), f()).unwrap();
    assert_eq!(std::fs::read(c.path().join("real/y")).unwrap(), b"data");
    // An absolute link to a host directory leads to that path inside the root, which
    // does not exist: the push fails, and the host directory stays empty.
    let e = receive(&tree, &job("/abs/z", false, "f"), f()).unwrap_err();
    assert!(e.error.detail.contains("does not exist in web"), "{:?}", e);
    assert_eq!(e.error.kind, Kind::Request);
    assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
    // The final component is replaced, never followed.
    std::fs::write(outside.path().join("victim"), b"host").unwrap();
    symlink(outside.path().join("victim"), c.path().join("real/v")).unwrap();
    receive(&tree, &job("/real/v", false, "f"), f()).unwrap();
    assert_eq!(std::fs::read(outside.path().join("victim")).unwrap(), b"host");
    assert_eq!(std::fs::read(c.path().join("real/v")).unwrap(), b"data");
}

#[test]
fn a_push_goes_into_a_directory_or_becomes_the_path() {
    let (c, tree) = container();
    let tree_stream = || stream_file(&Raw::default().dir("src").file("src/a", b"a").done());
    // Into an existing directory, under its own name.
    receive(&tree, &job("/real", false, "src"), tree_stream()).unwrap();
    assert_eq!(std::fs::read(c.path().join("real/src/a")).unwrap(), b"a");
    // As the path itself, renamed.
    receive(&tree, &job("/real/copy", false, "src"), tree_stream()).unwrap();
    assert_eq!(std::fs::read(c.path().join("real/copy/a")).unwrap(), b"a");
    // A directory target must exist...
    let e = receive(&tree, &job("/new/", true, "src"), tree_stream()).unwrap_err();
    assert!(e.error.hint.as_deref().unwrap().contains("-p"), "{e:?}");
    assert!(!c.path().join("new").exists());
    // ... unless asked to create it.
    let mut j = job("/new/deeper", true, "src");
    j.create_dirs = true;
    receive(&tree, &j, tree_stream()).unwrap();
    assert_eq!(std::fs::read(c.path().join("new/deeper/src/a")).unwrap(), b"a");
    let e = receive(&tree, &job("/real/src/a/", true, "x"), tree_stream()).unwrap_err();
    assert!(e.error.detail.contains("is not a directory"), "{e:?}");
}

#[test]
fn renaming_keeps_to_the_top_entry() {
    assert_eq!(rename(b"f", b"f", b"etc/x"), Some(b"etc/x".to_vec()));
    assert_eq!(rename(b"f/a/b", b"f", b"etc/x"), Some(b"etc/x/a/b".to_vec()));
    assert_eq!(rename(b"fx", b"f", b"etc/x"), None);
    assert_eq!(rename(b"other", b"f", b"etc/x"), None);
}

fn pull_job(sources: &[&str], tops: &[&str], recursive: bool) -> PullJob {
    PullJob {
        sources: sources.iter().map(|s| CPath::parse(s).unwrap()).collect(),
        tops: tops.iter().map(|t| t.as_bytes().to_vec()).collect(),
        recursive,
        name: "web".into(),
    }
}

#[test]
fn a_pull_sends_the_containers_links_as_links_and_checks_first() {
    let (c, tree) = container();
    std::fs::create_dir_all(c.path().join("d/sub")).unwrap();
    std::fs::write(c.path().join("d/sub/f"), b"inside").unwrap();
    symlink("/", c.path().join("d/evil")).unwrap();
    symlink("/etc/passwd", c.path().join("d/abs")).unwrap();
    let mut out = tempfile::tempfile().unwrap();
    let done = send_tree(&tree, &pull_job(&["/d"], &["copy"], true), out.try_clone().unwrap()).unwrap();
    assert_eq!((done.entries, done.bytes), (5, 6));
    let h = Host::new();
    out.rewind().unwrap();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut out, &mut bytes).unwrap();
    h.pull(&bytes, &["copy"]).unwrap();
    assert_eq!(std::fs::read_link(h.root.join("copy/evil")).unwrap(), Path::new("/"));
    assert_eq!(std::fs::read_link(h.root.join("copy/abs")).unwrap(), Path::new("/etc/passwd"));
    assert_eq!(std::fs::read(h.root.join("copy/sub/f")).unwrap(), b"inside");
    // A directory without -r, or a missing source, fails before anything is sent.
    let empty = tempfile::tempfile().unwrap();
    let e =
        send_tree(&tree, &pull_job(&["/d/sub/f", "/d"], &["a", "b"], false), empty.try_clone().unwrap()).unwrap_err();
    assert!(e.error.detail.contains("/d is a directory in web") && e.error.hint.is_some(), "{e:?}");
    let e = send_tree(&tree, &pull_job(&["/d/sub/f", "/nope"], &["a", "b"], false), empty.try_clone().unwrap())
        .unwrap_err();
    assert!(e.error.detail.contains("/nope does not exist in web"), "{e:?}");
    assert_eq!(empty.metadata().unwrap().len(), 0);
    // The container's root itself is not a source.
    assert!(send_tree(&tree, &pull_job(&["/"], &["a"], true), empty).is_err());
}

fn request(sources: &[&str], dest: &Path, recursive: bool, create_dirs: bool) -> PullRequest {
    let sources = sources.iter().map(|s| Spec::parse(s).unwrap()).collect();
    PullRequest { sources, dest: dest.to_path_buf(), recursive, create_dirs }
}

fn tops(p: &Plan) -> Vec<String> {
    p.tops.iter().map(|t| String::from_utf8_lossy(t).into_owned()).collect()
}

#[test]
fn a_pull_plans_where_each_copy_goes_and_creates_nothing() {
    let d = tempfile::tempdir().unwrap();
    let (base, file) = (d.path().to_path_buf(), d.path().join("file"));
    std::fs::write(&file, b"").unwrap();
    let p = plan("pull", &request(&["web/etc/hosts"], &base, false, false)).unwrap();
    assert_eq!((p.root.as_path(), tops(&p)), (base.as_path(), vec!["hosts".to_string()]));
    let p = plan("pull", &request(&["web/etc/hosts"], &base.join("new"), false, false)).unwrap();
    assert_eq!((p.root.as_path(), tops(&p)), (base.as_path(), vec!["new".to_string()]));
    let p = plan("pull", &request(&["web/etc/hosts"], &file, false, false)).unwrap();
    assert_eq!(tops(&p), ["file"], "a file is replaced");
    let e = plan("pull", &request(&["web/etc/hosts"], &base.join("a/b"), false, false)).unwrap_err();
    assert!(e.hint().unwrap().contains("-p"), "{e}");
    let p = plan("pull", &request(&["web/etc/hosts"], &base.join("a/b"), false, true)).unwrap();
    assert_eq!((p.root.as_path(), tops(&p)), (base.as_path(), vec!["a/b".to_string()]));
    // A directory: -r, several sources, a trailing '/'. Created as needed, by the copy.
    let p = plan("pull", &request(&["web/etc", "web/root"], &base.join("x/y"), true, false)).unwrap();
    assert_eq!((p.root.as_path(), tops(&p)), (base.as_path(), vec!["x/y/etc".to_string(), "x/y/root".into()]));
    let slash = PathBuf::from(format!("{}/z/", base.display()));
    assert_eq!(tops(&plan("pull", &request(&["web/etc/hosts"], &slash, false, false)).unwrap()), ["z/hosts"]);
    for bad in [
        request(&["web/a", "web/b"], &file, false, false),
        request(&["web/a/x", "web/b/x"], &base, false, false),
        request(&["web/"], &base, true, false),
    ] {
        assert!(matches!(plan("pull", &bad), Err(Error::Usage { .. })), "{bad:?}");
    }
    let e = plan("pull", &request(&["web/etc"], &file.join("below"), true, false)).unwrap_err();
    assert!(e.to_string().contains("Not a directory"), "{e}");
    assert_eq!(std::fs::read_dir(&base).unwrap().count(), 1, "planning created nothing");
}

fn ended<T>(host: Result<T, Error>, report: Report) -> Ended<Result<T, Error>> {
    Ended { host, report: Ok(report) }
}

fn failed(detail: &str, broken_pipe: bool) -> Report {
    Report::Failed {
        failure: JobError { error: crate::runtime::wire::WireError::new(Kind::Storage, detail), broken_pipe },
    }
}

#[test]
fn the_side_that_failed_first_is_reported() {
    let pipe = || Error::Send {
        action: "push".into(),
        source: super::SendError::Write(std::io::ErrorKind::BrokenPipe.into()),
    };
    let host = || Error::Write { action: "pull".into(), message: "disk full".into() };
    let done = Report::Done { done: Done::default() };
    assert!(session::settle("push", Flow::ToHelper, ended(Ok(1), done.clone())).is_ok());
    // The helper went away first: its reason, not the CLI's broken pipe.
    let e =
        session::settle::<()>("push", Flow::ToHelper, ended(Err(pipe()), failed("no such dir", false))).unwrap_err();
    assert_eq!(e.to_string(), "failed to push: no such dir");
    // The host failed reading its own files: that, not the helper's truncated stream.
    let e = session::settle::<()>("push", Flow::ToHelper, ended(Err(host()), failed("truncated", false))).unwrap_err();
    assert!(e.to_string().contains("disk full"), "{e}");
    // A pull whose host side failed: the helper's broken pipe yields to it...
    let e =
        session::settle::<()>("pull", Flow::FromHelper, ended(Err(host()), failed("broken pipe", true))).unwrap_err();
    assert!(e.to_string().contains("disk full"), "{e}");
    // ... but a helper that failed on its own is the cause of a truncated stream.
    let e = session::settle::<()>("pull", Flow::FromHelper, ended(Err(host()), failed("EIO", false))).unwrap_err();
    assert_eq!(e.to_string(), "failed to pull: EIO");
    let e = session::settle::<()>("pull", Flow::FromHelper, Ended { host: Ok(()), report: Err("killed".into()) });
    assert!(e.unwrap_err().to_string().contains("killed"));
}

#[test]
fn edits_follow_links_inside_the_root_and_write_in_place() {
    let (c, tree) = container();
    std::fs::write(c.path().join("real/conf"), b"old").unwrap();
    std::fs::set_permissions(c.path().join("real/conf"), std::fs::Permissions::from_mode(0o640)).unwrap();
    symlink("/real/conf", c.path().join("link")).unwrap();
    let path = CPath::parse("/link").unwrap();
    let mut out = tempfile::tempfile().unwrap();
    super::edit::read_job(&tree, &path, "web", out.try_clone().unwrap()).unwrap();
    out.rewind().unwrap();
    assert_eq!(std::io::read_to_string(&mut out).unwrap(), "old");
    // A stream cut short changes nothing.
    let e = super::edit::write_job(&tree, &path, "web", 10, stream_file(b"new")).unwrap_err();
    assert!(e.error.detail.contains("3 of 10 bytes"), "{e:?}");
    assert_eq!(std::fs::read(c.path().join("real/conf")).unwrap(), b"old");
    super::edit::write_job(&tree, &path, "web", 3, stream_file(b"new")).unwrap();
    assert_eq!(std::fs::read(c.path().join("real/conf")).unwrap(), b"new");
    assert_eq!(std::fs::metadata(c.path().join("real/conf")).unwrap().mode() & 0o777, 0o640);
    assert!(std::fs::symlink_metadata(c.path().join("link")).unwrap().is_symlink(), "the link stays");
    nix::unistd::mkfifo(&c.path().join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let e = super::edit::read_job(&tree, &CPath::parse("/fifo").unwrap(), "web", stream_file(b"")).unwrap_err();
    assert!(e.error.detail.contains("is not a regular file"), "{e:?}");
}
