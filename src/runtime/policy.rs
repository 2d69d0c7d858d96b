//! Policy as data: what a container's init gets. Each table says why.
//!
//! Sources: systemd's container interface (systemd.io/CONTAINER_INTERFACE), LXC's
//! common.conf, runc/Docker's default masked and read-only paths, nspawn's mount table.

/// Device nodes bind-mounted from the host into the container's /dev tmpfs (mknod is
/// refused in a user namespace, so LXC and nspawn bind them too). Each source is
/// checked to be the character device it claims before it is mounted (a swapped
/// source was CVE-2025-31133). `required = false` nodes are skipped when the host
/// lacks them.
pub struct DevNode {
    pub name: &'static str,
    pub major: u32,
    pub minor: u32,
    pub required: bool,
}

pub const DEV_NODES: &[DevNode] = &[
    DevNode { name: "null", major: 1, minor: 3, required: true },
    DevNode { name: "zero", major: 1, minor: 5, required: true },
    DevNode { name: "full", major: 1, minor: 7, required: true },
    DevNode { name: "random", major: 1, minor: 8, required: true },
    DevNode { name: "urandom", major: 1, minor: 9, required: true },
    DevNode { name: "tty", major: 5, minor: 0, required: true },
    // For VPNs and tap devices in the container's own network namespace.
    DevNode { name: "net/tun", major: 10, minor: 200, required: false },
];

/// With `security.nesting`, what a container runtime inside needs. The kernel lets a
/// new user namespace mount proc or sysfs only where the existing mount is fully
/// visible: no mount over anything in it but empty directories, no locked read-only
/// flag where the new mount is read-write. Every mask, read-only bind and the boot id
/// over /proc would be locked in such a namespace's copy, so a nesting container has
/// none of them, and a read-write sysfs (LXC's and Incus's `proc:rw sys:rw` for
/// nesting). It gets /dev/fuse too (fuse-overlayfs and FUSE filesystems work in a user
/// namespace). What the masks hid is then readable inside: /proc/kcore, keys,
/// timer_list, sched_debug... remain guarded only by their owners and modes.
pub const NESTING_DEV_NODES: &[DevNode] = &[DevNode { name: "fuse", major: 10, minor: 229, required: false }];

/// Symlinks every Linux userland expects in /dev.
pub const DEV_SYMLINKS: &[(&str, &str)] = &[
    ("ptmx", "pts/ptmx"),
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
];

/// Files in /proc that leak host information or allow host-wide actions: covered by
/// /dev/null (runc's and Docker's default list). Missing files are skipped.
pub const MASKED_FILES: &[&str] =
    &["proc/kcore", "proc/keys", "proc/latency_stats", "proc/timer_list", "proc/timer_stats", "proc/sched_debug"];

/// Directories covered by an empty read-only tmpfs. Missing ones are skipped.
pub const MASKED_DIRS: &[&str] = &["proc/acpi", "proc/asound", "proc/scsi", "sys/firmware"];

/// Made read-only; `proc/sys` keeps `proc/sys/net` writable because the container has
/// its own network namespace (what LXC's proc:mixed and nspawn do). A read-only
/// /proc/sys also tells systemd to skip systemd-sysctl.
pub const READ_ONLY: &[(&str, Option<&str>)] = &[
    ("proc/bus", None),
    ("proc/fs", None),
    ("proc/irq", None),
    ("proc/sysrq-trigger", None),
    ("proc/sys", Some("proc/sys/net")),
];

/// Capabilities removed from the bounding set before init runs.
/// * sys_module, sys_time, mac_admin, mac_override: LXC's common.conf list.
/// * sys_rawio: besides its risk on privileged containers, systemd gates
///   sys-kernel-debug/tracing/config.mount on it; those mounts cannot work in a user
///   namespace and would leave the boot `degraded` (nspawn does not grant it either).
/// * audit_control, audit_read: systemd's container interface asks runtimes not to
///   pass the audit capabilities (the audit subsystem is not namespaced).
pub const DROPPED_CAPS: &[(&str, u32)] = &[
    ("CAP_SYS_MODULE", 16),
    ("CAP_SYS_RAWIO", 17),
    ("CAP_SYS_TIME", 25),
    ("CAP_AUDIT_CONTROL", 30),
    ("CAP_MAC_OVERRIDE", 32),
    ("CAP_MAC_ADMIN", 33),
    ("CAP_AUDIT_READ", 37),
];

/// Signals sent to init (matched on its command name) before the halt signal when
/// its console is gone because its monitor died: systemd retries opening a hung-up
/// console for every status line and would outlast any stop timeout; SIGRTMIN+21
/// turns its console status output off (systemd(1)).
pub const CONSOLE_GONE_SIGNALS: &[(&str, i32)] = &[("systemd", crate::base::signal::SIGRTMIN + 21)];

/// The value of `$container` for init (systemd copies it to /run/systemd/container).
pub const CONTAINER_ENV: &str = "hutch";

/// PATH for init; systemd sets its own, busybox init and shells use this.
pub const INIT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where the notify socket appears inside the container (nspawn uses the same path).
pub const NOTIFY_SOCKET: &str = "/run/host/notify";

/// tmpfs options, after nspawn's limits.
pub const DEV_TMPFS: &[(&str, &str)] = &[("mode", "755"), ("size", "4m"), ("nr_inodes", "64k")];
pub const RUN_TMPFS: &[(&str, &str)] = &[("mode", "755"), ("size", "20%"), ("nr_inodes", "800k")];
pub const SHM_TMPFS: &[(&str, &str)] = &[("mode", "1777")];
pub const DEVPTS: &[(&str, &str)] = &[("newinstance", ""), ("ptmxmode", "0666"), ("mode", "0620"), ("gid", "5")];
