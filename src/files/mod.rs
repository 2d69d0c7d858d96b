//! `hutch file push|pull|edit`: copying files into and out of a container, running or
//! stopped, as Incus's `incus file` does.
//!
//! **How the files are reached.** The CLI forks a helper ([`helper`]) that enters the
//! container's tree and does all the work inside it; data crosses between the two as
//! a tar stream on a pipe, and the helper's report (a `WireError` on failure) on a
//! second pipe.
//! - Running: the helper joins init's mount and user namespaces through a pidfd and
//!   becomes the container's root, so it sees exactly the tree the container sees
//!   (its mounts included), and files it writes get container ids through the
//!   idmapped rootfs, as if the container had written them.
//! - Stopped: under the container's lock (it cannot start meanwhile), the helper makes
//!   a detached, `nodev` mount of the rootfs: for `overlay` the merged view, for `dir`
//!   and `btrfs` a clone of the directory. Nothing is attached in any mount namespace
//!   (the brief asked for a private mount namespace; a detached mount needs none and
//!   leaves even less behind). On disk the layers hold container ids, so host root
//!   reads and writes them as they are.
//!
//!   After that there is one code path for both: the tree is a root directory
//!   descriptor, and every path in it is resolved with `openat2(RESOLVE_IN_ROOT |
//!   RESOLVE_NO_MAGICLINKS)`.
//!
//! **Why a symlink the container controls never redirects the host.** On the container
//! side, paths are resolved in the container's root (a link `/etc -> /` leads to the
//! container's `/`, never the host's); a pull walks the tree through directory
//! descriptors with `O_NOFOLLOW` ([`send`]), so links are sent as links and a
//! directory swapped for a link mid-walk is never entered; the helper of a running
//! container has no other view of the filesystem than the container's. On the host
//! side, a pull's stream is untrusted: [`crate::rootfs::unpack`] writes it below the
//! destination with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` (an entry can never pass
//! through a link, not even one the stream made), refuses absolute names, `..`, hard
//! links and any name outside the ones asked for, makes no device nodes and drops
//! setuid/setgid bits and extended attributes, and stops at the host's free space.
//!
//! **Ownership.** Owners travel as numbers, in container ids: a pushed file owned by
//! host root is owned by root (0) inside; a pulled file owned by root inside is owned
//! by 0 on the host. `--uid`, `--gid` and `--mode` override them on a push.

mod edit;
mod helper;
mod pull;
mod push;
mod send;
mod session;
mod spec;
mod tree;

pub use edit::edit;
pub use pull::{PullRequest, pull};
pub use push::{PushRequest, push};
pub use send::SendError;
pub use spec::{CPath, Spec, parse_mode};

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::runtime::wire::WireError;

/// Owner and mode for what a push writes (each unset field keeps the source's).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Override {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// For regular files only.
    pub mode: Option<u32>,
}

/// What a push or pull did, for the user.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub entries: u64,
    pub bytes: u64,
    /// Things hutch did or left out that the user should know about.
    pub notices: Vec<String>,
}

/// "1 entry", "2 entries".
fn entries(n: u64) -> String {
    if n == 1 { "1 entry".into() } else { format!("{n} entries") }
}

/// The notices for what a walk left out: device nodes and sockets, and entries that
/// vanished or changed while they were read.
fn left_out(notices: &mut Vec<String>, skipped: u64, vanished: u64) {
    if skipped > 0 {
        notices.push(format!("left out {} (device nodes and sockets cannot be copied)", entries(skipped)));
    }
    if vanished > 0 {
        notices.push(format!("left out {} that vanished or changed while being read", entries(vanished)));
    }
}

#[derive(Debug, Error)]
pub enum Error {
    #[error("failed to use {arg:?} as NAME/PATH: {why}")]
    Spec { arg: String, why: String },
    /// Arguments that do not fit together, found before anything is changed.
    #[error("failed to {action}: {why}")]
    Usage { action: String, why: String, hint: Option<String> },
    #[error(transparent)]
    Container(#[from] crate::container::Error),
    #[error("failed to {action}: {name} is frozen")]
    Frozen { action: String, name: String },
    #[error("failed to {action}: {name} is {state}")]
    Busy { action: String, name: String, state: &'static str },
    /// A host path (a source, the destination) that cannot be used.
    #[error("failed to {action}: {}: {source}", path.display())]
    Host { action: String, path: PathBuf, source: io::Error },
    /// Reading the host's files, or handing them to the helper, failed.
    #[error("failed to {action}: {source}")]
    Send { action: String, source: send::SendError },
    /// The helper failed in the container's tree.
    #[error("failed to {action}: {source}")]
    Helper { action: String, source: WireError },
    /// Writing what came from the container failed on the host.
    #[error("failed to {action}: {message}")]
    Write { action: String, message: String },
    #[error("failed to {action}: it needs more than the {free_mib} MiB free on {}", dst.display())]
    NoSpace { action: String, dst: PathBuf, free_mib: u64 },
    #[error("failed to {action}: {source}")]
    Sys { action: String, source: crate::sys::Error },
    #[error("failed to {action}: the editor ({editor}) failed; nothing was changed")]
    Editor { action: String, editor: String },
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Spec { .. } => {
                Some("write the container's name, a '/', then the path from its root: web/etc/hosts".into())
            }
            Error::Usage { hint, .. } => hint.clone(),
            Error::Container(e) => e.hint(),
            Error::Frozen { name, .. } => Some(format!("thaw it with `hutch unfreeze {name}`")),
            Error::Busy { .. } => Some("wait until it has started or stopped, then try again".into()),
            Error::Helper { source, .. } => source.hint(),
            Error::NoSpace { .. } => Some("free some space there, or copy to another filesystem".into()),
            Error::Sys { source, .. } => source.hint(),
            Error::Editor { .. } => Some("set VISUAL or EDITOR to an editor that exits with 0 after saving".into()),
            Error::Host { .. } | Error::Send { .. } | Error::Write { .. } => None,
        }
    }

    /// A write to the helper that failed because the helper went away (its own
    /// report then says why).
    fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Send { source, .. } if source.is_broken_pipe())
    }

    /// The host side of a stream from the container failed.
    fn unpack(action: &str, e: crate::rootfs::Error) -> Error {
        let action = action.to_string();
        match e {
            crate::rootfs::Error::Unpack { message, .. } => Error::Write { action, message },
            crate::rootfs::Error::NoSpace { dst, free_mib, .. } => Error::NoSpace { action, dst, free_mib },
            other => Error::Write { action, message: other.to_string() },
        }
    }
}

#[cfg(test)]
mod tests;
