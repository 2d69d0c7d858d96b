//! Addresses for managed networks: subnets (IPv4 and the IPv6 ULA /64), picking a free
//! subnet against the host's routes, allocating container addresses, stable MAC
//! addresses and interface names. Pure logic: callers read `/proc/net/route`, the
//! network's reservations and so on, and pass the text or values in.
//!
//! Every hash here (MACs, hashed interface names, ULA prefixes) is FNV-1a 64 followed
//! by murmur3's `fmix64` finaliser, so that seeds differing in one character differ in
//! every output byte. The outputs are persisted (MACs in containers' configs, names
//! of live interfaces), so the function must never change.

use std::collections::HashSet;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// Linux's `IFNAMSIZ` less the terminating NUL.
pub(crate) const IFNAME_MAX: usize = 15;
/// The smallest and largest IPv4 networks hutch manages: a /30 still holds the gateway
/// and one container; a /8 is the whole of 10.0.0.0/8.
pub(crate) const MIN_PREFIX: u8 = 8;
pub(crate) const MAX_PREFIX: u8 = 30;
/// The OUI LXC and Xen use for guests' MACs (`00:16:3e`).
pub(crate) const MAC_OUI: [u8; 3] = [0x00, 0x16, 0x3e];

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    #[error("failed to parse subnet {input:?}: {problem}")]
    Subnet { input: String, problem: String },
    #[error("failed to parse IPv6 subnet {input:?}: {problem}")]
    Subnet6 { input: String, problem: String },
    #[error("failed to reserve {ip} on {network}: it is outside the network's subnet {net}")]
    Outside { ip: Ipv4Addr, network: String, net: V4Net },
    #[error("failed to reserve {ip} on {network}: it is the {what} of {net}")]
    Reserved { ip: Ipv4Addr, network: String, net: V4Net, what: &'static str },
    #[error("failed to reserve {ip} on {network}: another container already holds it")]
    Taken { ip: Ipv4Addr, network: String, net: V4Net },
    #[error(
        "failed to allocate an address on {network}: its subnet {net} holds {size} container addresses and all are in use"
    )]
    Exhausted { network: String, net: V4Net, size: u32 },
    #[error("failed to parse MAC address {input:?}: {problem}")]
    Mac { input: String, problem: &'static str },
    #[error("failed to use interface name {name:?}: {problem}")]
    Ifname { name: String, problem: &'static str },
    #[error("failed to parse {input:?} as a NIC's IPv4 address: expected \"auto\" or an IPv4 address")]
    Ipv4Mode { input: String },
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Subnet { .. } => Some(format!(
                "write the network address and a prefix length between /{MIN_PREFIX} and /{MAX_PREFIX}, e.g. 10.0.3.0/24"
            )),
            Error::Subnet6 { .. } => Some("write a /64 network address, e.g. fd42:1:2:3::/64".into()),
            Error::Outside { net, .. } | Error::Reserved { net, .. } => Some(format!(
                "pick an address between {} and {}, or leave it out and hutch picks a free one",
                net.first_host(),
                net.last_host()
            )),
            Error::Taken { .. } => Some("pick another address, or leave it out and hutch picks a free one".into()),
            Error::Exhausted { .. } => {
                Some("create a network with a larger --subnet (a /24 holds 253 containers) and attach to it".into())
            }
            Error::Mac { .. } => {
                Some("write six colon-separated hex bytes of a unicast address, e.g. 00:16:3e:12:34:56".into())
            }
            Error::Ipv4Mode { .. } => None,
            Error::Ifname { .. } => Some(format!(
                "interface names are 1-{IFNAME_MAX} bytes without '/', ':' or whitespace; hutch's own use only a-z, A-Z, 0-9, '.', '_' and '-'"
            )),
        }
    }
}

fn mask4(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

/// An IPv4 network. [`V4Net::parse`] accepts only what hutch manages (/8 to /30,
/// no host bits); routes read from the kernel may be anything from /1 to /32, and
/// every method copes with that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct V4Net {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl V4Net {
    /// Checks a network given as parts: prefix /8 to /30, no host bits set.
    pub fn new(network: Ipv4Addr, prefix: u8) -> Result<V4Net, Error> {
        V4Net::parse(&format!("{network}/{prefix}"))
    }

    /// Parses `10.0.3.0/24`. Refuses host bits (`10.0.3.1/24`) rather than quietly
    /// dropping them: the user most likely meant a different network.
    pub fn parse(s: &str) -> Result<V4Net, Error> {
        let fail = |problem: String| Error::Subnet { input: s.to_string(), problem };
        let Some((addr, prefix)) = s.split_once('/') else {
            return Err(fail("expected ADDRESS/PREFIX".into()));
        };
        let network: Ipv4Addr = addr.parse().map_err(|_| fail(format!("{addr:?} is not an IPv4 address")))?;
        let prefix = match prefix.parse::<u8>() {
            Ok(p) if prefix.bytes().all(|b| b.is_ascii_digit()) => p,
            _ => return Err(fail(format!("{prefix:?} is not a prefix length"))),
        };
        if !(MIN_PREFIX..=MAX_PREFIX).contains(&prefix) {
            return Err(fail(format!(
                "/{prefix} is outside /{MIN_PREFIX}../{MAX_PREFIX} (the largest hutch manages is a /8; a /30 holds the gateway and one container)"
            )));
        }
        let net = V4Net { network, prefix };
        if net.base() != u32::from(network) {
            return Err(fail(format!("host bits are set; the /{prefix} containing it is {}", net.normalised())));
        }
        Ok(net)
    }

    fn base(&self) -> u32 {
        u32::from(self.network) & mask4(self.prefix)
    }

    fn last(&self) -> u32 {
        self.base() | !mask4(self.prefix)
    }

    /// The same network with any host bits cleared.
    pub fn normalised(&self) -> V4Net {
        V4Net { network: Ipv4Addr::from(self.base()), prefix: self.prefix.min(32) }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask4(self.prefix) == self.base()
    }

    /// The bridge's address: the first address after the network address.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base().wrapping_add(1))
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.last())
    }

    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask4(self.prefix))
    }

    /// The first address a container can have (the one after the gateway).
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base().wrapping_add(2))
    }

    /// The last address a container can have (the one before the broadcast address).
    pub fn last_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.last().wrapping_sub(1))
    }

    /// Container addresses, lowest first: everything but the network address, the
    /// gateway and the broadcast address.
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> + use<> {
        let (first, last) = (u64::from(self.base()) + 2, u64::from(self.last()));
        (first..last).map(|a| Ipv4Addr::from(a as u32))
    }

    /// Whether the two networks share any address.
    pub fn overlaps(&self, other: &V4Net) -> bool {
        let mask = mask4(self.prefix.min(other.prefix));
        u32::from(self.network) & mask == u32::from(other.network) & mask
    }

    /// How many containers fit: the addresses less network, gateway and broadcast.
    pub fn size(&self) -> u32 {
        match self.prefix {
            p if p >= 31 => 0,
            p => (1u32 << (32 - u32::from(p))) - 3,
        }
    }
}

impl fmt::Display for V4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for V4Net {
    type Err = Error;
    fn from_str(s: &str) -> Result<V4Net, Error> {
        V4Net::parse(s)
    }
}

impl Serialize for V4Net {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for V4Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<V4Net, D::Error> {
        let s = String::deserialize(d)?;
        V4Net::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An IPv6 network for containers. Only /64s: containers take SLAAC addresses from
/// the router advertisements dnsmasq sends, and SLAAC needs a /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct V6Net {
    pub network: Ipv6Addr,
    pub prefix: u8,
}

impl V6Net {
    /// Parses `fd42:1:2:3::/64`; refuses other prefix lengths and host bits.
    pub fn parse(s: &str) -> Result<V6Net, Error> {
        let fail = |problem: String| Error::Subnet6 { input: s.to_string(), problem };
        let Some((addr, prefix)) = s.split_once('/') else {
            return Err(fail("expected ADDRESS/64".into()));
        };
        let network: Ipv6Addr = addr.parse().map_err(|_| fail(format!("{addr:?} is not an IPv6 address")))?;
        if prefix != "64" {
            return Err(fail(format!(
                "/{prefix} is not /64, the only prefix length hutch supports: containers configure their addresses by SLAAC, which needs a /64"
            )));
        }
        let net = V6Net { network, prefix: 64 };
        if u128::from(network) != net.base() {
            return Err(fail(format!("host bits are set; the /64 containing it is {}/64", Ipv6Addr::from(net.base()))));
        }
        if network.segments()[0] & 0xff00 == 0xff00 {
            return Err(fail("it is a multicast address".into()));
        }
        Ok(net)
    }

    fn base(&self) -> u128 {
        let mask = match self.prefix {
            0 => 0,
            p => u128::MAX << (128 - u32::from(p.min(128))),
        };
        u128::from(self.network) & mask
    }

    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        V6Net { network: ip, prefix: self.prefix }.base() == self.base()
    }

    /// The bridge's address: `<prefix>::1`.
    pub fn gateway(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.base() | 1)
    }
}

impl fmt::Display for V6Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for V6Net {
    type Err = Error;
    fn from_str(s: &str) -> Result<V6Net, Error> {
        V6Net::parse(s)
    }
}

impl Serialize for V6Net {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for V6Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<V6Net, D::Error> {
        let s = String::deserialize(d)?;
        V6Net::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The destinations of the main routing table, from `/proc/net/route` text.
///
/// The kernel prints each `__be32` with `%08X` as a host-order integer, so on a
/// little-endian machine `0002A8C0` is 192.168.2.0; the native-endian bytes of the
/// parsed number are the address's bytes on any machine. Default routes (prefix 0)
/// are left out, or every subnet would count as taken; so are lines that do not
/// parse and masks that are not contiguous. Host routes (/32) stay in.
pub fn parse_proc_net_route(text: &str) -> Vec<V4Net> {
    let mut out: Vec<V4Net> = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 8 || cols[0] == "Iface" {
            continue;
        }
        let (Ok(dest), Ok(mask)) = (u32::from_str_radix(cols[1], 16), u32::from_str_radix(cols[7], 16)) else {
            continue;
        };
        let mask = u32::from_be_bytes(mask.to_ne_bytes());
        let prefix = mask.leading_ones() as u8;
        if prefix == 0 || mask4(prefix) != mask {
            continue;
        }
        let network = Ipv4Addr::from(dest.to_ne_bytes());
        let net = V4Net { network, prefix }.normalised();
        if !out.contains(&net) {
            out.push(net);
        }
    }
    out
}

/// Candidates in 10.0.0.0/8: 65536 /24s, 10.A.B.0/24 for index `A * 256 + B`.
const CANDIDATES: u32 = 1 << 16;

/// A /24 in 10.0.0.0/8 that overlaps none of `taken` (the host's routes, other
/// networks' subnets). Candidates are tried in index order from `start % 65536`,
/// wrapping around; 10.0.0.0/24 and 10.255.255.0/24, the edges of 10/8 that other
/// software likes to claim, are never picked. `None` when all are taken (e.g. a
/// route to all of 10.0.0.0/8).
pub(crate) fn pick_free_subnet(taken: &[V4Net], start: u32) -> Option<V4Net> {
    (0..CANDIDATES)
        .map(|i| (start % CANDIDATES + i) % CANDIDATES)
        .filter(|&i| i != 0 && i != CANDIDATES - 1)
        .map(|i| V4Net { network: Ipv4Addr::new(10, (i >> 8) as u8, (i & 0xff) as u8, 0), prefix: 24 })
        .find(|c| !taken.iter().any(|t| t.overlaps(c)))
}

/// A container address on `net`, whose name (for messages) is `network`.
///
/// With `fixed`, checks the requested address: inside the subnet, neither the
/// network address, the gateway nor the broadcast address, and not in `used`.
/// Without, the lowest free container address (from the one after the gateway).
pub(crate) fn allocate(
    net: &V4Net,
    used: &[Ipv4Addr],
    fixed: Option<Ipv4Addr>,
    network: &str,
) -> Result<Ipv4Addr, Error> {
    let net = net.normalised();
    if let Some(ip) = fixed {
        let network = network.to_string();
        if !net.contains(ip) {
            return Err(Error::Outside { ip, network, net });
        }
        let what = if ip == net.network {
            Some("network address")
        } else if ip == net.gateway() {
            Some("gateway (the bridge's own address)")
        } else if ip == net.broadcast() {
            Some("broadcast address")
        } else {
            None
        };
        if let Some(what) = what {
            return Err(Error::Reserved { ip, network, net, what });
        }
        if used.contains(&ip) {
            return Err(Error::Taken { ip, network, net });
        }
        return Ok(ip);
    }
    let used: HashSet<Ipv4Addr> = used.iter().copied().collect();
    net.hosts().find(|ip| !used.contains(ip)).ok_or_else(|| Error::Exhausted {
        network: network.to_string(),
        net,
        size: net.size(),
    })
}

/// FNV-1a 64 with murmur3's fmix64 finaliser (see the module documentation). Never
/// change it: its outputs are persisted.
pub(crate) fn stable_hash(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A stable MAC for `seed` (e.g. the container's name): the `00:16:3e` OUI that LXC
/// gives its guests, then three bytes of [`stable_hash`]. It is globally
/// administered, unicast and never all-zero. Three bytes collide by chance (about
/// one in 300 for 100 containers on one bridge): callers check the new MAC against
/// the network's reservations and re-seed (`NAME#1`, ...) on a clash.
pub(crate) fn mac_for(seed: &str) -> [u8; 6] {
    let h = stable_hash(seed.as_bytes()).to_be_bytes();
    [MAC_OUI[0], MAC_OUI[1], MAC_OUI[2], h[0], h[1], h[2]]
}

/// `00:16:3e:0a:1b:2c` (lower case).
pub(crate) fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Parses six colon-separated two-digit hex bytes (either case). Refuses multicast
/// (and so broadcast) addresses and all-zero, which no interface can have.
pub(crate) fn parse_mac(s: &str) -> Result<[u8; 6], Error> {
    let fail = |problem| Error::Mac { input: s.to_string(), problem };
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(fail("expected six colon-separated bytes"));
    }
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(parts) {
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(fail("each byte is two hex digits"));
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| fail("each byte is two hex digits"))?;
    }
    if mac[0] & 1 == 1 {
        return Err(fail("it is a multicast address"));
    }
    if mac == [0; 6] {
        return Err(fail("it is all zero"));
    }
    Ok(mac)
}

/// A MAC address, checked by [`parse_mac`]; written as [`format_mac`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_mac(&self.0))
    }
}

impl FromStr for Mac {
    type Err = Error;
    fn from_str(s: &str) -> Result<Mac, Error> {
        parse_mac(s).map(Mac)
    }
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Mac, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How a NIC gets its IPv4 address: `"auto"` (a reservation from the network's pool)
/// or a fixed address in the network's subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Ipv4Mode {
    #[default]
    Auto,
    Fixed(Ipv4Addr),
}

impl Ipv4Mode {
    /// The fixed address asked for, if any.
    pub fn fixed(&self) -> Option<Ipv4Addr> {
        match self {
            Ipv4Mode::Auto => None,
            Ipv4Mode::Fixed(ip) => Some(*ip),
        }
    }
}

impl fmt::Display for Ipv4Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ipv4Mode::Auto => f.write_str("auto"),
            Ipv4Mode::Fixed(ip) => write!(f, "{ip}"),
        }
    }
}

impl FromStr for Ipv4Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Ipv4Mode, Error> {
        match s {
            "auto" => Ok(Ipv4Mode::Auto),
            _ => s.parse().map(Ipv4Mode::Fixed).map_err(|_| Error::Ipv4Mode { input: s.to_string() }),
        }
    }
}

impl Serialize for Ipv4Mode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ipv4Mode, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn plain_ifname_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// An interface name `prefix` + `name` (e.g. `hv-web` for the host end of container
/// `web`'s veth), or when that would exceed 15 bytes or `name` has a character
/// outside `a-zA-Z0-9._-`, `prefix` + 8 hex digits of [`stable_hash`] of `name`
/// (`hv-1f2e3d4c`). Same name, same result. `prefix` is a short constant of plain
/// characters; anything past 7 bytes of it is cut so the hashed form fits. A hashed
/// name can equal another container's plain one (`hv-1f2e3d4c` for a container
/// literally called `1f2e3d4c`): callers creating interfaces handle EEXIST.
pub fn ifname(prefix: &str, name: &str) -> String {
    debug_assert!(prefix.bytes().all(plain_ifname_char), "interface name prefix {prefix:?}");
    let plain = !name.is_empty() && name.bytes().all(plain_ifname_char);
    if plain && prefix.len() + name.len() <= IFNAME_MAX && (!prefix.is_empty() || (name != "." && name != "..")) {
        return format!("{prefix}{name}");
    }
    let mut cut = prefix.len().min(IFNAME_MAX - 8);
    while !prefix.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{:08x}", &prefix[..cut], stable_hash(name.as_bytes()) >> 32)
}

/// The kernel's rule for interface names (`dev_valid_name`): 1 to 15 bytes, no `/`,
/// `:` or whitespace, and not `.` or `..`.
pub(crate) fn validate_ifname(s: &str) -> Result<(), Error> {
    let fail = |problem| Err(Error::Ifname { name: s.to_string(), problem });
    if s.is_empty() {
        return fail("it is empty");
    }
    if s.len() > IFNAME_MAX {
        return fail("it is longer than 15 bytes");
    }
    if s == "." || s == ".." {
        return fail("it is '.' or '..'");
    }
    if s.bytes().any(|b| matches!(b, b'/' | b':' | b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0)) {
        return fail("it contains '/', ':' or whitespace");
    }
    Ok(())
}

/// [`validate_ifname`], and only `a-zA-Z0-9._-`: for bridges hutch creates, whose
/// names go into dnsmasq and nftables configuration unquoted or inside quotes.
pub(crate) fn validate_bridge_name(s: &str) -> Result<(), Error> {
    validate_ifname(s)?;
    if !s.bytes().all(plain_ifname_char) {
        return Err(Error::Ifname {
            name: s.to_string(),
            problem: "a bridge hutch manages may only contain a-z, A-Z, 0-9, '.', '_' and '-'",
        });
    }
    Ok(())
}

/// A unique local IPv6 /64 (RFC 4193) derived from `seed`: `fd`, a 40-bit global ID
/// and a 16-bit subnet ID, all from [`stable_hash`]. RFC 4193 draws the global ID at
/// random; a seed naming both the host and the network (e.g. machine-id and network
/// name) keeps it unique in practice and stable across restarts.
pub(crate) fn ula_subnet(seed: &str) -> V6Net {
    let h = stable_hash(seed.as_bytes()).to_be_bytes();
    let mut b = [0u8; 16];
    b[0] = 0xfd;
    b[1..8].copy_from_slice(&h[..7]);
    V6Net { network: Ipv6Addr::from(b), prefix: 64 }
}

#[cfg(test)]
mod tests;
