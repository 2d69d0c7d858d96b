//! The start timeline: when each stage of a container start happened, from the
//! `hutch start` that asked for it to init's readiness, on one host-wide clock
//! (`CLOCK_BOOTTIME`, in microseconds). The monitor saves it in the runtime state and
//! `hutch info` shows it; the benchmark reads hutch's own share of a boot from it.
//!
//! Stamps come from three processes. The CLI stamps [`Stage::CliInvoked`] and hands
//! it to the monitor in [`CLI_ENV`]. The monitor stamps its own stages into a
//! process-wide timeline. The container's first process cannot talk back once it has
//! exec'd, and its handshake with the monitor is not the place for this: it stamps a
//! page shared with the monitor (`MAP_SHARED`, made before the clone), which the
//! monitor reads once init runs. Every hook is one call, so the start path stays
//! readable without them.

use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::sys::{self, SharedStamps};

/// The environment variable carrying the CLI's stamp to the monitor.
pub const CLI_ENV: &str = "HUTCH_CLI_INVOKED_US";

/// The stages of a start, in the order they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// `hutch start` began (CLI side).
    CliInvoked,
    /// The monitor process began (`hutch-monitor`).
    MonitorStarted,
    /// clone3 returned the container's first process (monitor side).
    Cloned,
    /// Its uid and gid maps are written (unprivileged containers only).
    IdMapsWritten,
    /// The mount plan is applied inside the root filesystem (child side).
    MountsDone,
    /// pivot_root into the root filesystem is done (child side).
    PivotRoot,
    /// The child calls execve for init (child side: the last instruction of hutch's).
    InitExec,
    /// Init reported ready (READY=1, or at exec for `ready = "exec"`).
    Ready,
}

impl Stage {
    pub const ALL: [Stage; 8] = [
        Stage::CliInvoked,
        Stage::MonitorStarted,
        Stage::Cloned,
        Stage::IdMapsWritten,
        Stage::MountsDone,
        Stage::PivotRoot,
        Stage::InitExec,
        Stage::Ready,
    ];

    /// The stages the child stamps, each in its own slot of the shared page.
    const CHILD: [Stage; 3] = [Stage::MountsDone, Stage::PivotRoot, Stage::InitExec];

    pub fn label(self) -> &'static str {
        match self {
            Stage::CliInvoked => "cli",
            Stage::MonitorStarted => "monitor",
            Stage::Cloned => "cloned",
            Stage::IdMapsWritten => "id maps",
            Stage::MountsDone => "mounts",
            Stage::PivotRoot => "pivot_root",
            Stage::InitExec => "exec",
            Stage::Ready => "ready",
        }
    }
}

/// One stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub stage: Stage,
    /// `CLOCK_BOOTTIME` in microseconds.
    pub at_us: u64,
}

/// The stamps of one boot, in stage order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    pub stages: Vec<Mark>,
}

impl Timeline {
    pub fn set(&mut self, stage: Stage, at_us: u64) {
        self.stages.retain(|m| m.stage != stage);
        self.stages.push(Mark { stage, at_us });
        self.stages.sort_by_key(|m| m.stage);
    }

    pub fn get(&self, stage: Stage) -> Option<u64> {
        self.stages.iter().find(|m| m.stage == stage).map(|m| m.at_us)
    }

    /// hutch's own share of the boot: from the CLI (or, after an in-guest reboot, the
    /// clone) to init's exec, in microseconds.
    pub fn hutch_us(&self) -> Option<u64> {
        let from = self.get(Stage::CliInvoked).or_else(|| self.get(Stage::Cloned))?;
        Some(self.get(Stage::InitExec)?.saturating_sub(from))
    }

    /// One line for people: each stage's offset from the first, in milliseconds.
    pub fn describe(&self) -> String {
        let Some(first) = self.stages.first().map(|m| m.at_us) else { return String::new() };
        let ms = |us: u64| us as f64 / 1000.0;
        let parts: Vec<String> = self
            .stages
            .iter()
            .map(|m| format!("{} +{:.1}", m.stage.label(), ms(m.at_us.saturating_sub(first))))
            .collect();
        let share = self.hutch_us().map_or(String::new(), |h| format!(" (hutch's share {:.1} ms)", ms(h)));
        format!("{} ms{share}", parts.join(", "))
    }
}

/// This process's timeline (the CLI's, or the monitor's current boot).
static CURRENT: Mutex<Timeline> = Mutex::new(Timeline { stages: Vec::new() });
/// The page the container's first process stamps; made once, reused by every boot.
static CHILD_PAGE: OnceLock<Option<SharedStamps>> = OnceLock::new();

fn with<R>(f: impl FnOnce(&mut Timeline) -> R) -> R {
    let mut t = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut t)
}

/// Stamps `stage` now in this process's timeline.
pub fn mark(stage: Stage) {
    let now = sys::boottime_us();
    with(|t| t.set(stage, now));
}

/// The environment handing the CLI's stamp to the monitor (empty without one).
pub fn handoff() -> Option<(&'static str, String)> {
    with(|t| t.get(Stage::CliInvoked)).map(|us| (CLI_ENV, us.to_string()))
}

/// At the top of the monitor: takes the CLI's stamp from the environment.
pub fn monitor_started() {
    mark(Stage::MonitorStarted);
    if let Some(us) = std::env::var(CLI_ENV).ok().and_then(|v| v.parse().ok()) {
        with(|t| t.set(Stage::CliInvoked, us));
    }
}

/// At the start of a boot after the first (an in-guest reboot): starts afresh.
pub fn new_boot(boots_before: u32) {
    if boots_before > 0 {
        with(|t| t.stages.clear());
    }
}

/// Right before the clone: an empty shared page for the child to stamp.
pub fn arm_child() {
    if let Some(page) = CHILD_PAGE.get_or_init(|| SharedStamps::new().ok()) {
        (0..Stage::CHILD.len()).for_each(|i| page.clear(i));
    }
}

/// In the child: stamps `stage` on the shared page (nothing without one).
pub fn child_mark(stage: Stage) {
    let slot = Stage::CHILD.iter().position(|s| *s == stage);
    if let (Some(Some(page)), Some(i)) = (CHILD_PAGE.get(), slot) {
        page.stamp(i);
    }
}

/// Once init runs: copies the child's stamps into the timeline.
pub fn collect_child() {
    let Some(Some(page)) = CHILD_PAGE.get() else { return };
    for (i, stage) in Stage::CHILD.iter().enumerate() {
        if let Some(us) = page.get(i) {
            with(|t| t.set(*stage, us));
        }
    }
}

/// The timeline so far (for the runtime state).
pub fn current() -> Option<Timeline> {
    with(|t| (!t.stages.is_empty()).then(|| t.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_keep_their_order_and_share_is_cli_to_exec() {
        let mut t = Timeline::default();
        t.set(Stage::InitExec, 9_000);
        t.set(Stage::CliInvoked, 1_000);
        t.set(Stage::Cloned, 4_000);
        t.set(Stage::Cloned, 5_000);
        let order: Vec<Stage> = t.stages.iter().map(|m| m.stage).collect();
        assert_eq!(order, [Stage::CliInvoked, Stage::Cloned, Stage::InitExec]);
        assert_eq!(t.get(Stage::Cloned), Some(5_000));
        assert_eq!(t.hutch_us(), Some(8_000));
        assert_eq!(t.describe(), "cli +0.0, cloned +4.0, exec +8.0 ms (hutch's share 8.0 ms)");
    }

    #[test]
    fn after_a_reboot_the_share_starts_at_the_clone() {
        let mut t = Timeline::default();
        t.set(Stage::Cloned, 2_000);
        t.set(Stage::InitExec, 3_500);
        assert_eq!(t.hutch_us(), Some(1_500));
        assert_eq!(Timeline::default().hutch_us(), None);
    }

    #[test]
    fn json_names_stages_in_snake_case() {
        let mut t = Timeline::default();
        t.set(Stage::IdMapsWritten, 7);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#"{"stages":[{"stage":"id_maps_written","at_us":7}]}"#);
        assert_eq!(serde_json::from_str::<Timeline>(&json).unwrap(), t);
    }

    #[test]
    fn the_child_page_carries_stamps_into_the_timeline() {
        arm_child();
        child_mark(Stage::PivotRoot);
        child_mark(Stage::Ready); // not a child stage: ignored
        collect_child();
        let t = current().unwrap();
        assert!(t.get(Stage::PivotRoot).is_some());
        assert_eq!(t.get(Stage::Ready), None);
    }
}
