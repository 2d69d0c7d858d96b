//! The stop state machine: a halt signal to init, a deadline, and escalation to
//! SIGKILL of every process in the container; stop requests join a stop under way
//! (a shorter timeout brings the deadline forward, `--force` kills at once).

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::{Monitor, exit};
use crate::base::state::Phase;

pub(super) struct Stop {
    pub(super) deadline: Option<Instant>,
    pub(super) timeout_s: u64,
    pub(super) killed: bool,
    pub(super) forced: bool,
    pub(super) waiters: Vec<UnixStream>,
}

impl Stop {
    /// What the exit classifier needs to know about this stop.
    pub(super) fn facts(&self) -> exit::Stopping {
        exit::Stopping { killed: self.killed, forced: self.forced, timeout_s: self.timeout_s }
    }
}

impl Monitor {
    pub(super) fn on_signals(&mut self) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            let sig = info.ssi_signo as i32;
            if sig == libc::SIGTERM || sig == libc::SIGINT {
                tracing::info!("received {}; stopping the container", crate::base::signal::name(sig));
                let timeout = self.config.init.stop_timeout;
                self.begin_stop(timeout, false, None);
            }
        }
    }

    pub(super) fn begin_stop(&mut self, timeout_s: u64, force: bool, waiter: Option<UnixStream>) {
        let Some(init) = &self.init else {
            // Between boots, waiting to restart: the stop is the end of the wait.
            if self.backing_off {
                let stop = self.stop.get_or_insert(Stop {
                    deadline: None,
                    timeout_s,
                    killed: false,
                    forced: force,
                    waiters: vec![],
                });
                stop.waiters.extend(waiter);
            }
            return;
        };
        let stop =
            self.stop.get_or_insert(Stop { deadline: None, timeout_s, killed: false, forced: false, waiters: vec![] });
        stop.waiters.extend(waiter);
        if force && !stop.killed {
            tracing::info!("forced stop: killing every process in the container");
            stop.killed = true;
            stop.forced = true;
            stop.deadline = None;
            self.cgroup.kill();
        } else if !stop.killed {
            let new_deadline = Instant::now() + Duration::from_secs(timeout_s);
            match stop.deadline {
                None => {
                    let sig = self.config.halt_signal();
                    tracing::info!(
                        "sending {} to init; killing in {timeout_s} s if it has not stopped",
                        crate::base::signal::name(sig)
                    );
                    if let Err(e) = crate::sys::pidfd_send_signal(init.pidfd.as_fd(), sig) {
                        tracing::warn!("failed to signal init: {e}");
                    }
                    stop.deadline = Some(new_deadline);
                    stop.timeout_s = timeout_s;
                }
                Some(d) if new_deadline < d => {
                    stop.deadline = Some(new_deadline);
                    stop.timeout_s = timeout_s;
                }
                Some(_) => {}
            }
        }
        if self.state.phase != Phase::Stopping {
            self.state.phase = Phase::Stopping;
            self.save_state();
        }
    }

    pub(super) fn check_deadline(&mut self) {
        let Some(stop) = &mut self.stop else { return };
        if stop.deadline.is_some_and(|d| Instant::now() >= d) {
            tracing::warn!("init did not stop within {} s; killing every process in the container", stop.timeout_s);
            stop.deadline = None;
            stop.killed = true;
            self.cgroup.kill();
        }
    }
}
