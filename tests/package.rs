//! The Debian package: `scripts/build-deb.sh` builds it (here from this build's
//! binaries), `apt-get install ./hutch_*.deb` installs it, and then the man pages are
//! found, bash completes subcommands, `hutch doctor` passes, hutch.service is enabled
//! and both units pass `systemd-analyze verify`; a purge removes it all. Its postinst
//! gives root subordinate ids past those already given.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{BIN, require};

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Purges the package however the test ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("apt-get")
            .args(["purge", "-y", "-qq", "hutch"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output();
    }
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn the_deb_installs_documented_completed_enabled_and_purges_clean() {
    if require("package", &["dpkg-deb", "apt-get", "man", "systemd-analyze"]).is_none() {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(format!("/var/tmp/hutch-it/deb-{}", std::process::id()));
    let bin_dir = Path::new(BIN).parent().unwrap();
    let built = run(Command::new(repo.join("scripts/build-deb.sh"))
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--out")
        .arg(&out_dir)
        .current_dir(repo));
    let deb = PathBuf::from(text(&built));
    assert!(deb.file_name().unwrap().to_string_lossy().starts_with("hutch_"), "{deb:?}");
    let control = text(&run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Depends")));
    assert!(control.contains("dnsmasq-base") && control.contains("nftables"), "{control}");

    let _purge = Installed;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .arg(&deb)
        .env("DEBIAN_FRONTEND", "noninteractive"));
    assert!(Path::new("/usr/bin/hutch").exists() && Path::new("/usr/bin/hutch-monitor").exists());
    assert_eq!(text(&run(Command::new("man").args(["-w", "hutch"]))), "/usr/share/man/man1/hutch.1.gz");
    assert!(
        text(&run(Command::new("man").args(["-w", "hutch-snapshot-create"]))).ends_with("hutch-snapshot-create.1.gz")
    );
    let completed = run(Command::new("bash").arg("-c").arg(
        "source /usr/share/bash-completion/completions/hutch; COMP_WORDS=(hutch sta); COMP_CWORD=1; \
         COMP_LINE='hutch sta'; COMP_POINT=9; _hutch hutch sta hutch; echo \"${COMPREPLY[@]}\"",
    ));
    assert_eq!(text(&completed), "start");
    assert!(Path::new("/usr/share/zsh/vendor-completions/_hutch").exists());
    assert!(Path::new("/usr/share/fish/vendor_completions.d/hutch.fish").exists());
    let doctor = Command::new("/usr/bin/hutch").arg("doctor").output().unwrap();
    assert!(doctor.status.success(), "{}", String::from_utf8_lossy(&doctor.stdout));
    assert!(
        std::fs::read_link("/etc/systemd/system/multi-user.target.wants/hutch.service").is_ok(),
        "the postinst enables hutch.service"
    );
    assert!(std::fs::read_to_string("/etc/subuid").unwrap().lines().any(|l| l.starts_with("root:")));
    assert!(std::fs::read_to_string("/etc/hutch/hutch.toml").unwrap().contains("[lxcfs]"));
    // Units: the template through an instance of it.
    let units = out_dir.join("units");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::copy("/lib/systemd/system/hutch@.service", units.join("hutch@web.service")).unwrap();
    for unit in [PathBuf::from("/lib/systemd/system/hutch.service"), units.join("hutch@web.service")] {
        let v = run(Command::new("systemd-analyze").arg("verify").arg(&unit));
        let said = String::from_utf8_lossy(&v.stderr);
        assert!(!said.contains("hutch"), "systemd-analyze verify {}: {said}", unit.display());
    }

    run(Command::new("apt-get").args(["purge", "-y", "-qq", "hutch"]).env("DEBIAN_FRONTEND", "noninteractive"));
    for gone in ["/usr/bin/hutch", "/etc/hutch", "/usr/share/man/man1/hutch.1.gz", "/lib/systemd/system/hutch.service"]
    {
        assert!(!Path::new(gone).exists(), "{gone} left after a purge");
    }
    assert!(std::fs::read_link("/etc/systemd/system/multi-user.target.wants/hutch.service").is_err());
    let _ = std::fs::remove_dir_all(&out_dir);
}

#[test]
fn the_postinst_gives_root_ids_past_the_ranges_already_given() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("etc")).unwrap();
    std::fs::write(d.path().join("etc/subuid"), "alice:100000:65536\n").unwrap();
    std::fs::write(d.path().join("etc/subgid"), "alice:100000:65536\nbob:300000:1000\n").unwrap();
    let postinst = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/postinst");
    run(Command::new("sh").arg(&postinst).arg("configure").env("DPKG_ROOT", d.path()));
    let uid = std::fs::read_to_string(d.path().join("etc/subuid")).unwrap();
    let gid = std::fs::read_to_string(d.path().join("etc/subgid")).unwrap();
    assert_eq!(uid, "alice:100000:65536\nroot:301000:65536\n");
    assert_eq!(gid, "alice:100000:65536\nbob:300000:1000\nroot:301000:65536\n");
    // Run again (an upgrade): nothing more.
    run(Command::new("sh").arg(&postinst).arg("configure").env("DPKG_ROOT", d.path()));
    assert_eq!(std::fs::read_to_string(d.path().join("etc/subuid")).unwrap(), uid);
}
