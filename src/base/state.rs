//! Runtime state (`run/NAME/state.json`, written by the monitor) and the persistent
//! record of how the last run ended (`containers/NAME/last-exit.json`).
//!
//! Processes are identified by pid *and* start time, so a recycled pid is never
//! mistaken for the container's init; the host boot id recognises state left over
//! from before a host reboot.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::cgroup::ContainerCgroup;
use crate::idmap::IdMap;

/// The version of `state.json` this hutch writes and reads. A long-lived monitor may
/// be an older (or newer) binary than the CLI reading its state: a version this hutch
/// does not know is refused, never guessed at.
pub const VERSION: u32 = 1;

/// Why a state file could not be read. Such state is reported, never deleted.
#[derive(Debug, Error)]
pub enum StateError {
    #[error("failed to read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("failed to parse {path}: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("{path} is of state version {found}, and this hutch knows only version {VERSION}")]
    Version { path: PathBuf, found: u32 },
}

impl StateError {
    pub fn hint(&self) -> Option<String> {
        match self {
            StateError::Version { found, .. } if *found > VERSION => {
                Some("it was written by a newer hutch: use that version to manage this container".into())
            }
            _ => None,
        }
    }
}

/// Just the version, read before the rest so that a newer layout is recognised as such.
#[derive(Deserialize)]
struct Versioned {
    version: u32,
}

/// A process, pinned by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proc {
    pub pid: i32,
    pub start_time: u64,
}

impl Proc {
    pub fn of(pid: i32) -> io::Result<Proc> {
        Ok(Proc { pid, start_time: crate::sys::process_start_time(pid)? })
    }

    /// Still the same process, and running (an exited, unreaped zombie is not)?
    pub fn is_alive(&self) -> bool {
        crate::sys::live_start_time(self.pid) == Some(self.start_time)
    }

    /// A pidfd for the process, checked to still be the same process after opening
    /// (so signals sent through it cannot hit a recycled pid).
    pub fn pidfd(&self) -> Option<OwnedFd> {
        let fd = crate::sys::pidfd_open(self.pid).ok()?;
        self.is_alive().then_some(fd)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Starting,
    Running,
    Stopping,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeState {
    pub version: u32,
    pub boot_id: String,
    pub phase: Phase,
    pub monitor: Proc,
    /// Init of the current boot, once it has been executed.
    pub init: Option<Proc>,
    /// When the current boot began (ms since the epoch).
    pub started_at_ms: u64,
    /// When init reported ready.
    pub ready_at_ms: Option<u64>,
    /// Boots by this monitor (more than 1 after in-guest reboots).
    pub boots: u32,
    pub privileged: bool,
    pub idmap: Option<IdMap>,
    pub cgroup: ContainerCgroup,
    pub halt_signal: i32,
    pub stop_timeout: u64,
    /// When each stage of the current boot's start happened (absent from older monitors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<crate::monitor::timeline::Timeline>,
    /// Restarts by the restart policy under this monitor.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restarts: u32,
    /// The end that caused the latest restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restart: Option<LastExit>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl RuntimeState {
    /// The state at `path`; `None` if there is none.
    pub fn load(path: &Path) -> Result<Option<RuntimeState>, StateError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Read { path: path.into(), source }),
        };
        Self::parse(&bytes).map(Some).map_err(|e| match e {
            Unparsed::Json(source) => StateError::Parse { path: path.into(), source },
            Unparsed::Version(found) => StateError::Version { path: path.into(), found },
        })
    }

    fn parse(bytes: &[u8]) -> Result<RuntimeState, Unparsed> {
        let Versioned { version } = serde_json::from_slice(bytes).map_err(Unparsed::Json)?;
        if version != VERSION {
            return Err(Unparsed::Version(version));
        }
        serde_json::from_slice(bytes).map_err(Unparsed::Json)
    }

    pub fn save(&self, path: &Path) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(self).expect("state always serialises");
        crate::base::fsutil::atomic_replace(path, &json, 0o600)
    }

    /// Written before the current host boot?
    pub fn is_from_another_boot(&self) -> bool {
        self.boot_id != crate::sys::boot_id()
    }
}

enum Unparsed {
    Json(serde_json::Error),
    Version(u32),
}

/// The kind of end a run came to (stored as the lowercase word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum How {
    /// Init halted on its halt signal: `hutch stop`, or a poweroff from inside.
    Poweroff,
    /// hutch killed every process: `stop --force`, or the stop timeout ran out.
    Killed,
    /// Init exited with a status.
    Exited,
    /// Init was killed by a signal hutch did not send.
    Signaled,
    /// The start failed.
    Failed,
    /// The monitor vanished and the container was found gone.
    Lost,
}

impl How {
    pub fn as_str(self) -> &'static str {
        match self {
            How::Poweroff => "poweroff",
            How::Killed => "killed",
            How::Exited => "exited",
            How::Signaled => "signaled",
            How::Failed => "failed",
            How::Lost => "lost",
        }
    }
}

/// How the last run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastExit {
    pub at_ms: u64,
    pub how: How,
    /// Human-readable description.
    pub detail: String,
}

impl LastExit {
    pub fn new(how: How, detail: impl Into<String>) -> LastExit {
        LastExit { at_ms: crate::base::fsutil::now_ms(), how, detail: detail.into() }
    }

    pub fn load(path: &Path) -> Option<LastExit> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    pub fn save(&self, path: &Path) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(self).expect("record always serialises");
        crate::base::fsutil::atomic_write(path, &json, 0o644)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_exit_keeps_its_words() {
        let e = LastExit { at_ms: 1, how: How::Killed, detail: "killed by hutch stop --force".into() };
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains(r#""how":"killed""#), "{json}");
        let back: LastExit = serde_json::from_str(r#"{"at_ms":2,"how":"poweroff","detail":"x"}"#).unwrap();
        assert_eq!(back.how, How::Poweroff);
        assert_eq!(How::Lost.as_str(), "lost");
    }

    #[test]
    fn proc_identity_detects_reuse() {
        let me = Proc::of(std::process::id() as i32).unwrap();
        assert!(me.is_alive());
        assert!(me.pidfd().is_some());
        let recycled = Proc { start_time: me.start_time + 1, ..me };
        assert!(!recycled.is_alive());
        assert!(recycled.pidfd().is_none());
    }

    #[test]
    fn state_round_trips_and_knows_the_boot() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        assert!(RuntimeState::load(&p).unwrap().is_none());
        let s = RuntimeState {
            version: VERSION,
            boot_id: crate::sys::boot_id(),
            phase: Phase::Running,
            monitor: Proc { pid: 10, start_time: 5 },
            init: Some(Proc { pid: 11, start_time: 6 }),
            started_at_ms: 1,
            ready_at_ms: Some(2),
            boots: 1,
            privileged: false,
            idmap: Some(IdMap::range(100000, 100000, 65536)),
            cgroup: ContainerCgroup { unified: "/sys/fs/cgroup/unified/hutch/c".into(), v1: vec![] },
            halt_signal: 37,
            stop_timeout: 30,
            timeline: Some(crate::monitor::timeline::Timeline {
                stages: vec![crate::monitor::timeline::Mark {
                    stage: crate::monitor::timeline::Stage::Cloned,
                    at_us: 7,
                }],
            }),
            restarts: 2,
            last_restart: Some(LastExit::new(How::Signaled, "init was killed by SIGKILL")),
        };
        s.save(&p).unwrap();
        let back = RuntimeState::load(&p).unwrap().unwrap();
        assert_eq!(back, s);
        assert!(!back.is_from_another_boot());
        let old = RuntimeState { boot_id: "00000000-0000-0000-0000-000000000000".into(), ..s };
        assert!(old.is_from_another_boot());
    }

    #[test]
    fn torn_or_newer_state_is_an_error_never_absent() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        std::fs::write(&p, b"{\"version\": 1, \"boot_id\": \"x").unwrap();
        assert!(matches!(RuntimeState::load(&p), Err(StateError::Parse { .. })));
        std::fs::write(&p, b"{\"version\": 7, \"whatever\": true}").unwrap();
        let e = RuntimeState::load(&p).unwrap_err();
        assert!(matches!(e, StateError::Version { found: 7, .. }), "{e}");
        assert!(e.hint().unwrap().contains("newer hutch"));
        std::fs::write(&p, b"{}").unwrap();
        assert!(matches!(RuntimeState::load(&p), Err(StateError::Parse { .. })));
    }
}
