use super::*;

const HYBRID: &str = "\
25 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:23 / /sys/fs/cgroup rw,relatime shared:8 - tmpfs tmpfs rw,mode=755
27 26 0:24 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu
28 26 0:25 / /sys/fs/cgroup/memory rw,relatime shared:10 - cgroup cgroup rw,memory
29 26 0:26 / /sys/fs/cgroup/systemd rw,relatime shared:11 - cgroup cgroup rw,name=systemd
30 26 0:27 / /sys/fs/cgroup/unified rw,relatime shared:12 - cgroup2 cgroup2 rw
31 26 0:28 / /sys/fs/cgroup/cpu\\040acct rw,relatime shared:13 - cgroup cgroup rw,cpuacct
";

const UNIFIED: &str = "\
25 30 0:22 / /sys rw,nosuid - sysfs sysfs rw
26 25 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

#[test]
fn detects_hybrid_and_skips_named_hierarchies() {
    let l = Layout::from_mountinfo(HYBRID).unwrap();
    let Layout::Hybrid { unified, v1 } = &l else { panic!("{l:?}") };
    assert_eq!(unified, Path::new("/sys/fs/cgroup/unified"));
    let mounts: Vec<_> = v1.iter().map(|h| h.mount.display().to_string()).collect();
    assert_eq!(mounts, ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu acct"]);
    assert_eq!(v1[0].controllers, ["cpu"]);
}

#[test]
fn detects_unified_and_refuses_v1_only() {
    assert_eq!(Layout::from_mountinfo(UNIFIED).unwrap(), Layout::Unified { root: "/sys/fs/cgroup".into() });
    let v1_only: String = HYBRID.lines().filter(|l| !l.contains("cgroup2")).map(|l| format!("{l}\n")).collect();
    assert!(matches!(Layout::from_mountinfo(&v1_only), Err(Error::NoCgroup2)));
}

#[test]
fn container_paths_follow_the_layout() {
    let l = Layout::from_mountinfo(HYBRID).unwrap();
    let cg = ContainerCgroup::new(&l, "hutch", "web");
    assert_eq!(cg.unified, Path::new("/sys/fs/cgroup/unified/hutch/web"));
    assert_eq!(cg.v1[1], Path::new("/sys/fs/cgroup/memory/hutch/web"));
    let cg = ContainerCgroup::new(&Layout::from_mountinfo(UNIFIED).unwrap(), "hutch", "web");
    assert_eq!(cg.unified, Path::new("/sys/fs/cgroup/hutch/web"));
    assert!(cg.v1.is_empty());
}

/// A fake hybrid tree in a temp dir: a cgroup2 root and a v1 cpuset hierarchy whose
/// root has CPUs and memory nodes.
fn fake_hybrid(dir: &Path) -> Layout {
    let unified = dir.join("unified");
    let cpuset = dir.join("cpuset");
    fs::create_dir_all(&unified).unwrap();
    fs::create_dir_all(&cpuset).unwrap();
    fs::write(cpuset.join("cpuset.cpus"), "0-1\n").unwrap();
    fs::write(cpuset.join("cpuset.mems"), "0\n").unwrap();
    Layout::Hybrid { unified, v1: vec![V1Hierarchy { controllers: vec!["cpuset".into()], mount: cpuset }] }
}

#[test]
fn create_copies_cpusets_down_and_remove_cleans_nested_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let layout = fake_hybrid(dir.path());
    let cg = ContainerCgroup::new(&layout, "hutch", "web");
    // A real kernel creates these files with each directory; the fake pre-creates
    // them empty right after mkdir, as the kernel would.
    fs::create_dir_all(dir.path().join("cpuset/hutch/web")).unwrap();
    for d in ["cpuset/hutch", "cpuset/hutch/web"] {
        for f in ["cpuset.cpus", "cpuset.mems"] {
            fs::write(dir.path().join(d).join(f), "").unwrap();
        }
    }
    cg.create(&layout, None).unwrap();
    assert_eq!(fs::read_to_string(dir.path().join("cpuset/hutch/web/cpuset.cpus")).unwrap(), "0-1");
    assert_eq!(fs::read_to_string(dir.path().join("cpuset/hutch/web/cpuset.mems")).unwrap(), "0");
    assert!(cg.exists());
    // The guest's systemd leaves sub-cgroups behind (empty dirs on a real cgroupfs).
    fs::create_dir_all(cg.unified.join("system.slice/dbus.service")).unwrap();
    fs::create_dir_all(cg.unified.join("init.scope")).unwrap();
    assert_eq!(fs::read_to_string(cg.unified.join("cgroup.max.depth")).unwrap(), "32");
    fs::remove_file(cg.unified.join("cgroup.max.depth")).unwrap();
    // On cgroupfs, files vanish with their directory; in the fake, drop them first.
    for d in ["cpuset/hutch/web"] {
        for f in ["cpuset.cpus", "cpuset.mems"] {
            fs::remove_file(dir.path().join(d).join(f)).unwrap();
        }
    }
    cg.remove().unwrap();
    assert!(!cg.exists());
    assert!(!dir.path().join("unified/hutch").exists(), "the empty shared parent goes too");
    cg.remove().unwrap();
}

#[test]
fn events_and_pids_are_read_from_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::Unified { root: dir.path().to_path_buf() };
    let cg = ContainerCgroup::new(&layout, "hutch", "c");
    fs::create_dir_all(cg.unified.join("init.scope")).unwrap();
    fs::write(cg.unified.join("cgroup.procs"), "").unwrap();
    fs::write(cg.unified.join("init.scope/cgroup.procs"), "42\n43\n").unwrap();
    fs::write(cg.unified.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
    assert_eq!(cg.pids(), vec![42, 43]);
    assert!(cg.is_populated());
    assert!(!cg.is_frozen());
    fs::write(cg.unified.join("cgroup.events"), "populated 0\nfrozen 1\n").unwrap();
    assert!(!cg.is_populated());
    assert!(cg.is_frozen());
}

#[test]
fn open_unified_refuses_paths_that_climb_out() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::Unified { root: dir.path().to_path_buf() };
    let cg = ContainerCgroup::new(&layout, "hutch", "c");
    assert!(matches!(cg.open_unified(Path::new("/../../other")), Err(Error::Open { .. })));
    std::fs::create_dir_all(dir.path().join("hutch/c/init.scope")).unwrap();
    assert!(cg.open_unified(Path::new("/init.scope")).is_ok());
    assert!(cg.open_unified(Path::new("/")).is_ok());
}

#[test]
fn a_systemd_unit_parent_is_left_to_systemd() {
    // systemd hosts: the container is `payload` in a delegated scope (crate::systemd).
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::Unified { root: dir.path().to_path_buf() };
    let slice = dir.path().join("machine.slice");
    let scope = slice.join("hutch-c.scope");
    fs::create_dir_all(scope.join("supervisor")).unwrap();
    for d in [&slice, &scope] {
        fs::write(d.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        fs::write(d.join("cgroup.subtree_control"), "").unwrap();
    }
    let cg = ContainerCgroup::new(&layout, "machine.slice/hutch-c.scope", "payload");
    cg.create(&layout, None).unwrap();
    assert!(cg.unified.is_dir());
    // Controllers are enabled in the scope (for payload), never in systemd's slice.
    assert_eq!(fs::read_to_string(slice.join("cgroup.subtree_control")).unwrap(), "");
    assert_ne!(fs::read_to_string(scope.join("cgroup.subtree_control")).unwrap(), "");
    fs::remove_file(cg.unified.join("cgroup.max.depth")).unwrap();
    fs::remove_dir(scope.join("supervisor")).unwrap();
    for f in ["cgroup.controllers", "cgroup.subtree_control"] {
        fs::remove_file(scope.join(f)).unwrap();
    }
    cg.remove().unwrap();
    assert!(!cg.unified.exists());
    assert!(scope.is_dir(), "the (empty) scope is systemd's to remove");
}
