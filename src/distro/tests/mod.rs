//! Shared by the tests: rootfs trees laid out like each distro's.

mod apply;
mod hostile;
mod load;

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::PathBuf;

use crate::distro::*;

/// A rootfs laid out like a distro's.
pub(super) struct Root {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Root {
    pub fn new() -> Root {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rootfs");
        std::fs::create_dir_all(path.join("etc")).unwrap();
        Root { _dir: dir, path }
    }

    pub fn dir(&self, rel: &str) -> &Self {
        std::fs::create_dir_all(self.path.join(rel)).unwrap();
        self
    }

    pub fn file(&self, rel: &str, content: &str) -> &Self {
        let p = self.path.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        self
    }

    pub fn exe(&self, rel: &str) -> &Self {
        self.file(rel, "#!/bin/sh\n");
        std::fs::set_permissions(self.path.join(rel), std::fs::Permissions::from_mode(0o755)).unwrap();
        self
    }

    pub fn link(&self, rel: &str, target: &str) -> &Self {
        let p = self.path.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(target, p).unwrap();
        self
    }

    /// /bin, /sbin and /lib as links into /usr, as on merged-/usr distros.
    pub fn merged_usr(&self) -> &Self {
        for d in ["bin", "sbin", "lib"] {
            self.dir(&format!("usr/{d}")).link(d, &format!("usr/{d}"));
        }
        self
    }

    /// systemd as /sbin/init, with these unit files.
    pub fn systemd(&self, units: &[&str]) -> &Self {
        self.exe("usr/lib/systemd/systemd").link("usr/sbin/init", "../lib/systemd/systemd");
        for u in units {
            self.file(&format!("usr/lib/systemd/system/{u}"), "[Unit]\n");
        }
        self
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    pub fn mode(&self, rel: &str) -> u32 {
        std::fs::metadata(self.path.join(rel)).unwrap().permissions().mode() & 0o7777
    }

    pub fn target(&self, rel: &str) -> String {
        std::fs::read_link(self.path.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}")).display().to_string()
    }

    pub fn has(&self, rel: &str) -> bool {
        std::fs::symlink_metadata(self.path.join(rel)).is_ok()
    }

    pub fn list(&self, rel: &str) -> Vec<String> {
        let mut v: Vec<_> = std::fs::read_dir(self.path.join(rel))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }
}

pub(super) fn ctx() -> Context {
    Context { name: "web".into(), hostname: "web".into(), machine_id: "0123456789abcdef0123456789abcdef".into() }
}

pub(super) fn run(root: &Root, distro: &str, release: &str) -> Applied {
    let eff = load(distro, None).unwrap().for_release(release);
    apply(&root.path, &eff, &ctx()).unwrap_or_else(|e| panic!("{distro} {release}: {e}"))
}
