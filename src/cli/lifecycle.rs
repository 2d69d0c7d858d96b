//! create, start, stop, restart, kill, freeze, destroy.

use std::path::PathBuf;

use super::notify;
use crate::container::{self, Source, Status};
use crate::error::Error;
use crate::paths::Paths;

pub fn create(
    paths: &Paths,
    name: &str,
    dir: Option<PathBuf>,
    tar: Option<PathBuf>,
    privileged: bool,
) -> Result<u8, Error> {
    let source = match (dir, tar) {
        (Some(d), None) => Source::Dir(d),
        (None, Some(t)) => Source::Tar(t),
        _ => {
            return Err(Error::cli(format!("create {name}"), "give exactly one of --from-dir and --from-tar"));
        }
    };
    notify(&container::collect_leftovers(paths));
    let created = container::create(paths, name, &source, privileged)?;
    notify(&created.notices);
    println!(
        "Created {name} ({}, {} init {}, halt signal {})",
        if privileged { "privileged" } else { "unprivileged" },
        created.init_family,
        created.config.init.command[0],
        created.config.init.halt_signal
    );
    Ok(0)
}

pub fn start(paths: &Paths, name: &str, wait: bool) -> Result<u8, Error> {
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
    let sig = crate::signal::parse(signal.unwrap_or("SIGKILL"))
        .map_err(|e| Error::cli(format!("signal {name}"), e.to_string()))?;
    let n = container::kill(paths, name, sig, all)?;
    if all {
        println!("Sent {} to {n} processes in {name}", crate::signal::name(sig));
    } else {
        println!("Sent {} to init of {name}", crate::signal::name(sig));
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
