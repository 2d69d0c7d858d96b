use super::*;
use crate::rootfs::write_file;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::PathBuf;

fn mkdir_in_root(rootfs: &Path, path: &str, mode: u32) -> io::Result<()> {
    mkdir_in_root_owned(rootfs, path, mode, None).map(|_| ())
}

/// A rootfs and an "outside" directory next to it that nothing may touch.
struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("victim"), b"keep").unwrap();
    Tree { _dir: dir, root, outside }
}

fn assert_outside_untouched(t: &Tree) {
    let names: Vec<_> = std::fs::read_dir(&t.outside).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("victim")], "something landed outside the rootfs");
    assert_eq!(std::fs::read(t.outside.join("victim")).unwrap(), b"keep");
    let parent = t.root.parent().unwrap();
    let mut top: Vec<_> = std::fs::read_dir(parent).unwrap().map(|e| e.unwrap().file_name()).collect();
    top.sort();
    assert_eq!(top, vec![std::ffi::OsString::from("outside"), "root".into()], "something landed next to the rootfs");
}

#[test]
fn mkdir_creates_missing_components_with_the_mode() {
    let t = tree();
    mkdir_in_root(&t.root, "/etc/netplan", 0o750).unwrap();
    let m = std::fs::metadata(t.root.join("etc/netplan")).unwrap();
    assert!(m.is_dir());
    assert_eq!(m.permissions().mode() & 0o7777, 0o750);
    // Existing directories are kept as they are.
    mkdir_in_root(&t.root, "/etc/netplan", 0o700).unwrap();
    assert_eq!(std::fs::metadata(t.root.join("etc/netplan")).unwrap().permissions().mode() & 0o7777, 0o750);
    assert_eq!(mkdir_in_root_owned(&t.root, "etc/a/b", 0o755, None).unwrap(), 2);
    assert!(t.root.join("etc/a/b").is_dir());
}

#[test]
fn mkdir_follows_relative_symlinks_inside_the_root() {
    let t = tree();
    std::fs::create_dir_all(t.root.join("usr/lib")).unwrap();
    symlink("usr/lib", t.root.join("lib")).unwrap();
    mkdir_in_root(&t.root, "/lib/systemd/system", 0o755).unwrap();
    assert!(t.root.join("usr/lib/systemd/system").is_dir());
}

#[test]
fn mkdir_never_follows_a_symlink_out_of_the_root() {
    let t = tree();
    // Absolute: resolved inside the root, where the target does not exist.
    symlink(&t.outside, t.root.join("etc")).unwrap();
    assert!(mkdir_in_root(&t.root, "/etc/netplan", 0o755).is_err());
    // Relative, climbing above the root: clamped at the root.
    std::fs::create_dir_all(t.root.join("var")).unwrap();
    symlink("../../../..", t.root.join("var/up")).unwrap();
    mkdir_in_root(&t.root, "/var/up/x", 0o755).unwrap();
    assert!(t.root.join("x").is_dir(), "the climbing link resolves to the root itself");
    assert_outside_untouched(&t);
}

#[test]
fn dot_dot_in_a_path_is_refused() {
    let t = tree();
    assert_eq!(mkdir_in_root(&t.root, "/etc/../../x", 0o755).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    assert!(symlink_in_root(&t.root, "../x", "/dev/null").is_err());
    assert!(!exists_in_root(&t.root, "/.."));
    assert_outside_untouched(&t);
}

#[test]
fn symlinks_are_created_and_replace_what_is_there() {
    let t = tree();
    mkdir_in_root(&t.root, "/etc/systemd/system", 0o755).unwrap();
    symlink_in_root(&t.root, "/etc/systemd/system/x.service", "/dev/null").unwrap();
    let p = t.root.join("etc/systemd/system/x.service");
    assert_eq!(std::fs::read_link(&p).unwrap(), Path::new("/dev/null"));
    // A planted link to a host file is replaced, its target left alone.
    std::fs::remove_file(&p).unwrap();
    symlink(t.outside.join("victim"), &p).unwrap();
    symlink_in_root(&t.root, "/etc/systemd/system/x.service", "/dev/null").unwrap();
    assert_eq!(std::fs::read_link(&p).unwrap(), Path::new("/dev/null"));
    // A directory in the way is not replaced.
    std::fs::create_dir_all(t.root.join("etc/systemd/system/d.service")).unwrap();
    assert!(symlink_in_root(&t.root, "/etc/systemd/system/d.service", "/dev/null").is_err());
    assert_outside_untouched(&t);
}

#[test]
fn symlinks_in_a_hostile_parent_stay_inside() {
    let t = tree();
    std::fs::create_dir_all(t.root.join("etc/systemd/system")).unwrap();
    symlink(&t.outside, t.root.join("etc/systemd/system/getty.target.wants")).unwrap();
    assert!(symlink_in_root(&t.root, "/etc/systemd/system/getty.target.wants/a", "/x").is_err());
    symlink("../../..", t.root.join("etc/systemd/system/up")).unwrap();
    symlink_in_root(&t.root, "/etc/systemd/system/up/a", "/x").unwrap();
    assert_eq!(std::fs::read_link(t.root.join("a")).unwrap(), Path::new("/x"), "clamped at the root");
    assert_outside_untouched(&t);
}

#[test]
fn writes_through_hostile_directories_stay_inside() {
    let t = tree();
    // etc -> the host's outside directory: resolved inside, where it does not exist.
    symlink(&t.outside, t.root.join("etc")).unwrap();
    assert!(write_file(&t.root, "/etc/hostname", b"x\n", 0o644).is_err());
    assert!(mkdir_in_root(&t.root, "/etc", 0o755).is_err());
    std::fs::remove_file(t.root.join("etc")).unwrap();
    // etc/netplan -> ../../.. : clamped at the root.
    std::fs::create_dir_all(t.root.join("etc")).unwrap();
    symlink("../../..", t.root.join("etc/netplan")).unwrap();
    mkdir_in_root(&t.root, "/etc/netplan", 0o755).unwrap();
    write_file(&t.root, "/etc/netplan/10-hutch.yaml", b"network: {}\n", 0o600).unwrap();
    assert!(t.root.join("10-hutch.yaml").is_file());
    assert_outside_untouched(&t);
}

#[test]
fn exists_resolves_inside_the_root() {
    let t = tree();
    std::fs::create_dir_all(t.root.join("usr/lib/systemd/system")).unwrap();
    std::fs::write(t.root.join("usr/lib/systemd/system/a.service"), b"").unwrap();
    symlink("usr/lib", t.root.join("lib")).unwrap();
    assert!(exists_in_root(&t.root, "/lib/systemd/system/a.service"));
    assert!(exists_in_root(&t.root, "/"));
    assert!(!exists_in_root(&t.root, "/lib/systemd/system/b.service"));
    // A link to a host file that the rootfs does not have.
    symlink(t.outside.join("victim"), t.root.join("v")).unwrap();
    assert!(t.root.join("v").exists(), "exists on the host");
    assert!(!exists_in_root(&t.root, "/v"));
    assert!(!exists_in_root(&t.root.join("missing"), "/"));
}

#[test]
fn lstat_does_not_follow_the_last_component() {
    let t = tree();
    symlink("/etc/machine-id", t.root.join("m")).unwrap();
    let st = lstat_in_root(&t.root, "/m").unwrap();
    assert_eq!(FileType::from_raw_mode(st.st_mode), FileType::Symlink);
    assert_eq!(lstat_in_root(&t.root, "/nope").unwrap_err().kind(), io::ErrorKind::NotFound);
}

#[test]
fn read_refuses_non_files_and_large_files_and_stays_inside() {
    let t = tree();
    std::fs::write(t.root.join("f"), b"hello").unwrap();
    assert_eq!(read_file_in_root(&t.root, "/f", 5).unwrap(), b"hello");
    assert_eq!(read_file_in_root(&t.root, "/f", 4).unwrap_err().kind(), io::ErrorKind::InvalidData);
    nix::unistd::mkfifo(&t.root.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    assert!(read_file_in_root(&t.root, "/fifo", 100).is_err());
    assert!(read_file_in_root(&t.root, "/", 100).is_err());
    symlink(t.outside.join("victim"), t.root.join("v")).unwrap();
    assert_eq!(read_file_in_root(&t.root, "/v", 100).unwrap_err().kind(), io::ErrorKind::NotFound);
}

#[test]
fn chown_applies_to_the_entry_itself() {
    let t = tree();
    symlink(t.outside.join("victim"), t.root.join("v")).unwrap();
    let me = std::fs::metadata(&t.root).unwrap();
    // Non-root tests can only "change" to their own ids; the link itself is chowned.
    chown_in_root(&t.root, "/v", me.uid(), me.gid()).unwrap();
    assert!(chown_in_root(&t.root, "/missing/x", me.uid(), me.gid()).is_err());
    assert_outside_untouched(&t);
}
