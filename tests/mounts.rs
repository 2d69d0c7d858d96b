//! Shared folders (`[[mounts]]`, `hutch mount add|list|rm`): owners across the id map,
//! read-only binds that container root cannot undo, live changes that survive a
//! restart, and targets and sources that cannot lead hutch onto the host.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{Hutch, require};

/// A fresh host directory for one test's shared folders.
fn host_dir(test: &str) -> PathBuf {
    let dir = PathBuf::from(format!("/var/tmp/hutch-it-shares/{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn mkdir_owned(path: &Path, uid: u32, mode: u32) {
    std::fs::create_dir_all(path).unwrap();
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn owner(path: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.uid(), m.gid())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn shared_folders_keep_owners_and_change_live() {
    let Some(img) = require("mounts_owners", &[]) else {
        return;
    };
    let h = Hutch::new("mounts-owners");
    let host = host_dir("owners");
    let (data, ro, live) = (host.join("data"), host.join("ro"), host.join("live"));
    mkdir_owned(&data, 0, 0o777);
    mkdir_owned(&ro, 0, 0o755);
    mkdir_owned(&live, 0, 0o755);
    std::fs::write(data.join("by-host-1000"), "one\n").unwrap();
    std::os::unix::fs::chown(data.join("by-host-1000"), Some(1000), Some(1000)).unwrap();
    std::fs::write(ro.join("kept"), "kept\n").unwrap();
    std::fs::write(live.join("f"), "live\n").unwrap();

    h.create("web", &img.debian(), &["--network", "none"]);
    h.ok(&["mount", "add", "web", s(&data), "/srv/data"]);
    h.ok(&["mount", "add", "web", s(&ro), "/srv/ro", "--readonly"]);
    h.ok(&["start", "web", "--wait"]);
    assert_eq!(h.exec("web", &["systemctl", "is-system-running"]), "running");

    // Host uid 1000 is uid 1000 inside, and that user can write the file.
    assert_eq!(h.exec("web", &["stat", "-c", "%u:%g", "/srv/data/by-host-1000"]), "1000:1000");
    h.exec("web", &["useradd", "-u", "1000", "-M", "-s", "/bin/sh", "alice"]);
    h.exec("web", &["su", "alice", "-c", "echo two >> /srv/data/by-host-1000 && touch /srv/data/by-alice"]);
    assert_eq!(std::fs::read_to_string(data.join("by-host-1000")).unwrap(), "one\ntwo\n");
    // A file written inside is owned on the host by the uid that wrote it.
    assert_eq!(owner(&data.join("by-alice")), (1000, 1000));
    h.exec("web", &["touch", "/srv/data/by-root"]);
    assert_eq!(owner(&data.join("by-root")), (0, 0));

    // Without shifting, host ids are seen through the container's id map: host uid
    // 1000 is outside it, so it shows as the overflow id.
    h.ok(&["mount", "add", "web", s(&data), "/srv/noshift", "--no-shift", "--readonly"]);
    assert_eq!(h.exec("web", &["stat", "-c", "%u", "/srv/noshift/by-host-1000"]), "65534");
    h.ok(&["mount", "rm", "web", "/srv/noshift"]);

    // Read-only holds against container root, who cannot remount it either.
    assert_ne!(h.exec_status("web", &["touch", "/srv/ro/new"]), 0, "root wrote to a read-only share");
    assert_ne!(h.exec_status("web", &["mount", "-o", "remount,bind,rw", "/srv/ro"]), 0, "ro could be undone");
    assert_ne!(h.exec_status("web", &["touch", "/srv/ro/new"]), 0);
    assert!(!ro.join("new").exists());
    assert_eq!(h.exec("web", &["cat", "/srv/ro/kept"]), "kept");

    // Live: added and removed while it runs, without a restart.
    let boot_pid = h.info("web")["init_pid"].clone();
    let out = h.ok(&["mount", "add", "web", s(&live), "/srv/live"]);
    assert!(out.contains("now and at every start"), "{out}");
    assert_eq!(h.exec("web", &["cat", "/srv/live/f"]), "live");
    assert_ne!(h.exec_status("web", &["mount", "-o", "remount,bind,suid", "/srv/live"]), 0, "nosuid undone");
    h.ok(&["mount", "rm", "web", "/srv/ro"]);
    assert_ne!(h.exec_status("web", &["test", "-e", "/srv/ro/kept"]), 0, "/srv/ro is still mounted");
    assert_eq!(h.info("web")["init_pid"], boot_pid, "the container restarted");
    let list: serde_json::Value = serde_json::from_str(&h.ok(&["mount", "list", "web", "--format", "json"])).unwrap();
    let targets: Vec<&str> = list["mounts"].as_array().unwrap().iter().map(|m| m["path"].as_str().unwrap()).collect();
    assert_eq!(targets, ["/srv/data", "/srv/live"]);

    // The config carries both changes across a restart.
    h.ok(&["stop", "web"]);
    h.ok(&["start", "web", "--wait"]);
    assert_eq!(h.exec("web", &["cat", "/srv/live/f"]), "live");
    assert_ne!(h.exec_status("web", &["test", "-e", "/srv/ro/kept"]), 0);
    assert_eq!(h.exec("web", &["stat", "-c", "%u", "/srv/data/by-alice"]), "1000");
    h.ok(&["stop", "web"]);
    h.ok(&["destroy", "web"]);
    assert!(h.mounts().is_empty(), "{:?}", h.mounts());
    let host_mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!host_mounts.contains(s(&host)), "a share is mounted on the host:\n{host_mounts}");
    let _ = std::fs::remove_dir_all(&host);
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn symlinks_in_the_container_cannot_lead_a_mount_onto_the_host() {
    let Some(img) = require("mounts_symlinks", &[]) else {
        return;
    };
    let h = Hutch::new("mounts-links");
    let host = host_dir("links");
    let (src, bait) = (host.join("src"), host.join("bait"));
    mkdir_owned(&src, 0, 0o755);
    mkdir_owned(&bait, 0, 0o755);
    std::fs::write(src.join("shared"), "shared\n").unwrap();
    h.create("bb", &img.busybox(), &["--network", "none"]);
    h.ok(&["start", "bb"]);
    // Links the container controls: to its root, to a host path, and up and out.
    let bait_s = s(&bait);
    h.exec("bb", &["ln", "-s", "/", "/to-root"]);
    h.exec("bb", &["ln", "-s", bait_s, "/to-host"]);
    h.exec("bb", &["ln", "-s", &format!("../../../../../..{bait_s}"), "/up-and-out"]);
    let config = std::fs::read(h.paths().config("bb")).unwrap();

    let err = h.fails(&["mount", "add", "bb", s(&src), "/to-root"]);
    assert!(err.contains("resolves to the container's root directory"), "{err}");
    assert_eq!(std::fs::read(h.paths().config("bb")).unwrap(), config, "a refused mount changed the config");
    // While the link's target does not exist inside, it leads nowhere: refused.
    let err = h.fails(&["mount", "add", "bb", s(&src), "/to-host"]);
    assert!(err.contains("leads to a path the container does not have"), "{err}");
    assert_eq!(std::fs::read(h.paths().config("bb")).unwrap(), config);
    assert!(!bait.join("shared").exists());
    h.exec("bb", &["mkdir", "-p", bait_s]);

    for link in ["/to-host", "/up-and-out"] {
        h.ok(&["mount", "add", "bb", s(&src), link]);
        // The mount is inside the container, at the link's target resolved there.
        assert_eq!(h.exec("bb", &["cat", &format!("{bait_s}/shared")]), "shared");
        assert!(!bait.join("shared").exists(), "{link}: the host's {bait_s} got the mount");
        h.ok(&["mount", "rm", "bb", link]);
    }
    // The same at start, from the config.
    h.ok(&["mount", "add", "bb", s(&src), "/to-host"]);
    h.ok(&["stop", "bb"]);
    h.ok(&["start", "bb"]);
    assert_eq!(h.exec("bb", &["cat", &format!("{bait_s}/shared")]), "shared");
    assert_eq!(std::fs::read_dir(&bait).unwrap().count(), 0, "the host's bait directory changed");
    let host_mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!host_mounts.contains(bait_s), "{host_mounts}");

    // Sources: what a symlink leads to is what is checked.
    std::os::unix::fs::symlink("/", host.join("root-link")).unwrap();
    let exe = env!("CARGO_BIN_EXE_hutch");
    let state = h.root.display().to_string();
    let refused = [
        (s(&host.join("root-link")).to_string(), "the host's root directory"),
        ("/proc".to_string(), "kernel filesystem"),
        (state.clone(), "hutch's state"),
        (format!("{state}/containers/bb"), "inside hutch's state"),
        (exe.to_string(), "the hutch binary"),
        ("/dev/null".to_string(), "only directories and regular files"),
    ];
    for (source, why) in refused {
        let err = h.fails(&["mount", "add", "bb", &source, "/x"]);
        assert!(err.contains(why), "{source}: {err}");
    }
    h.ok(&["stop", "bb"]);
    h.ok(&["destroy", "bb"]);
    let _ = std::fs::remove_dir_all(&host);
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn bad_mount_input_is_refused_and_changes_nothing() {
    let Some(img) = require("mounts_bad_input", &[]) else {
        return;
    };
    let h = Hutch::new("mounts-bad");
    let host = host_dir("bad");
    let src = host.join("src");
    mkdir_owned(&src, 0, 0o755);
    h.create("bb", &img.busybox(), &["--network", "none"]);
    h.ok(&["mount", "add", "bb", s(&src), "/data"]);
    let config = std::fs::read(h.paths().config("bb")).unwrap();
    let missing = host.join("missing").display().to_string();
    let cases: [(&[&str], &str); 8] = [
        (&["mount", "add", "bb", &missing, "/m"], "does not exist"),
        (&["mount", "add", "bb", "relative/dir", "/m"], "not an absolute host path"),
        (&["mount", "add", "bb", s(&src), "/data/"], "is the target of another mount"),
        (&["mount", "add", "bb", s(&src), "data"], "not an absolute path inside the container"),
        (&["mount", "add", "bb", s(&src), "/proc/x"], "hutch mounts anew at every start"),
        (&["mount", "add", "bb", s(&src), "/a/../etc"], "must not contain '..'"),
        (&["mount", "add", "nosuch", s(&src), "/m"], "nosuch: it does not exist"),
        (&["mount", "rm", "bb", "/elsewhere"], "it has no mount there"),
    ];
    for (args, why) in cases {
        let err = h.fails(args);
        assert!(err.contains(why), "{args:?}: {err}");
        assert!(err.starts_with("hutch: error: failed to "), "{args:?}: {err}");
        assert_eq!(std::fs::read(h.paths().config("bb")).unwrap(), config, "{args:?} changed the config");
    }
    // A missing optional source is saved, and skipped with a notice at start.
    h.ok(&["mount", "add", "bb", &missing, "/opt/later", "--optional"]);
    let out = h.run(&["start", "bb"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("skipping the optional mount at /opt/later"), "{err}");
    assert_eq!(h.exec("bb", &["ls", "/data"]), "");
    h.ok(&["stop", "bb"]);
    // A required source removed after it was added fails the start, with the fix.
    std::fs::remove_dir(&src).unwrap();
    let err = h.fails(&["start", "bb"]);
    assert!(err.contains(&format!("{} does not exist", src.display())), "{err}");
    assert!(err.contains("hint: create it, or mark the mount optional"), "{err}");
    assert_eq!(h.state("bb"), "stopped");
    h.ok(&["destroy", "bb"]);
    let _ = std::fs::remove_dir_all(&host);
}
