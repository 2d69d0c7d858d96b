//! Signal masks and dispositions: the reset before exec and the signalfd of a poll loop.

use super::thread::{Error, call};

/// Unblocks every signal and resets every disposition to the default: ignored
/// signals survive exec, and init or a command must not inherit ours.
pub fn reset_signals() {
    use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, signal, sigprocmask};
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    for sig in Signal::iterator() {
        if sig != Signal::SIGKILL && sig != Signal::SIGSTOP {
            // SAFETY: installing SIG_DFL is always sound; no handler code runs.
            let _ = unsafe { signal(sig, SigHandler::SigDfl) };
        }
    }
}

/// Blocks `signals` for this thread and returns a non-blocking, close-on-exec
/// signalfd that delivers them instead (for a poll loop).
pub fn signalfd(signals: &[nix::sys::signal::Signal]) -> Result<nix::sys::signalfd::SignalFd, Error> {
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    let mut mask = nix::sys::signal::SigSet::empty();
    for s in signals {
        mask.add(*s);
    }
    mask.thread_block().map_err(call("block signals"))?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).map_err(call("create a signalfd"))
}
