//! The host's own package mirrors: the archive its apt already uses for a distribution
//! (for debootstrap), and its os-release IDs (whether its dnf repositories fit).
//!
//! apt reads `sources.list`, then `sources.list.d/*.list` (one-line format) and
//! `*.sources` (deb822) in file-name order; so does [`from_apt`]. Only `deb` entries
//! count; `deb-src`, disabled stanzas and suites that are not the distribution's own
//! (`*-security`, `*-updates`, third-party `stable`...) are skipped.

use std::path::{Path, PathBuf};

/// An archive of the distribution in the host's apt sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// As written in the sources (a `mirror+file:` list resolved to its first mirror).
    pub uri: String,
    /// The suite it was found with.
    pub suite: String,
    pub components: Vec<String>,
    /// The file it was found in, for messages.
    pub file: PathBuf,
}

/// One `deb` or `deb-src` entry (a line, or a deb822 stanza).
#[derive(Debug, Clone, Default)]
struct AptEntry {
    types: Vec<String>,
    uris: Vec<String>,
    suites: Vec<String>,
    components: Vec<String>,
    /// `arch=` / `Architectures:`; `None` means all.
    arches: Option<Vec<String>>,
    enabled: bool,
    file: PathBuf,
}

/// The first `deb` archive in `etc_apt`'s sources whose suite is one of `suites` (see
/// `Template::apt_suites`) and that serves `arch` (if given, a Debian name). Among
/// those, one whose URI also serves `SUITE-updates` (a distribution archive, not a
/// third-party repository that happens to name the codename) is preferred, then one
/// with a `main` component, then the first.
pub(crate) fn from_apt(etc_apt: &Path, suites: &[String], arch: Option<&str>) -> Option<Mirror> {
    let entries: Vec<AptEntry> = read_apt(etc_apt)
        .into_iter()
        .filter(|e| e.enabled && e.types.iter().any(|t| t == "deb"))
        .filter(|e| arch.is_none_or(|a| e.arches.as_ref().is_none_or(|l| l.iter().any(|x| x == a))))
        .collect();
    let mut served: Vec<(String, &str)> = Vec::new(); // (uri without trailing '/', suite)
    let mut candidates: Vec<Mirror> = Vec::new();
    for e in &entries {
        for uri in e.uris.iter().filter_map(|u| usable_uri(u, etc_apt)) {
            for suite in &e.suites {
                served.push((uri.trim_end_matches('/').to_string(), suite));
                if suites.iter().any(|s| s == suite) {
                    candidates.push(Mirror {
                        uri: uri.clone(),
                        suite: suite.clone(),
                        components: e.components.clone(),
                        file: e.file.clone(),
                    });
                }
            }
        }
    }
    let updates = |m: &&Mirror| {
        let (uri, want) = (m.uri.trim_end_matches('/'), format!("{}-updates", m.suite));
        served.iter().any(|(u, s)| u == uri && *s == want)
    };
    let main = |m: &&Mirror| m.components.iter().any(|c| c == "main");
    let best = candidates.iter().find(updates).or_else(|| candidates.iter().find(main)).or(candidates.first());
    best.cloned()
}

/// A URI debootstrap can use: http, https, ftp or file; `mirror+file:` lists resolve to
/// their first such mirror (a `/etc/apt/...` list is read under `etc_apt`).
fn usable_uri(uri: &str, etc_apt: &Path) -> Option<String> {
    if let Some(list) = uri.strip_prefix("mirror+file:") {
        let path = list.strip_prefix("//").unwrap_or(list);
        let path = match path.strip_prefix("/etc/apt/") {
            Some(rest) => etc_apt.join(rest),
            None => PathBuf::from(path),
        };
        let text = std::fs::read_to_string(path).ok()?;
        return text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_whitespace().next())
            .find(|u| direct(u))
            .map(str::to_string);
    }
    direct(uri).then(|| uri.to_string())
}

fn direct(uri: &str) -> bool {
    ["http://", "https://", "ftp://", "file:/"].iter().any(|p| uri.starts_with(p))
}

/// Every entry of `etc_apt/sources.list` and `etc_apt/sources.list.d/*.{list,sources}`, in apt's order.
fn read_apt(etc_apt: &Path) -> Vec<AptEntry> {
    let mut files = vec![etc_apt.join("sources.list")];
    if let Ok(rd) = std::fs::read_dir(etc_apt.join("sources.list.d")) {
        let mut more: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "list" || x == "sources"))
            .collect();
        more.sort();
        files.extend(more);
    }
    let mut out = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else { continue };
        if f.extension().is_some_and(|x| x == "sources") {
            out.extend(parse_deb822(&text, &f));
        } else {
            out.extend(parse_one_line(&text, &f));
        }
    }
    out
}

/// `deb [opt=v ...] URI SUITE [COMPONENT...]` lines.
fn parse_one_line(text: &str, file: &Path) -> Vec<AptEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some((ty, rest)) = line.split_once(char::is_whitespace) else { continue };
        if ty != "deb" && ty != "deb-src" {
            continue;
        }
        let rest = rest.trim_start();
        let (opts, rest) = match rest.strip_prefix('[') {
            Some(r) => match r.split_once(']') {
                Some(split) => split,
                None => continue,
            },
            None => ("", rest),
        };
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else { continue };
        if uri.starts_with("cdrom:") {
            continue; // `cdrom:[Label with spaces]/`: not a mirror anyway
        }
        let arches = opts
            .split_whitespace()
            .find_map(|o| o.strip_prefix("arch="))
            .map(|v| v.split(',').map(str::to_string).collect());
        out.push(AptEntry {
            types: vec![ty.to_string()],
            uris: vec![uri.to_string()],
            suites: vec![suite.to_string()],
            components: words.map(str::to_string).collect(),
            arches,
            enabled: true,
            file: file.to_path_buf(),
        });
    }
    out
}

/// deb822 stanzas: `Field: value` lines (names ignore case; values may continue on
/// lines starting with a space or tab), separated by blank lines; `#` lines are comments.
fn parse_deb822(text: &str, file: &Path) -> Vec<AptEntry> {
    let mut stanzas: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for line in text.lines() {
        if line.trim().is_empty() {
            if !stanzas.last().is_some_and(Vec::is_empty) {
                stanzas.push(Vec::new());
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let fields = stanzas.last_mut().expect("never empty");
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = fields.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let words = |fields: &[(String, String)], key: &str| -> Vec<String> {
        fields.iter().filter(|(k, _)| k == key).flat_map(|(_, v)| v.split_whitespace().map(str::to_string)).collect()
    };
    stanzas
        .iter()
        .filter(|f| !f.is_empty())
        .map(|f| AptEntry {
            types: words(f, "types"),
            uris: words(f, "uris"),
            suites: words(f, "suites"),
            components: words(f, "components"),
            arches: f.iter().any(|(k, _)| k == "architectures").then(|| words(f, "architectures")),
            enabled: !f.iter().any(|(k, v)| k == "enabled" && v.eq_ignore_ascii_case("no")),
            file: file.to_path_buf(),
        })
        .collect()
}

#[cfg(test)]
mod tests;
