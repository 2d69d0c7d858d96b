use super::{Root, ctx, run};
use crate::config::{Init, Ready};
use crate::distro::*;

const HOSTS: &str = "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tweb\n";
const COMMON: [&str; 3] = ["/etc/hostname", "/etc/hosts", "/etc/machine-id"];

fn assert_common(root: &Root) {
    assert_eq!(root.read("etc/hostname"), "web\n");
    assert_eq!(root.read("etc/hosts"), HOSTS);
    assert_eq!(root.read("etc/machine-id"), "0123456789abcdef0123456789abcdef\n");
    assert_eq!(root.mode("etc/machine-id"), 0o444);
}

fn systemd_init() -> Init {
    Init {
        command: vec!["/sbin/init".into()],
        halt_signal: "SIGRTMIN+3".parse().unwrap(),
        ready: Ready::Notify,
        stop_timeout: 30,
    }
}

fn written(extra: &[&str]) -> Vec<String> {
    COMMON.iter().chain(extra).map(|s| s.to_string()).collect()
}

const NETPLAN: &str = "# Written by hutch: DHCP on eth0.\nnetwork:\n  version: 2\n  ethernets:\n    eth0:\n      dhcp4: true\n      dhcp-identifier: mac\n";
const NETWORKD: &str =
    "# Written by hutch: DHCP on eth0.\n[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\n\n[DHCPv4]\nClientIdentifier=mac\n";
const GETTY: &str = "/etc/systemd/system/getty.target.wants/console-getty.service";

#[test]
fn ubuntu_gets_netplan_and_the_console_getty() {
    let root = Root::new();
    root.merged_usr()
        .systemd(&["console-getty.service", "systemd-networkd.service"])
        .exe("usr/sbin/netplan")
        .dir("etc/netplan")
        .link("var/lib/dbus/machine-id", "/etc/machine-id");
    let a = run(&root, "ubuntu", "24.04");
    assert_common(&root);
    assert_eq!(root.read("etc/netplan/10-hutch.yaml"), NETPLAN);
    assert_eq!(root.mode("etc/netplan/10-hutch.yaml"), 0o600);
    assert_eq!(root.target("var/lib/dbus/machine-id"), "/etc/machine-id", "the link is kept");
    assert_eq!(root.target(&GETTY[1..]), "/usr/lib/systemd/system/console-getty.service");
    assert_eq!(root.list("etc/systemd/system"), ["getty.target.wants"], "no masks, netplan enables networkd");
    assert_eq!(a.written, written(&["/etc/netplan/10-hutch.yaml", GETTY]));
    assert_eq!((a.network, a.init, a.reboot_signal.as_str()), (Style::Netplan, systemd_init(), "SIGINT"));
    assert!(a.skipped.is_empty(), "{:?}", a.skipped);
}

#[test]
fn ubuntu_without_netplan_falls_back_to_networkd() {
    let root = Root::new();
    root.merged_usr()
        .systemd(&["systemd-networkd.service", "systemd-networkd.socket"])
        .exe("usr/lib/systemd/systemd-networkd");
    let a = run(&root, "ubuntu", "noble");
    assert_eq!(a.network, Style::Networkd);
    assert_eq!(root.read("etc/systemd/network/10-hutch-eth0.network"), NETWORKD);
    let unit = "/usr/lib/systemd/system/systemd-networkd.service";
    assert_eq!(root.target("etc/systemd/system/multi-user.target.wants/systemd-networkd.service"), unit);
    assert_eq!(root.target("etc/systemd/system/dbus-org.freedesktop.network1.service"), unit);
    assert_eq!(
        root.target("etc/systemd/system/sockets.target.wants/systemd-networkd.socket"),
        "/usr/lib/systemd/system/systemd-networkd.socket"
    );
    assert_eq!(a.skipped, ["console-getty.service is not in the rootfs, not enabled"]);
}

#[test]
fn debian_minbase_uses_networkd_and_debian_with_ifupdown_uses_interfaces() {
    let root = Root::new();
    root.merged_usr().systemd(&["console-getty.service", "systemd-networkd.service"]);
    root.exe("usr/lib/systemd/systemd-networkd").file("var/lib/dbus/machine-id", "stale\n");
    let a = run(&root, "debian", "bookworm");
    assert_common(&root);
    assert_eq!(a.network, Style::Networkd);
    assert_eq!(root.read("etc/systemd/network/10-hutch-eth0.network"), NETWORKD);
    assert_eq!(root.read("var/lib/dbus/machine-id"), "0123456789abcdef0123456789abcdef\n", "a copy is refreshed");
    assert_eq!(a.init, systemd_init());

    // lxc-ci's images: ifupdown, and no merged /usr.
    let root = Root::new();
    root.exe("lib/systemd/systemd").link("sbin/init", "/lib/systemd/systemd").exe("sbin/ifup");
    root.file("lib/systemd/system/networking.service", "").file("lib/systemd/system/console-getty.service", "");
    let a = run(&root, "debian", "12");
    assert_eq!(a.network, Style::Ifupdown);
    assert_eq!(
        root.read("etc/network/interfaces"),
        "# Written by hutch: DHCP on eth0. See interfaces(5).\nsource /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n"
    );
    assert!(root.path.join("etc/network/interfaces.d").is_dir());
    assert_eq!(
        root.target("etc/systemd/system/multi-user.target.wants/networking.service"),
        "/lib/systemd/system/networking.service"
    );
    assert_eq!(root.target(&GETTY[1..]), "/lib/systemd/system/console-getty.service");
    assert_eq!(root.list("etc/systemd/system"), ["getty.target.wants", "multi-user.target.wants"], "no masks");
    assert_eq!(
        a.written,
        written(&["/etc/network/interfaces", "/etc/systemd/system/multi-user.target.wants/networking.service", GETTY])
    );
}

fn el_root() -> Root {
    let root = Root::new();
    root.merged_usr().systemd(&["console-getty.service", "NetworkManager.service"]).exe("usr/sbin/NetworkManager");
    root
}

const KEYFILE: &str = "# Written by hutch: DHCP on eth0.\n[connection]\nid=eth0\ntype=ethernet\ninterface-name=eth0\nautoconnect=true\n\n[ipv4]\nmethod=auto\ndhcp-client-id=mac\n\n[ipv6]\nmethod=auto\n";
const NM_CONF: &str = "# Written by hutch: activate the eth0 profile even if eth0 is already up.\n[device-hutch-eth0]\nmatch-device=interface-name:eth0\nkeep-configuration=no\n";
const NM_FILES: [&str; 6] = [
    "/etc/NetworkManager/system-connections/eth0.nmconnection",
    "/etc/systemd/system/multi-user.target.wants/NetworkManager.service",
    "/etc/systemd/system/dbus-org.freedesktop.NetworkManager.service",
    "/etc/systemd/system/auditd.service",
    GETTY,
    "/etc/NetworkManager/conf.d/90-hutch.conf",
];

fn assert_networkmanager(root: &Root, a: &Applied) {
    assert_common(root);
    assert_eq!(a.network, Style::NmKeyfile);
    assert_eq!(root.read("etc/NetworkManager/system-connections/eth0.nmconnection"), KEYFILE);
    assert_eq!(root.mode("etc/NetworkManager/system-connections/eth0.nmconnection"), 0o600);
    assert_eq!(root.read("etc/NetworkManager/conf.d/90-hutch.conf"), NM_CONF);
    let nm = "/usr/lib/systemd/system/NetworkManager.service";
    assert_eq!(root.target("etc/systemd/system/multi-user.target.wants/NetworkManager.service"), nm);
    assert_eq!(root.target("etc/systemd/system/dbus-org.freedesktop.NetworkManager.service"), nm);
    assert_eq!(root.target("etc/systemd/system/auditd.service"), "/dev/null");
    assert_eq!(root.target(&GETTY[1..]), "/usr/lib/systemd/system/console-getty.service");
    assert_eq!(a.init, systemd_init());
    assert!(a.skipped.is_empty(), "{:?}", a.skipped);
}

#[test]
fn centos_9_and_10_stream_get_a_networkmanager_keyfile() {
    let mut results = Vec::new();
    for release in ["9-Stream", "10-Stream"] {
        let root = el_root();
        let a = run(&root, "centos", release);
        assert_networkmanager(&root, &a);
        assert_eq!(a.written, written(&NM_FILES));
        assert!(!root.has("etc/sysconfig/network-scripts"));
        results.push(a);
    }
    assert_eq!(results[0], results[1], "the two streams are configured alike");
}

#[test]
fn centos_8_stream_gets_ifcfg_files() {
    let root = el_root();
    let a = run(&root, "centos", "8");
    assert_eq!(a.network, Style::Ifcfg);
    assert_eq!(
        root.read("etc/sysconfig/network-scripts/ifcfg-eth0"),
        "# Written by hutch: DHCP on eth0.\nDEVICE=eth0\nTYPE=Ethernet\nBOOTPROTO=dhcp\nONBOOT=yes\nHOSTNAME=web\nDHCP_HOSTNAME=web\n"
    );
    assert_eq!(root.read("etc/sysconfig/network"), "NETWORKING=yes\nHOSTNAME=web\n");
    assert!(!root.has("etc/NetworkManager/system-connections"));
    assert_eq!(root.target("etc/systemd/system/auditd.service"), "/dev/null");
}

#[test]
fn ifcfg_says_nm_controlled_when_the_table_does() {
    let root = el_root();
    let mut eff = load("centos", None).unwrap().for_release("8-Stream");
    eff.network.nm_controlled = Some(false);
    apply(&root.path, &eff, &ctx()).unwrap();
    assert!(root.read("etc/sysconfig/network-scripts/ifcfg-eth0").ends_with("DHCP_HOSTNAME=web\nNM_CONTROLLED=no\n"));
}

#[test]
fn fedora_uses_networkmanager_or_networkd_whichever_it_has() {
    let root = el_root();
    let a = run(&root, "fedora", "43");
    assert_networkmanager(&root, &a);
    assert_eq!(a.written, written(&NM_FILES));

    // lxc-ci's Fedora images: systemd-networkd, no NetworkManager.
    let root = Root::new();
    root.merged_usr().systemd(&["console-getty.service", "systemd-networkd.service", "systemd-networkd.socket"]);
    root.exe("usr/lib/systemd/systemd-networkd");
    let a = run(&root, "fedora", "42");
    assert_eq!(a.network, Style::Networkd);
    assert_eq!(root.read("etc/systemd/network/10-hutch-eth0.network"), NETWORKD);
    assert!(!root.has("etc/NetworkManager"), "the NetworkManager file needs NetworkManager");
    assert_eq!(root.target("etc/systemd/system/auditd.service"), "/dev/null");
}

#[test]
fn masks_leave_an_admin_unit_file_alone() {
    let root = el_root();
    root.file("etc/systemd/system/auditd.service", "[Service]\n");
    let a = run(&root, "centos", "10");
    assert_eq!(root.read("etc/systemd/system/auditd.service"), "[Service]\n");
    assert_eq!(a.skipped, ["/etc/systemd/system/auditd.service is a unit file, not masked"]);
    // An existing link (an earlier mask, or an enablement) is replaced.
    let root = el_root();
    root.link("etc/systemd/system/auditd.service", "/usr/lib/systemd/system/auditd.service");
    run(&root, "centos", "10");
    assert_eq!(root.target("etc/systemd/system/auditd.service"), "/dev/null");
}

const ALPINE_INTERFACES: &str = "# Written by hutch: DHCP on eth0. See interfaces(5).\nauto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n\thostname web\n";

#[test]
fn alpine_with_openrc() {
    let root = Root::new();
    root.exe("bin/busybox").link("sbin/init", "/bin/busybox").exe("sbin/openrc").exe("etc/init.d/networking");
    root.file("etc/rc.conf", "# Global OpenRC configuration settings\n#rc_sys=\"\"\nrc_parallel=\"NO\"\n");
    let a = run(&root, "alpine", "3.22");
    assert_common(&root);
    assert_eq!(root.read("etc/network/interfaces"), ALPINE_INTERFACES);
    for d in ["if-pre-up.d", "if-up.d", "if-down.d", "if-post-down.d"] {
        assert!(root.path.join("etc/network").join(d).is_dir(), "{d}");
    }
    assert_eq!(root.target("etc/runlevels/default/networking"), "/etc/init.d/networking");
    let inittab = root.read("etc/inittab");
    assert!(
        inittab.contains("::sysinit:/sbin/openrc sysinit\n::sysinit:/sbin/openrc boot\n::wait:/sbin/openrc default\n")
    );
    assert!(inittab.contains("::respawn:/sbin/getty 38400 console\n"));
    assert!(!inittab.contains("tty1"), "no gettys on ttys a container lacks");
    assert!(inittab.ends_with("::shutdown:/sbin/openrc shutdown\n"));
    assert_eq!(
        root.read("etc/rc.conf"),
        "# Global OpenRC configuration settings\nrc_sys=\"lxc\"\nrc_parallel=\"NO\"\n"
    );
    assert!(!root.has("etc/systemd"), "no systemd table for Alpine");
    assert_eq!(
        a.written,
        written(&["/etc/network/interfaces", "/etc/runlevels/default/networking", "/etc/inittab", "/etc/rc.conf"])
    );
    let init = Init {
        command: vec!["/sbin/init".into()],
        halt_signal: "SIGUSR1".parse().unwrap(),
        ready: Ready::Exec,
        stop_timeout: 30,
    };
    assert_eq!((a.network, a.init, a.reboot_signal.as_str()), (Style::AlpineInterfaces, init, "SIGTERM"));
}

#[test]
fn alpine_minirootfs_without_openrc() {
    let root = Root::new();
    root.exe("bin/busybox").link("sbin/init", "/bin/busybox").link("sbin/ifup", "/bin/busybox");
    let a = run(&root, "alpine", "3.21");
    assert_eq!(root.read("etc/network/interfaces"), ALPINE_INTERFACES);
    let inittab = root.read("etc/inittab");
    assert!(!inittab.contains("openrc"), "{inittab}");
    assert!(inittab.contains("::sysinit:/sbin/ifup -a\n"));
    assert!(inittab.contains("::respawn:/sbin/getty 38400 console\n"));
    assert!(!root.has("etc/runlevels"));
    assert!(!root.has("etc/rc.conf"), "settings edit existing files only");
    assert_eq!(
        a.skipped,
        [
            "/etc/init.d/networking is not in the rootfs, not added to runlevel default",
            "/etc/rc.conf is not in the rootfs, rc_sys not set"
        ]
    );
}

#[test]
fn busybox_gets_only_its_identity() {
    let root = Root::new();
    root.exe("bin/busybox").link("sbin/init", "/bin/busybox");
    let a = run(&root, "busybox", "latest");
    assert_common(&root);
    assert_eq!(a.written, written(&[]));
    assert_eq!(root.list("etc"), ["hostname", "hosts", "machine-id"]);
    assert_eq!(a.network, Style::None);
    assert_eq!(
        (a.init.halt_signal.as_str(), a.init.ready, a.reboot_signal.as_str()),
        ("SIGUSR1", Ready::Exec, "SIGTERM")
    );
}

#[test]
fn applying_twice_gives_the_same_tree() {
    let root = el_root();
    let first = run(&root, "centos", "10");
    let second = run(&root, "centos", "10");
    assert_eq!(first, second);
    assert_eq!(root.read("etc/NetworkManager/system-connections/eth0.nmconnection"), KEYFILE);
}

#[test]
fn a_bad_context_is_refused_before_anything_is_written() {
    let root = Root::new();
    let eff = load("debian", None).unwrap().for_release("");
    let bad = [
        Context { hostname: "web\n10.0.0.1 evil".into(), ..ctx() },
        Context { name: "../x".into(), ..ctx() },
        Context { machine_id: "0123456789ABCDEF0123456789ABCDEF".into(), ..ctx() },
        Context { machine_id: "0".repeat(32), ..ctx() },
        Context { machine_id: "abc".into(), ..ctx() },
    ];
    for c in bad {
        let e = apply(&root.path, &eff, &c).unwrap_err();
        assert!(matches!(e, Error::Context { .. }), "{e}");
        assert!(e.hint().is_some());
    }
    assert!(root.list("etc").is_empty());
}

#[test]
fn table_files_substitute_the_context() {
    let root = Root::new();
    let mut eff = load("busybox", None).unwrap().for_release("");
    eff.files.push(FileSpec {
        path: "/etc/motd".into(),
        content: "{name} is {hostname} on {interface}\n".into(),
        mode: 0o600,
        if_exists: None,
        if_missing: None,
    });
    let a = apply(&root.path, &eff, &ctx()).unwrap();
    assert_eq!(root.read("etc/motd"), "web is web on eth0\n");
    assert_eq!(root.mode("etc/motd"), 0o600);
    assert_eq!(a.written.last().map(String::as_str), Some("/etc/motd"));
}
