//! doctor [--format json].

use crate::base::output::{self, Format};
use crate::base::paths::Paths;
use crate::container::doctor::{self, Verdict};
use crate::error::Error;

pub fn run(paths: &Paths, format: Format) -> Result<u8, Error> {
    let findings = doctor::run(paths);
    match format {
        Format::Json => super::emit_json("doctor", &findings)?,
        Format::Text => {
            let rows: Vec<Vec<String>> = findings
                .iter()
                .map(|f| {
                    let verdict = match f.verdict {
                        Verdict::Ok => "ok",
                        Verdict::Warn => "WARN",
                        Verdict::Fail => "FAIL",
                    };
                    let detail = match &f.fix {
                        Some(fix) => format!("{} (fix: {fix})", f.detail),
                        None => f.detail.clone(),
                    };
                    vec![verdict.to_string(), f.check.to_string(), detail]
                })
                .collect();
            super::emit(&output::table(&["VERDICT", "CHECK", "DETAIL"], &rows))?;
        }
    }
    Ok(if findings.iter().any(|f| f.verdict == Verdict::Fail) { 1 } else { 0 })
}
