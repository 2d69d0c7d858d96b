//! create, start, stop, restart, kill, freeze, destroy.

use super::{CreateArgs, notify};
use crate::base::output::Format;
use crate::base::paths::Paths;

use crate::container::images::{self, ImageRef};
use crate::container::{self, Source, Status};
use crate::error::Error;
use serde::Serialize;

/// What `create --format json` prints.
#[derive(Serialize)]
struct CreatedView<'a> {
    name: &'a str,
    privileged: bool,
    distro: Option<&'a str>,
    init: &'a [String],
    halt_signal: &'a str,
    storage: &'a str,
    nics: Vec<crate::network::attach::NicInfo>,
}

/// What `start --format json` (and `launch`) prints.
#[derive(Serialize)]
struct StartedView<'a> {
    name: &'a str,
    init_pid: i32,
    /// Milliseconds from start to init's readiness, with `--wait`.
    boot_ms: Option<u64>,
    nics: Vec<crate::network::attach::NicInfo>,
}

/// Creates the container; `print` is false when `launch` prints only what `start` does.
pub fn create(paths: &Paths, args: CreateArgs, print: bool) -> Result<(), Error> {
    let name = args.name.as_str();
    let what = || format!("create {name}");
    let from_image = args.template.is_some() || args.image.is_some();
    if args.storage.is_some() && !from_image {
        return Err(Error::cli(what(), "--storage applies to containers made from an image (-t or --image)"));
    }
    let privileged = args.privileged;
    let networks: Vec<String> = match args.networks.as_slice() {
        [] => vec![crate::network::net::DEFAULT.to_string()],
        [none] if none == "none" => Vec::new(),
        many => many.to_vec(),
    };
    if args.ipv4.is_some() && networks.is_empty() {
        return Err(Error::cli(what(), "--ipv4 needs a network"));
    }
    let ipv4 = args.ipv4.as_deref();
    let devbox = match args.devbox {
        true => {
            let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
            Some(
                container::devbox::host_user(args.user.as_deref(), &read("/etc/passwd"), &read("/etc/group"))
                    .map_err(container::Error::from)?,
            )
        }
        false => None,
    };
    let devbox = devbox.as_ref();
    let opts = images::CreateOptions {
        storage: args.storage,
        privileged,
        networks: &networks,
        ipv4,
        devbox,
        ephemeral: args.ephemeral,
    };
    let created = if let Some(d) = args.from_dir {
        container::create(paths, name, &Source::Dir(d), &opts)?
    } else if let Some(t) = args.from_tar {
        container::create(paths, name, &Source::Tar(t), &opts)?
    } else {
        let req;
        let image = match (&args.template, &args.image) {
            (Some(reference), _) => {
                req = super::image_cmd::request(reference, &args.pull, false)?;
                ImageRef::Template(&req)
            }
            (None, Some(image)) => ImageRef::Cached(image),
            (None, None) => return Err(Error::cli(what(), "give one of -t, --image, --from-dir and --from-tar")),
        };
        images::create(paths, name, image, &opts, &mut |n| notify(&n))?
    };
    notify(&created.notices);
    if !print {
        return Ok(());
    }
    if args.format == Format::Json {
        let c = &created.config;
        return super::emit_object(&CreatedView {
            name,
            privileged,
            distro: created.distro.as_deref(),
            init: &c.init.command,
            halt_signal: c.init.halt_signal.as_str(),
            storage: c.rootfs.storage.as_str(),
            nics: crate::network::attach::info(paths, name, c),
        });
    }
    out!(
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

pub fn start(paths: &Paths, name: &str, wait: bool, format: Format) -> Result<u8, Error> {
    crate::monitor::timeline::mark(crate::monitor::timeline::Stage::CliInvoked);
    let started = container::start(paths, name, wait)?;
    notify(&started.notices);
    if started.devbox {
        notify(&container::devbox::first_boot(paths, name).into_iter().collect::<Vec<_>>());
    }
    if format == Format::Json {
        let nics = crate::config::Config::load(&paths.config(name))
            .map(|c| crate::network::attach::info(paths, name, &c))
            .unwrap_or_default();
        super::emit_object(&StartedView { name, init_pid: started.init_pid, boot_ms: started.boot_ms, nics })?;
        return Ok(0);
    }
    match started.boot_ms {
        Some(ms) => out!("Started {name} in {:.2} s (init pid {})", ms as f64 / 1000.0, started.init_pid),
        None => out!("Started {name} (init pid {})", started.init_pid),
    }
    Ok(0)
}

pub fn stop(paths: &Paths, name: &str, timeout: Option<u64>, force: bool) -> Result<u8, Error> {
    let (detail, notices) = container::stop(paths, name, timeout, force)?;
    notify(&notices);
    out!("Stopped {name}: {detail}");
    Ok(0)
}

pub fn restart(paths: &Paths, name: &str, timeout: Option<u64>, force: bool, wait: bool) -> Result<u8, Error> {
    if container::observe(paths, name).status != Status::Stopped {
        if crate::config::Config::load(&paths.config(name)).is_ok_and(|c| c.ephemeral) {
            return Err(Error::with_hint(
                format!("restart {name}"),
                "it is ephemeral: stopping it destroys it",
                format!("reboot it from inside (`hutch exec {name} -- reboot`), which keeps it"),
            ));
        }
        stop(paths, name, timeout, force)?;
    }
    start(paths, name, wait, Format::Text)
}

pub fn kill(paths: &Paths, name: &str, signal: Option<&str>, all: bool) -> Result<u8, Error> {
    let sig = crate::base::signal::parse(signal.unwrap_or("SIGKILL"))
        .map_err(|e| Error::cli(format!("signal {name}"), e.to_string()))?;
    let n = container::kill(paths, name, sig, all)?;
    if all {
        out!("Sent {} to {n} processes in {name}", crate::base::signal::name(sig));
    } else {
        out!("Sent {} to init of {name}", crate::base::signal::name(sig));
    }
    Ok(0)
}

pub fn freeze(paths: &Paths, name: &str, frozen: bool) -> Result<u8, Error> {
    container::freeze(paths, name, frozen)?;
    out!("{} {name}", if frozen { "Froze" } else { "Thawed" });
    Ok(0)
}

pub fn destroy(paths: &Paths, name: &str, force: bool) -> Result<u8, Error> {
    notify(&container::destroy(paths, name, force)?);
    out!("Destroyed {name}");
    Ok(0)
}
