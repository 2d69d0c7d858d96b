//! The restart policy (`restart = "no" | "on-failure" | "always"`): whether an end of
//! init brings the container back, after how long, and when to give up. Pure, so every
//! case is a unit test.
//!
//! Only an unexpected end counts: never a stop by hutch, a poweroff or halt from inside
//! (a reboot from inside boots again whatever the policy). `on-failure` restarts when
//! init exits non-zero or is killed by a signal it was not sent by hutch's stop;
//! `always` also when it exits 0. The delay doubles from 1 s to at most 30 s while the
//! container keeps failing; a run of at least `STABLE` starts the count afresh. Five
//! failures in a row (boots that fail, or runs shorter than `STABLE`) leave it stopped.

use std::time::Duration;

use super::exit::Outcome;
use crate::config::Restart;

/// A run this long is not a failure to boot.
pub const STABLE: Duration = Duration::from_secs(60);
/// Failures in a row after which the container is left stopped.
pub const GIVE_UP_AFTER: u32 = 5;
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(30);

/// Failures so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tracker {
    pub in_a_row: u32,
    pub total: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not a restart case: the container stays stopped.
    Stay,
    Restart {
        delay: Duration,
    },
    /// Too many failures in a row: stopped, with this said why.
    GiveUp {
        detail: String,
    },
}

/// What to do about an end of init (`Outcome`, of a run of `ran` after its start).
pub fn decide(policy: Restart, end: &Outcome, ran: Duration, t: &mut Tracker) -> Verdict {
    let unexpected = match end {
        Outcome::Exited(0) => policy == Restart::Always,
        Outcome::Exited(_) | Outcome::Signaled(_) | Outcome::Other(_) => policy != Restart::No,
        Outcome::Reboot | Outcome::Poweroff { .. } | Outcome::Killed { .. } => false,
    };
    if !unexpected {
        return Verdict::Stay;
    }
    failure(ran, t, &end.detail())
}

/// A boot under the restart policy that failed before init ran (`why`).
pub fn boot_failed(t: &mut Tracker, why: &str) -> Verdict {
    failure(Duration::ZERO, t, why)
}

fn failure(ran: Duration, t: &mut Tracker, detail: &str) -> Verdict {
    if ran >= STABLE {
        t.in_a_row = 0;
    }
    t.in_a_row += 1;
    t.total += 1;
    if t.in_a_row >= GIVE_UP_AFTER {
        return Verdict::GiveUp {
            detail: format!(
                "{detail}; left stopped after {GIVE_UP_AFTER} failures in a row (each within {} s of its start)",
                STABLE.as_secs()
            ),
        };
    }
    let delay = FIRST_DELAY.saturating_mul(1 << (t.in_a_row - 1).min(16)).min(MAX_DELAY);
    Verdict::Restart { delay }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Duration = Duration::from_secs(2);

    #[test]
    fn only_unexpected_ends_restart() {
        let kill = Outcome::Signaled(libc::SIGKILL);
        for (policy, end, restarts) in [
            (Restart::No, kill.clone(), false),
            (Restart::OnFailure, kill.clone(), true),
            (Restart::Always, kill.clone(), true),
            (Restart::OnFailure, Outcome::Exited(1), true),
            (Restart::OnFailure, Outcome::Exited(0), false),
            (Restart::Always, Outcome::Exited(0), true),
            (Restart::Always, Outcome::Poweroff { by_stop: false }, false),
            (Restart::Always, Outcome::Poweroff { by_stop: true }, false),
            (Restart::Always, Outcome::Killed { forced: true, timeout_s: 10 }, false),
            (Restart::Always, Outcome::Killed { forced: false, timeout_s: 10 }, false),
        ] {
            let v = decide(policy, &end, SHORT, &mut Tracker::default());
            assert_eq!(matches!(v, Verdict::Restart { .. }), restarts, "{policy:?} {end:?}: {v:?}");
        }
    }

    #[test]
    fn the_delay_doubles_to_a_cap_and_five_failures_in_a_row_give_up() {
        let mut t = Tracker::default();
        let end = Outcome::Exited(3);
        let mut delays = Vec::new();
        loop {
            match decide(Restart::OnFailure, &end, SHORT, &mut t) {
                Verdict::Restart { delay } => delays.push(delay.as_secs()),
                Verdict::GiveUp { detail } => {
                    assert!(detail.contains("init exited with status 3") && detail.contains("5 failures"), "{detail}");
                    break;
                }
                Verdict::Stay => panic!("a failure under on-failure"),
            }
        }
        assert_eq!(delays, [1, 2, 4, 8]);
        assert_eq!(t.total, 5);
        let mut t = Tracker { in_a_row: 12, total: 12 };
        t.in_a_row = 3;
        assert!(matches!(boot_failed(&mut t, "x"), Verdict::Restart { delay } if delay == Duration::from_secs(8)));
        let mut t = Tracker { in_a_row: 4, total: 4 };
        assert!(matches!(boot_failed(&mut t, "no rootfs"), Verdict::GiveUp { .. }));
        assert_eq!(FIRST_DELAY.saturating_mul(1 << 10).min(MAX_DELAY), MAX_DELAY);
    }

    #[test]
    fn a_long_run_starts_the_count_afresh() {
        let mut t = Tracker { in_a_row: 4, total: 9 };
        let v = decide(Restart::Always, &Outcome::Signaled(libc::SIGSEGV), STABLE, &mut t);
        assert_eq!(v, Verdict::Restart { delay: FIRST_DELAY });
        assert_eq!(t, Tracker { in_a_row: 1, total: 10 });
    }
}
