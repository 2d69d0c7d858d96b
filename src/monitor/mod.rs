//! The per-container monitor: a small process that outlives the `hutch start` that
//! spawned it (like LXC's `[lxc monitor]`). It launches init, holds the console,
//! serves control requests, reaps init, boots the container again after an in-guest
//! reboot, and cleans up (cgroup, runtime files) when the container ends.
//!
//! It is single-threaded and runs one `poll` loop. If it is killed, the container
//! keeps running: the runtime state names init, and the CLI can stop it directly.
//!
//! Its parts: `setup` (before the first boot), this file (boot, the poll loop,
//! reaping, cleanup), `stop` (the stop state machine), `control` (requests on the
//! control socket, readiness), `exit` (the pure classifier of how init ended),
//! `launch` (clone to exec of init), `console`, and `proto` (the versioned wire
//! format); failures are `error::Error`, sent to the CLI as a `WireError`.

pub mod console;
mod control;
pub mod error;
pub mod exit;
pub mod launch;
pub mod proto;
mod restart;
mod setup;
mod stop;
pub mod timeline;

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

use crate::base::fsutil;
use crate::base::paths::Paths;
use crate::base::state::{How, LastExit, Phase, RuntimeState};
use crate::cgroup::{ContainerCgroup, Layout};
use crate::config::{Config, Ready};
use crate::idmap::IdMap;
use crate::runtime::child::ChildSpec;
use crate::runtime::wire::WireError;
use crate::runtime::{plan, policy};
use console::Console;
pub use error::Error;
use launch::Launched;
use proto::{Event, Response};
use stop::Stop;

/// `hutch-monitor --state DIR --run DIR --cgroup-parent NAME CONTAINER`, as spawned
/// by `start` (see `container::lifecycle::spawn_monitor`), with its status pipe on fd 3.
pub fn entry(args: &[std::ffi::OsString]) -> u8 {
    crate::base::log::init(None, crate::base::log::Sink::Monitor);
    let mut it = args.iter();
    let (mut state, mut run, mut parent, mut name) = (None, None, None, None);
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--state") => state = it.next().map(std::path::PathBuf::from),
            Some("--run") => run = it.next().map(std::path::PathBuf::from),
            Some("--cgroup-parent") => parent = it.next().and_then(|s| s.to_str()).map(str::to_string),
            _ => name = a.to_str().map(str::to_string),
        }
    }
    let (Some(state), Some(run), Some(cgroup_parent), Some(name)) = (state, run, parent, name) else {
        eprintln!("hutch-monitor: error: the monitor is started by `hutch start`, not by hand");
        return 2;
    };
    // SAFETY: fd 3 is the status pipe the spawning CLI set up with dup2; nothing else
    // in this process owns it.
    let status = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(3) };
    let _ = rustix::io::fcntl_setfd(&status, rustix::io::FdFlags::CLOEXEC);
    main(Paths { state, run, cgroup_parent }, name, Some(status)) as u8
}

/// The monitor proper. `status` is the pipe to the spawning CLI.
pub fn main(paths: Paths, name: String, status: Option<OwnedFd>) -> i32 {
    timeline::monitor_started();
    // SAFETY: ignoring SIGPIPE installs no handler code; a vanished client must not
    // kill the monitor.
    unsafe {
        let _ = nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigIgn);
    }
    let _ = std::env::set_current_dir("/");
    launch::hold_start_lock();
    let status = status.map(File::from);
    tracing::info!("monitor {} starting for {name}", std::process::id());
    let set_up = launch::private_mount_namespace().map_err(Error::from).and_then(|()| Monitor::setup(&paths, &name));
    let mut m = match set_up {
        Ok(m) => m,
        Err(e) => {
            let error = e.to_wire();
            log_failure("setup failed", &error);
            fail_early(&paths, &name, status, error);
            return 1;
        }
    };
    m.status = status;
    m.run()
}

fn log_failure(what: &str, e: &WireError) {
    match &e.hint {
        Some(h) => tracing::warn!("{what}: {e} (hint: {h})"),
        None => tracing::warn!("{what}: {e}"),
    }
}

/// Reports a failure that happened before the monitor was fully set up.
/// Cleans up first, so that when `hutch start` reports the failure nothing is left.
fn fail_early(paths: &Paths, name: &str, status: Option<File>, error: WireError) {
    let _ = LastExit::new(How::Failed, &error.detail).save(&paths.last_exit(name));
    let _ = fsutil::remove_tree_atomically(&paths.runtime(name));
    if let Some(mut s) = status {
        let _ = proto::write_line(&mut s, &Event::Failed { error });
    }
}

enum Ended {
    Reboot,
    Final(LastExit, exit::Outcome),
}

struct Monitor {
    paths: Paths,
    name: String,
    config: Config,
    layout: Layout,
    cgroup: ContainerCgroup,
    /// The delegated systemd unit holding the container, on systemd hosts.
    systemd: Option<crate::systemd::Placement>,
    /// Registered with systemd-machined (this boot).
    machine_registered: bool,
    idmap: Option<IdMap>,
    console: Console,
    control: UnixListener,
    notify: UnixDatagram,
    signals: SignalFd,
    status: Option<File>,
    state: RuntimeState,
    init: Option<Launched>,
    stop: Option<Stop>,
    boot_began: Instant,
    /// Failures under the restart policy.
    failures: restart::Tracker,
    /// Waiting to restart (between boots, stop requests end the wait).
    backing_off: bool,
}

impl Monitor {
    fn run(&mut self) -> i32 {
        loop {
            if let Err(e) = self.boot() {
                let error = e.to_wire();
                log_failure("boot failed", &error);
                // Clean up before reporting: when `hutch start` says it failed,
                // nothing of the attempt is left.
                self.cleanup_cgroup();
                // A boot the restart policy made tries again (the first one is
                // reported to `hutch start`).
                if self.state.boots > 1 && self.config.restart != crate::config::Restart::No {
                    match restart::boot_failed(&mut self.failures, &error.detail) {
                        restart::Verdict::Restart { delay } => {
                            let why = LastExit::new(How::Failed, error.detail.clone());
                            if self.back_off(why, delay) {
                                continue;
                            }
                            self.finish(LastExit::new(How::Failed, "stopped by hutch while waiting to restart"));
                            return 0;
                        }
                        restart::Verdict::GiveUp { detail } => {
                            self.finish(LastExit::new(How::Failed, detail));
                            return 1;
                        }
                        restart::Verdict::Stay => {}
                    }
                }
                self.finish(LastExit::new(How::Failed, error.detail.clone()));
                self.event(Event::Failed { error });
                return 1;
            }
            let ended = self.wait_for_end();
            self.init = None;
            self.cleanup_cgroup();
            match ended {
                Ended::Reboot => {
                    tracing::info!("init rebooted the container; booting again");
                    self.reload_config();
                }
                Ended::Final(exit, outcome) => {
                    tracing::info!("container ended: {}", exit.detail);
                    // The policy as it is now (`config set restart` while it ran).
                    self.reload_config();
                    let ran = self.boot_began.elapsed();
                    let verdict = match self.stop {
                        Some(_) => restart::Verdict::Stay,
                        None => restart::decide(self.config.restart, &outcome, ran, &mut self.failures),
                    };
                    match verdict {
                        restart::Verdict::Stay => self.finish(exit),
                        restart::Verdict::GiveUp { detail } => self.finish(LastExit::new(exit.how, detail)),
                        restart::Verdict::Restart { delay } => {
                            if self.back_off(exit, delay) {
                                continue;
                            }
                            self.finish(LastExit::new(How::Poweroff, "stopped by hutch while waiting to restart"));
                        }
                    }
                    return 0;
                }
            }
        }
    }

    /// Picks up configuration changes made since the last boot.
    fn reload_config(&mut self) {
        match Config::load(&self.paths.config(&self.name)) {
            Ok(c) => self.config = c,
            Err(e) => tracing::warn!("keeping the previous configuration: {e}"),
        }
    }

    /// Records a restart for `why` and waits `delay`, answering requests meanwhile;
    /// `false` when a stop request (or SIGTERM) ended the wait: no restart then.
    fn back_off(&mut self, why: LastExit, delay: Duration) -> bool {
        tracing::warn!("{}; restarting in {} s (restart policy)", why.detail, delay.as_secs());
        self.state.restarts += 1;
        self.state.last_restart = Some(why);
        self.state.phase = Phase::Starting;
        self.state.init = None;
        self.state.ready_at_ms = None;
        self.save_state();
        self.backing_off = true;
        let until = Instant::now() + delay;
        while self.stop.is_none() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let mut fds = [
                PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.control.as_fd(), PollFlags::POLLIN),
            ];
            let _ = poll(&mut fds, PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX));
            let (sig, control) = (fds[0].revents(), fds[1].revents());
            if control.is_some_and(|r| !r.is_empty()) {
                self.on_control();
            }
            if sig.is_some_and(|r| !r.is_empty()) {
                self.on_signals();
            }
        }
        self.backing_off = false;
        self.stop.is_none()
    }

    fn save_state(&mut self) {
        self.state.timeline = timeline::current();
        if let Err(e) = self.state.save(&self.paths.state_file(&self.name)) {
            tracing::error!("failed to write the runtime state: {e}");
        }
    }

    fn event(&mut self, ev: Event) {
        let done = matches!(ev, Event::Ready { .. } | Event::Failed { .. });
        if matches!(ev, Event::Started { .. } | Event::Failed { .. }) {
            launch::release_start_lock();
        }
        if let Some(s) = &mut self.status {
            if proto::write_line(s, &ev).is_err() {
                self.status = None; // the CLI went away; the container goes on
            }
        }
        if done {
            self.status = None;
        }
    }

    fn boot(&mut self) -> Result<(), Error> {
        self.boot_began = Instant::now();
        timeline::new_boot(self.state.boots);
        self.state.phase = Phase::Starting;
        self.state.started_at_ms = fsutil::now_ms();
        self.state.ready_at_ms = None;
        self.state.init = None;
        self.state.boots += 1;
        // The configuration may have changed since the last boot (an in-guest reboot
        // re-reads it): a CLI stopping the container without us must use the new one.
        self.state.halt_signal = self.config.halt_signal();
        self.state.stop_timeout = self.config.init.stop_timeout;
        self.save_state();

        let share = self.paths.host_share(&self.name);
        fsutil::atomic_replace(
            &share.join("boot_id"),
            format!("{}\n", uuid(&crate::sys::random_hex128())).as_bytes(),
            0o444,
        )
        .map_err(Error::io("write the container's boot id to", share.join("boot_id")))?;
        self.cgroup.create(&self.layout, self.idmap.map(|m| (m.uid, m.gid)))?;
        // Limits before anything runs in the cgroup.
        for w in crate::cgroup::limits::enforce(&self.config.limits, &self.layout, &self.cgroup)? {
            tracing::warn!("limits: {w}");
        }

        let spec = self.child_spec()?;
        let plug = |pid: i32| {
            // Ports again too: a reboot from inside went through cleanup.
            crate::network::attach::plug(&self.paths, &self.name, &self.config, pid)
                .and_then(|_| crate::network::attach::apply_ports(&self.paths, &self.name, &self.config))
                .map_err(Error::from)
        };
        let launched = launch::launch(&spec, self.idmap, &self.cgroup, &plug)?;
        tracing::info!("init {} running (pid {})", self.config.init.command.join(" "), launched.init.pid);
        let pid = launched.init.pid;
        self.register_machine(pid);
        self.state.init = Some(launched.init);
        self.init = Some(launched);
        // An init that does not notify is ready now: record that before anyone is
        // told it started, so no one sees it "starting" after `start` returned.
        let exec_ready = self.config.init.ready == Ready::Exec;
        if exec_ready {
            self.record_ready();
        }
        self.save_state();
        self.event(Event::Started { init_pid: pid });
        if exec_ready {
            self.announce_ready();
        }
        Ok(())
    }

    fn child_spec(&self) -> Result<ChildSpec, Error> {
        let container_dir = self.paths.container(&self.name);
        let rootfs = self.config.rootfs_path(&container_dir);
        let cstr = |s: &str, what: &'static str| CString::new(s).map_err(|_| Error::Nul { what });
        let argv = self.config.init.command.iter().map(|a| cstr(a, "init.command")).collect::<Result<Vec<_>, _>>()?;
        let mut env = vec![format!("container={}", policy::CONTAINER_ENV), format!("PATH={}", policy::INIT_PATH)];
        if self.config.init.ready == Ready::Notify {
            env.push(format!("NOTIFY_SOCKET={}", policy::NOTIFY_SOCKET));
        }
        env.extend(self.config.env.iter().map(|(k, v)| format!("{k}={v}")));
        let env = env.iter().map(|e| cstr(e, "env")).collect::<Result<Vec<_>, _>>()?;
        let lxcfs = self.lxcfs()?;
        let steps = plan::build(&plan::Inputs {
            lxcfs,
            console: Some(self.console.slave_path.clone()),
            host_share: self.paths.host_share(&self.name),
            nesting: self.config.security.nesting,
        });
        Ok(ChildSpec {
            layers: self.config.layers(&self.paths, &container_dir),
            scratch: self.paths.runtime(&self.name),
            nics: (0..self.config.nics.len())
                .map(|i| {
                    (crate::network::attach::peer_name(&self.paths, &self.name, i), self.config.nics[i].name.clone())
                })
                .collect(),
            rootfs,
            steps,
            hostname: self.config.hostname.clone().unwrap_or_else(|| self.name.clone()),
            argv,
            env,
            privileged: self.idmap.is_none(),
            mounts: self.config.mounts.clone(),
            state_roots: [self.paths.state.clone(), self.paths.run.clone()],
        })
    }

    /// LXCFS's root when its files go in this boot (`security.lxcfs`).
    fn lxcfs(&self) -> Result<Option<std::path::PathBuf>, Error> {
        use crate::runtime::lxcfs::{self, Decision};
        match lxcfs::decide_for(&self.paths, &self.config.security) {
            Decision::Use(root) => Ok(Some(root)),
            Decision::Without(notice) => {
                if let Some(n) = notice {
                    tracing::warn!("{n}");
                }
                Ok(None)
            }
            Decision::Refuse(why) => Err(Error::Lxcfs(why)),
        }
    }

    /// Init said READY=1.
    fn mark_ready(&mut self) {
        if self.state.ready_at_ms.is_some() {
            return;
        }
        self.record_ready();
        self.save_state();
        self.announce_ready();
    }

    fn record_ready(&mut self) {
        timeline::mark(timeline::Stage::Ready);
        self.state.ready_at_ms = Some(fsutil::now_ms());
        if self.state.phase == Phase::Starting {
            self.state.phase = Phase::Running;
        }
    }

    fn announce_ready(&mut self) {
        let boot_ms = self.boot_began.elapsed().as_millis() as u64;
        tracing::info!("container ready after {boot_ms} ms");
        self.event(Event::Ready { boot_ms });
    }

    /// The poll loop, until init has exited.
    fn wait_for_end(&mut self) -> Ended {
        loop {
            let timeout = match self.stop.as_ref().and_then(|s| s.deadline) {
                Some(d) => {
                    PollTimeout::try_from(d.saturating_duration_since(Instant::now())).unwrap_or(PollTimeout::MAX)
                }
                None => PollTimeout::NONE,
            };
            let init_fd = self.init.as_ref().map(|l| l.pidfd.as_fd());
            let mut fds = vec![
                PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.control.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.notify.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.console.master.as_fd(), PollFlags::POLLIN),
            ];
            if let Some(fd) = init_fd {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
            let first_client = fds.len();
            for c in &self.console.clients {
                fds.push(PollFd::new(c.stream.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    tracing::error!("poll failed: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
            let ready = |i: usize| fds[i].revents().is_some_and(|r| !r.is_empty());
            let sig_ready = ready(0);
            let control_ready = ready(1);
            let notify_ready = ready(2);
            let console_ready = ready(3);
            let clients_ready: Vec<usize> =
                (first_client..fds.len()).filter(|&i| ready(i)).map(|i| i - first_client).collect();
            drop(fds);

            // Clients first: `pump_output` drops clients it cannot write to, which
            // would shift the indices polled above.
            for i in clients_ready.into_iter().rev() {
                if !self.console.pump_client(i) {
                    self.console.clients.remove(i);
                }
            }
            if console_ready {
                self.console.pump_output();
            }
            if notify_ready {
                self.on_notify();
            }
            if control_ready {
                self.on_control();
            }
            if sig_ready {
                self.on_signals();
            }
            self.check_deadline();
            if let Some(ended) = self.reap() {
                self.console.pump_output();
                return ended;
            }
        }
    }

    /// Reaps init if it has exited and decides what that means.
    fn reap(&mut self) -> Option<Ended> {
        let pid = self.init.as_ref()?.init.pid;
        let status = match waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return None,
            Ok(s) => s,
            Err(e) => {
                tracing::error!("waitpid({pid}) failed: {e}");
                return None;
            }
        };
        tracing::debug!("init exited: {status:?}");
        let end = match status {
            WaitStatus::Exited(_, code) => exit::InitEnd::Exited(code),
            WaitStatus::Signaled(_, sig, _) => exit::InitEnd::Signaled(sig as i32),
            other => exit::InitEnd::Other(format!("{other:?}")),
        };
        let stop = self.stop.as_ref().map(Stop::facts);
        let outcome = exit::classify(&end, stop.as_ref());
        let ended = match outcome.last_exit() {
            Some(last) => Ended::Final(last, outcome),
            None => Ended::Reboot,
        };
        Some(ended)
    }

    /// Waits for the container's processes to be gone, then removes its cgroups.
    fn cleanup_cgroup(&mut self) {
        self.unregister_machine();
        for p in crate::network::attach::unplug(&self.paths, &self.name, &self.config) {
            tracing::warn!("network cleanup: {p}");
        }
        if !self.cgroup.wait_empty(Duration::from_secs(3)) {
            tracing::warn!("processes remain after init exited; killing them");
            self.cgroup.kill();
            if !self.cgroup.wait_empty(Duration::from_secs(10)) {
                tracing::warn!("processes remain in {}: {:?}", self.cgroup.unified.display(), self.cgroup.pids());
            }
        }
        if let Err(e) = self.cgroup.remove() {
            tracing::warn!("{e}");
        }
    }

    /// The container has ended for good: record how, remove runtime files, and
    /// answer everyone waiting for the stop.
    fn finish(&mut self, exit: LastExit) {
        if let Err(e) = exit.save(&self.paths.last_exit(&self.name)) {
            tracing::error!("failed to record how the container ended: {e}");
        }
        if let Err(e) = fsutil::remove_tree_atomically(&self.paths.runtime(&self.name)) {
            tracing::warn!("failed to remove {}: {e}", self.paths.runtime(&self.name).display());
        }
        let waiters = self.stop.as_ref().map_or(0, |s| s.waiters.len());
        if self.config.ephemeral && waiters == 0 {
            // Nobody's `hutch stop` will destroy it (that one does, once answered).
            if let Err(e) = crate::container::remove_ephemeral(&self.paths, &self.name) {
                tracing::error!("failed to destroy the ephemeral container: {e}");
            }
        }
        if let Some(stop) = self.stop.take() {
            for mut w in stop.waiters {
                let mut r = Response::ok();
                r.detail = Some(exit.detail.clone());
                let _ = proto::write_line(&mut w, &r);
                let _ = w.flush();
            }
        }
        tracing::info!("monitor {} exiting", std::process::id());
    }
}

/// 32 hex digits as a UUID string (the format of /proc/sys/kernel/random/boot_id).
fn uuid(hex: &str) -> String {
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}
