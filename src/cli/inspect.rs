//! list, info, logs.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use serde::Serialize;

use crate::base::output::{self, Format};
use crate::base::paths::Paths;
use crate::base::state::LastExit;
use crate::config::Config;
use crate::container::{self, Observed, Status};
use crate::error::Error;

#[derive(Serialize)]
struct ListEntry {
    name: String,
    state: Status,
    /// Why the state is `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    unknown: Option<String>,
    pid: Option<i32>,
    privileged: bool,
    started_at_ms: Option<u64>,
    ipv4: Vec<String>,
    ipv6: Vec<String>,
    /// `None` when the snapshots cannot be read.
    snapshots: Option<usize>,
}

fn entry(paths: &Paths, name: &str, obs: &Observed) -> ListEntry {
    let config = Config::load(&paths.config(name)).ok();
    let nics = config.as_ref().map(|c| crate::network::attach::info(paths, name, c)).unwrap_or_default();
    ListEntry {
        ipv4: nics.iter().filter_map(|n| n.ipv4.clone()).collect(),
        ipv6: nics.iter().filter_map(|n| n.ipv6.clone()).collect(),
        name: name.into(),
        state: obs.status,
        unknown: obs.unknown.as_ref().map(|u| format!("the state of {name} is {u}")),
        pid: obs.init_pid(),
        privileged: config.as_ref().is_some_and(|c| c.security.privileged),
        started_at_ms: obs.state.as_ref().filter(|_| obs.status.is_up()).map(|s| s.started_at_ms),
        snapshots: container::snapshots::count(paths, name),
    }
}

pub fn list(paths: &Paths, format: Format) -> Result<u8, Error> {
    let entries: Vec<ListEntry> =
        container::list_names(paths).iter().map(|n| entry(paths, n, &container::observe(paths, n))).collect();
    match format {
        Format::Json => {
            super::emit_json("containers", &entries)?;
        }
        Format::Text => {
            let now = crate::base::fsutil::now_ms();
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    vec![
                        e.name.clone(),
                        e.state.as_str().to_uppercase(),
                        e.pid.map_or("-".into(), |p| p.to_string()),
                        if e.ipv4.is_empty() { "-".into() } else { e.ipv4.join(",") },
                        if e.ipv6.is_empty() { "-".into() } else { e.ipv6.join(",") },
                        if e.privileged { "privileged".into() } else { "unprivileged".into() },
                        e.started_at_ms.map_or("-".into(), |t| output::duration(now.saturating_sub(t) / 1000)),
                        e.snapshots.map_or("?".into(), |n| n.to_string()),
                    ]
                })
                .collect();
            super::emit(&output::table(
                &["NAME", "STATE", "PID", "IPV4", "IPV6", "TYPE", "UPTIME", "SNAPSHOTS"],
                &rows,
            ))?;
        }
    }
    Ok(0)
}

#[derive(Serialize)]
struct Info {
    name: String,
    state: Status,
    /// Why the state is `unknown`, and what to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    unknown: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unknown_hint: Option<String>,
    pid: Option<i32>,
    monitor_pid: Option<i32>,
    privileged: bool,
    idmap: Option<crate::idmap::IdMap>,
    hostname: String,
    init: Vec<String>,
    halt_signal: String,
    ready: crate::config::Ready,
    started_at_ms: Option<u64>,
    boot_ms: Option<u64>,
    boots: Option<u32>,
    /// When each stage of the start happened (CLOCK_BOOTTIME, µs) and hutch's share.
    #[serde(skip_serializing_if = "Option::is_none")]
    timeline: Option<crate::monitor::timeline::Timeline>,
    cgroup: Option<crate::cgroup::ContainerCgroup>,
    rootfs: String,
    config: String,
    last_exit: Option<LastExit>,
    nics: Vec<crate::network::attach::NicInfo>,
    ports: Vec<crate::config::Port>,
    /// Resource use and limits, read from the cgroups while it runs.
    resources: Option<crate::cgroup::limits::Stats>,
    /// Disk use of its own data and of each snapshot.
    disk: container::snapshots::Usage,
    ephemeral: bool,
    /// The restart policy, and the restarts it made under the running monitor.
    restart: crate::config::Restart,
    restarts: u32,
    last_restart: Option<LastExit>,
    autostart: crate::config::Autostart,
}

pub fn info(paths: &Paths, name: &str, format: Format) -> Result<u8, Error> {
    container::require_exists(paths, name)?;
    let config = Config::load(&paths.config(name))?;
    let obs = container::observe(paths, name);
    let up = obs.status.is_up();
    let st = obs.state.as_ref().filter(|_| up);
    let info = Info {
        name: name.into(),
        state: obs.status,
        unknown: obs.unknown.as_ref().map(|u| format!("the state of {name} is {u}")),
        unknown_hint: obs.unknown.as_ref().map(|u| u.hint(name)),
        pid: obs.init_pid(),
        monitor_pid: st.filter(|_| obs.monitor_alive).map(|s| s.monitor.pid),
        privileged: config.security.privileged,
        idmap: st.and_then(|s| s.idmap),
        hostname: config.hostname.clone().unwrap_or_else(|| name.into()),
        init: config.init.command.clone(),
        halt_signal: config.init.halt_signal.to_string(),
        ready: config.init.ready,
        started_at_ms: st.map(|s| s.started_at_ms),
        boot_ms: st.and_then(|s| s.ready_at_ms.map(|r| r.saturating_sub(s.started_at_ms))),
        boots: st.map(|s| s.boots),
        restart: config.restart,
        restarts: st.map_or(0, |s| s.restarts),
        last_restart: st.and_then(|s| s.last_restart.clone()),
        autostart: config.autostart.clone(),
        timeline: st.and_then(|s| s.timeline.clone()),
        cgroup: st.map(|s| s.cgroup.clone()),
        rootfs: config.rootfs_path(&paths.container(name)).display().to_string(),
        config: paths.config(name).display().to_string(),
        last_exit: LastExit::load(&paths.last_exit(name)),
        nics: crate::network::attach::info(paths, name, &config),
        ports: config.ports.clone(),
        resources: st.and_then(|s| {
            let layout = crate::cgroup::Layout::detect().ok()?;
            Some(crate::cgroup::limits::stats(&layout, &s.cgroup))
        }),
        disk: container::snapshots::usage(paths, name, &config)?,
        ephemeral: config.ephemeral,
    };
    if format == Format::Json {
        super::emit_object(&info)?;
        return Ok(0);
    }
    let now = crate::base::fsutil::now_ms();
    let mut items: Vec<(&str, String)> =
        vec![("Name", info.name.clone()), ("State", info.status_text(obs.monitor_alive))];
    if let Some(h) = &info.unknown_hint {
        items.push(("Hint", h.clone()));
    }
    if let Some(p) = info.pid {
        items.push((
            "PID",
            format!("{p} (init){}", info.monitor_pid.map_or(String::new(), |m| format!(", monitor {m}"))),
        ));
    }
    items.push((
        "Type",
        match (&info.idmap, info.privileged) {
            (_, true) => "privileged (container root is host root)".into(),
            (Some(m), false) => format!("unprivileged ({m})"),
            (None, false) => "unprivileged".into(),
        },
    ));
    items.push(("Hostname", info.hostname.clone()));
    items.push((
        "Init",
        format!(
            "{} (halt: {}, ready: {})",
            info.init.join(" "),
            info.halt_signal,
            match info.ready {
                crate::config::Ready::Notify => "notify",
                crate::config::Ready::Exec => "exec",
            }
        ),
    ));
    if let Some(t) = info.started_at_ms {
        let boot = info.boot_ms.map_or(String::new(), |b| format!(", booted in {:.2} s", b as f64 / 1000.0));
        items.push((
            "Started",
            format!("{} (up {}{boot})", output::utc(t), output::duration(now.saturating_sub(t) / 1000)),
        ));
    }
    if let Some(b) = info.boots.filter(|b| *b > 1) {
        let why = if info.restarts > 0 { "rebooted from inside or restarted" } else { "rebooted from inside" };
        items.push(("Boots", format!("{b} ({why})")));
    }
    if info.restart != crate::config::Restart::No {
        let policy =
            serde_json::to_value(info.restart).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        let last = match &info.last_restart {
            Some(l) => format!(", last after: {} ({})", l.detail, output::utc(l.at_ms)),
            None => String::new(),
        };
        let n = match info.restarts {
            1 => "1 restart".to_string(),
            n => format!("{n} restarts"),
        };
        items.push(("Restart", format!("{policy}: {n}{last}")));
    }
    if info.autostart.enabled {
        let a = &info.autostart;
        items.push(("Autostart", format!("order {}, then {} s", a.order, a.delay)));
    }
    if let Some(t) = &info.timeline {
        items.push(("Timeline", t.describe()));
    }
    if let Some(cg) = &info.cgroup {
        items.push(("Cgroup", cg.unified.display().to_string()));
    }
    if let Some(r) = &info.resources {
        resource_lines(r, &mut items);
    }
    for n in &info.nics {
        let traffic = match (n.rx_bytes, n.tx_bytes) {
            (Some(rx), Some(tx)) => format!(", rx {rx} B, tx {tx} B"),
            _ => String::new(),
        };
        items.push((
            "Network",
            format!(
                "{} on {}: {}{} mac {}, host veth {}{traffic}",
                n.name,
                n.network,
                n.ipv4.as_deref().unwrap_or("no address"),
                n.ipv6.as_deref().map(|a| format!(", {a}")).unwrap_or_default(),
                n.mac,
                n.host_veth
            ),
        ));
    }
    for p in &info.ports {
        items.push((
            "Port",
            format!(
                "{}:{} -> {}/{}",
                p.host_ip.map_or_else(|| "*".to_string(), |ip| ip.to_string()),
                p.host_port,
                p.container_port,
                p.proto
            ),
        ));
    }
    items.push((
        "Rootfs",
        format!(
            "{} ({} storage{})",
            info.rootfs,
            info.disk.storage.as_str(),
            if info.ephemeral { ", ephemeral" } else { "" }
        ),
    ));
    items.push(("Disk", format!("{} of its own", output::bytes(info.disk.own))));
    for s in &info.disk.snapshots {
        items.push(("Snapshot", format!("{} ({}, {})", s.name, output::utc(s.created_ms), output::bytes(s.size))));
    }
    items.push(("Config", info.config.clone()));
    if let Some(l) = &info.last_exit {
        items.push(("Last exit", format!("{} ({})", l.detail, output::utc(l.at_ms))));
    }
    super::emit(&output::pairs(&items))?;
    Ok(0)
}

impl Info {
    fn status_text(&self, monitor_alive: bool) -> String {
        let s = self.state.as_str().to_string();
        if let Some(why) = &self.unknown {
            return format!("{s}: {why}");
        }
        if self.state.is_up() && !monitor_alive { format!("{s} (its monitor is gone; stop still works)") } else { s }
    }
}

/// Where log bytes go: raw to stdout, or as JSON Lines (`{"format_version": 1, "log":
/// "console", "line": "..."}`), holding back a partial last line until it is complete.
struct LogOut {
    json: Option<&'static str>,
    partial: Vec<u8>,
}

impl LogOut {
    /// Writes `bytes`; false once stdout is gone (the reader has had enough).
    fn write(&mut self, bytes: &[u8]) -> bool {
        let mut out = std::io::stdout().lock();
        let Some(log) = self.json else {
            return out.write_all(bytes).and_then(|_| out.flush()).is_ok();
        };
        self.partial.extend_from_slice(bytes);
        while let Some(nl) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).trim_end_matches('\r').to_string();
            if output::json_line(&mut out, &serde_json::json!({ "log": log, "line": text })).is_err() {
                return false;
            }
        }
        out.flush().is_ok()
    }
}

/// Bytes of `path` from `pos` to its end.
fn read_from(path: &std::path::Path, pos: u64) -> Option<Vec<u8>> {
    let mut f = std::fs::File::open(path).ok()?;
    f.seek(SeekFrom::Start(pos)).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    Some(buf)
}

pub fn logs(paths: &Paths, name: &str, follow: bool, monitor: bool, format: Format) -> Result<u8, Error> {
    container::require_exists(paths, name)?;
    let path = if monitor { paths.monitor_log(name) } else { paths.console_log(name) };
    let older = path.with_extension("log.1");
    let mut out = LogOut {
        json: (format == Format::Json).then_some(if monitor { "monitor" } else { "console" }),
        partial: Vec::new(),
    };
    for p in [&older, &path] {
        if let Some(bytes) = read_from(p, 0) {
            if !out.write(&bytes) {
                return Ok(0);
            }
        }
    }
    if !follow {
        return Ok(0);
    }
    let mut pos = std::fs::metadata(&path).map_or(0, |m| m.len());
    let mut ino = inode(&path);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now_ino = inode(&path);
        if now_ino != ino {
            // Rotated: finish the old file (now NAME.log.1), then start the new one.
            if inode(&older) == ino {
                if let Some(rest) = read_from(&older, pos) {
                    if !out.write(&rest) {
                        return Ok(0);
                    }
                }
            }
            ino = now_ino;
            pos = 0;
        }
        let len = std::fs::metadata(&path).map_or(0, |m| m.len());
        if len < pos {
            pos = 0;
        }
        if len > pos {
            if let Some(buf) = read_from(&path, pos) {
                pos += buf.len() as u64;
                if !out.write(&buf) {
                    return Ok(0);
                }
            }
        }
    }
}

/// Inode of `p`, 0 while it does not exist (between a rotation's rename and create).
fn inode(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| std::os::unix::fs::MetadataExt::ino(&m))
}

/// What `info` shows of a running container's resource use.
fn resource_lines(r: &crate::cgroup::limits::Stats, items: &mut Vec<(&str, String)>) {
    let of = |cur: Option<u64>, max: Option<u64>, fmt: &dyn Fn(u64) -> String| match (cur, max) {
        (Some(c), Some(m)) => format!("{} of {}", fmt(c), fmt(m)),
        (Some(c), None) => format!("{} (no limit)", fmt(c)),
        _ => "-".into(),
    };
    let mut mem = of(r.memory_current, r.memory_limit, &output::bytes);
    if let Some(p) = r.memory_peak {
        mem.push_str(&format!(", peak {}", output::bytes(p)));
    }
    if let Some(s) = r.swap_current {
        mem.push_str(&format!(", swap {}", of(Some(s), r.swap_limit, &output::bytes)));
    }
    if let Some(k) = r.oom_kills {
        mem.push_str(&format!(", OOM kills {k}"));
    }
    items.push(("Memory", mem));
    if let Some(us) = r.cpu_usage_usec {
        items.push(("CPU time", format!("{:.2} s", us as f64 / 1e6)));
    }
    items.push(("Processes", of(r.pids_current, r.pids_max, &|n| n.to_string())));
    if r.io_read_bytes.is_some() || r.io_write_bytes.is_some() {
        items.push((
            "IO",
            format!(
                "read {}, written {}",
                output::bytes(r.io_read_bytes.unwrap_or(0)),
                output::bytes(r.io_write_bytes.unwrap_or(0))
            ),
        ));
    }
}
