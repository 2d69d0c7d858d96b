//! What state is a container in? Observation reads runtime state and checks the
//! processes it names (pid plus start time), and never changes anything; it reports
//! state left by a killed monitor or a host reboot as `stale`. Reconciliation, under
//! the container's lock, clears such state.
//!
//! State hutch cannot read (a torn write, a newer hutch's format) is `Unknown`: it is
//! reported and left alone, never taken for a stopped container. So is a container
//! still running under an older hutch's runtime layout (`run/NAME`, see
//! crate::base::paths): its monitor holds those paths, so it is not moved; once that
//! older layout's state is stale, reconciliation clears it like any other.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::{Error, Notices, io_err};
use crate::base::fsutil;
use crate::base::paths::Paths;
use crate::base::state::{LastExit, Phase, RuntimeState, StateError};
use crate::config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Stopped,
    Starting,
    Running,
    Frozen,
    Stopping,
    /// Its state cannot be read: see `Observed::unknown`.
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Stopped => "stopped",
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Frozen => "frozen",
            Status::Stopping => "stopping",
            Status::Unknown => "unknown",
        }
    }
    /// Known to be up (`Unknown` is neither up nor stopped).
    pub fn is_up(self) -> bool {
        matches!(self, Status::Starting | Status::Running | Status::Frozen | Status::Stopping)
    }
}

/// Why hutch cannot tell what state a container is in. It leaves such state alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unknown {
    /// `state.json` exists but cannot be read.
    Unreadable { reason: String, hint: Option<String>, dir: PathBuf },
    /// An older hutch started it, with its runtime directory at `run/NAME`, and its
    /// monitor or init still runs.
    OlderLayout { dir: PathBuf, monitor_pid: i32 },
}

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unknown::Unreadable { reason, .. } => write!(f, "unreadable ({reason}); hutch leaves it alone"),
            Unknown::OlderLayout { dir, monitor_pid } => write!(
                f,
                "an older hutch's: that hutch started it and keeps its runtime state in {} (monitor pid \
                 {monitor_pid}); this one leaves it alone",
                dir.display()
            ),
        }
    }
}

impl Unknown {
    pub fn hint(&self, name: &str) -> String {
        match self {
            Unknown::Unreadable { hint: Some(h), .. } => h.clone(),
            Unknown::Unreadable { dir, .. } => format!(
                "if {name} no longer runs (see `ps` for its monitor, `hutch-monitor {name}`), remove {} by hand",
                dir.display()
            ),
            Unknown::OlderLayout { .. } => {
                format!("stop {name} with the hutch that started it; this one then takes over")
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Observed {
    pub status: Status,
    pub state: Option<RuntimeState>,
    pub monitor_alive: bool,
    pub init_alive: bool,
    /// Runtime state exists but describes nothing alive (or another host boot).
    pub stale: bool,
    /// Why the status is `Unknown`.
    pub unknown: Option<Unknown>,
    /// The runtime directory the state was found in, when it is an older hutch's.
    pub legacy: Option<PathBuf>,
}

impl Observed {
    pub fn init_pid(&self) -> Option<i32> {
        if self.init_alive { self.state.as_ref().and_then(|s| s.init).map(|p| p.pid) } else { None }
    }
}

/// The containers that exist, sorted.
pub fn list_names(paths: &Paths) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(paths.containers())
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| crate::base::name::validate(n).is_ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

pub fn observe(paths: &Paths, name: &str) -> Observed {
    let run_dir = paths.runtime(name);
    match RuntimeState::load(&paths.state_file(name)) {
        Ok(Some(state)) => from_state(state),
        Ok(None) => {
            paths.legacy_runtime(name).and_then(|dir| observe_legacy(&dir)).unwrap_or_else(|| stopped(run_dir.exists()))
        }
        Err(e) => unreadable(&run_dir, e),
    }
}

fn stopped(stale: bool) -> Observed {
    Observed {
        status: Status::Stopped,
        state: None,
        monitor_alive: false,
        init_alive: false,
        stale,
        unknown: None,
        legacy: None,
    }
}

/// State that does not parse: whether its monitor still runs is known only from its
/// control socket (a listening monitor accepts; a dead one's socket refuses).
fn unreadable(dir: &Path, e: StateError) -> Observed {
    let sock = dir.join("monitor.sock");
    let monitor_alive = crate::monitor::proto::socket_path(&sock)
        .is_ok_and(|(p, _keep)| std::os::unix::net::UnixStream::connect(p).is_ok());
    Observed {
        status: Status::Unknown,
        monitor_alive,
        unknown: Some(Unknown::Unreadable { reason: e.to_string(), hint: e.hint(), dir: dir.into() }),
        ..stopped(false)
    }
}

/// State an older hutch left at `run/NAME`: stale is cleared as usual, alive is reported.
fn observe_legacy(dir: &Path) -> Option<Observed> {
    let obs = match RuntimeState::load(&dir.join("state.json")) {
        Ok(None) => return None,
        Ok(Some(state)) => from_state(state),
        Err(e) => return Some(unreadable(dir, e)),
    };
    if obs.stale {
        return Some(Observed { legacy: Some(dir.into()), ..obs });
    }
    let monitor_pid = obs.state.as_ref().map_or(0, |s| s.monitor.pid);
    Some(Observed {
        status: Status::Unknown,
        unknown: Some(Unknown::OlderLayout { dir: dir.into(), monitor_pid }),
        legacy: Some(dir.into()),
        ..obs
    })
}

fn from_state(state: RuntimeState) -> Observed {
    if state.is_from_another_boot() {
        return Observed { state: Some(state), ..stopped(true) };
    }
    let init_alive = state.init.is_some_and(|p| p.is_alive());
    let monitor_alive = state.monitor.is_alive();
    let status = if init_alive {
        if state.phase == Phase::Stopping {
            Status::Stopping
        } else if state.cgroup.is_frozen() {
            Status::Frozen
        } else if state.phase == Phase::Starting {
            Status::Starting
        } else {
            Status::Running
        }
    } else if monitor_alive {
        if state.init.is_some() || state.phase == Phase::Stopping { Status::Stopping } else { Status::Starting }
    } else {
        Status::Stopped
    };
    let stale = status == Status::Stopped;
    Observed { status, state: Some(state), monitor_alive, init_alive, stale, unknown: None, legacy: None }
}

/// Observes, and clears stale runtime state. Call with the container's lock held;
/// `config` is the container's (for the network cleanup), when it could be loaded.
/// State that cannot be read is an error, and is left as it is.
pub fn reconcile(paths: &Paths, name: &str, config: Option<&Config>, notices: &mut Notices) -> Result<Observed, Error> {
    let obs = observe(paths, name);
    if let Some(why) = obs.unknown {
        return Err(Error::Unknown { name: name.into(), why });
    }
    if !obs.stale {
        return Ok(obs);
    }
    let run_dir = obs.legacy.clone().unwrap_or_else(|| paths.runtime(name));
    if let Some(state) = &obs.state {
        let from_before = state.is_from_another_boot();
        if state.cgroup.exists() {
            // The monitor is gone and so is init; anything left in the cgroup is an
            // orphan. (After a real host reboot the directories are simply gone.)
            if state.cgroup.is_populated() {
                state.cgroup.kill();
                state.cgroup.wait_empty(Duration::from_secs(5));
            }
            state.cgroup.remove()?;
        }
        // Its veths and published ports, which no monitor cleaned up.
        if let Some(config) = config {
            for p in crate::network::attach::unplug(paths, name, config) {
                notices.push(format!("network cleanup of {name}: {p}"));
            }
        }
        let last = LastExit::load(&paths.last_exit(name));
        if last.is_none_or(|l| l.at_ms < state.started_at_ms) {
            let detail = if from_before {
                "the host rebooted while it was running"
            } else {
                "its monitor and init disappeared without recording an exit"
            };
            let _ = LastExit::new(crate::base::state::How::Lost, detail).save(&paths.last_exit(name));
        }
        notices.push(format!(
            "cleared stale runtime state of {name} ({})",
            if from_before { "left from before the host rebooted" } else { "its monitor had died" }
        ));
    }
    fsutil::remove_tree_atomically(&run_dir).map_err(io_err("remove", &run_dir))?;
    Ok(stopped(false))
}
