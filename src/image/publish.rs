//! `hutch publish NAME ALIAS` (a stopped container becomes a cached image) and
//! `hutch image export ALIAS DIR` (a cached image becomes an image-server tree that
//! any static HTTP server can serve, for `hutch create --server` on another host).

use std::path::Path;

use super::cache::{self, Cache, Meta};
use super::{Error, index, pack};
use crate::base::fsutil;
use crate::base::paths::Paths;

/// Checks that no cached image already answers to `alias`.
pub(crate) fn check_alias(cache: &Cache<'_>, alias: &str) -> Result<(), Error> {
    crate::base::name::validate(alias).map_err(|e| Error::BadAlias { alias: alias.into(), message: e.to_string() })?;
    if let Some(other) = cache.list()?.into_iter().find(|m| m.aliases.iter().any(|a| a == alias) || m.id == alias) {
        return Err(Error::AliasTaken { alias: alias.into(), id: other.id });
    }
    Ok(())
}

/// Copies the root filesystem of the stopped container `name` into a new image.
pub(crate) fn publish(paths: &Paths, name: &str, alias: &str, notices: &mut Vec<String>) -> Result<Meta, Error> {
    let cache = Cache::new(paths);
    check_alias(&cache, alias)?;
    let dir = paths.container(name);
    let config = crate::config::Config::load(&paths.config(name))
        .map_err(|e| Error::Build { what: format!("publish {name}"), message: e.to_string() })?;
    let staging = cache.stage(notices)?;
    let dst = staging.rootfs();
    let copy = |src: &Path| {
        crate::rootfs::copy::copy_tree(src, &dst, true)
            .map(|_| ())
            .map_err(|e| format!("failed to copy {}: {e}", src.display()))
    };
    match config.layers(paths, &dir) {
        Some(layers) => {
            let view = config.rootfs_path(&dir);
            crate::storage::overlay::with_merged(&layers, &view, copy)?;
        }
        None => copy(&config.rootfs_path(&dir))
            .map_err(|message| Error::Build { what: format!("publish {name}"), message })?,
    }
    let (distro, release) = cache::os_release(&dst).unwrap_or_else(|| ("unknown".into(), "unknown".into()));
    let created = cache::now();
    let meta = Meta {
        id: cache::new_id(None),
        distro,
        release,
        arch: super::template::host_arch().to_string(),
        variant: "default".into(),
        build: cache::build_stamp(created),
        source: "publish".into(),
        origin: name.to_string(),
        sha256: None,
        created,
        aliases: vec![alias.to_string()],
    };
    cache.commit(staging, &meta)?;
    Ok(meta)
}

/// Writes image `meta` into the image-server tree at `out`, adding it to the tree's
/// index (other images already there stay listed). Returns the image's directory.
pub(crate) fn export(paths: &Paths, meta: &Meta, out: &Path, level: u32) -> Result<std::path::PathBuf, Error> {
    let io = |action: &'static str, p: &Path| {
        let path = p.to_path_buf();
        move |source| Error::Io { action, path, source }
    };
    // Each level must be one plain name: the metadata came from a server or a rootfs.
    if let Some((field, value)) = meta.unsafe_field() {
        return Err(Error::UnsafeField { field, value: value.to_string() });
    }
    let rel_path = format!("/images/{}/{}/{}/{}/{}/", meta.distro, meta.release, meta.arch, meta.variant, meta.build);
    let image_dir = out.join(rel_path.trim_matches('/'));
    if image_dir.exists() {
        fsutil::remove_tree(&image_dir).map_err(io("replace", &image_dir))?;
    }
    std::fs::create_dir_all(&image_dir).map_err(io("create", &image_dir))?;
    let rootfs_xz = image_dir.join("rootfs.tar.xz");
    pack::pack_xz(&paths.image_rootfs(&meta.id), &rootfs_xz, level).map_err(io("pack", &rootfs_xz))?;
    let meta_xz = image_dir.join("meta.tar.xz");
    write_meta_tar(meta, &meta_xz).map_err(io("write", &meta_xz))?;
    let mut sums = String::new();
    for f in [&rootfs_xz, &meta_xz] {
        let hex = super::fetch::sha256_file(f).map_err(io("read", f))?;
        sums.push_str(&format!("{hex}  {}\n", f.file_name().unwrap().to_string_lossy()));
    }
    let sums_path = image_dir.join("SHA256SUMS");
    fsutil::atomic_write(&sums_path, sums.as_bytes(), 0o644).map_err(io("write", &sums_path))?;

    let meta_dir = out.join("meta/1.0");
    std::fs::create_dir_all(&meta_dir).map_err(io("create", &meta_dir))?;
    let index_path = meta_dir.join("index-system");
    let mut entries = match std::fs::read_to_string(&index_path) {
        Ok(t) => index::parse(&t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::Io { action: "read", path: index_path, source: e }),
    };
    entries.retain(|e| {
        !(e.dist == meta.distro
            && e.release == meta.release
            && e.arch == meta.arch
            && e.variant == meta.variant
            && e.build == meta.build)
    });
    entries.push(index::Entry {
        dist: meta.distro.clone(),
        release: meta.release.clone(),
        arch: meta.arch.clone(),
        variant: meta.variant.clone(),
        build: meta.build.clone(),
        path: rel_path,
    });
    let text = index::format(&entries);
    for name in ["index-system", "index-user"] {
        let p = meta_dir.join(name);
        fsutil::atomic_write(&p, text.as_bytes(), 0o644).map_err(io("write", &p))?;
    }
    Ok(image_dir)
}

/// meta.tar.xz as LXC's download template reads it: the container config to include
/// (for LXC users), a creation message and an expiry 30 days out.
fn write_meta_tar(meta: &Meta, dest: &Path) -> std::io::Result<()> {
    let expiry = cache::now() + 30 * 86400;
    let lxc_arch = match meta.arch.as_str() {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        other => other,
    };
    let config = format!("lxc.include = LXC_TEMPLATE_CONFIG/common.conf\nlxc.arch = {lxc_arch}\n");
    let config_user = format!("{config}lxc.include = LXC_TEMPLATE_CONFIG/userns.conf\n");
    let message = format!("{} {} exported by hutch from image {}\n", meta.distro, meta.release, meta.id);
    let files: [(&str, String); 4] = [
        ("config", config),
        ("config-user", config_user),
        ("create-message", message),
        ("expiry", format!("{expiry}\n")),
    ];
    let enc = liblzma::write::XzEncoder::new(std::fs::File::create_new(dest)?, 6);
    let mut b = tar::Builder::new(enc);
    for (name, text) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(meta.created);
        b.append_data(&mut h, name, text.as_bytes())?;
    }
    b.into_inner()?.finish()?.sync_all()
}

/// `hutch image import FILE`: a rootfs archive becomes a cached image.
pub(crate) fn import(
    paths: &Paths,
    file: &Path,
    alias: Option<&str>,
    notices: &mut Vec<String>,
) -> Result<Meta, Error> {
    let cache = Cache::new(paths);
    if let Some(a) = alias {
        check_alias(&cache, a)?;
    }
    let md = std::fs::metadata(file).map_err(|e| Error::Io { action: "read", path: file.into(), source: e })?;
    if !md.is_file() {
        return Err(Error::Rootfs(crate::rootfs::Error::Unpack {
            archive: file.into(),
            message: "it is not a regular file".into(),
        }));
    }
    // Copied into the (root-only) staging directory while hashed, and unpacked from
    // that copy: the bytes unpacked are the bytes hashed, whatever happens to FILE.
    let staging = cache.stage(notices)?;
    let copy = staging.dir.join("archive");
    let sha = copy_hashing(file, &copy)?;
    if let Some(existing) = cache.list()?.into_iter().find(|m| m.sha256.as_deref() == Some(sha.as_str())) {
        notices.push(format!("{} is already cached as image {}", file.display(), existing.id));
        let mut existing = existing;
        if let Some(a) = alias {
            existing.aliases.push(a.to_string());
            cache.save(&existing)?;
        }
        return Ok(existing);
    }
    super::obtain::make_rootfs_dir(&staging.rootfs())?;
    super::obtain::unpack_into(&copy, &staging)?;
    std::fs::remove_file(&copy).map_err(|e| Error::Io { action: "remove", path: copy.clone(), source: e })?;
    crate::rootfs::detect_init(&staging.rootfs()).map_err(|e| match e {
        crate::rootfs::Error::NoInit { tried, .. } => crate::rootfs::Error::NoInit { path: file.into(), tried },
        other => other,
    })?;
    let (distro, release) =
        cache::os_release(&staging.rootfs()).unwrap_or_else(|| ("unknown".into(), "unknown".into()));
    let created = cache::now();
    let meta = Meta {
        id: cache::new_id(Some(&sha)),
        distro,
        release,
        arch: super::template::host_arch().to_string(),
        variant: "default".into(),
        build: cache::build_stamp(created),
        source: "import".into(),
        origin: file.display().to_string(),
        sha256: Some(sha),
        created,
        aliases: alias.map(|a| vec![a.to_string()]).unwrap_or_default(),
    };
    cache.commit(staging, &meta)?;
    Ok(meta)
}

/// Copies `file` to the new file `dest`; returns the SHA-256 of what was copied.
fn copy_hashing(file: &Path, dest: &Path) -> Result<String, Error> {
    let io = |action: &'static str, p: &Path| {
        let path = p.to_path_buf();
        move |source| Error::Io { action, path, source }
    };
    let mut src = std::fs::File::open(file).map_err(io("open", file))?;
    let out = std::fs::File::create_new(dest).map_err(io("create", dest))?;
    let mut w = index::Sha256Writer::new(std::io::BufWriter::with_capacity(1 << 20, out));
    std::io::copy(&mut src, &mut w).map_err(io("copy", file))?;
    let (buf, sha) = w.finish();
    buf.into_inner().map_err(|e| Error::Io { action: "write", path: dest.into(), source: e.into_error() })?;
    Ok(sha)
}
