use std::fs;

use super::*;

fn debian() -> Vec<String> {
    ["trixie", "bookworm", "bullseye", "sid", "stable", "unstable", "testing"].map(String::from).to_vec()
}

fn ubuntu() -> Vec<String> {
    ["resolute", "noble", "jammy", "focal"].map(String::from).to_vec()
}

/// A temporary /etc/apt with `files` (relative path, contents).
fn etc_apt(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("sources.list.d")).unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    dir
}

#[test]
fn one_line_sources_skip_security_updates_and_deb_src() {
    let d = etc_apt(&[(
        "sources.list",
        "# deb http://old.example/debian bookworm main\n\
         deb-src http://src.example/debian bookworm main\n\
         deb http://security.example/debian-security bookworm-security main\n\
         deb http://mirror.example/debian bookworm-updates main\n\
         \n\
         deb [arch=amd64 signed-by=/usr/share/keyrings/debian.gpg] http://mirror.example/debian/ bookworm main contrib # mine\n",
    )]);
    let m = from_apt(d.path(), &debian(), None).unwrap();
    assert_eq!(m.uri, "http://mirror.example/debian/");
    assert_eq!(m.suite, "bookworm");
    assert_eq!(m.components, ["main", "contrib"]);
    assert_eq!(m.file, d.path().join("sources.list"));
    assert!(from_apt(d.path(), &ubuntu(), None).is_none());
}

#[test]
fn arch_options_are_honoured() {
    let d = etc_apt(&[(
        "sources.list",
        "deb [ arch=amd64,i386 ] http://mirror.example/ubuntu noble main\n\
         deb [arch=arm64] http://ports.example/ubuntu-ports noble main universe\n",
    )]);
    assert_eq!(from_apt(d.path(), &ubuntu(), Some("amd64")).unwrap().uri, "http://mirror.example/ubuntu");
    assert_eq!(from_apt(d.path(), &ubuntu(), Some("i386")).unwrap().uri, "http://mirror.example/ubuntu");
    assert_eq!(from_apt(d.path(), &ubuntu(), Some("arm64")).unwrap().uri, "http://ports.example/ubuntu-ports");
    assert!(from_apt(d.path(), &ubuntu(), Some("riscv64")).is_none());
    assert_eq!(from_apt(d.path(), &ubuntu(), None).unwrap().uri, "http://mirror.example/ubuntu");
}

const UBUNTU_SOURCES: &str = "\
# Ubuntu sources have moved to /etc/apt/sources.list.d/ubuntu.sources
Types: deb
URIs: http://mirror.example/ubuntu/ http://mirror2.example/ubuntu/
Suites: noble noble-updates noble-backports
Components: main restricted universe multiverse
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg

Types: deb
URIs: http://security.example/ubuntu/
Suites: noble-security
Components: main restricted universe multiverse
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg
";

#[test]
fn deb822_with_multiple_uris_takes_the_first() {
    let d = etc_apt(&[("sources.list", "# See sources.list.d\n"), ("sources.list.d/ubuntu.sources", UBUNTU_SOURCES)]);
    let m = from_apt(d.path(), &ubuntu(), Some("amd64")).unwrap();
    assert_eq!(m.uri, "http://mirror.example/ubuntu/");
    assert_eq!(m.suite, "noble");
    assert_eq!(m.components, ["main", "restricted", "universe", "multiverse"]);
    assert_eq!(m.file, d.path().join("sources.list.d/ubuntu.sources"));
}

#[test]
fn deb822_disabled_stanzas_inline_keys_comments_and_case() {
    let text = "\
Types: deb
URIs: http://disabled.example/debian
Suites: trixie
Components: main
Enabled: no

# a comment between stanzas
types: deb deb-src
uris: http://mirror.example/debian
# a comment inside a stanza
suites: trixie trixie-updates
components: main
signed-by:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBGPAAAABEADxyz
 -----END PGP PUBLIC KEY BLOCK-----
architectures: amd64 arm64

Types: deb
URIs: http://security.example/debian-security
Suites: trixie-security
Components: main
";
    let d = etc_apt(&[("sources.list.d/debian.sources", text)]);
    let m = from_apt(d.path(), &debian(), Some("arm64")).unwrap();
    assert_eq!((m.uri.as_str(), m.suite.as_str()), ("http://mirror.example/debian", "trixie"));
    assert!(from_apt(d.path(), &debian(), Some("s390x")).is_none());
    let only_disabled = text.split("\n\n").next().unwrap();
    let d = etc_apt(&[("sources.list.d/debian.sources", only_disabled)]);
    assert!(from_apt(d.path(), &debian(), None).is_none());
    let d = etc_apt(&[("sources.list.d/debian.sources", &only_disabled.replace("Enabled: no", "Enabled: yes"))]);
    assert_eq!(from_apt(d.path(), &debian(), None).unwrap().uri, "http://disabled.example/debian");
}

#[test]
fn files_with_only_deb_src_or_nothing_give_no_mirror() {
    let d = etc_apt(&[
        ("sources.list", "deb-src http://mirror.example/debian bookworm main\n"),
        (
            "sources.list.d/src.sources",
            "Types: deb-src\nURIs: http://mirror.example/debian\nSuites: trixie\nComponents: main\n",
        ),
        ("sources.list.d/ignored.list.save", "deb http://mirror.example/debian bookworm main\n"),
        ("sources.list.d/cd.list", "deb cdrom:[Debian GNU/Linux 13.0.0 _Trixie_ - Official amd64 DVD]/ trixie main\n"),
    ]);
    assert!(from_apt(d.path(), &debian(), None).is_none());
    assert!(from_apt(Path::new("/nonexistent/etc/apt"), &debian(), None).is_none());
    assert!(from_apt(etc_apt(&[]).path(), &debian(), None).is_none());
}

#[test]
fn the_distribution_archive_beats_third_party_repositories() {
    // A PPA and a vendor repository sort before ubuntu.sources and name the codename too.
    let d = etc_apt(&[
        (
            "sources.list.d/0vendor.list",
            "deb [arch=amd64 signed-by=/etc/apt/keyrings/v.gpg] https://vendor.example/linux/ubuntu noble stable\n",
        ),
        (
            "sources.list.d/a-team-ubuntu-ppa-noble.sources",
            "Types: deb\nURIs: https://ppa.example/a-team/ppa/ubuntu/\nSuites: noble\nComponents: main\n",
        ),
        ("sources.list.d/ubuntu.sources", UBUNTU_SOURCES),
    ]);
    assert_eq!(from_apt(d.path(), &ubuntu(), None).unwrap().uri, "http://mirror.example/ubuntu/");
    // Without any archive serving -updates, an entry with `main` beats one without.
    let d = etc_apt(&[
        ("sources.list.d/0vendor.list", "deb https://vendor.example/linux/ubuntu noble stable\n"),
        ("sources.list.d/1mirror.list", "deb http://mirror.example/ubuntu noble main\n"),
    ]);
    assert_eq!(from_apt(d.path(), &ubuntu(), None).unwrap().uri, "http://mirror.example/ubuntu");
}

#[test]
fn sources_list_comes_before_sources_list_d_in_name_order() {
    let d = etc_apt(&[
        ("sources.list.d/b.list", "deb http://b.example/debian trixie main\n"),
        ("sources.list.d/a.sources", "Types: deb\nURIs: http://a.example/debian\nSuites: trixie\nComponents: main\n"),
    ]);
    assert_eq!(from_apt(d.path(), &debian(), None).unwrap().uri, "http://a.example/debian");
    fs::write(d.path().join("sources.list"), "deb http://first.example/debian stable main\n").unwrap();
    let m = from_apt(d.path(), &debian(), None).unwrap();
    assert_eq!((m.uri.as_str(), m.suite.as_str()), ("http://first.example/debian", "stable"));
}

#[test]
fn mirror_file_lists_resolve_to_their_first_mirror() {
    let d = etc_apt(&[
        ("mirrors/debian.list", "# mirrors\nhttp://mirror.example/debian\tpriority:1\nhttp://other.example/debian\n"),
        (
            "sources.list.d/debian.sources",
            "Types: deb\nURIs: mirror+file:///etc/apt/mirrors/debian.list\nSuites: bookworm bookworm-updates\nComponents: main\n",
        ),
    ]);
    let m = from_apt(d.path(), &debian(), None).unwrap();
    assert_eq!(m.uri, "http://mirror.example/debian");
    // Unusable transports are skipped.
    let d = etc_apt(&[(
        "sources.list",
        "deb mirror+file:/etc/apt/mirrors/missing.list bookworm main\n\
         deb tor+http://onion.example/debian bookworm main\n\
         deb file:/srv/debian bookworm main\n",
    )]);
    assert_eq!(from_apt(d.path(), &debian(), None).unwrap().uri, "file:/srv/debian");
}

#[test]
fn suites_come_from_the_template() {
    let d = etc_apt(&[("sources.list", "deb http://mirror.example/debian buster main\n")]);
    assert!(from_apt(d.path(), &debian(), None).is_none());
    let t = crate::image::template::load("debian", None).unwrap();
    assert_eq!(from_apt(d.path(), &t.apt_suites(), None).unwrap().suite, "buster");
}
