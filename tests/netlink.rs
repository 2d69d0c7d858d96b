//! The netlink facade against the real kernel: bridges, addresses, veth pairs, moving a
//! link into another network namespace, and no threads left behind. Needs root (ignored
//! unless asked for; fails without root). Links are named `ht<pid%10000><tag>` and deleted even on panic; addresses
//! come from 10.200.0.0/13 avoiding every route and address already on the host, and no
//! traffic is ever sent.
//!
//! Run: `cargo test --test netlink -- --include-ignored --test-threads=1` (the thread count check assumes
//! no other test runs meanwhile).

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use hutch::network::link::{Netlink, ifname_ok};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid, fork};

fn is_root() -> bool {
    // These tests are ignored unless asked for; one that runs without root fails
    // (in and out of CI), so it never shows as passed.
    assert!(nix::unistd::geteuid().is_root(), "netlink tests need root (run them as root with --include-ignored)");
    true
}

fn name(tag: &str) -> String {
    let n = format!("ht{}{tag}", std::process::id() % 10000);
    assert!(ifname_ok(&n), "{n}");
    n
}

/// Deletes the named links when dropped, panic or not (a veth goes with either end).
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(nl) = Netlink::new() {
            for n in &self.0 {
                let _ = nl.delete(n);
            }
        }
    }
}

/// A forked child in its own network namespace, killed and reaped when dropped.
struct NetnsChild {
    pid: Option<Pid>,
    // The child blocks reading the other end until it is killed.
    _hold: OwnedFd,
}

impl NetnsChild {
    fn spawn() -> NetnsChild {
        let (ready_r, ready_w) = nix::unistd::pipe().unwrap();
        let (hold_r, hold_w) = nix::unistd::pipe().unwrap();
        // SAFETY: the child only calls async-signal-safe functions (unshare, write,
        // read, _exit) before it exits.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                drop(ready_r);
                drop(hold_w);
                let ok: u8 = if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).is_ok() { 1 } else { 0 };
                let _ = nix::unistd::write(&ready_w, &[ok]);
                let mut b = [0u8; 1];
                let _ = nix::unistd::read(&hold_r, &mut b);
                // SAFETY: _exit ends the process without running the parent's atexit handlers.
                unsafe { libc::_exit(0) }
            }
            ForkResult::Parent { child } => {
                drop(ready_w);
                drop(hold_r);
                let guard = NetnsChild { pid: Some(child), _hold: hold_w };
                let mut b = [0u8; 1];
                assert_eq!(nix::unistd::read(ready_r.as_fd(), &mut b).unwrap(), 1, "child died early");
                assert_eq!(b[0], 1, "child could not unshare its network namespace");
                guard
            }
        }
    }

    fn pid(&self) -> Pid {
        self.pid.unwrap()
    }

    fn kill(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
}

impl Drop for NetnsChild {
    fn drop(&mut self) {
        self.kill();
    }
}

fn sys(name: &str, file: &str) -> Option<String> {
    std::fs::read_to_string(Path::new("/sys/class/net").join(name).join(file)).ok().map(|s| s.trim().to_string())
}

fn exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// IPv4 networks already in use: the routing table plus every address on every link.
fn used_nets(nl: &Netlink) -> Vec<(u32, u32)> {
    let mut used = Vec::new();
    for line in std::fs::read_to_string("/proc/net/route").unwrap().lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let hex = |s: &str| u32::from_be_bytes(u32::from_str_radix(s, 16).unwrap().to_ne_bytes());
        let (dest, mask) = (hex(f[1]), hex(f[7]));
        if mask != 0 {
            // The default route overlaps everything: not a conflict for an on-link /24.
            used.push((dest & mask, mask));
        }
    }
    for l in nl.list().unwrap() {
        for (ip, p) in nl.addresses(l.index).unwrap() {
            if let IpAddr::V4(v4) = ip {
                let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
                used.push((u32::from(v4) & mask, mask));
            }
        }
    }
    used
}

/// A 10.X.Y.0/24 (X in 200..=255) overlapping nothing in use, picked from the pid.
fn free_subnet(nl: &Netlink) -> Ipv4Addr {
    let used = used_nets(nl);
    let seed = std::process::id() as usize;
    for k in 0..56 * 256 {
        let v = (seed * 7 + k) % (56 * 256);
        let net = u32::from(Ipv4Addr::new(10, 200 + (v / 256) as u8, (v % 256) as u8, 0));
        let mask = u32::MAX << 8;
        if used.iter().all(|&(d, m)| {
            let common = mask & m;
            net & common != d & common
        }) {
            return Ipv4Addr::from(net);
        }
    }
    panic!("no free /24 in 10.200.0.0/13");
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn bridge_with_an_address_comes_up_and_goes() {
    if !is_root() {
        return;
    }
    let nl = Netlink::new().unwrap();
    let br = name("b1");
    let _c = Cleanup(vec![br.clone()]);
    let net = free_subnet(&nl).octets();
    let ip = IpAddr::V4(Ipv4Addr::new(net[0], net[1], net[2], 1));

    assert_eq!(nl.get(&br).unwrap(), None);
    let link = nl.create_bridge(&br).unwrap();
    assert_eq!(link.name, br);
    assert_eq!(link.kind.as_deref(), Some("bridge"));
    assert!(!link.up);
    assert!(link.mac.is_some());
    assert!(Path::new("/sys/class/net").join(&br).join("bridge").is_dir());
    assert_eq!(sys(&br, "type").as_deref(), Some("1"));
    assert_eq!(sys(&br, "ifindex"), Some(link.index.to_string()));

    // A second create is refused, naming the bridge and the errno.
    let e = nl.create_bridge(&br).unwrap_err();
    assert_eq!(e.to_string(), format!("failed to create bridge {br}: File exists (os error 17)"));
    assert_eq!(e.errno(), Some(libc::EEXIST));
    assert!(e.hint().is_some());

    nl.add_address(link.index, ip, 24).unwrap();
    nl.add_address(link.index, ip, 24).unwrap(); // idempotent
    nl.set_up(link.index).unwrap();
    let addrs = nl.addresses(link.index).unwrap();
    assert!(addrs.contains(&(ip, 24)), "{addrs:?}");
    assert_eq!(addrs.iter().filter(|(a, _)| a.is_ipv4()).count(), 1, "{addrs:?}");
    let flags = u32::from_str_radix(sys(&br, "flags").unwrap().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & libc::IFF_UP as u32, libc::IFF_UP as u32);
    let now = nl.get(&br).unwrap().unwrap();
    assert!(now.up);
    assert_eq!(now.index, link.index);

    // Stats are the kernel's counters.
    let rx0: u64 = sys(&br, "statistics/rx_bytes").unwrap().parse().unwrap();
    let tx0: u64 = sys(&br, "statistics/tx_bytes").unwrap().parse().unwrap();
    let s = nl.get(&br).unwrap().unwrap();
    let rx1: u64 = sys(&br, "statistics/rx_bytes").unwrap().parse().unwrap();
    let tx1: u64 = sys(&br, "statistics/tx_bytes").unwrap().parse().unwrap();
    assert!(rx0 <= s.rx_bytes && s.rx_bytes <= rx1, "{rx0} {} {rx1}", s.rx_bytes);
    assert!(tx0 <= s.tx_bytes && s.tx_bytes <= tx1, "{tx0} {} {tx1}", s.tx_bytes);

    assert!(nl.list().unwrap().iter().any(|l| l.name == br && l.index == link.index));
    assert!(nl.delete(&br).unwrap());
    assert!(!exists(&br));
    assert_eq!(nl.get(&br).unwrap(), None);
    assert!(!nl.delete(&br).unwrap());
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn veth_host_end_joins_the_bridge_and_the_peer_has_its_mac() {
    if !is_root() {
        return;
    }
    let nl = Netlink::new().unwrap();
    let (br, host, peer) = (name("b2"), name("h2"), name("p2"));
    let _c = Cleanup(vec![host.clone(), br.clone()]);
    let pid = std::process::id();
    let mac = [0x02, 0x68, 0x74, (pid >> 16) as u8, (pid >> 8) as u8, pid as u8];

    let bridge = nl.create_bridge(&br).unwrap();
    let (h, p) = nl.create_veth(&host, &peer, mac).unwrap();
    assert_eq!((h.name.as_str(), p.name.as_str()), (host.as_str(), peer.as_str()));
    assert_eq!(h.kind.as_deref(), Some("veth"));
    assert_eq!(p.kind.as_deref(), Some("veth"));
    assert_eq!(p.mac, Some(mac));
    let want = mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
    assert_eq!(sys(&peer, "address"), Some(want));
    assert_ne!(h.mac, Some(mac));

    // Either end's name taken: refused.
    let e = nl.create_veth(&host, &name("x2"), [2, 0, 0, 0, 0, 9]).unwrap_err();
    assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
    assert!(!exists(&name("x2")));

    nl.set_master(h.index, bridge.index).unwrap();
    nl.set_up(h.index).unwrap();
    let master = std::fs::read_link(Path::new("/sys/class/net").join(&host).join("master")).unwrap();
    assert_eq!(master.file_name().unwrap().to_str(), Some(br.as_str()));
    assert!(Path::new("/sys/class/net").join(&br).join("brif").join(&host).exists());
    assert_eq!(nl.get(&host).unwrap().unwrap().master, Some(bridge.index));
    assert_eq!(nl.get(&peer).unwrap().unwrap().master, None);

    // Deleting one end takes the other.
    assert!(nl.delete(&peer).unwrap());
    assert!(!exists(&host));
    assert!(!exists(&peer));
    assert!(nl.delete(&br).unwrap());
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn peer_moved_into_a_namespace_dies_with_it() {
    if !is_root() {
        return;
    }
    let nl = Netlink::new().unwrap();
    let (host, peer) = (name("h3"), name("p3"));
    let _c = Cleanup(vec![host.clone()]);
    let mut child = NetnsChild::spawn();

    let (_, p) = nl.create_veth(&host, &peer, [0x02, 0, 0, 0, 0x33, 0x01]).unwrap();
    nl.move_to_netns_of(p.index, child.pid().as_raw()).unwrap();
    assert!(!exists(&peer));
    assert_eq!(nl.get(&peer).unwrap(), None);
    let dev = std::fs::read_to_string(format!("/proc/{}/net/dev", child.pid())).unwrap();
    assert!(dev.lines().any(|l| l.trim_start().starts_with(&format!("{peer}:"))), "{dev}");
    assert!(exists(&host));

    // A process that is gone: a clear error.
    let e = nl.move_to_netns_of(nl.get(&host).unwrap().unwrap().index, 0x3fff_fff0).unwrap_err();
    assert_eq!(e.errno(), Some(libc::ESRCH), "{e}");
    assert!(e.to_string().starts_with(&format!("failed to move link {host} into the network namespace of pid")), "{e}");

    child.kill();
    assert!(eventually(Duration::from_secs(5), || !exists(&host)), "{host} outlived the namespace");
    assert!(!nl.delete(&host).unwrap());
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn no_threads_are_started() {
    if !is_root() {
        return;
    }
    // In a forked, single-threaded child (the harness runs other tests on other
    // threads, so this process's own count proves nothing): one task throughout.
    // SAFETY: the child allocates (glibc's malloc is fork-safe) and uses no lock
    // another thread could hold; it leaves through _exit.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            let code = (|| {
                if threads() != 1 {
                    return 2;
                }
                let Ok(nl) = Netlink::new() else { return 3 };
                if nl.get("lo").ok().flatten().is_none() || nl.list().is_err() {
                    return 4;
                }
                if threads() != 1 {
                    return 5;
                }
                drop(nl);
                if threads() != 1 {
                    return 6;
                }
                0
            })();
            // SAFETY: ends the forked child without unwinding into the harness.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            let status = waitpid(child, None).unwrap();
            assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
        }
    }
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn absent_links_are_none_not_errors() {
    if !is_root() {
        return;
    }
    let nl = Netlink::new().unwrap();
    let n = name("z5");
    assert_eq!(nl.get(&n).unwrap(), None);
    assert!(!nl.delete(&n).unwrap());
    assert!(!nl.list().unwrap().iter().any(|l| l.name == n));
    let e = nl.set_up(0x7fff_fff0).unwrap_err();
    assert_eq!(e.errno(), Some(libc::ENODEV), "{e}");
    assert!(e.to_string().starts_with("failed to bring up link #2147483632: No such device"), "{e}");
}
