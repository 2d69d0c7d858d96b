//! `hutch config get|set`: dotted keys over the TOML file. `set` edits the document in
//! place (comments and layout survive), then re-parses and validates the whole result
//! before the caller writes it, so an invalid value never reaches disk.

use std::path::Path;

use toml_edit::{DocumentMut, Item, Table, value};

use super::{Config, Error};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    String,
    Bool,
    Integer,
    /// A TOML array of strings, or one string for a one-element list.
    List,
    /// A whole number, a decimal, or a string, whichever the text reads as.
    Scalar,
}

pub struct Key {
    pub name: &'static str,
    pub kind: KeyKind,
    pub help: &'static str,
}

/// Every settable key. `env.NAME` (any NAME) is accepted besides these.
pub(crate) const KEYS: &[Key] = &[
    Key { name: "hostname", kind: KeyKind::String, help: "hostname inside the container (default: its name)" },
    Key {
        name: "rootfs.path",
        kind: KeyKind::String,
        help: "root filesystem, relative to the container directory or absolute",
    },
    Key {
        name: "rootfs.storage",
        kind: KeyKind::String,
        help: "dir, overlay or btrfs (how the rootfs is stored; set at create)",
    },
    Key { name: "rootfs.image", kind: KeyKind::String, help: "id of the cached image the rootfs was made from" },
    Key { name: "init.command", kind: KeyKind::List, help: "init program and arguments, e.g. [\"/sbin/init\"]" },
    Key {
        name: "init.halt_signal",
        kind: KeyKind::String,
        help: "signal that asks init to shut down, e.g. SIGRTMIN+3",
    },
    Key { name: "init.ready", kind: KeyKind::String, help: "notify (init sends READY=1) or exec (booted once exec'd)" },
    Key { name: "init.stop_timeout", kind: KeyKind::Integer, help: "seconds stop waits before killing" },
    Key {
        name: "autostart.enabled",
        kind: KeyKind::Bool,
        help: "true starts it with `hutch autostart` (at host boot)",
    },
    Key { name: "autostart.order", kind: KeyKind::Integer, help: "lower starts first; one order starts together" },
    Key { name: "autostart.delay", kind: KeyKind::Integer, help: "seconds autostart waits after starting this one" },
    Key {
        name: "restart",
        kind: KeyKind::String,
        help: "no, on-failure or always: restart when init ends unexpectedly (with backoff)",
    },
    Key {
        name: "security.lxcfs",
        kind: KeyKind::String,
        help: "auto, on or off: LXCFS's /proc files (free, top, uptime show the container's limits)",
    },
    Key { name: "security.privileged", kind: KeyKind::Bool, help: "true runs without a user namespace" },
    Key {
        name: "devbox.forward",
        kind: KeyKind::List,
        help: "what a dev box's shell and exec take from the caller: ssh-agent, term",
    },
    Key {
        name: "security.nesting",
        kind: KeyKind::Bool,
        help: "true lets the container run container runtimes (unmasked /proc, read-write /sys, /dev/fuse)",
    },
    Key { name: "idmap.uid", kind: KeyKind::Integer, help: "first host uid of the container's id map" },
    Key { name: "idmap.gid", kind: KeyKind::Integer, help: "first host gid of the container's id map" },
    Key { name: "idmap.size", kind: KeyKind::Integer, help: "number of ids in the map" },
    Key { name: "console.log_size", kind: KeyKind::String, help: "bound on the console log, e.g. 1MiB" },
];

/// What `key` sets, for hints.
pub(crate) fn help(key: &str) -> Option<&'static str> {
    KEYS.iter()
        .find(|k| k.name == key)
        .map(|k| k.help)
        .or_else(|| crate::cgroup::limits::KEYS.iter().find(|(k, _)| *k == key).map(|(_, h)| *h))
}

fn kind_of(key: &str) -> Result<KeyKind, Error> {
    if let Some(var) = key.strip_prefix("env.") {
        if !var.is_empty() && !var.contains('.') {
            return Ok(KeyKind::String);
        }
    }
    if key == "limits.cpuset" {
        return Ok(KeyKind::String); // "0" is a CPU list, not a number
    }
    if crate::cgroup::limits::KEYS.iter().any(|(k, _)| *k == key) {
        return Ok(KeyKind::Scalar);
    }
    KEYS.iter().find(|k| k.name == key).map(|k| k.kind).ok_or_else(|| Error::UnknownKey { key: key.to_string() })
}

/// The effective value of `key` (defaults included); `None` when it is unset and has no
/// default (an optional key such as `hostname`).
pub(crate) fn get(config: &Config, key: &str) -> Result<Option<toml::Value>, Error> {
    kind_of(key)?;
    let full = toml::Value::try_from(config).expect("a Config always serialises");
    let mut cur = &full;
    for part in key.split('.') {
        match cur.get(part) {
            Some(v) => cur = v,
            None => return Ok(None),
        }
    }
    Ok(Some(cur.clone()))
}

fn convert(key: &str, kind: KeyKind, raw: &str) -> Result<toml_edit::Value, Error> {
    let bad = |expected: &str| Error::BadValue { key: key.into(), value: raw.into(), expected: expected.into() };
    Ok(match kind {
        KeyKind::String => raw.into(),
        KeyKind::Scalar => {
            let t = raw.trim();
            if let Ok(n) = t.parse::<i64>() {
                n.into()
            } else if t.parse::<f64>().is_ok_and(f64::is_finite) && !t.contains(['e', 'E']) {
                t.parse::<f64>().expect("checked").into()
            } else {
                raw.into()
            }
        }
        KeyKind::Bool => match raw {
            "true" => true.into(),
            "false" => false.into(),
            _ => return Err(bad("true or false")),
        },
        KeyKind::Integer => {
            let n: i64 = raw.trim().parse().map_err(|_| bad("a whole number"))?;
            if n < 0 {
                return Err(bad("a whole number of 0 or more"));
            }
            n.into()
        }
        KeyKind::List => {
            let t = raw.trim();
            if t.starts_with('[') {
                let doc: DocumentMut = format!("v = {t}")
                    .parse()
                    .map_err(|_| bad("a TOML array of strings, e.g. [\"/sbin/init\", \"--log-level=info\"]"))?;
                match doc.get("v").and_then(Item::as_value) {
                    Some(v @ toml_edit::Value::Array(a)) if a.iter().all(|x| x.is_str()) => v.clone(),
                    _ => return Err(bad("a TOML array of strings")),
                }
            } else {
                let mut a = toml_edit::Array::new();
                a.push(raw);
                toml_edit::Value::Array(a)
            }
        }
    })
}

/// Sets `key` to `raw` in `text` (the contents of `path`). Returns the new text and the
/// configuration it parses to; nothing is written.
pub(crate) fn set(path: &Path, text: &str, key: &str, raw: &str) -> Result<(String, Config), Error> {
    let kind = kind_of(key)?;
    let new_value = convert(key, kind, raw)?;
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        let (line, col) = e.span().map(|s| super::line_col(text, s.start)).unwrap_or((1, 1));
        Error::Parse { path: path.to_path_buf(), line, col, message: e.message().trim().to_string() }
    })?;
    let parts: Vec<&str> = key.split('.').collect();
    let (leaf, tables) = parts.split_last().expect("keys are never empty");
    let mut table: &mut Table = doc.as_table_mut();
    for t in tables {
        let entry = table.entry(t).or_insert_with(|| Item::Table(Table::new()));
        table = match entry.as_table_mut() {
            Some(t) => t,
            None => {
                return Err(Error::Invalid {
                    path: path.to_path_buf(),
                    key: key.into(),
                    message: format!("{t} is not a table in this file"),
                });
            }
        };
    }
    table[leaf] = value(new_value);
    let new_text = doc.to_string();
    let config = Config::parse(path, &new_text)?;
    Ok((new_text, config))
}
