//! The plan on a hybrid host: the cgroup v1 hierarchies.

use std::fs;
use std::path::{Path, PathBuf};

use super::CPU_PERIOD_US;
use super::parse::{format_cpu_list, to_ranges};
use super::plan::{Plan, max_or, read_u64, stale_devices};
use super::schema::{Device, Host, Resolved};
use crate::cgroup::V1Hierarchy;

/// Picks one of a device's four limits.
pub(super) type Field = fn(&Device) -> Option<u64>;

/// systemd's cpu.weight → cpu.shares mapping (weight 100 = 1024 shares).
pub(crate) fn weight_to_shares(weight: u64) -> u64 {
    (weight.saturating_mul(1024) / 100).clamp(2, 262_144)
}

/// systemd's io.weight → blkio.weight mapping (weight 100 = 500; v1 takes 10..=1000).
pub(crate) fn weight_to_blkio(weight: u64) -> u64 {
    (weight.saturating_mul(500) / 100).clamp(10, 1000)
}

/// The directory of the v1 hierarchy carrying `ctrl`, if the host mounts one.
pub(super) fn v1_dir<'a>(hierarchies: &[V1Hierarchy], dirs: &'a [PathBuf], ctrl: &str) -> Option<&'a Path> {
    let i = hierarchies.iter().position(|h| h.controllers.iter().any(|c| c == ctrl))?;
    dirs.get(i).map(PathBuf::as_path)
}

/// Hybrid host: the v1 directories (the cgroup2 one has no controllers).
pub(super) fn plan(r: &Resolved, hierarchies: &[V1Hierarchy], dirs: &[PathBuf], host: &Host, p: &mut Plan) {
    let dir = |ctrl: &str| v1_dir(hierarchies, dirs, ctrl);
    // First: a v1 cpuset must hold CPUs before anything moves in.
    cpuset(r, dir("cpuset"), host, p);
    memory(r, dir("memory"), p);
    cpu(r, dir("cpu"), p);
    pids(r, dir("pids"), p);
    blkio(r, dir("blkio"), p);
}

fn missing(p: &mut Plan, key: &str, ctrl: &str) {
    p.warn(key, format_args!("this host has no {ctrl} hierarchy"));
}

/// The cpuset: the configured CPUs, or the parent's (a v1 cpuset starts empty).
fn cpuset(r: &Resolved, dir: Option<&Path>, host: &Host, p: &mut Plan) {
    match dir {
        Some(dir) => {
            let value = r.cpuset.clone().unwrap_or_else(|| {
                dir.parent()
                    .and_then(|pd| fs::read_to_string(pd.join("cpuset.cpus")).ok())
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| format_cpu_list(&to_ranges(&host.online)))
            });
            p.write(dir, "cpuset.cpus", value);
        }
        None if r.cpuset.is_some() => missing(p, "limits.cpuset", "cpuset"),
        None => {}
    }
}

/// Memory and memory+swap, in the order the kernel accepts.
fn memory(r: &Resolved, dir: Option<&Path>, p: &mut Plan) {
    match dir {
        Some(dir) => {
            let limit = max_or(r.memory, "-1");
            if !dir.join("memory.memsw.limit_in_bytes").exists() {
                p.write(dir, "memory.limit_in_bytes", limit);
                if r.swap.is_some() {
                    p.warn(
                        "limits.memory_swap",
                        "swap accounting is off on this host (no memory.memsw.limit_in_bytes; boot with swapaccount=1)",
                    );
                }
            } else {
                // v1 bounds memory+swap together, and the kernel insists memsw >= limit
                // at every step: raise memsw first when the new limit exceeds it.
                let memsw = match (r.memory, r.swap) {
                    (Some(m), Some(s)) => Some(m + s),
                    _ => None,
                };
                if r.memory.is_none() && r.swap.is_some() {
                    p.warn("limits.memory_swap", "cgroup v1 bounds memory plus swap, which needs limits.memory too");
                }
                let current = read_u64(&dir.join("memory.memsw.limit_in_bytes"));
                let memsw_first = current.is_some_and(|c| r.memory.unwrap_or(u64::MAX) > c);
                let memsw = max_or(memsw, "-1");
                if memsw_first {
                    p.write(dir, "memory.memsw.limit_in_bytes", memsw);
                    p.write(dir, "memory.limit_in_bytes", limit);
                } else {
                    p.write(dir, "memory.limit_in_bytes", limit);
                    p.write(dir, "memory.memsw.limit_in_bytes", memsw);
                }
            }
        }
        None => {
            if r.memory.is_some() {
                missing(p, "limits.memory", "memory");
            }
            if r.swap.is_some() {
                missing(p, "limits.memory_swap", "memory");
            }
        }
    }
}

/// CFS quota and shares.
fn cpu(r: &Resolved, dir: Option<&Path>, p: &mut Plan) {
    match dir {
        Some(dir) => {
            p.write(dir, "cpu.cfs_period_us", CPU_PERIOD_US.to_string());
            p.write(dir, "cpu.cfs_quota_us", max_or(r.quota_us, "-1"));
            p.write(dir, "cpu.shares", weight_to_shares(r.cpu_weight.unwrap_or(100)).to_string());
        }
        None => {
            if r.quota_us.is_some() {
                missing(p, "limits.cpus", "cpu");
            }
            if r.cpu_weight.is_some() {
                missing(p, "limits.cpu_weight", "cpu");
            }
        }
    }
}

/// The task limit.
fn pids(r: &Resolved, dir: Option<&Path>, p: &mut Plan) {
    match dir {
        Some(dir) => p.write(dir, "pids.max", max_or(r.pids, "max")),
        None if r.pids.is_some() => missing(p, "limits.pids", "pids"),
        None => {}
    }
}

/// Weight and per-device throttles.
fn blkio(r: &Resolved, dir: Option<&Path>, p: &mut Plan) {
    let io_limited = r.io.iter().any(Device::limited);
    match dir {
        Some(dir) => {
            if dir.join("blkio.weight").exists() {
                p.write(dir, "blkio.weight", weight_to_blkio(r.io_weight.unwrap_or(100)).to_string());
            } else if r.io_weight.is_some() {
                p.warn("limits.io_weight", "the I/O scheduler offers no blkio.weight");
            }
            let files: [(&str, Field); 4] = [
                ("blkio.throttle.read_bps_device", |d| d.rbps),
                ("blkio.throttle.write_bps_device", |d| d.wbps),
                ("blkio.throttle.read_iops_device", |d| d.riops),
                ("blkio.throttle.write_iops_device", |d| d.wiops),
            ];
            if !dir.join(files[0].0).exists() {
                if io_limited {
                    p.warn("limits.io", "this kernel has no blkio throttling (no blkio.throttle.* files)");
                }
                return;
            }
            for (file, get) in files {
                for d in &r.io {
                    p.write(dir, file, format!("{} {}", d.dev, get(d).unwrap_or(0)));
                }
                for dev in stale_devices(&dir.join(file), &r.io) {
                    p.write(dir, file, format!("{dev} 0"));
                }
            }
        }
        None => {
            if r.io_weight.is_some() {
                missing(p, "limits.io_weight", "blkio");
            }
            if io_limited {
                missing(p, "limits.io", "blkio");
            }
        }
    }
}
