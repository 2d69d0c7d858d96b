//! The child side of a container start: the policy tables, the mount plan built from
//! them, the executor that applies it inside the new root, and the sequence from
//! clone to the exec of init.

pub mod apply;
pub mod channel;
pub mod child;
pub mod kernel;
pub mod lxcfs;
pub mod mounts;
pub mod plan;
pub mod policy;
pub mod wire;

use std::io;

use thiserror::Error;

use wire::{Kind, WireError};

/// A failure of the container's first process, between clone and the exec of init.
/// It reaches the monitor over the start channel as a `WireError`.
#[derive(Debug, Error)]
pub enum Error {
    #[error("failed to {action}: {source}")]
    Step { action: String, source: io::Error },
    #[error(transparent)]
    Sys(#[from] crate::sys::Error),
    #[error(transparent)]
    Mounts(#[from] apply::Error),
    #[error(transparent)]
    Shares(#[from] mounts::Error),
    #[error("failed to execute init {path}: {reason}")]
    Init { path: String, reason: InitFailure },
    #[error("failed to start the container's init: {0}")]
    Handshake(&'static str),
}

/// Why the exec of init failed.
#[derive(Debug, Error)]
pub enum InitFailure {
    #[error("it does not exist in the root filesystem")]
    Missing,
    #[error("permission denied (is it executable?)")]
    NotExecutable,
    #[error("not an executable format this kernel runs")]
    BadFormat,
    #[error("{0}")]
    Other(io::Error),
}

impl InitFailure {
    pub fn of(e: io::Error) -> InitFailure {
        match e.raw_os_error() {
            Some(libc::ENOENT) => InitFailure::Missing,
            Some(libc::EACCES) => InitFailure::NotExecutable,
            Some(libc::ENOEXEC) => InitFailure::BadFormat,
            _ => InitFailure::Other(e),
        }
    }
}

impl Error {
    pub fn step<E: Into<io::Error>>(action: impl Into<String>) -> impl FnOnce(E) -> Error {
        let action = action.into();
        move |e| Error::Step { action, source: e.into() }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Error::Mounts(_) | Error::Shares(_) => Kind::Mounts,
            Error::Init { .. } => Kind::Init,
            Error::Sys(crate::sys::Error::NotSingleThreaded { .. }) => Kind::Threads,
            Error::Step { .. } | Error::Sys(_) | Error::Handshake(_) => Kind::Namespaces,
        }
    }

    pub fn hint(&self) -> Option<String> {
        let command = "check init.command in the container's config.toml (`hutch config get NAME init.command`)";
        match self {
            Error::Init { reason: InitFailure::Missing, .. } => {
                Some(format!("{command}; the path is looked up inside the root filesystem"))
            }
            Error::Init { reason: InitFailure::NotExecutable, .. } => {
                Some(format!("make it executable in the root filesystem (mode 0755), or {command}"))
            }
            Error::Init { reason: InitFailure::BadFormat, .. } => {
                Some("is the root filesystem built for this machine's architecture?".into())
            }
            Error::Sys(e) => e.hint(),
            Error::Shares(e) => e.hint(),
            _ => None,
        }
    }

    pub fn to_wire(&self) -> WireError {
        WireError::new(self.kind(), self.to_string()).with_hint(self.hint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_failures_carry_a_hint() {
        let e = Error::Init {
            path: "/sbin/init".into(),
            reason: InitFailure::of(io::Error::from_raw_os_error(libc::EACCES)),
        };
        let w = e.to_wire();
        assert_eq!(w.kind, Kind::Init);
        assert_eq!(w.detail, "failed to execute init /sbin/init: permission denied (is it executable?)");
        assert!(w.hint.unwrap().contains("make it executable"));
        let missing = InitFailure::of(io::Error::from_raw_os_error(libc::ENOENT));
        assert!(matches!(missing, InitFailure::Missing));
    }
}
