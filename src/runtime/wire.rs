//! The one message type for a failure that crosses a process boundary: the container's
//! first process to the monitor (the start handshake), the exec helper to the CLI, and
//! the monitor to the CLI (start events and control responses). It keeps what the
//! receiving side needs to report the failure as hutch reports its own: the kind, the
//! message, and the hint.

use serde::{Deserialize, Serialize};

/// What failed. Kinds a receiver does not know (a newer sender) read as `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The container's configuration.
    Config,
    /// The id map (subordinate ids).
    Idmap,
    /// cgroups: creating, attaching, limits.
    Cgroup,
    /// The host has no cgroup2 hierarchy.
    NoCgroup2,
    /// Networking: NICs, ports.
    Network,
    /// The root filesystem's storage (overlay layers, idmapped mounts).
    Storage,
    /// The filesystem cannot do idmapped mounts.
    NoIdmappedMounts,
    /// systemd's D-Bus API.
    Systemd,
    /// The monitor's own files and sockets.
    Runtime,
    /// Creating the namespaces, or setting them up in the child.
    Namespaces,
    /// The mount plan inside the root filesystem.
    Mounts,
    /// Executing init.
    Init,
    /// The exec helper, before the command ran.
    Exec,
    /// The command to exec could not be executed (it did not run).
    Command,
    /// The peer speaks another version of the control protocol.
    Protocol,
    /// A request the peer did not understand, or refuses in its state.
    Request,
    /// A process that had to be single-threaded was not.
    Threads,
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{detail}")]
pub struct WireError {
    pub kind: Kind,
    /// The whole message ("failed to <verb> <object>: <cause>").
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl WireError {
    pub fn new(kind: Kind, detail: impl Into<String>) -> WireError {
        WireError { kind, detail: detail.into(), hint: None }
    }

    pub fn with_hint(mut self, hint: Option<String>) -> WireError {
        self.hint = hint;
        self
    }

    pub fn hint(&self) -> Option<String> {
        self.hint.clone()
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a WireError serialises")
    }

    /// Reads one from JSON; anything else is kept as an unknown failure with its text.
    pub fn from_json(data: &[u8]) -> WireError {
        serde_json::from_slice(data)
            .unwrap_or_else(|_| WireError::new(Kind::Unknown, String::from_utf8_lossy(data).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_its_hint() {
        let e = WireError::new(Kind::NoCgroup2, "failed to find cgroup2").with_hint(Some("mount it".into()));
        let json = e.to_json();
        assert_eq!(
            String::from_utf8_lossy(&json),
            r#"{"kind":"no_cgroup2","detail":"failed to find cgroup2","hint":"mount it"}"#
        );
        assert_eq!(WireError::from_json(&json), e);
    }

    #[test]
    fn unknown_kinds_and_plain_text_still_read() {
        let e = WireError::from_json(br#"{"kind":"from_the_future","detail":"x"}"#);
        assert_eq!((e.kind, e.detail.as_str(), e.hint), (Kind::Unknown, "x", None));
        let e = WireError::from_json(b"failed to do a thing");
        assert_eq!((e.kind, e.detail.as_str()), (Kind::Unknown, "failed to do a thing"));
    }
}
