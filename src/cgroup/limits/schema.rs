//! The `[limits]` table as written in a config, the host it is checked against, and its
//! resolution into checked numbers ([`Resolved`]) that the plans write.

use std::fmt;
use std::fs;

use serde::{Deserialize, Serialize};

use super::parse::{count, cpus, cpuset, device, expand, invalid, parse_cpu_list, size_or_max, weight};
use super::{Error, MIN_MEMORY, PID_MAX_LIMIT};

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
pub(super) struct Resolved {
    pub(super) memory: Option<u64>,
    pub(super) swap: Option<u64>,
    pub(super) quota_us: Option<u64>,
    pub(super) cpu_weight: Option<u64>,
    pub(super) cpuset: Option<String>,
    pub(super) pids: Option<u64>,
    pub(super) io_weight: Option<u64>,
    pub(super) io: Vec<Device>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Device {
    pub(super) dev: String, // MAJ:MIN
    pub(super) rbps: Option<u64>,
    pub(super) wbps: Option<u64>,
    pub(super) riops: Option<u64>,
    pub(super) wiops: Option<u64>,
}

impl Device {
    pub(super) fn limited(&self) -> bool {
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

    pub(super) fn resolve(&self, host: &Host) -> Result<Resolved, Error> {
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
