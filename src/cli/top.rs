//! `hutch top`: a live table of running containers' resource use, like lxc-top and
//! incus top. CPU is the share of one CPU used between two samples.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::base::output::{self, Format};
use crate::base::paths::Paths;
use crate::cgroup::limits::{Stats, stats};
use crate::container::{self, Status};
use crate::error::Error;

#[derive(Serialize)]
struct Row {
    name: String,
    /// Percent of one CPU over the sampling interval.
    cpu_percent: Option<f64>,
    #[serde(flatten)]
    stats: Stats,
}

fn sample(paths: &Paths) -> Vec<(String, Stats)> {
    let Ok(layout) = crate::cgroup::Layout::detect() else { return Vec::new() };
    container::list_names(paths)
        .into_iter()
        .filter_map(|n| {
            let obs = container::observe(paths, &n);
            (obs.status == Status::Running || obs.status == Status::Frozen)
                .then(|| obs.state.map(|s| (n, stats(&layout, &s.cgroup))))
                .flatten()
        })
        .collect()
}

fn rows(before: &HashMap<String, u64>, now: Vec<(String, Stats)>, secs: f64) -> Vec<Row> {
    now.into_iter()
        .map(|(name, s)| {
            let cpu = match (before.get(&name), s.cpu_usage_usec) {
                (Some(b), Some(a)) if secs > 0.0 => {
                    Some((a.saturating_sub(*b) as f64 / 1e6 / secs * 1000.0).round() / 10.0)
                }
                _ => None,
            };
            Row { name, cpu_percent: cpu, stats: s }
        })
        .collect()
}

fn render(rows: &[Row]) -> String {
    let b = |v: Option<u64>| v.map_or("-".into(), output::bytes);
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.cpu_percent.map_or("-".into(), |c| format!("{c:.1}%")),
                b(r.stats.memory_current),
                b(r.stats.memory_limit),
                r.stats.pids_current.map_or("-".into(), |p| p.to_string()),
                b(r.stats.io_read_bytes),
                b(r.stats.io_write_bytes),
                r.stats.oom_kills.map_or("-".into(), |k| k.to_string()),
            ]
        })
        .collect();
    output::table(&["NAME", "CPU", "MEMORY", "MEM LIMIT", "PIDS", "IO READ", "IO WRITE", "OOM"], &table)
}

/// Refreshes every `interval` until interrupted on a terminal; prints `count` samples
/// otherwise (one by default, so `hutch top | cat` and scripts get a single table).
pub fn top(paths: &Paths, format: Format, interval: f64, count: Option<u32>) -> Result<u8, Error> {
    let tty = std::io::stdout().is_terminal() && format == Format::Text;
    let count = count.unwrap_or(if tty { u32::MAX } else { 1 });
    let interval = Duration::from_secs_f64(interval.max(0.2));
    let mut before: HashMap<String, u64> =
        sample(paths).into_iter().filter_map(|(n, s)| s.cpu_usage_usec.map(|u| (n, u))).collect();
    let mut t0 = Instant::now();
    for i in 0..count {
        // The first sample needs an interval too, for CPU; keep it short.
        std::thread::sleep(if i == 0 { interval.min(Duration::from_secs(1)) } else { interval });
        let now = sample(paths);
        let secs = t0.elapsed().as_secs_f64();
        t0 = Instant::now();
        let next: HashMap<String, u64> =
            now.iter().filter_map(|(n, s)| s.cpu_usage_usec.map(|u| (n.clone(), u))).collect();
        let rows = rows(&before, now, secs);
        before = next;
        match format {
            Format::Json => {
                #[derive(Serialize)]
                struct Sample<'a> {
                    containers: &'a [Row],
                }
                super::emit_line(&Sample { containers: &rows })?;
            }
            Format::Text => {
                let clear = if tty { "\x1b[H\x1b[2J" } else { "" };
                super::emit(&format!("{clear}{}", render(&rows)))?;
            }
        }
    }
    Ok(0)
}
