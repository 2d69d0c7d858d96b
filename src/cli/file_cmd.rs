//! `file push|pull|edit`: the arguments made into requests for crate::files, whose
//! notices go to stderr. Nothing is printed on success, as `cp` prints nothing.

use std::path::PathBuf;

use clap::Subcommand;

use crate::base::paths::Paths;
use crate::error::Error;
use crate::files::{self, Override, Spec};

#[derive(Debug, Subcommand)]
pub enum FileCmd {
    /// Copy host files (with -r, directory trees) into a container, running or stopped
    Push {
        /// Host files or directories
        #[arg(required = true, num_args = 1.., value_name = "SRC")]
        sources: Vec<PathBuf>,
        /// Container and path from its root (a trailing / names a directory): web/etc/
        #[arg(value_name = "NAME/PATH")]
        target: String,
        /// Copy directories with everything in them (symlinks stay symlinks)
        #[arg(short = 'r', long)]
        recursive: bool,
        /// Create missing directories of PATH
        #[arg(short = 'p', long)]
        create_dirs: bool,
        /// Owner inside the container (default: the source's, as a number)
        #[arg(long, value_name = "N")]
        uid: Option<u32>,
        /// Group inside the container (default: the source's, as a number)
        #[arg(long, value_name = "N")]
        gid: Option<u32>,
        /// Permission bits in octal (default: the source's); not with -r
        #[arg(long, value_name = "MODE", value_parser = files::parse_mode)]
        mode: Option<u32>,
    },
    /// Copy files (with -r, directory trees) out of a container, running or stopped
    Pull {
        /// Files in one container, as NAME/PATH: web/etc/hosts
        #[arg(required = true, num_args = 1.., value_name = "NAME/PATH")]
        sources: Vec<String>,
        /// Host file or directory; - for stdout
        #[arg(value_name = "DEST")]
        dest: PathBuf,
        /// Copy directories with everything in them (symlinks stay symlinks)
        #[arg(short = 'r', long)]
        recursive: bool,
        /// Create missing parent directories of DEST
        #[arg(short = 'p', long)]
        create_dirs: bool,
    },
    /// Edit a container's file in $VISUAL or $EDITOR (default vi); written back if changed
    Edit {
        #[arg(value_name = "NAME/PATH")]
        target: String,
    },
}

pub fn run(paths: &Paths, cmd: FileCmd) -> Result<u8, Error> {
    let notices = match cmd {
        FileCmd::Push { sources, target, recursive, create_dirs, uid, gid, mode } => {
            let target = spec(&target)?;
            let req =
                files::PushRequest { sources, target, recursive, create_dirs, owner: Override { uid, gid, mode } };
            files::push(paths, &req)?.notices
        }
        FileCmd::Pull { sources, dest, recursive, create_dirs } => {
            let sources = sources.iter().map(|s| spec(s)).collect::<Result<Vec<_>, _>>()?;
            files::pull(paths, &files::PullRequest { sources, dest, recursive, create_dirs })?.notices
        }
        FileCmd::Edit { target } => files::edit(paths, &spec(&target)?)?,
    };
    super::notify(&notices);
    Ok(0)
}

fn spec(arg: &str) -> Result<Spec, files::Error> {
    Spec::parse(arg).map_err(|why| files::Error::Spec { arg: arg.into(), why })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::FileCmd;
    use crate::cli::{Cli, Cmd};

    fn parse(args: &[&str]) -> Result<FileCmd, clap::Error> {
        let cli = Cli::try_parse_from(args)?;
        let Cmd::File { cmd } = cli.cmd else { panic!("{cli:?}") };
        Ok(cmd)
    }

    #[test]
    fn push_takes_sources_then_the_target() {
        let cmd = parse(&["hutch", "file", "push", "a", "b", "web/etc/", "-r", "--uid", "1000"]).unwrap();
        let FileCmd::Push { sources, target, recursive, uid, mode, .. } = cmd else { panic!() };
        assert_eq!(sources, ["a", "b"].map(std::path::PathBuf::from));
        assert_eq!((target.as_str(), recursive, uid, mode), ("web/etc/", true, Some(1000), None));
        let FileCmd::Push { mode, .. } = parse(&["hutch", "file", "push", "a", "web/x", "--mode", "0640"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(mode, Some(0o640));
        assert!(parse(&["hutch", "file", "push", "web/x"]).is_err(), "a source is required");
        let e = parse(&["hutch", "file", "push", "a", "web/x", "--mode", "rw"]).unwrap_err().to_string();
        assert!(e.contains("octal"), "{e}");
    }

    #[test]
    fn pull_takes_sources_then_the_destination() {
        let FileCmd::Pull { sources, dest, .. } = parse(&["hutch", "file", "pull", "web/a", "web/b", "out/"]).unwrap()
        else {
            panic!()
        };
        assert_eq!((sources, dest), (vec!["web/a".to_string(), "web/b".into()], "out/".into()));
        assert!(parse(&["hutch", "file", "pull", "web/a"]).is_err(), "a destination is required");
    }
}
