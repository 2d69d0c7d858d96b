//! The plan on a unified (cgroup2) host.

use std::path::Path;

use super::CPU_PERIOD_US;
use super::plan::{Plan, Write, max_or, stale_devices, words};
use super::schema::{Device, Resolved};

/// Unified host: the container's own cgroup2 directory. A controller the parent does
/// not yet hand down is enabled in the parent's `cgroup.subtree_control` first (those
/// writes lead the plan); one the parent cannot have is a warning.
pub(super) fn plan(r: &Resolved, dir: &Path, p: &mut Plan) {
    let mut parent = Parent::read(dir);
    cpuset(r, dir, &mut parent, p);
    memory(r, dir, &mut parent, p);
    cpu(r, dir, &mut parent, p);
    pids(r, dir, &mut parent, p);
    io(r, dir, &mut parent, p);
    p.writes.splice(0..0, parent.enable);
}

/// The parent cgroup: which controllers it hands down, which it could, and the writes
/// that enable the missing ones.
struct Parent<'a> {
    dir: &'a Path,
    /// `None`: not readable.
    enabled: Option<Vec<String>>,
    available: Vec<String>,
    enable: Vec<Write>,
}

impl<'a> Parent<'a> {
    fn read(dir: &'a Path) -> Parent<'a> {
        let parent = dir.parent().unwrap_or(dir);
        Parent {
            dir: parent,
            enabled: words(&parent.join("cgroup.subtree_control")),
            available: words(&parent.join("cgroup.controllers")).unwrap_or_default(),
            enable: Vec::new(),
        }
    }

    /// Whether `ctrl` can be used (enabling it in the parent if needed); if not, warns
    /// that the `wanted` keys are not applied.
    fn usable(&mut self, ctrl: &str, wanted: &[&str], p: &mut Plan) -> bool {
        match &self.enabled {
            // Unknown (not readable): assume the controller is there, the kernel will say.
            None => true,
            Some(e) if e.iter().any(|c| c == ctrl) => true,
            Some(_) if self.available.iter().any(|c| c == ctrl) => {
                self.enable.push(Write { path: self.dir.join("cgroup.subtree_control"), value: format!("+{ctrl}") });
                true
            }
            Some(_) => {
                for key in wanted {
                    p.warn(key, format_args!("the {ctrl} controller is not available to {}", self.dir.display()));
                }
                false
            }
        }
    }
}

/// The keys among `(key, set)` that are set.
fn wanted<'k>(keys: &[(&'k str, bool)]) -> Vec<&'k str> {
    keys.iter().filter(|(_, set)| *set).map(|(k, _)| *k).collect()
}

fn cpuset(r: &Resolved, dir: &Path, parent: &mut Parent, p: &mut Plan) {
    if parent.usable("cpuset", &wanted(&[("limits.cpuset", r.cpuset.is_some())]), p) {
        p.write(dir, "cpuset.cpus", r.cpuset.clone().unwrap_or_default());
    }
}

fn memory(r: &Resolved, dir: &Path, parent: &mut Parent, p: &mut Plan) {
    let wanted = wanted(&[("limits.memory", r.memory.is_some()), ("limits.memory_swap", r.swap.is_some())]);
    if !parent.usable("memory", &wanted, p) {
        return;
    }
    p.write(dir, "memory.max", max_or(r.memory, "max"));
    if dir.join("memory.max").exists() && !dir.join("memory.swap.max").exists() {
        if r.swap.is_some() {
            p.warn("limits.memory_swap", "swap accounting is off on this host (no memory.swap.max)");
        }
    } else {
        p.write(dir, "memory.swap.max", max_or(r.swap, "max"));
    }
}

fn cpu(r: &Resolved, dir: &Path, parent: &mut Parent, p: &mut Plan) {
    let wanted = wanted(&[("limits.cpus", r.quota_us.is_some()), ("limits.cpu_weight", r.cpu_weight.is_some())]);
    if parent.usable("cpu", &wanted, p) {
        p.write(dir, "cpu.max", format!("{} {CPU_PERIOD_US}", max_or(r.quota_us, "max")));
        p.write(dir, "cpu.weight", r.cpu_weight.unwrap_or(100).to_string());
    }
}

fn pids(r: &Resolved, dir: &Path, parent: &mut Parent, p: &mut Plan) {
    if parent.usable("pids", &wanted(&[("limits.pids", r.pids.is_some())]), p) {
        p.write(dir, "pids.max", max_or(r.pids, "max"));
    }
}

/// The weight and per-device limits; devices with a rule the config no longer lists
/// are reset.
fn io(r: &Resolved, dir: &Path, parent: &mut Parent, p: &mut Plan) {
    let limited = r.io.iter().any(Device::limited);
    let wanted = wanted(&[("limits.io_weight", r.io_weight.is_some()), ("limits.io", limited)]);
    if !parent.usable("io", &wanted, p) {
        return;
    }
    if dir.join("io.max").exists() && !dir.join("io.weight").exists() {
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
