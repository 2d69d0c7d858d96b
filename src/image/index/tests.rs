use std::io::Write as _;

use super::*;

const INDEX: &str = "\
alpine;3.20;amd64;default;20260903_13:00;/images/alpine/3.20/amd64/default/20260903_13:00/
alpine;3.20;amd64;default;20260904_13:00;/images/alpine/3.20/amd64/default/20260904_13:00/
alpine;edge;amd64;default;20260904_13:00;/images/alpine/edge/amd64/default/20260904_13:00/
centos;9-Stream;amd64;default;20260904_07:08;/images/centos/9-Stream/amd64/default/20260904_07:08/
debian;bookworm;amd64;cloud;20260904_05:24;/images/debian/bookworm/amd64/cloud/20260904_05:24/
debian;bookworm;amd64;default;20260902_05:24;/images/debian/bookworm/amd64/default/20260902_05:24/
debian;bookworm;amd64;default;20260904_05:24;/images/debian/bookworm/amd64/default/20260904_05:24/
debian;bookworm;amd64;default;20260903_05:24;/images/debian/bookworm/amd64/default/20260903_05:24/
debian;trixie;arm64;default;20260904_05:24;/images/debian/trixie/arm64/default/20260904_05:24/
debian;trixie;amd64;default;20260904_05:24;/images/debian/trixie/amd64/default/20260904_05:24/
ubuntu;jammy;arm64;default;20260904_07:42;/images/ubuntu/jammy/arm64/default/20260904_07:42/
ubuntu;noble;amd64;default;20260904_07:42;/images/ubuntu/noble/amd64/default/20260904_07:42/
ubuntu;noble;amd64;default;20260831_07:42;/images/ubuntu/noble/amd64/default/20260831_07:42/
";

#[test]
fn parses_every_line_of_a_real_index() {
    let (entries, bad) = parse_lines(INDEX);
    assert_eq!(entries.len(), 13);
    assert!(bad.is_empty());
    assert_eq!(
        entries[10],
        Entry {
            dist: "ubuntu".into(),
            release: "jammy".into(),
            arch: "arm64".into(),
            variant: "default".into(),
            build: "20260904_07:42".into(),
            path: "/images/ubuntu/jammy/arm64/default/20260904_07:42/".into(),
        }
    );
}

#[test]
fn skips_blank_and_malformed_lines_and_handles_crlf() {
    let text = "\r\n\
        ubuntu;noble;amd64;default;20260904_07:42;/images/n/\r\n\
        garbage\r\n\
        a;b;c;d\r\n\
        debian;trixie;amd64;default;;/images/t/\r\n\
        debian;trixie;amd64;default;20260904_05:24;\r\n\
        a;b;c;d;e;f;g\r\n\
        \r\n\
        debian;trixie;amd64;default;20260904_05:24;/images/t/";
    let (entries, bad) = parse_lines(text);
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].path, "/images/n/");
    assert_eq!(entries[1].path, "/images/t/");
    let bad: Vec<String> = bad.iter().map(ToString::to_string).collect();
    assert_eq!(
        bad,
        [
            "line 3 has 1 field, expected 6",
            "line 4 has 4 fields, expected 6",
            "line 5 has an empty build field",
            "line 6 has an empty path field",
            "line 7 has 7 fields, expected 6",
        ]
    );
    assert_eq!(parse(text), entries);
}

#[test]
fn parse_from_refuses_an_index_with_no_images() {
    let url = index_url("http://images.example/");
    assert_eq!(url, "http://images.example/meta/1.0/index-system");
    assert_eq!(parse_from(&url, INDEX).unwrap().len(), 13);
    let e = parse_from(&url, "<html>\n<body>Not Found</body>\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "failed to parse the image index from http://images.example/meta/1.0/index-system: line 1 has 1 field, expected 6"
    );
    assert!(e.hint().is_some());
    let e = parse_from(&url, "\n\n").unwrap_err().to_string();
    assert!(e.ends_with(": it lists no images"), "{e}");
    let e = parse_from(&url, "\na;b;c;d\n").unwrap_err().to_string();
    assert!(e.ends_with(": line 2 has 4 fields, expected 6"), "{e}");
}

#[test]
fn select_picks_the_latest_build_of_an_exact_match() {
    let entries = parse(INDEX);
    let e = select(&entries, "debian", "bookworm", "amd64", "default").unwrap();
    assert_eq!(e.build, "20260904_05:24");
    assert_eq!(e.variant, "default");
    assert_eq!(select(&entries, "debian", "bookworm", "amd64", "cloud").unwrap().variant, "cloud");
    assert_eq!(select(&entries, "ubuntu", "noble", "amd64", "default").unwrap().build, "20260904_07:42");
    // Release (as users type it) ignores case; arch and variant do not.
    assert_eq!(select(&entries, "centos", "9-stream", "amd64", "default").unwrap().release, "9-Stream");
    assert_eq!(select(&entries, "debian", "trixie", "arm64", "default").unwrap().arch, "arm64");
    assert!(select(&entries, "ubuntu", "jammy", "amd64", "default").is_none());
    assert!(select(&entries, "debian", "trixie", "amd64", "cloud").is_none());
    assert!(select(&entries, "fedora", "41", "amd64", "default").is_none());
    assert!(select(&[], "debian", "trixie", "amd64", "default").is_none());
}

#[test]
fn releases_for_lists_what_the_server_has() {
    let entries = parse(INDEX);
    assert_eq!(releases_for(&entries, "debian", "amd64"), ["bookworm", "trixie"]);
    assert_eq!(releases_for(&entries, "ubuntu", "arm64"), ["jammy"]);
    assert_eq!(releases_for(&entries, "alpine", "amd64"), ["3.20", "edge"]);
    assert!(releases_for(&entries, "fedora", "amd64").is_empty());
}

#[test]
fn format_round_trips() {
    let entries = parse(INDEX);
    assert_eq!(format(&entries), INDEX);
    assert_eq!(parse(&format(&entries)), entries);
    assert_eq!(format(&[]), "");
}

#[test]
fn url_join_puts_one_slash_at_each_joint() {
    let p = "/images/ubuntu/noble/amd64/default/20260904_07:42/";
    let want = "http://images.example/images/ubuntu/noble/amd64/default/20260904_07:42/rootfs.tar.xz";
    for server in ["http://images.example", "http://images.example/"] {
        assert_eq!(url_join(server, p, "rootfs.tar.xz"), want);
        assert_eq!(url_join(server, p.trim_matches('/'), "/rootfs.tar.xz"), want);
    }
    // The server may have a path of its own; an absolute path stays under it (lxc-download).
    assert_eq!(
        url_join("http://mirror.example/lxc/", "/images/x/", "SHA256SUMS"),
        "http://mirror.example/lxc/images/x/SHA256SUMS"
    );
    assert_eq!(
        url_join("http://a.example", "http://b.example/images/x/", "meta.tar.xz"),
        "http://b.example/images/x/meta.tar.xz"
    );
    assert_eq!(url_join("http://a.example/", "", ""), "http://a.example");
    assert_eq!(url_join("http://a.example/", "/", "f"), "http://a.example/f");
}

const ROOTFS_SUM: &str = "4f8b5c9e0a1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a3f4e5d6c7b";

#[test]
fn parses_sha256sums_in_every_form_sha256sum_prints() {
    let upper = ROOTFS_SUM.to_uppercase();
    let text = format!(
        "{ROOTFS_SUM}  rootfs.tar.xz\r\n{upper} *meta.tar.xz\n\n# comment\n{ROOTFS_SUM} ./incus.tar.xz\n\
         SHA256 (rootfs.squashfs) = {ROOTFS_SUM}\n\\{ROOTFS_SUM}  odd\\\\name\n{ROOTFS_SUM}\ttabbed"
    );
    let sums = parse_sha256sums("SHA256SUMS", &text).unwrap();
    let names: Vec<&str> = sums.keys().map(String::as_str).collect();
    assert_eq!(names, ["incus.tar.xz", "meta.tar.xz", "odd\\name", "rootfs.squashfs", "rootfs.tar.xz", "tabbed"]);
    assert!(sums.values().all(|h| h == ROOTFS_SUM));
}

#[test]
fn bad_sha256sums_lines_are_errors_naming_the_line() {
    let origin = "http://images.example/images/x/SHA256SUMS";
    for (text, want) in [
        (format!("{ROOTFS_SUM}  a\nnot a checksum\n"), "line 2 does not start with a 64-digit sha256"),
        (format!("{}  a", &ROOTFS_SUM[..63]), "line 1 does not start"),
        (format!("{}g  a", &ROOTFS_SUM[..63]), "line 1 does not start"),
        (format!("{ROOTFS_SUM}a"), "line 1 has no space"),
        (format!("{ROOTFS_SUM}  "), "line 1 has no file name"),
        (format!("{ROOTFS_SUM}  a\n{}  a", sha256_hex(b"")), "line 2 lists a again"),
        ("SHA256 (a) = 12".to_string(), "line 1 has no 64-digit"),
    ] {
        let e = parse_sha256sums(origin, &text).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("failed to parse the checksums from {origin}: ")), "{msg}");
        assert!(msg.contains(want), "{want:?} not in {msg}");
    }
}

#[test]
fn sha256_of_known_inputs() {
    assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

#[test]
fn sha256_writer_hashes_what_passes_through() {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let mut w = Sha256Writer::new(Vec::new());
    for chunk in data.chunks(777) {
        w.write_all(chunk).unwrap();
    }
    w.flush().unwrap();
    let (inner, hex) = w.finish();
    assert_eq!(inner, data);
    assert_eq!(hex, sha256_hex(&data));

    let mut w = Sha256Writer::new(std::io::sink());
    std::io::copy(&mut &b"abc"[..], &mut w).unwrap();
    assert_eq!(w.finish().1, sha256_hex(b"abc"));
}
