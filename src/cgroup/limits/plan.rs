//! A plan: the ordered cgroup file writes that bring a container's cgroups to its
//! limits, and applying it.

use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::schema::{Device, Host, Limits};
use super::{Error, v1, v2};
use crate::cgroup::{ContainerCgroup, Layout};

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
    pub(super) fn write(&mut self, dir: &Path, file: &str, value: impl Into<String>) {
        self.writes.push(Write { path: dir.join(file), value: value.into() });
    }

    pub(super) fn warn(&mut self, key: &str, why: impl fmt::Display) {
        self.warnings.push(format!("{key} not applied: {why}"));
    }
}

/// The writes that bring `cg` to `l` (defaults for unset fields). Validates `l` first.
pub(crate) fn plan(l: &Limits, layout: &Layout, cg: &ContainerCgroup, host: &Host) -> Result<Plan, Error> {
    let r = l.resolve(host)?;
    let mut p = Plan::default();
    match layout {
        Layout::Unified { .. } => v2::plan(&r, &cg.unified, &mut p),
        Layout::Hybrid { v1, .. } => v1::plan(&r, v1, &cg.v1, host, &mut p),
    }
    Ok(p)
}

/// Performs the writes in order (one write(2) each, as cgroup files want).
/// Plans and applies `l` to a container's (existing) cgroups; returns the warnings.
pub(crate) fn enforce(l: &Limits, layout: &Layout, cg: &ContainerCgroup) -> Result<Vec<String>, Error> {
    let p = plan(l, layout, cg, &Host::detect())?;
    apply(&p.writes)?;
    Ok(p.warnings)
}

pub(crate) fn apply(writes: &[Write]) -> Result<(), Error> {
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

pub(super) fn max_or<T: fmt::Display>(v: Option<T>, max: &str) -> String {
    v.map_or_else(|| max.to_string(), |n| n.to_string())
}

pub(super) fn words(path: &Path) -> Option<Vec<String>> {
    fs::read_to_string(path).ok().map(|t| t.split_whitespace().map(str::to_string).collect())
}

/// Devices with a live rule in an `io.max` or `blkio.throttle.*_device` file that the
/// config no longer lists (`8:0 0` and all-`max` lines are no rule).
pub(super) fn stale_devices(file: &Path, configured: &[Device]) -> Vec<String> {
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

pub(super) fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}
