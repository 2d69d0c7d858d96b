//! config show|get|set|edit. Writes hold the container's lock and are atomic; a
//! value is validated (as part of the whole file) before anything is written.

use std::io::{IsTerminal, Read, Write};

use super::ConfigCmd;
use crate::base::lock::Lock;
use crate::base::output::Format;
use crate::base::paths::Paths;
use crate::config::{self, Config};
use crate::container::{self, limits::Effect};
use crate::error::Error;

pub fn run(paths: &Paths, cmd: ConfigCmd) -> Result<u8, Error> {
    match cmd {
        ConfigCmd::Show { name, format } => {
            container::require_exists(paths, &name)?;
            let path = paths.config(&name);
            let config = Config::load(&path)?;
            match format {
                Format::Text => super::emit(
                    &std::fs::read_to_string(&path).map_err(|source| config::Error::Read { path, source })?,
                )?,
                Format::Json => super::emit_object(&config)?,
            }
            Ok(0)
        }
        ConfigCmd::Get { name, key, format } => {
            container::require_exists(paths, &name)?;
            let config = Config::load(&paths.config(&name))?;
            let value = config::get(&config, &key)?;
            match (format, value) {
                (Format::Json, value) => {
                    super::emit_object(&serde_json::json!({ "name": name, "key": key, "value": value }))?
                }
                (Format::Text, None) => {}
                (Format::Text, Some(toml::Value::String(s))) => out!("{s}"),
                (Format::Text, Some(v)) => out!("{v}"),
            }
            Ok(0)
        }
        ConfigCmd::Set { name, key, value } => {
            match container::limits::set(paths, &name, &key, &value)? {
                Effect::Live { warnings } => {
                    super::notify(&warnings);
                    eprintln!("hutch: {key} applied to the running {name}");
                }
                Effect::NextStart => eprintln!("hutch: {key} takes effect at the next start of {name}"),
                Effect::Saved => {}
            }
            Ok(0)
        }
        ConfigCmd::Edit { name } => edit(paths, &name),
    }
}

fn edit(paths: &Paths, name: &str) -> Result<u8, Error> {
    container::require_exists(paths, name)?;
    let path = paths.config(name);
    let _lock = Lock::acquire(&paths.lock(name)).map_err(|e| Error::cli(format!("lock {name}"), e.to_string()))?;
    let original =
        std::fs::read_to_string(&path).map_err(|source| config::Error::Read { path: path.clone(), source })?;
    let interactive = std::io::stdin().is_terminal();
    let new_text = if !interactive {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| {
            Error::cli(format!("edit the configuration of {name}"), format!("failed to read stdin: {e}"))
        })?;
        Config::parse(&path, &s)?;
        s
    } else {
        let tmp = path.with_file_name(format!(".config.edit-{}.toml", std::process::id()));
        let mut text = original.clone();
        let result = loop {
            if let Err(e) = std::fs::write(&tmp, &text) {
                break Err(Error::cli("edit the configuration", e.to_string()));
            }
            let editor = std::env::var("VISUAL").or_else(|_| std::env::var("EDITOR")).unwrap_or_else(|_| "vi".into());
            let status =
                std::process::Command::new("sh").arg("-c").arg(format!("{editor} \"$1\"")).arg("sh").arg(&tmp).status();
            if !status.is_ok_and(|s| s.success()) {
                break Err(Error::cli(
                    "edit the configuration",
                    format!("the editor ({editor}) failed; nothing was changed"),
                ));
            }
            text = std::fs::read_to_string(&tmp).unwrap_or_default();
            match Config::parse(&path, &text) {
                Ok(_) => break Ok(text.clone()),
                Err(e) => {
                    let e = Error::Config(e);
                    crate::error::report(&e);
                    eprint!("Press Enter to edit again, or Ctrl-C to abandon the change: ");
                    let _ = std::io::stderr().flush();
                    let mut line = String::new();
                    if std::io::stdin().read_line(&mut line).unwrap_or(0) == 0 {
                        break Err(e);
                    }
                }
            }
        };
        let _ = std::fs::remove_file(&tmp);
        result?
    };
    if new_text == original {
        eprintln!("hutch: no changes");
        return Ok(0);
    }
    crate::base::fsutil::atomic_write(&path, new_text.as_bytes(), 0o644)
        .map_err(|source| config::Error::Write { path, source })?;
    Ok(0)
}
