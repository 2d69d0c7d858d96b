//! create, start, stop, restart, kill, freeze, destroy.

use super::{CreateArgs, notify};
use crate::container::{self, Source, Status};
use crate::error::Error;
use crate::base::paths::Paths;

pub fn create(paths: &Paths, args: CreateArgs) -> Result<(), Error> {
    let name = args.name.as_str();
    let storage = args
        .storage
        .as_deref()
        .map(crate::storage::Kind::parse)
        .transpose()
        .map_err(|e| Error::from(crate::container::Error::from(e)))?;
    notify(&container::collect_leftovers(paths));
    let mut notices = Vec::new();
    // Held through the whole create when the rootfs comes from the image cache, so
    // `image rm` cannot take the image from under it (cache lock first, then the
    // container's, as everywhere).
    let _cache = match args.template.is_some() || args.image.is_some() {
        true => Some(super::image_cmd::cache_lock(paths)?),
        false => None,
    };
    let source = if let Some(d) = args.from_dir {
        Source::Dir(d)
    } else if let Some(t) = args.from_tar {
        Source::Tar(t)
    } else if let Some(reference) = &args.template {
        // Checked before anything is fetched: the name must be usable.
        crate::base::name::validate(name)?;
        let req = super::image_cmd::request(reference, &args.pull, false)?;
        let got = crate::image::obtain::obtain(paths, &req, &mut notices)?;
        notify(&std::mem::take(&mut notices));
        if got.cached {
            eprintln!("hutch: using cached image {} ({})", got.meta.id, got.meta.describe());
        }
        Source::Image { meta: Box::new(got.meta), storage }
    } else if let Some(image) = &args.image {
        let meta = crate::image::cache::Cache::new(paths).resolve(image)?;
        Source::Image { meta: Box::new(meta), storage }
    } else {
        return Err(Error::cli(format!("create {name}"), "give one of -t, --image, --from-dir and --from-tar"));
    };
    if storage.is_some() && !matches!(source, Source::Image { .. }) {
        return Err(Error::cli(
            format!("create {name}"),
            "--storage applies to containers made from an image (-t or --image)",
        ));
    }
    let privileged = args.privileged;
    let networks: Vec<String> = match args.networks.as_slice() {
        [] => vec![crate::network::net::DEFAULT.to_string()],
        [none] if none == "none" => Vec::new(),
        many => many.to_vec(),
    };
    if args.ipv4.is_some() && networks.is_empty() {
        return Err(Error::cli(format!("create {name}"), "--ipv4 needs a network"));
    }
    let created = container::create(paths, name, &source, privileged, &networks, args.ipv4.as_deref())?;
    notify(&created.notices);
    println!(
        "Created {name} ({}{}, {} init {}, halt signal {}{})",
        if privileged { "privileged" } else { "unprivileged" },
        created.distro.as_deref().map(|d| format!(", {d}")).unwrap_or_default(),
        created.init_family,
        created.config.init.command[0],
        created.config.init.halt_signal,
        if created.config.rootfs.storage.is_dir() {
            String::new()
        } else {
            format!(", {} storage", created.config.rootfs.storage.as_str())
        }
    );
    Ok(())
}

pub fn start(paths: &Paths, name: &str, wait: bool) -> Result<u8, Error> {
    crate::monitor::timeline::mark(crate::monitor::timeline::Stage::CliInvoked);
    let started = container::start(paths, name, wait)?;
    notify(&started.notices);
    match started.boot_ms {
        Some(ms) => println!("Started {name} in {:.2} s (init pid {})", ms as f64 / 1000.0, started.init_pid),
        None => println!("Started {name} (init pid {})", started.init_pid),
    }
    Ok(0)
}

pub fn stop(paths: &Paths, name: &str, timeout: Option<u64>, force: bool) -> Result<u8, Error> {
    let (detail, notices) = container::stop(paths, name, timeout, force)?;
    notify(&notices);
    println!("Stopped {name}: {detail}");
    Ok(0)
}

pub fn restart(paths: &Paths, name: &str, timeout: Option<u64>, force: bool, wait: bool) -> Result<u8, Error> {
    if container::observe(paths, name).status != Status::Stopped {
        stop(paths, name, timeout, force)?;
    }
    start(paths, name, wait)
}

pub fn kill(paths: &Paths, name: &str, signal: Option<&str>, all: bool) -> Result<u8, Error> {
    let sig = crate::base::signal::parse(signal.unwrap_or("SIGKILL"))
        .map_err(|e| Error::cli(format!("signal {name}"), e.to_string()))?;
    let n = container::kill(paths, name, sig, all)?;
    if all {
        println!("Sent {} to {n} processes in {name}", crate::base::signal::name(sig));
    } else {
        println!("Sent {} to init of {name}", crate::base::signal::name(sig));
    }
    Ok(0)
}

pub fn freeze(paths: &Paths, name: &str, frozen: bool) -> Result<u8, Error> {
    container::freeze(paths, name, frozen)?;
    println!("{} {name}", if frozen { "Froze" } else { "Thawed" });
    Ok(0)
}

pub fn destroy(paths: &Paths, name: &str, force: bool) -> Result<u8, Error> {
    notify(&container::destroy(paths, name, force)?);
    println!("Destroyed {name}");
    Ok(0)
}
