//! `hutch image pull` and the image half of `hutch create -t`: find a distro release
//! in the cache, or fetch or build it from the template's sources in order.

use std::path::Path;

use super::cache::{self, Cache, Meta, Staging};
use super::template::{self, MirrorFrom, Release, Source, Template};
use super::{Error, build, fetch, index, mirror};
use crate::base::paths::Paths;

#[derive(Debug, Clone, Default)]
pub struct Request {
    pub distro: String,
    pub release: Option<String>,
    pub arch: Option<String>,
    pub variant: Option<String>,
    /// Only this kind of source.
    pub source: Option<template::SourceKind>,
    pub server: Option<String>,
    pub mirror: Option<String>,
    /// Fetch again even when the cache has the image.
    pub refresh: bool,
}

impl Request {
    /// From `DISTRO[:RELEASE]`.
    pub fn parse(reference: &str) -> Result<Request, Error> {
        let r = template::parse_ref(reference)?;
        Ok(Request { distro: r.distro, release: r.release, ..Request::default() })
    }
}

pub struct Obtained {
    pub meta: Meta,
    /// Whether it came from the cache (nothing was downloaded or built).
    pub cached: bool,
}

pub(crate) fn obtain(paths: &Paths, req: &Request, notices: &mut Vec<String>) -> Result<Obtained, Error> {
    let tpl = template::load(&req.distro, Some(Path::new(template::OVERRIDE_DIR)))?;
    let rel = tpl.release(req.release.as_deref())?;
    let arch = match &req.arch {
        Some(a) => template::normalize_arch(a)?,
        None => template::host_arch(),
    };
    let variant = req.variant.as_deref().unwrap_or("default");
    let all = tpl.sources_for(rel);
    // --server means an image server unless --source says otherwise.
    let image_server = req.server.is_some().then_some(template::SourceKind::ImageServer);
    let wanted = req.source.or(image_server).map(template::SourceKind::as_str);
    let sources: Vec<&Source> = all.iter().filter(|s| wanted.is_none_or(|k| s.kind() == k)).collect();
    if sources.is_empty() {
        let kinds: Vec<&str> = all.iter().map(|s| s.kind()).collect();
        return Err(Error::NoSource {
            image: format!("{}:{}", tpl.distro, rel.name),
            message: format!(
                "the template has no {} source (it has: {})",
                wanted.unwrap_or("usable"),
                kinds.join(", ")
            ),
        });
    }
    // A cached image counts only if one of these sources made it (never a published
    // or imported one), and, with --server, that server.
    if !req.refresh {
        let server = req.server.as_deref().map(|s| s.trim_end_matches('/'));
        let accept =
            |m: &Meta| sources.iter().any(|s| s.kind() == m.source) && server.is_none_or(|s| m.origin.starts_with(s));
        if let Some(meta) = Cache::new(paths).find(&tpl.distro, &rel.name, arch, variant, accept)? {
            return Ok(Obtained { meta, cached: true });
        }
    }
    let settings = crate::base::settings::load(paths).map_err(|message| Error::Settings { message })?;
    let ctx = Ctx { paths, req, tpl: &tpl, rel, arch, variant, settings };
    let mut skipped = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        match ctx.from(source, notices) {
            Ok(meta) => return Ok(Obtained { meta, cached: false }),
            Err(e) if skippable(&e) && i + 1 < sources.len() => {
                notices.push(format!("{} source skipped: {e}", source.kind()));
                skipped.push(format!("{}: {e}", source.kind()));
            }
            Err(e) if skipped.is_empty() || !skippable(&e) => return Err(e),
            Err(e) => {
                skipped.push(format!("{}: {e}", source.kind()));
                return Err(Error::NoSource {
                    image: format!("{}:{}", tpl.distro, rel.name),
                    message: format!("every source failed:\n  {}", skipped.join("\n  ")),
                });
            }
        }
    }
    unreachable!("the loop returns on its last source")
}

/// Errors that mean "this source cannot be used here", so the next one is tried. A
/// server that answers with bad data (a wrong checksum) is never skipped over.
fn skippable(e: &Error) -> bool {
    match e {
        Error::Fetch { .. } => fetch::unreachable(e),
        Error::MissingProgram { .. } | Error::NoMirror { .. } | Error::NotInIndex { .. } => true,
        _ => false,
    }
}

struct Ctx<'a> {
    paths: &'a Paths,
    req: &'a Request,
    tpl: &'a Template,
    rel: &'a Release,
    arch: &'static str,
    variant: &'a str,
    settings: crate::base::settings::Settings,
}

impl Ctx<'_> {
    fn from(&self, source: &Source, notices: &mut Vec<String>) -> Result<Meta, Error> {
        let cache = Cache::new(self.paths);
        match source {
            Source::ImageServer { dist, variant } => {
                // --variant wins over the template's.
                let variant = if self.req.variant.is_some() { self.variant } else { variant.as_str() };
                self.image_server(&cache, dist, variant, notices)
            }
            Source::Debootstrap { mirror: from, variant, components, include, exclude, .. } => {
                let mirror = self.mirror(*from)?;
                let staging = self.staging(&cache, notices)?;
                notices_now(
                    notices,
                    format!("building {}:{} with debootstrap from {mirror}", self.tpl.distro, self.rel.name),
                );
                build::debootstrap(
                    &build::Debootstrap {
                        suite: &self.rel.name,
                        mirror: &mirror,
                        arch: self.arch,
                        variant: variant.as_deref(),
                        components,
                        include,
                        exclude,
                    },
                    &staging.rootfs(),
                    &staging.dir.join("build.log"),
                )?;
                self.commit(&cache, staging, "debootstrap", &mirror, None, None)
            }
            Source::Dnf { mirror: from, host_ids, repos, packages } => {
                let rpm_arch = source.arch_for(self.arch).unwrap_or_else(|| self.arch.to_string());
                let repos: Vec<(String, String)> = match self.mirror(*from) {
                    Ok(m) => repos
                        .iter()
                        .map(|r| (r.name.clone(), template::expand(&r.baseurl, &m, self.rel, &rpm_arch)))
                        .collect(),
                    Err(_) if *from == MirrorFrom::HostDnf && host_is(host_ids) => Vec::new(),
                    Err(e) => return Err(e),
                };
                let staging = self.staging(&cache, notices)?;
                notices_now(notices, format!("building {}:{} with dnf", self.tpl.distro, self.rel.name));
                build::dnf(
                    &build::Dnf { releasever: self.rel.version(), arch: &rpm_arch, repos: &repos, packages },
                    &staging.rootfs(),
                    &staging.dir.join("build.log"),
                )?;
                let origin = repos.first().map(|r| r.1.clone()).unwrap_or_else(|| "the host's dnf repositories".into());
                self.commit(&cache, staging, "dnf", &origin, None, None)
            }
            Source::Busybox { paths } => {
                let staging = self.staging(&cache, notices)?;
                let origin = build::busybox(paths, &staging.rootfs())?;
                self.commit(&cache, staging, "busybox", &origin, None, None)
            }
            Source::Tar { mirror: from, url, checksums, .. } => {
                let mirror = self.mirror(*from)?;
                let arch = source.arch_for(self.arch).ok_or_else(|| Error::NoSource {
                    image: format!("{}:{}", self.tpl.distro, self.rel.name),
                    message: format!("the tar source has no build for {}", self.arch),
                })?;
                let url = template::expand(url, &mirror, self.rel, &arch);
                let sums_url = template::expand(checksums, &mirror, self.rel, &arch);
                let file = url.rsplit('/').next().unwrap_or("rootfs.tar").to_string();
                self.download_and_unpack(&cache, &url, &sums_url, &file, "tar", None, notices)
            }
        }
    }

    fn image_server(
        &self,
        cache: &Cache<'_>,
        dist: &str,
        variant: &str,
        notices: &mut Vec<String>,
    ) -> Result<Meta, Error> {
        let server = self
            .req
            .server
            .as_deref()
            .or(self.settings.images.server.as_deref())
            .unwrap_or(index::DEFAULT_SERVER)
            .trim_end_matches('/');
        let dist = if dist.is_empty() { self.tpl.distro.as_str() } else { dist };
        let index_url = index::index_url(server);
        let entries = index::parse_from(&index_url, &fetch::text(&index_url)?)?;
        let names = std::iter::once(&self.rel.name).chain(self.rel.aliases.iter());
        let entry =
            names.filter_map(|r| index::select(&entries, dist, r, self.arch, variant)).next().ok_or_else(|| {
                Error::NotInIndex {
                    server: server.to_string(),
                    image: format!("{dist};{};{};{variant}", self.rel.name, self.arch),
                    available: index::releases_for(&entries, dist, self.arch).join(", "),
                }
            })?;
        let sums_url = index::url_join(server, &entry.path, "SHA256SUMS");
        let url = index::url_join(server, &entry.path, "rootfs.tar.xz");
        self.download_and_unpack(cache, &url, &sums_url, "rootfs.tar.xz", "image-server", Some(&entry.build), notices)
    }

    #[allow(clippy::too_many_arguments)]
    fn download_and_unpack(
        &self,
        cache: &Cache<'_>,
        url: &str,
        sums_url: &str,
        file: &str,
        kind: &str,
        build: Option<&str>,
        notices: &mut Vec<String>,
    ) -> Result<Meta, Error> {
        let sums = index::parse_sha256sums(sums_url, &fetch::text(sums_url)?)?;
        let expected = sums
            .get(file)
            .ok_or_else(|| Error::Checksum {
                url: url.to_string(),
                message: format!("{sums_url} does not list {file}"),
            })?
            .clone();
        let staging = self.staging(cache, notices)?;
        let archive = staging.dir.join(file);
        let room = std::fs::File::open(&staging.dir).and_then(crate::rootfs::unpack::free_bytes).unwrap_or(u64::MAX);
        let got = fetch::download(url, &archive, &format!("{}:{}", self.tpl.distro, self.rel.name), room)?;
        if got != expected {
            return Err(Error::Checksum {
                url: url.to_string(),
                message: format!("its SHA-256 is {got}, but {sums_url} says {expected}"),
            });
        }
        unpack_into(&archive, &staging)?;
        std::fs::remove_file(&archive).map_err(|e| Error::Io { action: "remove", path: archive, source: e })?;
        let origin = url.rsplit_once('/').map(|(base, _)| base).unwrap_or(url).to_string();
        self.commit(cache, staging, kind, &origin, Some(got), build)
    }

    fn staging(&self, cache: &Cache<'_>, notices: &mut Vec<String>) -> Result<Staging, Error> {
        let staging = cache.stage(notices)?;
        make_rootfs_dir(&staging.rootfs())?;
        Ok(staging)
    }

    fn commit(
        &self,
        cache: &Cache<'_>,
        staging: Staging,
        source: &str,
        origin: &str,
        sha256: Option<String>,
        build: Option<&str>,
    ) -> Result<Meta, Error> {
        let created = cache::now();
        let meta = Meta {
            id: cache::new_id(sha256.as_deref()),
            distro: self.tpl.distro.clone(),
            release: self.rel.name.clone(),
            arch: self.arch.to_string(),
            variant: self.variant.to_string(),
            build: build.map(str::to_string).unwrap_or_else(|| cache::build_stamp(created)),
            source: source.to_string(),
            origin: origin.to_string(),
            sha256,
            created,
            aliases: Vec::new(),
        };
        if self.paths.image(&meta.id).exists() {
            // The same archive was unpacked before (a pull with --refresh): the same
            // image, if the whole checksum agrees.
            let existing = cache.resolve(&meta.id)?;
            if existing.sha256 != meta.sha256 {
                return Err(Error::Checksum {
                    url: meta.origin.clone(),
                    message: format!("cached image {} has the same id but another checksum", meta.id),
                });
            }
            return Ok(existing);
        }
        cache.commit(staging, &meta)?;
        Ok(meta)
    }

    /// The mirror for a source: `--mirror`, else hutch.toml's, else the host's
    /// package configuration.
    fn mirror(&self, from: MirrorFrom) -> Result<String, Error> {
        if let Some(m) = self.req.mirror.as_ref().or(self.settings.mirrors.get(&self.tpl.distro)) {
            return Ok(m.clone());
        }
        let found = match from {
            MirrorFrom::HostApt => {
                mirror::from_apt(Path::new("/etc/apt"), &self.tpl.apt_suites(), Some(self.arch)).map(|m| m.uri)
            }
            MirrorFrom::HostDnf | MirrorFrom::Config => None,
        };
        found.ok_or_else(|| Error::NoMirror { distro: self.tpl.distro.clone() })
    }
}

fn host_is(ids: &[String]) -> bool {
    cache::os_release(Path::new("/")).is_some_and(|(id, _)| ids.contains(&id))
}

/// Prints a notice at once (long operations follow), and keeps nothing to repeat.
fn notices_now(_notices: &mut [String], msg: String) {
    eprintln!("hutch: {msg}");
}

/// The directory an image's rootfs is built in: a btrfs subvolume when the cache is on
/// btrfs (so containers can be snapshots of it), a plain directory otherwise.
pub(crate) fn make_rootfs_dir(path: &Path) -> Result<(), Error> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    if crate::storage::btrfs::is_btrfs(parent) {
        crate::storage::btrfs::create_subvolume(path)?;
    } else {
        std::fs::create_dir(path).map_err(|e| Error::Io { action: "create", path: path.into(), source: e })?;
    }
    Ok(())
}

/// Unpacks an archive into a staging directory's rootfs, with a progress bar.
pub(crate) fn unpack_into(archive: &Path, staging: &Staging) -> Result<(), Error> {
    let total = std::fs::metadata(archive).map(|m| m.len()).ok();
    let progress = super::progress::Progress::bytes("unpacking", total);
    let opts = crate::rootfs::unpack::Options { privileged: false, max_bytes: None };
    crate::rootfs::unpack::unpack_with(archive, &staging.rootfs(), &opts, Some(&mut |n| progress.set(n)))?;
    progress.finish();
    Ok(())
}
