//! `--from-tar`: unpacks a root filesystem archive (.tar, .tar.gz, .tar.xz, .tar.zst,
//! recognised by content, not by name). Owners, permission bits, timestamps and
//! extended attributes are kept. Entries that would land outside the target (`..`,
//! absolute paths, paths through symlinks) are refused by the tar crate's
//! `unpack_in`; device nodes are created only for privileged containers (an
//! unprivileged container gets its /dev from hutch at start).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path};

use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::Error;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub entries: u64,
    pub devices_skipped: u64,
    pub refused: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
}

/// Recognises the compression from the first bytes.
pub fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Compression::Xz
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// A decompressing reader for `archive`.
pub fn open(archive: &Path) -> Result<Box<dyn Read>, Error> {
    let err = |e: io::Error| Error::Read { path: archive.to_path_buf(), source: e };
    let mut r = BufReader::with_capacity(1 << 20, File::open(archive).map_err(err)?);
    let head = r.fill_buf().map_err(err)?.to_vec();
    let unpack_err = |m: String| Error::Unpack { archive: archive.to_path_buf(), message: m };
    Ok(match sniff(&head) {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(r)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(r).map_err(|e| unpack_err(format!("bad zstd stream: {e}")))?,
        ),
    })
}

/// Unpacks `archive` into the existing directory `dst`.
pub fn unpack(archive: &Path, dst: &Path, privileged: bool) -> Result<Stats, Error> {
    let fail = |m: String| Error::Unpack { archive: archive.to_path_buf(), message: m };
    let mut ar = tar::Archive::new(open(archive)?);
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(true);
    ar.set_unpack_xattrs(true);
    ar.set_preserve_mtime(true);
    ar.set_overwrite(true);
    let mut stats = Stats::default();
    let entries = ar.entries().map_err(|e| fail(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| fail(format!("corrupt or truncated archive: {e}")))?;
        stats.entries += 1;
        let kind = entry.header().entry_type();
        if matches!(kind, tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo) {
            if !privileged && kind != tar::EntryType::Fifo {
                stats.devices_skipped += 1;
                continue;
            }
            make_node(&entry, dst).map_err(fail)?;
            continue;
        }
        let path = entry.path().map(|p| p.into_owned()).map_err(|e| fail(e.to_string()))?;
        match entry.unpack_in(dst) {
            Ok(true) => {}
            Ok(false) => stats.refused += 1,
            Err(e) => return Err(fail(format!("{}: {}", path.display(), chain(&e)))),
        }
    }
    if stats.entries == 0 {
        return Err(fail("the archive is empty".into()));
    }
    Ok(stats)
}

/// An error and its causes, as one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Creates a device node or fifo, resolving its parent inside `dst`.
fn make_node<R: Read>(entry: &tar::Entry<'_, R>, dst: &Path) -> Result<(), String> {
    let path = entry.path().map_err(|e| e.to_string())?.into_owned();
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_owned()),
            Component::CurDir | Component::RootDir => {}
            _ => return Err(format!("{}: refusing a path with '..'", path.display())),
        }
    }
    let Some(name) = parts.pop() else {
        return Ok(());
    };
    let root = rustix::fs::open(dst, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| e.to_string())?;
    let parent: std::path::PathBuf = parts.iter().collect();
    let dir = if parent.as_os_str().is_empty() {
        root
    } else {
        rustix::fs::openat2(
            &root,
            &parent,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|e| format!("{}: parent directory: {e}", path.display()))?
    };
    let h = entry.header();
    let mode = h.mode().map_err(|e| e.to_string())? & 0o7777;
    let (kind, dev) = match h.entry_type() {
        tar::EntryType::Char => (
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::makedev(
                h.device_major().ok().flatten().unwrap_or(0),
                h.device_minor().ok().flatten().unwrap_or(0),
            ),
        ),
        tar::EntryType::Block => (
            rustix::fs::FileType::BlockDevice,
            rustix::fs::makedev(
                h.device_major().ok().flatten().unwrap_or(0),
                h.device_minor().ok().flatten().unwrap_or(0),
            ),
        ),
        _ => (rustix::fs::FileType::Fifo, 0),
    };
    let _ = rustix::fs::unlinkat(&dir, name.as_os_str(), rustix::fs::AtFlags::empty());
    rustix::fs::mknodat(&dir, name.as_os_str(), kind, Mode::from_raw_mode(mode), dev)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let (uid, gid) = (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32);
    rustix::fs::chownat(
        &dir,
        name.as_os_str(),
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_tar(dir: &Path, entries: &[(&str, &[u8])]) -> std::path::PathBuf {
        let p = dir.join("a.tar");
        let mut b = tar::Builder::new(File::create(&p).unwrap());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o755);
            // Owned by whoever runs the test, so it passes without root too.
            h.set_uid(nix::unistd::getuid().as_raw().into());
            h.set_gid(nix::unistd::getgid().as_raw().into());
            h.set_mtime(1_700_000_000);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.finish().unwrap();
        p
    }

    #[test]
    fn sniffs_compression_by_content() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(sniff(&[0xfd, b'7', b'z', b'X', b'Z', 0]), Compression::Xz);
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(sniff(b"usr/\0\0"), Compression::None);
    }

    #[test]
    fn unpacks_plain_and_compressed_archives() {
        let d = tempfile::tempdir().unwrap();
        let tar = build_tar(d.path(), &[("sbin/init", b"#!/bin/sh\n"), ("etc/hostname", b"x\n")]);
        let raw = std::fs::read(&tar).unwrap();
        let variants: Vec<(&str, Vec<u8>)> = vec![
            ("plain", raw.clone()),
            ("gz", {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                io::Write::write_all(&mut e, &raw).unwrap();
                e.finish().unwrap()
            }),
            ("xz", {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
                io::Write::write_all(&mut e, &raw).unwrap();
                e.finish().unwrap()
            }),
            ("zst", zstd::encode_all(&raw[..], 1).unwrap()),
        ];
        for (name, bytes) in variants {
            let a = d.path().join(format!("rootfs.{name}"));
            std::fs::write(&a, bytes).unwrap();
            let out = d.path().join(format!("out-{name}"));
            std::fs::create_dir(&out).unwrap();
            let s = unpack(&a, &out, false).unwrap();
            assert_eq!(s.entries, 2, "{name}");
            assert_eq!(std::fs::read(out.join("sbin/init")).unwrap(), b"#!/bin/sh\n", "{name}");
        }
    }

    #[test]
    fn truncated_and_empty_archives_fail_cleanly() {
        let d = tempfile::tempdir().unwrap();
        let tar = build_tar(d.path(), &[("big", &[7u8; 100_000])]);
        let raw = std::fs::read(&tar).unwrap();
        let cut = d.path().join("cut.tar");
        std::fs::write(&cut, &raw[..20_000]).unwrap();
        let out = d.path().join("o1");
        std::fs::create_dir(&out).unwrap();
        let err = unpack(&cut, &out, false).unwrap_err().to_string();
        assert!(err.starts_with("failed to unpack"), "{err}");
        let empty = d.path().join("empty.tar");
        std::fs::write(&empty, [0u8; 1024]).unwrap();
        let out = d.path().join("o2");
        std::fs::create_dir(&out).unwrap();
        assert!(unpack(&empty, &out, false).unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn dot_dot_entries_never_land_outside() {
        let d = tempfile::tempdir().unwrap();
        // tar::Builder refuses '..', so write the header name by hand.
        let p = d.path().join("evil.tar");
        let mut b = tar::Builder::new(File::create(&p).unwrap());
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..14].copy_from_slice(b"../escaped.txt");
        h.set_size(1);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        b.finish().unwrap();
        let out = d.path().join("root");
        std::fs::create_dir(&out).unwrap();
        let s = unpack(&p, &out, false).unwrap();
        assert_eq!(s.refused, 1);
        assert!(!d.path().join("escaped.txt").exists());
    }
}
