//! Packs a root filesystem into a tar stream: numeric owners, modes (setuid kept),
//! mtimes, hard links, device nodes and extended attributes (as PAX
//! `SCHILY.xattr.*` records, which is where GNU tar and hutch's unpacker read them,
//! so file capabilities survive). Used by `hutch image export`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Writes `root` as a tar stream to `out`; returns the number of entries.
pub(crate) fn pack<W: Write>(root: &Path, out: W) -> io::Result<(W, u64)> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let entries = pack_into(&mut b, root, Path::new("."))?;
    Ok((b.into_inner()?, entries))
}

/// Appends `root` to the tar stream `b` under the name `prefix` (its entries below it);
/// returns the number of entries. The end-of-archive marker is the caller's to write.
pub(crate) fn pack_into<W: Write>(b: &mut tar::Builder<W>, root: &Path, prefix: &Path) -> io::Result<u64> {
    let mut p = Packer { b, links: HashMap::new(), entries: 0 };
    p.walk(root, prefix)?;
    Ok(p.entries)
}

struct Packer<'b, W: Write> {
    b: &'b mut tar::Builder<W>,
    /// (dev, inode) of multiply-linked files already written → their name.
    links: HashMap<(u64, u64), PathBuf>,
    entries: u64,
}

impl<W: Write> Packer<'_, W> {
    fn walk(&mut self, host: &Path, name: &Path) -> io::Result<()> {
        let md = std::fs::symlink_metadata(host)?;
        self.entry(host, name, &md)?;
        if md.is_dir() {
            let mut names: Vec<OsString> =
                std::fs::read_dir(host)?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
            names.sort();
            for n in names {
                self.walk(&host.join(&n), &name.join(&n))?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, host: &Path, name: &Path, md: &std::fs::Metadata) -> io::Result<()> {
        self.entries += 1;
        let ft = md.file_type();
        let mut h = tar::Header::new_gnu();
        h.set_mode(md.mode() & 0o7777);
        h.set_uid(md.uid().into());
        h.set_gid(md.gid().into());
        h.set_mtime(md.mtime().max(0) as u64);
        h.set_size(0);
        self.xattrs(host, name, &ft)?;
        if ft.is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            let target = std::fs::read_link(host)?;
            return self.b.append_link(&mut h, name, target);
        }
        if ft.is_file() && md.nlink() > 1 {
            let key = (md.dev(), md.ino());
            if let Some(first) = self.links.get(&key) {
                h.set_entry_type(tar::EntryType::Link);
                let first = first.clone();
                return self.b.append_link(&mut h, name, first);
            }
            self.links.insert(key, name.to_path_buf());
        }
        if ft.is_file() {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(md.len());
            let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(host)?;
            return self.b.append_data(&mut h, name, f);
        }
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
        } else if ft.is_char_device() || ft.is_block_device() {
            h.set_entry_type(if ft.is_char_device() { tar::EntryType::Char } else { tar::EntryType::Block });
            let rdev = md.rdev();
            h.set_device_major(rustix::fs::major(rdev))?;
            h.set_device_minor(rustix::fs::minor(rdev))?;
        } else if ft.is_fifo() {
            h.set_entry_type(tar::EntryType::Fifo);
        } else {
            // Sockets have no place in an archive.
            self.entries -= 1;
            return Ok(());
        }
        self.b.append_data(&mut h, name, io::empty())
    }

    /// A PAX header with the entry's extended attributes, written just before it.
    fn xattrs(&mut self, host: &Path, name: &Path, ft: &std::fs::FileType) -> io::Result<()> {
        if ft.is_symlink() {
            return Ok(());
        }
        let mut list = vec![0u8; 4096];
        let n = match rustix::fs::llistxattr(host, &mut list[..]) {
            Ok(n) => n,
            Err(rustix::io::Errno::NOTSUP) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut records = Vec::new();
        for key in list[..n].split(|b| *b == 0).filter(|k| !k.is_empty()) {
            // overlayfs bookkeeping is meaningless outside its layer.
            if key.starts_with(b"trusted.overlay.") {
                continue;
            }
            let mut value = vec![0u8; 65536];
            let len = match rustix::fs::lgetxattr(host, key, &mut value[..]) {
                Ok(l) => l,
                Err(rustix::io::Errno::NODATA) => continue,
                Err(e) => return Err(e.into()),
            };
            let mut k = b"SCHILY.xattr.".to_vec();
            k.extend_from_slice(key);
            records.extend(pax_record(&k, &value[..len]));
        }
        if records.is_empty() {
            return Ok(());
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_mode(0o644);
        h.set_size(records.len() as u64);
        let mut pax_name = b"PaxHeaders/".to_vec();
        let base = name.file_name().map(|n| n.as_bytes()).unwrap_or(b".");
        pax_name.extend_from_slice(&base[..base.len().min(80)]);
        h.set_path(std::ffi::OsStr::from_bytes(&pax_name))?;
        h.set_cksum();
        self.b.append(&h, &records[..])
    }
}

/// One PAX record: "LEN KEY=VALUE\n", where LEN counts the whole record.
fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut r = len.to_string().into_bytes();
    r.push(b' ');
    r.extend_from_slice(key);
    r.push(b'=');
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// Packs `root` into `dest` as .tar.xz (multithreaded xz, preset `level`).
pub(crate) fn pack_xz(root: &Path, dest: &Path, level: u32) -> io::Result<u64> {
    let threads = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
    let stream = liblzma::stream::MtStreamBuilder::new()
        .threads(threads)
        .preset(level)
        .check(liblzma::stream::Check::Crc64)
        .encoder()
        .map_err(io::Error::other)?;
    let file = File::create_new(dest)?;
    let enc = liblzma::write::XzEncoder::new_stream(io::BufWriter::with_capacity(1 << 20, file), stream);
    let (enc, entries) = pack(root, enc)?;
    let buf = enc.finish()?;
    buf.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths_count_themselves() {
        let r = pax_record(b"SCHILY.xattr.user.a", b"x");
        let s = String::from_utf8(r.clone()).unwrap();
        let len: usize = s.split(' ').next().unwrap().parse().unwrap();
        assert_eq!(len, r.len());
        // The length's own digits can carry into another digit.
        for n in [90usize, 95, 96, 97, 990, 995] {
            let r = pax_record(b"k", &vec![b'v'; n]);
            let len: usize = String::from_utf8_lossy(&r).split(' ').next().unwrap().parse().unwrap();
            assert_eq!(len, r.len(), "value of {n} bytes");
        }
    }

    #[test]
    fn packs_a_tree_that_the_unpacker_restores() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("etc/sub")).unwrap();
        std::fs::write(root.join("etc/a"), b"hello").unwrap();
        std::fs::hard_link(root.join("etc/a"), root.join("etc/b")).unwrap();
        std::os::unix::fs::symlink("../etc/a", root.join("etc/sub/l")).unwrap();
        let has_user_xattrs =
            rustix::fs::lsetxattr(root.join("etc/a"), "user.hutch", b"v1", rustix::fs::XattrFlags::empty()).is_ok();
        let xz = d.path().join("r.tar.xz");
        let entries = pack_xz(&root, &xz, 1).unwrap();
        assert_eq!(entries, 6);
        let out = d.path().join("out");
        std::fs::create_dir(&out).unwrap();
        crate::rootfs::unpack::unpack(&xz, &out, false).unwrap();
        assert_eq!(std::fs::read(out.join("etc/b")).unwrap(), b"hello");
        assert_eq!(
            std::fs::metadata(out.join("etc/a")).unwrap().ino(),
            std::fs::metadata(out.join("etc/b")).unwrap().ino()
        );
        assert_eq!(std::fs::read_link(out.join("etc/sub/l")).unwrap(), Path::new("../etc/a"));
        if has_user_xattrs {
            let mut v = [0u8; 16];
            let n = rustix::fs::lgetxattr(out.join("etc/a"), "user.hutch", &mut v[..]).unwrap();
            assert_eq!(&v[..n], b"v1");
        }
    }
}
