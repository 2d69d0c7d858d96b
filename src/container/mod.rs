//! Container lifecycle operations, each under the container's lock: create, start,
//! stop, kill, freeze, destroy, plus observation (what state is a container in?) and
//! reconciliation (clearing what a crash or host reboot left behind).

pub mod autostart;
mod backup;
mod copy;
mod create;
mod customize;
pub mod devbox;
pub mod doctor;
pub mod images;
mod lifecycle;
pub mod limits;
pub mod mounts;
mod observe;
pub mod ports;
mod rename;
pub mod snapshots;

pub use backup::{Exported, export, import};
pub use copy::{From as CopyFrom, copy};
pub use create::{Created, Source, create};
pub use lifecycle::{
    Started, collect_leftovers, destroy, freeze, kill, remove_ephemeral, require_exists, start, stop, sweep_ephemeral,
};
pub use observe::{Observed, Status, Unknown, list_names, observe, reconcile};
pub use rename::rename;

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Name(#[from] crate::base::name::NameError),
    #[error("failed to find container {name}: it does not exist")]
    NotFound { name: String },
    #[error("failed to create container {name}: it already exists")]
    Exists { name: String },
    #[error("failed to start {name}: it is already running")]
    AlreadyRunning { name: String },
    #[error("failed to {action} {name}: it is not running")]
    NotRunning { action: &'static str, name: String },
    #[error("failed to {action} {name}: it is {state}")]
    WrongState { action: &'static str, name: String, state: Conflict },
    #[error("failed to destroy {name}: it is running")]
    Running { name: String },
    #[error("the state of {name} is {why}")]
    Unknown { name: String, why: Unknown },
    #[error("failed to start {name}: {message}")]
    StartFailed { name: String, message: String },
    #[error("failed to find the monitor's binary: {} does not exist", path.display())]
    MonitorMissing { path: std::path::PathBuf },
    /// The monitor reported a typed failure of the start (with its own hint).
    #[error("failed to start {name}: {source}")]
    Start { name: String, source: crate::runtime::wire::WireError },
    /// The monitor's control socket answered with a failure, or in another protocol.
    #[error("failed to {action} {name}: {source}")]
    Monitor { action: &'static str, name: String, source: crate::monitor::proto::Error },
    #[error("failed to find snapshot {snap} of {name}: it does not exist")]
    SnapshotNotFound { name: String, snap: String },
    #[error("failed to create snapshot {snap} of {name}: it already exists")]
    SnapshotExists { name: String, snap: String },
    #[error("failed to use {snap:?} as a snapshot name: {message}")]
    BadSnapshotName { snap: String, message: String },
    #[error("failed to restore {name} to {snap}: it is running")]
    RestoreRunning { name: String, snap: String },
    #[error("failed to {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("failed to {action} {name}: {message}")]
    Other { action: &'static str, name: String, message: String },
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    #[error(transparent)]
    Rootfs(#[from] crate::rootfs::Error),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroup::Error),
    #[error(transparent)]
    Idmap(#[from] crate::idmap::Error),
    #[error(transparent)]
    Storage(#[from] crate::storage::Error),
    #[error(transparent)]
    Archive(#[from] crate::storage::archive::Error),
    #[error(transparent)]
    Image(#[from] crate::image::Error),
    #[error(transparent)]
    Distro(#[from] crate::distro::Error),
    #[error(transparent)]
    Network(#[from] crate::network::Error),
    #[error(transparent)]
    Port(#[from] ports::PortError),
    #[error(transparent)]
    Limit(#[from] limits::LimitError),
    #[error(transparent)]
    Mount(#[from] mounts::MountError),
    #[error(transparent)]
    Devbox(#[from] devbox::DevboxError),
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::NotFound { .. } => Some("see `hutch list` for the containers that exist".into()),
            Error::Exists { name } => {
                Some(format!("choose another name, or remove the old one with `hutch destroy {name}`"))
            }
            Error::AlreadyRunning { name } => Some(format!("use `hutch restart {name}` to restart it")),
            Error::NotRunning { name, .. } => Some(format!("start it with `hutch start {name}`")),
            Error::Running { name } => {
                Some(format!("stop it first with `hutch stop {name}`, or use `hutch destroy --force {name}`"))
            }
            Error::StartFailed { name, .. } => Some(start_logs_hint(name)),
            Error::SnapshotNotFound { name, .. } => {
                Some(format!("see `hutch snapshot list {name}` for the snapshots that exist"))
            }
            Error::SnapshotExists { name, snap } => {
                Some(format!("choose another name, or remove the old one with `hutch snapshot delete {name} {snap}`"))
            }
            Error::RestoreRunning { name, snap } => Some(format!(
                "stop it first, or use `hutch snapshot restore {name} {snap} --stop` (stops, restores, starts again)"
            )),
            Error::MonitorMissing { .. } => {
                Some("install hutch-monitor in the same directory as hutch (`cargo build` makes both)".into())
            }
            Error::Start { name, source } => Some(source.hint().unwrap_or_else(|| start_logs_hint(name))),
            Error::Monitor { source, .. } => source.hint(),
            Error::WrongState { name, state: Conflict::AlreadyFrozen, .. } => {
                Some(format!("thaw it with `hutch unfreeze {name}`"))
            }
            Error::Unknown { name, why } => Some(why.hint(name)),
            Error::WrongState { name, state: Conflict::Up(_), .. } => {
                Some(format!("stop it first with `hutch stop {name}`"))
            }
            Error::WrongState { name, state: Conflict::NotFrozen, .. } => {
                Some(format!("freeze it with `hutch freeze {name}`"))
            }
            Error::WrongState { name, state: Conflict::StillStopping, .. } => {
                Some(format!("wait for it to stop, or use `hutch stop --force {name}`"))
            }
            Error::Config(e) => e.hint(),
            Error::Rootfs(e) => e.hint(),
            Error::Cgroup(e) => e.hint(),
            Error::Idmap(e) => e.hint(),
            Error::Storage(e) => e.hint(),
            Error::Archive(e) => e.hint(),
            Error::Image(e) => e.hint(),
            Error::Distro(e) => e.hint(),
            Error::Network(e) => e.hint(),
            Error::Port(e) => e.hint(),
            Error::Limit(e) => e.hint(),
            Error::Mount(e) => e.hint(),
            Error::Devbox(e) => e.hint(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod hint_tests {
    use super::*;

    #[test]
    fn a_failed_start_keeps_the_monitors_hint() {
        use crate::runtime::wire::{Kind, WireError};
        let source = WireError::new(Kind::NoCgroup2, "failed to find cgroup2").with_hint(Some("mount it".into()));
        let e = Error::Start { name: "web".into(), source };
        assert_eq!(e.to_string(), "failed to start web: failed to find cgroup2");
        assert_eq!(e.hint().as_deref(), Some("mount it"));
        let e = Error::Start { name: "web".into(), source: WireError::new(Kind::Runtime, "x") };
        assert!(e.hint().unwrap().contains("hutch logs web"));
    }

    #[test]
    fn a_frozen_container_is_told_to_thaw() {
        let e = Error::WrongState { action: "freeze", name: "web".into(), state: Conflict::AlreadyFrozen };
        assert_eq!(e.to_string(), "failed to freeze web: it is already frozen");
        assert_eq!(e.hint().as_deref(), Some("thaw it with `hutch unfreeze web`"));
        let e = Error::WrongState { action: "unfreeze", name: "web".into(), state: Conflict::NotFrozen };
        assert!(e.hint().unwrap().contains("hutch freeze web"));
    }
}

fn start_logs_hint(name: &str) -> String {
    format!("see `hutch logs {name}` (the console) and logs/monitor.log in the container's directory")
}

/// Why a container is in the wrong state for an operation (a type, so that each case
/// gets its hint: matching the words of the message never did).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    StillStopping,
    AlreadyFrozen,
    NotFrozen,
    /// Up in this state, where the action needs it stopped (`publish`).
    Up(Status),
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conflict::StillStopping => "still stopping",
            Conflict::AlreadyFrozen => "already frozen",
            Conflict::NotFrozen => "not frozen",
            Conflict::Up(status) => status.as_str(),
        })
    }
}

pub(crate) fn io_err(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { action, path, source }
}

/// Notices for the user (things hutch did on its own that they should know about).
pub type Notices = Vec<String>;
