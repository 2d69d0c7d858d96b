//! Shared folders (`hutch mount add|list|rm`): a container's `[[mounts]]`, attached or
//! detached at once in its mount namespace while it runs. The live change is made
//! first and the config written after it, so a change that fails leaves both as they
//! were; a stopped container gets its mounts at the next start.
//!
//! The live attach runs in a forked helper: it locks the bind's flags as the monitor
//! does at start (crate::runtime::mounts), joins init's mount namespace through a pidfd
//! (and its user namespace, as container root), resolves the target inside the
//! container's root and moves the bind there.

use std::os::fd::{AsFd, OwnedFd};

use thiserror::Error;

use super::{Error as ContainerError, Status, io_err};
use crate::base::lock::Lock;
use crate::base::paths::Paths;
use crate::base::state::RuntimeState;
use crate::config::{Config, Mount};
use crate::runtime::channel;
use crate::runtime::mounts::{self, Refusals};
use crate::runtime::wire::{Kind, WireError};

#[derive(Debug, Error)]
pub enum MountError {
    /// `what` is "SOURCE at PATH with NAME"; `why` is "KEY: MESSAGE".
    #[error("failed to share {what}: {why}")]
    Invalid { what: String, why: String },
    #[error("failed to remove the mount at {path} from {name}: it has no mount there")]
    NotMounted { name: String, path: String },
    #[error(transparent)]
    Share(#[from] mounts::Error),
    /// The helper that changes the running container's mounts failed.
    #[error("{0}")]
    Live(WireError),
}

impl MountError {
    pub fn hint(&self) -> Option<String> {
        match self {
            MountError::NotMounted { name, .. } => Some(format!("see `hutch mount list {name}`")),
            MountError::Invalid { .. } => Some("see docs/config.md, \"Shared folders\"".into()),
            MountError::Share(e) => e.hint(),
            MountError::Live(w) => w.hint(),
        }
    }
}

/// What a change did, for the CLI to say.
#[derive(Debug, Default)]
pub struct Changed {
    /// The running container's mounts changed too (not only its config).
    pub live: bool,
    pub notices: Vec<String>,
}

/// Adds `mount` to `name`'s config, attaching it at once if the container runs.
pub fn add(paths: &Paths, name: &str, mount: Mount) -> Result<Changed, ContainerError> {
    super::require_exists(paths, name)?;
    let _lock = Lock::acquire(&paths.lock(name)).map_err(io_err("lock", paths.lock(name)))?;
    let mut config = Config::load(&paths.config(name))?;
    config.mounts.push(mount.clone());
    config.validate().map_err(|(key, message)| MountError::Invalid {
        what: format!("{} at {} with {name}", mount.source.display(), mount.path),
        why: format!("{key}: {message}"),
    })?;
    let refusals = Refusals::new(&paths.state, &paths.run);
    let running = running_state(paths, name)?;
    let mut changed = Changed::default();
    match &running {
        Some(state) => changed = attach_live(paths, name, state, &mount, &refusals)?,
        // Checked now too, so a mount that could never work is not saved.
        None => match mounts::prepare_one(&mount, &refusals) {
            Ok(_) => {}
            Err(mounts::Error::Missing { .. }) if mount.optional => {}
            Err(e) => return Err(MountError::from(e).into()),
        },
    }
    if let Err(e) = config.save(&paths.config(name)) {
        if let Some(state) = &running {
            let _ = remove_live(name, state, &mount.target());
        }
        return Err(e.into());
    }
    Ok(changed)
}

/// Removes the mount at `path` from `name`'s config, detaching it at once if it runs.
pub fn remove(paths: &Paths, name: &str, path: &str) -> Result<Changed, ContainerError> {
    super::require_exists(paths, name)?;
    let _lock = Lock::acquire(&paths.lock(name)).map_err(io_err("lock", paths.lock(name)))?;
    let mut config = Config::load(&paths.config(name))?;
    let target = crate::config::mounts::normalize(path);
    let before = config.mounts.len();
    config.mounts.retain(|m| m.target() != target);
    if config.mounts.len() == before {
        return Err(MountError::NotMounted { name: name.into(), path: target }.into());
    }
    let mut changed = Changed::default();
    if let Some(state) = running_state(paths, name)? {
        remove_live(name, &state, &target)?;
        changed.live = true;
    }
    config.save(&paths.config(name))?;
    Ok(changed)
}

/// The shared folders of `name`, in config order.
pub fn list(paths: &Paths, name: &str) -> Result<Vec<Mount>, ContainerError> {
    super::require_exists(paths, name)?;
    Ok(Config::load(&paths.config(name))?.mounts)
}

/// What a start will say of its optional mounts whose source is missing (the monitor
/// skips them, and logs it).
pub(crate) fn skipped_at_start(config: &Config) -> Vec<String> {
    let missing = |m: &&Mount| m.optional && std::fs::symlink_metadata(&m.source).is_err();
    config
        .mounts
        .iter()
        .filter(missing)
        .map(|m| format!("skipping the optional mount at {}: {} does not exist", m.target(), m.source.display()))
        .collect()
}

/// The runtime state when the container's init runs; an unreadable state is refused.
fn running_state(paths: &Paths, name: &str) -> Result<Option<RuntimeState>, ContainerError> {
    let obs = super::observe(paths, name);
    if obs.status == Status::Unknown {
        let why = obs.unknown.expect("an unknown status says why");
        return Err(ContainerError::Unknown { name: name.into(), why });
    }
    Ok(if obs.init_alive { obs.state } else { None })
}

fn attach_live(
    paths: &Paths,
    name: &str,
    state: &RuntimeState,
    mount: &Mount,
    refusals: &Refusals,
) -> Result<Changed, ContainerError> {
    let prepared = match mounts::prepare_one(mount, refusals) {
        Err(mounts::Error::Missing { source_path, .. }) if mount.optional => {
            let notice = format!(
                "{} does not exist: the optional mount at {} is saved, and attached by a start that finds it",
                source_path.display(),
                mount.target()
            );
            return Ok(Changed { live: false, notices: vec![notice] });
        }
        other => other.map_err(MountError::from)?,
    };
    attach_prepared(paths, name, state, prepared)?;
    Ok(Changed { live: true, notices: Vec::new() })
}

/// Binds a dev box user's SSH agent socket at `target` in the running container,
/// replacing what an earlier session bound there. Nothing is saved in the config.
pub fn forward_socket(
    paths: &Paths,
    name: &str,
    socket: &std::path::Path,
    owner: u32,
    target: &str,
) -> Result<(), ContainerError> {
    let _lock = Lock::acquire(&paths.lock(name)).map_err(io_err("lock", paths.lock(name)))?;
    let state = running_state(paths, name)?.ok_or_else(|| not_running(name))?;
    let mount = Mount { shift: false, create: Some(crate::config::mounts::Create::File), ..Mount::new(socket, target) };
    let prepared =
        mounts::prepare_socket(&mount, &Refusals::new(&paths.state, &paths.run), owner).map_err(MountError::from)?;
    remove_live(name, &state, target)?;
    attach_prepared(paths, name, &state, prepared)
}

fn attach_prepared(
    paths: &Paths,
    name: &str,
    state: &RuntimeState,
    prepared: mounts::Prepared,
) -> Result<(), ContainerError> {
    let init = state.init.as_ref().ok_or_else(|| not_running(name))?;
    let pidfd = init.pidfd().ok_or_else(|| not_running(name))?;
    let userns = if state.privileged {
        None
    } else {
        let ns = std::fs::File::open(format!("/proc/{}/ns/user", init.pid))
            .map_err(io_err("open the user namespace of", name.to_string()))?;
        // The pidfd still names a live init, so the namespace opened is its own.
        crate::sys::pidfd_send_signal(pidfd.as_fd(), 0).map_err(|_| not_running(name))?;
        Some(OwnedFd::from(ns))
    };
    mounts::set_flags(&prepared, userns.as_ref().map(|f| f.as_fd())).map_err(MountError::from)?;
    let scratch = paths.runtime(name);
    in_helper(name, "attach a shared folder", || {
        let tree = match &userns {
            Some(ns) => mounts::lock_flags(std::slice::from_ref(&prepared), ns.as_fd(), &scratch)
                .map_err(|source| mounts::Error::Lock { source })?
                .remove(0),
            None => prepared.tree.try_clone().map_err(|source| mounts::Error::Lock { source })?,
        };
        let root = enter(&pidfd, false, userns.is_some())?;
        mounts::attach(root.as_fd(), &prepared.target, prepared.create, prepared.dir, tree.as_fd())
    })
}

fn remove_live(name: &str, state: &RuntimeState, target: &str) -> Result<(), ContainerError> {
    let init = state.init.as_ref().ok_or_else(|| not_running(name))?;
    let pidfd = init.pidfd().ok_or_else(|| not_running(name))?;
    in_helper(name, "detach a shared folder", || {
        let root = enter(&pidfd, !state.privileged, !state.privileged)?;
        match mounts::detach(root.as_fd(), target) {
            // EINVAL, not a mount point: already detached inside (or an optional source
            // that was missing at start). ENOENT: its target is gone, and the mount too.
            Err(mounts::Error::Target { source, .. })
                if matches!(source.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) =>
            {
                Ok(())
            }
            other => other,
        }
    })
}

fn not_running(name: &str) -> ContainerError {
    ContainerError::NotRunning { action: "change the mounts of", name: name.into() }
}

/// Joins init's mount namespace (and its user namespace when `join_userns`; a
/// helper that locked flags is in it already), becomes container root when
/// `unprivileged`, and returns the container's root directory.
fn enter(pidfd: &OwnedFd, join_userns: bool, unprivileged: bool) -> Result<OwnedFd, mounts::Error> {
    let mut flags = nix::sched::CloneFlags::CLONE_NEWNS;
    if join_userns {
        flags |= nix::sched::CloneFlags::CLONE_NEWUSER;
    }
    crate::sys::join_container(pidfd.as_fd(), flags, unprivileged)?;
    let flags = rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC;
    rustix::fs::open("/", flags, rustix::fs::Mode::empty())
        .map_err(|e| mounts::Error::Join { action: "open the container's root", source: e.into() })
}

/// Runs `work` in a forked, non-dumpable helper that reports on a socket; the
/// helper's error arrives typed (kind, message, hint).
fn in_helper(
    name: &str,
    action: &'static str,
    work: impl FnOnce() -> Result<(), mounts::Error>,
) -> Result<(), ContainerError> {
    let other = |message: String| ContainerError::Other { action: "change the mounts of", name: name.into(), message };
    let (ours, theirs) = channel::pair().map_err(|e| other(format!("failed to create a socketpair: {e}")))?;
    match crate::sys::fork_single(action).map_err(|e| other(e.to_string()))? {
        nix::unistd::ForkResult::Child => {
            drop(ours);
            let _ = crate::sys::set_non_dumpable();
            let msg = match work() {
                Ok(()) => b"OK".to_vec(),
                Err(e) => WireError::new(Kind::Mounts, e.to_string()).with_hint(e.hint()).to_json(),
            };
            let sent = channel::send(theirs.as_fd(), &msg, None);
            crate::sys::exit_now(i32::from(sent.is_err()))
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(theirs);
            let got = channel::recv(ours.as_fd());
            let _ = nix::sys::wait::waitpid(child, None);
            match got {
                Ok(Some((data, _))) if data == b"OK" => Ok(()),
                Ok(Some((data, _))) => Err(MountError::Live(WireError::from_json(&data)).into()),
                Ok(None) => Err(other(format!("the helper that would {action} exited without an answer"))),
                Err(e) => Err(other(format!("failed to read the helper's answer: {e}"))),
            }
        }
    }
}
