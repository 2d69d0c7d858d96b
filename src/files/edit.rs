//! `hutch file edit NAME/PATH`: the file copied to a private temporary file, the
//! user's editor run on it (`$VISUAL`, else `$EDITOR`, else `vi`, as `config edit`
//! does), and the result written back only if it changed.
//!
//! A symlink at PATH is followed inside the container's root (editing a link edits
//! what it leads to, as an editor in the container would). The new contents are
//! written in place, into the same file: its owner, mode, links and attributes stay
//! as they were, as `incus file edit` leaves them. The helper takes the new contents
//! whole before it truncates anything, so a CLI that dies mid-way changes nothing.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::helper::{Done, Flow, JobError, Tree};
use super::spec::Spec;
use super::{Error, session};
use crate::base::paths::Paths;
use crate::runtime::wire::Kind;

/// Edits `spec`'s file; returns notices for the user.
pub fn edit(paths: &Paths, spec: &Spec) -> Result<Vec<String>, Error> {
    let action = format!("edit {spec}");
    let Some(base) = spec.path.file_name().filter(|_| !spec.dir) else {
        return Err(Error::Usage { action, why: format!("{spec} names a directory"), hint: None });
    };
    let host = |path: &Path| {
        let (action, path) = (action.clone(), path.to_path_buf());
        move |source: io::Error| Error::Host { action, path, source }
    };
    let tmp = TempDir::new().map_err(host(&std::env::temp_dir()))?;
    let file = tmp.0.join(base);
    let (name, path) = (spec.name.as_str(), &spec.path);
    let copy_out = |data: File| copy_into(data, &file).map_err(host(&file));
    let read = |tree: &Tree, data: File| read_job(tree, path, name, data);
    let (before, _, mut notices) = session::run(paths, name, &action, Flow::FromHelper, read, copy_out)?;

    let editor = std::env::var("VISUAL").or_else(|_| std::env::var("EDITOR")).unwrap_or_else(|_| "vi".into());
    let status =
        std::process::Command::new("sh").arg("-c").arg(format!("{editor} \"$1\"")).arg("sh").arg(&file).status();
    if !status.is_ok_and(|s| s.success()) {
        return Err(Error::Editor { action, editor });
    }
    let after = std::fs::read(&file).map_err(host(&file))?;
    if Sha256::digest(&after).as_slice() == before.as_slice() {
        notices.push(format!("no changes to {spec}"));
        return Ok(notices);
    }
    let len = after.len() as u64;
    let write = |tree: &Tree, data: File| write_job(tree, path, name, len, data);
    let send = |mut data: File| {
        data.write_all(&after)
            .map_err(|e| Error::Send { action: action.clone(), source: super::send::SendError::Write(e) })
    };
    let (_, _, more) = session::run(paths, name, &action, Flow::ToHelper, write, send)?;
    notices.extend(more);
    Ok(notices)
}

/// Copies the stream into a new file at `to`, which only this user can read, up to
/// the free space there; returns the SHA-256 of what was copied.
fn copy_into(mut data: File, to: &Path) -> io::Result<Vec<u8>> {
    let mut out = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(to)?;
    let limit = crate::rootfs::unpack::free_bytes(&out)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        if total > limit {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "the file is larger than the free space here"));
        }
        hash.update(&buf[..n]);
        out.write_all(&buf[..n])?;
    }
    out.sync_all()?;
    Ok(hash.finalize().to_vec())
}

/// The helper's side of the first step: the file's contents, symlinks followed inside
/// the container's root.
pub(super) fn read_job(tree: &Tree, path: &super::CPath, name: &str, mut data: File) -> Result<Done, JobError> {
    let mut f = tree.open_regular(path, false, name)?;
    let bytes = io::copy(&mut f, &mut data).map_err(|e| JobError {
        broken_pipe: e.kind() == io::ErrorKind::BrokenPipe,
        error: crate::runtime::wire::WireError::new(Kind::Storage, format!("failed to read {path}: {e}")),
    })?;
    Ok(Done { entries: 1, bytes, ..Done::default() })
}

/// The helper's side of the last step: exactly `len` bytes taken whole, then written
/// over the file's old contents.
pub(super) fn write_job(tree: &Tree, path: &super::CPath, name: &str, len: u64, data: File) -> Result<Done, JobError> {
    let fail = |what: &str, e: io::Error| JobError::new(Kind::Storage, format!("failed to {what} {path}: {e}"));
    let mut new = Vec::with_capacity(len.min(1 << 26) as usize);
    data.take(len + 1).read_to_end(&mut new).map_err(|e| fail("receive the new contents of", e))?;
    if new.len() as u64 != len {
        let e = io::Error::new(io::ErrorKind::UnexpectedEof, format!("{} of {len} bytes arrived", new.len()));
        return Err(fail("receive the new contents of", e));
    }
    let mut f = tree.open_regular(path, true, name)?;
    f.set_len(0).map_err(|e| fail("truncate", e))?;
    f.write_all(&new).map_err(|e| fail("write", e))?;
    f.sync_all().map_err(|e| fail("write", e))?;
    Ok(Done { entries: 1, bytes: len, ..Done::default() })
}

/// A private directory in the temporary directory, removed with what is in it.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> io::Result<TempDir> {
        let dir = std::env::temp_dir().join(format!("hutch-edit-{}", crate::sys::random_hex128()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
