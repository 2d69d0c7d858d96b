//! snapshot create, list, restore, delete, rename.

use crate::base::output::{self, Format};
use crate::base::paths::Paths;
use crate::container::snapshots;
use crate::error::Error;

#[derive(Debug, clap::Subcommand)]
pub enum SnapshotCmd {
    /// Take a snapshot (a running container is frozen and synced for the instant)
    Create {
        name: String,
        /// Its name (default: snap0, snap1...)
        snap: Option<String>,
    },
    /// List a container's snapshots
    #[command(alias = "ls")]
    List {
        name: String,
        /// json: {"format_version": 1, "snapshots": [{"name", "created_ms", "size"}]}
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Bring the rootfs back to a snapshot (newer snapshots are kept)
    Restore {
        name: String,
        snap: String,
        /// Stop a running container first, and start it again after
        #[arg(long)]
        stop: bool,
    },
    /// Remove a snapshot
    #[command(alias = "rm")]
    Delete { name: String, snap: String },
    /// Rename a snapshot
    Rename { name: String, old: String, new: String },
}

pub fn run(paths: &Paths, cmd: SnapshotCmd) -> Result<u8, Error> {
    match cmd {
        SnapshotCmd::Create { name, snap } => {
            let (snap, notices) = snapshots::create(paths, &name, snap.as_deref())?;
            super::notify(&notices);
            out!("Snapshot {snap} of {name} created");
        }
        SnapshotCmd::List { name, format } => {
            let list = snapshots::list(paths, &name)?;
            match format {
                Format::Json => super::emit_json("snapshots", &list)?,
                Format::Text => {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|s| vec![s.name.clone(), output::utc(s.created_ms), output::bytes(s.size)])
                        .collect();
                    super::emit(&output::table(&["NAME", "CREATED", "SIZE"], &rows))?;
                }
            }
        }
        SnapshotCmd::Restore { name, snap, stop } => {
            let (restarted, notices) = snapshots::restore(paths, &name, &snap, stop)?;
            super::notify(&notices);
            let again = if restarted { " and started again" } else { "" };
            out!("Restored {name} to snapshot {snap}{again}");
        }
        SnapshotCmd::Delete { name, snap } => {
            super::notify(&snapshots::delete(paths, &name, &snap)?);
            out!("Snapshot {snap} of {name} deleted");
        }
        SnapshotCmd::Rename { name, old, new } => {
            super::notify(&snapshots::rename(paths, &name, &old, &new)?);
            out!("Snapshot {old} of {name} renamed to {new}");
        }
    }
    Ok(0)
}
