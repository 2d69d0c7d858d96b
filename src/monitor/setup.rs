//! Setting the monitor up, before the first boot: the configuration and id map, the
//! cgroup (in a delegated systemd unit on systemd hosts), the runtime directory and its
//! sockets, the console, and the first runtime state.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::Path;
use std::time::Instant;

use nix::sys::signal::Signal;

use super::console::Console;
use super::error::Error;
use super::{Monitor, proto};
use crate::base::fsutil;
use crate::base::paths::Paths;
use crate::base::state::{Phase, RuntimeState};
use crate::cgroup::{ContainerCgroup, Layout};
use crate::config::Config;
use crate::idmap::IdMap;

impl Monitor {
    pub(super) fn setup(paths: &Paths, name: &str) -> Result<Monitor, Error> {
        let config = Config::load(&paths.config(name))?;
        let layout = Layout::detect()?;
        let idmap = resolve_idmap(&config)?;
        // On systemd hosts, the container's cgroup is a leaf of a delegated unit.
        let systemd = systemd_placement(paths, name, &layout)?;
        let cgroup = match &systemd {
            Some(p) => p.container_cgroup(&layout),
            None => ContainerCgroup::new(&layout, &paths.cgroup_parent, name),
        };
        let (control, notify) = prepare_runtime_dir(paths, name)?;
        let owner = idmap.map(|m| (m.uid, m.gid));
        let console = Console::open(owner, &paths.console_log(name), config.log_size())
            .map_err(Error::os("allocate the console pty"))?;
        let signals = crate::sys::signalfd(&[Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGCHLD])?;
        let state = first_state(&config, idmap, &cgroup)?;
        state.save(&paths.state_file(name)).map_err(Error::io("write", paths.state_file(name)))?;
        write_pid_file(paths, name, systemd.as_ref())?;
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
            status: None,
            state,
            init: None,
            stop: None,
            boot_began: Instant::now(),
            failures: Default::default(),
            backing_off: false,
        })
    }
}

/// The id map: none for a privileged container, the configured one, or the host's
/// subordinate range for root.
fn resolve_idmap(config: &Config) -> Result<Option<IdMap>, Error> {
    if config.security.privileged {
        return Ok(None);
    }
    match config.idmap {
        Some(m) => Ok(Some(m)),
        None => Ok(Some(crate::idmap::root_map("/etc/subuid".as_ref(), "/etc/subgid".as_ref())?.0)),
    }
}

/// Creates the runtime directories and binds the control and notify sockets.
fn prepare_runtime_dir(paths: &Paths, name: &str) -> Result<(UnixListener, UnixDatagram), Error> {
    let run = paths.runtime(name);
    let share = paths.host_share(name);
    let prepare = Error::io("prepare the runtime directory", &run);
    let prepared = (|| -> std::io::Result<(UnixListener, UnixDatagram)> {
        fsutil::ensure_dir(&run, 0o700)?;
        fsutil::ensure_dir(&share, 0o755)?;
        fsutil::ensure_dir(&paths.logs(name), 0o750)?;
        let control = bind_control(&paths.monitor_socket(name))?;
        let notify = bind_notify(&share.join("notify"))?;
        Ok((control, notify))
    })();
    prepared.map_err(prepare)
}

fn bind_control(sock: &Path) -> std::io::Result<UnixListener> {
    fsutil::remove_file_if_exists(sock)?;
    let (p, _keep) = proto::socket_path(sock)?;
    let control = UnixListener::bind(&p)?;
    control.set_nonblocking(true)?;
    std::fs::set_permissions(sock, std::fs::Permissions::from_mode(0o600))?;
    Ok(control)
}

fn bind_notify(path: &Path) -> std::io::Result<UnixDatagram> {
    fsutil::remove_file_if_exists(path)?;
    let (p, _keep) = proto::socket_path(path)?;
    let notify = UnixDatagram::bind(&p)?;
    notify.set_nonblocking(true)?;
    nix::sys::socket::setsockopt(&notify, nix::sys::socket::sockopt::PassCred, &true)?;
    // Container root is not the socket's owner: it may send, nothing more.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o722))?;
    Ok(notify)
}

fn first_state(config: &Config, idmap: Option<IdMap>, cgroup: &ContainerCgroup) -> Result<RuntimeState, Error> {
    let me = crate::base::state::Proc::of(std::process::id() as i32)
        .map_err(Error::os("read the monitor's own process state"))?;
    Ok(RuntimeState {
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
        timeline: super::timeline::current(),
        restarts: 0,
        last_restart: None,
    })
}

// systemd hosts (see `crate::systemd`): the delegated unit, the pid file for
// `hutch@.service`, and the machined registration.

/// The systemd unit to hold the container, if this is a systemd host. A failure falls
/// back to managing cgroupfs directly (logged), unless the unit was asked for by name
/// (`HUTCH_KEEP_UNIT=1`, as in `hutch@.service`).
fn systemd_placement(paths: &Paths, name: &str, layout: &Layout) -> Result<Option<crate::systemd::Placement>, Error> {
    let keep_unit = std::env::var_os(crate::systemd::KEEP_UNIT_ENV).is_some_and(|v| v == "1");
    match crate::systemd::enter(paths, name, layout, keep_unit) {
        Ok(Some(p)) => {
            tracing::info!(
                "systemd: in unit {} (cgroup /{}); the container goes in its leaf payload",
                p.unit,
                p.cgroup
            );
            Ok(Some(p))
        }
        Ok(None) => Ok(None),
        Err(e) if keep_unit => Err(e.into()),
        Err(e) => {
            let hint = e.hint().map(|h| format!(" (hint: {h})")).unwrap_or_default();
            tracing::warn!("{e}{hint}; managing cgroupfs directly instead");
            Ok(None)
        }
    }
}

/// `hutch@.service` (Type=forking) learns the monitor's pid from `run/NAME/monitor.pid`.
fn write_pid_file(paths: &Paths, name: &str, placement: Option<&crate::systemd::Placement>) -> Result<(), Error> {
    if placement.is_none_or(|p| !p.unit.ends_with(".service")) {
        return Ok(());
    }
    let path = paths.runtime(name).join("monitor.pid");
    fsutil::atomic_replace(&path, format!("{}\n", std::process::id()).as_bytes(), 0o644)
        .map_err(Error::io("write", &path))
}

impl Monitor {
    /// Registers the container with systemd-machined; a failure is only logged (the
    /// container runs the same without machined).
    pub(super) fn register_machine(&mut self, leader: i32) {
        let Some(machine) = self.systemd.as_ref().and_then(|p| p.machine.clone()) else { return };
        let rootfs = self.config.rootfs_path(&self.paths.container(&self.name));
        match crate::systemd::register_machine(&machine, leader, &rootfs) {
            Ok(()) => {
                tracing::info!("registered machine {machine} with systemd-machined");
                self.machine_registered = true;
            }
            Err(e) => tracing::warn!("{e}{}", e.hint().map(|h| format!(" (hint: {h})")).unwrap_or_default()),
        }
    }

    /// machined keeps a machine while its unit is active, and the unit (the monitor's
    /// too) outlives each boot: unregister when init has ended.
    pub(super) fn unregister_machine(&mut self) {
        if !std::mem::take(&mut self.machine_registered) {
            return;
        }
        let Some(machine) = self.systemd.as_ref().and_then(|p| p.machine.clone()) else { return };
        if let Err(e) = crate::systemd::unregister_machine(&machine) {
            tracing::warn!("{e}");
        }
    }
}
