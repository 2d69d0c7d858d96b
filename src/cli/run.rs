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
    env_file: Option<std::path::PathBuf>,
    command: Vec<String>,
) -> Result<u8, Error> {
    let mut vars = Vec::new();
    if let Some(file) = env_file {
        let text = std::fs::read_to_string(&file).map_err(|e| {
            Error::cli(format!("run a command in {name}"), format!("failed to read {}: {e}", file.display()))
        })?;
        vars = parse_env_file(&text).map_err(|(line, why)| {
            Error::cli(format!("run a command in {name}"), format!("{}:{line}: {why}", file.display()))
        })?;
    }
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
    // -e and --env-file win over what a dev box forwards (only ever to a named user:
    // a plain exec reads no config).
    let mut env = match user.as_deref() {
        Some(u) => match crate::config::Config::load(&paths.config(name)) {
            Ok(config) => devbox_forwards(paths, name, u, &config)?,
            Err(_) => Vec::new(),
        },
        None => Vec::new(),
    };
    env.extend(vars);
    let spec = Spec { argv: command, env, user, cwd, tty, login_shell: false };
    let code = exec::run(paths, name, &spec)?;
    Ok(code.clamp(0, 255) as u8)
}

pub fn shell(paths: &Paths, name: &str, user: Option<String>) -> Result<u8, Error> {
    container::require_exists(paths, name)?;
    if container::observe(paths, name).status == Status::Stopped {
        let started = container::start(paths, name, true)?;
        super::notify(&started.notices);
        if let Some(ms) = started.boot_ms {
            eprintln!("hutch: started {name} in {:.2} s", ms as f64 / 1000.0);
        }
        if started.devbox {
            super::notify(&container::devbox::first_boot(paths, name).into_iter().collect::<Vec<_>>());
        }
    }
    // A dev box logs its user in, in the caller's directory when a shared folder has it.
    let config = crate::config::Config::load(&paths.config(name))?;
    let user = user.or_else(|| config.devbox.as_ref().map(|d| d.user.clone()));
    let cwd = std::env::current_dir().ok().and_then(|d| container::devbox::inside_path(&config.mounts, &d));
    let tty = sys::fd_is_tty(sys::stdio(0));
    let env = match user.as_deref() {
        Some(u) => devbox_forwards(paths, name, u, &config)?,
        None => Vec::new(),
    };
    let spec = Spec { argv: vec![], env, user, cwd, tty, login_shell: true };
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

/// What a dev box forwards to a session of its user (`devbox.forward`); nothing for
/// other users and other containers.
fn devbox_forwards(
    paths: &Paths,
    name: &str,
    user: &str,
    config: &crate::config::Config,
) -> Result<Vec<(String, String)>, Error> {
    let Some(devbox) = config.devbox.as_ref().filter(|d| !d.forward.is_empty()) else { return Ok(Vec::new()) };
    if user != devbox.user && user != devbox.uid.to_string() {
        return Ok(Vec::new());
    }
    if !container::observe(paths, name).init_alive {
        return Ok(Vec::new()); // the exec itself says it is not running
    }
    Ok(container::devbox::forwarded(paths, name, devbox)?)
}

/// Docker's env-file format: `KEY=VALUE` lines (the value as written, to the end of
/// the line), a bare `KEY` taken from this environment (left out when unset), blank
/// lines and `#` comments skipped. Errors are (line number, why).
fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (line.trim_end().to_string(), None),
        };
        if key.is_empty() || key.contains(char::is_whitespace) || key.contains('\0') {
            return Err((i + 1, format!("{key:?} is not a variable name (KEY=VALUE)")));
        }
        match value.or_else(|| std::env::var(&key).ok()) {
            Some(v) if v.contains('\0') => return Err((i + 1, "values cannot contain NUL".into())),
            Some(v) => out.push((key, v)),
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parse_env_file;

    #[test]
    fn env_files_read_as_docker_reads_them() {
        // SAFETY: set before any thread could read the environment in this test binary's
        // view of it; only this test uses the variable.
        unsafe { std::env::set_var("HUTCH_TEST_ENV_FILE_VAR", "from-host") };
        let text = "# comment\n\nA=1\nB= spaced value \nHUTCH_TEST_ENV_FILE_VAR\nUNSET_HUTCH_VAR_XYZ\nC=x=y\n";
        let got = parse_env_file(text).unwrap();
        let want: Vec<(String, String)> =
            [("A", "1"), ("B", " spaced value "), ("HUTCH_TEST_ENV_FILE_VAR", "from-host"), ("C", "x=y")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(got, want);
        assert_eq!(parse_env_file("=x\n").unwrap_err().0, 1);
        assert_eq!(parse_env_file("A=1\nBAD KEY=2\n").unwrap_err().0, 2);
    }
}
