//! Bad input gets a clear error naming the thing and the fix, and nothing is created
//! or changed.

mod common;

use std::path::Path;

use common::{Hutch, require};

/// Everything under the containers directory, with sizes and mtimes.
fn snapshot(h: &Hutch) -> Vec<String> {
    fn walk(p: &Path, out: &mut Vec<String>) {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                let md = e.metadata().unwrap();
                out.push(format!("{} {} {:?}", e.path().display(), md.len(), md.modified().ok()));
                if md.is_dir() && e.file_name() != "rootfs" {
                    walk(&e.path(), out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&h.paths().containers(), &mut out);
    out.sort();
    out
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn invalid_names_are_refused_with_the_rule() {
    let Some(img) = require("bad_names", &[]) else {
        return;
    };
    let h = Hutch::new("bad-names");
    let dir = img.busybox().display().to_string();
    let long = "a".repeat(64);
    for bad in ["../x", "a/b", ".", "", "1abc", "-abc", "abc-", "ABC", "wéb", "we b", long.as_str()] {
        let err = h.fails(&["create", "--from-dir", &dir, "--", bad]);
        assert!(err.contains("invalid container name"), "{bad:?}: {err}");
        assert!(err.contains("1-63 characters of a-z, 0-9 and '-'"), "{bad:?}: {err}");
    }
    for verb in [&["start"][..], &["stop"], &["destroy"], &["info"], &["exec", "--", "true"]] {
        let mut args = vec![verb[0], "../etc"];
        args.extend_from_slice(&verb[1..]);
        if verb[0] == "exec" {
            args = vec!["exec", "../etc", "--", "true"];
        }
        let err = h.fails(&args);
        assert!(err.contains("invalid container name"), "{args:?}: {err}");
    }
    assert!(snapshot(&h).is_empty(), "{:?}", snapshot(&h));
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn existing_missing_and_initless_sources_change_nothing() {
    let Some(img) = require("bad_sources", &[]) else {
        return;
    };
    let h = Hutch::new("bad-sources");
    h.create("bb", &img.busybox(), &[]);
    let before = snapshot(&h);

    let err = h.fails(&["create", "bb", "--from-dir", img.busybox().to_str().unwrap()]);
    assert!(err.contains("failed to create container bb: it already exists"), "{err}");
    assert!(err.contains("hutch destroy bb"), "{err}");

    let err = h.fails(&["create", "nope", "--from-dir", "/nonexistent/rootfs"]);
    assert!(err.contains("/nonexistent/rootfs") && err.contains("does not exist"), "{err}");

    let empty = h.root.join("empty-rootfs");
    std::fs::create_dir_all(empty.join("etc")).unwrap();
    let err = h.fails(&["create", "noinit", "--from-dir", empty.to_str().unwrap()]);
    assert!(err.contains("failed to find an init"), "{err}");
    assert!(err.contains("/sbin/init"), "{err}");
    assert!(err.contains("hint:"), "{err}");

    // An archive without an init is unpacked in staging, then thrown away.
    let tar = h.root.join("noinit.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&tar).unwrap());
    b.append_dir_all(".", &empty).unwrap();
    b.finish().unwrap();
    drop(b);
    let err = h.fails(&["create", "noinit", "--from-tar", tar.to_str().unwrap()]);
    assert!(err.contains("failed to find an init"), "{err}");

    let junk = h.root.join("junk.tar.gz");
    std::fs::write(&junk, b"\x1f\x8bthis is not gzip at all").unwrap();
    let err = h.fails(&["create", "junk", "--from-tar", junk.to_str().unwrap()]);
    assert!(err.contains("failed to unpack"), "{err}");

    let err = h.fails(&["create", "nosource"]);
    assert!(err.contains("--from-dir") && err.contains("required"), "{err}");
    let err = h.fails(&["create", "both", "--from-dir", "/x", "--from-tar", "/y"]);
    assert!(err.contains("cannot be used with"), "{err}");

    assert_eq!(snapshot(&h), before, "something was created or changed");
    let err = h.fails(&["start", "ghost"]);
    assert!(err.contains("failed to find container ghost: it does not exist"), "{err}");
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn a_malformed_config_is_reported_with_file_and_line_and_never_half_applied() {
    let Some(img) = require("bad_config", &[]) else {
        return;
    };
    let h = Hutch::new("bad-config");
    h.create("bb", &img.busybox(), &[]);
    let path = h.paths().config("bb");
    let good = std::fs::read_to_string(&path).unwrap();

    // config set validates before writing: the file stays byte for byte the same.
    for (key, value, want) in [
        ("init.halt_signal", "SIGNOPE", "unknown signal"),
        ("init.stop_timeout", "soon", "expected a whole number"),
        ("security.privileged", "maybe", "true or false"),
        ("no.such.key", "1", "unknown configuration key"),
        ("init.ready", "whenever", "unknown variant"),
        ("hostname", "Not_Valid", "hostname"),
    ] {
        let err = h.fails(&["config", "set", "bb", key, value]);
        assert!(err.contains(want), "{key}={value}: {err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), good);
    }

    // A file broken by hand: start refuses with file:line and starts nothing.
    std::fs::write(&path, good.replace("[init]", "[init]\nfrobnicate = 1")).unwrap();
    let err = h.fails(&["start", "bb"]);
    assert!(err.contains(&format!("{}:", path.display())), "{err}");
    assert!(err.contains("frobnicate"), "{err}");
    assert!(!h.paths().runtime("bb").exists());
    for d in h.cgroup_dirs("bb") {
        assert!(!d.exists());
    }
    std::fs::write(&path, "schema = 1\n[rootfs\n").unwrap();
    let err = h.fails(&["config", "show", "bb"]);
    assert!(err.contains(&format!("{}:2:", path.display())), "{err}");

    // config edit from stdin refuses a broken replacement and keeps the file.
    std::fs::write(&path, &good).unwrap();
    let out = h.run_with_input(&["config", "edit", "bb"], b"schema = 7\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("schema 7 is not supported"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), good);

    // ...and applies a valid one.
    let edited = good.replace("stop_timeout = 30", "stop_timeout = 7");
    assert!(h.run_with_input(&["config", "edit", "bb"], edited.as_bytes()).status.success());
    assert_eq!(h.ok(&["config", "get", "bb", "init.stop_timeout"]).trim(), "7");
    let json: serde_json::Value =
        serde_json::from_str(&h.ok(&["config", "get", "bb", "init.command", "--format", "json"])).unwrap();
    assert_eq!(json["value"], serde_json::json!(["/sbin/init"]));
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn a_rootfs_whose_proc_is_a_symlink_is_refused_at_start() {
    let Some(img) = require("symlinked_proc", &[]) else {
        return;
    };
    let h = Hutch::new("bad-proc");
    h.create("bb", &img.busybox(), &[]);
    let rootfs = h.paths().container("bb").join("rootfs");
    std::fs::remove_dir(rootfs.join("proc")).unwrap();
    std::os::unix::fs::symlink("/etc", rootfs.join("proc")).unwrap();
    let err = h.fails(&["start", "bb"]);
    assert!(err.contains("refusing to mount on /proc"), "{err}");
    assert!(err.contains("symlink"), "{err}");
    assert_eq!(h.state("bb"), "stopped");
    assert!(!h.paths().runtime("bb").exists());
}
