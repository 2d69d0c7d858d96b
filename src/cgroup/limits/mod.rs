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

use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{ContainerCgroup, Layout, V1Hierarchy};

/// The smallest memory limit accepted: below this not even init starts.
pub const MIN_MEMORY: u64 = 4 << 20;
/// The CFS period used for `cpus`, in µs.
pub const CPU_PERIOD_US: u64 = 100_000;
/// The kernel's smallest CFS quota, in µs.
const MIN_QUOTA_US: u64 = 1_000;
/// The kernel's PID_MAX_LIMIT: pids.max refuses more.
pub const PID_MAX_LIMIT: u64 = 4_194_304;
/// Byte limits above this are refused (the kernel's page counters stop there).
const MAX_BYTES: u64 = i64::MAX as u64;
/// v1 reports "unlimited" as PAGE_COUNTER_MAX pages; anything this big means no limit.
const V1_UNLIMITED: u64 = 1 << 62;

/// Settable `[limits]` keys (for `hutch config set`) and their help. Per-device I/O
/// limits are `[[limits.io]]` tables, edited in the file.
pub const KEYS: &[(&str, &str)] = &[
    ("limits.memory", "memory limit, e.g. 512MiB, 2G or max (binary units, at least 4MiB)"),
    ("limits.memory_swap", "swap allowed on top of memory, e.g. 1GiB; 0 disables swap; max"),
    ("limits.cpus", "CPU time as a number of CPUs, e.g. 1.5 or 0.5; max"),
    ("limits.cpu_weight", "relative CPU weight, 1 to 10000 (default 100)"),
    ("limits.cpuset", "host CPUs it may run on, e.g. 0-1,3"),
    ("limits.pids", "most tasks (processes and threads) at once, or max"),
    ("limits.io_weight", "relative I/O weight, 1 to 10000 (default 100)"),
];

const SIZE_FORMS: &str = "use a whole number of bytes or a number with a binary unit K/KiB, M/MiB, G/GiB or T/TiB \
     (1K = 1024 bytes), e.g. 512MiB or 1.5G, or \"max\" for no limit";
const CPUS_FORMS: &str =
    "use a number of CPUs such as 2, 1.5 or 0.25 (a quota per 100 ms period, at most 5 decimals), or \"max\"";
const WEIGHT_FORMS: &str = "use a whole number from 1 to 10000 (default 100)";
const CPUSET_FORMS: &str = "use CPU numbers and ranges separated by commas, e.g. 0-1,3";
const DEVICE_FORMS: &str = "use a block device node such as /dev/sda, or MAJ:MIN such as 8:0";

#[derive(Debug, Error)]
pub enum Error {
    #[error("failed to set {key} to {value:?}: {reason}")]
    Invalid { key: String, value: String, reason: String },
    #[error("failed to set {key}: not a limits key; use one of {}", key_names())]
    UnknownKey { key: String },
    #[error("failed to write {value:?} to {path}: {source}")]
    Apply { path: PathBuf, value: String, source: io::Error },
}

fn key_names() -> String {
    KEYS.iter().map(|k| k.0).collect::<Vec<_>>().join(", ")
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
            Error::UnknownKey { .. } => Some(
                "per-device I/O limits are [[limits.io]] tables (device, read_bps, write_bps, read_iops, write_iops): edit the config file"
                    .into(),
            ),
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

/// A value as written in TOML: `pids = 100`, `pids = "100"`, `cpus = 1.5`, `memory = "1G"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Int(i64),
    Float(f64),
    Text(String),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Int(n) => write!(f, "{n}"),
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Text(s) => f.write_str(s),
        }
    }
}

impl From<&str> for Scalar {
    fn from(s: &str) -> Scalar {
        Scalar::Text(s.to_string())
    }
}

impl From<i64> for Scalar {
    fn from(n: i64) -> Scalar {
        Scalar::Int(n)
    }
}

/// The `[limits]` table. Every field is optional: absent means no limit (or the
/// default weight).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_swap: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_weight: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_weight: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io: Vec<IoLimit>,
}

/// One `[[limits.io]]` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IoLimit {
    /// A block device node (`/dev/sda`) or `MAJ:MIN`.
    pub device: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_bps: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_bps: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_iops: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_iops: Option<Scalar>,
}

/// What the limits are checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// CPUs this process may use (`available_parallelism`): the ceiling for `cpus`.
    pub cpus: u32,
    /// Online CPU numbers: what `cpuset` may name.
    pub online: Vec<u32>,
}

impl Host {
    pub fn detect() -> Host {
        let cpus = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
        let online = fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|t| parse_cpu_list(&t).ok())
            .map(|r| expand(&r))
            .unwrap_or_else(|| (0..cpus).collect());
        Host { cpus, online }
    }
}

/// Limits after validation; `None` means no limit.
#[derive(Debug, Clone, Default, PartialEq)]
struct Resolved {
    memory: Option<u64>,
    swap: Option<u64>,
    quota_us: Option<u64>,
    cpu_weight: Option<u64>,
    cpuset: Option<String>,
    pids: Option<u64>,
    io_weight: Option<u64>,
    io: Vec<Device>,
}

#[derive(Debug, Clone, PartialEq)]
struct Device {
    dev: String, // MAJ:MIN
    rbps: Option<u64>,
    wbps: Option<u64>,
    riops: Option<u64>,
    wiops: Option<u64>,
}

impl Device {
    fn limited(&self) -> bool {
        [self.rbps, self.wbps, self.riops, self.wiops].iter().any(Option::is_some)
    }
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// Checks every field against the accepted forms and the host.
    pub fn validate(&self, host: &Host) -> Result<(), Error> {
        self.resolve(host).map(drop)
    }

    fn resolve(&self, host: &Host) -> Result<Resolved, Error> {
        fn field<T>(
            key: &str,
            v: &Option<Scalar>,
            f: impl FnOnce(&Scalar) -> Result<Option<T>, String>,
        ) -> Result<Option<T>, Error> {
            match v {
                None => Ok(None),
                Some(s) => f(s).map_err(|reason| invalid(key, s, reason)),
            }
        }
        let mut r = Resolved {
            memory: field("limits.memory", &self.memory, |v| size_or_max(v, MIN_MEMORY))?,
            swap: field("limits.memory_swap", &self.memory_swap, |v| size_or_max(v, 0))?,
            quota_us: field("limits.cpus", &self.cpus, |v| cpus(v, host.cpus))?,
            cpu_weight: field("limits.cpu_weight", &self.cpu_weight, |v| weight(v).map(Some))?,
            cpuset: field("limits.cpuset", &self.cpuset, |v| cpuset(v, &host.online).map(Some))?,
            pids: field("limits.pids", &self.pids, |v| count(v, PID_MAX_LIMIT))?,
            io_weight: field("limits.io_weight", &self.io_weight, |v| weight(v).map(Some))?,
            io: vec![],
        };
        for (i, d) in self.io.iter().enumerate() {
            let key = |f: &str| format!("limits.io[{i}].{f}");
            let dev =
                device(&d.device).map_err(|reason| invalid(&key("device"), &Scalar::Text(d.device.clone()), reason))?;
            if let Some(j) = r.io.iter().position(|o| o.dev == dev) {
                return Err(invalid(
                    &key("device"),
                    &Scalar::Text(d.device.clone()),
                    format!("the same device ({dev}) as limits.io[{j}]; give each device one entry"),
                ));
            }
            r.io.push(Device {
                dev,
                rbps: field(&key("read_bps"), &d.read_bps, |v| size_or_max(v, 1))?,
                wbps: field(&key("write_bps"), &d.write_bps, |v| size_or_max(v, 1))?,
                riops: field(&key("read_iops"), &d.read_iops, |v| count(v, u32::MAX.into()))?,
                wiops: field(&key("write_iops"), &d.write_iops, |v| count(v, u32::MAX.into()))?,
            });
        }
        // Defaults are not limits (keeps warnings to what the user asked for).
        r.cpu_weight = r.cpu_weight.filter(|&w| w != 100);
        r.io_weight = r.io_weight.filter(|&w| w != 100);
        Ok(r)
    }
}

/// Checks one value for `hutch config set NAME KEY VALUE` (KEY such as `limits.memory`).
pub fn validate_key(key: &str, value: &str, host: &Host) -> Result<(), Error> {
    let mut l = Limits::default();
    let v = Some(Scalar::Text(value.to_string()));
    match key {
        "limits.memory" => l.memory = v,
        "limits.memory_swap" => l.memory_swap = v,
        "limits.cpus" => l.cpus = v,
        "limits.cpu_weight" => l.cpu_weight = v,
        "limits.cpuset" => l.cpuset = v,
        "limits.pids" => l.pids = v,
        "limits.io_weight" => l.io_weight = v,
        _ => return Err(Error::UnknownKey { key: key.to_string() }),
    }
    l.validate(host)
}

fn invalid(key: &str, value: &Scalar, reason: String) -> Error {
    Error::Invalid { key: key.to_string(), value: value.to_string(), reason }
}

fn is_max(v: &Scalar) -> bool {
    matches!(v, Scalar::Text(s) if s.trim() == "max")
}

/// A whole non-negative number written as a TOML integer or as digits.
fn whole(v: &Scalar) -> Option<u64> {
    match v {
        Scalar::Int(n) => u64::try_from(*n).ok(),
        Scalar::Text(s) => {
            let s = s.trim();
            (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
        }
        Scalar::Float(_) => None,
    }
}

fn size_or_max(v: &Scalar, min: u64) -> Result<Option<u64>, String> {
    if is_max(v) {
        return Ok(None);
    }
    let bytes = match v {
        Scalar::Int(n) => u64::try_from(*n).ok(),
        Scalar::Text(s) => crate::base::size::parse(s).ok(),
        Scalar::Float(_) => None,
    }
    .ok_or_else(|| format!("not a size; {SIZE_FORMS}"))?;
    if bytes > MAX_BYTES {
        return Err(format!("too large (at most {MAX_BYTES} bytes); use \"max\" for no limit"));
    }
    if bytes < min {
        return Err(match min {
            1 => "0 is no limit the kernel understands; use at least 1, or \"max\" for no limit".into(),
            _ => format!("below the minimum of {}; {SIZE_FORMS}", crate::base::size::human(min)),
        });
    }
    Ok(Some(bytes))
}

fn count(v: &Scalar, max: u64) -> Result<Option<u64>, String> {
    if is_max(v) {
        return Ok(None);
    }
    let forms = format!("use a whole number from 1 to {max}, or \"max\" for no limit");
    match whole(v) {
        None => Err(format!("not a whole number; {forms}")),
        Some(n) if n < 1 || n > max => Err(format!("out of range; {forms}")),
        Some(n) => Ok(Some(n)),
    }
}

fn weight(v: &Scalar) -> Result<u64, String> {
    match whole(v) {
        None => Err(format!("not a weight; {WEIGHT_FORMS}")),
        Some(n) if !(1..=10_000).contains(&n) => Err(format!("out of range; {WEIGHT_FORMS}")),
        Some(n) => Ok(n),
    }
}

/// A CPU count as an exact quota in µs per [`CPU_PERIOD_US`].
fn cpus(v: &Scalar, host_cpus: u32) -> Result<Option<u64>, String> {
    if is_max(v) {
        return Ok(None);
    }
    let text = v.to_string();
    let text = text.trim();
    let bad = || format!("not a number of CPUs; {CPUS_FORMS}");
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 9 || !digits(whole) || !digits(frac) || text.ends_with('.') {
        return Err(bad());
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > 5 {
        return Err(format!("too precise; {CPUS_FORMS}"));
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let frac_us: u64 = if frac.is_empty() { 0 } else { format!("{frac:0<5}").parse().map_err(|_| bad())? };
    let quota = whole * CPU_PERIOD_US + frac_us;
    if quota < MIN_QUOTA_US {
        return Err(format!("below the minimum of 0.01 CPUs (a 1 ms quota); {CPUS_FORMS}"));
    }
    if quota > u64::from(host_cpus) * CPU_PERIOD_US {
        return Err(format!("more than the {host_cpus} CPUs this host has; {CPUS_FORMS}"));
    }
    Ok(Some(quota))
}

/// A cpuset, checked against the online CPUs, in canonical form (`0-1,3`).
fn cpuset(v: &Scalar, online: &[u32]) -> Result<String, String> {
    let text = match v {
        Scalar::Int(n) => n.to_string(),
        Scalar::Text(s) => s.clone(),
        Scalar::Float(_) => return Err(format!("not a CPU list; {CPUSET_FORMS}")),
    };
    let ranges = parse_cpu_list(&text)?;
    for &(a, b) in &ranges {
        if let Some(cpu) = (a..=b).take(online.len() + 1).find(|c| !online.contains(c)) {
            return Err(format!(
                "CPU {cpu} is not online on this host (online: {}); {CPUSET_FORMS}",
                format_cpu_list(&to_ranges(online))
            ));
        }
    }
    Ok(format_cpu_list(&ranges))
}

/// Parses a kernel CPU list (`0-3,5`) into sorted, merged inclusive ranges.
pub fn parse_cpu_list(text: &str) -> Result<Vec<(u32, u32)>, String> {
    let t = text.trim();
    let num = |s: &str| {
        (!s.is_empty() && s.len() <= 6 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
            .ok_or_else(|| format!("not a CPU list; {CPUSET_FORMS}"))
    };
    if t.is_empty() {
        return Err(format!("empty; {CPUSET_FORMS} (remove the key to allow every CPU)"));
    }
    let mut out = Vec::new();
    for item in t.split(',') {
        let (a, b) = match item.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(item)?, num(item)?),
        };
        if a > b {
            return Err(format!("the range {item} runs backwards; {CPUSET_FORMS}"));
        }
        out.push((a, b));
    }
    out.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::new();
    for (a, b) in out {
        match merged.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    Ok(merged)
}

fn expand(ranges: &[(u32, u32)]) -> Vec<u32> {
    ranges.iter().flat_map(|&(a, b)| a..=b).collect()
}

fn to_ranges(cpus: &[u32]) -> Vec<(u32, u32)> {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for c in sorted {
        match out.last_mut() {
            Some(last) if c == last.1 + 1 => last.1 = c,
            _ => out.push((c, c)),
        }
    }
    out
}

fn format_cpu_list(ranges: &[(u32, u32)]) -> String {
    let parts: Vec<String> =
        ranges.iter().map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
    parts.join(",")
}

/// `MAJ:MIN` of a block device node, or a `MAJ:MIN` given as is.
fn device(text: &str) -> Result<String, String> {
    let t = text.trim();
    if !t.starts_with('/') {
        let num = |s: &str| s.bytes().all(|b| b.is_ascii_digit()).then(|| s.parse::<u32>().ok()).flatten();
        return match t.split_once(':').map(|(a, b)| (num(a), num(b))) {
            Some((Some(major), Some(minor))) => Ok(format!("{major}:{minor}")),
            _ => Err(format!("not a device; {DEVICE_FORMS}")),
        };
    }
    let md = fs::metadata(t).map_err(|e| format!("cannot stat it ({e}); {DEVICE_FORMS}"))?;
    let ft = md.file_type();
    if !ft.is_block_device() {
        let what = if ft.is_char_device() {
            "a character device"
        } else if ft.is_dir() {
            "a directory"
        } else {
            "not a device"
        };
        return Err(format!("{what}, not a block device; {DEVICE_FORMS}"));
    }
    let rdev = md.rdev() as libc::dev_t;
    Ok(format!("{}:{}", libc::major(rdev), libc::minor(rdev)))
}

/// One write of `value` to the cgroup file `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub path: PathBuf,
    pub value: String,
}

/// The writes that apply a [`Limits`], in order, and what could not be applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub writes: Vec<Write>,
    /// Limits this host cannot enforce (`limits.X not applied: why`); not fatal.
    pub warnings: Vec<String>,
}

impl Plan {
    fn write(&mut self, dir: &Path, file: &str, value: impl Into<String>) {
        self.writes.push(Write { path: dir.join(file), value: value.into() });
    }

    fn warn(&mut self, key: &str, why: impl fmt::Display) {
        self.warnings.push(format!("{key} not applied: {why}"));
    }
}

/// The writes that bring `cg` to `l` (defaults for unset fields). Validates `l` first.
pub fn plan(l: &Limits, layout: &Layout, cg: &ContainerCgroup, host: &Host) -> Result<Plan, Error> {
    let r = l.resolve(host)?;
    let mut p = Plan::default();
    match layout {
        Layout::Unified { .. } => plan_v2(&r, &cg.unified, &mut p),
        Layout::Hybrid { v1, .. } => plan_v1(&r, v1, &cg.v1, host, &mut p),
    }
    Ok(p)
}

/// Performs the writes in order (one write(2) each, as cgroup files want).
/// Plans and applies `l` to a container's (existing) cgroups; returns the warnings.
pub fn enforce(l: &Limits, layout: &Layout, cg: &ContainerCgroup) -> Result<Vec<String>, Error> {
    let p = plan(l, layout, cg, &Host::detect())?;
    apply(&p.writes)?;
    Ok(p.warnings)
}

pub fn apply(writes: &[Write]) -> Result<(), Error> {
    for w in writes {
        fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&w.path)
            .and_then(|mut f| f.write_all(w.value.as_bytes()))
            .map_err(|source| Error::Apply { path: w.path.clone(), value: w.value.clone(), source })?;
    }
    Ok(())
}

fn max_or<T: fmt::Display>(v: Option<T>, max: &str) -> String {
    v.map_or_else(|| max.to_string(), |n| n.to_string())
}

fn words(path: &Path) -> Option<Vec<String>> {
    fs::read_to_string(path).ok().map(|t| t.split_whitespace().map(str::to_string).collect())
}

/// Unified host: the container's own cgroup2 directory. A controller the parent does
/// not yet hand down is enabled in the parent's `cgroup.subtree_control` first (those
/// writes lead the plan); one the parent cannot have is a warning.
fn plan_v2(r: &Resolved, dir: &Path, p: &mut Plan) {
    let parent = dir.parent().unwrap_or(dir);
    let enabled = words(&parent.join("cgroup.subtree_control"));
    let available = words(&parent.join("cgroup.controllers")).unwrap_or_default();
    let mut enable = Vec::new();
    let mut usable = |ctrl: &str, wanted: &[&str], p: &mut Plan| -> bool {
        match &enabled {
            // Unknown (not readable): assume the controller is there, the kernel will say.
            None => true,
            Some(e) if e.iter().any(|c| c == ctrl) => true,
            Some(_) if available.iter().any(|c| c == ctrl) => {
                enable.push(Write { path: parent.join("cgroup.subtree_control"), value: format!("+{ctrl}") });
                true
            }
            Some(_) => {
                for key in wanted {
                    p.warn(key, format_args!("the {ctrl} controller is not available to {}", parent.display()));
                }
                false
            }
        }
    };
    let has = |f: &str| dir.join(f).exists();

    let wanted: Vec<&str> = r.cpuset.as_ref().map(|_| "limits.cpuset").into_iter().collect();
    if usable("cpuset", &wanted, p) {
        p.write(dir, "cpuset.cpus", r.cpuset.clone().unwrap_or_default());
    }

    let mut wanted = vec![];
    if r.memory.is_some() {
        wanted.push("limits.memory");
    }
    if r.swap.is_some() {
        wanted.push("limits.memory_swap");
    }
    if usable("memory", &wanted, p) {
        p.write(dir, "memory.max", max_or(r.memory, "max"));
        if has("memory.max") && !has("memory.swap.max") {
            if r.swap.is_some() {
                p.warn("limits.memory_swap", "swap accounting is off on this host (no memory.swap.max)");
            }
        } else {
            p.write(dir, "memory.swap.max", max_or(r.swap, "max"));
        }
    }

    let mut wanted = vec![];
    if r.quota_us.is_some() {
        wanted.push("limits.cpus");
    }
    if r.cpu_weight.is_some() {
        wanted.push("limits.cpu_weight");
    }
    if usable("cpu", &wanted, p) {
        p.write(dir, "cpu.max", format!("{} {CPU_PERIOD_US}", max_or(r.quota_us, "max")));
        p.write(dir, "cpu.weight", r.cpu_weight.unwrap_or(100).to_string());
    }

    let wanted: Vec<&str> = r.pids.map(|_| "limits.pids").into_iter().collect();
    if usable("pids", &wanted, p) {
        p.write(dir, "pids.max", max_or(r.pids, "max"));
    }

    let mut wanted = vec![];
    if r.io_weight.is_some() {
        wanted.push("limits.io_weight");
    }
    if r.io.iter().any(Device::limited) {
        wanted.push("limits.io");
    }
    if usable("io", &wanted, p) {
        if has("io.max") && !has("io.weight") {
            if r.io_weight.is_some() {
                p.warn("limits.io_weight", "this kernel has no io.weight (no I/O cost controller)");
            }
        } else {
            p.write(dir, "io.weight", format!("default {}", r.io_weight.unwrap_or(100)));
        }
        for d in &r.io {
            let (rb, wb, ri, wi) =
                (max_or(d.rbps, "max"), max_or(d.wbps, "max"), max_or(d.riops, "max"), max_or(d.wiops, "max"));
            p.write(dir, "io.max", format!("{} rbps={rb} wbps={wb} riops={ri} wiops={wi}", d.dev));
        }
        for dev in stale_devices(&dir.join("io.max"), &r.io) {
            p.write(dir, "io.max", format!("{dev} rbps=max wbps=max riops=max wiops=max"));
        }
    }
    p.writes.splice(0..0, enable);
}

/// Devices with a live rule in an `io.max` or `blkio.throttle.*_device` file that the
/// config no longer lists (`8:0 0` and all-`max` lines are no rule).
fn stale_devices(file: &Path, configured: &[Device]) -> Vec<String> {
    let text = fs::read_to_string(file).unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let dev = fields.next().filter(|d| d.contains(':'));
        if let Some(dev) = dev
            && fields.any(|v| v != "0" && !v.ends_with("=max"))
            && !configured.iter().any(|c| c.dev == dev)
            && !out.iter().any(|o| o == dev)
        {
            out.push(dev.to_string());
        }
    }
    out
}

/// Picks one of a device's four limits.
type Field = fn(&Device) -> Option<u64>;

/// systemd's cpu.weight → cpu.shares mapping (weight 100 = 1024 shares).
pub fn weight_to_shares(weight: u64) -> u64 {
    (weight.saturating_mul(1024) / 100).clamp(2, 262_144)
}

/// systemd's io.weight → blkio.weight mapping (weight 100 = 500; v1 takes 10..=1000).
pub fn weight_to_blkio(weight: u64) -> u64 {
    (weight.saturating_mul(500) / 100).clamp(10, 1000)
}

/// The directory of the v1 hierarchy carrying `ctrl`, if the host mounts one.
fn v1_dir<'a>(hierarchies: &[V1Hierarchy], dirs: &'a [PathBuf], ctrl: &str) -> Option<&'a Path> {
    let i = hierarchies.iter().position(|h| h.controllers.iter().any(|c| c == ctrl))?;
    dirs.get(i).map(PathBuf::as_path)
}

fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Hybrid host: the v1 directories (the cgroup2 one has no controllers).
fn plan_v1(r: &Resolved, hierarchies: &[V1Hierarchy], dirs: &[PathBuf], host: &Host, p: &mut Plan) {
    let missing = |p: &mut Plan, key: &str, ctrl: &str| p.warn(key, format_args!("this host has no {ctrl} hierarchy"));

    // First: a v1 cpuset must hold CPUs before anything moves in.
    match v1_dir(hierarchies, dirs, "cpuset") {
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

    match v1_dir(hierarchies, dirs, "memory") {
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

    match v1_dir(hierarchies, dirs, "cpu") {
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

    match v1_dir(hierarchies, dirs, "pids") {
        Some(dir) => p.write(dir, "pids.max", max_or(r.pids, "max")),
        None if r.pids.is_some() => missing(p, "limits.pids", "pids"),
        None => {}
    }

    let io_limited = r.io.iter().any(Device::limited);
    match v1_dir(hierarchies, dirs, "blkio") {
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
fn keyed(path: &Path, key: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// Reads the container's usage. On hybrid hosts the controllers live in the v1
/// hierarchies (the container's cgroup2 directory has none), except that CPU time
/// falls back to cgroup2's always-present `cpu.stat` without a cpuacct hierarchy.
pub fn stats(layout: &Layout, cg: &ContainerCgroup) -> Stats {
    match layout {
        Layout::Unified { .. } => stats_v2(&cg.unified),
        Layout::Hybrid { v1, .. } => stats_v1(v1, cg),
    }
}

fn stats_v2(dir: &Path) -> Stats {
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

fn stats_v1(hierarchies: &[V1Hierarchy], cg: &ContainerCgroup) -> Stats {
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

#[cfg(test)]
mod tests;
