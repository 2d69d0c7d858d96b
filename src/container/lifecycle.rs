//! start, stop, kill, freeze and destroy. Each takes the container's lock and
//! reconciles stale state first.

use std::io::BufReader;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::observe::{Status, reconcile};
use super::{Error, Notices, io_err};
use crate::config::Config;
use crate::base::fsutil;
use crate::base::lock::Lock;
use crate::monitor::exit::Outcome;
use crate::monitor::proto::{self, Event, Request};
use crate::base::paths::Paths;
use crate::base::state::{LastExit, RuntimeState};

/// Checks `name` against the naming rule and that such a container exists.
pub fn require_exists(paths: &Paths, name: &str) -> Result<(), Error> {
    crate::base::name::validate(name)?;
    if paths.config(name).exists() { Ok(()) } else { Err(Error::NotFound { name: name.into() }) }
}

fn lock(paths: &Paths, name: &str) -> Result<Lock, Error> {
    Lock::acquire(&paths.lock(name)).map_err(io_err("lock", paths.lock(name)))
}

#[derive(Debug)]
pub struct Started {
    pub init_pid: i32,
    /// Boot time, when the caller waited for readiness.
    pub boot_ms: Option<u64>,
    pub notices: Notices,
}

/// Starts the container's monitor and waits until init runs (and, with `wait`, until
/// it reports ready).
pub fn start(paths: &Paths, name: &str, wait: bool) -> Result<Started, Error> {
    require_exists(paths, name)?;
    let mut lock = Some(lock(paths, name)?);
    let mut notices = Notices::new();
    let obs = reconcile(paths, name, &mut notices)?;
    match obs.status {
        Status::Stopped => {}
        Status::Stopping => {
            return Err(Error::WrongState {
                action: "start",
                name: name.into(),
                state: super::Conflict::StillStopping,
            });
        }
        _ => return Err(Error::AlreadyRunning { name: name.into() }),
    }
    let config = Config::load(&paths.config(name))?;
    if !config.security.privileged && config.idmap.is_none() {
        let (_, added) = crate::idmap::root_map(Path::new("/etc/subuid"), Path::new("/etc/subgid"))?;
        notices.extend(added);
    }
    if !config.security.privileged {
        notices.extend(raise_inotify_instances());
    }
    let rootfs = config.rootfs_path(&paths.container(name));
    crate::rootfs::check_dir(&rootfs)?;
    let init = &config.init.command[0];
    let layers = config.layers(paths, &paths.container(name));
    if let Some(layers) = &layers {
        if !layers.lower.is_dir() {
            return Err(Error::StartFailed {
                name: name.into(),
                message: format!("its image is missing from the cache ({} does not exist)", layers.lower.display()),
            });
        }
    }
    // An overlay's init is checked by the kernel at exec (the merged view exists only
    // inside the monitor's mount namespace).
    if layers.is_none() && crate::rootfs::resolve_executable(&rootfs, init).is_none() {
        return Err(Error::StartFailed {
            name: name.into(),
            message: format!("init {init} is not an executable file in the root filesystem {}", rootfs.display()),
        });
    }
    crate::cgroup::Layout::detect()?;
    crate::network::attach::prepare(paths, name, &config)?;

    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| io_err("create a pipe for", paths.runtime(name))(e.into()))?;
    spawn_monitor(paths, name, &write_end)?;
    drop(write_end);

    let mut reader = BufReader::new(std::fs::File::from(read_end));
    let mut init_pid = None;
    loop {
        match proto::read_line::<Event>(&mut reader) {
            Ok(Some(Event::Started { init_pid: pid })) => {
                init_pid = Some(pid);
                // The start itself is done; waiting for readiness needs no lock (and
                // must not keep a `stop` from another terminal waiting).
                lock.take();
                if !wait {
                    break;
                }
            }
            Ok(Some(Event::Ready { boot_ms })) => {
                return Ok(Started { init_pid: init_pid.unwrap_or(0), boot_ms: Some(boot_ms), notices });
            }
            Ok(Some(Event::Failed { error })) => {
                return Err(Error::Start { name: name.into(), source: error });
            }
            Ok(None) | Err(_) => {
                if let Some(pid) = init_pid {
                    // Init ran, then the monitor went away before readiness: say what is known.
                    let last = LastExit::load(&paths.last_exit(name)).map(|l| l.detail).unwrap_or_default();
                    return Err(Error::StartFailed {
                        name: name.into(),
                        message: format!("init (pid {pid}) ended before it was ready: {last}"),
                    });
                }
                return Err(Error::StartFailed {
                    name: name.into(),
                    message: "the monitor exited before init started".into(),
                });
            }
        }
    }
    Ok(Started { init_pid: init_pid.unwrap_or(0), boot_ms: None, notices })
}

/// Unprivileged containers share one host uid (their root's), and each guest systemd
/// holds a dozen inotify instances: the kernel's default of 128 per user stops the
/// tenth container. Raised once, and said (LXC and Incus document the same tuning).
fn raise_inotify_instances() -> Option<String> {
    const FILE: &str = "/proc/sys/fs/inotify/max_user_instances";
    const WANT: u64 = 1024;
    let now: u64 = std::fs::read_to_string(FILE).ok()?.trim().parse().ok()?;
    if now >= WANT {
        return None;
    }
    std::fs::write(FILE, WANT.to_string()).ok()?;
    Some(format!(
        "raised fs.inotify.max_user_instances from {now} to {WANT}: unprivileged containers share their root's host uid"
    ))
}

/// Size at which `logs/monitor.log` is rotated when a monitor starts.
const MONITOR_LOG_MAX: u64 = 256 * 1024;

/// Runs `hutch __monitor` in its own session, detached from the terminal, logging to
/// `logs/monitor.log`, with its status pipe on fd 3.
fn spawn_monitor(paths: &Paths, name: &str, status: &OwnedFd) -> Result<(), Error> {
    let log_path = paths.monitor_log(name);
    fsutil::ensure_dir(&paths.logs(name), 0o750).map_err(io_err("create", paths.logs(name)))?;
    // Each start appends a few lines; keep the log (and one older file) bounded.
    if std::fs::metadata(&log_path).is_ok_and(|m| m.len() > MONITOR_LOG_MAX) {
        let _ = std::fs::rename(&log_path, log_path.with_extension("log.1"));
    }
    let log =
        std::fs::OpenOptions::new().create(true).append(true).open(&log_path).map_err(io_err("open", &log_path))?;
    let status_fd = status.as_raw_fd();
    // This very binary, whatever its path is now (it may have been upgraded or moved).
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0(format!("hutch-monitor {name}"))
        .arg("__monitor")
        .arg("--state")
        .arg(&paths.state)
        .arg("--run")
        .arg(&paths.run)
        .arg("--cgroup-parent")
        .arg(&paths.cgroup_parent)
        .arg(name)
        .env_clear()
        .env("PATH", crate::runtime::policy::INIT_PATH)
        // hutch@.service asks the monitor to keep its (delegated) unit: crate::systemd.
        .envs(
            std::env::var_os(crate::systemd::KEEP_UNIT_ENV)
                .filter(|v| v == "1")
                .map(|v| (crate::systemd::KEEP_UNIT_ENV, v)),
        )
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io_err("open", &log_path))?)
        .stderr(log);
    // SAFETY: between fork and exec we only call async-signal-safe functions
    // (setsid, dup2) and touch no Rust allocations or locks.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::dup2(status_fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // The monitor is not waited for: it outlives this command by design.
    cmd.spawn().map(drop).map_err(io_err("start the monitor for", paths.container(name)))
}

/// Stops the container: the init's halt signal, then, after `timeout` seconds (or at
/// once with `force`), SIGKILL to everything in its cgroup. Returns how it ended.
pub fn stop(paths: &Paths, name: &str, timeout: Option<u64>, force: bool) -> Result<(String, Notices), Error> {
    require_exists(paths, name)?;
    let _lock = lock(paths, name)?;
    stop_locked(paths, name, timeout, force)
}

fn stop_locked(paths: &Paths, name: &str, timeout: Option<u64>, force: bool) -> Result<(String, Notices), Error> {
    let mut notices = Notices::new();
    let obs = reconcile(paths, name, &mut notices)?;
    if obs.status == Status::Stopped {
        return Err(Error::NotRunning { action: "stop", name: name.into() });
    }
    let state = obs.state.clone().expect("a container that is up has state");
    let timeout = timeout.unwrap_or(state.stop_timeout);
    if obs.status == Status::Frozen {
        // A frozen init cannot act on its halt signal.
        state.cgroup.set_frozen(false)?;
    }
    if obs.monitor_alive {
        match proto::request(&paths.monitor_socket(name), &Request::Stop { timeout_s: timeout, force }) {
            Ok((resp, _)) if resp.ok => {
                return Ok((resp.detail.unwrap_or_else(|| "stopped".into()), notices));
            }
            Ok((resp, _)) => {
                let source = resp.refusal().expect("a response that is not ok");
                return Err(Error::Monitor { action: "stop", name: name.into(), source });
            }
            // Another protocol: never guess at what the monitor would do.
            Err(source @ proto::Error::Version { .. }) => {
                return Err(Error::Monitor { action: "stop", name: name.into(), source });
            }
            Err(e) => notices.push(format!("the monitor of {name} did not answer ({e}); stopping it directly")),
        }
        // The monitor may have finished the job while going away.
        if !crate::container::observe(paths, name).status.is_up() && !paths.runtime(name).exists() {
            return Ok(("stopped".into(), notices));
        }
    }
    let ended = stop_directly(&state, timeout, force);
    state.cgroup.remove()?;
    if let Ok(config) = Config::load(&paths.config(name)) {
        for p in crate::network::attach::unplug(paths, name, &config) {
            notices.push(format!("network cleanup: {p}"));
        }
    }
    let detail = ended.detail();
    LastExit::new(ended.how(), detail.clone())
        .save(&paths.last_exit(name))
        .map_err(io_err("write", paths.last_exit(name)))?;
    fsutil::remove_tree_atomically(&paths.runtime(name)).map_err(io_err("remove", paths.runtime(name)))?;
    Ok((detail, notices))
}

/// Stops a container whose monitor is gone: signal init through a pidfd, wait, kill.
fn stop_directly(state: &RuntimeState, timeout: u64, force: bool) -> Outcome {
    let cg = &state.cgroup;
    let pidfd = state.init.and_then(|p| p.pidfd());
    if let (Some(fd), false) = (&pidfd, force) {
        let comm =
            state.init.and_then(|p| std::fs::read_to_string(format!("/proc/{}/comm", p.pid)).ok()).unwrap_or_default();
        for (_, sig) in crate::runtime::policy::CONSOLE_GONE_SIGNALS.iter().filter(|(name, _)| *name == comm.trim()) {
            let _ = crate::sys::pidfd_send_signal(fd.as_fd(), *sig);
        }
        let _ = crate::sys::pidfd_send_signal(fd.as_fd(), state.halt_signal);
        if wait_readable(fd, Duration::from_secs(timeout)) && cg.wait_empty(Duration::from_secs(5)) {
            return Outcome::Poweroff { by_stop: true };
        }
    }
    cg.kill();
    cg.wait_empty(Duration::from_secs(10));
    Outcome::Killed { forced: force, timeout_s: timeout }
}

/// Waits for a pidfd to become readable (its process exited).
fn wait_readable(fd: &OwnedFd, timeout: Duration) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let end = Instant::now() + timeout;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)) {
            Ok(n) if n > 0 => return true,
            Ok(_) => return false,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
}

/// Sends `signal` to init, or with `all` to every process in the container.
pub fn kill(paths: &Paths, name: &str, signal: i32, all: bool) -> Result<usize, Error> {
    require_exists(paths, name)?;
    let _lock = lock(paths, name)?;
    let obs = reconcile(paths, name, &mut Notices::new())?;
    let state = match (&obs.state, obs.init_alive) {
        (Some(s), true) => s,
        _ => {
            return Err(Error::NotRunning { action: "signal", name: name.into() });
        }
    };
    if all {
        let pids = state.cgroup.pids();
        for p in &pids {
            let _ = crate::sys::kill(*p, signal);
        }
        return Ok(pids.len());
    }
    let fd = state.init.and_then(|p| p.pidfd()).ok_or(Error::NotRunning { action: "signal", name: name.into() })?;
    crate::sys::pidfd_send_signal(fd.as_fd(), signal).map_err(|e| Error::Other {
        action: "signal",
        name: name.into(),
        message: e.to_string(),
    })?;
    Ok(1)
}

/// Freezes (or thaws) every process in the container.
pub fn freeze(paths: &Paths, name: &str, frozen: bool) -> Result<(), Error> {
    require_exists(paths, name)?;
    let _lock = lock(paths, name)?;
    let obs = reconcile(paths, name, &mut Notices::new())?;
    let action = if frozen { "freeze" } else { "unfreeze" };
    match (obs.status, frozen) {
        (Status::Stopped, _) => {
            return Err(Error::NotRunning { action, name: name.into() });
        }
        (Status::Frozen, true) | (Status::Running | Status::Starting, false) => {
            return Err(Error::WrongState {
                action,
                name: name.into(),
                state: if frozen { super::Conflict::AlreadyFrozen } else { super::Conflict::NotFrozen },
            });
        }
        _ => {}
    }
    let state = obs.state.expect("a container that is up has state");
    state.cgroup.set_frozen(frozen)?;
    Ok(())
}

/// Removes the container and everything hutch keeps for it. A running container is
/// refused unless `force`, which kills it first.
pub fn destroy(paths: &Paths, name: &str, force: bool) -> Result<Notices, Error> {
    require_exists(paths, name)?;
    let lock = lock(paths, name)?;
    let mut notices = Notices::new();
    let obs = reconcile(paths, name, &mut notices)?;
    if obs.status.is_up() {
        if !force {
            return Err(Error::Running { name: name.into() });
        }
        let (_, more) = stop_locked(paths, name, Some(0), true)?;
        notices.extend(more);
    }
    // Rename first: a destroy killed half-way leaves a trash directory, never a
    // half-deleted container that still looks real.
    let dir = paths.container(name);
    if let Ok(config) = Config::load(&paths.config(name)) {
        crate::network::attach::release_all(paths, name, &config.nics);
    }
    let _ = crate::network::attach::remove_ports(paths, name);
    let trash = paths.containers().join(format!(".trash-{name}-{}", &crate::sys::random_hex128()[..8]));
    std::fs::rename(&dir, &trash).map_err(io_err("move aside", &dir))?;
    fsutil::remove_tree(&trash).map_err(io_err("remove", &trash))?;
    fsutil::remove_tree_atomically(&paths.runtime(name)).map_err(io_err("remove", paths.runtime(name)))?;
    lock.remove_file().map_err(io_err("remove", paths.lock(name)))?;
    Ok(notices)
}

/// Removes what interrupted commands left in the containers directory: trash from a
/// destroy, and staging directories of creates whose process is gone (its lock free).
pub fn collect_leftovers(paths: &Paths) -> Notices {
    let mut notices = Notices::new();
    let Ok(rd) = std::fs::read_dir(paths.containers()) else {
        return notices;
    };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let stale = if n.starts_with(".trash-") {
            true
        } else if let Some(name) = n.strip_prefix(".staging-") {
            crate::base::name::validate(name).is_ok() && matches!(Lock::try_acquire(&paths.lock(name)), Ok(Some(_)))
        } else {
            false
        };
        if stale && fsutil::remove_tree(&e.path()).is_ok() {
            notices.push(format!("removed {} left by an interrupted command", e.path().display()));
            // An interrupted create may have reserved addresses for a container that
            // never came to be.
            if let Some(name) = n.strip_prefix(".staging-") {
                if !paths.container(name).exists() {
                    for net in crate::network::net::list(paths).unwrap_or_default() {
                        let _ = crate::network::net::release(paths, &net.name, name);
                    }
                }
            }
        }
    }
    notices
}
