//! Bridge networking end to end: DHCP from hutch's dnsmasq through the guests' own
//! clients, DNS by name from containers and from the host, NAT out to the Debian
//! mirror (apt-get), published ports reached from the host, address allocation
//! errors, and nothing left behind. Traffic goes only to loopback, to these tests'
//! own containers and to the Debian mirror through hutch's NAT.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream, UdpSocket};
use std::time::Duration;

use common::{Hutch, eventually, require};

fn list_ipv4(h: &Hutch, name: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&h.ok(&["list", "--format", "json"])).unwrap();
    let c = v["containers"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap().clone();
    c["ipv4"][0].as_str().unwrap_or("").to_string()
}

fn gateway(h: &Hutch, network: &str) -> Ipv4Addr {
    let v: serde_json::Value = serde_json::from_str(&h.ok(&["network", "show", network, "--format", "json"])).unwrap();
    v["network"]["gateway"].as_str().unwrap().parse().unwrap()
}

/// An A query for `name` to `server`:53, by hand (the host's resolver is not
/// configured to ask hutch's dnsmasq).
fn resolve_a(server: Ipv4Addr, name: &str) -> Option<Ipv4Addr> {
    let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    sock.send_to(&q, (server, 53)).unwrap();
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).ok()?;
    let ancount = u16::from_be_bytes([buf[6], buf[7]]);
    if ancount == 0 {
        return None;
    }
    // The answer's RDATA is the last four bytes of a one-answer A response.
    Some(Ipv4Addr::new(buf[n - 4], buf[n - 3], buf[n - 2], buf[n - 1]))
}

fn http_get(addr: (Ipv4Addr, u16)) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// The host's own address on its default route's interface.
fn host_address() -> Ipv4Addr {
    let route = std::fs::read_to_string("/proc/net/route").unwrap();
    let dev = route.lines().skip(1).find(|l| l.split_whitespace().nth(1) == Some("00000000")).unwrap();
    let dev = dev.split_whitespace().next().unwrap().to_string();
    let nl = hutch::network::link::Netlink::new().unwrap();
    let link = nl.get(&dev).unwrap().unwrap();
    nl.addresses(link.index)
        .unwrap()
        .into_iter()
        .find_map(|(a, _)| match a {
            std::net::IpAddr::V4(v4) => Some(v4),
            _ => None,
        })
        .unwrap()
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn dhcp_dns_nat_and_published_ports() {
    let Some(img) = require("network_debian", &["dnsmasq", "nft"]) else {
        return;
    };
    let h = Hutch::new("net-debian");
    h.create("web", &img.debian(), &[]);
    h.create("db", &img.debian(), &[]);
    // Addresses are known before the guests ask.
    let (web_ip, db_ip) = (list_ipv4(&h, "web"), list_ipv4(&h, "db"));
    assert!(!web_ip.is_empty() && !db_ip.is_empty() && web_ip != db_ip, "{web_ip} {db_ip}");
    let gw = gateway(&h, "hutchbr0");
    for c in ["web", "db"] {
        h.ok(&["start", c, "--wait"]);
        assert_eq!(h.exec(c, &["systemctl", "is-system-running"]), "running", "{c}");
    }
    // The guests' own DHCP clients (ifupdown + dhclient) got the reserved addresses.
    let got = h.exec("web", &["ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(got.contains(&format!("{web_ip}/")), "{got}");
    assert!(h.exec("web", &["cat", "/var/lib/dhcp/dhclient.eth0.leases"]).contains(&web_ip));
    assert!(h.exec("db", &["ip", "-4", "-o", "addr", "show", "eth0"]).contains(&format!("{db_ip}/")));
    // By name, from container to container: DNS, then a TCP connection.
    assert_eq!(h.exec("web", &["getent", "hosts", "db.hutch"]).split_whitespace().next(), Some(db_ip.as_str()));
    let mut listener = h
        .cmd(&[
            "exec",
            "db",
            "--",
            "perl",
            "-MIO::Socket::INET",
            "-e",
            "$s=IO::Socket::INET->new(LocalPort=>7777,Listen=>1,ReuseAddr=>1) or die; $c=$s->accept; print $c \"hello from db\\n\";",
        ])
        .spawn()
        .unwrap();
    let mut said = String::new();
    assert!(eventually(Duration::from_secs(10), || {
        let out = h.run(&["exec", "web", "--", "bash", "-c", "exec 3<>/dev/tcp/db/7777 && cat <&3"]);
        said = String::from_utf8_lossy(&out.stdout).into_owned();
        out.status.success()
    }));
    assert_eq!(said.trim(), "hello from db");
    listener.wait().unwrap();
    // From the host, asking hutch's dnsmasq on the bridge.
    assert_eq!(resolve_a(gw, "web.hutch"), Some(web_ip.parse().unwrap()));

    // NAT out to the Debian mirror: apt inside the container.
    let out = h.run(&[
        "exec",
        "web",
        "--",
        "sh",
        "-c",
        "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx",
    ]);
    assert!(
        out.status.success(),
        "apt failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(eventually(Duration::from_secs(20), || h.exec_status("web", &["systemctl", "is-active", "nginx"]) == 0));

    // Published port: from the host's loopback and its own address.
    h.ok(&["port", "add", "web", "8080", "80"]);
    let page = http_get((Ipv4Addr::LOCALHOST, 8080)).unwrap();
    assert!(page.contains("Welcome to nginx"), "{page}");
    let page = http_get((host_address(), 8080)).unwrap();
    assert!(page.contains("Welcome to nginx"), "{page}");
    let listed = h.ok(&["port", "list", "web"]);
    assert!(listed.contains("8080") && listed.contains("80"), "{listed}");
    let err = h.fails(&["port", "add", "db", "8080", "80"]);
    assert!(err.contains("web already publishes it"), "{err}");
    // Never a host service's port, DNS on every address, or someone else's address.
    let busy = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port().to_string();
    let err = h.fails(&["port", "add", "db", &busy_port, "80"]);
    assert!(err.contains("in use on the host"), "{err}");
    let err = h.fails(&["port", "add", "db", "53", "53", "--proto", "udp"]);
    assert!(err.contains("take DNS or DHCP"), "{err}");
    let err = h.fails(&["port", "add", "db", "192.0.2.254:8082", "80"]);
    assert!(err.contains("not an address of this host"), "{err}");
    let info = h.info("web");
    let nic = &info["nics"][0];
    assert_eq!(nic["ipv4"], web_ip.as_str());
    assert!(nic["rx_bytes"].as_u64().unwrap() > 100_000, "apt's download went in: {nic}");
    h.ok(&["port", "rm", "web", "8080"]);
    assert!(http_get((Ipv4Addr::LOCALHOST, 8080)).is_err());
    h.ok(&["port", "add", "web", "127.0.0.1:8081", "80"]);
    assert!(http_get((Ipv4Addr::LOCALHOST, 8081)).unwrap().contains("nginx"));

    // Stop: veth and port rules gone; start again: both back.
    h.ok(&["stop", "web"]);
    assert!(h.veths("web").is_empty(), "{:?}", h.veths("web"));
    assert!(
        http_get((Ipv4Addr::LOCALHOST, 8081)).is_err(),
        "port 8081 still published after stop; monitor log:\n{}",
        std::fs::read_to_string(h.paths().monitor_log("web")).unwrap_or_default()
    );
    h.ok(&["start", "web", "--wait"]);
    assert!(eventually(Duration::from_secs(20), || http_get((Ipv4Addr::LOCALHOST, 8081))
        .is_ok_and(|p| p.contains("nginx"))));

    // An address freed by destroy goes to the next container at once (its old lease
    // is forgotten by dnsmasq, not held for the lease time).
    h.ok(&["stop", "db"]);
    h.ok(&["destroy", "db"]);
    h.create("db2", &img.debian(), &[]);
    assert_eq!(list_ipv4(&h, "db2"), db_ip);
    h.ok(&["start", "db2", "--wait"]);
    assert_eq!(h.exec("db2", &["systemctl", "is-system-running"]), "running");
    assert!(h.exec("db2", &["ip", "-4", "-o", "addr", "show", "eth0"]).contains(&format!("{db_ip}/")));
    for c in ["web", "db2"] {
        h.ok(&["stop", c]);
        h.ok(&["destroy", c]);
        h.assert_gone(c);
    }
    let show = h.ok(&["network", "show", "hutchbr0", "--format", "json"]);
    assert!(!show.contains("\"container\""), "reservations left: {show}");
    delete_network_and_check(&h, "hutchbr0");
}

/// Deletes a network and checks that its bridge, dnsmasq and nftables table are gone.
fn delete_network_and_check(h: &Hutch, name: &str) {
    let v: serde_json::Value = serde_json::from_str(&h.ok(&["network", "show", name, "--format", "json"])).unwrap();
    let bridge = v["network"]["bridge"].as_str().unwrap().to_string();
    let dnsmasq = v["network"]["dnsmasq_pid"].as_i64();
    assert!(std::path::Path::new(&format!("/sys/class/net/{bridge}")).exists());
    h.ok(&["network", "delete", name]);
    assert!(!std::path::Path::new(&format!("/sys/class/net/{bridge}")).exists(), "bridge {bridge} left");
    if let Some(pid) = dnsmasq {
        assert!(eventually(Duration::from_secs(5), || !std::path::Path::new(&format!("/proc/{pid}")).exists()));
    }
    let tables =
        String::from_utf8(std::process::Command::new("nft").args(["list", "tables"]).output().unwrap().stdout).unwrap();
    let scope = h.paths().scope().to_string();
    assert!(!tables.contains(&format!("hutch-{scope}-")), "tables left: {tables}");
    assert!(!h.root.join("run/networks").join(name).exists());
}

/// A /29 in 10.0.0.0/8 that no host route touches.
fn free_29(salt: u32) -> String {
    let routes = hutch::network::addr::parse_proc_net_route(&std::fs::read_to_string("/proc/net/route").unwrap());
    (0..4096u32)
        .map(|i| {
            let n = 0x0ad5_0000u32 + ((std::process::id() * 8 + salt * 1024 + i * 8) & 0xfff8);
            format!("{}/29", Ipv4Addr::from(n))
        })
        .find(|s| {
            let net = hutch::network::addr::V4Net::parse(s).unwrap();
            !routes.iter().any(|r| r.overlaps(&net))
        })
        .unwrap()
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn fixed_addresses_exhaustion_and_refusals() {
    let Some(img) = require("network_alloc", &["dnsmasq", "nft"]) else {
        return;
    };
    let h = Hutch::new("net-alloc");
    let subnet = free_29(1);
    h.ok(&["network", "create", "small", "--subnet", &subnet]);
    let net = hutch::network::addr::V4Net::parse(&subnet).unwrap();
    let base = u32::from(net.network);
    let ip = |n: u32| Ipv4Addr::from(base + n).to_string();
    let bb = img.busybox();
    // Fixed addresses: honoured, or refused with the reason.
    h.create("fixed", &bb, &["--network", "small", "--ipv4", &ip(5)]);
    assert_eq!(list_ipv4(&h, "fixed"), ip(5));
    for (addr, why) in [("10.1.2.3", "outside"), (ip(1).as_str(), "gateway"), (ip(5).as_str(), "fixed")] {
        let err = h.fails(&["create", "x", "--from-dir", bb.to_str().unwrap(), "--network", "small", "--ipv4", addr]);
        assert!(err.contains(why), "{addr}: {err}");
        assert!(!h.paths().container("x").exists());
    }
    // A /29 holds five containers (.2 to .6): four more fit, the next is refused.
    for i in 0..4 {
        h.create(&format!("c{i}"), &bb, &["--network", "small"]);
    }
    let err = h.fails(&["create", "c9", "--from-dir", bb.to_str().unwrap(), "--network", "small"]);
    assert!(err.contains("holds 5 container addresses and all are in use"), "{err}");
    assert!(err.contains("--subnet"), "{err}");
    // The fixed one boots with its address on eth0 (busybox has no DHCP client: hutch
    // only plugs the NIC; the address here is what dnsmasq would hand out).
    h.ok(&["start", "fixed", "--wait"]);
    assert!(h.exec("fixed", &["cat", "/sys/class/net/eth0/address"]).len() == 17);
    let err = h.fails(&["network", "delete", "small"]);
    assert!(err.contains("containers use it") && err.contains("fixed"), "{err}");
    // A killed monitor: the next stop still removes the veth.
    let monitor = h.info("fixed")["monitor_pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(monitor), nix::sys::signal::Signal::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    h.ok(&["stop", "fixed"]);
    assert!(h.veths("fixed").is_empty(), "{:?}", h.veths("fixed"));
    for c in ["fixed", "c0", "c1", "c2", "c3"] {
        h.ok(&["destroy", c]);
        h.assert_gone(c);
    }
    delete_network_and_check(&h, "small");
    let err = h.fails(&["network", "delete", "small"]);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn a_bridge_name_held_by_another_link_is_not_taken_over() {
    if require("network_hijack", &["dnsmasq", "nft"]).is_none() {
        return;
    }
    let h = Hutch::new("net-hijack");
    let p = h.paths();
    let name = "taken";
    let bridge = hutch::network::addr::ifname("hb-", &format!("{}{name}", p.scope()));
    let nl = hutch::network::link::Netlink::new().unwrap();
    let peer = format!("{}x", &bridge[..bridge.len().min(14)]);
    nl.create_veth(&bridge, &peer, [0x02, 0, 0, 0, 0, 1]).unwrap();
    let err = h.fails(&["network", "create", name, "--subnet", &free_29(2)]);
    nl.delete(&bridge).unwrap();
    assert!(err.contains("already a veth link"), "{err}");
    assert!(h.networks().is_empty(), "{:?}", h.networks());
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn ipv6_slaac_gives_the_address_list_shows() {
    let Some(img) = require("network_ipv6", &["dnsmasq", "nft"]) else {
        return;
    };
    let h = Hutch::new("net-v6");
    h.ok(&["network", "create", "six", "--subnet", &free_29(3), "--ipv6", "auto"]);
    h.create("b", &img.busybox(), &["--network", "six"]);
    let v: serde_json::Value = serde_json::from_str(&h.ok(&["list", "--format", "json"])).unwrap();
    let want = v["containers"][0]["ipv6"][0].as_str().unwrap().to_string();
    assert!(want.starts_with("fd"), "{want}");
    let hex: String = want.parse::<std::net::Ipv6Addr>().unwrap().octets().iter().map(|b| format!("{b:02x}")).collect();
    h.ok(&["start", "b", "--wait"]);
    // The kernel's SLAAC, from dnsmasq's router advertisements.
    assert!(
        eventually(Duration::from_secs(15), || h.exec("b", &["cat", "/proc/net/if_inet6"]).contains(&hex)),
        "{want} never appeared: {}",
        h.exec("b", &["cat", "/proc/net/if_inet6"])
    );
    h.ok(&["stop", "b"]);
    h.ok(&["destroy", "b"]);
    h.assert_gone("b");
    delete_network_and_check(&h, "six");
}
