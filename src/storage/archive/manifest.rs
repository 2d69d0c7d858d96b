//! Manifest lines: what an entry is, computed the same way when writing (from the tar
//! stream being written) and when reading, so the two can only agree on an archive
//! that is what it was.

use std::io::{self, Read};

use sha2::{Digest, Sha256};

/// An entry as read: its line, and what the reader decides on.
pub(super) struct Seen {
    /// The path as stored, normalized (no `.` or empty components; `None`: it had `..`
    /// or was absolute).
    pub path: Option<Vec<u8>>,
    pub raw_path: Vec<u8>,
    pub kind: tar::EntryType,
    pub size: u64,
    /// A link's target as stored.
    pub link: Option<Vec<u8>>,
    pub line: String,
    /// The data, when the caller asked to keep it.
    pub data: Option<Vec<u8>>,
}

/// Reads every entry of the tar stream `r`, calling `f` with each. `keep` says, by the
/// normalized path, how much of an entry's data to keep in memory (`None`: none; an
/// entry bigger than that is an error).
pub(super) fn scan<R: Read>(
    r: R,
    keep: &dyn Fn(&[u8]) -> Option<u64>,
    f: &mut dyn FnMut(Seen) -> Result<(), String>,
) -> Result<(), String> {
    let mut ar = tar::Archive::new(r);
    let mut buf = vec![0u8; 256 << 10];
    for entry in ar.entries().map_err(|e| format!("it is not a tar archive: {e}"))? {
        let mut e = entry.map_err(|e| format!("it is cut short or corrupt: {e}"))?;
        let seen = read_entry(&mut e, keep, &mut buf).map_err(|e| format!("it is cut short or corrupt: {e}"))?;
        let seen = seen?;
        f(seen)?;
    }
    Ok(())
}

fn read_entry<R: Read>(
    e: &mut tar::Entry<'_, R>,
    keep: &dyn Fn(&[u8]) -> Option<u64>,
    buf: &mut [u8],
) -> io::Result<Result<Seen, String>> {
    use tar::EntryType as T;
    let raw_path = e.path_bytes().into_owned();
    let path = normalize(&raw_path);
    let h = e.header();
    let kind = h.entry_type();
    let letter = match kind {
        T::Regular | T::Continuous => 'f',
        T::Directory => 'd',
        T::Symlink => 'l',
        T::Link => 'h',
        T::Char => 'c',
        T::Block => 'b',
        T::Fifo => 'p',
        other => return Ok(Err(format!("{}: an entry of type {:?} has no place in it", show(&raw_path), other))),
    };
    let (mode, uid, gid, mtime) = (h.mode()?, h.uid()?, h.gid()?, h.mtime()?);
    let size = e.size();
    let link = e.link_name_bytes().map(|l| l.into_owned());
    let target = match kind {
        T::Symlink | T::Link => match &link {
            Some(l) => format!(" {}", escape(l)),
            None => return Ok(Err(format!("{}: a link with no target", show(&raw_path)))),
        },
        T::Char | T::Block => {
            format!(" {},{}", h.device_major()?.unwrap_or(0), h.device_minor()?.unwrap_or(0))
        }
        _ => String::new(),
    };
    let xattrs = xattr_digest(e)?;
    let cap = path.as_deref().and_then(keep);
    let mut data = cap.map(|_| Vec::new());
    let sha = if letter == 'f' {
        if let Some(cap) = cap {
            if size > cap {
                return Ok(Err(format!("{}: {size} bytes is more than it may hold ({cap})", show(&raw_path))));
            }
        }
        let mut h = Sha256::new();
        loop {
            let n = e.read(buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            if let Some(d) = &mut data {
                d.extend_from_slice(&buf[..n]);
            }
        }
        hex(&h.finalize())
    } else {
        "-".into()
    };
    let line = format!("{letter} {mode:o} {uid} {gid} {mtime} {size} {sha} {xattrs} {}{target}", escape(&raw_path));
    Ok(Ok(Seen { path, raw_path, kind, size, link, line, data }))
}

/// The SHA-256 of an entry's `SCHILY.xattr.*` records, sorted, or `-`.
fn xattr_digest<R: Read>(e: &mut tar::Entry<'_, R>) -> io::Result<String> {
    let Some(exts) = e.pax_extensions()? else { return Ok("-".into()) };
    let mut records = Vec::new();
    for x in exts {
        let x = x?;
        if x.key_bytes().starts_with(b"SCHILY.xattr.") {
            records.push((x.key_bytes().to_vec(), x.value_bytes().to_vec()));
        }
    }
    if records.is_empty() {
        return Ok("-".into());
    }
    records.sort();
    let mut h = Sha256::new();
    for (k, v) in records {
        h.update((k.len() as u64).to_le_bytes());
        h.update(&k);
        h.update((v.len() as u64).to_le_bytes());
        h.update(&v);
    }
    Ok(hex(&h.finalize()))
}

/// The manifest for `lines`: each line, then the `end` line.
pub(super) fn render(lines: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l.as_bytes());
        out.push(b'\n');
    }
    let digest = hex(&Sha256::digest(&out));
    out.extend_from_slice(format!("end {} {digest}\n", lines.len()).as_bytes());
    out
}

/// The lines of a manifest whose `end` line holds, or what is wrong with it.
pub(super) fn parse(text: &[u8]) -> Result<Vec<&str>, String> {
    let text = std::str::from_utf8(text).map_err(|_| "its MANIFEST is not text".to_string())?;
    let body_len = text.trim_end_matches('\n').rfind('\n').map_or(0, |i| i + 1);
    let (body, end) = text.split_at(body_len);
    let mut words = end.trim_end_matches('\n').split(' ');
    let (Some("end"), Some(count), Some(digest), None) = (words.next(), words.next(), words.next(), words.next())
    else {
        return Err("its MANIFEST has no end line".into());
    };
    if hex(&Sha256::digest(body.as_bytes())) != digest {
        return Err("its MANIFEST does not match its own checksum".into());
    }
    let lines: Vec<&str> = body.lines().collect();
    if count.parse::<usize>().ok() != Some(lines.len()) {
        return Err("its MANIFEST does not hold the number of lines its end line says".into());
    }
    Ok(lines)
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes outside `!`..`~`, and `%`, as `%XX`.
pub(super) fn escape(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &c in b {
        if c > b' ' && c < 0x7f && c != b'%' {
            s.push(c as char);
        } else {
            s.push_str(&format!("%{c:02X}"));
        }
    }
    s
}

/// For messages.
pub(super) fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `a/./b/` → `a/b`; `None` for a path with `..` or a leading `/` (which the unpacker
/// drops; here it is refused).
pub(super) fn normalize(path: &[u8]) -> Option<Vec<u8>> {
    if path.starts_with(b"/") {
        return None;
    }
    crate::rootfs::unpack::normalize(path)
}
