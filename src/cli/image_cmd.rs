//! image list, pull, rm, import, export; publish.

use super::{ImageCmd, PullArgs, notify};
use crate::base::output::{self, Format};
use crate::base::paths::Paths;
use crate::container::images;
use crate::error::Error;
use crate::image::cache::Cache;
use crate::image::obtain::Request;
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

pub fn run(paths: &Paths, cmd: ImageCmd) -> Result<u8, Error> {
    match cmd {
        ImageCmd::List { format } => list(&Cache::new(paths), format)?,
        ImageCmd::Pull { reference, pull } => {
            let (meta, notices) = images::pull(paths, &request(&reference, &pull, true)?)?;
            notify(&notices);
            out!("Pulled {} as image {}", meta.describe(), meta.id);
        }
        ImageCmd::Rm { image } => {
            let meta = images::remove(paths, &image)?;
            out!("Removed image {} ({})", meta.id, meta.describe());
        }
        ImageCmd::Import { file, alias } => {
            let (meta, notices) = images::import(paths, &file, alias.as_deref())?;
            notify(&notices);
            out!("Imported {} as image {} ({})", file.display(), meta.id, meta.describe());
        }
        ImageCmd::Export { image, dir, level } => {
            let meta = Cache::new(paths).resolve(&image)?;
            let at = publish::export(paths, &meta, &dir, level)?;
            out!("Exported image {} to {}", meta.id, at.display());
            out!("Serve {} over HTTP and create with --server URL", dir.display());
        }
    }
    Ok(0)
}

pub fn publish(paths: &Paths, name: &str, alias: &str) -> Result<u8, Error> {
    let (meta, notices) = images::publish(paths, name, alias)?;
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
