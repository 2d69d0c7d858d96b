//! `hutch autostart`: at host boot, start every container whose `autostart.enabled` is
//! set, lowest `autostart.order` first; containers of one order start together, and the
//! next order begins once they are ready and the longest `autostart.delay` among them
//! has passed. `hutch autostart --stop`: at host shutdown, stop every running
//! container, highest order first (again together within an order).
//!
//! The plan is pure (`plan`, `stop_plan`) so its ordering is a unit test; the start
//! and stop of each container are the ordinary ones, each under its own lock.

use std::time::Duration;

use super::observe::{Status, list_names, observe};
use super::{Error, Notices};
use crate::base::paths::Paths;
use crate::config::Config;

/// One container in a plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Planned {
    pub name: String,
    pub order: i64,
    pub delay: u64,
}

/// Groups of one order each, in the order they run.
pub type Plan = Vec<Vec<Planned>>;

/// What happened to one container.
#[derive(Debug, serde::Serialize)]
pub struct Outcome {
    pub name: String,
    pub order: i64,
    /// "started", "already running", "stopped", or the error.
    pub result: String,
    pub ok: bool,
}

/// Groups `items` by order, ascending (`reverse`: descending), names sorted within.
pub fn group(mut items: Vec<Planned>, reverse: bool) -> Plan {
    items.sort_by(|a, b| {
        let by_order = if reverse { b.order.cmp(&a.order) } else { a.order.cmp(&b.order) };
        by_order.then_with(|| a.name.cmp(&b.name))
    });
    let mut plan: Plan = Vec::new();
    for i in items {
        match plan.last_mut() {
            Some(g) if g[0].order == i.order => g.push(i),
            _ => plan.push(vec![i]),
        }
    }
    plan
}

/// The containers to start: enabled ones, whatever their state now. A configuration
/// that cannot be read is reported (and that container left alone).
pub fn plan(paths: &Paths, notices: &mut Notices) -> Plan {
    let mut items = Vec::new();
    for name in list_names(paths) {
        match Config::load(&paths.config(&name)) {
            Ok(c) if c.autostart.enabled => {
                items.push(Planned { name, order: c.autostart.order, delay: c.autostart.delay })
            }
            Ok(_) => {}
            Err(e) => notices.push(format!("{name} left alone: {e}")),
        }
    }
    group(items, false)
}

/// The containers to stop: every one that is up, by its order (0 when it has none).
pub fn stop_plan(paths: &Paths) -> Plan {
    let items = list_names(paths)
        .into_iter()
        .filter(|n| observe(paths, n).status != Status::Stopped)
        .map(|name| {
            let order = Config::load(&paths.config(&name)).map(|c| c.autostart.order).unwrap_or(0);
            Planned { name, order, delay: 0 }
        })
        .collect();
    group(items, true)
}

/// Starts `plan`, group by group; `each` hears of every container as it is done.
pub fn start(paths: &Paths, plan: &Plan, each: &(dyn Fn(&Outcome) + Sync)) -> Vec<Outcome> {
    let mut all = Vec::new();
    for (i, g) in plan.iter().enumerate() {
        let results = in_parallel(
            g,
            |p| match super::lifecycle::start(paths, &p.name, true) {
                Ok(_) => (true, "started".to_string()),
                Err(Error::AlreadyRunning { .. }) => (true, "already running".to_string()),
                Err(e) => (false, with_hint(&e)),
            },
            each,
        );
        all.extend(results);
        let delay = g.iter().map(|p| p.delay).max().unwrap_or(0);
        if delay > 0 && i + 1 < plan.len() {
            std::thread::sleep(Duration::from_secs(delay));
        }
    }
    all
}

/// Stops `plan`, group by group.
pub fn stop(paths: &Paths, plan: &Plan, timeout: Option<u64>, each: &(dyn Fn(&Outcome) + Sync)) -> Vec<Outcome> {
    let mut all = Vec::new();
    for g in plan {
        all.extend(in_parallel(
            g,
            |p| match super::lifecycle::stop(paths, &p.name, timeout, false) {
                Ok((detail, _)) => (true, format!("stopped ({detail})")),
                Err(Error::NotRunning { .. }) => (true, "already stopped".to_string()),
                Err(e) => (false, with_hint(&e)),
            },
            each,
        ));
    }
    all
}

fn in_parallel(
    g: &[Planned],
    f: impl Fn(&Planned) -> (bool, String) + Sync,
    each: &(dyn Fn(&Outcome) + Sync),
) -> Vec<Outcome> {
    std::thread::scope(|s| {
        let handles: Vec<_> = g
            .iter()
            .map(|p| {
                let f = &f;
                s.spawn(move || {
                    let (ok, result) = f(p);
                    let o = Outcome { name: p.name.clone(), order: p.order, result, ok };
                    each(&o);
                    o
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(g)
            .map(|(h, p)| {
                h.join().unwrap_or_else(|_| Outcome {
                    name: p.name.clone(),
                    order: p.order,
                    result: "hutch failed (a panic)".into(),
                    ok: false,
                })
            })
            .collect()
    })
}

fn with_hint(e: &Error) -> String {
    match e.hint() {
        Some(h) => format!("{e} (hint: {h})"),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, order: i64) -> Planned {
        Planned { name: name.into(), order, delay: 0 }
    }

    #[test]
    fn orders_group_and_reverse() {
        let items = vec![p("web", 2), p("db", 1), p("cache", 2), p("misc", -1)];
        let names = |plan: &Plan| -> Vec<Vec<String>> {
            plan.iter().map(|g| g.iter().map(|p| p.name.clone()).collect()).collect()
        };
        assert_eq!(names(&group(items.clone(), false)), [vec!["misc"], vec!["db"], vec!["cache", "web"]]);
        assert_eq!(names(&group(items, true)), [vec!["cache", "web"], vec!["db"], vec!["misc"]]);
        assert!(group(Vec::new(), false).is_empty());
    }
}
