//! image list, pull, rm, import, export; publish.

use super::{ImageCmd, PullArgs, notify};
use crate::base::lock::Lock;
use crate::base::output::{self, Format};
use crate::base::paths::Paths;
use crate::error::Error;
use crate::image::cache::Cache;
use crate::image::obtain::{self, Request};
use crate::image::publish;

pub fn request(reference: &str, pull: &PullArgs, refresh: bool) -> Result<Request, Error> {
    let mut req = Request::parse(reference)?;
    req.arch = pull.arch.clone();
    req.variant = pull.variant.clone();
    req.source = pull.source;
    req.server = pull.server.clone();
    req.mirror = pull.mirror.clone();
    req.refresh = refresh;
    Ok(req)
}

/// Serialises cache changes (pull, rm, import, publish) between hutch processes.
pub fn cache_lock(paths: &Paths) -> Result<Lock, Error> {
    // A leading dot: no container name can reach this lock file.
    let p = paths.locks().join(".images.lock");
    Lock::acquire(&p).map_err(|e| Error::cli(format!("lock {}", p.display()), e.to_string()))
}

pub fn run(paths: &Paths, cmd: ImageCmd) -> Result<u8, Error> {
    let cache = Cache::new(paths);
    let mut notices = Vec::new();
    match cmd {
        ImageCmd::List { format } => list(&cache, format)?,
        ImageCmd::Pull { reference, pull } => {
            let req = request(&reference, &pull, true)?;
            let _lock = cache_lock(paths)?;
            let got = obtain::obtain(paths, &req, &mut notices)?;
            notify(&notices);
            out!("Pulled {} as image {}", got.meta.describe(), got.meta.id);
        }
        ImageCmd::Rm { image } => {
            let _lock = cache_lock(paths)?;
            let meta = cache.resolve(&image)?;
            cache.remove(&meta)?;
            out!("Removed image {} ({})", meta.id, meta.describe());
        }
        ImageCmd::Import { file, alias } => {
            let _lock = cache_lock(paths)?;
            let meta = publish::import(paths, &file, alias.as_deref(), &mut notices)?;
            notify(&notices);
            out!("Imported {} as image {} ({})", file.display(), meta.id, meta.describe());
        }
        ImageCmd::Export { image, dir, level } => {
            let meta = cache.resolve(&image)?;
            let at = publish::export(paths, &meta, &dir, level)?;
            out!("Exported image {} to {}", meta.id, at.display());
            out!("Serve {} over HTTP and create with --server URL", dir.display());
        }
    }
    Ok(0)
}

pub fn publish(paths: &Paths, name: &str, alias: &str) -> Result<u8, Error> {
    crate::container::require_exists(paths, name)?;
    // The cache lock first, as `create -t` takes it: one order, no deadlock.
    let _cache = cache_lock(paths)?;
    let _lock = Lock::acquire(&paths.lock(name)).map_err(|e| Error::cli(format!("lock {name}"), e.to_string()))?;
    let status = crate::container::observe(paths, name).status;
    if status != crate::container::Status::Stopped {
        return Err(Error::with_hint(
            format!("publish {name}"),
            format!("it is {}", status.as_str()),
            format!("stop it first with `hutch stop {name}`"),
        ));
    }
    let mut notices = Vec::new();
    let meta = publish::publish(paths, name, alias, &mut notices)?;
    notify(&notices);
    out!("Published {name} as image {} (alias {alias}, {})", meta.id, meta.describe());
    Ok(0)
}

fn list(cache: &Cache<'_>, format: Format) -> Result<(), Error> {
    let images = cache.list()?;
    match format {
        Format::Json => {
            super::emit_json("images", &images)?;
        }
        Format::Text => {
            let rows: Vec<Vec<String>> = images
                .iter()
                .map(|m| {
                    vec![
                        m.id.clone(),
                        if m.aliases.is_empty() { "-".into() } else { m.aliases.join(",") },
                        m.distro.clone(),
                        m.release.clone(),
                        m.arch.clone(),
                        m.variant.clone(),
                        m.source.clone(),
                        m.build.clone(),
                    ]
                })
                .collect();
            super::emit(&output::table(
                &["ID", "ALIASES", "DISTRO", "RELEASE", "ARCH", "VARIANT", "SOURCE", "BUILD"],
                &rows,
            ))?;
        }
    }
    Ok(())
}
