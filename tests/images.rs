//! Images end to end: an image-server tree built by `publish` + `image export` from
//! the cached Debian rootfs, served over loopback by a small HTTP server in this test;
//! `create -t ... --server` runs index, selection, download, checksum, unpack, cache
//! and copy-on-write clone; plus debootstrap, the busybox template, storage kinds,
//! import, and what failures leave behind (nothing).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use common::{Hutch, ScratchBtrfs, require};

/// A static file server on 127.0.0.1 that logs request paths and can be told to cut
/// a file short or stall on it.
struct Server {
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

#[derive(Clone, Copy)]
enum Mode {
    Normal,
    /// Send this many bytes of rootfs.tar.xz (announcing the full length), then close.
    Truncate(usize),
    /// Send a little of rootfs.tar.xz, then hang.
    Stall,
}

impl Server {
    fn start(dir: &Path, mode: Mode) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (dir, log2) = (dir.to_path_buf(), log.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (dir, log) = (dir.clone(), log2.clone());
                std::thread::spawn(move || serve(conn, &dir, &log, mode));
            }
        });
        Server { port, log }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn gets(&self, suffix: &str) -> usize {
        self.log.lock().unwrap().iter().filter(|p| p.ends_with(suffix)).count()
    }
}

fn serve(mut conn: std::net::TcpStream, dir: &Path, log: &Mutex<Vec<String>>, mode: Mode) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    log.lock().unwrap().push(path.clone());
    let file = dir.join(path.trim_start_matches('/'));
    if path.contains("..") || !file.is_file() {
        let _ = conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    }
    let data = std::fs::read(&file).unwrap();
    let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", data.len());
    let body: &[u8] = match mode {
        Mode::Truncate(n) if path.ends_with("rootfs.tar.xz") => &data[..n.min(data.len())],
        Mode::Stall if path.ends_with("rootfs.tar.xz") => {
            let _ = conn.write_all(&data[..65536.min(data.len())]);
            std::thread::sleep(std::time::Duration::from_secs(120));
            return;
        }
        _ => &data,
    };
    let _ = conn.write_all(body);
}

/// The image-server tree, built once per run: Debian published from the cached test
/// rootfs and exported with `hutch image export`.
fn tree() -> &'static Path {
    static TREE: OnceLock<PathBuf> = OnceLock::new();
    TREE.get_or_init(|| {
        let img = require("image_tree", &[]).expect("prerequisites checked by the caller");
        let out = PathBuf::from(format!("/var/tmp/hutch-it/tree-{}", std::process::id()));
        // Trees of earlier runs.
        for e in std::fs::read_dir("/var/tmp/hutch-it").into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with("tree-") && e.path() != out {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let h = Hutch::new("img-publish");
        h.create("src", &img.debian(), &[]);
        let out_s = out.display().to_string();
        let published = h.ok(&["publish", "src", "deb"]);
        assert!(published.contains("alias deb, debian:bookworm"), "{published}");
        h.ok(&["image", "export", "deb", &out_s, "--level", "0"]);
        // A published image is never taken for the template's: this create goes to
        // the (absent) server instead of reusing "deb".
        let err = h.fails(&["create", "other", "-t", "debian:bookworm", "--server", "http://127.0.0.1:1"]);
        assert!(err.contains("failed to fetch"), "{err}");
        out
    })
}

fn index_line(tree: &Path) -> String {
    std::fs::read_to_string(tree.join("meta/1.0/index-system")).unwrap()
}

fn images_in(h: &Hutch) -> Vec<String> {
    std::fs::read_dir(h.root.join("images"))
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn image_server_create_boots_clean_and_clones_share_nothing() {
    if require("image_server", &[]).is_none() {
        return;
    }
    let tree = tree();
    let line = index_line(tree);
    assert!(line.starts_with("debian;bookworm;amd64;default;"), "{line}");
    assert_eq!(std::fs::read_to_string(tree.join("meta/1.0/index-user")).unwrap(), line);
    let server = Server::start(tree, Mode::Normal);
    let h = Hutch::new("img-server");
    let out = h.ok(&["create", "web", "-t", "debian:bookworm", "--server", &server.url()]);
    assert!(out.contains("overlay storage"), "{out}");
    assert_eq!(server.gets("/meta/1.0/index-system"), 1);
    assert_eq!(server.gets("/SHA256SUMS"), 1);
    assert_eq!(server.gets("/rootfs.tar.xz"), 1);
    let list: serde_json::Value = serde_json::from_str(&h.ok(&["image", "list", "--format", "json"])).unwrap();
    let images = list["images"].as_array().unwrap();
    assert_eq!(images.len(), 1, "{list}");
    assert_eq!(images[0]["source"], "image-server");
    assert_eq!(images[0]["release"], "bookworm");
    assert_eq!(images[0]["sha256"].as_str().unwrap().len(), 64);
    let id = images[0]["id"].as_str().unwrap().to_string();

    // The second create comes from the cache: the server sees no request at all.
    let second = h.run(&["create", "web2", "-t", "debian:12", "--server", &server.url()]);
    assert!(second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains(&format!("using cached image {id}")));
    assert_eq!(server.log.lock().unwrap().len(), 3, "{:?}", server.log.lock().unwrap());

    for c in ["web", "web2"] {
        h.ok(&["start", c, "--wait"]);
        assert_eq!(h.exec(c, &["systemctl", "is-system-running"]), "running", "{c}");
        assert_eq!(h.exec(c, &["systemctl", "--failed", "--no-legend"]), "", "{c}");
        assert_eq!(h.exec(c, &["cat", "/etc/hostname"]), c);
        assert_eq!(h.exec(c, &["stat", "-c", "%u", "/etc/passwd"]), "0", "ownership through the idmapped layers");
    }
    // Copy-on-write: changes in one clone are seen neither in the other nor in the image.
    h.exec("web", &["sh", "-c", "echo mine > /root/only-web && rm /etc/issue && useradd -m alice"]);
    assert_eq!(h.exec("web", &["stat", "-c", "%U", "/home/alice"]), "alice");
    assert_ne!(h.exec_status("web2", &["test", "-e", "/root/only-web"]), 0);
    assert_eq!(h.exec_status("web2", &["test", "-e", "/etc/issue"]), 0);
    assert_ne!(h.exec_status("web2", &["id", "alice"]), 0);
    let image_rootfs = h.paths().image_rootfs(&id);
    assert!(!image_rootfs.join("root/only-web").exists());
    assert!(image_rootfs.join("etc/issue").exists());
    // The upper layer holds the distribution's own ids, not shifted ones.
    let upper = h.paths().container("web").join("overlay/upper/root/only-web");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&upper).unwrap()), 0);

    // The image stays while containers stand on it.
    let err = h.fails(&["image", "rm", &id]);
    assert!(err.contains("containers stand on it (web, web2)"), "{err}");
    for c in ["web", "web2"] {
        h.ok(&["stop", c]);
        h.ok(&["destroy", c]);
        h.assert_gone(c);
    }
    h.ok(&["image", "rm", &id]);
    assert!(images_in(&h).is_empty(), "{:?}", images_in(&h));
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn a_wrong_checksum_is_refused_and_nothing_is_cached() {
    if require("image_checksum", &[]).is_none() {
        return;
    }
    let good = tree();
    let bad = PathBuf::from(format!("{}-badsum", good.display()));
    let _ = std::fs::remove_dir_all(&bad);
    copy_dir(good, &bad);
    let sums = walk(&bad).into_iter().find(|p| p.ends_with("SHA256SUMS")).unwrap();
    let text = std::fs::read_to_string(&sums).unwrap();
    let forged: String =
        text.lines()
            .map(|l| {
                if l.ends_with("rootfs.tar.xz") {
                    format!("{}{}\n", "0".repeat(64), &l[64..])
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
    std::fs::write(&sums, forged).unwrap();
    let server = Server::start(&bad, Mode::Normal);
    let h = Hutch::new("img-badsum");
    let err = h.fails(&["create", "c", "-t", "debian:bookworm", "--server", &server.url()]);
    assert!(err.contains("failed to verify") && err.contains("rootfs.tar.xz"), "{err}");
    assert!(err.contains("nothing was cached"), "{err}");
    assert!(images_in(&h).is_empty(), "left in the cache: {:?}", images_in(&h));
    assert!(!h.paths().container("c").exists());
    let _ = std::fs::remove_dir_all(&bad);
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn a_broken_or_killed_download_leaves_nothing() {
    if require("image_broken", &[]).is_none() {
        return;
    }
    let tree = tree();
    let h = Hutch::new("img-broken");
    let server = Server::start(tree, Mode::Truncate(100_000));
    let err = h.fails(&["create", "c", "-t", "debian:bookworm", "--server", &server.url()]);
    assert!(err.contains("broke off after 100000"), "{err}");
    assert!(images_in(&h).is_empty(), "{:?}", images_in(&h));

    // SIGKILL in the middle of a download: the staging directory it leaves is
    // removed, and said so, by the next pull.
    let stall = Server::start(tree, Mode::Stall);
    let mut child = h
        .cmd(&["image", "pull", "debian:bookworm", "--server", &stall.url()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(common::eventually(std::time::Duration::from_secs(30), || stall.gets("/rootfs.tar.xz") == 1));
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(images_in(&h).iter().filter(|n| n.starts_with(".staging-")).count(), 1);
    let good = Server::start(tree, Mode::Normal);
    let out = h.run(&["image", "pull", "debian:bookworm", "--server", &good.url()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("left by an interrupted image pull"));
    let left: Vec<String> = images_in(&h).into_iter().filter(|n| n.starts_with('.')).collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn bad_references_are_refused_before_anything_is_fetched() {
    if require("image_refs", &[]).is_none() {
        return;
    }
    let tree = tree();
    let server = Server::start(tree, Mode::Normal);
    let h = Hutch::new("img-refs");
    let err = h.fails(&["create", "c", "-t", "nosuchdistro"]);
    assert!(err.contains("nosuchdistro") && err.contains("ubuntu"), "{err}");
    let err = h.fails(&["create", "c", "-t", "debian:99"]);
    assert!(err.contains("99") && err.contains("bookworm"), "{err}");
    let err = h.fails(&["create", "-bad", "-t", "debian:12", "--server", &server.url()]);
    assert!(err.contains("-bad") || err.contains("unexpected argument"), "{err}");
    let err = h.fails(&["create", "9x", "-t", "debian:12", "--server", &server.url()]);
    assert!(err.contains("9x"), "{err}");
    assert!(server.log.lock().unwrap().is_empty(), "fetched before checking the name");
    // A release the server does not have: the message lists what it has.
    let err = h.fails(&["create", "c", "-t", "debian:trixie", "--server", &server.url()]);
    assert!(err.contains("bookworm") && err.contains("index does not list"), "{err}");
    let err = h.fails(&["create", "c", "-t", "debian:12", "--server", "http://127.0.0.1:1"]);
    assert!(err.contains("failed to fetch http://127.0.0.1:1/meta/1.0/index-system"), "{err}");
    let err = h.fails(&["create", "c", "--image", "nope"]);
    assert!(err.contains("failed to find image \"nope\""), "{err}");
    assert!(images_in(&h).is_empty());
    assert!(!h.paths().container("c").exists());
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn debootstrap_from_the_host_mirror_boots_clean() {
    if require("image_debootstrap", &["debootstrap"]).is_none() {
        return;
    }
    let h = Hutch::new("img-debootstrap");
    let out = h.run(&["create", "deb", "-t", "debian:bookworm", "--source", "debootstrap"]);
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("with debootstrap from"));
    h.ok(&["start", "deb", "--wait"]);
    assert_eq!(h.exec("deb", &["systemctl", "is-system-running"]), "running");
    assert_eq!(h.exec("deb", &["systemctl", "--failed", "--no-legend"]), "");
    assert_eq!(h.exec("deb", &["sh", "-c", ". /etc/os-release; echo $VERSION_CODENAME"]), "bookworm");
    // A fresh machine-id per container, not the image's.
    let id = h.exec("deb", &["cat", "/etc/machine-id"]);
    assert_eq!(id.len(), 32, "{id}");
    h.ok(&["stop", "deb"]);
    h.ok(&["destroy", "deb"]);
    h.assert_gone("deb");
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn busybox_template_with_each_storage_kind() {
    if require("image_busybox", &["busybox"]).is_none() {
        return;
    }
    let h = Hutch::new("img-busybox");
    h.ok(&["create", "ov", "-t", "busybox"]);
    h.ok(&["create", "full", "-t", "busybox", "--storage", "dir"]);
    h.ok(&["create", "priv", "-t", "busybox", "--privileged"]);
    assert_eq!(h.ok(&["config", "get", "full", "rootfs.storage"]).trim(), "dir");
    assert_eq!(h.ok(&["config", "get", "ov", "rootfs.storage"]).trim(), "overlay");
    let err = h.fails(&["create", "bt", "-t", "busybox", "--storage", "btrfs"]);
    assert!(err.contains("not on a btrfs filesystem") && err.contains("--storage overlay"), "{err}");
    assert!(!h.paths().container("bt").exists());
    for c in ["ov", "full", "priv"] {
        h.ok(&["start", c, "--wait"]);
        assert_eq!(h.exec(c, &["hostname"]), c);
        h.exec(c, &["sh", "-c", "echo x > /root/f"]);
    }
    assert_eq!(
        h.exec("priv", &["cat", "/proc/self/uid_map"]).split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "4294967295"]
    );
    for c in ["ov", "full", "priv"] {
        h.ok(&["stop", c]);
        h.ok(&["destroy", c]);
        h.assert_gone(c);
    }
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn an_imported_archive_becomes_an_image_containers_are_made_from() {
    let Some(img) = require("image_import", &[]) else {
        return;
    };
    let h = Hutch::new("img-import");
    let tar = h.root.join("bb.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&tar).unwrap());
        b.follow_symlinks(false);
        b.append_dir_all(".", img.busybox()).unwrap();
        b.finish().unwrap();
    }
    let tar_s = tar.display().to_string();
    let out = h.ok(&["image", "import", &tar_s, "--alias", "bb"]);
    assert!(out.contains("Imported"), "{out}");
    let err = h.fails(&["image", "import", &tar_s, "--alias", "bb"]);
    assert!(err.contains("already has it"), "{err}");
    h.ok(&["create", "a", "--image", "bb"]);
    h.ok(&["start", "a", "--wait"]);
    let err = h.fails(&["publish", "a", "bb2"]);
    assert!(err.contains("stop it first"), "{err}");
    h.exec("a", &["sh", "-c", "echo published > /etc/marker"]);
    h.ok(&["stop", "a"]);
    h.ok(&["publish", "a", "bb2"]);
    h.ok(&["create", "b", "--image", "bb2", "--storage", "dir"]);
    h.ok(&["start", "b", "--wait"]);
    assert_eq!(h.exec("b", &["cat", "/etc/marker"]), "published");
    h.ok(&["stop", "b"]);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst)
        } else {
            let mut data = Vec::new();
            std::fs::File::open(&src).unwrap().read_to_end(&mut data).unwrap();
            std::fs::write(&dst, data).unwrap();
        }
    }
}

#[test]
#[ignore = "needs root and the test images (scripts/test.sh runs it)"]
fn on_btrfs_images_are_subvolumes_and_containers_snapshots() {
    if require("image_btrfs", &["busybox", "mkfs.btrfs"]).is_none() {
        return;
    }
    let fs = ScratchBtrfs::new("btrfs");
    let h = Hutch::at(&fs.mnt.join("hutch"));
    let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    h.ok(&["create", "a", "-t", "busybox"]);
    h.ok(&["create", "b", "-t", "busybox"]);
    assert_eq!(h.ok(&["config", "get", "a", "rootfs.storage"]).trim(), "btrfs");
    let id = h.ok(&["config", "get", "a", "rootfs.image"]).trim().trim_matches('"').to_string();
    // A subvolume's root directory is inode 256.
    assert_eq!(ino(&h.paths().image_rootfs(&id)), 256);
    assert_eq!(ino(&h.paths().container("a").join("rootfs")), 256);
    for c in ["a", "b"] {
        h.ok(&["start", c, "--wait"]);
    }
    h.exec("a", &["sh", "-c", "echo a > /root/only-a"]);
    assert_ne!(h.exec_status("b", &["test", "-e", "/root/only-a"]), 0);
    assert!(!h.paths().image_rootfs(&id).join("root/only-a").exists());
    for c in ["a", "b"] {
        h.ok(&["stop", c]);
        h.ok(&["destroy", c]);
        h.assert_gone(c);
    }
    h.ok(&["image", "rm", &id]);
    assert!(images_in(&h).is_empty(), "{:?}", images_in(&h));
}
