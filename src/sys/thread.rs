//! The premise of every fork here, checked: this process runs one thread. Also the
//! error type of the syscall layer.

use std::io;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("failed to {action}: {source}")]
    Call { action: String, source: io::Error },
    #[error("failed to {action}: this process runs {threads} threads, and it must run one")]
    NotSingleThreaded { action: &'static str, threads: usize },
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            // A bug in hutch, not something the user did: say where to look.
            Error::NotSingleThreaded { .. } => {
                Some("this is a bug in hutch (something started a thread before a fork); please report it".into())
            }
            Error::Call { .. } => None,
        }
    }
}

pub(super) fn call(action: impl Into<String>) -> impl FnOnce(nix::errno::Errno) -> Error {
    let action = action.into();
    move |e| Error::Call { action, source: e.into() }
}

/// Counts this process's threads (the `Threads:` line of /proc/self/status). The file
/// is opened once and re-read on each count, so a count still works after `setns`
/// into another mount namespace, whose /proc does not show this process.
pub struct ThreadCounter(std::fs::File);

impl ThreadCounter {
    pub fn open() -> io::Result<ThreadCounter> {
        std::fs::File::open("/proc/self/status").map(ThreadCounter)
    }

    pub fn count(&self) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let mut text = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = self.0.read_at(&mut buf, text.len() as u64)?;
            if n == 0 {
                break;
            }
            text.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&text)
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "/proc/self/status has no Threads: line"))
    }

    /// Checks, right before a fork or clone, the premise of every `unsafe` fork here:
    /// this process has one thread, so the child (a copy of this thread alone) holds
    /// no lock another thread held, and namespace flags such as `CLONE_NEWUSER` work.
    ///
    /// A thread that was just joined may still be counted for a moment (the kernel
    /// wakes the joiner before it has finished the thread's exit), so a count above
    /// one is looked at again for a few milliseconds before it is refused.
    pub fn require_single(&self, action: &'static str) -> Result<(), Error> {
        let counting = |source| Error::Call { action: format!("{action} (counting this process's threads)"), source };
        let mut threads = self.count().map_err(counting)?;
        for _ in 0..20 {
            if threads == 1 {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
            threads = self.count().map_err(counting)?;
        }
        if threads == 1 { Ok(()) } else { Err(Error::NotSingleThreaded { action, threads }) }
    }

    /// `fork(2)` once `require_single` passes.
    pub fn fork(&self, action: &'static str) -> Result<nix::unistd::ForkResult, Error> {
        self.require_single(action)?;
        // SAFETY: this process has exactly one thread (checked just above, and nothing
        // between the check and the fork starts one), so the child is a complete copy
        // of its only thread and may run arbitrary code until it execs or exits.
        unsafe { nix::unistd::fork() }.map_err(call(action))
    }
}

/// `ThreadCounter::require_single` with a counter of its own.
pub fn require_single_thread(action: &'static str) -> Result<(), Error> {
    let counter = ThreadCounter::open()
        .map_err(|source| Error::Call { action: format!("{action} (counting this process's threads)"), source })?;
    counter.require_single(action)
}

/// `fork(2)` after checking that this process is single-threaded; `action` names the
/// fork in errors ("start the exec helper").
pub fn fork_single(action: &'static str) -> Result<nix::unistd::ForkResult, Error> {
    ThreadCounter::open()
        .map_err(|source| Error::Call { action: format!("{action} (counting this process's threads)"), source })?
        .fork(action)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{clone3, exit_now};

    #[test]
    fn forks_refuse_a_multi_threaded_process() {
        // The test harness runs threads of its own: decide in a forked child, which
        // has one thread (it only allocates and reads /proc, which glibc allows).
        // SAFETY: the child runs only the checks below and leaves through _exit.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let alone = require_single_thread("fork alone").is_ok();
                let (tx, rx) = std::sync::mpsc::channel::<()>();
                let t = std::thread::spawn(move || rx.recv());
                let refused = matches!(
                    require_single_thread("fork beside a thread"),
                    Err(Error::NotSingleThreaded { threads: 2, .. })
                );
                let cloned = matches!(clone3(0, None), Err(Error::NotSingleThreaded { .. }));
                let forked = matches!(fork_single("fork"), Err(Error::NotSingleThreaded { .. }));
                drop(tx);
                let _ = t.join();
                let code = if !alone {
                    1
                } else if !refused {
                    2
                } else if !cloned {
                    3
                } else if !forked {
                    4
                } else {
                    0
                };
                exit_now(code)
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0), "see the codes in the child");
            }
        }
        let e = Error::NotSingleThreaded { action: "start the exec helper", threads: 3 };
        assert_eq!(e.to_string(), "failed to start the exec helper: this process runs 3 threads, and it must run one");
    }
}
