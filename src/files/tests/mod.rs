//! Both sides of a copy without root or a container: a temporary directory stands in
//! for the container's tree (the helper's side resolves below it exactly as it does
//! below a container's root), another for the host's destination. Streams carry the
//! test runner's own ids.

mod host;
mod tree;

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
