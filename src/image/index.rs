//! LXC image servers: the index (`meta/1.0/index-system`) and each image's `SHA256SUMS`.
//!
//! The index has one image per line, six `;`-separated fields and no header:
//! `dist;release;arch;variant;build;path`, e.g.
//! `ubuntu;jammy;arm64;default;20260904_07:42;/images/ubuntu/jammy/arm64/default/20260904_07:42/`.
//! Builds are `YYYYMMDD_HH:MM` and compare lexically; the latest wins. Each image's
//! directory holds `SHA256SUMS`, `rootfs.tar.xz` and `meta.tar.xz`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, Write};

use sha2::{Digest, Sha256};
use thiserror::Error;

/// The image server hutch uses unless configured otherwise.
pub(crate) const DEFAULT_SERVER: &str = "https://images.linuxcontainers.org";

/// The index's path on a server.
pub(crate) const INDEX_PATH: &str = "meta/1.0/index-system";

#[derive(Debug, Error)]
pub enum Error {
    #[error("failed to parse the image index from {origin}: {problem}")]
    Index { origin: String, problem: String },
    #[error("failed to parse the checksums from {origin}: line {line} {problem}")]
    Sums { origin: String, line: usize, problem: String },
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Index { .. } => Some("is the server an LXC image server (lxc-download format)?".into()),
            Error::Sums { .. } => {
                Some("the image on the server is incomplete or being replaced; try again later".into())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub dist: String,
    pub release: String,
    pub arch: String,
    pub variant: String,
    pub build: String,
    pub path: String,
}

/// A line of the index that [`parse_lines`] skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based.
    pub line: usize,
    pub problem: String,
}

impl fmt::Display for BadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} {}", self.line, self.problem)
    }
}

/// Every image in `text`, and the lines skipped: blank lines silently; lines without six
/// fields or with an empty one (lxc-download skips those with no build or path) as bad.
pub(crate) fn parse_lines(text: &str) -> (Vec<Entry>, Vec<BadLine>) {
    let mut entries = Vec::new();
    let mut bad = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(';').map(str::trim).collect();
        let problem = if f.len() != 6 {
            format!("has {} field{}, expected 6", f.len(), if f.len() == 1 { "" } else { "s" })
        } else if let Some(k) = f.iter().position(|x| x.is_empty()) {
            format!("has an empty {} field", ["dist", "release", "arch", "variant", "build", "path"][k])
        } else {
            entries.push(Entry {
                dist: f[0].into(),
                release: f[1].into(),
                arch: f[2].into(),
                variant: f[3].into(),
                build: f[4].into(),
                path: f[5].into(),
            });
            continue;
        };
        bad.push(BadLine { line: i + 1, problem });
    }
    (entries, bad)
}

/// Every image in `text`, skipping blank and malformed lines.
pub(crate) fn parse(text: &str) -> Vec<Entry> {
    parse_lines(text).0
}

/// Like [`parse`], but an index with no image at all is an error (naming its first bad
/// line, if any): that is an error page or the wrong URL, not an empty server.
pub(crate) fn parse_from(origin: &str, text: &str) -> Result<Vec<Entry>, Error> {
    let (entries, bad) = parse_lines(text);
    if entries.is_empty() {
        let problem = bad.first().map_or_else(|| "it lists no images".to_string(), BadLine::to_string);
        return Err(Error::Index { origin: origin.to_string(), problem });
    }
    Ok(entries)
}

/// The latest build of `dist`/`release`/`arch`/`variant` (release and dist ignoring case).
pub(crate) fn select<'a>(
    entries: &'a [Entry],
    dist: &str,
    release: &str,
    arch: &str,
    variant: &str,
) -> Option<&'a Entry> {
    entries
        .iter()
        .filter(|e| {
            e.dist.eq_ignore_ascii_case(dist)
                && e.release.eq_ignore_ascii_case(release)
                && e.arch == arch
                && e.variant == variant
        })
        .max_by(|a, b| a.build.cmp(&b.build))
}

/// The releases of `dist` the server has for `arch`, sorted, for "not found" messages.
pub(crate) fn releases_for(entries: &[Entry], dist: &str, arch: &str) -> Vec<String> {
    let set: BTreeSet<&str> = entries
        .iter()
        .filter(|e| e.dist.eq_ignore_ascii_case(dist) && e.arch == arch)
        .map(|e| e.release.as_str())
        .collect();
    set.into_iter().map(str::to_string).collect()
}

/// The index text for `entries`, one line each.
pub(crate) fn format(entries: &[Entry]) -> String {
    let mut out = String::new();
    for e in entries {
        out.push_str(&[&*e.dist, &e.release, &e.arch, &e.variant, &e.build, &e.path].join(";"));
        out.push('\n');
    }
    out
}

/// `server` + `path` + `file`, with exactly one `/` at each joint. As in lxc-download, a
/// path starting with `/` is still under the server's URL (which may have a path of its
/// own); a path that is itself a URL is used as is. Empty parts are left out.
pub(crate) fn url_join(server: &str, path: &str, file: &str) -> String {
    let mut url = if path.contains("://") {
        path.trim_end_matches('/').to_string()
    } else {
        let base = server.trim_end_matches('/');
        match path.trim_matches('/') {
            "" => base.to_string(),
            p => format!("{base}/{p}"),
        }
    };
    let file = file.trim_start_matches('/');
    if !file.is_empty() {
        url.push('/');
        url.push_str(file);
    }
    url
}

/// The index's URL on `server`.
pub(crate) fn index_url(server: &str) -> String {
    url_join(server, INDEX_PATH, "")
}

/// Parses `sha256sum` output (`<64 hex>  <file>`, or ` *<file>` for binary mode; also the
/// `--tag` form `SHA256 (<file>) = <hex>`) into file name → lowercase hex. Blank and `#`
/// lines are skipped; anything else malformed is an error naming the line.
pub(crate) fn parse_sha256sums(origin: &str, text: &str) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |problem: &str| Error::Sums { origin: origin.to_string(), line: i + 1, problem: problem.to_string() };
        let (hex, name) = sums_line(line).map_err(err)?;
        let name = name.strip_prefix("./").unwrap_or(&name).to_string();
        if name.is_empty() {
            return Err(err("has no file name"));
        }
        if out.get(&name).is_some_and(|h: &String| *h != hex) {
            return Err(err(&format!("lists {name} again with another checksum")));
        }
        out.insert(name, hex);
    }
    Ok(out)
}

/// One line of sha256sum output: (lowercase hex, file name).
fn sums_line(line: &str) -> Result<(String, String), &'static str> {
    let is_hex = |h: &str| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
    if let Some(rest) = line.strip_prefix("SHA256 (") {
        let (name, hex) = rest.rsplit_once(") = ").ok_or("is not `SHA256 (FILE) = HEX`")?;
        return if is_hex(hex) { Ok((hex.to_ascii_lowercase(), name.into())) } else { Err("has no 64-digit sha256") };
    }
    // A leading backslash means the name is escaped (`\\` and `\n`).
    let (escaped, line) = match line.strip_prefix('\\') {
        Some(l) => (true, l),
        None => (false, line),
    };
    let hex = line.get(..64).filter(|h| is_hex(h)).ok_or("does not start with a 64-digit sha256")?;
    let rest = &line[64..];
    let name = rest.strip_prefix([' ', '\t']).ok_or("has no space after the checksum")?;
    let name = name.strip_prefix([' ', '*']).unwrap_or(name);
    let name = if escaped { unescape(name) } else { name.to_string() };
    Ok((hex.to_ascii_lowercase(), name))
}

/// Undoes sha256sum's escaping of `\` and newlines in names.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some('\\')) => {
                out.push('\\');
                chars.next();
            }
            ('\\', Some('n')) => {
                out.push('\n');
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// The sha256 of `bytes`, lowercase hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A writer that hashes everything written through it: wrap the file a download goes to
/// (or `io::sink()`), then `finish` for the inner writer and the sha256.
pub struct Sha256Writer<W: Write> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Sha256Writer<W> {
    pub fn new(inner: W) -> Self {
        Sha256Writer { inner, hasher: Sha256::new() }
    }

    /// The inner writer and the sha256 (lowercase hex) of everything written.
    pub fn finish(self) -> (W, String) {
        (self.inner, hex(&self.hasher.finalize()))
    }
}

impl<W: Write> Write for Sha256Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests;
