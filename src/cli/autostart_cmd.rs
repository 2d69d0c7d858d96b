//! autostart [--dry-run] [--stop [--timeout S]].

use crate::base::output::{self, Format};
use crate::base::paths::Paths;
use crate::container::autostart::{self, Outcome};
use crate::error::Error;

pub fn run(paths: &Paths, dry_run: bool, stop: bool, timeout: Option<u64>, format: Format) -> Result<u8, Error> {
    let mut notices = Vec::new();
    let plan = if stop { autostart::stop_plan(paths) } else { autostart::plan(paths, &mut notices) };
    super::notify(&notices);
    if dry_run {
        let flat: Vec<_> = plan.iter().flatten().collect();
        return match format {
            Format::Json => super::emit_json("autostart", &flat).map(|_| 0),
            Format::Text => {
                let rows: Vec<Vec<String>> =
                    flat.iter().map(|p| vec![p.order.to_string(), p.name.clone(), format!("{} s", p.delay)]).collect();
                super::emit(&output::table(&["ORDER", "NAME", "DELAY"], &rows)).map(|_| 0)
            }
        };
    }
    let text = format == Format::Text;
    let say = move |o: &Outcome| {
        if text {
            match o.ok {
                true => {
                    let _ = super::emit(&format!("{}: {} (order {})\n", o.name, o.result, o.order));
                }
                false => eprintln!("hutch: {}: {}", o.name, o.result),
            }
        }
    };
    let results =
        if stop { autostart::stop(paths, &plan, timeout, &say) } else { autostart::start(paths, &plan, &say) };
    if format == Format::Json {
        super::emit_json("autostart", &results)?;
    }
    Ok(if results.iter().all(|o| o.ok) { 0 } else { 1 })
}
