//! The helper: a process forked from the CLI that enters the container's tree, does
//! one job there and reports how it went. The CLI stays on the host and streams the
//! data over a pipe; the report comes back on a second pipe as JSON, with a failure as
//! a `WireError`.
//!
//! Entering the tree is the only kernel-facing part:
//! - a running container: `setns` on a pidfd of init into its mount namespace (and its
//!   user namespace, unless privileged), then root of that user namespace; the helper's
//!   root directory is then the container's own root;
//! - a stopped container: a detached mount of its root filesystem (`open_tree` for
//!   `dir` and `btrfs`, the overlay made with `fsmount` for `overlay`), made `nodev`
//!   and never attached anywhere, so nothing is mounted on the host; it goes when the
//!   helper exits. The layers keep the container's ids on disk, so host root writes
//!   them as they are.
//!
//! Either way the job gets a [`Tree`]: a directory descriptor of the container's root,
//! below which every path is resolved with `RESOLVE_IN_ROOT`.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::sched::CloneFlags;
use rustix::fs::{Mode, OFlags};
use serde::{Deserialize, Serialize};

pub(crate) use super::tree::Tree;
use crate::runtime::wire::{Kind, WireError};
use crate::storage::Layers;
use crate::sys;

/// How the helper reaches the container's files.
pub(crate) enum Access {
    /// A running container: a pidfd of its init, and whether it runs without a user namespace.
    Running { pidfd: OwnedFd, privileged: bool },
    /// A stopped container, whose lock the caller holds: its root filesystem (and overlay layers).
    Stopped { rootfs: PathBuf, layers: Option<Layers> },
}

/// What a job did, as the helper reports it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Done {
    pub entries: u64,
    pub bytes: u64,
    /// Device nodes and sockets left out.
    pub skipped: u64,
    /// Entries that vanished or changed while being read.
    pub vanished: u64,
    /// Stream entries refused (by the receiving side).
    pub refused: u64,
}

/// A job's failure: the error, and whether it was a write to a reader that went away
/// (then the reader's own failure is the one to report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JobError {
    pub error: WireError,
    #[serde(default)]
    pub broken_pipe: bool,
}

impl JobError {
    pub(crate) fn new(kind: Kind, detail: impl Into<String>) -> JobError {
        JobError { error: WireError::new(kind, detail), broken_pipe: false }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> JobError {
        self.error.hint = Some(hint.into());
        self
    }
}

/// The helper's report, one JSON document on its report pipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "report", rename_all = "snake_case")]
pub(crate) enum Report {
    Done { done: Done },
    Failed { failure: JobError },
}

/// Which way the data pipe runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// The CLI writes, the helper reads (push).
    ToHelper,
    /// The helper writes, the CLI reads (pull).
    FromHelper,
}

/// How a session ended: the CLI's side, and the helper's report (or why there is none).
pub(crate) struct Ended<T> {
    pub host: T,
    pub report: Result<Report, String>,
}

/// Forks the helper, which enters the tree through `access` and runs `job` with its
/// end of the data pipe; meanwhile `host` runs here with the other end. `keep` is a
/// descriptor the helper keeps open (the container's lock, so that it is held as long
/// as either process lives).
pub(crate) fn session<T>(
    access: &Access,
    flow: Flow,
    keep: Option<BorrowedFd<'_>>,
    job: impl FnOnce(&Tree, File) -> Result<Done, JobError>,
    host: impl FnOnce(File) -> T,
) -> Result<Ended<T>, sys::Error> {
    let call =
        |action: &'static str| move |e: nix::errno::Errno| sys::Error::Call { action: action.into(), source: e.into() };
    let (data_rd, data_wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(call("create a pipe"))?;
    let (ours, theirs) = match flow {
        Flow::ToHelper => (data_wr, data_rd),
        Flow::FromHelper => (data_rd, data_wr),
    };
    let (report_rd, report_wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(call("create a pipe"))?;
    match sys::fork_single("start the file helper")? {
        nix::unistd::ForkResult::Child => {
            drop((ours, report_rd));
            child(access, keep.map(|fd| fd.as_raw_fd()), theirs, report_wr, job)
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop((theirs, report_wr));
            let host = host(File::from(ours));
            let mut text = Vec::new();
            let read = File::from(report_rd).read_to_end(&mut text);
            let status = loop {
                match nix::sys::wait::waitpid(child, None) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    other => break other,
                }
            };
            let report = match (read, serde_json::from_slice::<Report>(&text)) {
                (Ok(_), Ok(r)) => Ok(r),
                _ => Err(format!("the file helper ended without a report ({status:?})")),
            };
            Ok(Ended { host, report })
        }
    }
}

/// The helper's whole life: enter, work, report, exit.
fn child(
    access: &Access,
    keep: Option<RawFd>,
    data: OwnedFd,
    report: OwnedFd,
    job: impl FnOnce(&Tree, File) -> Result<Done, JobError>,
) -> ! {
    let mut fds = vec![data.as_raw_fd(), report.as_raw_fd()];
    if let Access::Running { pidfd, .. } = access {
        fds.push(pidfd.as_raw_fd());
    }
    let result = isolate(&fds, keep).and_then(|()| enter(access)).and_then(|tree| job(&tree, File::from(data)));
    let report_msg = match result {
        Ok(done) => Report::Done { done },
        Err(failure) => Report::Failed { failure },
    };
    let mut out = File::from(report);
    let ok = out.write_all(&serde_json::to_vec(&report_msg).expect("reports serialise")).is_ok();
    sys::exit_now(if ok && matches!(report_msg, Report::Done { .. }) { 0 } else { 1 })
}

/// Makes the helper non-dumpable (nothing in the container may ptrace it or open its
/// descriptors), points stdin and stdout at /dev/null and closes every other
/// descriptor it inherited but `fds` and `keep`.
fn isolate(fds: &[RawFd], keep: Option<RawFd>) -> Result<(), JobError> {
    let fail = |what: &str, e: std::io::Error| JobError::new(Kind::Namespaces, format!("failed to {what}: {e}"));
    sys::set_non_dumpable().map_err(|e| fail("make the file helper non-dumpable", e))?;
    let null = rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| fail("open /dev/null", e.into()))?;
    for fd in [0, 1] {
        sys::dup_onto(null.as_fd(), fd).map_err(|e| fail("point stdio at /dev/null", e))?;
    }
    let mut open: Vec<RawFd> = fds.iter().copied().chain(keep).collect();
    open.push(null.as_raw_fd());
    sys::close_all_but(&open).map_err(|e| fail("close inherited descriptors", e))?;
    Ok(())
}

/// Enters the container's tree (see the module comment).
fn enter(access: &Access) -> Result<Tree, JobError> {
    match access {
        Access::Running { pidfd, privileged } => {
            let mut flags = CloneFlags::CLONE_NEWNS;
            if !privileged {
                flags |= CloneFlags::CLONE_NEWUSER;
            }
            sys::join_container(pidfd.as_fd(), flags, !privileged)
                .map_err(|e| JobError::new(Kind::Namespaces, e.to_string()))?;
            // setns into a mount namespace moved our root to the container's.
            Tree::at(std::path::Path::new("/"))
                .map_err(|e| JobError::new(Kind::Namespaces, format!("failed to open the container's root: {e}")))
        }
        Access::Stopped { rootfs, layers } => {
            let storage = |e: crate::storage::Error| {
                let hint = e.hint();
                JobError { error: WireError::new(Kind::Storage, e.to_string()).with_hint(hint), broken_pipe: false }
            };
            let tree = crate::storage::root_mount(rootfs, layers.as_ref(), None, rootfs).map_err(storage)?;
            sys::mount_setattr(tree.as_fd(), true, sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOSUID, 0, None).map_err(
                |e| JobError::new(Kind::Storage, format!("failed to make the root filesystem's mount nodev: {e}")),
            )?;
            Ok(Tree { root: tree })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_typed_json() {
        let r = Report::Failed {
            failure: JobError::new(Kind::Request, "/etc is a directory").hint("pass -r to copy a directory tree"),
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"report":"failed","failure":{"error":{"kind":"request","detail":"/etc is a directory","hint":"pass -r to copy a directory tree"},"broken_pipe":false}}"#
        );
        assert_eq!(serde_json::from_str::<Report>(&json).unwrap(), r);
        let d = Report::Done { done: Done { entries: 3, bytes: 10, ..Done::default() } };
        assert_eq!(serde_json::from_str::<Report>(&serde_json::to_string(&d).unwrap()).unwrap(), d);
    }
}
