//! Host-wide settings: `/etc/hutch/hutch.toml` (with `--root DIR`, `DIR/hutch.toml`).
//! All optional; the command line wins over them.
//!
//! ```toml
//! [images]
//! server = "https://images.example.net"   # the image server for `create -t`
//! [mirrors]
//! debian = "http://mirror.example/debian"  # per-distribution package mirrors
//! ubuntu = "http://mirror.example/ubuntu"
//! [lxcfs]
//! path = "/var/lib/lxcfs"                  # where LXCFS is mounted
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::base::paths::Paths;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub images: Images,
    /// Package mirror per distribution, for debootstrap, dnf and tar sources.
    #[serde(default)]
    pub mirrors: BTreeMap<String, String>,
    #[serde(default)]
    pub lxcfs: LxcfsSettings,
}

/// `[lxcfs]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LxcfsSettings {
    /// Where LXCFS is mounted (default /var/lib/lxcfs).
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Images {
    pub server: Option<String>,
}

pub fn path(paths: &Paths) -> PathBuf {
    if paths.state == Path::new(crate::base::paths::DEFAULT_STATE) {
        PathBuf::from("/etc/hutch/hutch.toml")
    } else {
        paths.state.join("hutch.toml")
    }
}

/// The settings, or an error naming the file, line and column.
pub fn load(paths: &Paths) -> Result<Settings, String> {
    let file = path(paths);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
        Err(e) => return Err(format!("failed to read {}: {e}", file.display())),
    };
    toml::from_str(&text).map_err(|e| {
        let (line, col) = e.span().map(|s| crate::config::line_col(&text, s.start)).unwrap_or((1, 1));
        format!("failed to parse {}:{line}:{col}: {}", file.display(), e.message().trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_server_and_mirrors_and_names_bad_lines() {
        let d = tempfile::tempdir().unwrap();
        let paths = Paths::new(Some(d.path()));
        assert!(load(&paths).unwrap().images.server.is_none());
        std::fs::write(
            d.path().join("hutch.toml"),
            "[images]\nserver = \"http://s.example\"\n[mirrors]\ndebian = \"http://m.example/debian\"\n",
        )
        .unwrap();
        let s = load(&paths).unwrap();
        assert_eq!(s.images.server.as_deref(), Some("http://s.example"));
        assert_eq!(s.mirrors["debian"], "http://m.example/debian");
        std::fs::write(d.path().join("hutch.toml"), "[images]\nsrever = 1\n").unwrap();
        let e = load(&paths).unwrap_err();
        assert!(e.contains("hutch.toml:2:1"), "{e}");
    }
}
