//! Dev boxes (`create --devbox`): the invoking host user is the same user inside, as
//! with distrobox and toolbx. Its uid and gid map to themselves (the rest of the
//! container's ids to root's subordinate range), its home directory is shared at the
//! same path without shifting, so every file keeps its owner on both sides, and it may
//! `sudo` without a password. This is a deliberate hole in the isolation of an
//! unprivileged container: processes of that user inside are that user on the host.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::config::mounts::Create;
use crate::config::{Devbox, Mount};
use crate::rootfs;

#[derive(Debug, Error)]
pub enum DevboxError {
    #[error("failed to create a dev box: no user to make it for")]
    NoUser,
    #[error("failed to create a dev box for {user}: {why}")]
    User { user: String, why: String },
    #[error("failed to set up the dev box user {user} in the root filesystem: {source}")]
    Rootfs { user: String, source: std::io::Error },
}

impl DevboxError {
    pub fn hint(&self) -> Option<String> {
        match self {
            DevboxError::NoUser => Some("run it with sudo from your own account, or name one: `--user NAME`".into()),
            DevboxError::User { .. } => Some("a dev box is for a user of this host other than root".into()),
            DevboxError::Rootfs { .. } => None,
        }
    }
}

/// A host user, from the host's /etc/passwd and /etc/group.
#[derive(Debug, Clone, PartialEq)]
pub struct HostUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub gecos: String,
    pub home: PathBuf,
    pub shell: String,
    /// Names of the user's primary group and the groups that list it.
    pub group: String,
    pub groups: Vec<String>,
}

/// The user named by `--user`, else `SUDO_USER`, looked up in the host's files.
pub fn host_user(wanted: Option<&str>, passwd: &str, group: &str) -> Result<HostUser, DevboxError> {
    let name = match wanted {
        Some(n) => n.to_string(),
        None => std::env::var("SUDO_USER").ok().filter(|u| !u.is_empty()).ok_or(DevboxError::NoUser)?,
    };
    let bad = |why: &str| DevboxError::User { user: name.clone(), why: why.into() };
    let line = crate::exec::passwd_entries(passwd)
        .find(|e| e.name == name || e.uid.to_string() == name)
        .ok_or_else(|| bad("no such user in the host's /etc/passwd"))?;
    let (uid, gid) = (line.uid, line.gid);
    if uid == 0 {
        return Err(bad("root's own containers are plain unprivileged ones"));
    }
    let name = line.name.to_string();
    let mut primary = name.clone();
    let mut groups = Vec::new();
    for f in group.lines().map(|l| l.split(':').collect::<Vec<_>>()).filter(|f| f.len() >= 4) {
        if f[2].parse::<u32>().ok() == Some(gid) {
            primary = f[0].to_string();
        } else if f[3].split(',').any(|m| m == name) {
            groups.push(f[0].to_string());
        }
    }
    Ok(HostUser {
        name,
        uid,
        gid,
        gecos: line.gecos.to_string(),
        home: PathBuf::from(line.home),
        shell: line.shell.to_string(),
        group: primary,
        groups,
    })
}

impl HostUser {
    pub fn config(&self) -> Devbox {
        Devbox {
            user: self.name.clone(),
            uid: self.uid,
            gid: self.gid,
            home: self.home.clone(),
            sudo_checked: false,
            forward: Vec::new(),
        }
    }

    /// The home directory, shared at the same path without shifting (the id map keeps
    /// the user's ids as they are).
    pub fn home_mount(&self) -> Mount {
        Mount { shift: false, create: Some(Create::Dir), ..Mount::new(&self.home, self.home.display().to_string()) }
    }
}

/// Adds `user` to `/etc/passwd`, `/etc/group` and `/etc/shadow` of the rootfs (by
/// name; an entry of that name or id is replaced), to those of its host groups that
/// exist inside, and gives it passwordless sudo. Also copies the host's timezone and
/// default locale.
pub fn apply(root: &Path, user: &HostUser) -> Result<(), DevboxError> {
    let err = |source| DevboxError::Rootfs { user: user.name.clone(), source };
    let shell = if rootfs::in_root::exists_in_root(root, &user.shell) { user.shell.clone() } else { "/bin/sh".into() };
    let pw = format!("{}:x:{}:{}:{}:{}:{shell}", user.name, user.uid, user.gid, user.gecos, user.home.display());
    edit(root, "/etc/passwd", 0o644, |text| replace_entry(text, &user.name, Some(user.uid), &pw)).map_err(err)?;
    let shadow = format!("{}:!:19000:0:99999:7:::", user.name);
    edit(root, "/etc/shadow", 0o640, |text| replace_entry(text, &user.name, None, &shadow)).map_err(err)?;
    edit(root, "/etc/group", 0o644, |text| {
        let text = replace_entry(text, &user.group, Some(user.gid), &format!("{}:x:{}:", user.group, user.gid));
        add_member(&text, &user.groups, &user.name)
    })
    .map_err(err)?;
    rootfs::in_root::mkdir_in_root_owned(root, "/etc/sudoers.d", 0o750, None).map_err(err)?;
    let sudoers = format!("# hutch dev box: {0} is the host user {0}\n{0} ALL=(ALL:ALL) NOPASSWD: ALL\n", user.name);
    rootfs::write_file(root, "/etc/sudoers.d/hutch-devbox", sudoers.as_bytes(), 0o440).map_err(err)?;
    if let Ok(tz) = std::fs::read_link("/etc/localtime") {
        rootfs::in_root::symlink_in_root(root, "/etc/localtime", &tz.display().to_string()).map_err(err)?;
    }
    for file in ["/etc/timezone", "/etc/default/locale"] {
        if let Ok(text) = std::fs::read_to_string(file) {
            rootfs::write_file(root, file, text.as_bytes(), 0o644).map_err(err)?;
        }
    }
    Ok(())
}

/// Rewrites `path` inside `root` through `change`, keeping its owner.
fn edit(root: &Path, path: &str, mode: u32, change: impl FnOnce(&str) -> String) -> std::io::Result<()> {
    let old = rootfs::in_root::read_file_in_root(root, path, 16 << 20).unwrap_or_default();
    let owner = rootfs::in_root::lstat_in_root(root, path).ok().map(|st| (st.st_uid, st.st_gid));
    let mut new = change(&String::from_utf8_lossy(&old));
    if !new.ends_with('\n') {
        new.push('\n');
    }
    rootfs::write_file(root, path, new.as_bytes(), mode)?;
    match owner {
        Some((uid, gid)) => rootfs::in_root::chown_in_root(root, path, uid, gid),
        None => Ok(()),
    }
}

/// `text` (colon-separated entries) without entries named `name` or with id `id`,
/// then `line`.
fn replace_entry(text: &str, name: &str, id: Option<u32>, line: &str) -> String {
    let keep = |l: &&str| {
        let f: Vec<&str> = l.split(':').collect();
        f[0] != name && !(id.is_some() && f.get(2).and_then(|i| i.parse().ok()) == id)
    };
    let mut out: Vec<&str> = text.lines().filter(keep).collect();
    out.push(line);
    out.join("\n") + "\n"
}

/// `text` (/etc/group) with `user` added to each of `groups` that it has.
fn add_member(text: &str, groups: &[String], user: &str) -> String {
    let lines = text.lines().map(|l| {
        let f: Vec<&str> = l.splitn(4, ':').collect();
        if f.len() == 4 && groups.iter().any(|g| g == f[0]) && !f[3].split(',').any(|m| m == user) {
            let members = if f[3].is_empty() { user.to_string() } else { format!("{},{user}", f[3]) };
            format!("{}:{}:{}:{members}", f[0], f[1], f[2])
        } else {
            l.to_string()
        }
    });
    lines.collect::<Vec<_>>().join("\n") + "\n"
}

/// How each family of distributions installs sudo, by os-release `ID`/`ID_LIKE` word.
const SUDO_INSTALL: &[(&str, &str)] = &[
    (
        "debian",
        "DEBIAN_FRONTEND=noninteractive apt-get -q update && DEBIAN_FRONTEND=noninteractive apt-get -q install -y sudo",
    ),
    (
        "ubuntu",
        "DEBIAN_FRONTEND=noninteractive apt-get -q update && DEBIAN_FRONTEND=noninteractive apt-get -q install -y sudo",
    ),
    ("fedora", "dnf -q install -y sudo"),
    ("rhel", "dnf -q install -y sudo"),
    ("centos", "dnf -q install -y sudo"),
    ("alpine", "apk add -q sudo"),
];

/// The script the first boot of a dev box runs as root inside: nothing when sudo is
/// there, else the distribution's own package manager installs it. Its output goes
/// to stderr.
pub fn sudo_script() -> String {
    let mut cases = String::new();
    for (id, cmd) in SUDO_INSTALL {
        cases.push_str(&format!("    *\" {id} \"*) {cmd} ;;\n"));
    }
    format!(
        "exec 1>&2\ncommand -v sudo >/dev/null 2>&1 && exit 0\n. /etc/os-release\ncase \" $ID $ID_LIKE \" in\n{cases}    *) \
         echo \"no known way to install sudo on $ID\"; exit 1 ;;\nesac\n"
    )
}

/// At the first boot of a dev box (once it is ready): installs sudo if the rootfs
/// lacks it, and records that it was done. A failure is returned as a notice; the
/// container runs on.
pub fn first_boot(paths: &crate::base::paths::Paths, name: &str) -> Option<String> {
    let config = crate::config::Config::load(&paths.config(name)).ok()?;
    if config.devbox.as_ref().is_none_or(|d| d.sudo_checked) {
        return None;
    }
    let spec = crate::exec::Spec {
        argv: vec!["/bin/sh".into(), "-c".into(), sudo_script()],
        env: vec![],
        user: Some("0".into()),
        cwd: Some("/".into()),
        tty: false,
        login_shell: false,
    };
    match crate::exec::run(paths, name, &spec) {
        Ok(0) => {}
        Ok(code) => return Some(format!("the dev box could not install sudo (exit status {code}); it runs without")),
        Err(e) => return Some(format!("the dev box could not install sudo: {e}")),
    }
    let lock = crate::base::lock::Lock::acquire(&paths.lock(name)).ok()?;
    let mut config = crate::config::Config::load(&paths.config(name)).ok()?;
    if let Some(d) = config.devbox.as_mut() {
        d.sudo_checked = true;
    }
    let saved = config.save(&paths.config(name));
    drop(lock);
    saved.err().map(|e| format!("the dev box installed sudo, but its config could not record it: {e}"))
}

/// Where a dev box finds its user's SSH agent (`SSH_AUTH_SOCK` inside).
pub const SSH_AGENT_PATH: &str = "/run/hutch/ssh-agent.sock";

/// What a `shell` or `exec` session of the dev-box user takes from the caller, per
/// `devbox.forward`: variables to set inside, after binding the SSH agent socket.
pub fn forwarded(
    paths: &crate::base::paths::Paths,
    name: &str,
    devbox: &Devbox,
) -> Result<Vec<(String, String)>, super::Error> {
    use crate::config::Forward;
    let mut env = Vec::new();
    for f in &devbox.forward {
        match f {
            Forward::SshAgent => {
                let Some(sock) = std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()) else { continue };
                super::mounts::forward_socket(paths, name, Path::new(&sock), devbox.uid, SSH_AGENT_PATH)?;
                env.push(("SSH_AUTH_SOCK".into(), SSH_AGENT_PATH.into()));
            }
            Forward::Term => {
                for var in ["TERM", "COLORTERM"] {
                    if let Ok(v) = std::env::var(var) {
                        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic()) {
                            env.push((var.into(), v));
                        }
                    }
                }
            }
        }
    }
    Ok(env)
}

/// The container path of the host directory `cwd` when a shared folder holds it.
pub fn inside_path(mounts: &[Mount], cwd: &Path) -> Option<String> {
    mounts.iter().filter(|m| cwd.starts_with(&m.source)).max_by_key(|m| m.source.as_os_str().len()).map(|m| {
        let rest = cwd.strip_prefix(&m.source).expect("checked");
        let base = m.target();
        if rest.as_os_str().is_empty() { base } else { format!("{}/{}", base.trim_end_matches('/'), rest.display()) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\n";
    const GROUP: &str = "root:x:0:\nsudo:x:27:alice\nalice:x:1000:\ndocker:x:998:bob,alice\n";

    #[test]
    fn the_host_user_comes_with_its_groups() {
        let u = host_user(Some("alice"), PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.group.as_str()), (1000, 1000, "alice"));
        assert_eq!(u.groups, ["sudo", "docker"]);
        assert_eq!(u.home, PathBuf::from("/home/alice"));
        assert!(matches!(host_user(Some("root"), PASSWD, GROUP), Err(DevboxError::User { .. })));
        assert!(host_user(Some("nobody-here"), PASSWD, GROUP).unwrap_err().to_string().contains("no such user"));
        assert_eq!(host_user(Some("1000"), PASSWD, GROUP).unwrap().name, "alice");
    }

    #[test]
    fn entries_are_replaced_by_name_or_id_and_members_added() {
        let inside = "root:x:0:0:root:/root:/bin/bash\nubuntu:x:1000:1000::/home/ubuntu:/bin/sh\n";
        let out = replace_entry(inside, "alice", Some(1000), "alice:x:1000:1000::/home/alice:/bin/bash");
        assert_eq!(out, "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n");
        let groups = add_member("sudo:x:27:\nadm:x:4:syslog\nstaff:x:50:\n", &["sudo".into(), "adm".into()], "alice");
        assert_eq!(groups, "sudo:x:27:alice\nadm:x:4:syslog,alice\nstaff:x:50:\n");
    }

    #[test]
    fn the_sudo_script_knows_each_family() {
        let script = sudo_script();
        assert!(script.starts_with("exec 1>&2\ncommand -v sudo"), "{script}");
        assert!(script.contains("*\" debian \"*) DEBIAN_FRONTEND=noninteractive apt-get"), "{script}");
        assert!(script.contains("*\" alpine \"*) apk add -q sudo ;;"), "{script}");
    }

    #[test]
    fn a_working_directory_under_a_shared_folder_is_found_inside() {
        let m = |s: &str, p: &str| Mount { shift: false, ..Mount::new(s, p) };
        let mounts = [m("/home/alice", "/home/alice"), m("/home/alice/src", "/src")];
        assert_eq!(inside_path(&mounts, Path::new("/home/alice/x")).unwrap(), "/home/alice/x");
        assert_eq!(inside_path(&mounts, Path::new("/home/alice/src/a")).unwrap(), "/src/a");
        assert_eq!(inside_path(&mounts, Path::new("/home/alice")).unwrap(), "/home/alice");
        assert_eq!(inside_path(&mounts, Path::new("/home/alicex")), None);
        assert_eq!(inside_path(&mounts, Path::new("/tmp")), None);
    }
}
