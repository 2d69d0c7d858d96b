//! The monitor's error: what can fail while it sets up and boots a container. It
//! reaches the `hutch start` that spawned it as a `WireError` (kind, message, hint).

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::runtime::wire::{Kind, WireError};

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroup::Error),
    #[error("failed to apply the limits: {0}")]
    Limits(#[from] crate::cgroup::limits::Error),
    #[error(transparent)]
    Idmap(#[from] crate::idmap::Error),
    #[error(transparent)]
    Systemd(#[from] crate::systemd::Error),
    #[error(transparent)]
    Network(#[from] crate::network::Error),
    #[error(transparent)]
    Storage(#[from] crate::storage::Error),
    #[error(transparent)]
    Sys(#[from] crate::sys::Error),
    #[error(transparent)]
    Mounts(#[from] crate::runtime::apply::Error),
    #[error(transparent)]
    Shares(#[from] crate::runtime::mounts::Error),
    #[error("failed to {action} {}: {source}", path.display())]
    Io { action: &'static str, path: PathBuf, source: io::Error },
    #[error("failed to {action}: {source}")]
    Os { action: String, source: io::Error },
    #[error("failed to use {what}: it contains a NUL byte")]
    Nul { what: &'static str },
    /// What the container's first process reported.
    #[error("{0}")]
    Child(WireError),
    #[error("failed to give the container LXCFS's /proc files (security.lxcfs = \"on\"): {0}")]
    Lxcfs(String),
}

impl Error {
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { action, path, source }
    }

    pub fn os<E: Into<io::Error>>(action: impl Into<String>) -> impl FnOnce(E) -> Error {
        let action = action.into();
        move |e| Error::Os { action, source: e.into() }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Error::Config(_) | Error::Nul { .. } => Kind::Config,
            Error::Cgroup(crate::cgroup::Error::NoCgroup2) => Kind::NoCgroup2,
            Error::Cgroup(_) | Error::Limits(_) => Kind::Cgroup,
            Error::Idmap(_) => Kind::Idmap,
            Error::Systemd(_) => Kind::Systemd,
            Error::Network(_) => Kind::Network,
            Error::Storage(crate::storage::Error::NoIdmappedMount { .. }) => Kind::NoIdmappedMounts,
            Error::Storage(_) => Kind::Storage,
            Error::Sys(crate::sys::Error::NotSingleThreaded { .. }) => Kind::Threads,
            Error::Sys(_) => Kind::Namespaces,
            Error::Mounts(_) | Error::Shares(_) => Kind::Mounts,
            Error::Io { .. } | Error::Os { .. } | Error::Lxcfs(_) => Kind::Runtime,
            Error::Child(w) => w.kind,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Config(e) => e.hint(),
            Error::Cgroup(e) => e.hint(),
            Error::Limits(e) => e.hint(),
            Error::Idmap(e) => e.hint(),
            Error::Systemd(e) => e.hint(),
            Error::Network(e) => e.hint(),
            Error::Storage(e) => e.hint(),
            Error::Sys(e) => e.hint(),
            Error::Child(w) => w.hint(),
            Error::Shares(e) => e.hint(),
            Error::Lxcfs(_) => Some(
                "install and start lxcfs (Debian's lxcfs package), or set security.lxcfs = \"auto\" to start without it"
                    .into(),
            ),
            Error::Mounts(_) | Error::Io { .. } | Error::Os { .. } | Error::Nul { .. } => None,
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
    fn typed_failures_keep_kind_and_hint_on_the_wire() {
        let w = Error::Cgroup(crate::cgroup::Error::NoCgroup2).to_wire();
        assert_eq!(w.kind, Kind::NoCgroup2);
        assert!(w.detail.starts_with("failed to find a cgroup2 hierarchy"), "{}", w.detail);
        assert!(w.hint.unwrap().contains("cgroup2"));
        let child = WireError::new(Kind::Init, "failed to execute init /x").with_hint(Some("chmod".into()));
        assert_eq!(Error::Child(child.clone()).to_wire(), child);
        let w = Error::io("write", "/run/x")(io::Error::from_raw_os_error(libc::ENOSPC)).to_wire();
        assert_eq!(w.kind, Kind::Runtime);
        assert!(w.detail.starts_with("failed to write /run/x: "), "{}", w.detail);
    }
}
