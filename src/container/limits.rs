//! `config set`: one value changed under the container's lock, the whole file
//! validated first; a `limits.*` key of a running container is written to its cgroups
//! at once (and saved only if the kernel took it), any other key takes effect at the
//! next start.

use thiserror::Error;

use super::{Error as ContainerError, Status, io_err};
use crate::base::lock::Lock;
use crate::base::paths::Paths;
use crate::config;

#[derive(Debug, Error)]
pub enum LimitError {
    #[error("failed to change {key} of {name}: {source}")]
    Apply { name: String, key: String, source: crate::cgroup::limits::Error },
}

impl LimitError {
    pub fn hint(&self) -> Option<String> {
        match self {
            LimitError::Apply { source, .. } => source.hint(),
        }
    }
}

/// When a changed value takes effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Written to the running container's cgroups, with the kernel's warnings.
    Live { warnings: Vec<String> },
    /// At the next start (the container is up, or its state unknown).
    NextStart,
    /// Saved; the container is stopped.
    Saved,
}

/// Sets `key` to `value` in `name`'s config.
pub fn set(paths: &Paths, name: &str, key: &str, value: &str) -> Result<Effect, ContainerError> {
    super::require_exists(paths, name)?;
    let path = paths.config(name);
    let _lock = Lock::acquire(&paths.lock(name)).map_err(io_err("lock", paths.lock(name)))?;
    let text = std::fs::read_to_string(&path).map_err(|source| config::Error::Read { path: path.clone(), source })?;
    let (new_text, new_config) = config::set(&path, &text, key, value)?;
    let obs = super::observe(paths, name);
    let live = obs.state.as_ref().filter(|_| key.starts_with("limits.") && obs.status.is_up());
    let effect = match live {
        // Applied first, saved only if the kernel took it.
        Some(state) => {
            let layout = crate::cgroup::Layout::detect()?;
            let warnings = crate::cgroup::limits::enforce(&new_config.limits, &layout, &state.cgroup)
                .map_err(|source| LimitError::Apply { name: name.into(), key: key.into(), source })?;
            Effect::Live { warnings }
        }
        None if obs.status == Status::Stopped => Effect::Saved,
        // Read by each `shell` and `exec` session.
        None if key.starts_with("devbox.") => Effect::Saved,
        None => Effect::NextStart,
    };
    crate::base::fsutil::atomic_write(&path, new_text.as_bytes(), 0o644)
        .map_err(|source| config::Error::Write { path, source })?;
    Ok(effect)
}
