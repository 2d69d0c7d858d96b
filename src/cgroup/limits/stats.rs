//! Usage and limits read back from the kernel's cgroup files.

use std::fs;
use std::path::Path;

use serde::Serialize;

use super::V1_UNLIMITED;
use super::plan::read_u64;
use super::v1::v1_dir;
use crate::cgroup::{ContainerCgroup, Layout, V1Hierarchy};

/// Usage and limits as the kernel reports them. `None`: not available on this host,
/// or (for limits) no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub memory_current: Option<u64>,
    pub memory_peak: Option<u64>,
    pub memory_limit: Option<u64>,
    pub swap_current: Option<u64>,
    pub swap_limit: Option<u64>,
    pub oom_kills: Option<u64>,
    pub cpu_usage_usec: Option<u64>,
    pub pids_current: Option<u64>,
    pub pids_max: Option<u64>,
    pub io_read_bytes: Option<u64>,
    pub io_write_bytes: Option<u64>,
}

/// `key N` out of a flat-keyed file (memory.events, cpu.stat, memory.oom_control).
pub(super) fn keyed(path: &Path, key: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// Reads the container's usage. On hybrid hosts the controllers live in the v1
/// hierarchies (the container's cgroup2 directory has none), except that CPU time
/// falls back to cgroup2's always-present `cpu.stat` without a cpuacct hierarchy.
pub(crate) fn stats(layout: &Layout, cg: &ContainerCgroup) -> Stats {
    match layout {
        Layout::Unified { .. } => stats_v2(&cg.unified),
        Layout::Hybrid { v1, .. } => stats_v1(v1, cg),
    }
}

pub(super) fn stats_v2(dir: &Path) -> Stats {
    let f = |name: &str| dir.join(name);
    let (mut rbytes, mut wbytes) = (None::<u64>, None::<u64>);
    if let Ok(text) = fs::read_to_string(f("io.stat")) {
        let (mut r, mut w) = (0u64, 0u64);
        for field in text.split_whitespace() {
            match field.split_once('=') {
                Some(("rbytes", n)) => r = r.saturating_add(n.parse().unwrap_or(0)),
                Some(("wbytes", n)) => w = w.saturating_add(n.parse().unwrap_or(0)),
                _ => {}
            }
        }
        (rbytes, wbytes) = (Some(r), Some(w));
    }
    Stats {
        memory_current: read_u64(&f("memory.current")),
        memory_peak: read_u64(&f("memory.peak")),
        memory_limit: read_u64(&f("memory.max")),
        swap_current: read_u64(&f("memory.swap.current")),
        swap_limit: read_u64(&f("memory.swap.max")),
        oom_kills: keyed(&f("memory.events"), "oom_kill"),
        cpu_usage_usec: keyed(&f("cpu.stat"), "usage_usec"),
        pids_current: read_u64(&f("pids.current")),
        pids_max: read_u64(&f("pids.max")),
        io_read_bytes: rbytes,
        io_write_bytes: wbytes,
    }
}

pub(super) fn stats_v1(hierarchies: &[V1Hierarchy], cg: &ContainerCgroup) -> Stats {
    let file = |ctrl: &str, name: &str| v1_dir(hierarchies, &cg.v1, ctrl).map(|d| d.join(name));
    let num = |ctrl: &str, name: &str| file(ctrl, name).and_then(|p| read_u64(&p));
    let limit = |ctrl: &str, name: &str| num(ctrl, name).filter(|&n| n < V1_UNLIMITED);

    let usage = num("memory", "memory.usage_in_bytes");
    let memory_limit = limit("memory", "memory.limit_in_bytes");
    let memsw_usage = num("memory", "memory.memsw.usage_in_bytes");
    let memsw_limit = limit("memory", "memory.memsw.limit_in_bytes");
    let swap_limit = match (memsw_limit, memory_limit) {
        (Some(ms), Some(m)) => Some(ms.saturating_sub(m)),
        _ => None,
    };
    let cpu_usage_usec = num("cpuacct", "cpuacct.usage")
        .map(|ns| ns / 1000)
        .or_else(|| keyed(&cg.unified.join("cpu.stat"), "usage_usec"));

    let (mut io_read_bytes, mut io_write_bytes) = (None, None);
    let io_files = [
        "blkio.throttle.io_service_bytes_recursive",
        "blkio.throttle.io_service_bytes",
        "blkio.io_service_bytes_recursive",
        "blkio.io_service_bytes",
    ];
    if let Some(text) = io_files.iter().find_map(|n| file("blkio", n).and_then(|p| fs::read_to_string(p).ok())) {
        let (mut r, mut w) = (0u64, 0u64);
        for line in text.lines() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            if let [_dev, op, n] = parts[..] {
                let n: u64 = n.parse().unwrap_or(0);
                match op {
                    "Read" => r = r.saturating_add(n),
                    "Write" => w = w.saturating_add(n),
                    _ => {}
                }
            }
        }
        (io_read_bytes, io_write_bytes) = (Some(r), Some(w));
    }

    Stats {
        memory_current: usage,
        memory_peak: num("memory", "memory.max_usage_in_bytes"),
        memory_limit,
        swap_current: memsw_usage.zip(usage).map(|(ms, m)| ms.saturating_sub(m)),
        swap_limit,
        oom_kills: file("memory", "memory.oom_control").and_then(|p| keyed(&p, "oom_kill")),
        cpu_usage_usec,
        pids_current: num("pids", "pids.current"),
        pids_max: num("pids", "pids.max"),
        io_read_bytes,
        io_write_bytes,
    }
}
