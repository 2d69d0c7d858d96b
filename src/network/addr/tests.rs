use super::*;

fn net(s: &str) -> V4Net {
    V4Net::parse(s).unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn v4net_parses_and_displays() {
    let n = net("10.0.3.0/24");
    assert_eq!(n, V4Net { network: ip("10.0.3.0"), prefix: 24 });
    assert_eq!(n.to_string(), "10.0.3.0/24");
    assert_eq!("10.0.3.0/24".parse::<V4Net>().unwrap(), n);
    assert_eq!(net("10.0.0.0/8").to_string(), "10.0.0.0/8");
    assert_eq!(net("192.168.7.4/30").size(), 1);
    assert_eq!(V4Net::new(ip("10.1.0.0"), 16).unwrap(), net("10.1.0.0/16"));
}

#[test]
fn v4net_refuses_bad_input() {
    let cases = [
        ("10.0.3.0", "expected ADDRESS/PREFIX"),
        ("10.0.3.0/", "not a prefix length"),
        ("10.0.3.0/+24", "not a prefix length"),
        ("10.0.3.0/24 ", "not a prefix length"),
        ("10.0.3.0/x", "not a prefix length"),
        ("10.0.3.0/300", "not a prefix length"),
        ("10.0.3/24", "not an IPv4 address"),
        ("10.0.3.256/24", "not an IPv4 address"),
        ("010.0.3.0/24", "not an IPv4 address"),
        ("fd00::/64", "not an IPv4 address"),
        ("10.0.0.0/7", "outside /8../30"),
        ("10.0.3.0/31", "outside /8../30"),
        ("10.0.3.0/32", "outside /8../30"),
        ("10.0.3.1/24", "host bits are set; the /24 containing it is 10.0.3.0/24"),
        ("10.0.3.128/16", "the /16 containing it is 10.0.0.0/16"),
    ];
    for (input, want) in cases {
        let e = V4Net::parse(input).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("failed to parse subnet {input:?}: ")), "{msg}");
        assert!(msg.contains(want), "{input}: {msg}");
        assert!(e.hint().unwrap().contains("10.0.3.0/24"));
    }
}

#[test]
fn v4net_arithmetic() {
    let n = net("10.0.3.0/24");
    assert_eq!(n.gateway(), ip("10.0.3.1"));
    assert_eq!(n.broadcast(), ip("10.0.3.255"));
    assert_eq!(n.netmask(), ip("255.255.255.0"));
    assert_eq!(n.first_host(), ip("10.0.3.2"));
    assert_eq!(n.last_host(), ip("10.0.3.254"));
    assert_eq!(n.size(), 253);
    assert_eq!(n.hosts().count(), 253);
    assert_eq!(n.hosts().next(), Some(ip("10.0.3.2")));
    assert_eq!(n.hosts().last(), Some(ip("10.0.3.254")));
    assert!(n.contains(ip("10.0.3.0")) && n.contains(ip("10.0.3.255")));
    assert!(!n.contains(ip("10.0.4.0")) && !n.contains(ip("10.0.2.255")));

    let n = net("10.20.0.0/29");
    assert_eq!(n.hosts().collect::<Vec<_>>(), (2..=6).map(|d| Ipv4Addr::new(10, 20, 0, d)).collect::<Vec<_>>());
    assert_eq!(n.size(), 5);
    assert_eq!(net("10.0.0.0/8").size(), (1 << 24) - 3);
    assert_eq!(net("10.0.0.0/8").netmask(), ip("255.0.0.0"));
    assert_eq!(net("10.0.0.0/8").broadcast(), ip("10.255.255.255"));

    // Routes from the kernel may be /32 or /0; nothing overflows.
    let host = V4Net { network: ip("10.1.2.3"), prefix: 32 };
    assert_eq!(host.size(), 0);
    assert_eq!(host.hosts().count(), 0);
    assert!(host.contains(ip("10.1.2.3")) && !host.contains(ip("10.1.2.4")));
    let all = V4Net { network: ip("0.0.0.0"), prefix: 0 };
    assert!(all.contains(ip("1.2.3.4")));
    assert_eq!(all.broadcast(), ip("255.255.255.255"));
    let top = V4Net { network: ip("255.255.255.255"), prefix: 32 };
    assert_eq!(top.hosts().count(), 0);
}

#[test]
fn v4net_overlaps() {
    let a = net("10.0.3.0/24");
    assert!(a.overlaps(&a));
    assert!(a.overlaps(&net("10.0.0.0/16")) && net("10.0.0.0/16").overlaps(&a));
    assert!(a.overlaps(&V4Net { network: ip("10.0.3.77"), prefix: 32 }));
    assert!(!a.overlaps(&net("10.0.4.0/24")));
    assert!(!a.overlaps(&net("10.0.2.0/24")));
    assert!(net("10.0.2.0/23").overlaps(&a));
    assert!(!net("10.0.0.0/23").overlaps(&a));
}

#[test]
fn v4net_serde_is_a_string() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct W {
        subnet: V4Net,
        v6: V6Net,
    }
    let w = W { subnet: net("10.0.3.0/24"), v6: V6Net::parse("fd42:1:2:3::/64").unwrap() };
    let json = serde_json::to_string(&w).unwrap();
    assert_eq!(json, r#"{"subnet":"10.0.3.0/24","v6":"fd42:1:2:3::/64"}"#);
    assert_eq!(serde_json::from_str::<W>(&json).unwrap(), w);
    let bad = serde_json::from_str::<W>(r#"{"subnet":"10.0.3.1/24","v6":"fd42:1:2:3::/64"}"#).unwrap_err();
    assert!(bad.to_string().contains("host bits"), "{bad}");
}

#[test]
fn v6net_parses_only_64s() {
    let n = V6Net::parse("fd42:1:2:3::/64").unwrap();
    assert_eq!(n.to_string(), "fd42:1:2:3::/64");
    assert_eq!(n.gateway(), "fd42:1:2:3::1".parse::<Ipv6Addr>().unwrap());
    assert!(n.contains("fd42:1:2:3:216:3eff:fe00:1".parse().unwrap()));
    assert!(!n.contains("fd42:1:2:4::1".parse().unwrap()));
    assert_eq!("fd42:1:2:3::/64".parse::<V6Net>().unwrap(), n);

    let cases = [
        ("fd42:1:2:3::", "expected ADDRESS/64"),
        ("fd42:1:2::/48", "only prefix length hutch supports: containers configure their addresses by SLAAC"),
        ("fd42:1:2:3::/128", "SLAAC, which needs a /64"),
        ("fd42:1:2:3::1/64", "host bits are set; the /64 containing it is fd42:1:2:3::/64"),
        ("10.0.3.0/64", "not an IPv6 address"),
        ("ff02::/64", "multicast"),
    ];
    for (input, want) in cases {
        let msg = V6Net::parse(input).unwrap_err().to_string();
        assert!(msg.starts_with(&format!("failed to parse IPv6 subnet {input:?}: ")), "{msg}");
        assert!(msg.contains(want), "{input}: {msg}");
    }
}

/// `/proc/net/route` as a little-endian host prints it (tabs and trailing padding
/// as in the real file): a default route, a LAN /24, Docker's /16, a VPN host route
/// and a /32 with a non-contiguous-mask line and garbage in between.
#[cfg(target_endian = "little")]
const ROUTE: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT                                                       
eth0\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0                                                                               
eth0\t0002A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0                                                                               
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0                                                                               
tun0\t0300000A\t0102A8C0\t0007\t0\t0\t0\tFFFFFFFF\t0\t0\t0                                                                               
weird\t0000000A\t00000000\t0001\t0\t0\t0\t00FF00FF\t0\t0\t0
garbage line
eth1\t0002A8C0\t00000000\t0001\t0\t0\t200\t00FFFFFF\t0\t0\t0
";

#[cfg(target_endian = "little")]
#[test]
fn parses_proc_net_route() {
    let routes = parse_proc_net_route(ROUTE);
    let shown: Vec<String> = routes.iter().map(|r| r.to_string()).collect();
    assert_eq!(shown, ["192.168.2.0/24", "172.17.0.0/16", "10.0.0.3/32"]);
    assert!(parse_proc_net_route("").is_empty());
}

#[test]
fn picks_free_subnets_in_order() {
    assert_eq!(pick_free_subnet(&[], 3), Some(net("10.0.3.0/24")));
    assert_eq!(pick_free_subnet(&[], 3 + 65536), Some(net("10.0.3.0/24")));
    assert_eq!(pick_free_subnet(&[], 0x1234), Some(net("10.18.52.0/24")));
    // 10.0.0.0/24 and 10.255.255.0/24 are skipped.
    assert_eq!(pick_free_subnet(&[], 0), Some(net("10.0.1.0/24")));
    assert_eq!(pick_free_subnet(&[], 65535), Some(net("10.0.1.0/24")));

    // A taken /24, a /16 and a host route push the choice along.
    let taken = [net("10.0.3.0/24"), net("10.0.4.0/22"), V4Net { network: ip("10.0.8.9"), prefix: 32 }];
    assert_eq!(pick_free_subnet(&taken, 3), Some(net("10.0.9.0/24")));
    let taken = [net("10.7.0.0/16")];
    assert_eq!(pick_free_subnet(&taken, 7 * 256 + 200), Some(net("10.8.0.0/24")));
    // Wraps around the end.
    let taken = [net("10.255.0.0/16")];
    assert_eq!(pick_free_subnet(&taken, 65534), Some(net("10.0.1.0/24")));
    // A host route to all of 10/8 leaves nothing.
    assert_eq!(pick_free_subnet(&[net("10.0.0.0/8")], 3), None);
    // Routes elsewhere (and no default route, which parse_proc_net_route drops) leave
    // the first choice free.
    assert_eq!(pick_free_subnet(&[net("192.168.2.0/24"), net("172.16.0.0/12")], 3), Some(net("10.0.3.0/24")));
}

#[test]
fn allocates_the_lowest_free_address() {
    let n = net("10.0.3.0/24");
    assert_eq!(allocate(&n, &[], None, "hutchbr0"), Ok(ip("10.0.3.2")));
    assert_eq!(allocate(&n, &[ip("10.0.3.2"), ip("10.0.3.3"), ip("10.0.3.5")], None, "hutchbr0"), Ok(ip("10.0.3.4")));
    // Unrelated or reserved entries in `used` do not matter.
    assert_eq!(allocate(&n, &[ip("10.0.3.1"), ip("192.168.1.2")], None, "hutchbr0"), Ok(ip("10.0.3.2")));
}

#[test]
fn a_29_holds_five_then_is_exhausted() {
    let n = net("10.9.0.0/29");
    let mut used = Vec::new();
    for _ in 0..5 {
        used.push(allocate(&n, &used, None, "small").unwrap());
    }
    assert_eq!(used, (2..=6).map(|d| Ipv4Addr::new(10, 9, 0, d)).collect::<Vec<_>>());
    let e = allocate(&n, &used, None, "small").unwrap_err();
    assert_eq!(e, Error::Exhausted { network: "small".into(), net: n, size: 5 });
    assert_eq!(
        e.to_string(),
        "failed to allocate an address on small: its subnet 10.9.0.0/29 holds 5 container addresses and all are in use"
    );
    assert!(e.hint().unwrap().contains("larger --subnet"));
    // Freeing one makes it available again.
    used.remove(2);
    assert_eq!(allocate(&n, &used, None, "small"), Ok(ip("10.9.0.4")));
}

#[test]
fn fixed_addresses_are_checked() {
    let n = net("10.0.3.0/24");
    let used = [ip("10.0.3.7")];
    assert_eq!(allocate(&n, &used, Some(ip("10.0.3.200")), "hutchbr0"), Ok(ip("10.0.3.200")));
    assert_eq!(allocate(&n, &used, Some(ip("10.0.3.254")), "hutchbr0"), Ok(ip("10.0.3.254")));

    let e = allocate(&n, &used, Some(ip("10.9.9.9")), "hutchbr0").unwrap_err();
    assert_eq!(e.to_string(), "failed to reserve 10.9.9.9 on hutchbr0: it is outside the network's subnet 10.0.3.0/24");
    assert_eq!(
        e.hint().unwrap(),
        "pick an address between 10.0.3.2 and 10.0.3.254, or leave it out and hutch picks a free one"
    );
    let e = allocate(&n, &used, Some(ip("10.0.3.7")), "hutchbr0").unwrap_err();
    assert!(matches!(e, Error::Taken { .. }), "{e:?}");
    assert_eq!(e.to_string(), "failed to reserve 10.0.3.7 on hutchbr0: another container already holds it");
    for (addr, what) in [("10.0.3.0", "network address"), ("10.0.3.1", "gateway"), ("10.0.3.255", "broadcast")] {
        let e = allocate(&n, &used, Some(ip(addr)), "hutchbr0").unwrap_err();
        assert!(matches!(e, Error::Reserved { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("failed to reserve {addr} on hutchbr0: it is the {what}")), "{msg}");
        assert!(msg.ends_with("of 10.0.3.0/24"), "{msg}");
    }
}

#[test]
fn macs_are_stable_unicast_and_formatted() {
    let a = mac_for("web");
    assert_eq!(a, mac_for("web"));
    assert_eq!(a[..3], MAC_OUI);
    assert_eq!(a[0] & 1, 0);
    assert_ne!(a, mac_for("web2"));
    assert_ne!(mac_for("web1")[3..], mac_for("web2")[3..]);
    let s = format_mac(&a);
    assert!(s.starts_with("00:16:3e:"), "{s}");
    assert_eq!(s.len(), 17);
    assert_eq!(parse_mac(&s), Ok(a));
    assert_eq!(format_mac(&[0x0a, 0xb, 0, 0xff, 0x10, 1]), "0a:0b:00:ff:10:01");
}

#[test]
fn stable_hash_is_pinned() {
    // FNV-1a 64 then fmix64 (checked against an independent implementation). If these
    // change, every persisted MAC, hashed interface name and ULA prefix changes too.
    assert_eq!(stable_hash(b""), 0xefd0_1f60_ba99_2926);
    assert_eq!(stable_hash(b"web"), 0x8b8f_9c35_7cbd_25a9);
    assert_eq!(format_mac(&mac_for("web")), "00:16:3e:8b:8f:9c");
    assert_eq!(format_mac(&mac_for("db")), "00:16:3e:b5:7e:79");
    assert_eq!(ifname("hv-", "a-very-long-container-name"), "hv-fe2a26d3");
    assert_eq!(ula_subnet("host/hutchbr0").to_string(), "fd0f:a2b3:f53f:2228::/64");
}

#[test]
fn parse_mac_refuses_bad_input() {
    assert_eq!(parse_mac("00:16:3E:AA:bb:01"), Ok([0, 0x16, 0x3e, 0xaa, 0xbb, 1]));
    assert_eq!(parse_mac("02:00:00:00:00:01"), Ok([2, 0, 0, 0, 0, 1]));
    for (input, want) in [
        ("00:16:3e:aa:bb", "six"),
        ("00:16:3e:aa:bb:cc:dd", "six"),
        ("00-16-3e-aa-bb-cc", "six"),
        ("0:16:3e:aa:bb:cc", "two hex digits"),
        ("00:16:3e:aa:bb:+c", "two hex digits"),
        ("00:16:3e:aa:bb:gg", "two hex digits"),
        ("01:00:5e:00:00:01", "multicast"),
        ("ff:ff:ff:ff:ff:ff", "multicast"),
        ("00:00:00:00:00:00", "all zero"),
    ] {
        let e = parse_mac(input).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("failed to parse MAC address {input:?}: ")), "{msg}");
        assert!(msg.contains(want), "{input}: {msg}");
        assert!(e.hint().is_some());
    }
}

#[test]
fn ifnames_fit_and_hash_when_needed() {
    assert_eq!(ifname("hv-", "web"), "hv-web");
    assert_eq!(ifname("hv-", "abcdefghijkl"), "hv-abcdefghijkl"); // exactly 15
    let long = ifname("hv-", "abcdefghijklm");
    assert_eq!(long.len(), 11);
    assert!(long.starts_with("hv-") && long[3..].bytes().all(|b| b.is_ascii_hexdigit()), "{long}");
    assert_eq!(long, ifname("hv-", "abcdefghijklm"));
    assert_ne!(long, ifname("hv-", "abcdefghijkln"));
    assert_ne!(ifname("hv-", "a-very-long-container-1"), ifname("hv-", "a-very-long-container-2"));
    assert_eq!(ifname("hp-", "abcdefghijklm")[3..], long[3..]);
    // Characters outside a-zA-Z0-9._- are hashed, never copied.
    let odd = ifname("hv-", "a/b");
    assert!(!odd.contains('/') && odd.len() == 11, "{odd}");
    assert_eq!(ifname("hv-", "").len(), 11);
    assert_eq!(ifname("", "..").len(), 8);
    assert_eq!(ifname("", "eth0"), "eth0");
    // A prefix too long for the hashed form is cut to leave room for the hash.
    let cut = ifname("much-too-long-", "x".repeat(20).as_str());
    assert_eq!(cut.len(), 15);
    assert!(cut.starts_with("much-to"), "{cut}");
    for name in ["web", "abcdefghijklm", "a/b", "", "x".repeat(100).as_str()] {
        let n = ifname("hv-", name);
        assert!(n.len() <= IFNAME_MAX, "{n}");
        validate_bridge_name(&n).unwrap();
    }
}

#[test]
fn validates_ifnames() {
    for ok in ["eth0", "hutchbr0", "a", "x".repeat(15).as_str(), "br.10", "wl_p-1", "ünï"] {
        assert_eq!(validate_ifname(ok), Ok(()), "{ok}");
    }
    for (bad, want) in [
        ("", "empty"),
        ("x".repeat(16).as_str(), "longer than 15 bytes"),
        (".", "'.' or '..'"),
        ("..", "'.' or '..'"),
        ("a/b", "'/'"),
        ("a:1", "':'"),
        ("a b", "whitespace"),
        ("a\tb", "whitespace"),
        ("a\u{b}b", "whitespace"),
    ] {
        let e = validate_ifname(bad).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("failed to use interface name "), "{msg}");
        assert!(msg.contains(want), "{bad:?}: {msg}");
    }
    assert_eq!(validate_bridge_name("hutchbr0"), Ok(()));
    for bad in ["ünï", "br\"0", "br#0", "br,0", "br{0"] {
        assert!(validate_bridge_name(bad).unwrap_err().to_string().contains("a bridge hutch manages"), "{bad}");
    }
}

#[test]
fn ula_subnets_are_stable_fd_64s() {
    let a = ula_subnet("machine-1/hutchbr0");
    assert_eq!(a, ula_subnet("machine-1/hutchbr0"));
    assert_ne!(a, ula_subnet("machine-1/hutchbr1"));
    assert_ne!(a, ula_subnet("machine-2/hutchbr0"));
    assert_eq!(a.prefix, 64);
    assert_eq!(a.network.octets()[0], 0xfd);
    assert_eq!(a.network.octets()[8..], [0; 8]);
    // It round-trips through the parser, so it can be stored and read back.
    assert_eq!(V6Net::parse(&a.to_string()), Ok(a));
    assert!(a.contains(a.gateway()));
}
