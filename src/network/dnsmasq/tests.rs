use super::*;

fn conf<'a>(v6: Option<V6Net>, log: Option<&'a Path>) -> Conf<'a> {
    Conf {
        bridge: "hutchbr0",
        net: V4Net::parse("10.0.3.0/24").unwrap(),
        v6,
        domain: "hutch",
        pid_file: Path::new("/run/hutch/net/hutchbr0/dnsmasq.pid"),
        hosts_file: Path::new("/var/lib/hutch/net/hutchbr0/dhcp-hosts"),
        addn_hosts: Path::new("/var/lib/hutch/net/hutchbr0/hosts"),
        lease_file: Path::new("/var/lib/hutch/net/hutchbr0/leases"),
        log_file: log,
    }
}

const V4_ONLY: &str = "\
# dnsmasq for hutch bridge hutchbr0, written by hutch: changes are overwritten.
# Run as `dnsmasq --conf-file=THIS`: no other configuration is read.
interface=hutchbr0
except-interface=lo
bind-dynamic
listen-address=10.0.3.1
pid-file=/run/hutch/net/hutchbr0/dnsmasq.pid
no-hosts
addn-hosts=/var/lib/hutch/net/hutchbr0/hosts
domain-needed
local=/hutch/
domain=hutch
expand-hosts
dhcp-range=10.0.3.0,static,255.255.255.0,1h
dhcp-hostsfile=/var/lib/hutch/net/hutchbr0/dhcp-hosts
dhcp-authoritative
dhcp-leasefile=/var/lib/hutch/net/hutchbr0/leases
dhcp-option=option:router,10.0.3.1
dhcp-option=option:dns-server,10.0.3.1
dhcp-option=option:domain-search,hutch
";

#[test]
fn renders_a_v4_config_exactly() {
    assert_eq!(render(&conf(None, None)), V4_ONLY);
}

#[test]
fn renders_v6_and_logging() {
    let v6 = V6Net::parse("fd42:1:2:3::/64").unwrap();
    let log = Path::new("/var/log/hutch/dnsmasq-hutchbr0.log");
    let out = render(&conf(Some(v6), Some(log)));
    let lines: Vec<&str> = out.lines().collect();
    for want in [
        "listen-address=10.0.3.1",
        "listen-address=fd42:1:2:3::1",
        "log-facility=/var/log/hutch/dnsmasq-hutchbr0.log",
        "log-dhcp",
        "enable-ra",
        "dhcp-range=::,constructor:hutchbr0,ra-stateless,ra-names,64,1h",
        "dhcp-option=option6:dns-server,[fd42:1:2:3::1]",
        "dhcp-option=option6:domain-search,hutch",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in\n{out}");
    }
    // Everything in the v4-only file is still there.
    for l in V4_ONLY.lines() {
        assert!(lines.contains(&l), "missing {l:?}");
    }
}

#[test]
fn never_listens_on_the_wildcard_nor_reads_host_files() {
    let v6 = V6Net::parse("fd42:1:2:3::/64").unwrap();
    for c in [conf(None, None), conf(Some(v6), Some(Path::new("/tmp/l")))] {
        let out = render(&c);
        assert!(!out.contains("0.0.0.0"), "{out}");
        let listens: Vec<&str> = out.lines().filter(|l| l.starts_with("listen-address=")).collect();
        assert!(listens.iter().all(|l| *l == "listen-address=10.0.3.1" || *l == "listen-address=fd42:1:2:3::1"));
        assert!(!out.lines().any(|l| l == "listen-address=::" || l.starts_with("port=")));
        for required in ["interface=hutchbr0", "except-interface=lo", "bind-dynamic", "no-hosts", "dhcp-authoritative"]
        {
            assert!(out.lines().any(|l| l == required), "{required}");
        }
        // No directive that would pull in other configuration or stop forwarding.
        for banned in ["conf-file", "conf-dir", "no-resolv", "resolv-file", "server=", "user="] {
            assert!(!out.lines().any(|l| !l.starts_with('#') && l.contains(banned)), "{banned} in\n{out}");
        }
        // Every non-comment line is a `key` or `key=value` directive.
        for l in out.lines().filter(|l| !l.starts_with('#')) {
            assert!(!l.is_empty() && !l.contains(' '), "{l:?}");
        }
    }
}

#[test]
fn renders_other_subnets() {
    let mut c = conf(None, None);
    c.net = V4Net::parse("10.128.0.0/9").unwrap();
    c.domain = "lab.internal";
    let out = render(&c);
    assert!(out.contains("\ndhcp-range=10.128.0.0,static,255.128.0.0,1h\n"), "{out}");
    assert!(out.contains("\nlisten-address=10.128.0.1\n"));
    assert!(out.contains("\nlocal=/lab.internal/\ndomain=lab.internal\n"));
}

fn reservations() -> Vec<Reservation> {
    vec![
        Reservation { mac: [0, 0x16, 0x3e, 0xaa, 0xbb, 0x0c], ipv4: "10.0.3.10".parse().unwrap(), name: "web".into() },
        Reservation { mac: [0, 0x16, 0x3e, 1, 2, 3], ipv4: "10.0.3.2".parse().unwrap(), name: "db".into() },
    ]
}

#[test]
fn renders_hosts_files_sorted_by_address() {
    assert_eq!(hosts_file(&reservations()), "00:16:3e:01:02:03,10.0.3.2,db\n00:16:3e:aa:bb:0c,10.0.3.10,web\n");
    assert_eq!(addn_hosts(&reservations(), "hutch"), "10.0.3.2 db.hutch db\n10.0.3.10 web.hutch web\n");
    assert_eq!(hosts_file(&[]), "");
    assert_eq!(addn_hosts(&[], "hutch"), "");
}

#[test]
fn parses_leases() {
    let text = "\
1735689600 00:16:3e:01:02:03 10.0.3.2 db 01:00:16:3e:01:02:03
0 00:16:3e:aa:bb:0c 10.0.3.10 * *
1735689600 00:16:3e:aa:bb:0d 10.0.3.11 web2
duid 00:01:00:01:2c:1d:5e:6f:00:16:3e:00:00:01
1735693200 1234567 fd42:1:2:3::42 web 00:01:00:01:2c:1d:5e:6f:00:16:3e:aa:bb:0c
garbage
1735689600 zz:16:3e:aa:bb:0c 10.0.3.12 bad *
1735689600 00:16:3e:aa:bb:0c 10.0.3.300 bad *

";
    let leases = parse_leases(text);
    assert_eq!(
        leases,
        [
            Lease {
                expiry: 1735689600,
                mac: [0, 0x16, 0x3e, 1, 2, 3],
                ipv4: "10.0.3.2".parse().unwrap(),
                hostname: Some("db".into()),
                client_id: Some("01:00:16:3e:01:02:03".into()),
            },
            Lease {
                expiry: 0,
                mac: [0, 0x16, 0x3e, 0xaa, 0xbb, 0x0c],
                ipv4: "10.0.3.10".parse().unwrap(),
                hostname: None,
                client_id: None,
            },
            Lease {
                expiry: 1735689600,
                mac: [0, 0x16, 0x3e, 0xaa, 0xbb, 0x0d],
                ipv4: "10.0.3.11".parse().unwrap(),
                hostname: Some("web2".into()),
                client_id: None,
            },
        ]
    );
    assert!(parse_leases("").is_empty());
}

#[test]
fn validates_domains() {
    for ok in ["hutch", "lab.internal", "a-b.c1", "x", &"a".repeat(63)] {
        assert_eq!(validate_domain(ok), Ok(()), "{ok}");
    }
    for (bad, want) in [
        ("", "empty"),
        ("hutch.", "empty label"),
        (".hutch", "empty label"),
        ("a..b", "empty label"),
        ("Hutch", "character other than"),
        ("hu_tch", "character other than"),
        ("a/b", "character other than"),
        ("-a", "starts or ends with '-'"),
        ("a-", "starts or ends with '-'"),
        ("lab.123", "all digits"),
        (&"a".repeat(64), "longer than 63"),
        (&["a".repeat(63), "a".repeat(63), "a".repeat(63), "a".repeat(63)].join("."), "longer than 253"),
    ] {
        let e = validate_domain(bad).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("failed to use DNS domain {bad:?}: ")), "{msg}");
        assert!(msg.contains(want), "{bad}: {msg}");
        assert!(e.hint().is_some());
    }
}
