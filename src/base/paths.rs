//! Where hutch keeps things. Two trees: persistent state (configs, root filesystems,
//! logs) and runtime state (monitor sockets, pids, locks) that must not survive a host
//! reboot. `--root DIR` (or `HUTCH_ROOT`) moves both under DIR so tests and users can
//! keep separate, independent trees.
//!
//! The runtime tree gives each kind of entry its own directory, so that no container
//! name can collide with hutch's own: `run/containers/NAME/`, `run/locks/`,
//! `run/networks/`. (Before issue 10 a container's runtime directory was `run/NAME`,
//! beside `locks` and `networks`; `legacy_runtime` names it so observation can
//! recognise state an older hutch left: crate::container::observe.)

use std::path::{Path, PathBuf};

pub const DEFAULT_STATE: &str = "/var/lib/hutch";
pub const DEFAULT_RUN: &str = "/run/hutch";

/// The directories of the runtime tree, one per kind of entry.
pub const RUN_KINDS: [&str; 3] = ["containers", "locks", "networks"];

#[derive(Debug, Clone)]
pub struct Paths {
    /// Persistent state: `containers/NAME/{config.toml,rootfs,logs}`.
    pub state: PathBuf,
    /// Runtime state: `containers/NAME/{state.json,monitor.sock,host/}`, `locks/` and
    /// `networks/`.
    pub run: PathBuf,
    /// Name of the cgroup directory that holds this tree's containers: `hutch` for the
    /// default tree, `hutch-<hash>` for another root, so two trees never share cgroups.
    pub cgroup_parent: String,
}

impl Paths {
    /// The default tree, or everything under `root` when one is given.
    pub fn new(root: Option<&Path>) -> Paths {
        match root {
            None => Paths {
                state: PathBuf::from(DEFAULT_STATE),
                run: PathBuf::from(DEFAULT_RUN),
                cgroup_parent: "hutch".into(),
            },
            Some(root) => {
                let root = absolute(root);
                Paths {
                    cgroup_parent: format!("hutch-{:08x}", fnv1a(root.as_os_str().as_encoded_bytes()) as u32),
                    run: root.join("run"),
                    state: root,
                }
            }
        }
    }

    pub fn containers(&self) -> PathBuf {
        self.state.join("containers")
    }
    pub fn container(&self, name: &str) -> PathBuf {
        self.containers().join(name)
    }
    pub fn config(&self, name: &str) -> PathBuf {
        self.container(name).join("config.toml")
    }
    pub fn logs(&self, name: &str) -> PathBuf {
        self.container(name).join("logs")
    }
    pub fn console_log(&self, name: &str) -> PathBuf {
        self.logs(name).join("console.log")
    }
    pub fn monitor_log(&self, name: &str) -> PathBuf {
        self.logs(name).join("monitor.log")
    }
    pub fn last_exit(&self, name: &str) -> PathBuf {
        self.container(name).join("last-exit.json")
    }
    /// The runtime directories of containers (one directory of hutch's own in `run`).
    pub fn runtimes(&self) -> PathBuf {
        self.run.join("containers")
    }
    pub fn runtime(&self, name: &str) -> PathBuf {
        self.runtimes().join(name)
    }
    /// Where a hutch from before the per-kind runtime layout kept `name`'s runtime
    /// directory (`run/NAME`); `None` where that is one of this layout's own directories.
    pub fn legacy_runtime(&self, name: &str) -> Option<PathBuf> {
        (!RUN_KINDS.contains(&name)).then(|| self.run.join(name))
    }
    pub fn state_file(&self, name: &str) -> PathBuf {
        self.runtime(name).join("state.json")
    }
    pub fn monitor_socket(&self, name: &str) -> PathBuf {
        self.runtime(name).join("monitor.sock")
    }
    /// Directory bind-mounted read-only at `/run/host` inside the container.
    pub fn host_share(&self, name: &str) -> PathBuf {
        self.runtime(name).join("host")
    }
    /// What sets this tree's host-wide names (interfaces, nftables tables) apart from
    /// other trees': empty for the default tree, a short hash for another root.
    pub fn scope(&self) -> &str {
        self.cgroup_parent.strip_prefix("hutch-").unwrap_or("")
    }
    /// Network definitions and reservations.
    pub fn networks(&self) -> PathBuf {
        self.state.join("networks")
    }
    /// The image cache: `images/ID/{rootfs,image.toml}`.
    pub fn images(&self) -> PathBuf {
        self.state.join("images")
    }
    pub fn image(&self, id: &str) -> PathBuf {
        self.images().join(id)
    }
    pub fn image_rootfs(&self, id: &str) -> PathBuf {
        self.image(id).join("rootfs")
    }
    /// Markers of ephemeral containers that have been started (`ephemeral/NAME`).
    pub fn ephemeral_markers(&self) -> PathBuf {
        self.state.join("ephemeral")
    }
    pub fn ephemeral_marker(&self, name: &str) -> PathBuf {
        self.ephemeral_markers().join(name)
    }
    pub fn locks(&self) -> PathBuf {
        self.run.join("locks")
    }
    pub fn lock(&self, name: &str) -> PathBuf {
        self.locks().join(format!("{name}.lock"))
    }
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf())
    }
}

/// FNV-1a, 64 bit: a stable, dependency-free hash for short derived names.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tree() {
        let p = Paths::new(None);
        assert_eq!(p.config("web"), PathBuf::from("/var/lib/hutch/containers/web/config.toml"));
        assert_eq!(p.monitor_socket("web"), PathBuf::from("/run/hutch/containers/web/monitor.sock"));
        assert_eq!(p.legacy_runtime("web"), Some(PathBuf::from("/run/hutch/web")));
        assert_eq!(p.cgroup_parent, "hutch");
    }

    #[test]
    fn no_container_name_collides_with_the_runtime_tree_s_own_directories() {
        let p = Paths::new(Some(Path::new("/tmp/a")));
        for kind in RUN_KINDS {
            let own = p.run.join(kind);
            assert_ne!(p.runtime(kind), own);
            assert_eq!(p.legacy_runtime(kind), None);
            assert!(p.lock(kind).starts_with(p.locks()));
        }
    }

    #[test]
    fn other_roots_get_their_own_cgroup_parent() {
        let a = Paths::new(Some(Path::new("/tmp/a")));
        let b = Paths::new(Some(Path::new("/tmp/b")));
        assert_eq!(a.state_file("c"), PathBuf::from("/tmp/a/run/containers/c/state.json"));
        assert_ne!(a.cgroup_parent, b.cgroup_parent);
        assert!(a.cgroup_parent.starts_with("hutch-"));
        assert_eq!(a.cgroup_parent, Paths::new(Some(Path::new("/tmp/a"))).cgroup_parent);
    }
}
