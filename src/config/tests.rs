use std::path::Path;

use super::*;

const GOOD: &str = r#"schema = 1

[rootfs]
path = "rootfs"

[init]
command = ["/sbin/init"]
halt_signal = "SIGRTMIN+3"
ready = "notify"
stop_timeout = 30
"#;

fn p() -> &'static Path {
    Path::new("/x/config.toml")
}

#[test]
fn parses_a_minimal_file_with_defaults() {
    let c = Config::parse(p(), GOOD).unwrap();
    assert_eq!(c.init.command, vec!["/sbin/init"]);
    assert_eq!(c.halt_signal(), 37);
    assert!(!c.security.privileged);
    assert_eq!(c.log_size(), 1 << 20);
    assert_eq!(c.rootfs_path(Path::new("/s/c")), Path::new("/s/c/rootfs"));
}

#[test]
fn render_round_trips() {
    let mut c = Config::parse(p(), GOOD).unwrap();
    c.env.insert("LANG".into(), "C.UTF-8".into());
    c.idmap = Some(IdMap::range(100000, 100000, 65536));
    let text = c.render();
    assert!(text.starts_with("# hutch"));
    assert_eq!(Config::parse(p(), &text).unwrap(), c);
}

#[test]
fn unknown_keys_are_refused_with_file_line_and_column() {
    let text = GOOD.replace("stop_timeout = 30", "stop_timeout = 30\nfrobnicate = true");
    let err = Config::parse(p(), &text).unwrap_err().to_string();
    assert!(err.starts_with("failed to parse /x/config.toml:11:1:"), "{err}");
    assert!(err.contains("frobnicate"), "{err}");
}

#[test]
fn malformed_files_are_refused() {
    let cases = [
        ("schema = 1\n[rootfs\npath=1", "/x/config.toml:2:"), // truncated table header
        ("schema = 1\nschema = 1\n", "/x/config.toml:2:"),    // duplicate key
        (&GOOD.replace("stop_timeout = 30", "stop_timeout = \"soon\""), "/x/config.toml:10:16"), // wrong type
        ("", "missing field"),
    ];
    for (text, want) in cases {
        let err = Config::parse(p(), text).unwrap_err().to_string();
        assert!(err.contains(want), "{text:?}: {err}");
    }
}

#[test]
fn semantic_errors_name_the_key() {
    let cases = [
        (GOOD.replace("[\"/sbin/init\"]", "[\"sbin/init\"]"), "init.command"),
        (GOOD.replace("[\"/sbin/init\"]", "[]"), "init.command"),
        (GOOD.replace("stop_timeout = 30", "stop_timeout = 0"), "init.stop_timeout"),
        (GOOD.replace("schema = 1", "schema = 2"), "schema 2 is not supported"),
        (format!("{GOOD}[idmap]\nuid = 0\ngid = 0\nsize = 65536\n"), "idmap"),
        (format!("{GOOD}[console]\nlog_size = \"1K\"\n"), "console.log_size"),
        (GOOD.replace("schema = 1", "schema = 1\nhostname = \"Bad_Host\""), "hostname"),
    ];
    for (text, want) in cases {
        let err = Config::parse(p(), &text).unwrap_err().to_string();
        assert!(err.contains(want), "{want}: {err}");
    }
}

#[test]
fn init_command_accepts_a_single_string() {
    let c = Config::parse(p(), &GOOD.replace("[\"/sbin/init\"]", "\"/bin/busybox\"")).unwrap();
    assert_eq!(c.init.command, vec!["/bin/busybox"]);
}

#[test]
fn get_returns_effective_values() {
    let c = Config::parse(p(), GOOD).unwrap();
    assert_eq!(get(&c, "init.halt_signal").unwrap(), Some(toml::Value::String("SIGRTMIN+3".into())));
    assert_eq!(get(&c, "security.privileged").unwrap(), Some(toml::Value::Boolean(false)));
    assert_eq!(get(&c, "hostname").unwrap(), None);
    assert!(matches!(get(&c, "nope.key"), Err(Error::UnknownKey { .. })));
}

#[test]
fn set_edits_in_place_and_validates() {
    let commented = format!("# keep me\n{GOOD}");
    let (text, c) = set(p(), &commented, "init.stop_timeout", "5").unwrap();
    assert!(text.starts_with("# keep me"));
    assert_eq!(c.init.stop_timeout, 5);
    let (_, c) = set(p(), &text, "security.privileged", "true").unwrap();
    assert!(c.security.privileged);
    let (_, c) = set(p(), &text, "init.command", "[\"/bin/sh\", \"-c\", \"exec sleep 1\"]").unwrap();
    assert_eq!(c.init.command, vec!["/bin/sh", "-c", "exec sleep 1"]);
    let (_, c) = set(p(), &text, "init.command", "/bin/busybox").unwrap();
    assert_eq!(c.init.command, vec!["/bin/busybox"]);
    let (_, c) = set(p(), &text, "env.LANG", "C.UTF-8").unwrap();
    assert_eq!(c.env["LANG"], "C.UTF-8");
}

#[test]
fn set_refuses_bad_values_before_anything_is_written() {
    assert!(matches!(set(p(), GOOD, "init.stop_timeout", "soon"), Err(Error::BadValue { .. })));
    assert!(matches!(set(p(), GOOD, "init.stop_timeout", "-3"), Err(Error::BadValue { .. })));
    assert!(matches!(set(p(), GOOD, "security.privileged", "yes"), Err(Error::BadValue { .. })));
    assert!(matches!(set(p(), GOOD, "init.halt_signal", "SIGNOPE"), Err(Error::Parse { .. })));
    assert!(matches!(set(p(), GOOD, "console.log_size", "lots"), Err(Error::Parse { .. })));
    assert!(matches!(set(p(), GOOD, "init.ready", "whenever"), Err(Error::Parse { .. })));
    assert!(matches!(set(p(), GOOD, "idmap.uid", "100000"), Err(Error::Parse { .. })));
    assert!(matches!(set(p(), GOOD, "bogus", "1"), Err(Error::UnknownKey { .. })));
    assert!(matches!(set(p(), GOOD, "schema", "2"), Err(Error::UnknownKey { .. })));
}

#[test]
fn unknown_limits_keys_list_the_known_ones_and_point_at_limits_io() {
    let e = set(p(), GOOD, "limits.memroy", "1G").unwrap_err();
    assert!(e.hint().unwrap().contains("limits.memory, limits.memory_swap"), "{:?}", e.hint());
    let e = set(p(), GOOD, "limits.io", "x").unwrap_err();
    assert!(e.hint().unwrap().contains("[[limits.io]]"), "{:?}", e.hint());
}

const NIC: &str = "[[nic]]\nnetwork = \"hutchbr0\"\nmac = \"00:16:3e:01:02:03\"\n";

#[test]
fn typed_values_are_parsed_at_load_with_file_line_and_column() {
    let cases = [
        (GOOD.replace("SIGRTMIN+3", "SIGFOO"), "/x/config.toml:8:15: unknown signal \"SIGFOO\""),
        (format!("{GOOD}[console]\nlog_size = \"10XB\"\n"), "/x/config.toml:12:12: invalid size \"10XB\""),
        (format!("{GOOD}{NIC}").replace("00:16:3e:01:02:03", "01:16:3e:01:02:03"), "multicast"),
        (format!("{GOOD}{NIC}ipv4 = \"dhcp\"\n"), "/x/config.toml:14:8: failed to parse \"dhcp\" as a NIC's IPv4"),
        (format!("{GOOD}{NIC}ipv4_address = \"10.0.0.300\"\n"), "/x/config.toml:14:"),
        (format!("{GOOD}{NIC}[[port]]\nhost_port = 80\ncontainer_port = 80\nproto = \"sctp\"\n"), "sctp"),
        (
            format!("{GOOD}{NIC}[[port]]\nhost_ip = \"nope\"\nhost_port = 80\ncontainer_port = 80\n"),
            "/x/config.toml:15:",
        ),
    ];
    for (text, want) in cases {
        let err = Config::parse(p(), &text).unwrap_err();
        assert!(matches!(err, Error::Parse { .. }), "{want}: {err}");
        assert!(err.to_string().contains(want), "{want}: {err}");
    }
}

#[test]
fn typed_values_read_back_as_written() {
    let text = format!(
        "{}{NIC}ipv4 = \"10.42.0.7\"\n[[port]]\nhost_ip = \"127.0.0.1\"\nhost_port = 8080\ncontainer_port = 80\nproto = \"udp\"\n",
        GOOD.replace("SIGRTMIN+3", "RTMIN+3")
    );
    let c = Config::parse(p(), &text).unwrap();
    assert_eq!((c.halt_signal(), c.init.halt_signal.as_str()), (37, "RTMIN+3"));
    assert_eq!(c.nics[0].mac.0, [0x00, 0x16, 0x3e, 1, 2, 3]);
    assert_eq!(c.nics[0].ipv4.fixed(), Some("10.42.0.7".parse().unwrap()));
    assert_eq!(c.ports[0].proto, crate::network::nft::Proto::Udp);
    let again = c.render();
    for line in [
        "halt_signal = \"RTMIN+3\"",
        "mac = \"00:16:3e:01:02:03\"",
        "ipv4 = \"10.42.0.7\"",
        "proto = \"udp\"",
        "host_ip = \"127.0.0.1\"",
    ] {
        assert!(again.contains(line), "{line} in {again}");
    }
    assert_eq!(Config::parse(p(), &again).unwrap(), c);
}

#[test]
fn a_bad_value_hints_at_what_the_key_takes() {
    let e = set(p(), GOOD, "init.stop_timeout", "soon").unwrap_err();
    assert_eq!(e.hint().as_deref(), Some("init.stop_timeout: seconds stop waits before killing"));
}
