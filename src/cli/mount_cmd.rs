//! mount add, list, rm: shared folders.

use super::MountCmd;
use crate::base::output::{self, Format};
use crate::base::paths::Paths;
use crate::config::Mount;
use crate::container::mounts;
use crate::error::Error;

pub fn run(paths: &Paths, cmd: MountCmd) -> Result<u8, Error> {
    match cmd {
        MountCmd::Add { name, source, path, readonly, no_shift, create, optional } => {
            let mount = Mount { source, path, readonly, shift: !no_shift, create, optional };
            let changed = mounts::add(paths, &name, mount.clone())?;
            super::notify(&changed.notices);
            let when = if changed.live { "now and at every start" } else { "at every start" };
            out!("Shared {} at {}:{} ({when})", mount.source.display(), name, mount.target());
        }
        MountCmd::List { name, format } => {
            let list = mounts::list(paths, &name)?;
            match format {
                Format::Json => super::emit_json("mounts", &list)?,
                Format::Text => {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|m| {
                            let mut opts = vec![if m.readonly { "ro" } else { "rw" }];
                            if !m.shift {
                                opts.push("noshift");
                            }
                            if m.optional {
                                opts.push("optional");
                            }
                            vec![m.target(), m.source.display().to_string(), opts.join(",")]
                        })
                        .collect();
                    super::emit(&output::table(&["PATH", "SOURCE", "OPTIONS"], &rows))?;
                }
            }
        }
        MountCmd::Rm { name, path } => {
            let changed = mounts::remove(paths, &name, &path)?;
            let when = if changed.live { "detached and removed" } else { "removed" };
            out!("Mount at {name}:{} {when}", crate::config::mounts::normalize(&path));
        }
    }
    Ok(0)
}
