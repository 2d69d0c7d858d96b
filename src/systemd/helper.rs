//! Runs a D-Bus exchange in a short-lived child process.
//!
//! zbus starts helper threads (its runtime hands a live connection to one between
//! calls, and runs a few blocking system calls on workers), but the monitor must stay
//! single-threaded: `clone3` with `CLONE_NEWUSER` and `setns` into user and mount
//! namespaces refuse a multi-threaded caller. So the monitor forks, the child does the
//! exchange and writes its result (JSON) to a pipe, then `_exit`s: every thread zbus
//! started dies with it, and the monitor never runs zbus code at all.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::unistd::{ForkResult, Pid};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::bus::BusError;

/// Runs `f` (which returns a message on failure) in a child process and returns its
/// result, or says why the child gave none. Gives up after `timeout`, killing the child.
///
/// Call it from a single-threaded process only (the monitor, the CLI): the child runs
/// ordinary code between `fork` and `_exit`.
pub fn run<T, F>(timeout: Duration, f: F) -> Result<T, BusError>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Result<T, BusError>,
{
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| BusError::from(format!("could not create a pipe: {e}")))?;
    // The callers are single-threaded (checked by `fork_single`), so the child is an
    // exact copy with no lock held by a thread that does not exist in it; it leaves
    // through `exit_now` (_exit), never returning into the caller's frames.
    let child =
        match crate::sys::fork_single("start the D-Bus helper process").map_err(|e| BusError::from(e.to_string()))? {
            ForkResult::Child => {
                drop(read_end);
                let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                    .unwrap_or_else(|_| Err(BusError::from("the D-Bus helper process panicked")));
                let json = serde_json::to_vec(&out).unwrap_or_default();
                let _ = std::fs::File::from(write_end).write_all(&json);
                crate::sys::exit_now(0)
            }
            ForkResult::Parent { child } => child,
        };
    drop(write_end);
    let got = read_until_eof(read_end, timeout);
    if got.is_err() {
        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
    }
    let status = wait(child);
    let bytes = got?;
    if bytes.is_empty() {
        return Err(format!("the D-Bus helper process ended without an answer ({status})").into());
    }
    serde_json::from_slice::<Result<T, BusError>>(&bytes)
        .map_err(|e| BusError::from(format!("the D-Bus helper process gave an unreadable answer: {e}")))?
}

fn read_until_eof(fd: OwnedFd, timeout: Duration) -> Result<Vec<u8>, BusError> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let end = Instant::now() + timeout;
    let mut file = std::fs::File::from(fd);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("the D-Bus call did not finish within {} s", timeout.as_secs()).into());
        }
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("could not wait for the D-Bus helper process: {e}").into()),
        }
        match file.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("could not read the D-Bus helper's answer: {e}").into()),
        }
    }
}

fn wait(child: Pid) -> String {
    use nix::sys::wait::{WaitStatus, waitpid};
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => return format!("exit status {code}"),
            Ok(WaitStatus::Signaled(_, sig, _)) => return format!("killed by {sig}"),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return format!("waitpid failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `body` in a forked child: the test harness is multi-threaded, and `run`
    /// refuses to fork from a multi-threaded process. The child only allocates (glibc's
    /// fork leaves malloc usable), forks again and uses pipes.
    fn single_threaded(body: fn()) {
        // SAFETY: the child runs `body` and leaves through _exit, whatever happens.
        match unsafe { nix::unistd::fork() }.unwrap() {
            ForkResult::Child => {
                let ok = std::panic::catch_unwind(body).is_ok();
                crate::sys::exit_now(if ok { 0 } else { 1 })
            }
            ForkResult::Parent { child } => assert_eq!(wait(child), "exit status 0", "the test failed in the child"),
        }
    }

    #[test]
    fn results_come_back_from_the_child() {
        single_threaded(|| {
            let pid = std::process::id();
            let got: u32 = run(Duration::from_secs(10), || Ok(std::process::id())).unwrap();
            assert_ne!(got, pid, "it ran in another process");
            let err = run::<u32, _>(Duration::from_secs(10), || Err("no bus".into())).unwrap_err();
            assert_eq!(err.message, "no bus");
        });
    }

    #[test]
    fn a_hung_child_is_killed() {
        single_threaded(|| {
            let err = run::<(), _>(Duration::from_millis(200), || {
                std::thread::sleep(Duration::from_secs(30));
                Ok(())
            })
            .unwrap_err();
            assert!(err.message.contains("did not finish"), "{err}");
        });
    }

    #[test]
    fn a_multi_threaded_caller_is_refused() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv());
        let err = run::<u32, _>(Duration::from_secs(10), || Ok(1)).unwrap_err();
        assert!(err.message.contains("threads, and it must run one"), "{err}");
        drop(tx);
        let _ = t.join();
    }
}
