//! start, stop, kill, freeze and destroy. Each takes the container's lock and
//! reconciles stale state first.

use std::io::BufReader;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::observe::{Observed, Status, reconcile};
use super::{Error, Notices, io_err};
use crate::base::fsutil;
use crate::base::lock::Lock;
use crate::base::paths::Paths;
use crate::base::state::{LastExit, RuntimeState};
use crate::config::Config;
use crate::monitor::exit::Outcome;
use crate::monitor::proto::{self, Event, Request};

/// Checks `name` against the naming rule and that such a container exists.
pub fn require_exists(paths: &Paths, name: &str) -> Result<(), Error> {
    crate::base::name::validate(name)?;
    if paths.config(name).exists() { Ok(()) } else { Err(Error::NotFound { name: name.into() }) }
}

pub(crate) fn lock(paths: &Paths, name: &str) -> Result<Lock, Error> {
    Lock::acquire(&paths.lock(name)).map_err(io_err("lock", paths.lock(name)))
}

#[derive(Debug)]
pub struct Started {
    pub init_pid: i32,
    /// Boot time, when the caller waited for readiness.
    pub boot_ms: Option<u64>,
    pub notices: Notices,
    /// A dev box: its first boot may still have to install sudo (`devbox::first_boot`).
    pub devbox: bool,
}

/// A container loaded once for one `start`, under its lock: its name, paths, config and
/// (reconciled) state, read when the command begins and handed down to every step
/// (nothing below re-reads config.toml or the runtime state).
pub(crate) struct Loaded<'a> {
    pub paths: &'a Paths,
    pub name: &'a str,
    pub config: Config,
    pub obs: Observed,
}

impl<'a> Loaded<'a> {
    /// Call with the container's lock held: stale runtime state is cleared.
    pub fn load(paths: &'a Paths, name: &'a str, notices: &mut Notices) -> Result<Loaded<'a>, Error> {
        let config = Config::load(&paths.config(name))?;
        let obs = reconcile(paths, name, Some(&config), notices)?;
        Ok(Loaded { paths, name, config, obs })
    }

    fn dir(&self) -> std::path::PathBuf {
        self.paths.container(self.name)
    }
}

/// The config of a container whose command works without one (stop, destroy, ...):
/// read once, `None` if it cannot be.
fn config_if_readable(paths: &Paths, name: &str) -> Option<Config> {
    Config::load(&paths.config(name)).ok()
}

/// Starts the container's monitor and waits until init runs (and, with `wait`, until
/// it reports ready).
///
/// The container's lock is handed to the monitor too (on fd 4, crate::monitor::launch):
/// a `start` killed while the monitor sets up leaves the lock held until init runs or
/// the monitor has cleaned up, so no other command can take the half-made runtime
/// directory for stale.
pub fn start(paths: &Paths, name: &str, wait: bool) -> Result<Started, Error> {
    require_exists(paths, name)?;
    let mut lock = Some(lock(paths, name)?);
    let mut notices = Notices::new();
    let c = Loaded::load(paths, name, &mut notices)?;
    match c.obs.status {
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
    check_startable(&c)?;
    prepare_host(&c, &mut notices)?;
    if c.config.ephemeral {
        // Marks it as started: if it ends up stopped but not destroyed (the host went
        // down), the next command destroys it (`sweep_ephemeral`).
        let marker = paths.ephemeral_marker(name);
        fsutil::ensure_dir(&paths.ephemeral_markers(), 0o700).map_err(io_err("create", paths.ephemeral_markers()))?;
        fsutil::atomic_write(&marker, b"", 0o600).map_err(io_err("write", &marker))?;
    }
    // A dev box's first boot installs sudo once it is up, so its start waits.
    let devbox = c.config.devbox.is_some();
    let wait = wait || devbox;

    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| io_err("create a pipe for", paths.runtime(name))(e.into()))?;
    spawn_monitor(paths, name, &write_end, lock.as_ref().expect("held until init runs"))?;
    drop(write_end);

    let mut reader = BufReader::new(std::fs::File::from(read_end));
    let mut init_pid = None;
    loop {
        let event = proto::read_line::<Event>(&mut reader);
        tracing::debug!("{name}: monitor event {event:?}");
        match event {
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
                return Ok(Started { init_pid: init_pid.unwrap_or(0), boot_ms: Some(boot_ms), notices, devbox });
            }
            Ok(Some(Event::Failed { error })) => {
                return Err(Error::Start { name: name.into(), source: error });
            }
            Ok(None) | Err(_) => return Err(monitor_went_away(paths, name, init_pid)),
        }
    }
    Ok(Started { init_pid: init_pid.unwrap_or(0), boot_ms: None, notices, devbox })
}

/// What can be known before the monitor runs: the root filesystem, its image, its init.
fn check_startable(c: &Loaded) -> Result<(), Error> {
    let rootfs = c.config.rootfs_path(&c.dir());
    crate::rootfs::check_dir(&rootfs)?;
    let init = &c.config.init.command[0];
    let layers = c.config.layers(c.paths, &c.dir());
    if let Some(layers) = &layers {
        if !layers.lower.is_dir() {
            return Err(Error::StartFailed {
                name: c.name.into(),
                message: format!("its image is missing from the cache ({} does not exist)", layers.lower.display()),
            });
        }
    }
    // An overlay's init is checked by the kernel at exec (the merged view exists only
    // inside the monitor's mount namespace).
    if layers.is_none() && crate::rootfs::resolve_executable(&rootfs, init).is_none() {
        return Err(Error::StartFailed {
            name: c.name.into(),
            message: format!("init {init} is not an executable file in the root filesystem {}", rootfs.display()),
        });
    }
    Ok(())
}

/// The host side the monitor relies on: id ranges, inotify instances, cgroups, and
/// the container's networks (up, addresses reserved, ports published).
fn prepare_host(c: &Loaded, notices: &mut Notices) -> Result<(), Error> {
    if !c.config.security.privileged && c.config.idmap.is_none() {
        let (_, added) = crate::idmap::root_map(Path::new("/etc/subuid"), Path::new("/etc/subgid"))?;
        notices.extend(added);
    }
    if !c.config.security.privileged {
        notices.extend(raise_inotify_instances());
    }
    crate::cgroup::Layout::detect()?;
    crate::network::attach::prepare(c.paths, c.name, &c.config)?;
    notices.extend(super::mounts::skipped_at_start(&c.config));
    notices.extend(lxcfs_notice(c));
    Ok(())
}

/// What `security.lxcfs = "auto"` goes without, said at start (the monitor decides
/// again at each boot; with `"on"` its refusal is the start's error).
fn lxcfs_notice(c: &Loaded) -> Option<String> {
    match crate::runtime::lxcfs::decide_for(c.paths, &c.config.security) {
        crate::runtime::lxcfs::Decision::Without(notice) => notice,
        _ => None,
    }
}

/// The status pipe closed without a verdict: say what is known.
fn monitor_went_away(paths: &Paths, name: &str, init_pid: Option<i32>) -> Error {
    let message = match init_pid {
        // Init ran, then the monitor went away before readiness.
        Some(pid) => {
            let last = LastExit::load(&paths.last_exit(name)).map(|l| l.detail).unwrap_or_default();
            format!("init (pid {pid}) ended before it was ready: {last}")
        }
        None => "the monitor exited before init started".into(),
    };
    Error::StartFailed { name: name.into(), message }
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

/// The monitor's own binary, installed beside this one.
fn monitor_binary() -> Result<std::path::PathBuf, Error> {
    let exe = std::env::current_exe().map_err(io_err("find", Path::new("/proc/self/exe")))?;
    let path = exe.with_file_name(MONITOR_BINARY);
    if !path.is_file() {
        return Err(Error::MonitorMissing { path });
    }
    Ok(path)
}

/// The name of the monitor's binary (src/bin/hutch-monitor.rs).
const MONITOR_BINARY: &str = "hutch-monitor";

/// Size at which `logs/monitor.log` is rotated when a monitor starts.
const MONITOR_LOG_MAX: u64 = 256 * 1024;

/// Runs `hutch-monitor` (the binary beside this one) in its own session, detached from
/// the terminal, logging to `logs/monitor.log`, with its status pipe on fd 3 and the
/// container's lock on fd 4 (crate::monitor::launch::hold_start_lock).
fn spawn_monitor(paths: &Paths, name: &str, status: &OwnedFd, lock: &Lock) -> Result<(), Error> {
    let log_path = paths.monitor_log(name);
    fsutil::ensure_dir(&paths.logs(name), 0o750).map_err(io_err("create", paths.logs(name)))?;
    // Each start appends a few lines; keep the log (and one older file) bounded.
    if std::fs::metadata(&log_path).is_ok_and(|m| m.len() > MONITOR_LOG_MAX) {
        let _ = std::fs::rename(&log_path, log_path.with_extension("log.1"));
    }
    let log =
        std::fs::OpenOptions::new().create(true).append(true).open(&log_path).map_err(io_err("open", &log_path))?;
    // Copies above the target numbers, so neither dup2 below can overwrite the other's
    // source (and a source already on its target, whose close-on-exec dup2 would keep,
    // cannot happen). Close-on-exec: only the dup2'd fds reach the monitor.
    let high = |fd: std::os::fd::BorrowedFd| {
        rustix::io::fcntl_dupfd_cloexec(fd, 10).map_err(|e| io_err("pass the lock to", paths.runtime(name))(e.into()))
    };
    let (status, lock) = (high(status.as_fd())?, high(lock.as_fd())?);
    let (status_fd, lock_fd) = (status.as_raw_fd(), lock.as_raw_fd());
    let mut cmd = Command::new(monitor_binary()?);
    cmd.arg0(format!("hutch-monitor {name}"))
        .arg("--state")
        .arg(&paths.state)
        .arg("--run")
        .arg(&paths.run)
        .arg("--cgroup-parent")
        .arg(&paths.cgroup_parent)
        .arg(name)
        .env_clear()
        .env("PATH", crate::runtime::policy::INIT_PATH)
        .env(crate::monitor::launch::START_LOCK_ENV, "4")
        .envs(
            std::env::var_os(crate::monitor::launch::TEST_SETUP_DELAY_ENV)
                .map(|v| (crate::monitor::launch::TEST_SETUP_DELAY_ENV, v)),
        )
        .envs(crate::monitor::timeline::handoff())
        // hutch@.service asks the monitor to keep its (delegated) unit: crate::systemd.
        .envs(
            std::env::var_os(crate::systemd::KEEP_UNIT_ENV)
                .filter(|v| v == "1")
                .map(|v| (crate::systemd::KEEP_UNIT_ENV, v)),
        )
        // The level the user asked this command for, if any, holds for its monitor too.
        .envs(crate::base::log::asked().map(|l| (crate::base::log::ENV, l.to_string())))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io_err("open", &log_path))?)
        .stderr(log);
    // SAFETY: between fork and exec we only call async-signal-safe functions
    // (setsid, dup2) and touch no Rust allocations or locks; the fds stay open (owned
    // by `status` and `lock` here) until after the spawn.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::dup2(status_fd, 3) < 0 || libc::dup2(lock_fd, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // The monitor is not waited for: it outlives this command by design.
    let child = cmd.spawn().map_err(io_err("start the monitor for", paths.container(name)))?;
    tracing::debug!("{name}: monitor spawned as pid {}, logging to {}", child.id(), log_path.display());
    Ok(())
}

/// Stops the container: the init's halt signal, then, after `timeout` seconds (or at
/// once with `force`), SIGKILL to everything in its cgroup. Returns how it ended.
/// An ephemeral container is destroyed once stopped.
pub fn stop(paths: &Paths, name: &str, timeout: Option<u64>, force: bool) -> Result<(String, Notices), Error> {
    require_exists(paths, name)?;
    let lock = lock(paths, name)?;
    let config = config_if_readable(paths, name);
    let (mut detail, mut notices) = stop_locked(paths, name, config.as_ref(), timeout, force)?;
    if config.as_ref().is_some_and(|c| c.ephemeral) {
        notices.extend(destroy_locked(paths, name, lock, config.as_ref())?);
        detail.push_str("; destroyed (it was ephemeral)");
    }
    Ok((detail, notices))
}

pub(crate) fn stop_locked(
    paths: &Paths,
    name: &str,
    config: Option<&Config>,
    timeout: Option<u64>,
    force: bool,
) -> Result<(String, Notices), Error> {
    let mut notices = Notices::new();
    let obs = reconcile(paths, name, config, &mut notices)?;
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
    if let Some(config) = config {
        for p in crate::network::attach::unplug(paths, name, config) {
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
    let obs = reconcile(paths, name, config_if_readable(paths, name).as_ref(), &mut Notices::new())?;
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
    let obs = reconcile(paths, name, config_if_readable(paths, name).as_ref(), &mut Notices::new())?;
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
    let config = config_if_readable(paths, name);
    let obs = reconcile(paths, name, config.as_ref(), &mut notices)?;
    if obs.status.is_up() {
        if !force {
            return Err(Error::Running { name: name.into() });
        }
        let (_, more) = stop_locked(paths, name, config.as_ref(), Some(0), true)?;
        notices.extend(more);
    }
    notices.extend(destroy_locked(paths, name, lock, config.as_ref())?);
    Ok(notices)
}

/// Removes the stopped container `name`, whose lock is `lock`.
fn destroy_locked(paths: &Paths, name: &str, lock: Lock, config: Option<&Config>) -> Result<Notices, Error> {
    let notices = Notices::new();
    // Rename first: a destroy killed half-way leaves a trash directory, never a
    // half-deleted container that still looks real.
    let dir = paths.container(name);
    if let Some(config) = &config {
        crate::network::attach::release_all(paths, name, &config.nics);
    }
    let _ = crate::network::attach::remove_ports(paths, name);
    let trash = paths.containers().join(format!(".trash-{name}-{}", &crate::sys::random_hex128()[..8]));
    std::fs::rename(&dir, &trash).map_err(io_err("move aside", &dir))?;
    fsutil::remove_tree(&trash).map_err(io_err("remove", &trash))?;
    fsutil::remove_tree_atomically(&paths.runtime(name)).map_err(io_err("remove", paths.runtime(name)))?;
    fsutil::remove_file_if_exists(&paths.ephemeral_marker(name))
        .map_err(io_err("remove", paths.ephemeral_marker(name)))?;
    lock.remove_file().map_err(io_err("remove", paths.lock(name)))?;
    Ok(notices)
}

/// Called by the monitor when an ephemeral container ended by itself (a poweroff
/// inside, a kill): destroys it, unless it is up again or no longer ephemeral.
pub fn remove_ephemeral(paths: &Paths, name: &str) -> Result<(), Error> {
    let lock = lock(paths, name)?;
    let Some(config) = config_if_readable(paths, name).filter(|c| c.ephemeral) else { return Ok(()) };
    let obs = reconcile(paths, name, Some(&config), &mut Notices::new())?;
    if obs.status == Status::Stopped {
        destroy_locked(paths, name, lock, Some(&config))?;
    }
    Ok(())
}

/// Destroys the ephemeral containers that were started and are stopped without
/// having been destroyed (their host went down under them). Containers another
/// command holds are left for later.
pub fn sweep_ephemeral(paths: &Paths) -> Notices {
    let mut notices = Notices::new();
    let Ok(rd) = std::fs::read_dir(paths.ephemeral_markers()) else { return notices };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if crate::base::name::validate(&name).is_err() {
            continue;
        }
        if !paths.config(&name).exists() {
            let _ = std::fs::remove_file(e.path());
            continue;
        }
        let Ok(Some(lock)) = Lock::try_acquire(&paths.lock(&name)) else { continue };
        let config = config_if_readable(paths, &name);
        if !config.as_ref().is_some_and(|c| c.ephemeral) {
            let _ = std::fs::remove_file(e.path());
            continue;
        }
        match reconcile(paths, &name, config.as_ref(), &mut notices) {
            Ok(obs) if obs.status == Status::Stopped => match destroy_locked(paths, &name, lock, config.as_ref()) {
                Ok(more) => {
                    notices.extend(more);
                    notices
                        .push(format!("destroyed ephemeral container {name}, which stopped without being destroyed"));
                }
                Err(err) => notices.push(format!("failed to destroy ephemeral container {name}: {err}")),
            },
            _ => {}
        }
    }
    notices
}

/// Removes what interrupted commands left in the containers directory: trash from a
/// destroy, and staging directories of creates whose process is gone (its lock free).
/// A staging directory's lock is held until it is removed, so a create that begins
/// meanwhile waits instead of losing its new staging directory.
pub fn collect_leftovers(paths: &Paths) -> Notices {
    let mut notices = Notices::new();
    let Ok(rd) = std::fs::read_dir(paths.containers()) else {
        return notices;
    };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let held = if n.starts_with(".trash-") {
            Some(None)
        } else if let Some(name) = n.strip_prefix(".staging-") {
            match crate::base::name::validate(name).map(|_| Lock::try_acquire(&paths.lock(name))) {
                Ok(Ok(Some(lock))) => Some(Some(lock)),
                _ => None,
            }
        } else {
            None
        };
        // `_lock`: held through the removal (and the release of its addresses) below.
        let Some(_lock) = held else { continue };
        if fsutil::remove_tree(&e.path()).is_ok() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_are_collected_only_when_their_lock_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(Some(dir.path()));
        let (busy, left, trash) = (
            paths.containers().join(".staging-busy"),
            paths.containers().join(".staging-left"),
            paths.containers().join(".trash-old-12345678"),
        );
        for d in [&busy, &left, &trash] {
            std::fs::create_dir_all(d.join("rootfs")).unwrap();
        }
        let held = Lock::acquire(&paths.lock("busy")).unwrap();
        let notices = collect_leftovers(&paths);
        assert_eq!(notices.len(), 2, "{notices:?}");
        assert!(busy.exists() && !left.exists() && !trash.exists());
        // The collector let go of the lock it took for `left`.
        assert!(Lock::try_acquire(&paths.lock("left")).unwrap().is_some());
        drop(held);
        collect_leftovers(&paths);
        assert!(!busy.exists());
    }
}
