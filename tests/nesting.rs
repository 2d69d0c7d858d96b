//! `security.nesting`: a container that runs containers. Inside a nesting Debian
//! container the same hutch binary boots a busybox container, Docker (Debian's
//! docker.io, installed with apt through the NAT) runs an image made with `docker
//! import`, LXC starts a busybox container, and new user namespaces may mount proc
//! and sysfs; a container without it
//! keeps its masks, and those mounts stay refused there.

mod common;

use std::path::{Path, PathBuf};

use common::{Hutch, require};

/// What the test shares with the nesting container: a copy of the hutch binaries (the
/// running ones cannot be shared) and a busybox image as a tarball for `docker import`.
fn share_dir(busybox: &Path) -> PathBuf {
    let dir = PathBuf::from(format!("/var/tmp/hutch-it-shares/nesting-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_hutch"));
    for bin in ["hutch", "hutch-monitor"] {
        std::fs::copy(exe.with_file_name(bin), dir.join("bin").join(bin)).unwrap();
    }
    let mut tar = tar::Builder::new(std::fs::File::create(dir.join("busybox.tar")).unwrap());
    tar.follow_symlinks(false);
    tar.append_dir_all(".", busybox).unwrap();
    tar.finish().unwrap();
    dir
}

#[test]
#[ignore = "needs root, the test images and the Debian mirror (scripts/test.sh runs it)"]
fn a_nesting_container_runs_hutch_docker_and_lxc() {
    let Some(img) = require("nesting", &["dnsmasq", "nft"]) else {
        return;
    };
    let h = Hutch::new("nesting");
    let share = share_dir(&img.busybox());
    h.create("nest", &img.debian(), &[]);
    h.create("plain", &img.debian(), &["--network", "none"]);
    h.ok(&["config", "set", "nest", "security.nesting", "true"]);
    h.ok(&["mount", "add", "nest", share.to_str().unwrap(), "/opt/share", "--readonly"]);
    h.ok(&["mount", "add", "nest", img.busybox().to_str().unwrap(), "/images/busybox", "--readonly"]);
    h.ok(&["start", "nest", "--wait"]);
    h.ok(&["start", "plain", "--wait"]);
    assert_eq!(h.exec("nest", &["systemctl", "is-system-running"]), "running");

    // A new user namespace may mount proc and sysfs with nesting, and only with it.
    let nested_proc = ["unshare", "-Urmpf", "--mount-proc", "true"];
    let nested_sysfs = ["unshare", "-Urmn", "mount", "-t", "sysfs", "sysfs", "/sys"];
    assert_eq!(h.exec_status("nest", &nested_proc), 0, "nested proc refused with nesting");
    assert_eq!(h.exec_status("nest", &nested_sysfs), 0, "nested sysfs refused with nesting");
    assert_ne!(h.exec_status("plain", &nested_proc), 0, "nested proc allowed without nesting");
    assert_ne!(h.exec_status("plain", &nested_sysfs), 0, "nested sysfs allowed without nesting");
    assert_eq!(h.exec_status("nest", &["test", "-c", "/dev/fuse"]), 0);
    assert_ne!(h.exec_status("plain", &["test", "-e", "/dev/fuse"]), 0);
    // The masks are still there without nesting, and gone with it.
    let masks = ["awk", "$5 ~ /^\\/proc\\/(keys|sys)$/ { print $5 }", "/proc/self/mountinfo"];
    assert_eq!(h.exec("plain", &masks), "/proc/keys\n/proc/sys");
    assert_eq!(h.exec("nest", &masks), "");
    h.ok(&["stop", "plain"]);

    // hutch in hutch: a busybox container to its shell (privileged inside: still
    // confined by the outer container's user namespace).
    let inner = "/opt/share/bin/hutch";
    h.exec("nest", &[inner, "create", "bb", "--from-dir", "/images/busybox", "--privileged", "--network", "none"]);
    h.exec("nest", &[inner, "start", "bb"]);
    assert_eq!(h.exec("nest", &[inner, "exec", "bb", "--", "sh", "-c", "echo inner; cat /proc/1/comm"]), "inner\ninit");
    h.exec("nest", &[inner, "stop", "bb"]);
    h.exec("nest", &[inner, "destroy", "bb"]);

    // Docker from the distribution, an image imported from a tarball.
    let install = h.run(&[
        "exec",
        "nest",
        "--",
        "sh",
        "-c",
        "DEBIAN_FRONTEND=noninteractive apt-get -q update >/dev/null && \
         DEBIAN_FRONTEND=noninteractive apt-get -q install -y docker.io >/dev/null",
    ]);
    assert!(install.status.success(), "apt-get install docker.io: {}", String::from_utf8_lossy(&install.stderr));
    h.exec("nest", &["docker", "import", "/opt/share/busybox.tar", "hutch-test/busybox:1"]);
    let out = h.exec("nest", &["docker", "run", "--rm", "hutch-test/busybox:1", "sh", "-c", "echo from docker"]);
    assert_eq!(out, "from docker");

    // LXC from the distribution: a busybox container started and attached to.
    let lxc = h.run(&[
        "exec",
        "nest",
        "--",
        "sh",
        "-c",
        "DEBIAN_FRONTEND=noninteractive apt-get -q install -y --no-install-recommends lxc >/dev/null",
    ]);
    assert!(lxc.status.success(), "apt-get install lxc: {}", String::from_utf8_lossy(&lxc.stderr));
    let config = "lxc.include = /usr/share/lxc/config/common.conf\n\
                  lxc.rootfs.path = dir:/var/lib/lxc/b/rootfs\n\
                  lxc.uts.name = b\n\
                  lxc.apparmor.profile = unconfined\n\
                  lxc.net.0.type = empty\n";
    h.exec("nest", &["mkdir", "-p", "/var/lib/lxc/b"]);
    h.exec("nest", &["cp", "-a", "/images/busybox", "/var/lib/lxc/b/rootfs"]);
    h.exec("nest", &["sh", "-c", &format!("printf '{config}' > /var/lib/lxc/b/config")]);
    h.exec("nest", &["lxc-start", "-n", "b"]);
    assert_eq!(
        h.exec("nest", &["lxc-attach", "-n", "b", "--", "sh", "-c", "echo lxc inner; cat /proc/1/comm"]),
        "lxc inner\ninit"
    );
    h.exec("nest", &["lxc-stop", "-n", "b", "-k"]);

    h.ok(&["stop", "nest"]);
    h.ok(&["destroy", "nest"]);
    h.ok(&["destroy", "plain"]);
    let _ = std::fs::remove_dir_all(&share);
}
