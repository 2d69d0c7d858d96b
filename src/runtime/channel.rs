//! The start handshake between the monitor and the container's first process, over a
//! `SOCK_SEQPACKET` socketpair (message boundaries kept, close-on-exec):
//!
//! 1. monitor → child: `GO`, carrying the prepared root-filesystem mount as an fd (and
//!    the shared folders' binds after it)
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

/// Sends `GO` with the root filesystem's mount attached, then the shared folders'.
pub fn send_go(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>, shares: &[BorrowedFd<'_>]) -> std::io::Result<()> {
    let fds: Vec<BorrowedFd> = std::iter::once(fd).chain(shares.iter().copied()).collect();
    send_fds(sock, GO, &fds)
}

/// Sends one message with any number of fds attached (at most 253, the kernel's bound).
pub fn send_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> std::io::Result<()> {
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsgs: Vec<ControlMessage> = if raw.is_empty() { vec![] } else { vec![ControlMessage::ScmRights(&raw)] };
    sendmsg::<()>(sock.as_raw_fd(), &[IoSlice::new(data)], &cmsgs, MsgFlags::empty(), None)?;
    Ok(())
}

/// Sends one message with an optional fd attached (used by `exec` too).
pub fn send(sock: BorrowedFd<'_>, data: &[u8], fd: Option<BorrowedFd<'_>>) -> std::io::Result<()> {
    send_fds(sock, data, fd.as_slice())
}

/// Receives one message and its fd, if one came; `None` at end-of-file.
pub fn recv(sock: BorrowedFd<'_>) -> std::io::Result<Option<(Vec<u8>, Option<OwnedFd>)>> {
    Ok(recv_fds(sock)?.map(|(data, fds)| (data, fds.into_iter().next())))
}

/// The most descriptors one received message may carry; more are closed.
const MAX_FDS: usize = 1 + crate::runtime::mounts::MAX_MOUNTS;

/// Receives one message and every fd that came with it; `None` at end-of-file.
pub fn recv_fds(sock: BorrowedFd<'_>) -> std::io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    let mut buf = vec![0u8; 4096];
    let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
    let (len, fds) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = loop {
            match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other?,
            }
        };
        let mut fds = Vec::new();
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(raw) = c {
                // SAFETY: SCM_RIGHTS hands us new descriptors that we now own.
                fds.extend(raw.into_iter().map(|r| unsafe { OwnedFd::from_raw_fd(r) }));
            }
        }
        (msg.bytes, fds)
    };
    if len == 0 && fds.is_empty() {
        return Ok(None);
    }
    buf.truncate(len);
    Ok(Some((buf, fds)))
}

/// Waits for `GO` and returns the root filesystem's mount and the shared folders'.
pub fn recv_go(sock: BorrowedFd<'_>) -> Result<(OwnedFd, Vec<OwnedFd>), super::Error> {
    use super::Error;
    match recv_fds(sock) {
        Ok(Some((data, mut fds))) if data == GO && !fds.is_empty() => {
            let tree = fds.remove(0);
            Ok((tree, fds))
        }
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
