//! exec, shell, console.

use crate::base::paths::Paths;
use crate::container::{self, Status};
use crate::error::Error;
use crate::exec::{self, Spec};
use crate::sys;

#[allow(clippy::too_many_arguments)]
pub fn exec(
    paths: &Paths,
    name: &str,
    env: Vec<String>,
    user: Option<String>,
    cwd: Option<String>,
    tty: bool,
    no_tty: bool,
    command: Vec<String>,
) -> Result<u8, Error> {
    let mut vars = Vec::new();
    for e in env {
        match e.split_once('=') {
            Some((k, v)) if !k.is_empty() && !k.contains('\0') && !v.contains('\0') => {
                vars.push((k.to_string(), v.to_string()))
            }
            _ => {
                return Err(Error::cli(
                    format!("run a command in {name}"),
                    format!("invalid environment assignment {e:?}: use -e NAME=VALUE"),
                ));
            }
        }
    }
    let tty = tty || (!no_tty && sys::fd_is_tty(sys::stdio(0)));
    let spec = Spec { argv: command, env: vars, user, cwd, tty, login_shell: false };
    let code = exec::run(paths, name, &spec)?;
    Ok(code.clamp(0, 255) as u8)
}

pub fn shell(paths: &Paths, name: &str, user: Option<String>) -> Result<u8, Error> {
    if container::observe(paths, name).status == Status::Stopped {
        let started = container::start(paths, name, true)?;
        super::notify(&started.notices);
        if let Some(ms) = started.boot_ms {
            eprintln!("hutch: started {name} in {:.2} s", ms as f64 / 1000.0);
        }
    }
    let tty = sys::fd_is_tty(sys::stdio(0));
    let spec = Spec { argv: vec![], env: vec![], user, cwd: None, tty, login_shell: true };
    let code = exec::run(paths, name, &spec)?;
    Ok(code.clamp(0, 255) as u8)
}

pub fn console(paths: &Paths, name: &str) -> Result<u8, Error> {
    container::require_exists(paths, name)?;
    let obs = container::observe(paths, name);
    if !obs.init_alive {
        return Err(container::Error::NotRunning { action: "attach to the console of", name: name.into() }.into());
    }
    if !obs.monitor_alive {
        return Err(Error::cli(
            format!("attach to the console of {name}"),
            "its monitor is gone, and the console with it; the container still runs (use `hutch exec`)",
        ));
    }
    exec::proxy::console(&paths.monitor_socket(name), name)?;
    Ok(0)
}
