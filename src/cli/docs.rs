//! Shell completions and man pages, generated from the clap definitions (so they never
//! drift from the commands): `hutch completion SHELL` and the hidden `hutch man DIR`
//! that `scripts/build-deb.sh` runs.

use std::path::Path;

use clap::CommandFactory;

use super::Cli;
use crate::error::Error;

pub fn completion(shell: clap_complete::Shell) -> Result<u8, Error> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "hutch", &mut script);
    super::emit(&String::from_utf8_lossy(&script))?;
    Ok(0)
}

/// `hutch.1`, and `hutch-SUB.1` (`hutch-SUB-SUBSUB.1`) for every subcommand.
pub fn man_pages(dir: &Path) -> Result<u8, Error> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::with_hint("create", format!("{}: {e}", dir.display()), "check the path"))?;
    let mut cmd = Cli::command();
    cmd.build();
    let mut n = 0;
    write_pages(&cmd, "hutch", dir, &mut n)?;
    out!("Wrote {n} man pages to {}", dir.display());
    Ok(0)
}

fn write_pages(cmd: &clap::Command, name: &str, dir: &Path, n: &mut usize) -> Result<(), Error> {
    let cmd = cmd.clone().name(name.to_string());
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut page)
        .map_err(|e| Error::with_hint("render", format!("the man page {name}: {e}"), "report this"))?;
    let file = dir.join(format!("{name}.1"));
    crate::base::fsutil::atomic_write(&file, &page, 0o644)
        .map_err(|e| Error::with_hint("write", format!("{}: {e}", file.display()), "check the directory"))?;
    *n += 1;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, n)?;
    }
    Ok(())
}
