//! Output for people (aligned tables, key/value blocks) and for programs (`--format
//! json`, with a `format_version` so scripts can rely on the shape).

use std::io::{self, Write};

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// Version of the JSON shapes printed by read commands.
pub const JSON_VERSION: u32 = 1;

/// Renders rows as a left-aligned table with a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// Renders `key: value` pairs with aligned values.
pub fn pairs(items: &[(&str, String)]) -> String {
    let w = items.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    items.iter().map(|(k, v)| format!("{:<w$} {v}\n", format!("{k}:"), w = w)).collect()
}

/// `2026-11-23 14:05:09 UTC` from milliseconds since the epoch.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `3d4h`, `2h05m`, `4m12s`, `9s`.
pub fn duration(secs: u64) -> String {
    match secs {
        s if s >= 86_400 => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = table(
            &["NAME", "STATE"],
            &[vec!["web".into(), "running".into()], vec!["database".into(), "stopped".into()]],
        );
        assert_eq!(t, "NAME      STATE\nweb       running\ndatabase  stopped\n");
    }

    #[test]
    fn dates_and_durations() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_795_437_909_000), "2026-11-23 12:45:09 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(duration(9), "9s");
        assert_eq!(duration(252), "4m12s");
        assert_eq!(duration(7500), "2h05m");
        assert_eq!(duration(273_600), "3d4h");
    }
}

/// Bytes for people: 512 B, 1.5 KiB, 20.0 MiB, 3.2 GiB.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

#[cfg(test)]
mod bytes_tests {
    #[test]
    fn bytes_read_well() {
        assert_eq!(super::bytes(512), "512 B");
        assert_eq!(super::bytes(1536), "1.5 KiB");
        assert_eq!(super::bytes(20 << 20), "20.0 MiB");
    }
}

/// Writes `{"format_version": N, KEY: VALUE}` (pretty): the envelope of every read
/// command's `--format json` that shows a collection (`list`, `image list`, ...).
pub fn json<T: serde::Serialize + ?Sized>(w: &mut impl Write, key: &str, value: &T) -> io::Result<()> {
    struct Doc<'a, T: ?Sized>(&'a str, &'a T);
    impl<T: serde::Serialize + ?Sized> serde::Serialize for Doc<'_, T> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut m = s.serialize_map(Some(2))?;
            m.serialize_entry("format_version", &JSON_VERSION)?;
            m.serialize_entry(self.0, self.1)?;
            m.end()
        }
    }
    pretty(w, &Doc(key, value))
}

/// Writes `{"format_version": N, FIELDS...}` (pretty): the envelope of a command that
/// shows one object (`info`, `config show`, `create`, `start`), its fields at the top.
pub fn json_object<T: serde::Serialize>(w: &mut impl Write, value: &T) -> io::Result<()> {
    pretty(w, &Versioned::new(value))
}

/// Writes one compact `{"format_version": N, FIELDS...}` line: JSON Lines, for the
/// streams (`top`, `logs`), one object per sample or line.
pub fn json_line<T: serde::Serialize>(w: &mut impl Write, value: &T) -> io::Result<()> {
    let text = serde_json::to_string(&Versioned::new(value)).map_err(io::Error::other)?;
    writeln!(w, "{text}")?;
    w.flush()
}

/// An object with `format_version` put first among its fields.
#[derive(serde::Serialize)]
struct Versioned<'a, T> {
    format_version: u32,
    #[serde(flatten)]
    inner: &'a T,
}

impl<'a, T> Versioned<'a, T> {
    fn new(inner: &'a T) -> Self {
        Versioned { format_version: JSON_VERSION, inner }
    }
}

fn pretty<T: serde::Serialize + ?Sized>(w: &mut impl Write, value: &T) -> io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    writeln!(w, "{text}")?;
    w.flush()
}

/// Writes text and flushes, so that a reader that went away shows as an error here
/// (`BrokenPipe`) rather than as a panic in `println!`.
pub fn text(w: &mut impl Write, s: &str) -> io::Result<()> {
    w.write_all(s.as_bytes())?;
    w.flush()
}

/// Whether `e`, or any error in its chain of sources, is a closed pipe: the reader
/// of hutch's output went away (`hutch list | head -1`), which ends a command quietly.
pub fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe) {
            return true;
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod json_tests {
    use super::*;

    #[test]
    fn envelopes_put_the_version_first() {
        #[derive(serde::Serialize)]
        struct One {
            name: &'static str,
        }
        let mut buf = Vec::new();
        json_line(&mut buf, &One { name: "web" }).unwrap();
        assert_eq!(String::from_utf8(buf).unwrap(), "{\"format_version\":1,\"name\":\"web\"}\n");
        let mut buf = Vec::new();
        json(&mut buf, "containers", &[1, 2]).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v, serde_json::json!({"format_version": 1, "containers": [1, 2]}));
    }

    #[test]
    fn a_closed_pipe_is_found_in_the_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("failed to write: {0}")]
        struct Outer(#[source] io::Error);
        let e = Outer(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&Outer(io::Error::from(io::ErrorKind::PermissionDenied))));
    }
}
