//! Users and groups inside a container, read from its own /etc/passwd and /etc/group
//! (never through the host's NSS, whose answers describe the host).

/// A user or group the container's files do not name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownId {
    #[error("no user {0:?} in the container's /etc/passwd")]
    User(String),
    #[error("no group {0:?} in the container's /etc/group")]
    Group(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
    pub groups: Vec<u32>,
}

/// One well-formed line of a passwd file.
pub(crate) struct PwEntry<'a> {
    pub name: &'a str,
    pub uid: u32,
    pub gid: u32,
    pub gecos: &'a str,
    pub home: &'a str,
    pub shell: &'a str,
}

/// The well-formed entries of a passwd file's text (others are skipped).
pub(crate) fn passwd_entries(passwd: &str) -> impl Iterator<Item = PwEntry<'_>> {
    passwd.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 7 {
            return None;
        }
        let (uid, gid) = (f[2].parse().ok()?, f[3].parse().ok()?);
        Some(PwEntry { name: f[0], uid, gid, gecos: f[4], home: f[5], shell: f[6] })
    })
}

/// Supplementary groups of `name`, plus its primary group.
fn groups_of(group: &str, name: &str, primary: u32) -> Vec<u32> {
    let mut out = vec![primary];
    for l in group.lines() {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() >= 4 && f[3].split(',').any(|m| m == name) {
            if let Ok(g) = f[2].parse::<u32>() {
                if !out.contains(&g) {
                    out.push(g);
                }
            }
        }
    }
    out
}

/// Resolves `spec` (a name, a uid, or `uid:gid`) against the container's files.
pub fn resolve(spec: Option<&str>, passwd: &str, group: &str) -> Result<User, UnknownId> {
    let spec = spec.unwrap_or("0");
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let by_name = passwd_entries(passwd).find(|e| e.name == user_part);
    let entry =
        by_name.or_else(|| user_part.parse::<u32>().ok().and_then(|u| passwd_entries(passwd).find(|e| e.uid == u)));
    let mut user = match (entry, user_part.parse::<u32>()) {
        (Some(e), _) => User {
            name: e.name.into(),
            uid: e.uid,
            gid: e.gid,
            home: if e.home.is_empty() { "/".into() } else { e.home.into() },
            shell: if e.shell.is_empty() { "/bin/sh".into() } else { e.shell.into() },
            groups: groups_of(group, e.name, e.gid),
        },
        (None, Ok(uid)) => {
            User { name: uid.to_string(), uid, gid: uid, home: "/".into(), shell: "/bin/sh".into(), groups: vec![uid] }
        }
        (None, Err(_)) => {
            return Err(UnknownId::User(user_part.into()));
        }
    };
    if let Some(g) = group_part {
        let gid = g.parse::<u32>().ok().or_else(|| {
            group.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 3 && f[0] == g).then(|| f[2].parse().ok()).flatten()
            })
        });
        user.gid = gid.ok_or_else(|| UnknownId::Group(g.into()))?;
        user.groups = vec![user.gid];
    }
    if user_part == "0" && user.name == "0" {
        user.name = "root".into();
        user.home = "/root".into();
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www:/var/www:/usr/sbin/nologin\nalice:x:1000:1000::/home/alice:\n";
    const GROUP: &str = "root:x:0:\nsudo:x:27:alice\nalice:x:1000:\naudio:x:29:bob,alice\n";

    #[test]
    fn resolves_names_uids_and_groups() {
        let root = resolve(None, PASSWD, GROUP).unwrap();
        assert_eq!((root.uid, root.home.as_str(), root.shell.as_str()), (0, "/root", "/bin/bash"));
        let alice = resolve(Some("alice"), PASSWD, GROUP).unwrap();
        assert_eq!(alice.uid, 1000);
        assert_eq!(alice.shell, "/bin/sh");
        assert_eq!(alice.groups, vec![1000, 27, 29]);
        assert_eq!(resolve(Some("33"), PASSWD, GROUP).unwrap().name, "www-data");
        let raw = resolve(Some("4242:sudo"), PASSWD, GROUP).unwrap();
        assert_eq!((raw.uid, raw.gid), (4242, 27));
    }

    #[test]
    fn unknown_users_and_groups_are_errors() {
        assert_eq!(resolve(Some("mallory"), PASSWD, GROUP).unwrap_err(), UnknownId::User("mallory".into()));
        let e = resolve(Some("alice:nogroup"), PASSWD, GROUP).unwrap_err();
        assert_eq!(e.to_string(), "no group \"nogroup\" in the container's /etc/group");
        // Without any passwd file, root still works.
        assert_eq!(resolve(None, "", "").unwrap().uid, 0);
    }
}
