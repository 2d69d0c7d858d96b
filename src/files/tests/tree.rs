//! The helper's side in a temporary tree (pushes, pulls, edits), and the CLI's
//! plans and error settling.

use super::*;

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
    // A failure to write names the path from the container's root.
    let file_named_src = stream_file(&Raw::default().file("src", b"f").done());
    let e = receive(&tree, &job("/real/", true, "src"), file_named_src).unwrap_err();
    assert!(e.error.detail.starts_with("/real/src: replace what is there: "), "{e:?}");
    assert_eq!(std::fs::read(c.path().join("real/src/a")).unwrap(), b"a");
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
        source: crate::files::SendError::Write(std::io::ErrorKind::BrokenPipe.into()),
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
    crate::files::edit::read_job(&tree, &path, "web", out.try_clone().unwrap()).unwrap();
    out.rewind().unwrap();
    assert_eq!(std::io::read_to_string(&mut out).unwrap(), "old");
    // A stream cut short changes nothing.
    let e = crate::files::edit::write_job(&tree, &path, "web", 10, stream_file(b"new")).unwrap_err();
    assert!(e.error.detail.contains("3 of 10 bytes"), "{e:?}");
    assert_eq!(std::fs::read(c.path().join("real/conf")).unwrap(), b"old");
    crate::files::edit::write_job(&tree, &path, "web", 3, stream_file(b"new")).unwrap();
    assert_eq!(std::fs::read(c.path().join("real/conf")).unwrap(), b"new");
    assert_eq!(std::fs::metadata(c.path().join("real/conf")).unwrap().mode() & 0o777, 0o640);
    assert!(std::fs::symlink_metadata(c.path().join("link")).unwrap().is_symlink(), "the link stays");
    nix::unistd::mkfifo(&c.path().join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let e = crate::files::edit::read_job(&tree, &CPath::parse("/fifo").unwrap(), "web", stream_file(b"")).unwrap_err();
    assert!(e.error.detail.contains("is not a regular file"), "{e:?}");
}
