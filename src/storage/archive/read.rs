//! Reading an archive: `verify` (everything checked, nothing written), then `extract`
//! for each tree.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::fd::OwnedFd;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::manifest::{self, Seen, show};
use super::{Error, FORMAT, Header, MANIFEST_MAX, Part, SMALL_MAX, Tree, classify, io_err};
use crate::rootfs::unpack::{Compression as Sniffed, Placement, Stats, sniff, unpack_stream};

/// What `verify` found: the archive is whole and what it says it is.
#[derive(Debug)]
pub struct Verified {
    pub header: Header,
    pub config: String,
    /// Each snapshot's configuration, by name.
    pub snapshot_configs: BTreeMap<String, String>,
    /// The file data of all the trees, in bytes.
    pub data_bytes: u64,
    pub entries: u64,
    digest: Vec<u8>,
}

/// Hashes what is read through it.
struct Hashing<'a> {
    file: &'a File,
    hash: &'a RefCell<Sha256>,
}

impl Read for Hashing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.hash.borrow_mut().update(&buf[..n]);
        Ok(n)
    }
}

/// The decompressed stream of the file from its start, hashing the raw bytes.
fn open<'a>(file: &'a File, path: &Path, hash: &'a RefCell<Sha256>) -> Result<Box<dyn Read + 'a>, Error> {
    let mut f = file;
    f.seek(io::SeekFrom::Start(0)).map_err(io_err("read", path))?;
    let mut head = [0u8; 6];
    let n = file.read_at_start(&mut head).map_err(io_err("read", path))?;
    let raw = io::BufReader::with_capacity(1 << 20, Hashing { file, hash });
    Ok(match sniff(&head[..n]) {
        Sniffed::None => Box::new(raw),
        Sniffed::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(raw)),
        Sniffed::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(raw)),
        Sniffed::Zstd => Box::new(zstd::Decoder::with_buffer(raw).map_err(io_err("decompress", path))?),
    })
}

trait ReadAtStart {
    fn read_at_start(&self, buf: &mut [u8]) -> io::Result<usize>;
}

impl ReadAtStart for File {
    fn read_at_start(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match std::os::unix::fs::FileExt::read_at(self, &mut buf[n..], n as u64)? {
                0 => break,
                k => n += k,
            }
        }
        Ok(n)
    }
}

/// Reads the rest of the stream, then the rest of the file, so the digest covers all.
fn drain(mut stream: Box<dyn Read + '_>, file: &File, hash: &RefCell<Sha256>) -> io::Result<()> {
    io::copy(&mut stream, &mut io::sink())?;
    drop(stream);
    io::copy(&mut Hashing { file, hash }, &mut io::sink())?;
    Ok(())
}

/// Checks the whole archive at `path` (open as `file`) and writes nothing.
pub fn verify(file: &File, path: &Path) -> Result<Verified, Error> {
    let corrupt = |message: String| Error::Corrupt { path: path.to_path_buf(), message };
    let hash = RefCell::new(Sha256::new());
    let stream = open(file, path, &hash)?;
    let mut c = Checker::default();
    let keep = |p: &[u8]| match classify(p) {
        Some(Part::Header | Part::Config | Part::SnapshotConfig(_)) => Some(SMALL_MAX),
        Some(Part::Manifest) => Some(MANIFEST_MAX),
        _ => None,
    };
    let mut stream = stream;
    let scanned = manifest::scan(&mut stream, &keep, &mut |seen| c.entry(seen));
    if let Err(message) = scanned {
        return Err(match c.version {
            Some(found) => Error::Version { path: path.to_path_buf(), found },
            None => corrupt(message),
        });
    }
    drain(stream, file, &hash).map_err(|e| corrupt(format!("it is cut short or corrupt: {e}")))?;
    let v = c.finish().map_err(corrupt)?;
    Ok(Verified { digest: hash.into_inner().finalize().to_vec(), ..v })
}

/// Unpacks `tree` of a verified archive into the directory `root` (at `dst`, for
/// messages), under the rules of `--from-tar`. Fails if the file changed since `verify`.
pub fn extract(file: &File, path: &Path, v: &Verified, tree: &Tree, root: OwnedFd, dst: &Path) -> Result<Stats, Error> {
    let hash = RefCell::new(Sha256::new());
    let mut stream = open(file, path, &hash)?;
    let prefix = tree.prefix().into_bytes();
    let place = move |p: &[u8]| -> Option<Vec<u8>> {
        if p == prefix.as_slice() {
            return Some(Vec::new());
        }
        p.strip_prefix(prefix.as_slice())?.strip_prefix(b"/").map(|r| r.to_vec())
    };
    let placement = Placement { label: path, dst, to_host: false, place: &place, max_bytes: None };
    let stats = unpack_stream(&mut stream, root, &placement)?;
    drain(stream, file, &hash).map_err(io_err("read", path))?;
    if hash.into_inner().finalize().as_slice() != v.digest.as_slice() {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            message: "it changed while it was being imported".into(),
        });
    }
    Ok(stats)
}

/// The checks of `verify`, entry by entry.
#[derive(Default)]
struct Checker {
    header: Option<Header>,
    /// The format of a header this hutch cannot read.
    version: Option<u32>,
    config: Option<String>,
    snapshot_configs: BTreeMap<String, String>,
    /// The trees whose root entry was seen.
    roots: Vec<Tree>,
    lines: Vec<String>,
    manifest: Option<Vec<u8>>,
    data_bytes: u64,
}

impl Checker {
    fn entry(&mut self, seen: Seen) -> Result<(), String> {
        let Seen { path, raw_path, kind, size, link, line, data } = seen;
        let name = show(&raw_path);
        if self.manifest.is_some() {
            return Err(format!("{name} follows the MANIFEST, which must come last"));
        }
        let path = path.ok_or_else(|| format!("{name}: an absolute path or one with `..`"))?;
        let part = classify(&path).ok_or_else(|| format!("{name}: no entry of that name belongs in it"))?;
        if self.header.is_none() && part != Part::Header {
            return Err(format!("it does not start with {}: it is not a hutch export", super::HEADER));
        }
        let is_file = matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous);
        if !matches!(part, Part::InTree(..)) && !is_file {
            return Err(format!("{name} is not a file"));
        }
        match part {
            Part::Header => {
                if self.header.is_some() {
                    return Err(format!("it holds {name} twice"));
                }
                self.header = Some(self.header(data.unwrap_or_default())?);
            }
            Part::Config => {
                let text = String::from_utf8(data.unwrap_or_default()).map_err(|_| format!("{name} is not text"))?;
                if self.config.replace(text).is_some() {
                    return Err(format!("it holds {name} twice"));
                }
            }
            Part::SnapshotConfig(snap) => {
                self.listed(&snap)?;
                let text = String::from_utf8(data.unwrap_or_default()).map_err(|_| format!("{name} is not text"))?;
                if self.snapshot_configs.insert(snap, text).is_some() {
                    return Err(format!("it holds {name} twice"));
                }
            }
            Part::Manifest => {
                self.manifest = Some(data.unwrap_or_default());
                return Ok(());
            }
            Part::InTree(tree, rest) => {
                if let Tree::Snapshot(s) = &tree {
                    self.listed(s)?;
                }
                if rest.is_empty() {
                    if kind != tar::EntryType::Directory {
                        return Err(format!("{name} is not a directory"));
                    }
                    self.roots.push(tree.clone());
                } else if !self.roots.contains(&tree) {
                    return Err(format!("{name} comes before the root of its tree"));
                }
                if kind == tar::EntryType::Link {
                    let target = link.as_deref().and_then(manifest::normalize);
                    let same_tree = target.as_deref().and_then(classify).is_some_and(|p| match p {
                        Part::InTree(t, r) => t == tree && !r.is_empty(),
                        _ => false,
                    });
                    if !same_tree {
                        return Err(format!("{name}: a hard link to something outside its own tree"));
                    }
                }
                if is_file {
                    self.data_bytes = self.data_bytes.saturating_add(size);
                }
            }
        }
        if self.lines.len() >= 10_000_000 {
            return Err("it holds more entries than any root filesystem".into());
        }
        self.lines.push(line);
        Ok(())
    }

    fn header(&mut self, data: Vec<u8>) -> Result<Header, String> {
        let text = String::from_utf8(data).map_err(|_| format!("{} is not text", super::HEADER))?;
        #[derive(serde::Deserialize)]
        struct Version {
            format: u32,
        }
        let v: Version = toml::from_str(&text).map_err(|e| format!("{}: {}", super::HEADER, e.message()))?;
        if v.format != FORMAT {
            self.version = Some(v.format);
            return Err(format!("format {}", v.format));
        }
        let h: Header = toml::from_str(&text).map_err(|e| format!("{}: {}", super::HEADER, e.message()))?;
        crate::base::name::validate(&h.name).map_err(|e| format!("{}: the name {:?}: {e}", super::HEADER, h.name))?;
        let mut names: Vec<&str> = Vec::new();
        for s in &h.snapshots {
            crate::base::name::validate(&s.name)
                .map_err(|e| format!("{}: the snapshot name {:?}: {e}", super::HEADER, s.name))?;
            if names.contains(&s.name.as_str()) {
                return Err(format!("{}: snapshot {} is listed twice", super::HEADER, s.name));
            }
            names.push(&s.name);
        }
        Ok(h)
    }

    fn listed(&self, snap: &str) -> Result<(), String> {
        let h = self.header.as_ref().expect("the header comes first");
        if h.snapshots.iter().any(|s| s.name == snap) {
            Ok(())
        } else {
            Err(format!("it holds snapshot {snap}, which {} does not list", super::HEADER))
        }
    }

    fn finish(self) -> Result<Verified, String> {
        let header = self.header.ok_or_else(|| "it is empty".to_string())?;
        let manifest = self.manifest.ok_or_else(|| "it ends before its MANIFEST: it is cut short".to_string())?;
        let listed = manifest::parse(&manifest)?;
        for (i, (want, got)) in listed.iter().zip(&self.lines).enumerate() {
            if want != got {
                let what = got.rsplit(' ').next().unwrap_or_default();
                return Err(format!("entry {} ({what}) is not what its MANIFEST says it is", i + 1));
            }
        }
        if listed.len() != self.lines.len() {
            return Err(format!("its MANIFEST lists {} entries and it holds {}", listed.len(), self.lines.len()));
        }
        let config = self.config.ok_or_else(|| format!("it has no {}", super::CONFIG))?;
        if !self.roots.contains(&Tree::Rootfs) {
            return Err(format!("it has no {}", super::ROOTFS));
        }
        for s in &header.snapshots {
            if !self.snapshot_configs.contains_key(&s.name) || !self.roots.contains(&Tree::Snapshot(s.name.clone())) {
                return Err(format!("snapshot {} is listed but not all there", s.name));
            }
        }
        Ok(Verified {
            header,
            config,
            snapshot_configs: self.snapshot_configs,
            data_bytes: self.data_bytes,
            entries: self.lines.len() as u64,
            digest: Vec::new(),
        })
    }
}
