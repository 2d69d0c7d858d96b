//! Interface ioctls on the caller's network namespace: up, MAC address, rename.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Brings the loopback interface of the caller's network namespace up. A new network
/// namespace starts with `lo` down, and not every init raises it.
pub fn loopback_up() -> io::Result<()> {
    link_up("lo")
}

/// A datagram socket for interface ioctls, and an ifreq naming `name`.
fn ifreq(name: &str) -> io::Result<(OwnedFd, libc::ifreq)> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad interface name {name:?}")));
    }
    // SAFETY: plain socket(2) call; the fd is owned right away.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socket(2) returned a new descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: all-zero is a valid ifreq.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    Ok((sock, req))
}

/// Sets IFF_UP on interface `name` of the caller's network namespace
/// (`SIOCGIFFLAGS`/`SIOCSIFFLAGS`, as ifconfig does).
pub fn link_up(name: &str) -> io::Result<()> {
    let (sock, mut req) = ifreq(name)?;
    // SAFETY: ioctl on a valid socket with a pointer to a valid ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: as above, with the flags to set.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the MAC address of interface `name` (`SIOCSIFHWADDR`).
pub fn set_mac(name: &str, mac: [u8; 6]) -> io::Result<()> {
    let (sock, mut req) = ifreq(name)?;
    // SAFETY: writing the hardware address member of the ifreq union.
    unsafe {
        req.ifr_ifru.ifru_hwaddr.sa_family = libc::ARPHRD_ETHER;
        for (dst, src) in req.ifr_ifru.ifru_hwaddr.sa_data.iter_mut().zip(mac) {
            *dst = src as libc::c_char;
        }
    }
    // SAFETY: ioctl on a valid socket with a valid ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFHWADDR, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Renames interface `from` to `to` (`SIOCSIFNAME`; the interface must be down).
pub fn rename_link(from: &str, to: &str) -> io::Result<()> {
    let (sock, mut req) = ifreq(from)?;
    if to.is_empty() || to.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad interface name {to:?}")));
    }
    // SAFETY: writing bytes into the newname member of the ifreq union.
    unsafe {
        for (dst, src) in req.ifr_ifru.ifru_newname.iter_mut().zip(to.as_bytes()) {
            *dst = *src as libc::c_char;
        }
    }
    // SAFETY: ioctl on a valid socket with a valid ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFNAME, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
