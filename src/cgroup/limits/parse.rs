//! Parsing and checking each limit value: sizes, counts, weights, CPU quotas, CPU lists
//! and block devices. Each refusal names the accepted forms.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use super::schema::Scalar;
use super::{CPU_PERIOD_US, Error, MAX_BYTES, MIN_QUOTA_US};

pub(super) const SIZE_FORMS: &str = "use a whole number of bytes or a number with a binary unit K/KiB, M/MiB, G/GiB or T/TiB \
     (1K = 1024 bytes), e.g. 512MiB or 1.5G, or \"max\" for no limit";
pub(super) const CPUS_FORMS: &str =
    "use a number of CPUs such as 2, 1.5 or 0.25 (a quota per 100 ms period, at most 5 decimals), or \"max\"";
pub(super) const WEIGHT_FORMS: &str = "use a whole number from 1 to 10000 (default 100)";
pub(super) const CPUSET_FORMS: &str = "use CPU numbers and ranges separated by commas, e.g. 0-1,3";
pub(super) const DEVICE_FORMS: &str = "use a block device node such as /dev/sda, or MAJ:MIN such as 8:0";

pub(super) fn invalid(key: &str, value: &Scalar, reason: String) -> Error {
    Error::Invalid { key: key.to_string(), value: value.to_string(), reason }
}

pub(super) fn is_max(v: &Scalar) -> bool {
    matches!(v, Scalar::Text(s) if s.trim() == "max")
}

/// A whole non-negative number written as a TOML integer or as digits.
pub(super) fn whole(v: &Scalar) -> Option<u64> {
    match v {
        Scalar::Int(n) => u64::try_from(*n).ok(),
        Scalar::Text(s) => {
            let s = s.trim();
            (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
        }
        Scalar::Float(_) => None,
    }
}

pub(super) fn size_or_max(v: &Scalar, min: u64) -> Result<Option<u64>, String> {
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

pub(super) fn count(v: &Scalar, max: u64) -> Result<Option<u64>, String> {
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

pub(super) fn weight(v: &Scalar) -> Result<u64, String> {
    match whole(v) {
        None => Err(format!("not a weight; {WEIGHT_FORMS}")),
        Some(n) if !(1..=10_000).contains(&n) => Err(format!("out of range; {WEIGHT_FORMS}")),
        Some(n) => Ok(n),
    }
}

/// A CPU count as an exact quota in µs per [`CPU_PERIOD_US`].
pub(super) fn cpus(v: &Scalar, host_cpus: u32) -> Result<Option<u64>, String> {
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
pub(super) fn cpuset(v: &Scalar, online: &[u32]) -> Result<String, String> {
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
pub(crate) fn parse_cpu_list(text: &str) -> Result<Vec<(u32, u32)>, String> {
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

pub(super) fn expand(ranges: &[(u32, u32)]) -> Vec<u32> {
    ranges.iter().flat_map(|&(a, b)| a..=b).collect()
}

pub(super) fn to_ranges(cpus: &[u32]) -> Vec<(u32, u32)> {
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

pub(super) fn format_cpu_list(ranges: &[(u32, u32)]) -> String {
    let parts: Vec<String> =
        ranges.iter().map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
    parts.join(",")
}

/// `MAJ:MIN` of a block device node, or a `MAJ:MIN` given as is.
pub(super) fn device(text: &str) -> Result<String, String> {
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
