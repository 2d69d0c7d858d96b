//! The monitor's two wire formats, both JSON lines:
//!
//! * control requests on `run/NAME/monitor.sock` (one request per connection; a
//!   `console` request turns the connection into a console stream, see `console`);
//! * start-up events on the pipe from the monitor to the `hutch start` that spawned it.

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::base::state::Phase;

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
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Response {
    pub fn ok() -> Response {
        Response { ok: true, ..Response::default() }
    }
    pub fn error(msg: impl Into<String>) -> Response {
        Response { ok: false, error: Some(msg.into()), ..Response::default() }
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
    Failed { error: String },
}

pub fn write_line<T: Serialize>(w: &mut impl Write, value: &T) -> io::Result<()> {
    let mut line = serde_json::to_vec(value).expect("protocol values serialise");
    line.push(b'\n');
    w.write_all(&line)?;
    w.flush()
}

pub fn read_line<T: for<'de> Deserialize<'de>>(r: &mut impl BufRead) -> io::Result<Option<T>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    serde_json::from_str(&line).map(Some).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
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
pub fn request(path: &Path, req: &Request) -> io::Result<(Response, BufReader<UnixStream>)> {
    let mut stream = connect(path)?;
    write_line(&mut stream, req)?;
    let mut reader = BufReader::new(stream);
    match read_line::<Response>(&mut reader)? {
        Some(r) => Ok((r, reader)),
        None => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the monitor closed the connection")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_events_have_stable_json() {
        let r = Request::Stop { timeout_s: 5, force: false };
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"op":"stop","timeout_s":5,"force":false}"#);
        let e = Event::Ready { boot_ms: 640 };
        assert_eq!(serde_json::to_string(&e).unwrap(), r#"{"event":"ready","boot_ms":640}"#);
        let back: Request = serde_json::from_str(r#"{"op":"console","rows":24,"cols":80}"#).unwrap();
        assert_eq!(back, Request::Console { rows: 24, cols: 80 });
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
