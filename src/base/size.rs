//! Byte sizes as people write them: `1048576`, `512K`, `64MiB`, `2G`, `1.5GiB`.
//! Suffixes are binary (K = KiB = 1024), as in LXC, systemd and the kernel's own
//! cgroup files. Anything else is refused with the accepted forms, never clamped.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "invalid size {0:?}: use a whole number of bytes or a number with a unit B, K/KiB, M/MiB, G/GiB or T/TiB (binary: 1K = 1024 bytes), e.g. 512MiB or 1.5G"
)]
pub struct SizeError(pub String);

pub fn parse(text: &str) -> Result<u64, SizeError> {
    let err = || SizeError(text.to_string());
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1 {
        return Err(err());
    }
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" | "KB" | "k" => 1 << 10,
        "M" | "MiB" | "MB" => 1 << 20,
        "G" | "GiB" | "GB" => 1 << 30,
        "T" | "TiB" | "TB" => 1 << 40,
        _ => return Err(err()),
    };
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    if whole.len() > 20 || frac.len() > 9 {
        return Err(err());
    }
    let whole: u64 = whole.parse().map_err(|_| err())?;
    let mut bytes = whole.checked_mul(mult).ok_or_else(err)?;
    if !frac.is_empty() {
        if mult == 1 {
            return Err(err()); // fractional bytes
        }
        let f: u64 = frac.parse().map_err(|_| err())?;
        let scale = 10u64.pow(frac.len() as u32);
        bytes = bytes.checked_add(f.checked_mul(mult).ok_or_else(err)? / scale).ok_or_else(err)?;
    }
    Ok(bytes)
}

/// A size as a config file writes it, parsed when the file is loaded: the text is kept
/// as written (so the file reads back unchanged) beside the number of bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Size {
    text: String,
    bytes: u64,
}

impl Size {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl FromStr for Size {
    type Err = SizeError;
    fn from_str(text: &str) -> Result<Size, SizeError> {
        Ok(Size { bytes: parse(text)?, text: text.to_string() })
    }
}

impl TryFrom<String> for Size {
    type Error = SizeError;
    fn try_from(text: String) -> Result<Size, SizeError> {
        Ok(Size { bytes: parse(&text)?, text })
    }
}

impl From<Size> for String {
    fn from(s: Size) -> String {
        s.text
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `1.5 GiB`-style rendering for humans.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[i]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_size_keeps_its_text() {
        let s: Size = "1.5K".parse().unwrap();
        assert_eq!((s.bytes(), s.to_string()), (1536, "1.5K".to_string()));
        assert!("10XB".parse::<Size>().is_err());
    }

    #[test]
    fn parses_accepted_forms() {
        assert_eq!(parse("1048576"), Ok(1 << 20));
        assert_eq!(parse("512K"), Ok(512 << 10));
        assert_eq!(parse("64MiB"), Ok(64 << 20));
        assert_eq!(parse("2G"), Ok(2 << 30));
        assert_eq!(parse("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse(" 1 MiB "), Ok(1 << 20));
    }

    #[test]
    fn refuses_the_hostile_list() {
        for bad in ["1e99", "-1", "10XB", "18446744073709551616", "99999999999T", "", "M", "1.", ".5G", "1.2.3G", "0.5"]
        {
            let e = parse(bad).unwrap_err();
            assert!(e.to_string().contains("512MiB"), "{bad}");
        }
    }

    #[test]
    fn human_readable() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3 << 29), "1.5 GiB");
    }
}
