use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::cgroup::{ContainerCgroup, Layout, V1Hierarchy};

fn host() -> Host {
    Host { cpus: 4, online: vec![0, 1, 2, 3] }
}

fn put(dir: &Path, files: &[(&str, &str)]) {
    fs::create_dir_all(dir).unwrap();
    for (name, text) in files {
        fs::write(dir.join(name), text).unwrap();
    }
}

fn get(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file)).unwrap()
}

fn toml_limits(text: &str) -> Limits {
    #[derive(serde::Deserialize)]
    struct Doc {
        limits: Limits,
    }
    toml::from_str::<Doc>(text).unwrap().limits
}

/// Checks one `[limits]` value as `config set` does: through the TOML of a config
/// (as a string, the way `hutch config set NAME KEY VALUE` writes a non-number) and
/// [`Limits::validate`].
fn check(key: &str, value: &str, host: &Host) -> Result<(), Error> {
    let field = key.strip_prefix("limits.").expect("a limits key");
    toml_limits(&format!("[limits]\n{field} = {}", toml::Value::String(value.into()))).validate(host)
}

/// Pairs (file name, value) of a plan, with paths relative to `base`.
fn pairs(p: &Plan, base: &Path) -> Vec<(String, String)> {
    p.writes.iter().map(|w| (w.path.strip_prefix(base).unwrap().display().to_string(), w.value.clone())).collect()
}

/// A unified host as the kernel lays it out: hutch's parent hands down every controller.
fn unified(tmp: &Path) -> (Layout, ContainerCgroup) {
    let root = tmp.join("cgroup");
    let layout = Layout::Unified { root: root.clone() };
    let cg = ContainerCgroup::new(&layout, "hutch", "web");
    put(
        &root.join("hutch"),
        &[
            ("cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n"),
            ("cgroup.subtree_control", "cpuset cpu io memory pids\n"),
        ],
    );
    put(
        &cg.unified,
        &[
            ("cgroup.procs", ""),
            ("cpuset.cpus", "\n"),
            ("cpuset.cpus.effective", "0-3\n"),
            ("memory.max", "max\n"),
            ("memory.swap.max", "max\n"),
            ("cpu.max", "max 100000\n"),
            ("cpu.weight", "100\n"),
            ("pids.max", "max\n"),
            ("io.weight", "default 100\n"),
            ("io.max", ""),
        ],
    );
    (layout, cg)
}

const V1_UNLIMITED_TEXT: &str = "9223372036854771712\n";

/// A hybrid host (as on the test machines, cpu and cpuacct co-mounted here).
fn hybrid(tmp: &Path, controllers: &[&str]) -> (Layout, ContainerCgroup) {
    let v1 = controllers
        .iter()
        .map(|c| V1Hierarchy { controllers: c.split(',').map(str::to_string).collect(), mount: tmp.join(c) })
        .collect();
    let layout = Layout::Hybrid { unified: tmp.join("unified"), v1 };
    let cg = ContainerCgroup::new(&layout, "hutch", "web");
    put(&cg.unified, &[("cgroup.procs", ""), ("cgroup.events", "populated 0\nfrozen 0\n")]);
    let Layout::Hybrid { v1, .. } = &layout else { unreachable!() };
    for (h, dir) in v1.iter().zip(&cg.v1) {
        put(dir, &[("cgroup.procs", "")]);
        for c in &h.controllers {
            match c.as_str() {
                "cpuset" => {
                    put(dir.parent().unwrap(), &[("cpuset.cpus", "0-3\n"), ("cpuset.mems", "0\n")]);
                    put(dir, &[("cpuset.cpus", "0-3\n"), ("cpuset.mems", "0\n")]);
                }
                "memory" => put(
                    dir,
                    &[
                        ("memory.limit_in_bytes", V1_UNLIMITED_TEXT),
                        ("memory.memsw.limit_in_bytes", V1_UNLIMITED_TEXT),
                        ("memory.usage_in_bytes", "0\n"),
                    ],
                ),
                "cpu" => put(
                    dir,
                    &[("cpu.cfs_period_us", "100000\n"), ("cpu.cfs_quota_us", "-1\n"), ("cpu.shares", "1024\n")],
                ),
                "pids" => put(dir, &[("pids.max", "max\n"), ("pids.current", "0\n")]),
                "blkio" => put(
                    dir,
                    &[
                        ("blkio.weight", "500\n"),
                        ("blkio.throttle.read_bps_device", ""),
                        ("blkio.throttle.write_bps_device", ""),
                        ("blkio.throttle.read_iops_device", ""),
                        ("blkio.throttle.write_iops_device", ""),
                    ],
                ),
                _ => {}
            }
        }
    }
    (layout, cg)
}

const ALL_V1: &[&str] = &["cpuset", "cpu,cpuacct", "memory", "pids", "blkio"];

fn full() -> Limits {
    toml_limits(
        r#"
        [limits]
        memory = "512MiB"
        memory_swap = "1GiB"
        cpus = 1.5
        cpu_weight = 200
        cpuset = "0-1,3"
        pids = 100
        io_weight = 300
        [[limits.io]]
        device = "8:0"
        read_bps = "10MiB"
        write_iops = 100
        "#,
    )
}

// ---- parsing and validation ----

#[test]
fn accepted_forms() {
    let h = host();
    for (key, value) in [
        ("limits.memory", "512MiB"),
        ("limits.memory", "2G"),
        ("limits.memory", "1.5GiB"),
        ("limits.memory", "max"),
        ("limits.memory", "4MiB"),
        ("limits.memory", "4194304"),
        ("limits.memory_swap", "0"),
        ("limits.memory_swap", "max"),
        ("limits.memory_swap", "1G"),
        ("limits.cpus", "1.5"),
        ("limits.cpus", "0.5"),
        ("limits.cpus", "4"),
        ("limits.cpus", "0.01"),
        ("limits.cpus", "1.250000"),
        ("limits.cpus", "max"),
        ("limits.cpu_weight", "1"),
        ("limits.cpu_weight", "10000"),
        ("limits.cpuset", "0-1,3"),
        ("limits.cpuset", "3"),
        ("limits.cpuset", "0-3"),
        ("limits.pids", "1"),
        ("limits.pids", "max"),
        ("limits.pids", "4194304"),
        ("limits.io_weight", "100"),
    ] {
        check(key, value, &h).unwrap_or_else(|e| panic!("{key} = {value}: {e}"));
    }
}

#[test]
fn refused_forms_name_the_accepted_ones() {
    let h = host();
    for (key, value, says) in [
        ("limits.memory", "10XB", "not a size; use a whole number of bytes or a number with a binary unit"),
        ("limits.memory", "-1", "not a size"),
        ("limits.memory", "1e99", "not a size"),
        ("limits.memory", "18446744073709551616", "not a size"),
        ("limits.memory", "9223372036854775808", "too large"),
        ("limits.memory", "0", "below the minimum of 4.0 MiB"),
        ("limits.memory", "1M", "below the minimum"),
        ("limits.memory", "", "not a size"),
        ("limits.memory_swap", "lots", "e.g. 512MiB or 1.5G"),
        ("limits.pids", "0", "out of range; use a whole number from 1 to 4194304"),
        ("limits.pids", "-5", "not a whole number"),
        ("limits.pids", "4194305", "out of range"),
        ("limits.pids", "1.5", "not a whole number"),
        ("limits.cpus", "0", "below the minimum of 0.01 CPUs"),
        ("limits.cpus", "0.001", "below the minimum"),
        ("limits.cpus", "-1", "not a number of CPUs"),
        ("limits.cpus", "NaN", "not a number of CPUs"),
        ("limits.cpus", "inf", "not a number of CPUs"),
        ("limits.cpus", "1e3", "not a number of CPUs"),
        ("limits.cpus", "1.", "not a number of CPUs"),
        ("limits.cpus", ".5", "not a number of CPUs"),
        ("limits.cpus", "4.5", "more than the 4 CPUs this host has"),
        ("limits.cpus", "0.123456", "too precise"),
        ("limits.cpu_weight", "0", "out of range; use a whole number from 1 to 10000"),
        ("limits.cpu_weight", "10001", "out of range"),
        ("limits.cpu_weight", "heavy", "not a weight"),
        ("limits.io_weight", "0", "out of range"),
        ("limits.io_weight", "20000", "out of range"),
        ("limits.cpuset", "3-1", "the range 3-1 runs backwards; use CPU numbers and ranges"),
        ("limits.cpuset", "a", "not a CPU list"),
        ("limits.cpuset", ",,", "not a CPU list"),
        ("limits.cpuset", "0-", "not a CPU list"),
        ("limits.cpuset", "0-7:2", "not a CPU list"),
        ("limits.cpuset", "", "empty"),
        ("limits.cpuset", "0-4", "CPU 4 is not online on this host (online: 0-3)"),
        ("limits.cpuset", "7", "CPU 7 is not online"),
        ("limits.cpuset", "0-4000000", "not a CPU list"),
        ("limits.cpuset", "0-400000", "CPU 4 is not online"),
    ] {
        let e = check(key, value, &h).expect_err(&format!("{key} = {value:?} was accepted"));
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("failed to set {key} to {value:?}: ")), "{msg}");
        assert!(msg.contains(says), "{key} = {value:?}: {msg}");
        assert!(e.hint().is_some());
    }
}

#[test]
fn the_size_message_reads_whole() {
    let e = check("limits.memory", "10XB", &host()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "failed to set limits.memory to \"10XB\": not a size; use a whole number of bytes or a number with a binary unit \
         K/KiB, M/MiB, G/GiB or T/TiB (1K = 1024 bytes), e.g. 512MiB or 1.5G, or \"max\" for no limit"
    );
}

#[test]
fn toml_takes_integers_floats_and_strings_and_refuses_unknown_fields() {
    let l = full();
    assert_eq!(l.cpus, Some(Scalar::Float(1.5)));
    assert_eq!(l.pids, Some(Scalar::Int(100)));
    assert_eq!(l.memory, Some(Scalar::from("512MiB")));
    l.validate(&host()).unwrap();
    let as_strings = toml_limits("[limits]\npids = \"100\"\ncpus = \"2\"\ncpu_weight = \"50\"\nmemory = 1073741824\n");
    as_strings.validate(&host()).unwrap();
    let bad = toml::from_str::<toml::Table>("[limits]\nmemroy = \"1G\"\n").unwrap();
    assert!(bad["limits"].clone().try_into::<Limits>().is_err());
    let bad_io = toml::from_str::<toml::Table>("[limits]\n[[limits.io]]\ndevice = \"8:0\"\nrbps = 1\n").unwrap();
    assert!(bad_io["limits"].clone().try_into::<Limits>().is_err());
    // Round trip keeps only what was set.
    let text = toml::to_string(&as_strings).unwrap();
    assert!(!text.contains("io_weight") && text.contains("pids = \"100\""), "{text}");
    assert_eq!(toml::from_str::<Limits>(&text).unwrap(), as_strings);
    // Floats and negatives from TOML are refused like their text.
    let l = toml_limits("[limits]\npids = -1\n");
    assert!(l.validate(&host()).unwrap_err().to_string().contains("limits.pids to \"-1\""));
    let l = toml_limits("[limits]\ncpus = nan\n");
    assert!(l.validate(&host()).unwrap_err().to_string().contains("not a number of CPUs"));
    let l = toml_limits("[limits]\ncpus = 0.0\n");
    assert!(l.validate(&host()).is_err());
    let l = toml_limits("[limits]\nmemory = 1.5\n");
    assert!(l.validate(&host()).unwrap_err().to_string().contains("not a size"));
}

#[test]
fn io_devices() {
    let h = host();
    let check = |dev: &str, extra: &str| {
        toml_limits(&format!("[limits]\n[[limits.io]]\ndevice = {dev:?}\n{extra}")).validate(&h)
    };
    check("8:0", "read_bps = \"10MiB\"\nwrite_bps = 1048576\nread_iops = 100\nwrite_iops = \"max\"\n").unwrap();
    check("8:0", "").unwrap();
    for (dev, says) in [
        ("/dev/null", "a character device, not a block device; use a block device node such as /dev/sda, or MAJ:MIN"),
        ("/", "a directory, not a block device"),
        ("/no/such/device", "cannot stat it"),
        ("sda", "not a device"),
        ("8:", "not a device"),
        ("8:x", "not a device"),
        ("", "not a device"),
    ] {
        let e = check(dev, "").unwrap_err();
        assert!(e.to_string().starts_with(&format!("failed to set limits.io[0].device to {dev:?}: ")), "{e}");
        assert!(e.to_string().contains(says), "{dev}: {e}");
        assert!(e.hint().unwrap().contains("lsblk"));
    }
    for (extra, says) in [
        ("read_bps = \"0\"", "limits.io[0].read_bps to \"0\": 0 is no limit"),
        ("write_bps = \"10XB\"", "not a size"),
        ("read_iops = 0", "out of range; use a whole number from 1 to 4294967295"),
        ("write_iops = 4294967296", "out of range"),
    ] {
        let e = check("8:0", extra).unwrap_err();
        assert!(e.to_string().contains(says), "{extra}: {e}");
    }
    let twice = toml_limits("[limits]\n[[limits.io]]\ndevice = \"8:0\"\n[[limits.io]]\ndevice = \"8:00\"\n");
    assert!(twice.validate(&h).unwrap_err().to_string().contains("the same device (8:0) as limits.io[0]"));
}

#[test]
fn io_device_by_path_resolves_through_stat() {
    // Any block device node this machine has (loop0, vda, ...).
    let found = fs::read_dir("/sys/dev/block").into_iter().flatten().flatten().find_map(|e| {
        let uevent = fs::read_to_string(e.path().join("uevent")).ok()?;
        let name = uevent.lines().find_map(|l| l.strip_prefix("DEVNAME="))?;
        let node = PathBuf::from("/dev").join(name);
        use std::os::unix::fs::FileTypeExt;
        fs::metadata(&node).ok()?.file_type().is_block_device().then(|| (node, e.file_name().into_string().ok()))
    });
    let Some((node, Some(majmin))) = found else {
        eprintln!("no block device node on this machine: skipping the by-path case");
        return;
    };
    let l = toml_limits(&format!("[limits]\n[[limits.io]]\ndevice = {:?}\nread_bps = \"1MiB\"\n", node.display()));
    let tmp = tempfile::tempdir().unwrap();
    let (layout, cg) = unified(tmp.path());
    let p = plan(&l, &layout, &cg, &host()).unwrap();
    let line = format!("{majmin} rbps=1048576 wbps=max riops=max wiops=max");
    assert!(p.writes.iter().any(|w| w.value == line), "{:?}", p.writes);
}

#[test]
fn cpu_lists() {
    assert_eq!(parse_cpu_list("0-3,5\n").unwrap(), [(0, 3), (5, 5)]);
    assert_eq!(parse_cpu_list("3,0-1,2").unwrap(), [(0, 3)]);
    assert_eq!(format_cpu_list(&parse_cpu_list("5,0-1,1-2").unwrap()), "0-2,5");
    assert_eq!(to_ranges(&[3, 0, 1]), [(0, 1), (3, 3)]);
    assert_eq!(expand(&[(0, 1), (3, 3)]), [0, 1, 3]);
    let h = Host::detect();
    assert!(h.cpus >= 1 && !h.online.is_empty());
}

// ---- cgroup v2 ----

#[test]
fn v2_maps_every_field() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, cg) = unified(tmp.path());
    let p = plan(&full(), &layout, &cg, &host()).unwrap();
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(
        pairs(&p, &cg.unified),
        [
            ("cpuset.cpus", "0-1,3"),
            ("memory.max", "536870912"),
            ("memory.swap.max", "1073741824"),
            ("cpu.max", "150000 100000"),
            ("cpu.weight", "200"),
            ("pids.max", "100"),
            ("io.weight", "default 300"),
            ("io.max", "8:0 rbps=10485760 wbps=max riops=max wiops=100"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    apply(&p.writes).unwrap();
    assert_eq!(get(&cg.unified, "cpu.max"), "150000 100000");
    assert_eq!(get(&cg.unified, "memory.max"), "536870912");
}

#[test]
fn v2_resets_removed_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, cg) = unified(tmp.path());
    apply(&plan(&full(), &layout, &cg, &host()).unwrap().writes).unwrap();
    // The kernel shows the live device rule; the config no longer has it.
    fs::write(cg.unified.join("io.max"), "8:0 rbps=10485760 wbps=max riops=max wiops=100\n").unwrap();
    let p = plan(&Limits::default(), &layout, &cg, &host()).unwrap();
    assert_eq!(
        pairs(&p, &cg.unified),
        [
            ("cpuset.cpus", ""),
            ("memory.max", "max"),
            ("memory.swap.max", "max"),
            ("cpu.max", "max 100000"),
            ("cpu.weight", "100"),
            ("pids.max", "max"),
            ("io.weight", "default 100"),
            ("io.max", "8:0 rbps=max wbps=max riops=max wiops=max"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    apply(&p.writes).unwrap();
    for (f, v) in [("memory.max", "max"), ("cpu.max", "max 100000"), ("pids.max", "max"), ("cpu.weight", "100")] {
        assert_eq!(get(&cg.unified, f), v);
    }
    // "0" swap and explicit "max" are written as such.
    let l = toml_limits("[limits]\nmemory = \"1G\"\nmemory_swap = \"0\"\npids = \"max\"\ncpus = \"max\"\n");
    let p = plan(&l, &layout, &cg, &host()).unwrap();
    let w = pairs(&p, &cg.unified);
    assert!(w.contains(&("memory.swap.max".into(), "0".into())));
    assert!(w.contains(&("pids.max".into(), "max".into())));
    assert!(w.contains(&("cpu.max".into(), "max 100000".into())));
}

#[test]
fn v2_enables_missing_controllers_on_the_parent_first() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, cg) = unified(tmp.path());
    let parent = cg.unified.parent().unwrap();
    fs::write(parent.join("cgroup.subtree_control"), "memory pids\n").unwrap();
    let p = plan(&full(), &layout, &cg, &host()).unwrap();
    let w = pairs(&p, parent);
    assert_eq!(
        w[..3],
        [("cgroup.subtree_control", "+cpuset"), ("cgroup.subtree_control", "+cpu"), ("cgroup.subtree_control", "+io")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(w[3], ("web/cpuset.cpus".to_string(), "0-1,3".to_string()));
    assert!(p.warnings.is_empty());

    // A controller the parent cannot have: a warning for a set limit, silence for a reset.
    fs::write(parent.join("cgroup.controllers"), "cpu io memory pids\n").unwrap();
    fs::write(parent.join("cgroup.subtree_control"), "cpu io memory pids\n").unwrap();
    let p = plan(&full(), &layout, &cg, &host()).unwrap();
    assert_eq!(p.warnings.len(), 1);
    assert!(
        p.warnings[0].starts_with("limits.cpuset not applied: the cpuset controller is not available"),
        "{:?}",
        p.warnings
    );
    assert!(!p.writes.iter().any(|w| w.path.ends_with("cpuset.cpus")));
    let p = plan(&Limits::default(), &layout, &cg, &host()).unwrap();
    assert!(p.warnings.is_empty() && !p.writes.iter().any(|w| w.path.ends_with("cpuset.cpus")));
}

#[test]
fn v2_without_swap_accounting_or_io_weight_warns() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, cg) = unified(tmp.path());
    fs::remove_file(cg.unified.join("memory.swap.max")).unwrap();
    fs::remove_file(cg.unified.join("io.weight")).unwrap();
    let p = plan(&full(), &layout, &cg, &host()).unwrap();
    assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
    assert!(p.warnings[0].starts_with("limits.memory_swap not applied: swap accounting is off"));
    assert!(p.warnings[1].starts_with("limits.io_weight not applied"));
    apply(&p.writes).unwrap();
    assert!(!cg.unified.join("memory.swap.max").exists());
    assert!(plan(&Limits::default(), &layout, &cg, &host()).unwrap().warnings.is_empty());
}

// ---- cgroup v1 (hybrid) ----

#[test]
fn v1_maps_every_field() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, cg) = hybrid(tmp.path(), ALL_V1);
    let p = plan(&full(), &layout, &cg, &host()).unwrap();
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(
        pairs(&p, tmp.path()),
        [
            ("cpuset/hutch/web/cpuset.cpus", "0-1,3"),
            // Raising from unlimited memsw: the limit may go first.
            ("memory/hutch/web/memory.limit_in_bytes", "536870912"),
            ("memory/hutch/web/memory.memsw.limit_in_bytes", "1610612736"),
            ("cpu,cpuacct/hutch/web/cpu.cfs_period_us", "100000"),
            ("cpu,cpuacct/hutch/web/cpu.cfs_quota_us", "150000"),
            ("cpu,cpuacct/hutch/web/cpu.shares", "2048"),
            ("pids/hutch/web/pids.max", "100"),
            ("blkio/hutch/web/blkio.weight", "1000"),
            ("blkio/hutch/web/blkio.throttle.read_bps_device", "8:0 10485760"),
            ("blkio/hutch/web/blkio.throttle.write_bps_device", "8:0 0"),
            ("blkio/hutch/web/blkio.throttle.read_iops_device", "8:0 0"),
            ("blkio/hutch/web/blkio.throttle.write_iops_device", "8:0 100"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert!(!p.writes.iter().any(|w| w.path.starts_with(&cg.unified)), "the cgroup2 dir has no controllers");
    apply(&p.writes).unwrap();
    assert_eq!(get(&cg.v1[2], "memory.limit_in_bytes"), "536870912");
}

#[test]
fn v1_memsw_goes_first_when_the_limit_rises_past_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, cg) = hybrid(tmp.path(), ALL_V1);
    let mem = &cg.v1[2];
    let small = toml_limits("[limits]\nmemory = \"512MiB\"\nmemory_swap = \"512MiB\"\n");
    apply(&plan(&small, &layout, &cg, &host()).unwrap().writes).unwrap();
    assert_eq!(get(mem, "memory.memsw.limit_in_bytes"), "1073741824");

    let order = |l: &Limits| -> Vec<String> {
        plan(l, &layout, &cg, &host())
            .unwrap()
            .writes
            .iter()
            .filter(|w| w.path.starts_with(mem))
            .map(|w| format!("{}={}", w.path.file_name().unwrap().to_str().unwrap(), w.value))
            .collect()
    };
    // 2G > current memsw (1G): memsw first.
    let big = toml_limits("[limits]\nmemory = \"2GiB\"\nmemory_swap = \"1GiB\"\n");
    assert_eq!(order(&big), ["memory.memsw.limit_in_bytes=3221225472", "memory.limit_in_bytes=2147483648"]);
    // Lowering: the limit first.
    let lower = toml_limits("[limits]\nmemory = \"256MiB\"\nmemory_swap = \"0\"\n");
    assert_eq!(order(&lower), ["memory.limit_in_bytes=268435456", "memory.memsw.limit_in_bytes=268435456"]);
    // Removing both: memsw (to unlimited) first, then the limit.
    assert_eq!(order(&Limits::default()), ["memory.memsw.limit_in_bytes=-1", "memory.limit_in_bytes=-1"]);
    // Swap without memory cannot be expressed on v1.
    let swap_only = toml_limits("[limits]\nmemory_swap = \"1G\"\n");
    let p = plan(&swap_only, &layout, &cg, &host()).unwrap();
    assert!(p.warnings[0].contains("needs limits.memory"), "{:?}", p.warnings);
}

#[test]
fn v1_without_swap_accounting_warns_and_skips_memsw() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, cg) = hybrid(tmp.path(), ALL_V1);
    fs::remove_file(cg.v1[2].join("memory.memsw.limit_in_bytes")).unwrap();
    let p = plan(&full(), &layout, &cg, &host()).unwrap();
    assert_eq!(
        p.warnings,
        [
            "limits.memory_swap not applied: swap accounting is off on this host (no memory.memsw.limit_in_bytes; boot with swapaccount=1)"
        ]
    );
    assert!(!p.writes.iter().any(|w| w.path.ends_with("memory.memsw.limit_in_bytes")));
    apply(&p.writes).unwrap();
    let no_swap = toml_limits("[limits]\nmemory = \"1G\"\n");
    assert!(plan(&no_swap, &layout, &cg, &host()).unwrap().warnings.is_empty());
}

#[test]
fn v1_resets_removed_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, cg) = hybrid(tmp.path(), ALL_V1);
    apply(&plan(&full(), &layout, &cg, &host()).unwrap().writes).unwrap();
    // What the kernel would now list (plus a rule set by hand).
    fs::write(cg.v1[4].join("blkio.throttle.read_bps_device"), "8:0 10485760\n8:16 2048\n").unwrap();
    fs::write(cg.v1[4].join("blkio.throttle.write_iops_device"), "8:0 100\n").unwrap();
    fs::write(cg.v1[2].join("memory.memsw.limit_in_bytes"), "1610612736\n").unwrap();
    let p = plan(&Limits::default(), &layout, &cg, &host()).unwrap();
    assert!(p.warnings.is_empty());
    assert_eq!(
        pairs(&p, tmp.path()),
        [
            // The parent's CPUs, not "" (a v1 cpuset must never be empty).
            ("cpuset/hutch/web/cpuset.cpus", "0-3"),
            ("memory/hutch/web/memory.memsw.limit_in_bytes", "-1"),
            ("memory/hutch/web/memory.limit_in_bytes", "-1"),
            ("cpu,cpuacct/hutch/web/cpu.cfs_period_us", "100000"),
            ("cpu,cpuacct/hutch/web/cpu.cfs_quota_us", "-1"),
            ("cpu,cpuacct/hutch/web/cpu.shares", "1024"),
            ("pids/hutch/web/pids.max", "max"),
            ("blkio/hutch/web/blkio.weight", "500"),
            ("blkio/hutch/web/blkio.throttle.read_bps_device", "8:0 0"),
            ("blkio/hutch/web/blkio.throttle.read_bps_device", "8:16 0"),
            ("blkio/hutch/web/blkio.throttle.write_iops_device", "8:0 0"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    apply(&p.writes).unwrap();
    assert_eq!(get(&cg.v1[1], "cpu.cfs_quota_us"), "-1");
}

#[test]
fn v1_missing_hierarchies_are_warnings() {
    let tmp = tempfile::tempdir().unwrap();
    // As on the test machines: cpu and cpuacct apart, no blkio here, no pids.
    let (layout, cg) = hybrid(tmp.path(), &["cpu", "cpuacct", "memory"]);
    let p = plan(&full(), &layout, &cg, &host()).unwrap();
    assert_eq!(
        p.warnings,
        [
            "limits.cpuset not applied: this host has no cpuset hierarchy",
            "limits.pids not applied: this host has no pids hierarchy",
            "limits.io_weight not applied: this host has no blkio hierarchy",
            "limits.io not applied: this host has no blkio hierarchy",
        ]
    );
    let files: Vec<_> = pairs(&p, tmp.path()).into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        files,
        [
            "memory/hutch/web/memory.limit_in_bytes",
            "memory/hutch/web/memory.memsw.limit_in_bytes",
            "cpu/hutch/web/cpu.cfs_period_us",
            "cpu/hutch/web/cpu.cfs_quota_us",
            "cpu/hutch/web/cpu.shares",
        ]
    );
    apply(&p.writes).unwrap();
    assert!(plan(&Limits::default(), &layout, &cg, &host()).unwrap().warnings.is_empty());
}

#[test]
fn weight_mappings_follow_systemd() {
    for (w, shares) in [(1, 10), (2, 20), (100, 1024), (200, 2048), (10_000, 102_400)] {
        assert_eq!(weight_to_shares(w), shares, "{w}");
    }
    assert_eq!(weight_to_shares(0), 2);
    for (w, blkio) in [(1, 10), (2, 10), (3, 15), (100, 500), (200, 1000), (10_000, 1000)] {
        assert_eq!(weight_to_blkio(w), blkio, "{w}");
    }
}

#[test]
fn apply_names_the_path_and_value() {
    let tmp = tempfile::tempdir().unwrap();
    let w = Write { path: tmp.path().join("nope/memory.max"), value: "max".into() };
    let e = apply(&[w]).unwrap_err();
    assert!(
        e.to_string().starts_with(&format!("failed to write \"max\" to {}/nope/memory.max: ", tmp.path().display()))
    );
    assert!(e.hint().unwrap().contains("missing"));
    // apply never creates files a kernel would not have.
    assert!(!tmp.path().join("nope").exists());
}

#[test]
fn plan_validates_first() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, cg) = unified(tmp.path());
    let l = toml_limits("[limits]\ncpuset = \"0-9\"\n");
    let e = plan(&l, &layout, &cg, &host()).unwrap_err();
    assert!(e.to_string().contains("CPU 4 is not online on this host (online: 0-3)"), "{e}");
    assert!(e.hint().unwrap().contains("/sys/devices/system/cpu/online"));
}

// ---- stats ----

#[test]
fn v2_stats() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, cg) = unified(tmp.path());
    put(
        &cg.unified,
        &[
            ("memory.current", "52953088\n"),
            ("memory.peak", "81219584\n"),
            ("memory.max", "536870912\n"),
            ("memory.swap.current", "4096\n"),
            ("memory.swap.max", "max\n"),
            ("memory.events", "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n"),
            (
                "cpu.stat",
                "usage_usec 3141592\nuser_usec 2000000\nsystem_usec 1141592\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
            ),
            ("pids.current", "23\n"),
            ("pids.max", "100\n"),
            (
                "io.stat",
                "254:0 rbytes=1048576 wbytes=4096 rios=10 wios=1 dbytes=0 dios=0\n7:0 rbytes=512 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
            ),
        ],
    );
    let s = stats(&layout, &cg);
    assert_eq!(
        s,
        Stats {
            memory_current: Some(52953088),
            memory_peak: Some(81219584),
            memory_limit: Some(536870912),
            swap_current: Some(4096),
            swap_limit: None,
            oom_kills: Some(1),
            cpu_usage_usec: Some(3141592),
            pids_current: Some(23),
            pids_max: Some(100),
            io_read_bytes: Some(1049088),
            io_write_bytes: Some(4096),
        }
    );
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains("\"swap_limit\":null") && json.contains("\"oom_kills\":1"), "{json}");
    // A stopped container (no directory): nothing known.
    let gone = ContainerCgroup { unified: tmp.path().join("gone"), v1: vec![] };
    assert_eq!(stats(&layout, &gone), Stats::default());
}

#[test]
fn v1_stats() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, cg) = hybrid(tmp.path(), ALL_V1);
    put(
        &cg.v1[2],
        &[
            ("memory.usage_in_bytes", "52953088\n"),
            ("memory.max_usage_in_bytes", "81219584\n"),
            ("memory.limit_in_bytes", "536870912\n"),
            ("memory.memsw.usage_in_bytes", "53477376\n"),
            ("memory.memsw.limit_in_bytes", "1610612736\n"),
            ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"),
        ],
    );
    put(&cg.v1[1], &[("cpuacct.usage", "3141592653\n")]);
    put(&cg.v1[3], &[("pids.current", "7\n"), ("pids.max", "max\n")]);
    put(
        &cg.v1[4],
        &[(
            "blkio.throttle.io_service_bytes",
            "254:0 Read 1048576\n254:0 Write 8192\n254:0 Sync 0\n254:0 Async 1056768\n254:0 Discard 0\n254:0 Total 1056768\n\
             7:0 Read 512\n7:0 Write 0\n7:0 Total 512\nTotal 1057280\n",
        )],
    );
    let s = stats(&layout, &cg);
    assert_eq!(
        s,
        Stats {
            memory_current: Some(52953088),
            memory_peak: Some(81219584),
            memory_limit: Some(536870912),
            swap_current: Some(524288),
            swap_limit: Some(1073741824),
            oom_kills: Some(3),
            cpu_usage_usec: Some(3141592),
            pids_current: Some(7),
            pids_max: None,
            io_read_bytes: Some(1049088),
            io_write_bytes: Some(8192),
        }
    );
    // Unlimited v1 memory reads as no limit; no cpuacct falls back to cgroup2 cpu.stat.
    put(&cg.v1[2], &[("memory.limit_in_bytes", V1_UNLIMITED_TEXT), ("memory.memsw.limit_in_bytes", V1_UNLIMITED_TEXT)]);
    let (layout2, cg2) = hybrid(&tmp.path().join("other"), &["cpu", "memory"]);
    put(&cg2.unified, &[("cpu.stat", "usage_usec 42\nuser_usec 40\nsystem_usec 2\n")]);
    assert_eq!(stats(&layout2, &cg2).cpu_usage_usec, Some(42));
    let s = stats(&layout, &cg);
    assert_eq!((s.memory_limit, s.swap_limit), (None, None));
}
