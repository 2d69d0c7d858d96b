//! The executor against a recording fake of the kernel: a tree of paths in memory
//! that refuses symlinks the way `openat2(RESOLVE_NO_SYMLINKS)` does, and a log of
//! every mount attached, with its flags.

use std::collections::{BTreeMap, HashMap};
use std::io;

use super::*;
use crate::runtime::plan::{self, Inputs};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Node {
    Dir,
    File,
    Link,
}

#[derive(Debug, Clone)]
enum H {
    Path(String),
    Tree(usize),
}

#[derive(Default)]
struct Fake {
    nodes: BTreeMap<String, Node>,
    trees: Vec<(String, u64)>,
    log: Vec<String>,
}

fn join(base: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for p in rel.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

fn enoent() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOENT)
}

/// What a freshly mounted filesystem shows below its mount point.
fn skeleton(fstype: &str) -> &'static [(&'static str, Node)] {
    match fstype {
        "proc" => &[
            ("sys", Node::Dir),
            ("sys/net", Node::Dir),
            ("sys/kernel", Node::Dir),
            ("sys/kernel/random", Node::Dir),
            ("sys/kernel/random/boot_id", Node::File),
            ("keys", Node::File),
            ("timer_list", Node::File),
            ("bus", Node::Dir),
            ("fs", Node::Dir),
            ("irq", Node::Dir),
            ("sysrq-trigger", Node::File),
            ("acpi", Node::Dir),
        ],
        "sysfs" => &[("fs", Node::Dir), ("fs/cgroup", Node::Dir), ("firmware", Node::Dir)],
        "host /run/hutch/c/host" => &[("boot_id", Node::File), ("notify", Node::File)],
        _ => &[],
    }
}

impl Fake {
    fn with(nodes: &[(&str, Node)]) -> Fake {
        let mut f = Fake::default();
        for (p, n) in nodes {
            f.nodes.insert(p.to_string(), *n);
        }
        f
    }

    fn flags(attrs: u64) -> String {
        let names = [
            (sys::MOUNT_ATTR_RDONLY, "ro"),
            (sys::MOUNT_ATTR_NOSUID, "nosuid"),
            (sys::MOUNT_ATTR_NODEV, "nodev"),
            (sys::MOUNT_ATTR_NOEXEC, "noexec"),
        ];
        let set: Vec<&str> = names.iter().filter(|(b, _)| attrs & b != 0).map(|(_, n)| *n).collect();
        if set.is_empty() { String::new() } else { format!(" [{}]", set.join(",")) }
    }

    fn tree(&mut self, desc: String, attrs: u64) -> H {
        self.trees.push((desc, attrs));
        H::Tree(self.trees.len() - 1)
    }
}

impl MountOps for Fake {
    type Handle = H;

    fn resolve(&mut self, dir: &H, path: &str) -> io::Result<H> {
        let H::Path(base) = dir else { return Err(io::Error::from_raw_os_error(libc::ENOTDIR)) };
        let full = join(base, path);
        let mut prefix = String::new();
        for part in full.split('/').filter(|p| !p.is_empty()) {
            prefix = join(&prefix, part);
            match self.nodes.get(&prefix) {
                Some(Node::Link) => return Err(io::Error::from_raw_os_error(libc::ELOOP)),
                Some(_) => {}
                None => return Err(enoent()),
            }
        }
        Ok(H::Path(full))
    }

    fn mkdir(&mut self, dir: &H, name: &str, _mode: u32) -> io::Result<()> {
        self.create(dir, name, Node::Dir)
    }

    fn create_file(&mut self, dir: &H, name: &str) -> io::Result<()> {
        self.create(dir, name, Node::File)
    }

    fn symlink(&mut self, dir: &H, name: &str, _to: &str) -> io::Result<()> {
        self.create(dir, name, Node::Link)
    }

    fn is_dir(&mut self, h: &H) -> io::Result<bool> {
        match h {
            H::Path(p) if p.is_empty() => Ok(true),
            H::Path(p) => Ok(self.nodes.get(p) == Some(&Node::Dir)),
            H::Tree(_) => Ok(true),
        }
    }

    fn new_fs(&mut self, fstype: &str, _options: &[(&str, String)], attrs: u64) -> io::Result<H> {
        Ok(self.tree(fstype.to_string(), attrs))
    }

    fn clone_tree(&mut self, h: &H, recursive: bool) -> io::Result<H> {
        let what = match h {
            H::Path(p) => format!("/{p}"),
            H::Tree(i) => self.trees[*i].0.clone(),
        };
        Ok(self.tree(format!("clone of {what}{}", if recursive { " (recursive)" } else { "" }), 0))
    }

    fn set_attrs(&mut self, tree: &H, attrs: u64, _recursive: bool) -> io::Result<()> {
        let H::Tree(i) = tree else { return Err(io::Error::from_raw_os_error(libc::EINVAL)) };
        self.trees[*i].1 |= attrs;
        Ok(())
    }

    fn move_onto(&mut self, tree: &H, target: &H) -> io::Result<()> {
        let (H::Tree(i), H::Path(t)) = (tree, target) else { return Err(io::Error::from_raw_os_error(libc::EINVAL)) };
        let (desc, attrs) = self.trees[*i].clone();
        self.log.push(format!("{desc} on /{t}{}", Fake::flags(attrs)));
        // A new filesystem hides what was below its mount point and shows its own tree.
        let skel = skeleton(&desc);
        if !desc.starts_with("clone of") {
            let below = format!("{t}/");
            self.nodes.retain(|p, _| !p.starts_with(&below));
            for (p, n) in skel {
                self.nodes.insert(format!("{t}/{p}"), *n);
            }
        }
        Ok(())
    }
}

impl Fake {
    fn create(&mut self, dir: &H, name: &str, node: Node) -> io::Result<()> {
        let H::Path(base) = dir else { return Err(io::Error::from_raw_os_error(libc::ENOTDIR)) };
        let p = join(base, name);
        if self.nodes.contains_key(&p) {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        self.nodes.insert(p, node);
        Ok(())
    }
}

fn inputs() -> Inputs {
    Inputs { console: Some("/dev/pts/3".into()), host_share: "/run/hutch/c/host".into(), nesting: false, lxcfs: None }
}

/// A root as debootstrap leaves it, with every host bind prepared except `missing`.
fn root_with(nodes: &[(&str, Node)], missing: &[&str]) -> Root<Fake> {
    let mut fake = Fake::with(nodes);
    let mut host = HashMap::new();
    for step in plan::build(&inputs()) {
        if let Step::BindHost { source, .. } = step {
            if !missing.contains(&source.to_str().unwrap()) {
                let h = fake.tree(format!("host {}", source.display()), 0);
                host.insert(source, h);
            }
        }
    }
    Root::with_ops(fake, H::Path(String::new()), host)
}

fn debootstrapped() -> Vec<(&'static str, Node)> {
    vec![
        ("proc", Node::Dir),
        ("sys", Node::Dir),
        ("dev", Node::Dir),
        ("run", Node::Dir),
        ("etc", Node::Dir),
        ("var", Node::Dir),
        ("var/run", Node::Link),
    ]
}

fn position(log: &[String], line: &str) -> usize {
    log.iter().position(|l| l == line).unwrap_or_else(|| panic!("{line:?} not mounted; log:\n{}", log.join("\n")))
}

#[test]
fn the_standard_plan_mounts_what_the_boot_contract_lists_in_order() {
    let mut root = root_with(&debootstrapped(), &[]);
    root.apply(&plan::build(&inputs())).unwrap();
    let log = root.ops.log.clone();
    let expected = [
        "proc on /proc [nosuid,nodev,noexec]",
        "sysfs on /sys [ro,nosuid,nodev,noexec]",
        "cgroup2 on /sys/fs/cgroup [nosuid,nodev,noexec]",
        "tmpfs on /dev [nosuid]",
        "host /dev/null on /dev/null",
        "host /dev/tty on /dev/tty",
        "host /dev/net/tun on /dev/net/tun",
        "devpts on /dev/pts [nosuid,noexec]",
        "tmpfs on /dev/shm [nosuid,nodev]",
        "mqueue on /dev/mqueue [nosuid,nodev,noexec]",
        "host /dev/pts/3 on /dev/console",
        "tmpfs on /run [nosuid,nodev]",
        "host /run/hutch/c/host on /run/host",
        "clone of /run/host/boot_id on /proc/sys/kernel/random/boot_id [ro,nosuid,nodev,noexec]",
        "clone of /dev/null on /proc/keys [ro,nosuid,noexec]",
        "tmpfs on /proc/acpi [ro,nosuid,nodev,noexec]",
        "clone of tmpfs on /sys/firmware",
        "clone of /proc/sys (recursive) on /proc/sys [ro]",
        "clone of /proc/sys/net (recursive) on /proc/sys/net",
    ];
    let mut last = 0;
    for line in expected {
        let at = position(&log, line);
        assert!(at >= last, "{line:?} came too early; log:\n{}", log.join("\n"));
        last = at;
    }
    // Masks that this kernel's /proc lacks are skipped, not errors.
    assert!(!log.iter().any(|l| l.contains("/proc/kcore")));
    // The symlinks userland expects were made in the new /dev.
    for link in ["dev/ptmx", "dev/fd", "dev/stdin"] {
        assert_eq!(root.ops.nodes.get(link), Some(&Node::Link), "{link}");
    }
}

#[test]
fn a_symlinked_mount_point_is_refused_before_anything_is_mounted() {
    for bad in ["proc", "sys", "dev", "run"] {
        let mut nodes = debootstrapped();
        nodes.retain(|(p, _)| *p != bad);
        nodes.push((bad, Node::Link));
        let mut root = root_with(&nodes, &[]);
        let err = root.apply(&plan::build(&inputs())).unwrap_err();
        assert!(matches!(&err, Error::Symlink { path } if path == bad), "{bad}: {err}");
        assert!(err.to_string().contains(&format!("refusing to mount on /{bad}")));
        if bad == "proc" {
            assert!(root.ops.log.is_empty(), "mounted before refusing: {:?}", root.ops.log);
        }
    }
}

#[test]
fn a_regular_file_where_a_mount_point_belongs_is_refused() {
    let mut nodes = debootstrapped();
    nodes.retain(|(p, _)| *p != "sys");
    nodes.push(("sys", Node::File));
    let err = root_with(&nodes, &[]).apply(&plan::build(&inputs())).unwrap_err();
    assert!(err.to_string().contains("failed to create directory /sys"), "{err}");
}

#[test]
fn missing_mount_points_are_created() {
    let mut root = root_with(&[("etc", Node::Dir)], &[]);
    root.apply(&plan::build(&inputs())).unwrap();
    for d in ["proc", "sys", "dev", "run"] {
        assert_eq!(root.ops.nodes.get(d), Some(&Node::Dir), "{d}");
    }
}

#[test]
fn required_host_binds_must_be_there_and_optional_ones_may_not() {
    let mut root = root_with(&debootstrapped(), &["/dev/net/tun"]);
    root.apply(&plan::build(&inputs())).unwrap();
    assert!(!root.ops.log.iter().any(|l| l.contains("tun")));

    let err = root_with(&debootstrapped(), &["/dev/null"]).apply(&plan::build(&inputs())).unwrap_err();
    assert!(err.to_string().contains("dev/null from /dev/null"), "{err}");
}
