//! The host side of a pull: a hostile stream writes only what was asked for, below
//! the destination, and nothing through a symlink.

use super::*;

#[test]
fn a_pull_writes_only_the_names_it_asked_for() {
    let h = Host::new();
    let s = h.pull(&Raw::default().file("/etc/passwd", b"x").file("other", b"x").file("out", b"ok").done(), &["out"]);
    assert_eq!(s.unwrap().refused, 2, "an absolute name and a name outside the plan are refused");
    assert_eq!(std::fs::read(h.root.join("out")).unwrap(), b"ok");
    assert!(!h.root.join("etc").exists() && !h.root.join("other").exists());
    let s = h.pull(&Raw::default().dir("d").file("d/../../outside/secret", b"pwned").done(), &["d"]).unwrap();
    assert_eq!(s.refused, 1, "'..' is refused");
}

#[test]
fn a_pull_never_passes_through_a_symlink_not_even_one_it_made() {
    for (link, target) in [("out", "/"), ("out/l", ".."), ("out/l", "../outside"), ("out/abs", "/etc")] {
        let h = Host::new();
        let outside = h.outside.display().to_string();
        let target = if target == "../outside" { outside.as_str() } else { target };
        let mut raw = Raw::default();
        if link != "out" {
            raw.dir("out");
        }
        raw.link(link, target).file(&format!("{link}/secret"), b"pwned").file(&format!("{link}/x"), b"pwned");
        let err = h.pull(&raw.done(), &["out"]).unwrap_err().to_string();
        assert!(err.contains("symbolic links") || err.contains("Too many"), "{link} -> {target}: {err}");
        assert_eq!(std::fs::read(h.outside.join("secret")).unwrap(), b"host");
        // The link itself is there, as the container had it.
        assert_eq!(std::fs::read_link(h.root.join(link)).unwrap(), Path::new(target));
    }
}

#[test]
fn a_pull_makes_no_setuid_files_hard_links_or_attributes_on_the_host() {
    let h = Host::new();
    std::fs::write(h.root.join("victim"), b"host").unwrap();
    let stream = Raw::default()
        .dir("out")
        .entry("out/suid", tar::EntryType::Regular, 0o6755, "", b"#!/bin/sh\n")
        .entry("out/sticky", tar::EntryType::Directory, 0o1777, "", b"")
        .entry("out/hard", tar::EntryType::Link, 0o644, "victim", b"")
        .entry("out/hard2", tar::EntryType::Link, 0o644, "out/suid", b"")
        .xattr("user.hutch", "from-the-container")
        .file("out/attr", b"a")
        .entry("out/dev", tar::EntryType::Char, 0o666, "", b"")
        .done();
    let s = h.pull(&stream, &["out"]).unwrap();
    assert_eq!(std::fs::metadata(h.root.join("out/suid")).unwrap().mode() & 0o7777, 0o755);
    assert_eq!(std::fs::metadata(h.root.join("out/sticky")).unwrap().mode() & 0o7777, 0o1777);
    assert!(!h.root.join("out/hard").exists() && !h.root.join("out/hard2").exists());
    assert_eq!(s.refused, 2);
    assert!(!h.root.join("out/dev").exists());
    let attrs = rustix::fs::listxattr(h.root.join("out/attr"), &mut [0u8; 256][..]).unwrap_or(0);
    assert_eq!(attrs, 0, "no extended attribute from the stream");
    let (uid, gid) = my_ids();
    let m = std::fs::metadata(h.root.join("out/attr")).unwrap();
    assert_eq!((u64::from(m.uid()), u64::from(m.gid())), (uid, gid), "owners as stored in the stream");
}

#[test]
fn a_pull_stops_at_the_space_it_may_use() {
    let h = Host::new();
    let root = Tree::at(&h.root).unwrap().root;
    let place = |p: &[u8]| Some(p.to_vec());
    let placement = Placement { label: Path::new("s"), dst: &h.root, to_host: true, place: &place, max_bytes: Some(4) };
    let e = unpack_stream(&Raw::default().file("big", b"0123456789").done()[..], root, &placement).unwrap_err();
    assert!(matches!(e, crate::rootfs::Error::NoSpace { .. }), "{e}");
}
