//! Network links over rtnetlink, behind a small synchronous facade.
//!
//! hutch's CLI and monitor are single-threaded and fork; rtnetlink is async. A
//! [`Netlink`] owns a current-thread tokio runtime (I/O driver only: no worker or
//! blocking-pool threads are ever started), the rtnetlink connection task spawned on
//! it, and runs each operation to completion with `block_on` on the calling thread.
//!
//! The socket belongs to the network namespace the process was in when [`Netlink::new`]
//! ran, and to the process that made it: make a new one after a fork or a `setns`.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::pin;

use futures_util::stream::{Stream, StreamExt};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use rtnetlink::{LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth};
use thiserror::Error;

/// Linux's IFNAMSIZ, counting the terminating NUL.
const IFNAMSIZ: usize = 16;

/// One network interface, as the kernel reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// The rtnetlink kind ("bridge", "veth", ...); `None` for physical devices and `lo`.
    pub kind: Option<String>,
    pub mac: Option<[u8; 6]>,
    /// Administratively up (IFF_UP); says nothing about carrier.
    pub up: bool,
    /// Index of the bridge (or other controller) this link is attached to.
    pub master: Option<u32>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

#[derive(Debug, Error)]
pub enum Error {
    /// The kernel (or the runtime's setup) refused, with an errno.
    #[error("failed to {verb} {object}: {source}")]
    Os {
        verb: &'static str,
        object: String,
        #[source]
        source: io::Error,
    },
    /// Refused before asking the kernel: a bad name, MAC address, prefix or pid.
    #[error("failed to {verb} {object}: {detail}")]
    Invalid { verb: &'static str, object: String, detail: String },
    /// The kernel's answer was not what rtnetlink expected, or the connection closed.
    #[error("failed to {verb} {object}: {detail}")]
    Protocol { verb: &'static str, object: String, detail: String },
}

impl Error {
    /// The errno behind the failure, when the kernel gave one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Os { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    pub fn hint(&self) -> Option<String> {
        let Error::Os { verb, object, .. } = self else {
            return None;
        };
        let hint = match self.errno()? {
            libc::EPERM | libc::EACCES => {
                "run as root: managing network links needs CAP_NET_ADMIN in the host's network namespace"
            }
            libc::EEXIST if *verb == "create" => {
                "another network interface already has that name: remove it or choose another name"
            }
            libc::EOPNOTSUPP if *verb == "create" => {
                if object.starts_with("veth") {
                    "the kernel has no veth support: load it with `modprobe veth`"
                } else {
                    "the kernel has no bridge support: load it with `modprobe bridge`"
                }
            }
            libc::ESRCH if *verb == "move" => "the process owning that network namespace has exited",
            libc::ENODEV => "the interface is gone (deleted concurrently?)",
            libc::EMFILE | libc::ENFILE => "too many open files: raise the limit (ulimit -n)",
            _ => return None,
        };
        Some(hint.to_string())
    }

    fn from_rtnl(verb: &'static str, object: String, e: rtnetlink::Error) -> Error {
        match e {
            rtnetlink::Error::NetlinkError(m) if m.raw_code() != 0 => Error::Os { verb, object, source: m.to_io() },
            rtnetlink::Error::RequestFailed => {
                Error::Protocol { verb, object, detail: "the netlink connection closed".to_string() }
            }
            other => Error::Protocol { verb, object, detail: other.to_string() },
        }
    }
}

fn errno_of(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) if m.raw_code() != 0 => Some(m.raw_code().abs()),
        _ => None,
    }
}

/// Whether the kernel would take `s` as an interface name, as hutch uses them: 1 to 15
/// bytes, not `.` or `..`, no `/`, `:`, `%` (the kernel's `%d` templates), whitespace or
/// control characters.
pub fn ifname_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() < IFNAMSIZ
        && s != "."
        && s != ".."
        && !s.chars().any(|c| c == '/' || c == ':' || c == '%' || c.is_whitespace() || c.is_control())
}

fn check_name(verb: &'static str, object: impl FnOnce() -> String, name: &str) -> Result<(), Error> {
    if ifname_ok(name) {
        return Ok(());
    }
    Err(Error::Invalid {
        verb,
        object: object(),
        detail: format!(
            "{name:?} is not a valid interface name (1 to {} bytes, no '/', ':', '%' or whitespace)",
            IFNAMSIZ - 1
        ),
    })
}

fn fmt_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

pub struct Netlink {
    // Declared before the runtime: dropped first, then the runtime drops the connection task.
    handle: rtnetlink::Handle,
    rt: tokio::runtime::Runtime,
}

impl Netlink {
    /// Opens a NETLINK_ROUTE socket in the current network namespace. Starts no thread.
    pub fn new() -> Result<Netlink, Error> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().map_err(|source| Error::Os {
            verb: "start",
            object: "the netlink runtime".to_string(),
            source,
        })?;
        // The socket registers with the runtime's I/O driver, which needs its context.
        let (conn, handle, _) = {
            let _ctx = rt.enter();
            rtnetlink::new_connection().map_err(|source| Error::Os {
                verb: "open",
                object: "a netlink socket".to_string(),
                source,
            })?
        };
        rt.spawn(conn);
        Ok(Netlink { handle, rt })
    }

    fn run<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    fn collect<T>(&self, s: impl Stream<Item = Result<T, rtnetlink::Error>>) -> Result<Vec<T>, rtnetlink::Error> {
        self.run(async {
            let mut s = pin!(s);
            let mut out = Vec::new();
            // Drain to the end even after an error, so no reply is left queued.
            let mut err = None;
            while let Some(item) = s.next().await {
                match item {
                    Ok(v) => out.push(v),
                    Err(e) => {
                        err.get_or_insert(e);
                    }
                }
            }
            match err {
                Some(e) => Err(e),
                None => Ok(out),
            }
        })
    }

    /// "link NAME" for messages about an index, or "link #INDEX" when it has no name
    /// (any more). Only called on error paths.
    fn describe(&self, index: u32) -> String {
        let req = self.handle.link().get().match_index(index).execute();
        match self.collect(req) {
            Ok(msgs) => match msgs.first().map(parse_link) {
                Some(l) => format!("link {}", l.name),
                None => format!("link #{index}"),
            },
            Err(_) => format!("link #{index}"),
        }
    }

    /// The link named `name`, or `None` when there is none.
    pub fn get(&self, name: &str) -> Result<Option<Link>, Error> {
        check_name("look up", || format!("link {name:?}"), name)?;
        match self.collect(self.handle.link().get().match_name(name).execute()) {
            Ok(msgs) => Ok(msgs.first().map(parse_link)),
            Err(e) if errno_of(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(Error::from_rtnl("look up", format!("link {name}"), e)),
        }
    }

    fn get_index(&self, index: u32) -> Result<Option<Link>, rtnetlink::Error> {
        match self.collect(self.handle.link().get().match_index(index).execute()) {
            Ok(msgs) => Ok(msgs.first().map(parse_link)),
            Err(e) if errno_of(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every link in this network namespace.
    pub fn list(&self) -> Result<Vec<Link>, Error> {
        let msgs = self
            .collect(self.handle.link().get().execute())
            .map_err(|e| Error::from_rtnl("list", "network links".to_string(), e))?;
        Ok(msgs.iter().map(parse_link).collect())
    }

    /// Fetches a link just created, as the operation's result.
    fn created(&self, verb: &'static str, object: impl Fn() -> String, name: &str) -> Result<Link, Error> {
        match self.collect(self.handle.link().get().match_name(name).execute()) {
            Ok(msgs) if !msgs.is_empty() => Ok(parse_link(&msgs[0])),
            Ok(_) => Err(Error::Protocol { verb, object: object(), detail: format!("{name} vanished right after") }),
            Err(e) => Err(Error::from_rtnl(verb, object(), e)),
        }
    }

    /// Creates a bridge, down and without addresses. Fails with EEXIST when any link
    /// of that name exists (whatever its kind: callers check with [`get`](Self::get)).
    pub fn create_bridge(&self, name: &str) -> Result<Link, Error> {
        let object = || format!("bridge {name}");
        check_name("create", object, name)?;
        let msg = LinkMessageBuilder::<LinkBridge>::new(name).build();
        self.run(self.handle.link().add(msg).execute()).map_err(|e| Error::from_rtnl("create", object(), e))?;
        self.created("create", object, name)
    }

    /// Assigns `addr/prefix` to the link; an address already there is success.
    pub fn add_address(&self, index: u32, addr: IpAddr, prefix: u8) -> Result<(), Error> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let object = |this: &Self| format!("address {addr}/{prefix} to {}", this.describe(index));
        if prefix > max {
            return Err(Error::Invalid {
                verb: "add",
                object: object(self),
                detail: format!("the prefix length must be at most {max}"),
            });
        }
        match self.run(self.handle.address().add(index, addr, prefix).execute()) {
            Ok(()) => Ok(()),
            Err(e) if errno_of(&e) == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(Error::from_rtnl("add", object(self), e)),
        }
    }

    /// The link's addresses with their prefix lengths, IPv4 and IPv6.
    pub fn addresses(&self, index: u32) -> Result<Vec<(IpAddr, u8)>, Error> {
        let mut req = self.handle.address().get().set_link_index_filter(index);
        // Ask the kernel for this link only too (honoured under strict checking).
        req.message_mut().header.index = index;
        let msgs = self
            .collect(req.execute())
            .map_err(|e| Error::from_rtnl("list", format!("the addresses of {}", self.describe(index)), e))?;
        Ok(msgs.iter().filter(|m| m.header.index == index).filter_map(parse_address).collect())
    }

    /// Brings the link administratively up.
    pub fn set_up(&self, index: u32) -> Result<(), Error> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.run(self.handle.link().change(msg).execute())
            .map_err(|e| Error::from_rtnl("bring up", self.describe(index), e))
    }

    /// Creates a veth pair `host` <-> `peer`, both down, the peer with `peer_mac`.
    pub fn create_veth(&self, host: &str, peer: &str, peer_mac: [u8; 6]) -> Result<(Link, Link), Error> {
        let object = || format!("veth pair {host}/{peer}");
        check_name("create", object, host)?;
        check_name("create", object, peer)?;
        if host == peer {
            return Err(Error::Invalid {
                verb: "create",
                object: object(),
                detail: "the two ends need different names".to_string(),
            });
        }
        if peer_mac[0] & 1 != 0 || peer_mac == [0; 6] {
            return Err(Error::Invalid {
                verb: "create",
                object: object(),
                detail: format!("{} is not a unicast MAC address", fmt_mac(&peer_mac)),
            });
        }
        let peer_msg = LinkUnspec::new_with_name(peer).address(peer_mac.to_vec()).build();
        let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(host.to_string())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
            .build();
        self.run(self.handle.link().add(msg).execute()).map_err(|e| Error::from_rtnl("create", object(), e))?;

        let result = (|| {
            let host_link = self.created("create", object, host)?;
            let mut peer_link = self.created("create", object, peer)?;
            if peer_link.mac != Some(peer_mac) {
                // A kernel that ignored the peer's address at creation: set it now.
                let msg = LinkUnspec::new_with_index(peer_link.index).address(peer_mac.to_vec()).build();
                self.run(self.handle.link().change(msg).execute()).map_err(|e| {
                    Error::from_rtnl("set", format!("MAC address {} of link {peer}", fmt_mac(&peer_mac)), e)
                })?;
                peer_link = self.created("create", object, peer)?;
            }
            Ok((host_link, peer_link))
        })();
        if result.is_err() {
            // Deleting one end deletes both: leave nothing half-made.
            let _ = self.delete(host);
        }
        result
    }

    /// Attaches the link to a bridge (or other controller).
    pub fn set_master(&self, index: u32, master: u32) -> Result<(), Error> {
        let msg = LinkUnspec::new_with_index(index).controller(master).build();
        self.run(self.handle.link().change(msg).execute()).map_err(|e| {
            Error::from_rtnl("attach", format!("{} to {}", self.describe(index), self.describe(master)), e)
        })
    }

    /// Moves the link into the network namespace of process `pid` (IFLA_NET_NS_PID).
    /// It leaves this namespace, so this facade no longer sees it.
    pub fn move_to_netns_of(&self, index: u32, pid: i32) -> Result<(), Error> {
        let object = |this: &Self| format!("{} into the network namespace of pid {pid}", this.describe(index));
        let Ok(upid) = u32::try_from(pid) else {
            return Err(Error::Invalid { verb: "move", object: object(self), detail: "not a process id".to_string() });
        };
        if upid == 0 {
            return Err(Error::Invalid { verb: "move", object: object(self), detail: "not a process id".to_string() });
        }
        let msg = LinkUnspec::new_with_index(index).setns_by_pid(upid).build();
        self.run(self.handle.link().change(msg).execute()).map_err(|e| Error::from_rtnl("move", object(self), e))
    }

    /// Deletes the link named `name` (for a veth, both ends); `false` when there was
    /// none. The kernel looks the name up itself: no window between lookup and delete.
    pub fn delete(&self, name: &str) -> Result<bool, Error> {
        check_name("delete", || format!("link {name:?}"), name)?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.run(self.handle.link().del_with_message(msg).execute()) {
            Ok(()) => Ok(true),
            Err(e) if errno_of(&e) == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(Error::from_rtnl("delete", format!("link {name}"), e)),
        }
    }

    /// The link with this index, or `None`.
    pub fn get_by_index(&self, index: u32) -> Result<Option<Link>, Error> {
        self.get_index(index).map_err(|e| Error::from_rtnl("look up", format!("link #{index}"), e))
    }
}

fn parse_link(m: &LinkMessage) -> Link {
    let mut link = Link {
        index: m.header.index,
        name: String::new(),
        kind: None,
        mac: None,
        up: m.header.flags.contains(LinkFlags::Up),
        master: None,
        rx_bytes: 0,
        tx_bytes: 0,
    };
    let mut have64 = false;
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Address(a) => link.mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
            LinkAttribute::Controller(c) => link.master = Some(*c),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        link.kind = Some(k.to_string());
                    }
                }
            }
            LinkAttribute::Stats64(s) => {
                have64 = true;
                link.rx_bytes = s.rx_bytes;
                link.tx_bytes = s.tx_bytes;
            }
            LinkAttribute::Stats(s) if !have64 => {
                link.rx_bytes = s.rx_bytes.into();
                link.tx_bytes = s.tx_bytes.into();
            }
            _ => {}
        }
    }
    link
}

fn parse_address(m: &AddressMessage) -> Option<(IpAddr, u8)> {
    // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's on
    // point-to-point links); IPv6 sends only IFA_ADDRESS.
    let mut local = None;
    let mut address = None;
    for a in &m.attributes {
        match a {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            _ => {}
        }
    }
    let ip = local.or(address)?;
    match (m.header.family, ip) {
        (AddressFamily::Inet, IpAddr::V4(_)) | (AddressFamily::Inet6, IpAddr::V6(_)) => {}
        _ => return None,
    }
    Some((ip, m.header.prefix_len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroI32;

    #[test]
    fn ifname_ok_follows_the_kernel() {
        for good in ["eth0", "hutchbr0", "a", "abcdefghijklmno", "veth-x_1.2", "ht1234"] {
            assert!(ifname_ok(good), "{good}");
        }
        for bad in ["", ".", "..", "abcdefghijklmnop", "a/b", "a:b", "eth%d", "a b", "a\tb", "a\nb", "a\0b"] {
            assert!(!ifname_ok(bad), "{bad:?}");
        }
        // 15 bytes, not 15 characters.
        assert!(!ifname_ok("ééééééééé"));
        assert!(ifname_ok("éééé"));
    }

    fn nl_error(errno: i32) -> rtnetlink::Error {
        let mut m = rtnetlink::packet_core::ErrorMessage::default();
        m.code = NonZeroI32::new(-errno);
        rtnetlink::Error::NetlinkError(m)
    }

    #[test]
    fn messages_read_failed_to_verb_object_cause() {
        let e = Error::from_rtnl("create", "bridge hutchbr0".to_string(), nl_error(libc::EEXIST));
        assert_eq!(e.to_string(), "failed to create bridge hutchbr0: File exists (os error 17)");
        assert_eq!(e.errno(), Some(libc::EEXIST));
        assert!(e.hint().unwrap().contains("already has that name"));

        let e = Error::from_rtnl("create", "veth pair a/b".to_string(), nl_error(libc::EPERM));
        assert_eq!(e.to_string(), "failed to create veth pair a/b: Operation not permitted (os error 1)");
        assert!(e.hint().unwrap().starts_with("run as root"));

        let e = Error::from_rtnl("create", "veth pair a/b".to_string(), nl_error(libc::EOPNOTSUPP));
        assert!(e.hint().unwrap().contains("modprobe veth"));

        let e = Error::from_rtnl("list", "network links".to_string(), rtnetlink::Error::RequestFailed);
        assert_eq!(e.to_string(), "failed to list network links: the netlink connection closed");
        assert_eq!(e.errno(), None);
        assert_eq!(e.hint(), None);

        let e = check_name("create", || "bridge \"a/b\"".to_string(), "a/b").unwrap_err();
        assert!(e.to_string().starts_with("failed to create bridge \"a/b\": \"a/b\" is not a valid interface name"));
    }

    #[test]
    fn invalid_input_is_refused_before_the_kernel() {
        let nl = Netlink::new().unwrap();
        let e = nl.create_veth("ht-a", "ht-b", [0x01, 0, 0, 0, 0, 1]).unwrap_err();
        assert!(e.to_string().contains("01:00:00:00:00:01 is not a unicast MAC address"), "{e}");
        let e = nl.create_veth("ht-a", "ht-a", [0x02, 0, 0, 0, 0, 1]).unwrap_err();
        assert!(e.to_string().contains("different names"), "{e}");
        let e = nl.create_bridge("sixteen-bytes-xx").unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }), "{e}");
        let e = nl.move_to_netns_of(1, -5).unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }), "{e}");
    }

    #[test]
    fn loopback_is_listed_without_privileges() {
        let nl = Netlink::new().unwrap();
        let lo = nl.get("lo").unwrap().expect("lo");
        assert_eq!(lo.index, 1);
        assert_eq!(lo.kind, None);
        assert!(nl.list().unwrap().iter().any(|l| l.name == "lo"));
        assert_eq!(nl.get_by_index(lo.index).unwrap().unwrap().name, "lo");
        assert!(nl.addresses(lo.index).unwrap().iter().any(|(ip, p)| ip.is_loopback() && *p == 8));
    }
}
