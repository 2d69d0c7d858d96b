//! The container console: a pty whose slave is bind-mounted at the guest's
//! /dev/console and whose master the monitor holds for the container's whole life.
//! Everything init writes goes to a bounded log (two files of half the configured
//! size each) and to attached `hutch console` clients.
//!
//! Client stream format: the monitor sends raw console output; the client sends
//! frames `[kind: u8][len: u16 BE][payload]`, kind 0 = input bytes, kind 1 = window
//! size (rows u16 BE, cols u16 BE).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use rustix::fs::Mode;

use crate::sys;

pub const FRAME_DATA: u8 = 0;
pub const FRAME_RESIZE: u8 = 1;

/// Encodes one client frame.
pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len().min(u16::MAX as usize);
    let mut out = Vec::with_capacity(3 + len);
    out.push(kind);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&payload[..len]);
    out
}

/// Splits complete frames off the front of `buf`.
pub fn take_frames(buf: &mut Vec<u8>) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while buf.len() - pos >= 3 {
        let len = u16::from_be_bytes([buf[pos + 1], buf[pos + 2]]) as usize;
        if buf.len() - pos - 3 < len {
            break;
        }
        out.push((buf[pos], buf[pos + 3..pos + 3 + len].to_vec()));
        pos += 3 + len;
    }
    buf.drain(..pos);
    out
}

/// An append-only log kept under a size bound by rotating into `NAME.1`.
pub struct RotatingLog {
    path: PathBuf,
    file: Option<File>,
    written: u64,
    per_file: u64,
}

impl RotatingLog {
    pub fn open(path: &Path, total: u64) -> RotatingLog {
        let per_file = (total / 2).max(2048);
        let file = open_append(path).ok();
        let written = file.as_ref().and_then(|f| f.metadata().ok()).map_or(0, |m| m.len());
        RotatingLog { path: path.to_path_buf(), file, written, per_file }
    }

    pub fn write(&mut self, data: &[u8]) {
        if self.written + data.len() as u64 > self.per_file {
            let old = self.path.with_extension("log.1");
            let _ = std::fs::rename(&self.path, old);
            self.file = open_append(&self.path).ok();
            self.written = 0;
        }
        if let Some(f) = &mut self.file {
            if f.write_all(data).is_ok() {
                self.written += data.len() as u64;
            }
        }
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(0o640).custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW).open(path)
}

pub struct Client {
    pub stream: UnixStream,
    pub inbuf: Vec<u8>,
}

pub struct Console {
    pub master: OwnedFd,
    /// Held open so the master never reads EIO while no process has the console open
    /// (between boots, or before init opens it).
    _slave: OwnedFd,
    pub slave_path: PathBuf,
    log: RotatingLog,
    pub clients: Vec<Client>,
}

impl Console {
    /// Allocates the pty. `owner` is the host uid/gid of the container's root: the
    /// slave is handed to it (group: the container's `tty`, gid 5), or the guest's
    /// getty could not use its own console.
    pub fn open(owner: Option<(u32, u32)>, log_path: &Path, log_size: u64) -> io::Result<Console> {
        let master = rustix::pty::openpt(
            rustix::pty::OpenptFlags::RDWR | rustix::pty::OpenptFlags::NOCTTY | rustix::pty::OpenptFlags::CLOEXEC,
        )?;
        rustix::pty::grantpt(&master)?;
        sys::unlock_pty(master.as_fd())?;
        let name = rustix::pty::ptsname(&master, Vec::new())?;
        let slave_path = PathBuf::from(name.to_string_lossy().into_owned());
        let slave = sys::pty_peer(master.as_fd())?;
        if let Some((uid, gid)) = owner {
            rustix::fs::fchown(&slave, Some(rustix::fs::Uid::from_raw(uid)), Some(rustix::fs::Gid::from_raw(gid + 5)))?;
        }
        rustix::fs::fchmod(&slave, Mode::from_raw_mode(0o620))?;
        sys::set_winsize(master.as_fd(), 24, 80)?;
        sys::set_nonblocking(&master)?;
        Ok(Console {
            master,
            _slave: slave,
            slave_path,
            log: RotatingLog::open(log_path, log_size),
            clients: Vec::new(),
        })
    }

    /// Reads what the master has (at most 128 KiB per call, so a container flooding
    /// its console cannot keep the monitor from its other work), logs it and passes
    /// it to every client.
    pub fn pump_output(&mut self) {
        let mut buf = [0u8; 8192];
        for _ in 0..16 {
            match rustix::io::read(&self.master, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let data = &buf[..n];
                    self.log.write(data);
                    // A client that cannot keep up loses output rather than stalling init.
                    self.clients.retain_mut(|c| match c.stream.write(data) {
                        Ok(_) => true,
                        Err(e) => e.kind() == io::ErrorKind::WouldBlock,
                    });
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => break,
            }
        }
    }

    pub fn add_client(&mut self, stream: UnixStream, rows: u16, cols: u16) {
        if rows > 0 && cols > 0 {
            let _ = sys::set_winsize(self.master.as_fd(), rows, cols);
        }
        if stream.set_nonblocking(true).is_ok() {
            self.clients.push(Client { stream, inbuf: Vec::new() });
        }
    }

    /// Reads what client `i` sent; false when it has gone.
    pub fn pump_client(&mut self, i: usize) -> bool {
        let mut buf = [0u8; 4096];
        let client = &mut self.clients[i];
        loop {
            match client.stream.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => client.inbuf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
        for (kind, payload) in take_frames(&mut client.inbuf) {
            match kind {
                FRAME_DATA => {
                    let mut rest = &payload[..];
                    while !rest.is_empty() {
                        match rustix::io::write(&self.master, rest) {
                            Ok(n) => rest = &rest[n..],
                            Err(rustix::io::Errno::INTR) => continue,
                            Err(_) => break, // full pty buffer: drop the keystrokes
                        }
                    }
                }
                FRAME_RESIZE if payload.len() == 4 => {
                    let rows = u16::from_be_bytes([payload[0], payload[1]]);
                    let cols = u16::from_be_bytes([payload[2], payload[3]]);
                    let _ = sys::set_winsize(self.master.as_fd(), rows, cols);
                }
                _ => {}
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_across_partial_reads() {
        let mut wire = frame(FRAME_DATA, b"ls\r");
        wire.extend(frame(FRAME_RESIZE, &[0, 50, 0, 132]));
        let mut buf = wire[..4].to_vec();
        assert!(take_frames(&mut buf).is_empty());
        buf.extend_from_slice(&wire[4..]);
        let frames = take_frames(&mut buf);
        assert_eq!(frames, vec![(FRAME_DATA, b"ls\r".to_vec()), (FRAME_RESIZE, vec![0, 50, 0, 132])]);
        assert!(buf.is_empty());
    }

    #[test]
    fn log_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("console.log");
        let mut log = RotatingLog::open(&p, 8192);
        for _ in 0..100 {
            log.write(&[b'x'; 1000]);
        }
        let cur = std::fs::metadata(&p).unwrap().len();
        let old = std::fs::metadata(dir.path().join("console.log.1")).unwrap().len();
        assert!(cur <= 4096 && old <= 4096, "{cur} {old}");
        assert!(cur + old >= 4000);
    }

    #[test]
    fn console_pty_carries_bytes_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Console::open(None, &dir.path().join("console.log"), 1 << 20).unwrap();
        // The guest side: write to the slave as init would.
        let mut slave = OpenOptions::new().read(true).write(true).open(&c.slave_path).unwrap();
        slave.write_all(b"hello from init\r\n").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        c.pump_output();
        let logged = std::fs::read_to_string(dir.path().join("console.log")).unwrap();
        assert!(logged.contains("hello from init"), "{logged:?}");
    }
}
