//! The start handshake between the monitor and the container's first process, over a
//! `SOCK_SEQPACKET` socketpair (message boundaries kept, close-on-exec):
//!
//! 1. monitor → child: `GO`, carrying the prepared root-filesystem mount as an fd
//!    (sent only after the id maps are written and the child is in its cgroup);
//! 2. child → monitor: a `WireError` (JSON), or nothing: the child's end closes when
//!    init is executed, so end-of-file means success.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg, sendmsg, socketpair,
};

use super::wire::{Kind, WireError};

const GO: &[u8] = b"GO";

/// A close-on-exec SEQPACKET pair: (monitor end, child end).
pub fn pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).map_err(Into::into)
}

/// Sends `GO` with `fd` attached.
pub fn send_go(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> std::io::Result<()> {
    let fds = [fd.as_raw_fd()];
    sendmsg::<()>(sock.as_raw_fd(), &[IoSlice::new(GO)], &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None)?;
    Ok(())
}

/// Sends one message with an optional fd attached (used by `exec` too).
pub fn send(sock: BorrowedFd<'_>, data: &[u8], fd: Option<BorrowedFd<'_>>) -> std::io::Result<()> {
    let fds: Vec<RawFd> = fd.iter().map(|f| f.as_raw_fd()).collect();
    let cmsgs: Vec<ControlMessage> = if fds.is_empty() { vec![] } else { vec![ControlMessage::ScmRights(&fds)] };
    sendmsg::<()>(sock.as_raw_fd(), &[IoSlice::new(data)], &cmsgs, MsgFlags::empty(), None)?;
    Ok(())
}

/// Receives one message and its fd, if one came; `None` at end-of-file.
pub fn recv(sock: BorrowedFd<'_>) -> std::io::Result<Option<(Vec<u8>, Option<OwnedFd>)>> {
    let mut buf = vec![0u8; 4096];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let (len, fd) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = loop {
            match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other?,
            }
        };
        let mut fd = None;
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for (i, raw) in fds.into_iter().enumerate() {
                    // SAFETY: SCM_RIGHTS hands us new descriptors that we now own.
                    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                    if i == 0 {
                        fd = Some(owned);
                    }
                }
            }
        }
        (msg.bytes, fd)
    };
    if len == 0 && fd.is_none() {
        return Ok(None);
    }
    buf.truncate(len);
    Ok(Some((buf, fd)))
}

/// Waits for `GO` and returns the fd that came with it.
pub fn recv_go(sock: BorrowedFd<'_>) -> Result<OwnedFd, super::Error> {
    use super::Error;
    match recv(sock) {
        Ok(Some((data, Some(fd)))) if data == GO => Ok(fd),
        Ok(None) => Err(Error::Handshake("the monitor went away before the start handshake")),
        Ok(Some(_)) => Err(Error::Handshake("unexpected message in the start handshake")),
        Err(source) => Err(Error::Step { action: "receive the start handshake".into(), source }),
    }
}

/// Waits for the child's verdict: `Ok` when its end closed (init was executed), or
/// the failure it reported.
pub fn recv_verdict(sock: BorrowedFd<'_>) -> Result<(), WireError> {
    match recv(sock) {
        Ok(None) => Ok(()),
        Ok(Some((data, _))) => Err(WireError::from_json(&data)),
        Err(e) => Err(WireError::new(Kind::Namespaces, format!("failed to read the container's start result: {e}"))),
    }
}
