//! The image cache as containers use it: creating a container from an image, and the
//! commands that change the cache (pull, rm, import, publish). One lock order holds
//! everywhere: the cache's lock first, then a container's; so `image rm` cannot take
//! an image from under a create, and no two commands wait on each other.

use std::path::Path;

use super::{Created, Error, Notices, Source, Status, io_err};
use crate::base::lock::Lock;
use crate::base::paths::Paths;
use crate::image::cache::Cache;
use crate::image::cache::Meta;
use crate::image::obtain::{self, Request};
use crate::image::publish as image_publish;

/// Serialises cache changes (pull, rm, import, publish, create from an image) between
/// hutch processes.
fn cache_lock(paths: &Paths) -> Result<Lock, Error> {
    // A leading dot: no container name can reach this lock file.
    let p = paths.locks().join(".images.lock");
    Lock::acquire(&p).map_err(io_err("lock", p))
}

/// Where a container made from the cache gets its image.
pub enum ImageRef<'a> {
    /// A template's image: from the cache, else fetched or built into it.
    Template(&'a Request),
    /// A cached image, by alias or id.
    Cached(&'a str),
}

/// What `create` from an image needs besides the image.
pub struct CreateOptions<'a> {
    pub storage: Option<crate::storage::Kind>,
    pub privileged: bool,
    pub networks: &'a [String],
    pub ipv4: Option<&'a str>,
    /// Make it a dev box for this host user.
    pub devbox: Option<&'a super::devbox::HostUser>,
    /// Destroyed when it stops.
    pub ephemeral: bool,
}

/// Creates `name` from an image, holding the cache lock from the image's lookup to the
/// end of the create. `notices_now` is called as soon as the image is there (a fetch
/// or build can take long, and the user should know which image is used).
pub fn create(
    paths: &Paths,
    name: &str,
    image: ImageRef<'_>,
    opts: &CreateOptions<'_>,
    notices_now: &mut dyn FnMut(Notices),
) -> Result<Created, Error> {
    // Checked before anything is fetched: the name must be usable.
    crate::base::name::validate(name)?;
    let _cache = cache_lock(paths)?;
    let meta = match image {
        ImageRef::Template(req) => {
            let mut notices = Notices::new();
            let got = obtain::obtain(paths, req, &mut notices)?;
            if got.cached {
                notices.push(format!("using cached image {} ({})", got.meta.id, got.meta.describe()));
            }
            notices_now(notices);
            got.meta
        }
        ImageRef::Cached(image) => Cache::new(paths).resolve(image)?,
    };
    let source = Source::Image { meta: Box::new(meta), storage: opts.storage };
    super::create(paths, name, &source, opts)
}

/// Fetches or builds an image into the cache, again if it is there already.
pub fn pull(paths: &Paths, req: &Request) -> Result<(Meta, Notices), Error> {
    let _lock = cache_lock(paths)?;
    let mut notices = Notices::new();
    let got = obtain::obtain(paths, req, &mut notices)?;
    Ok((got.meta, notices))
}

/// Removes a cached image (the cache refuses while a container stands on it).
pub fn remove(paths: &Paths, image: &str) -> Result<Meta, Error> {
    let _lock = cache_lock(paths)?;
    let cache = Cache::new(paths);
    let meta = cache.resolve(image)?;
    cache.remove(&meta)?;
    Ok(meta)
}

/// Adds a root filesystem archive to the cache.
pub fn import(paths: &Paths, file: &Path, alias: Option<&str>) -> Result<(Meta, Notices), Error> {
    let _lock = cache_lock(paths)?;
    let mut notices = Notices::new();
    let meta = image_publish::import(paths, file, alias, &mut notices)?;
    Ok((meta, notices))
}

/// Turns the stopped container `name` into a cached image with `alias`.
pub fn publish(paths: &Paths, name: &str, alias: &str) -> Result<(Meta, Notices), Error> {
    super::require_exists(paths, name)?;
    let _cache = cache_lock(paths)?;
    let _lock = Lock::acquire(&paths.lock(name)).map_err(io_err("lock", paths.lock(name)))?;
    let status = super::observe(paths, name).status;
    if status != Status::Stopped {
        return Err(Error::WrongState { action: "publish", name: name.into(), state: super::Conflict::Up(status) });
    }
    let mut notices = Notices::new();
    let meta = image_publish::publish(paths, name, alias, &mut notices)?;
    Ok((meta, notices))
}
