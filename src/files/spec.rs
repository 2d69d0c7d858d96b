//! What the command line names: `NAME/PATH` (a container and a path from its root),
//! and the values of `--mode`.

use std::fmt;

/// A path inside a container, from its root: normal components only (`.` and empty
/// ones dropped, `..` refused), so it can never name anything above the root, even
/// before the kernel resolves it there.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CPath {
    /// The components joined by `/`, without a leading one; empty for the root.
    rel: String,
}

impl CPath {
    /// Parses a path from the container's root (a leading `/` is optional).
    pub fn parse(path: &str) -> Result<CPath, String> {
        let mut comps = Vec::new();
        for c in path.split('/') {
            match c {
                "" | "." => {}
                ".." => return Err("the path must not contain '..' (it is always from the container's root)".into()),
                c if c.contains('\0') => return Err("the path must not contain a NUL byte".into()),
                c => comps.push(c),
            }
        }
        Ok(CPath { rel: comps.join("/") })
    }

    /// The path relative to the root (`etc/hosts`; empty for the root itself).
    pub fn rel(&self) -> &str {
        &self.rel
    }

    pub fn is_root(&self) -> bool {
        self.rel.is_empty()
    }

    /// The parent directory and the final component (`None` for the root).
    pub fn split(&self) -> Option<(CPath, &str)> {
        if self.is_root() {
            return None;
        }
        Some(match self.rel.rsplit_once('/') {
            Some((dir, name)) => (CPath { rel: dir.to_string() }, name),
            None => (CPath::default(), self.rel.as_str()),
        })
    }

    /// The final component (`None` for the root).
    pub fn file_name(&self) -> Option<&str> {
        self.split().map(|(_, name)| name)
    }
}

impl fmt::Display for CPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.rel)
    }
}

/// `NAME/PATH` from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub name: String,
    pub path: CPath,
    /// Written as a directory: with a trailing `/` (or `/.`), or the root itself.
    pub dir: bool,
}

impl Spec {
    /// Parses `NAME/PATH`. PATH is always from the container's root (`web/etc/hosts`
    /// is `/etc/hosts` in `web`); the container's name must be a valid one.
    pub fn parse(arg: &str) -> Result<Spec, String> {
        let Some((name, path)) = arg.split_once('/') else {
            return Err("there is no '/' between the container's name and the path".into());
        };
        crate::base::name::validate(name).map_err(|e| e.to_string())?;
        let cpath = CPath::parse(path)?;
        let dir = cpath.is_root() || path.ends_with('/') || path.ends_with("/.") || path == ".";
        Ok(Spec { name: name.to_string(), path: cpath, dir })
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.name, self.path)?;
        if self.dir && !self.path.is_root() { f.write_str("/") } else { Ok(()) }
    }
}

/// `--mode`: permission bits in octal (`644`, `0644`, `0o4755`), at most `7777`.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!("{s:?} is not an octal mode such as 644 or 0755"));
    }
    let mode = u32::from_str_radix(digits, 8).map_err(|e| e.to_string())?;
    if mode > 0o7777 {
        return Err(format!("{s:?} has bits beyond 7777"));
    }
    Ok(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_and_path_split_at_the_first_slash() {
        let s = Spec::parse("web/etc/hosts").unwrap();
        assert_eq!((s.name.as_str(), s.path.rel(), s.dir), ("web", "etc/hosts", false));
        assert_eq!(s.to_string(), "web/etc/hosts");
        let s = Spec::parse("web//etc/./ssh/").unwrap();
        assert_eq!((s.path.rel(), s.dir), ("etc/ssh", true));
        assert_eq!(s.to_string(), "web/etc/ssh/");
        let s = Spec::parse("web/").unwrap();
        assert!(s.path.is_root() && s.dir);
        assert_eq!(s.to_string(), "web/");
        assert!(Spec::parse("web/tmp/.").unwrap().dir);
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        assert!(Spec::parse("web").unwrap_err().contains("no '/'"));
        assert!(Spec::parse("/etc/hosts").is_err(), "an empty name");
        assert!(Spec::parse("-web/etc").is_err(), "an invalid name");
        assert!(Spec::parse("web/../etc").unwrap_err().contains("'..'"));
        assert!(Spec::parse("web/etc/../../x").unwrap_err().contains("'..'"));
        assert!(Spec::parse("web/a\0b").unwrap_err().contains("NUL"));
    }

    #[test]
    fn paths_split_into_parent_and_name() {
        let p = CPath::parse("/etc/ssh/sshd_config").unwrap();
        let (dir, name) = p.split().unwrap();
        assert_eq!((dir.rel(), name), ("etc/ssh", "sshd_config"));
        assert_eq!(dir.to_string(), "/etc/ssh");
        let etc = CPath::parse("etc").unwrap();
        let (dir, name) = etc.split().unwrap();
        assert_eq!((dir.rel(), name, dir.to_string().as_str()), ("", "etc", "/"));
        assert_eq!(CPath::parse("/").unwrap().split(), None);
    }

    #[test]
    fn modes_are_octal() {
        assert_eq!(parse_mode("644"), Ok(0o644));
        assert_eq!(parse_mode("0755"), Ok(0o755));
        assert_eq!(parse_mode("0o4755"), Ok(0o4755));
        assert_eq!(parse_mode("7777"), Ok(0o7777));
        for bad in ["", "9", "rw-r--r--", "u+x", "17777", "0o", "-644"] {
            assert!(parse_mode(bad).is_err(), "{bad}");
        }
    }
}
