//! The monitor's two wire formats, both JSON lines:
//!
//! * control requests on `run/NAME/monitor.sock` (one request per connection; a
//!   `console` request turns the connection into a console stream, see `console`);
//! * start-up events on the pipe from the monitor to the `hutch start` that spawned it.
//!
//! Every line carries the protocol version (`"v"`). A monitor lives as long as its
//! container, so it may be an older hutch than the CLI talking to it, or a newer one:
//! each side refuses a line of another version (and an unversioned one) instead of
//! guessing at what it means. Failures travel as a `WireError` (kind, message, hint).

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::base::state::Phase;
use crate::runtime::wire::{Kind, WireError};

/// The version of the control protocol and start events this hutch speaks. Raise it
/// whenever a request, response or event changes meaning or shape.
pub const PROTOCOL: u64 = 1;

#[derive(Debug, Error)]
pub enum Error {
    #[error("its monitor is unreachable at {path}: {source}")]
    Connect { path: PathBuf, source: io::Error },
    #[error("its monitor speaks protocol {theirs}, this hutch speaks {ours}", theirs = version_name(*.theirs), ours = PROTOCOL)]
    Version { theirs: u64 },
    #[error("its monitor sent a message this hutch cannot read: {0}")]
    Malformed(serde_json::Error),
    #[error("its monitor closed the connection")]
    Closed,
    #[error("the connection to its monitor failed: {0}")]
    Io(#[from] io::Error),
    /// The monitor answered with a failure.
    #[error("{0}")]
    Refused(WireError),
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Version { .. } => Some(
                "the container was started by another version of hutch: stop it with the hutch that started it \
                 (a monitor outlives upgrades), or kill its monitor, after which this hutch stops the container directly"
                    .into(),
            ),
            Error::Refused(e) => e.hint(),
            _ => None,
        }
    }
}

fn version_name(v: u64) -> String {
    if v == 0 { "an unversioned protocol (an older hutch)".into() } else { v.to_string() }
}

/// The monitor's answer to a line of another version.
pub fn version_refusal(theirs: u64) -> Response {
    Response::fail(
        WireError::new(
            Kind::Protocol,
            format!("this monitor speaks protocol {PROTOCOL}, the request was in {}", version_name(theirs)),
        )
        .with_hint(Some("use the hutch that started this container to control it".into())),
    )
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    Status,
    Stop { timeout_s: u64, force: bool },
    Console { rows: u16, cols: u16 },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Response {
    pub fn ok() -> Response {
        Response { ok: true, ..Response::default() }
    }
    pub fn fail(error: WireError) -> Response {
        Response { ok: false, error: Some(error), ..Response::default() }
    }

    /// The failure this response carries, if it is one.
    pub fn refusal(&self) -> Option<Error> {
        if self.ok {
            return None;
        }
        Some(Error::Refused(
            self.error.clone().unwrap_or_else(|| WireError::new(Kind::Unknown, "the monitor refused the request")),
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Event {
    /// Init has been executed.
    Started { init_pid: i32 },
    /// Init reported ready (or was executed, for inits that do not notify).
    Ready { boot_ms: u64 },
    /// The start failed; nothing is left running.
    Failed { error: WireError },
}

/// Writes one line: `value`'s JSON object with the protocol version first.
pub fn write_line<T: Serialize>(w: &mut impl Write, value: &T) -> io::Result<()> {
    let mut line = encode(value);
    line.push(b'\n');
    w.write_all(&line)?;
    w.flush()
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut object = serde_json::Map::new();
    object.insert("v".into(), PROTOCOL.into());
    match serde_json::to_value(value).expect("protocol values serialise") {
        serde_json::Value::Object(fields) => object.extend(fields),
        other => panic!("protocol values are objects, not {other}"),
    }
    serde_json::to_vec(&object).expect("protocol values serialise")
}

/// Reads one line; `None` at end-of-file. A line of another protocol version is
/// refused (`Error::Version`) before its contents are looked at.
pub fn read_line<T: for<'de> Deserialize<'de>>(r: &mut impl BufRead) -> Result<Option<T>, Error> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    decode(&line).map(Some)
}

fn decode<T: for<'de> Deserialize<'de>>(line: &str) -> Result<T, Error> {
    let mut value: serde_json::Value = serde_json::from_str(line).map_err(Error::Malformed)?;
    let version = match value.as_object_mut().and_then(|o| o.remove("v")) {
        None => 0,
        Some(v) => v.as_u64().unwrap_or(u64::MAX),
    };
    if version != PROTOCOL {
        return Err(Error::Version { theirs: version });
    }
    serde_json::from_value(value).map_err(Error::Malformed)
}

/// A path usable in a `sockaddr_un` (108 bytes). Longer paths go through the
/// directory's `/proc/self/fd/N/` alias; the returned fd keeps that alias valid.
pub fn socket_path(path: &Path) -> io::Result<(PathBuf, Option<OwnedFd>)> {
    if path.as_os_str().len() < 100 {
        return Ok((path.to_path_buf(), None));
    }
    let dir = path.parent().ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let fd = crate::sys::open_path_nofollow(dir)?;
    let name = path.file_name().ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    Ok((PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd())).join(name), Some(fd)))
}

/// Connects to a monitor socket.
pub fn connect(path: &Path) -> io::Result<UnixStream> {
    let (p, _keep) = socket_path(path)?;
    UnixStream::connect(p)
}

/// Sends one request and reads the first response line; the stream stays open for
/// requests that continue (stop waits, console streams).
pub fn request(path: &Path, req: &Request) -> Result<(Response, BufReader<UnixStream>), Error> {
    let mut stream = connect(path).map_err(|source| Error::Connect { path: path.to_path_buf(), source })?;
    write_line(&mut stream, req)?;
    let mut reader = BufReader::new(stream);
    match read_line::<Response>(&mut reader)? {
        Some(r) => Ok((r, reader)),
        None => Err(Error::Closed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_events_have_stable_json() {
        let json = |v: &[u8]| serde_json::from_slice::<serde_json::Value>(v).unwrap();
        let r = Request::Stop { timeout_s: 5, force: false };
        assert_eq!(json(&encode(&r)), json(br#"{"v":1,"op":"stop","timeout_s":5,"force":false}"#));
        let e = Event::Ready { boot_ms: 640 };
        assert_eq!(json(&encode(&e)), json(br#"{"v":1,"event":"ready","boot_ms":640}"#));
        let back: Request = decode(r#"{"v":1,"op":"console","rows":24,"cols":80}"#).unwrap();
        assert_eq!(back, Request::Console { rows: 24, cols: 80 });
    }

    #[test]
    fn other_versions_are_refused_not_guessed() {
        let e = decode::<Request>(r#"{"v":2,"op":"status"}"#).unwrap_err();
        assert!(matches!(e, Error::Version { theirs: 2 }), "{e:?}");
        assert_eq!(e.to_string(), "its monitor speaks protocol 2, this hutch speaks 1");
        assert!(e.hint().unwrap().contains("the hutch that started it"));
        // A line from before versioning is refused too, even though it would parse.
        let e = decode::<Request>(r#"{"op":"status"}"#).unwrap_err();
        assert!(e.to_string().contains("an unversioned protocol"), "{e}");
        let e = decode::<Request>(r#"{"v":"one","op":"status"}"#).unwrap_err();
        assert!(matches!(e, Error::Version { .. }), "{e:?}");
        let refusal = version_refusal(7);
        assert!(!refusal.ok);
        let err = refusal.error.unwrap();
        assert_eq!(err.kind, Kind::Protocol);
        assert!(err.detail.contains("speaks protocol 1, the request was in 7"), "{}", err.detail);
    }

    #[test]
    fn failures_carry_their_hint_across() {
        let ev = Event::Failed {
            error: WireError::new(Kind::NoCgroup2, "failed to find cgroup2").with_hint(Some("mount it".into())),
        };
        let mut buf = Vec::new();
        write_line(&mut buf, &ev).unwrap();
        let back: Event = read_line(&mut buf.as_slice()).unwrap().unwrap();
        assert_eq!(back, ev);
        let r = Response::fail(WireError::new(Kind::Request, "between boots"));
        let e = r.refusal().unwrap();
        assert_eq!(e.to_string(), "between boots");
        assert!(Response::ok().refusal().is_none());
    }

    #[test]
    fn long_socket_paths_go_through_proc_fd() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("x".repeat(60)).join("y".repeat(40));
        std::fs::create_dir_all(&deep).unwrap();
        let path = deep.join("monitor.sock");
        let (p, keep) = socket_path(&path).unwrap();
        assert!(keep.is_some());
        assert!(p.as_os_str().len() < 108);
        let listener = std::os::unix::net::UnixListener::bind(&p).unwrap();
        assert!(path.exists());
        let client = connect(&path).unwrap();
        let (server, _) = listener.accept().unwrap();
        drop((client, server));
    }
}
