//! `hutch file push|pull|edit` on busybox containers, stopped and running, overlay and
//! dir storage: owners in container ids (checked from inside and on the host), the
//! overrides, trees with symlinks, the container's symlinks never redirecting the host
//! (planted links, `..` chains, absolute targets, a link swapped in while a pull
//! runs), bad input changing nothing, and `file edit`.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{Hutch, Images, require};

/// The busybox test image in `h`'s cache as `bb`; containers from it get overlay storage.
fn with_image(test: &str, img: &Images) -> Hutch {
    let h = Hutch::new(test);
    let archive = h.root.join("busybox.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&archive).unwrap());
    b.follow_symlinks(false);
    b.append_dir_all(".", img.busybox()).unwrap();
    b.into_inner().unwrap();
    h.ok(&["image", "import", archive.to_str().unwrap(), "--alias", "bb"]);
    h
}

fn create(h: &Hutch, name: &str, extra: &[&str]) {
    let mut a = vec!["create", name, "--image", "bb", "--network", "none"];
    a.extend_from_slice(extra);
    h.ok(&a);
}

/// `uid:gid mode` of a path inside the container.
fn inside(h: &Hutch, name: &str, path: &str) -> String {
    h.exec(name, &["stat", "-c", "%u:%g %a", path])
}

/// `uid:gid mode` of a host path (not following a symlink).
fn on_host(p: &Path) -> String {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    format!("{}:{} {:o}", m.uid(), m.gid(), m.mode() & 0o7777)
}

fn host_file(p: &Path, data: &str, mode: u32, owner: (u32, u32)) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    std::os::unix::fs::chown(p, Some(owner.0), Some(owner.1)).unwrap();
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A fresh, empty host directory for this test.
fn scratch(h: &Hutch, name: &str) -> PathBuf {
    let d = h.root.join("scratch").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Pushes and pulls on `name` (stopped or running): owners kept as numbers, the
/// overrides, a tree with a symlink. `tag` keeps the two rounds' files apart.
fn round_trip(h: &Hutch, name: &str, tag: &str) {
    let src = scratch(h, &format!("{name}-{tag}-src"));
    host_file(&src.join("rootfile"), "owned by host root\n", 0o640, (0, 0));
    host_file(&src.join("userfile"), "owned by 1234\n", 0o604, (1234, 5678));
    host_file(&src.join("tree/sub/deep"), "deep\n", 0o600, (0, 0));
    symlink("/etc/passwd", src.join("tree/link")).unwrap();
    let dir = format!("{name}/root/{tag}/");
    h.ok(&["file", "push", "-p", s(&src.join("rootfile")), s(&src.join("userfile")), &dir]);
    h.ok(&[
        "file",
        "push",
        "--uid",
        "1000",
        "--gid",
        "100",
        "--mode",
        "600",
        s(&src.join("rootfile")),
        &format!("{name}/root/{tag}/forced"),
    ]);
    h.ok(&["file", "push", "-r", s(&src.join("tree")), &dir]);
    let back = scratch(h, &format!("{name}-{tag}-back"));
    h.ok(&[
        "file",
        "pull",
        &format!("{name}/root/{tag}/rootfile"),
        &format!("{name}/root/{tag}/userfile"),
        &format!("{name}/root/{tag}/forced"),
        s(&back),
    ]);
    h.ok(&["file", "pull", "-r", &format!("{name}/root/{tag}/tree"), s(&back)]);
    assert_eq!(std::fs::read_to_string(back.join("rootfile")).unwrap(), "owned by host root\n");
    // Owners travel as numbers in container ids, both ways; modes are kept.
    assert_eq!(on_host(&back.join("rootfile")), "0:0 640");
    assert_eq!(on_host(&back.join("userfile")), "1234:5678 604");
    assert_eq!(on_host(&back.join("forced")), "1000:100 600");
    assert_eq!(on_host(&back.join("tree/sub/deep")), "0:0 600");
    assert_eq!(std::fs::read_link(back.join("tree/link")).unwrap(), Path::new("/etc/passwd"), "symlinks stay symlinks");
    assert_eq!(std::fs::read_to_string(back.join("tree/sub/deep")).unwrap(), "deep\n");
}

/// What the container sees of the files `round_trip` pushed.
fn check_inside(h: &Hutch, name: &str, tag: &str) {
    let p = |f: &str| format!("/root/{tag}/{f}");
    assert_eq!(inside(h, name, &p("rootfile")), "0:0 640");
    assert_eq!(inside(h, name, &p("userfile")), "1234:5678 604");
    assert_eq!(inside(h, name, &p("forced")), "1000:100 600");
    assert_eq!(inside(h, name, &p("tree/sub/deep")), "0:0 600");
    assert_eq!(h.exec(name, &["readlink", &p("tree/link")]), "/etc/passwd");
    assert_eq!(h.exec(name, &["cat", &p("tree/sub/deep")]), "deep");
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn push_and_pull_on_stopped_and_running_containers_of_both_storages() {
    let Some(img) = require("file_round_trip", &[]) else {
        return;
    };
    let h = with_image("file-round-trip", &img);
    create(&h, "ov", &[]);
    create(&h, "full", &["--storage", "dir"]);
    assert_eq!(h.ok(&["config", "get", "ov", "rootfs.storage"]).trim(), "overlay");
    for c in ["ov", "full"] {
        round_trip(&h, c, "stopped");
        h.ok(&["start", c, "--wait"]);
        check_inside(&h, c, "stopped");
        round_trip(&h, c, "running");
        check_inside(&h, c, "running");
        // Written by the container itself, read back while running and once stopped.
        h.exec(c, &["sh", "-c", "echo mine > /root/made && chown 42:43 /root/made"]);
        h.ok(&["stop", c]);
        let back = scratch(&h, &format!("{c}-made"));
        h.ok(&["file", "pull", &format!("{c}/root/made"), s(&back)]);
        assert_eq!(on_host(&back.join("made")), "42:43 644");
    }
    // On disk the files keep container ids, unshifted, as everything in a rootfs does.
    let ov = h.paths().container("ov");
    assert_eq!(on_host(&ov.join("overlay/upper/root/running/userfile")), "1234:5678 604");
    assert_eq!(on_host(&ov.join("overlay/upper/root/stopped/rootfile")), "0:0 640");
    assert_eq!(on_host(&h.paths().container("full").join("rootfs/root/running/forced")), "1000:100 600");
    assert!(h.mounts().is_empty(), "mounts left: {:?}", h.mounts());
    // The contents of one file on stdout.
    h.ok(&["start", "ov"]);
    assert_eq!(h.ok(&["file", "pull", "ov/root/running/tree/sub/deep", "-"]), "deep\n");
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn the_containers_symlinks_never_lead_to_the_host() {
    let Some(img) = require("file_symlinks", &[]) else {
        return;
    };
    let h = with_image("file-symlinks", &img);
    create(&h, "evil", &[]);
    let outside = scratch(&h, "outside");
    std::fs::write(outside.join("secret"), "host secret\n").unwrap();
    let src = scratch(&h, "src");
    host_file(&src.join("x"), "pushed\n", 0o644, (0, 0));
    let marker = format!("hutch-file-test-{}", std::process::id());
    h.ok(&["start", "evil"]);
    let plant = format!(
        "mv /etc /etc.real && ln -s / /etc && mkdir -p /a/b && ln -s ../../../../../.. /a/b/up \
         && ln -s {out} /out && ln -s {out}/secret /secret && mkdir /d && ln -s / /d/root && ln -s {out} /d/out",
        out = outside.display()
    );
    h.exec("evil", &["sh", "-c", &plant]);
    for round in ["running", "stopped"] {
        // /etc -> / and a ../.. chain: resolved in the container's root.
        h.ok(&["file", "push", s(&src.join("x")), &format!("evil/etc/{marker}-{round}")]);
        h.ok(&["file", "push", s(&src.join("x")), &format!("evil/a/b/up/{marker}-up-{round}")]);
        assert!(!Path::new(&format!("/{marker}-{round}")).exists(), "a push escaped to the host's /");
        assert!(!Path::new(&format!("/{marker}-up-{round}")).exists(), "a push escaped to the host's /");
        // An absolute link to a host directory leads to that path in the container,
        // which it does not have.
        let err = h.fails(&["file", "push", s(&src.join("x")), "evil/out/x"]);
        assert!(err.contains("does not exist in evil"), "{err}");
        // Pulled links stay links: nothing of the host is read through them.
        let back = scratch(&h, &format!("back-{round}"));
        h.ok(&["file", "pull", "evil/secret", s(&back)]);
        h.ok(&["file", "pull", "-r", "evil/d", s(&back)]);
        assert_eq!(std::fs::read_link(back.join("secret")).unwrap(), outside.join("secret"));
        assert_eq!(std::fs::read_link(back.join("d/root")).unwrap(), Path::new("/"));
        assert_eq!(std::fs::read_link(back.join("d/out")).unwrap(), outside);
        let err = h.fails(&["file", "pull", "evil/out/secret", s(&back.join("y"))]);
        assert!(err.contains("does not exist in evil"), "{err}");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1, "something was written in the host directory");
        if round == "running" {
            for f in [format!("/{marker}-running"), format!("/{marker}-up-running")] {
                assert_eq!(h.exec("evil", &["cat", &f]), "pushed");
            }
            h.ok(&["stop", "evil", "--force"]);
        }
    }
    let upper = h.paths().container("evil").join("overlay/upper");
    assert_eq!(std::fs::read_to_string(upper.join(format!("{marker}-stopped"))).unwrap(), "pushed\n");
    assert_eq!(std::fs::read_to_string(upper.join(format!("{marker}-up-stopped"))).unwrap(), "pushed\n");
}

/// Pulls `spec` into fresh destinations while something swaps a directory of the
/// tree for a symlink to `/` and back: every pull either fails or writes only what the
/// container has, below its destination.
fn pull_while_swapping(h: &Hutch, spec: &str, rounds: usize) {
    for i in 0..rounds {
        let parent = scratch(h, &format!("race-{i}"));
        let dest = parent.join("dest");
        let out = h.run(&["file", "pull", "-r", spec, s(&dest)]);
        let names: Vec<_> = std::fs::read_dir(&parent).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(names.iter().all(|n| n == "dest"), "written beside the destination: {names:?}");
        for f in walk(&dest) {
            let m = std::fs::symlink_metadata(&f).unwrap();
            if m.file_type().is_symlink() {
                assert_eq!(std::fs::read_link(&f).unwrap(), Path::new("/"), "{}", f.display());
            } else if m.is_file() {
                let text = std::fs::read_to_string(&f).unwrap();
                assert!(text.starts_with("container file"), "{} holds {text:?} (read from the host?)", f.display());
            }
        }
        assert!(out.status.success() || !stderr(&out).is_empty(), "a failed pull says why");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        out.push(e.path());
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        }
    }
    out
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn a_link_swapped_in_during_a_pull_is_never_followed() {
    let Some(img) = require("file_race", &[]) else {
        return;
    };
    let h = with_image("file-race", &img);
    // Running: the container itself swaps /big/sw for a link to / in a loop.
    create(&h, "race", &[]);
    h.ok(&["start", "race"]);
    let fill = "mkdir -p /big/sw && for i in $(seq 200); do echo \"container file $i\" > /big/f$i; \
                echo \"container file $i\" > /big/sw/g$i; done";
    h.exec("race", &["sh", "-c", fill]);
    let swap = "(while :; do mv /big/sw /big/sw.real && ln -s / /big/sw && rm /big/sw && mv /big/sw.real /big/sw; \
                done) </dev/null >/dev/null 2>&1 &";
    h.exec("race", &["sh", "-c", swap]);
    pull_while_swapping(&h, "race/big", 15);
    h.ok(&["stop", "race", "--force"]);

    // Stopped, dir storage: the swap happens in the rootfs on disk, where a link to /
    // is the host's / to anything that follows it.
    create(&h, "still", &["--storage", "dir"]);
    let big = h.paths().container("still").join("rootfs/big");
    for d in [&big, &big.join("sw")] {
        std::fs::create_dir_all(d).unwrap();
        for i in 0..200 {
            std::fs::write(d.join(format!("f{i}")), format!("container file {i}\n")).unwrap();
        }
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, big) = (stop.clone(), big.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::rename(big.join("sw"), big.join("sw.real"));
                let _ = symlink("/", big.join("sw"));
                let _ = std::fs::remove_file(big.join("sw"));
                let _ = std::fs::rename(big.join("sw.real"), big.join("sw"));
            }
        })
    };
    pull_while_swapping(&h, "still/big", 15);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().unwrap();
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn bad_input_is_refused_and_changes_nothing() {
    let Some(img) = require("file_bad_input", &[]) else {
        return;
    };
    let h = with_image("file-bad-input", &img);
    create(&h, "bb", &[]);
    let src = scratch(&h, "src");
    host_file(&src.join("f"), "f\n", 0o644, (0, 0));
    std::fs::create_dir(src.join("dir")).unwrap();
    let dest = scratch(&h, "dest");
    std::fs::write(dest.join("file"), "keep").unwrap();
    let upper = h.paths().container("bb").join("overlay/upper");
    let (f, d, file) =
        (s(&src.join("f")).to_string(), s(&src.join("dir")).to_string(), s(&dest.join("file")).to_string());
    let deep = s(&dest.join("no/such/dir/x")).to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["push", &f, "nosuch/tmp/"], "container nosuch: it does not exist"),
        (vec!["push", &f, "bb"], "no '/' between the container's name and the path"),
        (vec!["push", &f, "bb/tmp/../etc/x"], "must not contain '..'"),
        (vec!["push", "/nonexistent-hutch-src", "bb/tmp/"], "/nonexistent-hutch-src: No such file"),
        (vec!["push", &d, "bb/tmp/"], "is a directory"),
        (vec!["push", "-r", "--mode", "600", &d, "bb/tmp/"], "--mode sets the mode of single files"),
        (vec!["push", &f, "bb/nonexistent/x"], "/nonexistent does not exist in bb"),
        (vec!["push", &f, &f, "bb/tmp/"], "two sources are named f"),
        (vec!["pull", "bb/etc", s(&dest)], "/etc is a directory in bb"),
        (vec!["pull", "bb/etc/passwd", "bb/etc/group", &file], "is not a directory"),
        (vec!["pull", "bb/nonexistent", s(&dest)], "/nonexistent does not exist in bb"),
        (vec!["pull", "bb/etc/passwd", "bb/etc/passwd", s(&dest)], "two sources are named passwd"),
        (vec!["pull", "bb/etc/passwd", &deep], "does not exist"),
        (vec!["edit", "bb/etc/"], "names a directory"),
    ];
    for running in [false, true] {
        let before = walk(&upper);
        for (args, says) in &cases {
            let mut a = vec!["file"];
            a.extend_from_slice(args);
            let err = h.fails(&a);
            assert!(err.starts_with("hutch: error: failed to "), "{args:?}: {err}");
            assert!(err.contains(says), "{args:?}: {err}");
        }
        assert_eq!(walk(&upper), before, "the container's files changed");
        assert_eq!(walk(&dest), vec![dest.join("file")], "the destination changed");
        assert_eq!(std::fs::read_to_string(dest.join("file")).unwrap(), "keep");
        if !running {
            h.ok(&["start", "bb"]);
        }
    }
    h.ok(&["freeze", "bb"]);
    let err = h.fails(&["file", "push", &f, "bb/tmp/"]);
    assert!(err.contains("bb is frozen") && err.contains("hutch unfreeze bb"), "{err}");
    h.ok(&["unfreeze", "bb"]);
    h.ok(&["stop", "bb"]);
    std::fs::create_dir_all(h.paths().runtime("bb")).unwrap();
    std::fs::write(h.paths().state_file("bb"), b"{\"version\": 1, \"boot").unwrap();
    let err = h.fails(&["file", "pull", "bb/etc/passwd", s(&dest)]);
    assert!(err.contains("the state of bb is unreadable") && err.contains("leaves it alone"), "{err}");
    assert_eq!(walk(&dest), vec![dest.join("file")]);
    std::fs::remove_file(h.paths().state_file("bb")).unwrap();
}

fn edit(h: &Hutch, spec: &str, editor: &Path) -> Output {
    h.cmd(&["file", "edit", spec]).env("EDITOR", editor).env_remove("VISUAL").output().unwrap()
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn edit_runs_the_editor_and_writes_back_only_a_change() {
    let Some(img) = require("file_edit", &[]) else {
        return;
    };
    let h = with_image("file-edit", &img);
    create(&h, "ed", &[]);
    let bin = scratch(&h, "bin");
    let script = |name: &str, body: &str| {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    };
    let append = script("append", "echo \"edited by $(basename \"$0\")\" >> \"$1\"");
    let (keep, fail) = (script("keep", "true"), script("fail", "exit 3"));
    h.ok(&["start", "ed"]);
    h.exec(
        "ed",
        &[
            "sh",
            "-c",
            "echo original > /root/conf && chown 5:6 /root/conf && chmod 640 /root/conf && ln -s /root/conf /root/link",
        ],
    );
    for round in ["running", "stopped"] {
        let out = edit(&h, "ed/root/link", &append);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = edit(&h, "ed/root/conf", &keep);
        assert!(out.status.success() && stderr(&out).contains("no changes to ed/root/conf"), "{}", stderr(&out));
        let out = edit(&h, "ed/root/conf", &fail);
        assert!(
            stderr(&out).contains("the editor") && stderr(&out).contains("nothing was changed"),
            "{}",
            stderr(&out)
        );
        if round == "running" {
            assert_eq!(h.exec("ed", &["cat", "/root/conf"]), "original\nedited by append");
            h.ok(&["stop", "ed"]);
        }
    }
    h.ok(&["start", "ed"]);
    assert_eq!(h.exec("ed", &["cat", "/root/conf"]), "original\nedited by append\nedited by append");
    assert_eq!(inside(&h, "ed", "/root/conf"), "5:6 640", "the owner and mode are the original's");
    assert_eq!(h.exec("ed", &["readlink", "/root/link"]), "/root/conf", "the link is still a link");
}
