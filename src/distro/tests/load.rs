use crate::config::Ready;
use crate::distro::apply::set_line;
use crate::distro::*;

fn override_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(d.path().join(name), text).unwrap();
    }
    d
}

const MINIMAL: &str = r#"
distro = "demo"
[init]
command = ["/sbin/init"]
halt_signal = "SIGRTMIN+3"
reboot_signal = "SIGINT"
ready = "notify"
[network]
style = "networkd"
"#;

#[test]
fn every_built_in_table_loads_with_every_release() {
    assert_eq!(known(), ["alpine", "busybox", "centos", "debian", "fedora", "ubuntu"]);
    for distro in known() {
        let t = load(distro, None).unwrap_or_else(|e| panic!("{distro}: {e}"));
        assert_eq!(t.distro(), *distro);
        assert!(t.origin().contains("built in"), "{}", t.origin());
        for r in t.releases().collect::<Vec<_>>() {
            assert_eq!(t.for_release(r).release.as_deref(), Some(r));
        }
    }
}

#[test]
fn inits_follow_their_init_system() {
    for distro in ["debian", "ubuntu", "centos", "fedora"] {
        let i = load(distro, None).unwrap().for_release("").init;
        assert_eq!(i.command, ["/sbin/init"], "{distro}");
        assert_eq!(
            (i.halt_signal.as_str(), i.reboot_signal.as_str(), i.ready),
            ("SIGRTMIN+3", "SIGINT", Ready::Notify)
        );
        assert_eq!(i.stop_timeout, 30);
    }
    for distro in ["alpine", "busybox"] {
        let i = load(distro, None).unwrap().for_release("").init;
        assert_eq!(i.command, ["/sbin/init"], "{distro}");
        assert_eq!((i.halt_signal.as_str(), i.reboot_signal.as_str(), i.ready), ("SIGUSR1", "SIGTERM", Ready::Exec));
    }
}

#[test]
fn network_styles_and_masks_per_distro() {
    let styles = |d: &str, r: &str| load(d, None).unwrap().for_release(r).network.styles;
    assert_eq!(styles("ubuntu", "noble"), [Style::Netplan, Style::Networkd]);
    assert_eq!(styles("debian", "bookworm"), [Style::Ifupdown, Style::Networkd]);
    assert_eq!(styles("centos", "10-Stream"), [Style::NmKeyfile]);
    assert_eq!(styles("centos", "9-Stream"), [Style::NmKeyfile]);
    assert_eq!(styles("centos", "8"), [Style::Ifcfg]);
    assert_eq!(styles("fedora", "43"), [Style::NmKeyfile, Style::Networkd]);
    assert_eq!(styles("alpine", "3.22"), [Style::AlpineInterfaces]);
    assert_eq!(styles("busybox", "latest"), [Style::None]);
    let mask = |d: &str| load(d, None).unwrap().for_release("").systemd.map(|s| s.mask);
    assert_eq!(mask("debian"), Some(vec![]));
    assert_eq!(mask("ubuntu"), Some(vec![]));
    assert_eq!(mask("centos"), Some(vec!["auditd.service".to_string()]));
    assert_eq!(mask("fedora"), Some(vec!["auditd.service".to_string()]));
    assert_eq!(mask("alpine"), None);
    assert_eq!(mask("busybox"), None);
}

#[test]
fn no_table_sets_a_password() {
    for (name, text) in super::super::BUILT_IN {
        for word in ["passwd", "password", "shadow", "chpasswd"] {
            let hits: Vec<_> = text.lines().filter(|l| !l.trim_start().starts_with('#') && l.contains(word)).collect();
            assert!(hits.is_empty(), "{name}: {hits:?}");
        }
    }
}

#[test]
fn releases_match_by_name_alias_and_case() {
    let t = load("ubuntu", None).unwrap();
    assert_eq!(t.for_release("noble").release.as_deref(), Some("noble"));
    assert_eq!(t.for_release("24.04").release.as_deref(), Some("noble"));
    assert_eq!(t.for_release("Noble").release.as_deref(), Some("noble"));
    let other = t.for_release("hoary");
    assert_eq!(other.release, None);
    assert_eq!(other.network, t.for_release("noble").network);
    let c = load("centos", None).unwrap();
    assert_eq!(c.for_release("8").release.as_deref(), Some("8-Stream"));
    assert_eq!(c.for_release("8-stream").release.as_deref(), Some("8-Stream"));
}

#[test]
fn release_overrides_merge_over_the_base() {
    let text = format!(
        r#"{}
interface = "eth0"
enable = true
[systemd]
mask = ["a.service", "b.service"]
getty = "console-getty.service"
[[files]]
path = "/etc/one"
content = "base one"
[[files]]
path = "/etc/two"
content = "base two"
[[set]]
path = "/etc/rc.conf"
key = "A"
value = "1"
[releases.old]
aliases = ["1", "ancient"]
init = {{ halt_signal = "SIGPWR", stop_timeout = 90 }}
network = {{ style = ["ifcfg", "networkd"], nm_controlled = false }}
systemd = {{ mask = ["c.service"], getty = "" }}
files = [{{ path = "/etc/two", content = "old two", mode = 0o600 }}, {{ path = "/etc/three", content = "x" }}]
set = [{{ path = "/etc/rc.conf", key = "A", value = "2" }}, {{ path = "/etc/rc.conf", key = "B", value = "3" }}]
"#,
        MINIMAL
    );
    let d = override_dir(&[("demo.toml", &text)]);
    let t = load("demo", Some(d.path())).unwrap();
    let base = t.for_release("new");
    let old = t.for_release("ancient");
    assert_eq!(old.release.as_deref(), Some("old"));
    assert_eq!(old.init.halt_signal, "SIGPWR");
    assert_eq!(old.init.reboot_signal, "SIGINT", "kept from the base");
    assert_eq!((base.init.stop_timeout, old.init.stop_timeout), (30, 90));
    assert_eq!(old.network.styles, [Style::Ifcfg, Style::Networkd]);
    assert_eq!((old.network.nm_controlled, base.network.nm_controlled), (Some(false), None));
    assert!(old.network.enable, "kept from the base");
    assert_eq!(old.systemd.as_ref().unwrap().mask, ["c.service"], "lists replace");
    assert_eq!(old.systemd.as_ref().unwrap().getty, None, "an empty getty turns it off");
    assert_eq!(base.systemd.as_ref().unwrap().getty.as_deref(), Some("console-getty.service"));
    let files: Vec<_> = old.files.iter().map(|f| (f.path.as_str(), f.content.as_str(), f.mode)).collect();
    assert_eq!(files, [("/etc/one", "base one", 0o644), ("/etc/two", "old two", 0o600), ("/etc/three", "x", 0o644)]);
    let sets: Vec<_> = old.set.iter().map(|s| (s.key.as_str(), s.value.as_str())).collect();
    assert_eq!(sets, [("A", "2"), ("B", "3")]);
    assert_eq!(base.files.len(), 2);
}

#[test]
fn unknown_distros_are_refused_with_the_known_ones() {
    for name in ["gentoo", "../ubuntu", "", "Ubuntu"] {
        let e = load(name, None).unwrap_err();
        assert!(matches!(e, Error::Unknown { .. }), "{name}: {e}");
        assert!(e.to_string().contains("alpine, busybox, centos, debian, fedora, ubuntu"), "{e}");
        assert!(e.to_string().starts_with("failed to find"), "{e}");
        assert!(e.hint().unwrap().contains(DEFAULT_OVERRIDE_DIR));
    }
}

#[test]
fn the_override_directory_replaces_or_adds_tables() {
    let ubuntu = MINIMAL.replace("demo", "ubuntu").replace("networkd", "ifupdown");
    let d = override_dir(&[("ubuntu.toml", &ubuntu), ("demo.toml", MINIMAL)]);
    let t = load("ubuntu", Some(d.path())).unwrap();
    assert_eq!(t.origin(), d.path().join("ubuntu.toml").display().to_string());
    assert_eq!(t.for_release("noble").network.styles, [Style::Ifupdown]);
    assert_eq!(t.releases().count(), 0, "the override replaces the whole table");
    assert_eq!(load("demo", Some(d.path())).unwrap().distro(), "demo");
    // Without a file there, the built-in table.
    assert!(load("debian", Some(d.path())).unwrap().origin().contains("built in"));
    assert!(load("debian", Some(&d.path().join("missing"))).is_ok());
}

#[test]
fn parse_errors_name_the_file_and_line() {
    let broken = MINIMAL.replace("ready = \"notify\"", "ready = \"soon\"");
    let d = override_dir(&[("demo.toml", &broken)]);
    let e = load("demo", Some(d.path())).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("failed to parse {}:7:", d.path().join("demo.toml").display())), "{msg}");
    assert!(e.hint().is_some());
    let unknown_key = format!("{MINIMAL}colour = \"blue\"\n");
    let e = DistroConfig::parse("demo", "demo.toml", &unknown_key).unwrap_err();
    assert!(e.to_string().contains("colour"), "{e}");
    let unknown_release_key = format!("{MINIMAL}[releases.x]\nalias = [\"y\"]\n");
    assert!(DistroConfig::parse("demo", "demo.toml", &unknown_release_key).is_err());
    let bad_style = MINIMAL.replace("\"networkd\"", "\"wicked\"");
    assert!(DistroConfig::parse("demo", "demo.toml", &bad_style).unwrap_err().to_string().contains("demo.toml:"));
}

#[test]
fn invalid_values_are_refused_with_their_key() {
    let cases = [
        (MINIMAL.replace("demo", "other"), "distro"),
        (MINIMAL.replace("[\"/sbin/init\"]", "[\"sbin/init\"]"), "init.command"),
        (MINIMAL.replace("[\"/sbin/init\"]", "[]"), "init.command"),
        (MINIMAL.replace("reboot_signal = \"SIGINT\"", "reboot_signal = \"SIGNOPE\""), "init.reboot_signal"),
        (MINIMAL.replace("reboot_signal = \"SIGINT\"\n", ""), "init.reboot_signal"),
        (MINIMAL.replace("style = \"networkd\"", "style = []"), "network.style"),
        (format!("{MINIMAL}interface = \"eth0/../x\"\n"), "network.interface"),
        (format!("{MINIMAL}[systemd]\nmask = [\"../../x.service\"]\n"), "systemd"),
        (format!("{MINIMAL}[systemd]\ngetty = \"tty\"\n"), "systemd"),
        (format!("{MINIMAL}[[files]]\npath = \"/etc/../../x\"\ncontent = \"\"\n"), "files.path"),
        (format!("{MINIMAL}[[files]]\npath = \"etc/x\"\ncontent = \"\"\n"), "files.path"),
        (format!("{MINIMAL}[[files]]\npath = \"/etc/x\"\ncontent = \"\"\nmode = 0o4755\n"), "files.mode"),
        (format!("{MINIMAL}[[files]]\npath = \"/etc/x\"\ncontent = \"\"\nif_exists = \"x\"\n"), "files.if_exists"),
        (format!("{MINIMAL}[[set]]\npath = \"/etc/x\"\nkey = \"A B\"\nvalue = \"1\"\n"), "set.key"),
        (format!("{MINIMAL}[[set]]\npath = \"/etc/x\"\nkey = \"A\"\nvalue = \"1\\n2\"\n"), "set.value"),
        (
            format!("{MINIMAL}[releases.bad]\ninit = {{ halt_signal = \"SIGBOGUS\" }}\n"),
            "releases.bad.init.halt_signal",
        ),
    ];
    for (text, key) in cases {
        let e = DistroConfig::parse("demo", "demo.toml", &text).unwrap_err();
        match &e {
            Error::Invalid { key: k, origin, .. } => {
                assert!(k.starts_with(key), "expected {key}, got {k}: {e}");
                assert_eq!(origin, "demo.toml");
            }
            other => panic!("{key}: {other}"),
        }
        assert!(e.to_string().starts_with("failed to load "), "{e}");
    }
}

#[test]
fn set_line_replaces_uncomments_or_appends() {
    assert_eq!(set_line("a=1\n#rc_sys=\"\"\nb=2\n", "rc_sys", "\"lxc\""), "a=1\nrc_sys=\"lxc\"\nb=2\n");
    assert_eq!(set_line("# rc_sys=\"\"\nrc_sys=\"docker\"\n", "rc_sys", "\"lxc\""), "# rc_sys=\"\"\nrc_sys=\"lxc\"\n");
    assert_eq!(set_line("rc_system=1\n", "rc_sys", "\"lxc\""), "rc_system=1\nrc_sys=\"lxc\"\n");
    assert_eq!(set_line("", "A", "1"), "A=1\n");
}

#[test]
fn machine_ids_are_random_v4_hex() {
    let a = random_machine_id().unwrap();
    let b = random_machine_id().unwrap();
    assert_ne!(a, b);
    assert_eq!(a.len(), 32);
    assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_eq!(&a[12..13], "4", "version 4");
    let ctx = Context::new("web", "web").unwrap();
    assert_eq!(ctx.machine_id.len(), 32);
}
