//! How a container ended, decided from plain facts: how init's process ended (from
//! `waitpid`) and what hutch was doing to it at the time. Pure, so every case is a
//! unit test; the monitor and a CLI stopping a container without its monitor both use it.

use crate::base::signal;
use crate::base::state::{How, LastExit};

/// How init's process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitEnd {
    Exited(i32),
    Signaled(i32),
    /// Any other wait status (described).
    Other(String),
}

/// What hutch was doing when init ended: stopping it, and whether it had escalated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopping {
    /// Every process was killed (forced, or the halt timeout ran out).
    pub killed: bool,
    /// `stop --force` asked for the kill.
    pub forced: bool,
    pub timeout_s: u64,
}

/// The verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An in-guest reboot: boot again.
    Reboot,
    /// Init halted: by `hutch stop`, or powered off from inside.
    Poweroff {
        by_stop: bool,
    },
    /// hutch killed every process.
    Killed {
        forced: bool,
        timeout_s: u64,
    },
    Exited(i32),
    /// Killed by signal N, not by hutch.
    Signaled(i32),
    Other(String),
}

/// Classifies an end. In a pid namespace, the kernel ends init with SIGINT when it
/// powers off and SIGHUP when it reboots (reboot(2)); a SIGHUP while hutch stops the
/// container is taken for the stop, not a reboot.
pub fn classify(end: &InitEnd, stop: Option<&Stopping>) -> Outcome {
    match (end, stop) {
        (InitEnd::Signaled(libc::SIGHUP), None) => Outcome::Reboot,
        (InitEnd::Signaled(libc::SIGINT), s) => Outcome::Poweroff { by_stop: s.is_some() },
        (InitEnd::Signaled(libc::SIGKILL), Some(s)) if s.killed => {
            Outcome::Killed { forced: s.forced, timeout_s: s.timeout_s }
        }
        (InitEnd::Exited(code), _) => Outcome::Exited(*code),
        (InitEnd::Signaled(sig), _) => Outcome::Signaled(*sig),
        (InitEnd::Other(what), _) => Outcome::Other(what.clone()),
    }
}

impl Outcome {
    pub fn how(&self) -> How {
        match self {
            Outcome::Reboot | Outcome::Exited(_) | Outcome::Other(_) => How::Exited,
            Outcome::Poweroff { .. } => How::Poweroff,
            Outcome::Killed { .. } => How::Killed,
            Outcome::Signaled(_) => How::Signaled,
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Outcome::Reboot => "rebooted from inside".into(),
            Outcome::Poweroff { by_stop: true } => "shut down by hutch stop".into(),
            Outcome::Poweroff { by_stop: false } => "powered off from inside".into(),
            Outcome::Killed { forced: true, .. } => "killed by hutch stop --force".into(),
            Outcome::Killed { forced: false, timeout_s } => format!("killed after the {timeout_s} s stop timeout"),
            Outcome::Exited(code) => format!("init exited with status {code}"),
            Outcome::Signaled(sig) => format!("init was killed by {}", signal::name(*sig)),
            Outcome::Other(what) => format!("init ended: {what}"),
        }
    }

    /// The record of a final end (a reboot is not one).
    pub fn last_exit(&self) -> Option<LastExit> {
        (*self != Outcome::Reboot).then(|| LastExit::new(self.how(), self.detail()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STOP: Stopping = Stopping { killed: false, forced: false, timeout_s: 10 };

    fn last(end: InitEnd, stop: Option<&Stopping>) -> (How, String) {
        let e = classify(&end, stop).last_exit().expect("a final end");
        (e.how, e.detail)
    }

    #[test]
    fn reboot_only_when_nobody_stops_it() {
        assert_eq!(classify(&InitEnd::Signaled(libc::SIGHUP), None), Outcome::Reboot);
        assert_eq!(classify(&InitEnd::Signaled(libc::SIGHUP), Some(&STOP)), Outcome::Signaled(libc::SIGHUP));
        assert!(Outcome::Reboot.last_exit().is_none());
    }

    #[test]
    fn poweroff_from_inside_or_by_stop() {
        assert_eq!(last(InitEnd::Signaled(libc::SIGINT), None), (How::Poweroff, "powered off from inside".into()));
        assert_eq!(
            last(InitEnd::Signaled(libc::SIGINT), Some(&STOP)),
            (How::Poweroff, "shut down by hutch stop".into())
        );
    }

    #[test]
    fn kills_say_why() {
        let timed_out = Stopping { killed: true, ..STOP };
        assert_eq!(
            last(InitEnd::Signaled(libc::SIGKILL), Some(&timed_out)),
            (How::Killed, "killed after the 10 s stop timeout".into())
        );
        let forced = Stopping { killed: true, forced: true, timeout_s: 0 };
        assert_eq!(
            last(InitEnd::Signaled(libc::SIGKILL), Some(&forced)),
            (How::Killed, "killed by hutch stop --force".into())
        );
        // A SIGKILL hutch did not send (the OOM killer, another user) is not hutch's kill.
        assert_eq!(classify(&InitEnd::Signaled(libc::SIGKILL), Some(&STOP)), Outcome::Signaled(libc::SIGKILL));
        assert_eq!(last(InitEnd::Signaled(libc::SIGKILL), None), (How::Signaled, "init was killed by SIGKILL".into()));
    }

    #[test]
    fn exits_and_other_ends() {
        assert_eq!(last(InitEnd::Exited(3), None), (How::Exited, "init exited with status 3".into()));
        assert_eq!(last(InitEnd::Exited(0), Some(&STOP)), (How::Exited, "init exited with status 0".into()));
        assert_eq!(last(InitEnd::Other("stopped".into()), None), (How::Exited, "init ended: stopped".into()));
    }
}
