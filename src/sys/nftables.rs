//! One nftables question asked over netlink instead of by running `nft`: does an
//! `inet` table exist, and under which handle. The kernel gives every new table a new
//! handle, so a recorded handle that still answers means the table was not replaced
//! (or flushed away) since. Running `nft` costs tens of milliseconds; this costs one
//! round trip.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NETLINK_NETFILTER: i32 = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_HANDLE: u16 = 4;
const NFPROTO_INET: u8 = 1;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_HDRLEN: usize = 16;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The request: nlmsghdr, nfgenmsg (family inet), NFTA_TABLE_NAME.
fn request(table: &str) -> Vec<u8> {
    let name_len = table.len() + 1;
    let attr_len = 4 + name_len;
    let len = NLMSG_HDRLEN + 4 + align4(attr_len);
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE).to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    m.extend_from_slice(&[NFPROTO_INET, 0, 0, 0]); // nfgenmsg: family, version 0, res_id 0
    m.extend_from_slice(&(attr_len as u16).to_ne_bytes());
    m.extend_from_slice(&NFTA_TABLE_NAME.to_ne_bytes());
    m.extend_from_slice(table.as_bytes());
    m.resize(len, 0);
    m
}

/// What one reply message says.
enum Reply {
    Table(Option<u64>),
    Ack,
    Missing,
    Failed(io::Error),
    Other,
}

fn parse(msg: &[u8]) -> Reply {
    let kind = u16::from_ne_bytes([msg[4], msg[5]]);
    if kind == NLMSG_ERROR {
        let Some(code) = msg.get(16..20) else { return Reply::Other };
        return match -i32::from_ne_bytes(code.try_into().expect("4 bytes")) {
            0 => Reply::Ack,
            libc::ENOENT => Reply::Missing,
            e => Reply::Failed(io::Error::from_raw_os_error(e)),
        };
    }
    if kind != (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE {
        return Reply::Other;
    }
    let mut at = NLMSG_HDRLEN + 4;
    while at + 4 <= msg.len() {
        let len = u16::from_ne_bytes([msg[at], msg[at + 1]]) as usize;
        let kind = u16::from_ne_bytes([msg[at + 2], msg[at + 3]]) & 0x3fff;
        if len < 4 || at + len > msg.len() {
            break;
        }
        if kind == NFTA_TABLE_HANDLE && len == 12 {
            let v: [u8; 8] = msg[at + 4..at + 12].try_into().expect("8 bytes");
            return Reply::Table(Some(u64::from_be_bytes(v)));
        }
        at += align4(len);
    }
    Reply::Table(None)
}

/// The handle of the `inet` table `table`, or `None` when there is no such table.
pub fn nft_table_handle(table: &str) -> io::Result<Option<u64>> {
    // SAFETY: socket() takes no pointers; the result is checked before it is owned.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_NETFILTER) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let req = request(table);
    // SAFETY: sends req.len() bytes from a live buffer on a socket we own.
    if unsafe { libc::send(sock.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 16384];
    let mut handle = None;
    loop {
        // SAFETY: receives at most buf.len() bytes into a live buffer we own.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut data = &buf[..n as usize];
        if data.is_empty() {
            return Ok(handle);
        }
        while data.len() >= NLMSG_HDRLEN {
            let len = u32::from_ne_bytes(data[..4].try_into().expect("4 bytes")) as usize;
            if len < NLMSG_HDRLEN || len > data.len() {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "truncated netlink message"));
            }
            match parse(&data[..len]) {
                Reply::Table(h) => handle = h.or(handle),
                Reply::Ack => return Ok(handle),
                Reply::Missing => return Ok(None),
                Reply::Failed(e) => return Err(e),
                Reply::Other => {}
            }
            data = &data[align4(len).min(data.len())..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_names_the_table_and_is_padded() {
        let r = request("abc");
        assert_eq!(r.len(), 16 + 4 + 8);
        assert_eq!(u32::from_ne_bytes(r[..4].try_into().unwrap()) as usize, r.len());
        assert_eq!(&r[24..28], b"abc\0");
    }

    #[test]
    fn replies_are_read_for_handle_absence_and_errors() {
        let mut table = vec![0u8; 16 + 4];
        table[4..6].copy_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE).to_ne_bytes());
        table.extend_from_slice(&12u16.to_ne_bytes());
        table.extend_from_slice(&NFTA_TABLE_HANDLE.to_ne_bytes());
        table.extend_from_slice(&42u64.to_be_bytes());
        assert!(matches!(parse(&table), Reply::Table(Some(42))));
        let err = |code: i32| {
            let mut m = vec![0u8; 16];
            m[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
            m.extend_from_slice(&code.to_ne_bytes());
            m
        };
        assert!(matches!(parse(&err(0)), Reply::Ack));
        assert!(matches!(parse(&err(-libc::ENOENT)), Reply::Missing));
        assert!(matches!(parse(&err(-libc::EPERM)), Reply::Failed(_)));
    }
}
