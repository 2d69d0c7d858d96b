//! Container lifecycle operations, each under the container's lock: create, start,
//! stop, kill, freeze, destroy, plus observation (what state is a container in?) and
//! reconciliation (clearing what a crash or host reboot left behind).

mod create;
mod customize;
pub mod images;
mod lifecycle;
pub mod limits;
mod observe;
pub mod ports;

pub use create::{Created, Source, create};
pub use lifecycle::{Started, collect_leftovers, destroy, freeze, kill, require_exists, start, stop};
pub use observe::{Observed, Status, Unknown, list_names, observe, reconcile};

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
    WrongState { action: &'static str, name: String, state: String },
    #[error("failed to destroy {name}: it is running")]
    Running { name: String },
    #[error("the state of {name} is {why}")]
    Unknown { name: String, why: Unknown },
    #[error("failed to start {name}: {message}")]
    StartFailed { name: String, message: String },
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
    Image(#[from] crate::image::Error),
    #[error(transparent)]
    Distro(#[from] crate::distro::Error),
    #[error(transparent)]
    Network(#[from] crate::network::Error),
    #[error(transparent)]
    Port(#[from] ports::PortError),
    #[error(transparent)]
    Limit(#[from] limits::LimitError),
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
            Error::StartFailed { name, .. } => {
                Some(format!("see `hutch logs {name}` (the console) and logs/monitor.log in the container's directory"))
            }
            Error::WrongState { action: "publish", name, .. } => {
                Some(format!("stop it first with `hutch stop {name}`"))
            }
            Error::WrongState { name, state, .. } if state == "frozen" => {
                Some(format!("thaw it with `hutch unfreeze {name}`"))
            }
            Error::Unknown { name, why } => Some(why.hint(name)),
            Error::Config(e) => e.hint(),
            Error::Rootfs(e) => e.hint(),
            Error::Cgroup(e) => e.hint(),
            Error::Idmap(e) => e.hint(),
            Error::Storage(e) => e.hint(),
            Error::Image(e) => e.hint(),
            Error::Distro(e) => e.hint(),
            Error::Network(e) => e.hint(),
            Error::Port(e) => e.hint(),
            Error::Limit(e) => e.hint(),
            _ => None,
        }
    }
}

pub(crate) fn io_err(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { action, path, source }
}

/// Notices for the user (things hutch did on its own that they should know about).
pub type Notices = Vec<String>;
