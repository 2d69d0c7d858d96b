//! Requests on the control socket (status, stop, console) and readiness
//! notifications from init. A request of another protocol version is refused.

use std::io::BufReader;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::Monitor;
use super::proto::{self, Request, Response};
use crate::runtime::wire::{Kind, WireError};

impl Monitor {
    pub(super) fn on_control(&mut self) {
        while let Ok((stream, _)) = self.control.accept() {
            if let Some((req, stream)) = read_request(stream) {
                self.handle(req, stream);
            }
        }
    }

    fn handle(&mut self, req: Request, mut stream: UnixStream) {
        match req {
            Request::Status => {
                let mut r = Response::ok();
                r.phase = Some(self.state.phase);
                r.detail = self.state.init.map(|p| p.pid.to_string());
                let _ = proto::write_line(&mut stream, &r);
            }
            Request::Stop { timeout_s, force } => {
                if self.init.is_none() && !self.backing_off {
                    let between = WireError::new(Kind::Request, "the container is between boots; try again");
                    let _ = proto::write_line(&mut stream, &Response::fail(between));
                    return;
                }
                self.begin_stop(timeout_s, force, Some(stream));
            }
            Request::Console { rows, cols } => {
                if proto::write_line(&mut stream, &Response::ok()).is_ok() {
                    self.console.add_client(stream, rows, cols);
                }
            }
        }
    }

    pub(super) fn on_notify(&mut self) {
        use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
        let mut buf = [0u8; 4096];
        // Bounded, so a container flooding the socket cannot starve the other work.
        for _ in 0..64 {
            let mut cmsg = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let msg = match recvmsg::<()>(self.notify.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_DONTWAIT) {
                Ok(m) => m,
                Err(_) => return,
            };
            let mut sender = None;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmCredentials(cred) = c {
                        sender = Some(cred.pid());
                    }
                }
            }
            let len = msg.bytes;
            let text = String::from_utf8_lossy(&buf[..len]).into_owned();
            let init_pid = self.state.init.map(|p| p.pid);
            // Only init may say it is ready (services get systemd's own socket).
            if sender.is_some() && sender == init_pid && text.lines().any(|l| l == "READY=1") {
                self.mark_ready();
            }
        }
    }
}

/// Reads a client's one request; answers and drops a client whose request is of
/// another protocol version, or unreadable.
fn read_request(stream: UnixStream) -> Option<(Request, UnixStream)> {
    let _ = stream.set_nonblocking(false);
    // Our own CLI sends its request at once; do not let a silent client stall the
    // console and the stop deadline for long.
    let _ = stream.set_read_timeout(Some(Duration::from_millis(300)));
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut stream = stream;
    let refusal = match proto::read_line::<Request>(&mut reader) {
        Ok(Some(r)) => {
            let _ = stream.set_read_timeout(None);
            return Some((r, stream));
        }
        Ok(None) => return None,
        Err(proto::Error::Version { theirs }) => {
            tracing::warn!("refused a request in protocol {theirs} (this monitor speaks {})", proto::PROTOCOL);
            proto::version_refusal(theirs)
        }
        Err(e) => Response::fail(WireError::new(Kind::Request, format!("bad request: {e}"))),
    };
    let _ = proto::write_line(&mut stream, &refusal);
    None
}
