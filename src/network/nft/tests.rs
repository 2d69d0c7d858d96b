use super::*;

fn port(proto: Proto, host_ip: Option<&str>, host_port: u16, dest: &str, dest_port: u16) -> Port {
    Port { proto, host_ip: host_ip.map(|ip| ip.parse().unwrap()), host_port, dest: dest.parse().unwrap(), dest_port }
}

fn ports() -> Vec<Port> {
    vec![
        port(Proto::Tcp, None, 8080, "10.0.3.5", 80),
        port(Proto::Udp, Some("192.168.1.10"), 5353, "10.0.3.6", 53),
        // A second host port onto the same container port: one forward and hairpin rule.
        port(Proto::Tcp, Some("0.0.0.0"), 8443, "10.0.3.5", 80),
    ]
}

fn ruleset<'a>(ports: &'a [Port], nat: bool, v6: bool) -> Ruleset<'a> {
    Ruleset {
        table: "hutch-hutchbr0",
        bridge: "hutchbr0",
        net: V4Net::parse("10.0.3.0/24").unwrap(),
        v6: v6.then(|| V6Net::parse("fd42:1:2:3::/64").unwrap()),
        nat,
        ports,
        keep: &[],
    }
}

const FULL: &str = r#"# hutch network table hutch-hutchbr0 (bridge hutchbr0), replaced whole on every change.
table inet hutch-hutchbr0 {}
delete table inet hutch-hutchbr0
table inet hutch-hutchbr0 {
	chain guard {
		type filter hook prerouting priority -150; policy accept;
		iifname "hutchbr0" ip daddr 127.0.0.0/8 drop
		iifname "hutchbr0" ip saddr 0.0.0.0 udp dport 67 accept
		iifname "hutchbr0" meta nfproto ipv4 ip saddr != 10.0.3.0/24 drop
	}
	chain input {
		type filter hook input priority filter; policy accept;
		ip daddr 10.0.3.1 iifname != { "hutchbr0", "lo" } meta l4proto { tcp, udp } th dport { 53, 67 } drop
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "hutchbr0" accept
		oifname "hutchbr0" ct state established,related accept
		oifname "hutchbr0" ip daddr 10.0.3.5 tcp dport 80 ct state new accept
		oifname "hutchbr0" ip daddr 10.0.3.6 udp dport 53 ct state new accept
	}
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "hutchbr0" ip daddr 10.0.3.1 return
		meta nfproto ipv4 fib daddr type local ip daddr != { 10.0.3.1 } tcp dport 8080 dnat ip to 10.0.3.5:80
		ip daddr 192.168.1.10 udp dport 5353 dnat ip to 10.0.3.6:53
		meta nfproto ipv4 fib daddr type local ip daddr != { 10.0.3.1 } tcp dport 8443 dnat ip to 10.0.3.5:80
	}
	chain output {
		type nat hook output priority -100; policy accept;
		ip daddr 127.0.0.1 tcp dport 8080 dnat ip to 10.0.3.5:80
		meta nfproto ipv4 fib daddr type local ip daddr != 127.0.0.0/8 ip daddr != { 10.0.3.1 } tcp dport 8080 dnat ip to 10.0.3.5:80
		ip daddr 192.168.1.10 udp dport 5353 dnat ip to 10.0.3.6:53
		ip daddr 127.0.0.1 tcp dport 8443 dnat ip to 10.0.3.5:80
		meta nfproto ipv4 fib daddr type local ip daddr != 127.0.0.0/8 ip daddr != { 10.0.3.1 } tcp dport 8443 dnat ip to 10.0.3.5:80
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 10.0.3.0/24 ip daddr != 10.0.3.0/24 masquerade
		ip6 saddr fd42:1:2:3::/64 ip6 daddr != fd42:1:2:3::/64 masquerade
		ip saddr 127.0.0.0/8 oifname "hutchbr0" masquerade
		ip saddr 10.0.3.0/24 ip daddr 10.0.3.5 tcp dport 80 ct status dnat masquerade
		ip saddr 10.0.3.0/24 ip daddr 10.0.3.6 udp dport 53 ct status dnat masquerade
	}
}
"#;

const BARE: &str = r#"# hutch network table hutch-hutchbr0 (bridge hutchbr0), replaced whole on every change.
table inet hutch-hutchbr0 {}
delete table inet hutch-hutchbr0
table inet hutch-hutchbr0 {
	chain guard {
		type filter hook prerouting priority -150; policy accept;
		iifname "hutchbr0" ip daddr 127.0.0.0/8 drop
		iifname "hutchbr0" ip saddr 0.0.0.0 udp dport 67 accept
		iifname "hutchbr0" meta nfproto ipv4 ip saddr != 10.0.3.0/24 drop
	}
	chain input {
		type filter hook input priority filter; policy accept;
		ip daddr 10.0.3.1 iifname != { "hutchbr0", "lo" } meta l4proto { tcp, udp } th dport { 53, 67 } drop
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "hutchbr0" accept
		oifname "hutchbr0" ct state established,related accept
	}
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
	}
	chain output {
		type nat hook output priority -100; policy accept;
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 10.0.3.0/24 ip daddr != 10.0.3.0/24 masquerade
	}
}
"#;

/// The body of one chain: the lines between `chain NAME {` and its `}`.
fn chain<'a>(script: &'a str, name: &str) -> Vec<&'a str> {
    let head = format!("\tchain {name} {{");
    script.lines().skip_while(|l| *l != head).skip(1).take_while(|l| *l != "\t}").map(str::trim).collect()
}

#[test]
fn renders_a_representative_ruleset_exactly() {
    let ports = ports();
    assert_eq!(render(&ruleset(&ports, true, true)), FULL);
    assert_eq!(render(&ruleset(&[], true, false)), BARE);
}

#[test]
fn replaces_only_its_own_table() {
    let ports = ports();
    for r in [ruleset(&ports, true, true), ruleset(&ports, false, false), ruleset(&[], false, true)] {
        let out = render(&r);
        assert!(!out.contains("flush"), "{out}");
        let head: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).take(3).collect();
        assert_eq!(
            head,
            ["table inet hutch-hutchbr0 {}", "delete table inet hutch-hutchbr0", "table inet hutch-hutchbr0 {"]
        );
        // Exactly one table definition, and nothing outside it afterwards.
        assert_eq!(out.matches("table ").count(), 4, "{out}"); // three statements + the comment
        assert!(out.ends_with("\t}\n}\n"));
    }
}

#[test]
fn every_port_is_published_in_prerouting_and_output() {
    let ports = ports();
    let out = render(&ruleset(&ports, false, false));
    for p in &ports {
        let tail = format!("{} dport {} dnat ip to {}:{}", p.proto, p.host_port, p.dest, p.dest_port);
        for name in ["prerouting", "output"] {
            let want = if name == "output" && p.bound_ip().is_none() { 2 } else { 1 }; // 127.0.0.1, then the rest
            assert_eq!(chain(&out, name).iter().filter(|l| l.ends_with(&tail)).count(), want, "{name}: {tail}\n{out}");
        }
        let fwd = format!("ip daddr {} {} dport {} ct state new accept", p.dest, p.proto, p.dest_port);
        assert!(chain(&out, "forward").iter().any(|l| l.ends_with(&fwd)), "{fwd}");
    }
    // A bound address matches that address only; all addresses match local ones.
    assert!(chain(&out, "output").contains(&"ip daddr 192.168.1.10 udp dport 5353 dnat ip to 10.0.3.6:53"));
    assert!(
        chain(&out, "output").contains(
            &"meta nfproto ipv4 fib daddr type local ip daddr != 127.0.0.0/8 ip daddr != { 10.0.3.1 } tcp dport 8443 dnat ip to 10.0.3.5:80"
        )
    );
}

#[test]
fn masquerade_follows_nat_and_v6() {
    let ports = ports();
    let post = |nat, v6| {
        let out = render(&ruleset(&ports, nat, v6));
        chain(&out, "postrouting").into_iter().map(String::from).collect::<Vec<_>>()
    };
    let subnet = "ip saddr 10.0.3.0/24 ip daddr != 10.0.3.0/24 masquerade".to_string();
    let six = "ip6 saddr fd42:1:2:3::/64 ip6 daddr != fd42:1:2:3::/64 masquerade".to_string();
    assert!(post(true, true).contains(&subnet) && post(true, true).contains(&six));
    assert!(post(true, false).contains(&subnet) && !post(true, false).iter().any(|l| l.contains("ip6")));
    for v6 in [false, true] {
        // Without NAT only the localhost and hairpin masquerades remain.
        let rules = post(false, v6);
        assert!(!rules.contains(&subnet) && !rules.contains(&six), "{rules:?}");
        let masq: Vec<&String> = rules.iter().filter(|l| l.ends_with("masquerade")).collect();
        assert_eq!(masq.len(), 3, "{masq:?}");
        assert!(masq[0] == "ip saddr 127.0.0.0/8 oifname \"hutchbr0\" masquerade");
        assert!(masq[1..].iter().all(|l| l.contains("ct status dnat")));
    }
    // No ports, no NAT: nothing at all in the nat chains.
    let out = render(&ruleset(&[], false, true));
    for name in ["prerouting", "output", "postrouting"] {
        assert_eq!(chain(&out, name).len(), 1, "{name}\n{out}");
    }
}

#[test]
fn the_gateway_is_never_hijacked() {
    let ports = [port(Proto::Udp, None, 53, "10.0.3.9", 53)];
    let out = render(&ruleset(&ports, true, false));
    let pre = chain(&out, "prerouting");
    assert_eq!(pre[1], "iifname \"hutchbr0\" ip daddr 10.0.3.1 return");
    assert!(pre[2].ends_with("udp dport 53 dnat ip to 10.0.3.9:53"));
}

#[test]
fn ipv6_host_addresses_are_left_out_and_refused() {
    let ports =
        [port(Proto::Tcp, Some("::1"), 8080, "10.0.3.5", 80), port(Proto::Tcp, Some("::"), 8081, "10.0.3.5", 81)];
    let out = render(&ruleset(&ports, true, true));
    assert!(!out.contains("8080") && !out.contains("::1 "), "{out}");
    assert!(out.contains("fib daddr type local ip daddr != { 10.0.3.1 } tcp dport 8081 dnat ip to 10.0.3.5:81"));
    let e = check_ports(&ports).unwrap_err();
    assert_eq!(e.to_string(), "failed to publish [::1]:8080->10.0.3.5:80/tcp: containers are reachable over IPv4 only");
    assert_eq!(e.hint().unwrap(), "publish on an IPv4 address, or on all addresses (8080:80/tcp)");
}

#[test]
fn check_ports_finds_clashes() {
    assert_eq!(check_ports(&ports()), Ok(()));
    assert_eq!(check_ports(&[]), Ok(()));
    let a = port(Proto::Tcp, None, 8080, "10.0.3.5", 80);
    // Same host port on another protocol, or on two distinct addresses, is fine.
    let ok = [
        a,
        port(Proto::Udp, None, 8080, "10.0.3.6", 80),
        port(Proto::Tcp, Some("10.1.1.1"), 9000, "10.0.3.6", 80),
        port(Proto::Tcp, Some("10.1.1.2"), 9000, "10.0.3.7", 80),
    ];
    assert_eq!(check_ports(&ok), Ok(()));
    for b in [
        port(Proto::Tcp, None, 8080, "10.0.3.6", 81),
        port(Proto::Tcp, Some("127.0.0.1"), 8080, "10.0.3.6", 81),
        port(Proto::Tcp, Some("0.0.0.0"), 8080, "10.0.3.6", 81),
    ] {
        let e = check_ports(&[a, b]).unwrap_err();
        assert!(matches!(e, Error::Clash { .. }), "{e:?}");
        assert!(e.to_string().ends_with("tcp port 8080 is already published by 8080->10.0.3.5:80/tcp"), "{e}");
    }
    let e = check_ports(&[port(Proto::Tcp, None, 0, "10.0.3.5", 80)]).unwrap_err();
    assert_eq!(e.to_string(), "failed to publish 0->10.0.3.5:80/tcp: port 0 is not a port");
    assert!(matches!(check_ports(&[port(Proto::Udp, None, 53, "10.0.3.5", 0)]), Err(Error::PortZero { .. })));
}

#[test]
fn protocols_and_ports_parse_and_display() {
    assert_eq!("tcp".parse::<Proto>(), Ok(Proto::Tcp));
    assert_eq!("UDP".parse::<Proto>(), Ok(Proto::Udp));
    let e = "sctp".parse::<Proto>().unwrap_err();
    assert_eq!(e.to_string(), "failed to parse protocol \"sctp\": expected tcp or udp");
    assert_eq!(Proto::Udp.to_string(), "udp");
    assert_eq!(
        port(Proto::Tcp, Some("127.0.0.1"), 80, "10.0.3.2", 8000).to_string(),
        "127.0.0.1:80->10.0.3.2:8000/tcp"
    );
    let p = port(Proto::Udp, Some("0.0.0.0"), 53, "10.0.3.2", 53);
    assert_eq!(p.bound_ip(), None);
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(json, r#"{"proto":"udp","host_ip":"0.0.0.0","host_port":53,"dest":"10.0.3.2","dest_port":53}"#);
    assert_eq!(serde_json::from_str::<Port>(&json).unwrap(), p);
}

#[test]
fn table_deletion() {
    assert_eq!(render_delete("hutch-hutchbr0"), "table inet hutch-hutchbr0 {}\ndelete table inet hutch-hutchbr0\n");
}

/// Proves the scripts parse and validate against the running kernel's nf_tables:
/// `nft -c` checks without committing anything. Needs root (nft opens a netlink
/// socket) and nft; skipped otherwise.
#[test]
fn nft_accepts_the_scripts() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let nft = std::path::Path::new("/usr/sbin/nft");
    if !nft.exists() || !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root and /usr/sbin/nft");
        return;
    }
    let ports = ports();
    let scripts = [
        render(&ruleset(&ports, true, true)),
        render(&ruleset(&ports, false, false)),
        render(&ruleset(&[], true, false)),
        render_delete("hutch-hutchbr0"),
    ];
    for script in scripts {
        let mut child = Command::new(nft)
            .args(["-c", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("Operation not permitted") {
            eprintln!("skipped: nft may not talk to nf_tables here: {stderr}");
            return;
        }
        assert!(out.status.success(), "nft -c refused:\n{stderr}\n{script}");
    }
}
