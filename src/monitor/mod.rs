//! The per-container monitor: a small process that outlives the `hutch start` that
//! spawned it (like LXC's `[lxc monitor]`). It launches init, holds the console,
//! serves control requests, reaps init, boots the container again after an in-guest
//! reboot, and cleans up (cgroup, runtime files) when the container ends.
//!
//! It is single-threaded and runs one `poll` loop. If it is killed, the container
//! keeps running: the runtime state names init, and the CLI can stop it directly.

pub mod console;
pub mod exit;
pub mod launch;
pub mod proto;

use std::ffi::CString;
use std::fs::File;
use std::io::{BufReader, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
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
use crate::runtime::{plan, policy};
use console::Console;
use launch::Launched;
use proto::{Event, Request, Response};

macro_rules! mlog {
    ($($arg:tt)*) => {{
        let ms = $crate::base::fsutil::now_ms();
        eprintln!("[{}.{:03}] {}", ms / 1000, ms % 1000, format!($($arg)*));
    }};
}

/// Entry point of `hutch __monitor`. `status` is the pipe to the spawning CLI.
pub fn main(paths: Paths, name: String, status: Option<OwnedFd>) -> i32 {
    // SAFETY: ignoring SIGPIPE installs no handler code; a vanished client must not
    // kill the monitor.
    unsafe {
        let _ = nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigIgn);
    }
    let _ = std::env::set_current_dir("/");
    let mut status = status.map(File::from);
    mlog!("monitor {} starting for {name}", std::process::id());
    if let Err(msg) = launch::private_mount_namespace() {
        mlog!("{msg}");
        fail_early(&paths, &name, status.take(), &msg);
        return 1;
    }
    let mut m = match Monitor::setup(&paths, &name, status.take()) {
        Ok(m) => m,
        Err((msg, status)) => {
            mlog!("{msg}");
            fail_early(&paths, &name, status, &msg);
            return 1;
        }
    };
    m.run()
}

/// Reports a failure that happened before the monitor was fully set up.
/// Cleans up first, so that when `hutch start` reports the failure nothing is left.
fn fail_early(paths: &Paths, name: &str, status: Option<File>, msg: &str) {
    let _ = LastExit::new(How::Failed, msg).save(&paths.last_exit(name));
    let _ = fsutil::remove_tree_atomically(&paths.runtime(name));
    if let Some(mut s) = status {
        let _ = proto::write_line(&mut s, &Event::Failed { error: msg.to_string() });
    }
}

struct Stop {
    deadline: Option<Instant>,
    timeout_s: u64,
    killed: bool,
    forced: bool,
    waiters: Vec<UnixStream>,
}

enum Ended {
    Reboot,
    Final(LastExit),
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
}

type SetupError = (String, Option<File>);

impl Monitor {
    fn setup(paths: &Paths, name: &str, status: Option<File>) -> Result<Monitor, SetupError> {
        let fail = |msg: String, status: Option<File>| -> SetupError { (msg, status) };
        let config = match Config::load(&paths.config(name)) {
            Ok(c) => c,
            Err(e) => return Err(fail(e.to_string(), status)),
        };
        let layout = match Layout::detect() {
            Ok(l) => l,
            Err(e) => return Err(fail(e.to_string(), status)),
        };
        let idmap = if config.security.privileged {
            None
        } else {
            match config.idmap {
                Some(m) => Some(m),
                None => match crate::idmap::root_map("/etc/subuid".as_ref(), "/etc/subgid".as_ref()) {
                    Ok((m, _)) => Some(m),
                    Err(e) => return Err(fail(e.to_string(), status)),
                },
            }
        };
        let owner = idmap.map(|m| (m.uid, m.gid));
        // On systemd hosts, the container's cgroup is a leaf of a delegated unit.
        let systemd = match systemd_placement(paths, name, &layout) {
            Ok(p) => p,
            Err(e) => return Err(fail(e, status)),
        };
        let cgroup = match &systemd {
            Some(p) => p.container_cgroup(&layout),
            None => ContainerCgroup::new(&layout, &paths.cgroup_parent, name),
        };

        let run = paths.runtime(name);
        let share = paths.host_share(name);
        let prepared = (|| -> std::io::Result<(UnixListener, UnixDatagram)> {
            fsutil::ensure_dir(&run, 0o700)?;
            fsutil::ensure_dir(&share, 0o755)?;
            fsutil::ensure_dir(&paths.logs(name), 0o750)?;
            let sock = paths.monitor_socket(name);
            fsutil::remove_file_if_exists(&sock)?;
            let (p, _keep) = proto::socket_path(&sock)?;
            let control = UnixListener::bind(&p)?;
            control.set_nonblocking(true)?;
            std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600))?;
            let notify_path = share.join("notify");
            fsutil::remove_file_if_exists(&notify_path)?;
            let (p, _keep) = proto::socket_path(&notify_path)?;
            let notify = UnixDatagram::bind(&p)?;
            notify.set_nonblocking(true)?;
            nix::sys::socket::setsockopt(&notify, nix::sys::socket::sockopt::PassCred, &true)?;
            // Container root is not the socket's owner: it may send, nothing more.
            std::fs::set_permissions(&notify_path, std::fs::Permissions::from_mode(0o722))?;
            Ok((control, notify))
        })();
        let (control, notify) = match prepared {
            Ok(p) => p,
            Err(e) => {
                return Err(fail(format!("failed to prepare runtime directory {}: {e}", run.display()), status));
            }
        };
        let console = match Console::open(owner, &paths.console_log(name), config.log_size()) {
            Ok(c) => c,
            Err(e) => {
                return Err(fail(format!("failed to allocate the console pty: {e}"), status));
            }
        };
        let signals = match crate::sys::signalfd(&[Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGCHLD]) {
            Ok(s) => s,
            Err(e) => return Err(fail(e, status)),
        };
        let me = match crate::base::state::Proc::of(std::process::id() as i32) {
            Ok(p) => p,
            Err(e) => {
                return Err(fail(format!("failed to read the monitor's own process state: {e}"), status));
            }
        };
        let state = RuntimeState {
            version: crate::base::state::VERSION,
            boot_id: crate::sys::boot_id(),
            phase: Phase::Starting,
            monitor: me,
            init: None,
            started_at_ms: fsutil::now_ms(),
            ready_at_ms: None,
            boots: 0,
            privileged: idmap.is_none(),
            idmap,
            cgroup: cgroup.clone(),
            halt_signal: config.halt_signal(),
            stop_timeout: config.init.stop_timeout,
        };
        if let Err(e) = state.save(&paths.state_file(name)) {
            return Err(fail(format!("failed to write {}: {e}", paths.state_file(name).display()), status));
        }
        if let Err(e) = write_pid_file(paths, name, systemd.as_ref()) {
            return Err(fail(e, status));
        }
        Ok(Monitor {
            paths: paths.clone(),
            name: name.to_string(),
            config,
            layout,
            cgroup,
            systemd,
            machine_registered: false,
            idmap,
            console,
            control,
            notify,
            signals,
            status,
            state,
            init: None,
            stop: None,
            boot_began: Instant::now(),
        })
    }

    fn run(&mut self) -> i32 {
        loop {
            if let Err(msg) = self.boot() {
                mlog!("boot failed: {msg}");
                // Clean up before reporting: when `hutch start` says it failed,
                // nothing of the attempt is left.
                self.cleanup_cgroup();
                self.finish(LastExit::new(How::Failed, msg.clone()));
                self.event(Event::Failed { error: msg });
                return 1;
            }
            let ended = self.wait_for_end();
            self.init = None;
            self.cleanup_cgroup();
            match ended {
                Ended::Reboot => {
                    mlog!("init rebooted the container; booting again");
                    // Pick up configuration changes made since the last boot.
                    match Config::load(&self.paths.config(&self.name)) {
                        Ok(c) => self.config = c,
                        Err(e) => mlog!("keeping the previous configuration: {e}"),
                    }
                }
                Ended::Final(exit) => {
                    mlog!("container ended: {}", exit.detail);
                    self.finish(exit);
                    return 0;
                }
            }
        }
    }

    fn save_state(&self) {
        if let Err(e) = self.state.save(&self.paths.state_file(&self.name)) {
            mlog!("failed to write the runtime state: {e}");
        }
    }

    fn event(&mut self, ev: Event) {
        let done = matches!(ev, Event::Ready { .. } | Event::Failed { .. });
        if let Some(s) = &mut self.status {
            if proto::write_line(s, &ev).is_err() {
                self.status = None; // the CLI went away; the container goes on
            }
        }
        if done {
            self.status = None;
        }
    }

    fn boot(&mut self) -> Result<(), String> {
        self.boot_began = Instant::now();
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
        fsutil::atomic_write(
            &share.join("boot_id"),
            format!("{}\n", uuid(&crate::sys::random_hex128())).as_bytes(),
            0o444,
        )
        .map_err(|e| format!("failed to write the container's boot id: {e}"))?;
        self.cgroup.create(&self.layout, self.idmap.map(|m| (m.uid, m.gid))).map_err(|e| e.to_string())?;
        // Limits before anything runs in the cgroup.
        for w in crate::cgroup::limits::enforce(&self.config.limits, &self.layout, &self.cgroup)
            .map_err(|e| format!("failed to apply the limits: {e}"))?
        {
            mlog!("limits: {w}");
        }

        let spec = self.child_spec()?;
        let plug = |pid: i32| {
            // Ports again too: a reboot from inside went through cleanup.
            crate::network::attach::plug(&self.paths, &self.name, &self.config, pid)
                .and_then(|_| crate::network::attach::apply_ports(&self.paths, &self.name, &self.config))
                .map_err(|e| e.to_string())
        };
        let launched = launch::launch(&spec, self.idmap, &self.cgroup, &plug)?;
        mlog!("init {} running (pid {})", self.config.init.command.join(" "), launched.init.pid);
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

    fn child_spec(&self) -> Result<ChildSpec, String> {
        let container_dir = self.paths.container(&self.name);
        let rootfs = self.config.rootfs_path(&container_dir);
        let cstr = |s: &str, what: &str| CString::new(s).map_err(|_| format!("{what} contains a NUL byte"));
        let argv = self.config.init.command.iter().map(|a| cstr(a, "init.command")).collect::<Result<Vec<_>, _>>()?;
        let mut env = vec![format!("container={}", policy::CONTAINER_ENV), format!("PATH={}", policy::INIT_PATH)];
        if self.config.init.ready == Ready::Notify {
            env.push(format!("NOTIFY_SOCKET={}", policy::NOTIFY_SOCKET));
        }
        env.extend(self.config.env.iter().map(|(k, v)| format!("{k}={v}")));
        let env = env.iter().map(|e| cstr(e, "env")).collect::<Result<Vec<_>, _>>()?;
        let steps = plan::build(&plan::Inputs {
            console: Some(self.console.slave_path.clone()),
            host_share: self.paths.host_share(&self.name),
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
        })
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
        self.state.ready_at_ms = Some(fsutil::now_ms());
        if self.state.phase == Phase::Starting {
            self.state.phase = Phase::Running;
        }
    }

    fn announce_ready(&mut self) {
        let boot_ms = self.boot_began.elapsed().as_millis() as u64;
        mlog!("container ready after {boot_ms} ms");
        self.event(Event::Ready { boot_ms });
        // The start-up code (config parsing, the clone sequence, readiness) is not
        // needed until the next boot: let its pages go.
        crate::sys::release_startup_code();
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
                    mlog!("poll failed: {e}");
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

    fn on_signals(&mut self) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            let sig = info.ssi_signo as i32;
            if sig == libc::SIGTERM || sig == libc::SIGINT {
                mlog!("received {}; stopping the container", crate::base::signal::name(sig));
                let timeout = self.config.init.stop_timeout;
                self.begin_stop(timeout, false, None);
            }
        }
    }

    fn on_notify(&mut self) {
        use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
        let mut buf = [0u8; 4096];
        // Bounded, so a container flooding the socket cannot starve the other work.
        for _ in 0..64 {
            let mut cmsg = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let msg = match recvmsg::<()>(self.notify.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_DONTWAIT) {
                Ok(m) => m,
                Err(_) => return,
            };
            let mut sender = None;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmCredentials(cred) = c {
                        sender = Some(cred.pid());
                    }
                }
            }
            let len = msg.bytes;
            let text = String::from_utf8_lossy(&buf[..len]).into_owned();
            let init_pid = self.state.init.map(|p| p.pid);
            // Only init may say it is ready (services get systemd's own socket).
            if sender.is_some() && sender == init_pid && text.lines().any(|l| l == "READY=1") {
                self.mark_ready();
            }
        }
    }

    fn on_control(&mut self) {
        while let Ok((stream, _)) = self.control.accept() {
            let _ = stream.set_nonblocking(false);
            // Our own CLI sends its request at once; do not let a silent client stall
            // the console and the stop deadline for long.
            let _ = stream.set_read_timeout(Some(Duration::from_millis(300)));
            let mut reader = match stream.try_clone() {
                Ok(s) => BufReader::new(s),
                Err(_) => continue,
            };
            let mut stream = stream;
            let req = match proto::read_line::<Request>(&mut reader) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    let _ = proto::write_line(&mut stream, &Response::error(format!("bad request: {e}")));
                    continue;
                }
            };
            let _ = stream.set_read_timeout(None);
            match req {
                Request::Status => {
                    let mut r = Response::ok();
                    r.phase = Some(self.state.phase);
                    r.detail = self.state.init.map(|p| p.pid.to_string());
                    let _ = proto::write_line(&mut stream, &r);
                }
                Request::Stop { timeout_s, force } => {
                    if self.init.is_none() {
                        let _ = proto::write_line(
                            &mut stream,
                            &Response::error("the container is between boots; try again"),
                        );
                        continue;
                    }
                    self.begin_stop(timeout_s, force, Some(stream));
                }
                Request::Console { rows, cols } => {
                    if proto::write_line(&mut stream, &Response::ok()).is_ok() {
                        self.console.add_client(stream, rows, cols);
                    }
                }
            }
        }
    }

    fn begin_stop(&mut self, timeout_s: u64, force: bool, waiter: Option<UnixStream>) {
        let Some(init) = &self.init else { return };
        let stop =
            self.stop.get_or_insert(Stop { deadline: None, timeout_s, killed: false, forced: false, waiters: vec![] });
        stop.waiters.extend(waiter);
        if force && !stop.killed {
            mlog!("forced stop: killing every process in the container");
            stop.killed = true;
            stop.forced = true;
            stop.deadline = None;
            self.cgroup.kill();
        } else if !stop.killed {
            let new_deadline = Instant::now() + Duration::from_secs(timeout_s);
            match stop.deadline {
                None => {
                    let sig = self.config.halt_signal();
                    mlog!(
                        "sending {} to init; killing in {timeout_s} s if it has not stopped",
                        crate::base::signal::name(sig)
                    );
                    if let Err(e) = crate::sys::pidfd_send_signal(init.pidfd.as_fd(), sig) {
                        mlog!("failed to signal init: {e}");
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

    fn check_deadline(&mut self) {
        let Some(stop) = &mut self.stop else { return };
        if stop.deadline.is_some_and(|d| Instant::now() >= d) {
            mlog!("init did not stop within {} s; killing every process in the container", stop.timeout_s);
            stop.deadline = None;
            stop.killed = true;
            self.cgroup.kill();
        }
    }

    /// Reaps init if it has exited and decides what that means.
    fn reap(&mut self) -> Option<Ended> {
        let pid = self.init.as_ref()?.init.pid;
        let status = match waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return None,
            Ok(s) => s,
            Err(e) => {
                mlog!("waitpid({pid}) failed: {e}");
                return None;
            }
        };
        mlog!("init exited: {status:?}");
        let end = match status {
            WaitStatus::Exited(_, code) => exit::InitEnd::Exited(code),
            WaitStatus::Signaled(_, sig, _) => exit::InitEnd::Signaled(sig as i32),
            other => exit::InitEnd::Other(format!("{other:?}")),
        };
        let stop =
            self.stop.as_ref().map(|s| exit::Stopping { killed: s.killed, forced: s.forced, timeout_s: s.timeout_s });
        let outcome = exit::classify(&end, stop.as_ref());
        let ended = match outcome.last_exit() {
            Some(last) => Ended::Final(last),
            None => Ended::Reboot,
        };
        Some(ended)
    }

    /// Waits for the container's processes to be gone, then removes its cgroups.
    fn cleanup_cgroup(&mut self) {
        self.unregister_machine();
        for p in crate::network::attach::unplug(&self.paths, &self.name, &self.config) {
            mlog!("network cleanup: {p}");
        }
        if !self.cgroup.wait_empty(Duration::from_secs(3)) {
            mlog!("processes remain after init exited; killing them");
            self.cgroup.kill();
            if !self.cgroup.wait_empty(Duration::from_secs(10)) {
                mlog!("processes remain in {}: {:?}", self.cgroup.unified.display(), self.cgroup.pids());
            }
        }
        if let Err(e) = self.cgroup.remove() {
            mlog!("{e}");
        }
    }

    /// The container has ended for good: record how, remove runtime files, and
    /// answer everyone waiting for the stop.
    fn finish(&mut self, exit: LastExit) {
        if let Err(e) = exit.save(&self.paths.last_exit(&self.name)) {
            mlog!("failed to record how the container ended: {e}");
        }
        if let Err(e) = fsutil::remove_tree_atomically(&self.paths.runtime(&self.name)) {
            mlog!("failed to remove {}: {e}", self.paths.runtime(&self.name).display());
        }
        if let Some(stop) = self.stop.take() {
            for mut w in stop.waiters {
                let mut r = Response::ok();
                r.detail = Some(exit.detail.clone());
                let _ = proto::write_line(&mut w, &r);
                let _ = w.flush();
            }
        }
        mlog!("monitor {} exiting", std::process::id());
    }
}

// systemd hosts (see `crate::systemd`): the delegated unit, the pid file for
// `hutch@.service`, and the machined registration.

/// The systemd unit to hold the container, if this is a systemd host. A failure falls
/// back to managing cgroupfs directly (logged), unless the unit was asked for by name
/// (`HUTCH_KEEP_UNIT=1`, as in `hutch@.service`).
fn systemd_placement(paths: &Paths, name: &str, layout: &Layout) -> Result<Option<crate::systemd::Placement>, String> {
    let keep_unit = std::env::var_os(crate::systemd::KEEP_UNIT_ENV).is_some_and(|v| v == "1");
    match crate::systemd::enter(paths, name, layout, keep_unit) {
        Ok(Some(p)) => {
            mlog!("systemd: in unit {} (cgroup /{}); the container goes in its leaf payload", p.unit, p.cgroup);
            Ok(Some(p))
        }
        Ok(None) => Ok(None),
        Err(e) => {
            let msg = match e.hint() {
                Some(h) => format!("{e} (hint: {h})"),
                None => e.to_string(),
            };
            if keep_unit {
                return Err(msg);
            }
            mlog!("{msg}; managing cgroupfs directly instead");
            Ok(None)
        }
    }
}

/// `hutch@.service` (Type=forking) learns the monitor's pid from `run/NAME/monitor.pid`.
fn write_pid_file(paths: &Paths, name: &str, placement: Option<&crate::systemd::Placement>) -> Result<(), String> {
    if placement.is_none_or(|p| !p.unit.ends_with(".service")) {
        return Ok(());
    }
    let path = paths.runtime(name).join("monitor.pid");
    fsutil::atomic_write(&path, format!("{}\n", std::process::id()).as_bytes(), 0o644)
        .map_err(|e| format!("failed to write {}: {e}", path.display()))
}

impl Monitor {
    /// Registers the container with systemd-machined; a failure is only logged (the
    /// container runs the same without machined).
    fn register_machine(&mut self, leader: i32) {
        let Some(machine) = self.systemd.as_ref().and_then(|p| p.machine.clone()) else { return };
        let rootfs = self.config.rootfs_path(&self.paths.container(&self.name));
        match crate::systemd::register_machine(&machine, leader, &rootfs) {
            Ok(()) => {
                mlog!("registered machine {machine} with systemd-machined");
                self.machine_registered = true;
            }
            Err(e) => mlog!("{e}{}", e.hint().map(|h| format!(" (hint: {h})")).unwrap_or_default()),
        }
    }

    /// machined keeps a machine while its unit is active, and the unit (the monitor's
    /// too) outlives each boot: unregister when init has ended.
    fn unregister_machine(&mut self) {
        if !std::mem::take(&mut self.machine_registered) {
            return;
        }
        let Some(machine) = self.systemd.as_ref().and_then(|p| p.machine.clone()) else { return };
        if let Err(e) = crate::systemd::unregister_machine(&machine) {
            mlog!("{e}");
        }
    }
}

/// 32 hex digits as a UUID string (the format of /proc/sys/kernel/random/boot_id).
fn uuid(hex: &str) -> String {
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}
