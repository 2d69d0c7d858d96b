//! Resource limits: the `[limits]` table of a container's config, checked against the
//! host, mapped to cgroup files for either host layout, and read back as [`Stats`].
//!
//! ```toml
//! [limits]
//! memory = "512MiB"      # or "max"; at least 4MiB
//! memory_swap = "1GiB"   # swap on top of memory; "0" disables swap; "max"
//! cpus = 1.5             # quota in CPUs (per 100 ms period); "max"
//! cpu_weight = 200       # 1..=10000, default 100
//! cpuset = "0-1,3"       # online host CPUs
//! pids = 512             # 1..=4194304 or "max"
//! io_weight = 100        # 1..=10000, default 100
//! [[limits.io]]
//! device = "/dev/sda"    # a block device node, or "8:0"
//! read_bps = "10MiB"     # sizes as below; iops are counts; "max" or absent = none
//! write_iops = 100
//! ```
//!
//! Sizes follow [`crate::base::size`]: binary units (K = KiB = 1024, M, G, T; also KB, MB…
//! and `k`), as in LXC, systemd and the kernel's own files. Bad values are refused with
//! the accepted forms, never clamped.
//!
//! | field | cgroup2 (unified) | cgroup v1 (hybrid) |
//! |---|---|---|
//! | memory | `memory.max` (N, `max`) | `memory.limit_in_bytes` (N, `-1`) |
//! | memory_swap | `memory.swap.max` (N, `max`) | `memory.memsw.limit_in_bytes` = memory + swap (`-1`); only with swap accounting |
//! | cpus | `cpu.max` (`Q 100000`, `max 100000`) | `cpu.cfs_period_us` 100000, `cpu.cfs_quota_us` (Q, `-1`) |
//! | cpu_weight | `cpu.weight` (default 100) | `cpu.shares` = clamp(w·1024/100, 2, 262144) (systemd's mapping; default 1024) |
//! | cpuset | `cpuset.cpus` (`""` = inherit) | `cpuset.cpus` (reset = the parent's) |
//! | pids | `pids.max` (N, `max`) | `pids.max` (N, `max`) |
//! | io_weight | `io.weight` (`default W`) | `blkio.weight` = clamp(w·500/100, 10, 1000) (systemd's mapping; default 500) |
//! | io | `io.max` (`M:m rbps= wbps= riops= wiops=`, `max` if unset) | `blkio.throttle.{read,write}_{bps,iops}_device` (`M:m N`, `M:m 0` removes) |
//!
//! [`plan`] always writes every file its controllers offer, unset fields as their
//! defaults, so a live change that drops a limit takes effect; per-device I/O rules
//! the cgroup has but the config no longer lists are removed. Call it once the cgroup
//! exists (after `ContainerCgroup::create`): it reads the current files to order the
//! writes and to see what the kernel offers.

mod parse;
mod plan;
mod schema;
mod stats;
mod v1;
mod v2;

use std::io;
use std::path::PathBuf;

use thiserror::Error;

pub(crate) use plan::enforce;
pub(crate) use schema::{Host, Limits};
pub(crate) use stats::{Stats, stats};
#[cfg(test)]
use {
    parse::{expand, format_cpu_list, parse_cpu_list, to_ranges},
    plan::{Plan, Write, apply, plan},
    schema::Scalar,
    v1::{weight_to_blkio, weight_to_shares},
};

/// The smallest memory limit accepted: below this not even init starts.
pub(crate) const MIN_MEMORY: u64 = 4 << 20;
/// The CFS period used for `cpus`, in µs.
pub(crate) const CPU_PERIOD_US: u64 = 100_000;
/// The kernel's smallest CFS quota, in µs.
const MIN_QUOTA_US: u64 = 1_000;
/// The kernel's PID_MAX_LIMIT: pids.max refuses more.
pub(crate) const PID_MAX_LIMIT: u64 = 4_194_304;
/// Byte limits above this are refused (the kernel's page counters stop there).
const MAX_BYTES: u64 = i64::MAX as u64;
/// v1 reports "unlimited" as PAGE_COUNTER_MAX pages; anything this big means no limit.
const V1_UNLIMITED: u64 = 1 << 62;

/// Settable `[limits]` keys (for `hutch config set`) and their help. Per-device I/O
/// limits are `[[limits.io]]` tables, edited in the file.
pub(crate) const KEYS: &[(&str, &str)] = &[
    ("limits.memory", "memory limit, e.g. 512MiB, 2G or max (binary units, at least 4MiB)"),
    ("limits.memory_swap", "swap allowed on top of memory, e.g. 1GiB; 0 disables swap; max"),
    ("limits.cpus", "CPU time as a number of CPUs, e.g. 1.5 or 0.5; max"),
    ("limits.cpu_weight", "relative CPU weight, 1 to 10000 (default 100)"),
    ("limits.cpuset", "host CPUs it may run on, e.g. 0-1,3"),
    ("limits.pids", "most tasks (processes and threads) at once, or max"),
    ("limits.io_weight", "relative I/O weight, 1 to 10000 (default 100)"),
];

#[derive(Debug, Error)]
pub enum Error {
    #[error("failed to set {key} to {value:?}: {reason}")]
    Invalid { key: String, value: String, reason: String },
    #[error("failed to write {value:?} to {path}: {source}")]
    Apply { path: PathBuf, value: String, source: io::Error },
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Invalid { key, .. } if key.ends_with(".device") => {
                Some("`lsblk -o NAME,MAJ:MIN` lists the host's block devices".into())
            }
            Error::Invalid { key, .. } if key == "limits.cpuset" => {
                Some("the host's online CPUs are listed in /sys/devices/system/cpu/online".into())
            }
            Error::Invalid { .. } => Some("remove the key for no limit".into()),
            Error::Apply { source, .. } => match source.raw_os_error() {
                Some(libc::EBUSY) => {
                    Some("the container uses more than the new limit: free memory inside it or pick a higher one".into())
                }
                Some(libc::EINVAL) => Some(
                    "the kernel refused the value: a cpuset must lie within the parent cgroup's, and a quota within the parent's"
                        .into(),
                ),
                Some(libc::ENODEV) => Some("the block device is gone: fix or remove its [[limits.io]] entry".into()),
                Some(libc::ENOENT) => {
                    Some("the cgroup or its controller is missing: is the container running?".into())
                }
                Some(libc::EACCES) | Some(libc::EPERM) => Some("run hutch as root".into()),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests;
