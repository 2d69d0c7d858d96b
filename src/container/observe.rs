//! What state is a container in? Observation reads runtime state and checks the
//! processes it names (pid plus start time), and never changes anything; it reports
//! state left by a killed monitor or a host reboot as `stale`. Reconciliation, under
//! the container's lock, clears such state.

use std::time::Duration;

use serde::Serialize;

use super::{Error, Notices, io_err};
use crate::base::fsutil;
use crate::base::paths::Paths;
use crate::base::state::{LastExit, Phase, RuntimeState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Stopped,
    Starting,
    Running,
    Frozen,
    Stopping,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Stopped => "stopped",
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Frozen => "frozen",
            Status::Stopping => "stopping",
        }
    }
    pub fn is_up(self) -> bool {
        !matches!(self, Status::Stopped)
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
    let stopped =
        |stale| Observed { status: Status::Stopped, state: None, monitor_alive: false, init_alive: false, stale };
    let state = match RuntimeState::load(&paths.state_file(name)) {
        Ok(Some(s)) => s,
        Ok(None) => return stopped(run_dir.exists()),
        Err(_) => return stopped(true),
    };
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
    Observed { status, state: Some(state), monitor_alive, init_alive, stale }
}

/// Observes, and clears stale runtime state. Call with the container's lock held.
pub fn reconcile(paths: &Paths, name: &str, notices: &mut Notices) -> Result<Observed, Error> {
    let obs = observe(paths, name);
    if !obs.stale {
        return Ok(obs);
    }
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
        if let Ok(config) = crate::config::Config::load(&paths.config(name)) {
            for p in crate::network::attach::unplug(paths, name, &config) {
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
    fsutil::remove_tree_atomically(&paths.runtime(name)).map_err(io_err("remove", paths.runtime(name)))?;
    Ok(Observed { status: Status::Stopped, state: None, monitor_alive: false, init_alive: false, stale: false })
}
