//! The mount plan: the ordered list of steps that turns a root filesystem into the
//! tree an init expects (the boot contract: /proc with masks, read-only /sys with a
//! cgroup2 tree, a /dev tmpfs with the standard nodes, devpts, console, /dev/shm,
//! /dev/mqueue, /run with the host share).
//!
//! Building the plan is pure and tested without root; `apply` executes it.

use std::path::PathBuf;

use super::policy;
use crate::sys::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};

/// What a bind source must be before it is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// A character device with this major:minor.
    CharDev(u32, u32),
    /// A pseudo-terminal slave (Unix98 ptys have majors 136-143).
    Pty,
    /// A directory.
    Dir,
    /// A regular file.
    File,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Creates a directory if missing. Paths are relative to the new root; every
    /// component is resolved inside it and symlinks are refused.
    Dir { path: String, mode: u32 },
    /// Creates an empty file to mount on, if missing.
    File { path: String },
    /// Creates a symlink, if missing.
    Symlink { path: String, to: String },
    /// Mounts a new instance of a filesystem.
    Fs { fstype: &'static str, target: String, options: Vec<(&'static str, String)>, attrs: u64 },
    /// Binds a host path (opened and checked before it is mounted).
    BindHost { source: PathBuf, target: String, check: Check, attrs: u64, required: bool },
    /// Binds a path inside the new root onto another (missing target: skipped).
    BindInside { source: String, target: String, attrs: u64 },
    /// Covers a directory with an empty read-only tmpfs (missing target: skipped).
    MaskDir { target: String },
    /// Re-mounts a path read-only, keeping one sub-path writable (missing: skipped).
    ReadOnly { target: String, keep_rw: Option<String> },
}

/// What the plan depends on.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Host path of the console pty slave, if any.
    pub console: Option<PathBuf>,
    /// Host directory shared read-only at /run/host (notify socket, boot id).
    pub host_share: PathBuf,
    /// `security.nesting`: the container runs container runtimes (see `NESTING`).
    pub nesting: bool,
    /// Where LXCFS is mounted, when its files go over /proc's (`super::lxcfs`).
    pub lxcfs: Option<PathBuf>,
}

const NOSUID_NODEV_NOEXEC: u64 = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;

fn opts(list: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    list.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// The full plan, in order: the kernel filesystems, /dev, /run, then the masks.
pub fn build(inputs: &Inputs) -> Vec<Step> {
    let mut s = Vec::new();
    for dir in ["proc", "sys", "dev", "run"] {
        s.push(Step::Dir { path: dir.into(), mode: 0o755 });
    }
    kernel_filesystems(&mut s, inputs.nesting);
    if let Some(root) = &inputs.lxcfs {
        lxcfs(&mut s, root);
    }
    dev(&mut s, inputs);
    run(&mut s, inputs);
    if !inputs.nesting {
        masks(&mut s);
    }
    s
}

fn kernel_filesystems(s: &mut Vec<Step>, nesting: bool) {
    // /proc, then /sys read-only with the container's own cgroup2 tree inside.
    s.push(Step::Fs { fstype: "proc", target: "proc".into(), options: vec![], attrs: NOSUID_NODEV_NOEXEC });
    s.push(Step::Fs {
        fstype: "sysfs",
        target: "sys".into(),
        options: vec![],
        attrs: if nesting { NOSUID_NODEV_NOEXEC } else { NOSUID_NODEV_NOEXEC | MOUNT_ATTR_RDONLY },
    });
    s.push(Step::Fs { fstype: "cgroup2", target: "sys/fs/cgroup".into(), options: vec![], attrs: NOSUID_NODEV_NOEXEC });
}

/// LXCFS's files over /proc's and /sys's, read-only (a file it lacks is skipped).
fn lxcfs(s: &mut Vec<Step>, root: &std::path::Path) {
    let files = super::lxcfs::PROC_FILES.iter().map(|f| format!("proc/{f}"));
    let files = files.chain(super::lxcfs::SYS_FILES.iter().map(|f| format!("sys/{f}")));
    for target in files {
        s.push(Step::BindHost {
            source: root.join(&target),
            target,
            check: Check::File,
            attrs: NOSUID_NODEV_NOEXEC | MOUNT_ATTR_RDONLY,
            required: false,
        });
    }
}

fn dev(s: &mut Vec<Step>, inputs: &Inputs) {
    // /dev: a small tmpfs holding only the standard nodes.
    s.push(Step::Fs {
        fstype: "tmpfs",
        target: "dev".into(),
        options: opts(policy::DEV_TMPFS),
        attrs: MOUNT_ATTR_NOSUID,
    });
    let extra = if inputs.nesting { policy::NESTING_DEV_NODES } else { &[] };
    for node in policy::DEV_NODES.iter().chain(extra) {
        if let Some((parent, _)) = node.name.rsplit_once('/') {
            s.push(Step::Dir { path: format!("dev/{parent}"), mode: 0o755 });
        }
        let target = format!("dev/{}", node.name);
        s.push(Step::File { path: target.clone() });
        s.push(Step::BindHost {
            source: PathBuf::from("/dev").join(node.name),
            target,
            check: Check::CharDev(node.major, node.minor),
            attrs: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
            required: node.required,
        });
    }
    s.push(Step::Dir { path: "dev/pts".into(), mode: 0o755 });
    s.push(Step::Fs {
        fstype: "devpts",
        target: "dev/pts".into(),
        options: opts(policy::DEVPTS),
        attrs: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
    });
    s.push(Step::Dir { path: "dev/shm".into(), mode: 0o1777 });
    s.push(Step::Fs {
        fstype: "tmpfs",
        target: "dev/shm".into(),
        options: opts(policy::SHM_TMPFS),
        attrs: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
    });
    s.push(Step::Dir { path: "dev/mqueue".into(), mode: 0o755 });
    s.push(Step::Fs { fstype: "mqueue", target: "dev/mqueue".into(), options: vec![], attrs: NOSUID_NODEV_NOEXEC });
    for (path, to) in policy::DEV_SYMLINKS {
        s.push(Step::Symlink { path: format!("dev/{path}"), to: to.to_string() });
    }
    if let Some(console) = &inputs.console {
        s.push(Step::File { path: "dev/console".into() });
        s.push(Step::BindHost {
            source: console.clone(),
            target: "dev/console".into(),
            check: Check::Pty,
            attrs: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
            required: true,
        });
    }
}

fn run(s: &mut Vec<Step>, inputs: &Inputs) {
    // /run: a tmpfs (systemd keeps an existing /run mount), with the host share.
    s.push(Step::Fs {
        fstype: "tmpfs",
        target: "run".into(),
        options: opts(policy::RUN_TMPFS),
        attrs: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
    });
    s.push(Step::Dir { path: "run/host".into(), mode: 0o755 });
    s.push(Step::BindHost {
        source: inputs.host_share.clone(),
        target: "run/host".into(),
        check: Check::Dir,
        attrs: NOSUID_NODEV_NOEXEC | MOUNT_ATTR_RDONLY,
        required: true,
    });

    // A boot id of the container's own, so its journal tells its boots apart (not
    // with nesting: it would be a mount over /proc).
    if inputs.nesting {
        return;
    }
    s.push(Step::BindInside {
        source: "run/host/boot_id".into(),
        target: "proc/sys/kernel/random/boot_id".into(),
        attrs: NOSUID_NODEV_NOEXEC | MOUNT_ATTR_RDONLY,
    });
}

fn masks(s: &mut Vec<Step>) {
    // Masks and read-only paths last, so nothing above is hidden by them.
    // Not nodev: reading a masked file must give /dev/null's empty read, not EACCES.
    for f in policy::MASKED_FILES {
        s.push(Step::BindInside {
            source: "dev/null".into(),
            target: f.to_string(),
            attrs: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC | MOUNT_ATTR_RDONLY,
        });
    }
    for d in policy::MASKED_DIRS {
        s.push(Step::MaskDir { target: d.to_string() });
    }
    for (path, keep) in policy::READ_ONLY {
        s.push(Step::ReadOnly { target: path.to_string(), keep_rw: keep.map(str::to_string) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Vec<Step> {
        build(&Inputs {
            console: Some("/dev/pts/7".into()),
            host_share: "/run/hutch/c/host".into(),
            nesting: false,
            lxcfs: None,
        })
    }

    fn position(p: &[Step], f: impl Fn(&Step) -> bool) -> usize {
        p.iter().position(f).expect("step present")
    }

    fn fs_at(target: &str) -> impl Fn(&Step) -> bool + '_ {
        move |s| matches!(s, Step::Fs { target: t, .. } if t == target)
    }

    #[test]
    fn proc_and_sys_are_locked_down() {
        let p = plan();
        let Step::Fs { attrs, .. } = &p[position(&p, fs_at("proc"))] else { unreachable!() };
        assert_eq!(*attrs & NOSUID_NODEV_NOEXEC, NOSUID_NODEV_NOEXEC);
        let Step::Fs { attrs, fstype, .. } = &p[position(&p, fs_at("sys"))] else { unreachable!() };
        assert_eq!(*fstype, "sysfs");
        assert_ne!(*attrs & MOUNT_ATTR_RDONLY, 0, "/sys must be read-only");
        let Step::Fs { fstype, attrs, .. } = &p[position(&p, fs_at("sys/fs/cgroup"))] else { unreachable!() };
        assert_eq!(*fstype, "cgroup2", "the guest always gets a cgroup2 tree");
        assert_eq!(*attrs & MOUNT_ATTR_RDONLY, 0, "its cgroup tree is writable");
        assert!(position(&p, fs_at("sys")) < position(&p, fs_at("sys/fs/cgroup")));
    }

    #[test]
    fn dev_gets_checked_standard_nodes_and_a_new_devpts() {
        let p = plan();
        let tmpfs = position(&p, fs_at("dev"));
        for (name, major, minor) in
            [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)]
        {
            let i = position(&p, |s| matches!(s, Step::BindHost { target, .. } if *target == format!("dev/{name}")));
            assert!(i > tmpfs);
            let Step::BindHost { check, required, .. } = &p[i] else { unreachable!() };
            assert_eq!(*check, Check::CharDev(major, minor));
            assert!(*required);
        }
        let Step::Fs { options, .. } = &p[position(&p, fs_at("dev/pts"))] else { unreachable!() };
        assert!(options.contains(&("ptmxmode", "0666".to_string())));
        assert!(options.contains(&("gid", "5".to_string())));
        assert!(p.contains(&Step::Symlink { path: "dev/ptmx".into(), to: "pts/ptmx".into() }));
        assert!(position(&p, fs_at("dev/shm")) > tmpfs);
        assert!(position(&p, fs_at("dev/mqueue")) > tmpfs);
    }

    #[test]
    fn console_is_a_checked_pty_and_never_a_tty_n() {
        let p = plan();
        let i = position(&p, |s| matches!(s, Step::BindHost { target, .. } if target == "dev/console"));
        let Step::BindHost { source, check, .. } = &p[i] else { unreachable!() };
        assert_eq!(source, &PathBuf::from("/dev/pts/7"));
        assert_eq!(*check, Check::Pty);
        assert!(!p.iter().any(
            |s| matches!(s, Step::BindHost { target, .. } if target.starts_with("dev/tty") && target != "dev/tty")
        ));
        let none = build(&Inputs { console: None, host_share: "/h".into(), nesting: false, lxcfs: None });
        assert!(!none.iter().any(|s| matches!(s, Step::BindHost { target, .. } if target == "dev/console")));
    }

    #[test]
    fn masks_and_read_only_paths_come_last() {
        let p = plan();
        let last_mount = position(&p, |s| matches!(s, Step::BindHost { target, .. } if target == "run/host"));
        for f in ["proc/kcore", "proc/keys", "proc/timer_list", "proc/sched_debug"] {
            let i = position(
                &p,
                |s| matches!(s, Step::BindInside { source, target, .. } if source == "dev/null" && target == f),
            );
            assert!(i > last_mount);
        }
        assert!(p.contains(&Step::MaskDir { target: "sys/firmware".into() }));
        assert!(p.contains(&Step::ReadOnly { target: "proc/sys".into(), keep_rw: Some("proc/sys/net".into()) }));
        assert!(p.contains(&Step::ReadOnly { target: "proc/sysrq-trigger".into(), keep_rw: None }));
        // Read-only /proc/sys is applied after the boot id bind beneath it.
        let boot_id = position(&p, |s| matches!(s, Step::BindInside { target, .. } if target.ends_with("boot_id")));
        let ro = position(&p, |s| matches!(s, Step::ReadOnly { target, .. } if target == "proc/sys"));
        assert!(boot_id < ro);
    }

    #[test]
    fn run_is_a_tmpfs_with_the_host_share_read_only() {
        let p = plan();
        assert!(
            position(&p, fs_at("run"))
                < position(&p, |s| matches!(s, Step::BindHost { target, .. } if target == "run/host"))
        );
        let Step::BindHost { attrs, check, .. } =
            &p[position(&p, |s| matches!(s, Step::BindHost { target, .. } if target == "run/host"))]
        else {
            unreachable!()
        };
        assert_ne!(*attrs & MOUNT_ATTR_RDONLY, 0);
        assert_eq!(*check, Check::Dir);
    }

    #[test]
    fn nesting_leaves_proc_and_sys_fully_visible() {
        let p = build(&Inputs { console: None, host_share: "/h".into(), nesting: true, lxcfs: None });
        let over_proc_or_sys = |s: &Step| match s {
            Step::BindInside { target, .. } | Step::MaskDir { target } | Step::ReadOnly { target, .. } => {
                target.starts_with("proc") || target.starts_with("sys")
            }
            _ => false,
        };
        assert!(!p.iter().any(over_proc_or_sys), "{p:?}");
        let Step::Fs { attrs, .. } = &p[position(&p, fs_at("sys"))] else { unreachable!() };
        assert_eq!(*attrs & MOUNT_ATTR_RDONLY, 0);
        assert!(p.iter().any(|s| matches!(s, Step::BindHost { target, .. } if target == "dev/fuse")));
        // Without nesting, no /dev/fuse.
        assert!(!plan().iter().any(|s| matches!(s, Step::BindHost { target, .. } if target == "dev/fuse")));
    }

    #[test]
    fn lxcfs_files_go_over_proc_after_it_is_mounted_read_only() {
        let p = build(&Inputs {
            console: None,
            host_share: "/h".into(),
            nesting: false,
            lxcfs: Some("/var/lib/lxcfs".into()),
        });
        let binds: Vec<&Step> = p
            .iter()
            .filter(|s| matches!(s, Step::BindHost { source, .. } if source.starts_with("/var/lib/lxcfs")))
            .collect();
        assert_eq!(binds.len(), super::super::lxcfs::PROC_FILES.len() + super::super::lxcfs::SYS_FILES.len());
        let first = position(&p, |s| matches!(s, Step::BindHost { target, .. } if target == "proc/meminfo"));
        assert!(position(&p, fs_at("proc")) < first && position(&p, fs_at("sys")) < first);
        for b in binds {
            let Step::BindHost { source, target, check, attrs, required } = b else { unreachable!() };
            assert_eq!(source, &std::path::Path::new("/var/lib/lxcfs").join(target));
            assert_eq!((*check, *required), (Check::File, false));
            assert_ne!(*attrs & MOUNT_ATTR_RDONLY, 0);
        }
        assert!(!plan().iter().any(|s| matches!(s, Step::BindHost { target, .. } if target == "proc/meminfo")));
    }
}
