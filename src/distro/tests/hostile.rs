//! The rootfs is untrusted: no symlink in it may make `apply` write, read or link
//! anything outside it.

use std::path::{Path, PathBuf};

use super::{Root, ctx, run};
use crate::distro::*;

/// A rootfs (`Root`) with a sibling directory `outside` holding a file `victim`.
fn rooted() -> (Root, PathBuf) {
    let root = Root::new();
    let outside = root.path.parent().unwrap().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("victim"), "keep").unwrap();
    (root, outside)
}

fn assert_untouched(root: &Root, outside: &Path) {
    let names: Vec<_> = std::fs::read_dir(outside).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["victim"], "something landed outside the rootfs");
    assert_eq!(std::fs::read_to_string(outside.join("victim")).unwrap(), "keep");
    let mut top: Vec<_> =
        std::fs::read_dir(root.path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    top.sort();
    assert_eq!(top, ["outside", "rootfs"], "something landed next to the rootfs");
}

fn os(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn etc_pointing_out_of_the_rootfs_fails_without_writing_outside() {
    let (root, outside) = rooted();
    std::fs::remove_dir(root.path.join("etc")).unwrap();
    root.link("etc", os(&outside));
    let eff = load("ubuntu", None).unwrap().for_release("noble");
    let e = apply(&root.path, &eff, &ctx()).unwrap_err();
    assert!(matches!(e, Error::Apply { .. }), "{e}");
    assert!(e.to_string().starts_with("failed to create directory /etc in "), "{e}");
    assert!(e.hint().is_some());
    assert_untouched(&root, &outside);
}

#[test]
fn a_climbing_netplan_link_is_clamped_at_the_root() {
    let (root, outside) = rooted();
    root.merged_usr().systemd(&[]).exe("usr/sbin/netplan").link("etc/netplan", "../../..");
    run(&root, "ubuntu", "noble");
    assert_eq!(root.mode("10-hutch.yaml"), 0o600, "written at the rootfs's own root");
    assert_untouched(&root, &outside);
}

#[test]
fn planted_file_links_are_replaced_not_followed() {
    let (root, outside) = rooted();
    let victim = outside.join("victim");
    root.merged_usr().systemd(&["console-getty.service"]);
    for f in ["etc/hostname", "etc/hosts", "etc/machine-id", "var/lib/dbus/machine-id"] {
        root.link(f, os(&victim));
    }
    root.dir("etc/systemd/system").link("etc/systemd/system/auditd.service", os(&victim));
    root.dir("etc/NetworkManager/system-connections");
    root.link("etc/NetworkManager/system-connections/eth0.nmconnection", os(&victim));
    root.exe("usr/sbin/NetworkManager");
    run(&root, "centos", "10");
    assert_eq!(root.read("etc/hostname"), "web\n");
    assert!(!std::fs::symlink_metadata(root.path.join("etc/machine-id")).unwrap().is_symlink());
    assert_eq!(root.target("etc/systemd/system/auditd.service"), "/dev/null");
    // Not a regular file: left alone rather than refreshed.
    assert_eq!(root.target("var/lib/dbus/machine-id"), os(&victim));
    assert_untouched(&root, &outside);
}

#[test]
fn hostile_unit_directories_stay_inside() {
    let (root, outside) = rooted();
    root.merged_usr().systemd(&["console-getty.service"]);
    // Absolute: resolved inside the rootfs, where it does not exist.
    root.dir("etc/systemd/system").link("etc/systemd/system/getty.target.wants", os(&outside));
    let eff = load("debian", None).unwrap().for_release("");
    assert!(apply(&root.path, &eff, &ctx()).is_err());
    assert_untouched(&root, &outside);
    // Relative and climbing: clamped at the root.
    std::fs::remove_file(root.path.join("etc/systemd/system/getty.target.wants")).unwrap();
    root.link("etc/systemd/system/getty.target.wants", "../../../../../../..");
    apply(&root.path, &eff, &ctx()).unwrap();
    assert_eq!(root.target("console-getty.service"), "/usr/lib/systemd/system/console-getty.service");
    assert_untouched(&root, &outside);
}

#[test]
fn existence_checks_never_look_at_the_host() {
    let (root, outside) = rooted();
    // The unit "exists" only through a link to a host file: not enabled.
    root.merged_usr().systemd(&[]).link("usr/lib/systemd/system/console-getty.service", os(&outside.join("victim")));
    // A condition path that exists on the host only.
    root.link("sbin/openrc", os(&outside.join("victim")));
    let a = run(&root, "debian", "");
    assert!(!root.has("etc/systemd/system/getty.target.wants"));
    assert!(
        a.skipped.contains(&"console-getty.service is not in the rootfs, not enabled".to_string()),
        "{:?}",
        a.skipped
    );
    let a = run(&root, "alpine", "");
    assert!(!root.read("etc/inittab").contains("openrc"), "/sbin/openrc does not exist inside");
    // A settings file linked out of the rootfs is not read nor written.
    assert!(a.skipped.iter().any(|s| s.contains("/etc/rc.conf")));
    std::fs::remove_file(root.path.join("etc/inittab")).unwrap();
    root.link("etc/rc.conf", os(&outside.join("victim")));
    run(&root, "alpine", "");
    assert_untouched(&root, &outside);
}
