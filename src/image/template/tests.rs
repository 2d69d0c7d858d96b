use super::*;

fn tpl(distro: &str) -> Template {
    load(distro, None).unwrap()
}

fn rel(distro: &str, wanted: Option<&str>) -> String {
    tpl(distro).release(wanted).map(|r| r.name.clone()).unwrap_or_else(|e| panic!("{distro}:{wanted:?}: {e}"))
}

#[test]
fn parse_ref_accepts_distro_and_distro_release() {
    assert_eq!(parse_ref("debian").unwrap(), ImageRef { distro: "debian".into(), release: None });
    let r = parse_ref("Ubuntu:24.04").unwrap();
    assert_eq!(r, ImageRef { distro: "ubuntu".into(), release: Some("24.04".into()) });
    assert_eq!(r.to_string(), "ubuntu:24.04");
    assert_eq!(parse_ref("centos:9-Stream").unwrap().release.as_deref(), Some("9-Stream"));
}

#[test]
fn parse_ref_refuses_malformed_names() {
    for (input, want) in [
        ("", "empty"),
        (":x", "no distribution"),
        ("x:", "no release"),
        ("a:b:c", "more than one"),
        ("../etc", "distribution is"),
        ("ubuntu:no ble", "release is"),
        ("ubuntu:-x", "release is"),
    ] {
        let e = parse_ref(input).unwrap_err();
        assert!(e.to_string().contains(want), "{input:?}: {e}");
        assert!(e.hint().unwrap().contains("DISTRO:RELEASE"));
    }
}

#[test]
fn every_embedded_template_loads_and_every_release_has_sources() {
    assert_eq!(known(), ["alpine", "busybox", "centos", "debian", "fedora", "ubuntu"]);
    for d in known() {
        let t = tpl(d);
        assert_eq!(t.distro, d);
        assert_eq!(t.origin, format!("built-in {d}.toml"));
        for r in &t.releases {
            assert!(!t.sources_for(r).is_empty(), "{d}:{}", r.name);
        }
    }
}

#[test]
fn templates_name_no_hosts() {
    // Mirrors come from the host, --mirror or the config: never from the templates.
    for (name, text) in EMBEDDED {
        assert!(!text.contains("://"), "{name}.toml names a URL");
        assert!(!text.to_ascii_lowercase().contains(".org"), "{name}.toml names a host");
    }
}

#[test]
fn ubuntu_releases_and_aliases() {
    assert_eq!(rel("ubuntu", None), "resolute");
    assert_eq!(rel("ubuntu", Some("24.04")), "noble");
    assert_eq!(rel("ubuntu", Some("noble")), "noble");
    assert_eq!(rel("ubuntu", Some("NOBLE")), "noble");
    assert_eq!(rel("ubuntu", Some("22.04")), "jammy");
    assert_eq!(rel("ubuntu", Some("20.04")), "focal");
    assert_eq!(rel("ubuntu", Some("26.04")), "resolute");
    let t = tpl("ubuntu");
    assert!(t.releases.iter().all(|r| r.lts));
    assert_eq!(t.release(Some("noble")).unwrap().version(), "24.04");
}

#[test]
fn debian_releases_and_aliases() {
    assert_eq!(rel("debian", None), "trixie");
    assert_eq!(rel("debian", Some("stable")), "trixie");
    assert_eq!(rel("debian", Some("13")), "trixie");
    assert_eq!(rel("debian", Some("12")), "bookworm");
    assert_eq!(rel("debian", Some("bookworm")), "bookworm");
    assert_eq!(rel("debian", Some("11")), "bullseye");
    assert_eq!(rel("debian", Some("unstable")), "sid");
}

#[test]
fn centos_fedora_alpine_busybox_releases() {
    for w in ["9-Stream", "9", "9-stream", "9-STREAM"] {
        assert_eq!(rel("centos", Some(w)), "9-Stream");
    }
    assert_eq!(rel("centos", Some("10")), "10-Stream");
    assert_eq!(rel("centos", None), "10-Stream");
    assert_eq!(tpl("centos").release(Some("9")).unwrap().version(), "9");
    for f in ["41", "42", "43"] {
        assert_eq!(rel("fedora", Some(f)), f);
    }
    assert_eq!(rel("fedora", None), "43");
    for a in ["3.19", "3.20", "3.21", "3.22", "edge", "EDGE"] {
        assert_eq!(rel("alpine", Some(a)), a.to_lowercase());
    }
    assert_eq!(rel("alpine", None), "3.22");
    assert_eq!(rel("busybox", None), "latest");
    assert_eq!(rel("busybox", Some("1")), "latest");
    assert_eq!(rel("busybox", Some("Latest")), "latest");
}

#[test]
fn release_overrides_replace_the_distro_sources() {
    let t = tpl("alpine");
    let edge = t.release(Some("edge")).unwrap();
    let kinds: Vec<_> = t.sources_for(edge).iter().map(Source::kind).collect();
    assert_eq!(kinds, ["image-server"]);
    let r = t.release(Some("3.20")).unwrap();
    let kinds: Vec<_> = t.sources_for(r).iter().map(Source::kind).collect();
    assert_eq!(kinds, ["image-server", "tar"]);
}

#[test]
fn unknown_release_lists_releases_with_aliases() {
    let e = tpl("ubuntu").release(Some("warty")).unwrap_err();
    assert_eq!(e.to_string(), "failed to find release \"warty\" of ubuntu: the template does not list it");
    let h = e.hint().unwrap();
    assert!(h.contains("resolute (26.04, LTS, default)"), "{h}");
    assert!(h.contains("noble (24.04, LTS)"), "{h}");
    let h = tpl("debian").release(Some("buzz")).unwrap_err().hint().unwrap();
    assert!(h.contains("trixie (13, stable, default)"), "{h}");
}

#[test]
fn unknown_distro_lists_known_ones() {
    let e = load("gentoo", None).unwrap_err();
    assert_eq!(e.to_string(), "failed to find a template for \"gentoo\": hutch does not know that distribution");
    assert!(e.hint().unwrap().contains("alpine, busybox, centos, debian, fedora, ubuntu"), "{:?}", e.hint());
    assert!(matches!(load("../debian", None), Err(Error::UnknownDistro { .. })));
}

#[test]
fn sources_parse_into_their_kinds() {
    let t = tpl("ubuntu");
    let s = t.sources_for(t.release(None).unwrap());
    assert_eq!(s[0], Source::ImageServer { dist: "ubuntu".into(), variant: "default".into() });
    let Source::Debootstrap { mirror, variant, components, include, .. } = &s[1] else { panic!("{s:?}") };
    assert_eq!(*mirror, MirrorFrom::HostApt);
    assert_eq!(variant.as_deref(), Some("minbase"));
    assert_eq!(components, &["main", "universe"]);
    assert!(include.iter().any(|p| p == "systemd-sysv"));

    let t = tpl("centos");
    let Source::Dnf { mirror, host_ids, repos, .. } = &t.sources[1] else { panic!() };
    assert_eq!((*mirror, host_ids.as_slice()), (MirrorFrom::HostDnf, &["centos".to_string()][..]));
    let r = t.release(Some("9-Stream")).unwrap();
    let arch = t.sources[1].arch_for("amd64").unwrap();
    let url = expand(&repos[0].baseurl, "http://mirror.example/centos-stream/", r, &arch);
    assert_eq!(url, "http://mirror.example/centos-stream/9-stream/BaseOS/x86_64/os/");

    let t = tpl("fedora");
    let Source::Dnf { repos, .. } = &t.sources[1] else { panic!() };
    let url = expand(&repos[0].baseurl, "http://mirror.example/fedora", t.release(Some("42")).unwrap(), "aarch64");
    assert_eq!(url, "http://mirror.example/fedora/releases/42/Everything/aarch64/os/");

    let t = tpl("alpine");
    let tar = &t.sources[1];
    let Source::Tar { url, checksums, .. } = tar else { panic!() };
    let r = t.release(Some("3.20")).unwrap();
    let a = tar.arch_for("arm64").unwrap();
    assert_eq!(
        expand(url, "http://mirror.example/alpine", r, &a),
        "http://mirror.example/alpine/v3.20/releases/aarch64/alpine-minirootfs-3.20.3-aarch64.tar.gz"
    );
    assert!(expand(checksums, "m", r, &a).ends_with(".tar.gz.sha256"));
    assert_eq!(tar.arch_for("loong64"), None);

    let t = tpl("busybox");
    assert!(matches!(&t.sources[0], Source::Busybox { paths } if paths[0] == "/bin/busybox"));
}

#[test]
fn apt_suites_are_names_word_aliases_and_host_suites() {
    let s = tpl("debian").apt_suites();
    for want in ["trixie", "bookworm", "bullseye", "sid", "stable", "unstable", "buster", "testing"] {
        assert!(s.iter().any(|x| x == want), "{want} not in {s:?}");
    }
    assert!(!s.iter().any(|x| x == "12" || x.ends_with("-security")), "{s:?}");
    let s = tpl("ubuntu").apt_suites();
    assert!(s.iter().any(|x| x == "noble") && s.iter().any(|x| x == "bionic"), "{s:?}");
    assert!(!s.iter().any(|x| x == "bookworm"));
}

const MINI: &str = r#"
distro = "mini"
default_release = "one"
[[releases]]
name = "one"
aliases = ["1"]
[[sources]]
kind = "image-server"
"#;

#[test]
fn override_dir_replaces_and_adds_templates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mini.toml"), MINI).unwrap();
    let ubuntu = tpl("ubuntu").releases.len();
    let replaced = MINI.replace("\"mini\"", "\"ubuntu\"");
    std::fs::write(dir.path().join("ubuntu.toml"), replaced).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "x").unwrap();

    let t = load("mini", Some(dir.path())).unwrap();
    assert_eq!(t.origin, dir.path().join("mini.toml").display().to_string());
    assert_eq!(t.release(Some("1")).unwrap().name, "one");
    // The dist defaults to the distribution.
    assert_eq!(t.sources[0], Source::ImageServer { dist: "mini".into(), variant: "default".into() });
    assert_eq!(load("ubuntu", Some(dir.path())).unwrap().releases.len(), 1);
    assert_eq!(load("ubuntu", None).unwrap().releases.len(), ubuntu);
    assert_eq!(load("debian", Some(dir.path())).unwrap().origin, "built-in debian.toml");
    assert_eq!(load("debian", Some(Path::new("/nonexistent/hutch"))).unwrap().distro, "debian");

    let e = load("gentoo", Some(dir.path())).unwrap_err();
    let Error::UnknownDistro { known, .. } = &e else { panic!("{e}") };
    assert_eq!(known, &["alpine", "busybox", "centos", "debian", "fedora", "mini", "ubuntu"]);
}

#[test]
fn broken_override_files_are_refused_with_position_and_hint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mini.toml");
    std::fs::write(&path, MINI.replace("kind = \"image-server\"", "kind = \"image-server\"\nmirorr = 1")).unwrap();
    let e = load("mini", Some(dir.path())).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("failed to parse the template {}:", path.display())), "{msg}");
    assert!(msg.contains("mirorr"), "{msg}");
    assert!(e.hint().unwrap().contains("remove it"));

    std::fs::write(&path, "distro = \"mini\"\ndefault_release = 3\n").unwrap();
    let msg = load("mini", Some(dir.path())).unwrap_err().to_string();
    assert!(msg.contains("mini.toml:2:19:"), "{msg}");
}

#[test]
fn invalid_templates_are_refused() {
    let cases = [
        (MINI.replace("\"mini\"", "\"other\""), "the file is for \"mini\""),
        (MINI.replace("default_release = \"one\"", "default_release = \"two\""), "default_release \"two\""),
        (MINI.replace("aliases = [\"1\"]", "aliases = [\"ONE\"]"), "\"ONE\" names both one and one"),
        (MINI.replace("[[sources]]\nkind = \"image-server\"\n", ""), "release one has no sources"),
        (MINI.replace("image-server\"", "debootstrap\"\nmirror = \"host-apt\"\ncomponents = []"), "needs components"),
        (MINI.replace("image-server\"", "debootstrap\"\nmirror = \"host-dnf\"\ncomponents = [\"main\"]"), "host-apt"),
        (MINI.replace("image-server\"", "busybox\"\npaths = [\"busybox\"]"), "absolute"),
        (
            MINI.replace(
                "image-server\"",
                "tar\"\nmirror = \"config\"\nurl = \"{mirror}/{relase}.tar\"\nchecksums = \"x\"",
            ),
            "unknown placeholder {relase}",
        ),
        (
            MINI.replace("image-server\"", "tar\"\nmirror = \"config\"\nurl = \"{mirror/x\"\nchecksums = \"x\""),
            "unbalanced",
        ),
        (
            MINI.replace(
                "image-server\"",
                "tar\"\nmirror = \"config\"\nurl = \"u\"\nchecksums = \"c\"\narch_map = { x86_64 = \"x86_64\" }",
            ),
            "arch_map has \"x86_64\"",
        ),
        (
            MINI.replace("image-server\"", "dnf\"\nmirror = \"host-dnf\"\nrepos = []\npackages = [\"a\"]"),
            "needs host_ids",
        ),
    ];
    for (text, want) in cases {
        let e = Template::parse("mini", "/t/mini.toml", &text).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("failed to load the template /t/mini.toml: "), "{msg}");
        assert!(msg.contains(want), "{want:?} not in {msg}");
    }
}

#[test]
fn unknown_fields_and_kinds_are_refused() {
    for (text, want) in [
        (MINI.replace("kind = \"image-server\"", "kind = \"image-server\"\nserver = \"x\""), "server"),
        (MINI.replace("image-server", "rsync"), "rsync"),
        (MINI.replace("name = \"one\"", "name = \"one\"\ncodename = \"x\""), "codename"),
        (MINI.replace("default_release", "default"), "default"),
    ] {
        let e = Template::parse("mini", "/t/mini.toml", &text).unwrap_err().to_string();
        assert!(e.starts_with("failed to parse the template /t/mini.toml:"), "{e}");
        assert!(e.contains(want), "{want}: {e}");
    }
}

#[test]
fn arches_normalize_to_debian_names() {
    for (given, want) in [
        ("x86_64", "amd64"),
        ("AMD64", "amd64"),
        ("aarch64", "arm64"),
        ("armv7l", "armhf"),
        ("i686", "i386"),
        ("ppc64le", "ppc64el"),
        ("s390x", "s390x"),
        ("riscv64", "riscv64"),
        ("loongarch64", "loong64"),
    ] {
        assert_eq!(normalize_arch(given).unwrap(), want, "{given}");
    }
    let e = normalize_arch("mips").unwrap_err();
    assert_eq!(e.to_string(), "failed to use architecture \"mips\": hutch does not know it");
    assert!(e.hint().unwrap().contains("amd64, arm64"));
    assert_eq!(rpm_arch("amd64").unwrap(), "x86_64");
    assert_eq!(rpm_arch("arm64").unwrap(), "aarch64");
    assert_eq!(rpm_arch("ppc64el").unwrap(), "ppc64le");
    assert_eq!(rpm_arch("x86_64").unwrap(), "x86_64");
    assert!(ARCHES.contains(&host_arch()) || host_arch() == std::env::consts::ARCH);
    assert_eq!(normalize_arch(std::env::consts::ARCH).ok(), ARCHES.iter().copied().find(|a| *a == host_arch()));
}
