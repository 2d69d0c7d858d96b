//! The command line: argument types (clap), dispatch, and exit codes.
//! Exit codes: 0 success, 1 failure, 2 usage error (from clap); `exec` and `shell`
//! exit with the command's own status.

/// Writes one line of data on stdout and returns early with `Error::Output` if it
/// cannot (a reader that went away ends the command quietly, in `main`).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::emit(&format!("{}\n", format_args!($($arg)*)))?
    };
}

mod autostart_cmd;
mod config_cmd;
mod docs;
mod doctor_cmd;
mod file_cmd;
mod image_cmd;
mod inspect;
mod lifecycle;
mod mount_cmd;
mod network_cmd;
mod run;
mod snapshot_cmd;
mod top;

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::base::output::{self, Format};
use crate::base::paths::Paths;
use crate::error::{Error, report};
use crate::network::nft::Proto;

#[derive(Debug, Parser)]
#[command(
    name = "hutch",
    version,
    about = "System containers: whole distributions booting their own init, unprivileged by default"
)]
pub struct Cli {
    /// Keep all state under DIR instead of /var/lib/hutch and /run/hutch
    #[arg(long, global = true, env = "HUTCH_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// How much to log on stderr: off, error, warn (default), info, debug, trace (also HUTCH_LOG)
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<crate::base::log::Level>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create a container from a distribution template, a cached image, a directory or an archive
    Create(CreateArgs),
    /// Create a container and start it
    Launch {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once init reports it has finished booting
        #[arg(long)]
        wait: bool,
    },
    /// Manage the image cache
    Image {
        #[command(subcommand)]
        cmd: ImageCmd,
    },
    /// Turn a stopped container into a cached image with an alias
    Publish { name: String, alias: String },
    /// Manage bridge networks (DHCP and DNS by dnsmasq, NAT by nftables)
    Network {
        #[command(subcommand)]
        cmd: NetworkCmd,
    },
    /// Share host folders and files with a container (live while it runs)
    Mount {
        #[command(subcommand)]
        cmd: MountCmd,
    },
    /// Publish container ports on the host (like `docker run -p`)
    Port {
        #[command(subcommand)]
        cmd: PortCmd,
    },
    /// Boot a container
    Start {
        name: String,
        /// Return once init reports it has finished booting
        #[arg(long)]
        wait: bool,
        /// json: {"format_version": 1, "name", "init_pid", "boot_ms", "nics"} on stdout
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Shut a container down: the init's halt signal, then a kill after the timeout
    Stop {
        name: String,
        /// Seconds to wait before killing (default: init.stop_timeout)
        #[arg(long, value_name = "S")]
        timeout: Option<u64>,
        /// Kill every process at once
        #[arg(long)]
        force: bool,
    },
    /// Stop (if running) and start again
    Restart {
        name: String,
        #[arg(long, value_name = "S")]
        timeout: Option<u64>,
        #[arg(long)]
        force: bool,
        #[arg(long)]
        wait: bool,
    },
    /// Send a signal to init (default SIGKILL), or with --all to every process
    Kill {
        name: String,
        /// Signal name or number: TERM, SIGRTMIN+3, 9...
        signal: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Freeze every process of a container
    Freeze { name: String },
    /// Thaw a frozen container
    Unfreeze { name: String },
    /// Run a command in a running container
    Exec {
        name: String,
        /// Set an environment variable (repeatable)
        #[arg(short = 'e', long = "env", value_name = "K=V")]
        env: Vec<String>,
        /// Run as this user (name, uid or uid:gid from the container's files)
        #[arg(long, value_name = "U")]
        user: Option<String>,
        /// Working directory inside the container
        #[arg(long, value_name = "DIR")]
        cwd: Option<String>,
        /// Read variables from FILE (Docker's format: KEY=VALUE lines, # comments);
        /// -e wins over the file
        #[arg(long, value_name = "FILE")]
        env_file: Option<PathBuf>,
        /// Allocate a pseudo-terminal (default: when stdin is a terminal)
        #[arg(short = 't', conflicts_with = "no_tty")]
        tty: bool,
        /// Never allocate a pseudo-terminal
        #[arg(short = 'T')]
        no_tty: bool,
        /// The command and its arguments, after --
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Open a login shell in a container (starting it if needed)
    Shell {
        name: String,
        #[arg(long, value_name = "U")]
        user: Option<String>,
    },
    /// Attach to the container's console (detach with Ctrl-a q)
    Console { name: String },
    /// Show the console log
    Logs {
        name: String,
        /// Keep printing new output
        #[arg(short = 'f', long)]
        follow: bool,
        /// Show the monitor's own log instead
        #[arg(long)]
        monitor: bool,
        /// json: one {"format_version": 1, "log", "line"} object per line (JSON Lines)
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List containers
    #[command(alias = "ls")]
    List {
        /// json: {"format_version": 1, "containers": [...]}
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// A live table of running containers' CPU, memory, processes and IO
    Top {
        /// Seconds between refreshes
        #[arg(long, default_value_t = 2.0)]
        interval: f64,
        /// Samples to print, then exit (default: until interrupted on a terminal, else 1)
        #[arg(long, short = 'n')]
        count: Option<u32>,
        /// json: one {"format_version": 1, "containers": [...]} object per sample (JSON Lines)
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show a container's details
    Info {
        name: String,
        /// json: {"format_version": 1, "name", "state", ...}
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show or change a container's configuration
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Copy files into and out of a container: push, pull, edit
    File {
        #[command(subcommand)]
        cmd: file_cmd::FileCmd,
    },
    /// Copy a container (or one of its snapshots, SRC/SNAP) to a new one with its own identity
    Copy {
        /// SRC or SRC/SNAP
        src: String,
        dst: String,
        /// How the copy's rootfs is stored (default: as the source's)
        #[arg(long, value_name = "KIND", value_enum)]
        storage: Option<crate::storage::Kind>,
        /// Destroy the copy when it stops
        #[arg(long)]
        ephemeral: bool,
    },
    /// Rename a stopped container (its DNS name follows)
    Rename { old: String, new: String },
    /// Check this host for what containers need, with a fix for each problem
    Doctor {
        /// json: {"format_version": 1, "doctor": [{"check", "verdict", "detail", "fix"}]}
        #[arg(long, value_enum, default_value_t)]
        format: crate::base::output::Format,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completion { shell: clap_complete::Shell },
    /// Write the man pages, hutch.1 and one for each subcommand, into DIR
    #[command(hide = true)]
    Man { dir: PathBuf },
    /// Start the containers with autostart.enabled, by autostart.order (at host boot)
    Autostart {
        /// Show the plan, start nothing
        #[arg(long)]
        dry_run: bool,
        /// Stop every running container instead, highest order first (at host shutdown)
        #[arg(long)]
        stop: bool,
        /// With --stop: seconds each container has to shut down before it is killed
        #[arg(long, value_name = "S", requires = "stop")]
        timeout: Option<u64>,
        /// json: {"format_version": 1, "autostart": [{"name", "order", "delay"}] or [{"name", "order", "result", "ok"}]}
        #[arg(long, value_enum, default_value_t)]
        format: crate::base::output::Format,
    },
    /// Write a container (config, rootfs, and with --snapshots its snapshots) to one archive with checksums
    Export {
        name: String,
        /// The archive to write (it must not exist)
        file: std::path::PathBuf,
        /// Include the snapshots
        #[arg(long)]
        snapshots: bool,
        #[arg(long, value_enum, default_value_t)]
        compression: crate::storage::archive::Compression,
    },
    /// Create a container from an archive `hutch export` wrote (verified whole before anything is created)
    Import {
        file: std::path::PathBuf,
        /// Its name here (default: the name it was exported under; another name gives it a new identity)
        name: Option<String>,
        /// How its rootfs is stored (default: btrfs when the hutch root is on btrfs, else dir)
        #[arg(long, value_name = "KIND", value_enum)]
        storage: Option<crate::storage::Kind>,
    },
    /// Snapshots of a container's rootfs: create, list, restore, delete, rename
    Snapshot {
        #[command(subcommand)]
        cmd: snapshot_cmd::SnapshotCmd,
    },
    /// Remove a container and everything hutch keeps for it
    Destroy {
        name: String,
        /// Kill it first if it is running
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("rootfs_source").required(true).multiple(false))]
pub struct CreateArgs {
    pub name: String,
    /// A distribution and release from the templates: ubuntu:24.04, debian:12, alpine:3.20, busybox...
    #[arg(short = 't', long = "template", value_name = "DISTRO[:RELEASE]", group = "rootfs_source")]
    pub template: Option<String>,
    /// A cached image, by alias or id (see `hutch image list`)
    #[arg(long, value_name = "ALIAS", group = "rootfs_source")]
    pub image: Option<String>,
    /// Copy this root filesystem directory
    #[arg(long, value_name = "DIR", group = "rootfs_source")]
    pub from_dir: Option<PathBuf>,
    /// Unpack this archive (.tar, .tar.gz, .tar.xz, .tar.zst)
    #[arg(long, value_name = "FILE", group = "rootfs_source")]
    pub from_tar: Option<PathBuf>,
    #[command(flatten)]
    pub pull: PullArgs,
    /// How the rootfs is stored: overlay (default) or btrfs over the cached image, or a full copy (dir)
    #[arg(long, value_name = "KIND", value_enum)]
    pub storage: Option<crate::storage::Kind>,
    /// Run without a user namespace (container root is host root)
    #[arg(long)]
    pub privileged: bool,
    /// A NIC on this network (repeatable; eth0, eth1...); `none` for no network.
    /// Default: one NIC on hutchbr0
    #[arg(long = "network", value_name = "NAME")]
    pub networks: Vec<String>,
    /// A fixed IPv4 address for the first NIC (default: one from the network's pool)
    #[arg(long, value_name = "ADDR")]
    pub ipv4: Option<String>,
    /// A dev box: the invoking user (SUDO_USER, or --user) is the same user inside,
    /// with its home shared at the same path and passwordless sudo
    #[arg(long)]
    pub devbox: bool,
    /// Destroy the container when it stops (a reboot from inside keeps it)
    #[arg(long)]
    pub ephemeral: bool,
    /// The host user of a dev box (default: SUDO_USER)
    #[arg(long, value_name = "USER", requires = "devbox")]
    pub user: Option<String>,
    /// json: {"format_version": 1, "name", ...} on stdout (for `launch`, what `start` prints)
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Where an image comes from, for `create -t` and `image pull`.
#[derive(Debug, Clone, clap::Args)]
pub struct PullArgs {
    /// Architecture (default: the host's): amd64, arm64...
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
    /// Image variant on the image server (default: default)
    #[arg(long, value_name = "NAME")]
    pub variant: Option<String>,
    /// Use only this kind of source from the template
    #[arg(long, value_name = "KIND", value_enum)]
    pub source: Option<crate::image::template::SourceKind>,
    /// Image server in LXC's format (default: https://images.linuxcontainers.org)
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Package mirror for debootstrap, dnf and tar sources
    #[arg(long, value_name = "URL")]
    pub mirror: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// List cached images
    #[command(alias = "ls")]
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Fetch or build an image into the cache (again, if it is there already)
    Pull {
        /// DISTRO[:RELEASE]
        reference: String,
        #[command(flatten)]
        pull: PullArgs,
    },
    /// Remove a cached image (refused while a container stands on it)
    Rm { image: String },
    /// Add a root filesystem archive to the cache
    Import {
        file: PathBuf,
        #[arg(long, value_name = "ALIAS")]
        alias: Option<String>,
    },
    /// Write a cached image as an image-server tree (index, SHA256SUMS, rootfs, metadata)
    Export {
        image: String,
        dir: PathBuf,
        /// xz compression level, 0-9
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=9))]
        level: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// Create a bridge network and bring it up
    Create {
        name: String,
        /// IPv4 subnet (default: a free /24 in 10.0.0.0/8)
        #[arg(long, value_name = "CIDR")]
        subnet: Option<String>,
        /// IPv6 /64 announced to containers: a CIDR, auto (a random ULA) or none
        #[arg(long, value_name = "CIDR", default_value = "none")]
        ipv6: String,
        /// Do not masquerade traffic leaving the subnet
        #[arg(long)]
        no_nat: bool,
        /// DNS domain of the containers' names (NAME.DOMAIN)
        #[arg(long, default_value = "hutch")]
        domain: String,
    },
    /// List networks
    #[command(alias = "ls")]
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show a network, its containers and their addresses
    Show {
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Delete a network (refused while a container uses it)
    #[command(alias = "rm")]
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum MountCmd {
    /// Share SOURCE (a host directory or file) at PATH inside NAME
    Add {
        name: String,
        source: std::path::PathBuf,
        /// Absolute path inside the container
        path: String,
        /// Read-only inside, even for root
        #[arg(long)]
        readonly: bool,
        /// Keep host ids as the container's id map shows them (no idmapped mount)
        #[arg(long)]
        no_shift: bool,
        /// What to make at a missing target (default: what SOURCE is)
        #[arg(long, value_enum)]
        create: Option<crate::config::mounts::Create>,
        /// Skip the mount, with a notice, while SOURCE does not exist
        #[arg(long)]
        optional: bool,
    },
    /// List a container's shared folders
    #[command(alias = "ls")]
    List {
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Stop sharing the folder at PATH
    #[command(alias = "remove")]
    Rm { name: String, path: String },
}

#[derive(Debug, Subcommand)]
pub enum PortCmd {
    /// Publish [HOST_IP:]HOST_PORT on the host as CONTAINER_PORT in the container
    Add {
        name: String,
        /// [HOST_IP:]HOST_PORT
        host: String,
        container_port: u16,
        #[arg(long, value_enum, default_value_t = Proto::Tcp)]
        proto: Proto,
    },
    /// List a container's published ports
    #[command(alias = "ls")]
    List {
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Stop publishing HOST_PORT
    Rm {
        name: String,
        /// [HOST_IP:]HOST_PORT
        host: String,
        #[arg(long, value_enum, default_value_t = Proto::Tcp)]
        proto: Proto,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print the configuration file
    Show {
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Print one value (defaults included)
    Get {
        name: String,
        key: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Change one value; the whole file is validated before it is written
    Set {
        name: String,
        key: String,
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
    /// Edit in $EDITOR (or replace from stdin when it is not a terminal)
    Edit { name: String },
}

pub fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        // --help and --version are data (stdout); a usage error goes to stderr as
        // every other error does, and exits 2.
        Err(e) if !e.use_stderr() => {
            return match e.print() {
                Err(io) if io.kind() != std::io::ErrorKind::BrokenPipe => ExitCode::from(1),
                _ => ExitCode::SUCCESS,
            };
        }
        Err(e) => {
            let _ = std::io::stderr().lock().write_all(usage_error(&e.render().to_string()).as_bytes());
            return ExitCode::from(2);
        }
    };
    crate::base::log::init(cli.log_level, crate::base::log::Sink::Cli);
    tracing::debug!("hutch {} {:?}", env!("CARGO_PKG_VERSION"), args);
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        // The reader went away (`hutch list | head -1`): nothing more to say, as ripgrep does.
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::from(1)
        }
    }
}

fn dispatch(cli: Cli) -> Result<u8, Error> {
    // What needs neither root nor the state tree.
    match &cli.cmd {
        Cmd::Completion { shell } => return docs::completion(*shell),
        Cmd::Man { dir } => return docs::man_pages(dir),
        _ => {}
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::with_hint(
            "run hutch",
            "it needs root (namespaces, mounts and cgroups); containers are still unprivileged inside",
            "run it with sudo",
        ));
    }
    let paths = Paths::new(cli.root.as_deref());
    // What interrupted commands and a host that went down left: cheap to look for
    // (two directory reads), and the next command, whichever it is, clears it.
    notify(&crate::container::collect_leftovers(&paths));
    notify(&crate::container::sweep_ephemeral(&paths));
    match cli.cmd {
        Cmd::Create(args) => lifecycle::create(&paths, args, true).map(|_| 0),
        Cmd::Launch { create, wait } => {
            let (name, format) = (create.name.clone(), create.format);
            lifecycle::create(&paths, create, format == Format::Text)?;
            lifecycle::start(&paths, &name, wait, format)
        }
        Cmd::Image { cmd } => image_cmd::run(&paths, cmd),
        Cmd::Publish { name, alias } => image_cmd::publish(&paths, &name, &alias),
        Cmd::Network { cmd } => network_cmd::network(&paths, cmd),
        Cmd::Mount { cmd } => mount_cmd::run(&paths, cmd),
        Cmd::Port { cmd } => network_cmd::port(&paths, cmd),
        Cmd::Start { name, wait, format } => lifecycle::start(&paths, &name, wait, format),
        Cmd::Stop { name, timeout, force } => lifecycle::stop(&paths, &name, timeout, force),
        Cmd::Restart { name, timeout, force, wait } => lifecycle::restart(&paths, &name, timeout, force, wait),
        Cmd::Kill { name, signal, all } => lifecycle::kill(&paths, &name, signal.as_deref(), all),
        Cmd::Freeze { name } => lifecycle::freeze(&paths, &name, true),
        Cmd::Unfreeze { name } => lifecycle::freeze(&paths, &name, false),
        Cmd::Destroy { name, force } => lifecycle::destroy(&paths, &name, force),
        Cmd::Exec { name, env, user, cwd, env_file, tty, no_tty, command } => {
            run::exec(&paths, &name, env, user, cwd, tty, no_tty, env_file, command)
        }
        Cmd::Shell { name, user } => run::shell(&paths, &name, user),
        Cmd::Console { name } => run::console(&paths, &name),
        Cmd::Logs { name, follow, monitor, format } => inspect::logs(&paths, &name, follow, monitor, format),
        Cmd::List { format } => inspect::list(&paths, format),
        Cmd::Info { name, format } => inspect::info(&paths, &name, format),
        Cmd::Top { interval, count, format } => top::top(&paths, format, interval, count),
        Cmd::Config { cmd } => config_cmd::run(&paths, cmd),
        Cmd::File { cmd } => file_cmd::run(&paths, cmd),
        Cmd::Snapshot { cmd } => snapshot_cmd::run(&paths, cmd),
        Cmd::Copy { src, dst, storage, ephemeral } => {
            notify(&crate::container::copy(
                &paths,
                &crate::container::CopyFrom::parse(&src),
                &dst,
                storage,
                ephemeral,
            )?);
            out!("Copied {src} to {dst}");
            Ok(0)
        }
        Cmd::Rename { old, new } => {
            notify(&crate::container::rename(&paths, &old, &new)?);
            out!("Renamed {old} to {new}");
            Ok(0)
        }
        Cmd::Doctor { format } => doctor_cmd::run(&paths, format),
        Cmd::Completion { .. } | Cmd::Man { .. } => unreachable!("handled before the root check"),
        Cmd::Autostart { dry_run, stop, timeout, format } => autostart_cmd::run(&paths, dry_run, stop, timeout, format),
        Cmd::Export { name, file, snapshots, compression } => {
            let (done, notices) = crate::container::export(&paths, &name, &file, snapshots, compression)?;
            notify(&notices);
            let snaps = match done.snapshots {
                0 => String::new(),
                1 => " and 1 snapshot".into(),
                n => format!(" and {n} snapshots"),
            };
            out!(
                "Exported {name}{snaps} to {} ({} entries, {})",
                file.display(),
                done.entries,
                crate::base::output::bytes(done.size)
            );
            Ok(0)
        }
        Cmd::Import { file, name, storage } => {
            let (name, notices) = crate::container::import(&paths, &file, name.as_deref(), storage)?;
            notify(&notices);
            out!("Imported {name} from {}", file.display());
            Ok(0)
        }
    }
}

/// Prints notices (things hutch did on its own) on stderr.
pub(crate) fn notify(notices: &[String]) {
    let mut err = std::io::stderr().lock();
    for n in notices {
        let _ = writeln!(err, "hutch: {n}");
    }
}

/// clap's usage error in hutch's shape: `hutch: error: ...`, clap's own details and
/// usage, then `hint: ...` where clap says where to read more.
fn usage_error(rendered: &str) -> String {
    let body = rendered.trim_end().strip_prefix("error: ").unwrap_or(rendered.trim_end());
    let mut out = String::from("hutch: error: ");
    for line in body.lines() {
        match line.strip_prefix("For more information, try ") {
            Some(rest) => out.push_str(&format!("hint: for more information, try {rest}")),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Writes data on stdout, flushed, so that a closed pipe shows here as an error.
pub(crate) fn emit(s: &str) -> Result<(), Error> {
    output::text(&mut std::io::stdout().lock(), s).map_err(Error::Output)
}

/// Writes the `{"format_version": 1, KEY: VALUE}` envelope of a read command.
pub(crate) fn emit_json<T: serde::Serialize + ?Sized>(key: &str, value: &T) -> Result<(), Error> {
    output::json(&mut std::io::stdout().lock(), key, value).map_err(Error::Output)
}

/// Writes `{"format_version": 1, FIELDS...}` for a command that shows one object.
pub(crate) fn emit_object<T: serde::Serialize>(value: &T) -> Result<(), Error> {
    output::json_object(&mut std::io::stdout().lock(), value).map_err(Error::Output)
}

/// Writes one JSON Lines record (`top`, `logs --format json`).
pub(crate) fn emit_line<T: serde::Serialize>(value: &T) -> Result<(), Error> {
    output::json_line(&mut std::io::stdout().lock(), value).map_err(Error::Output)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, usage_error};

    #[test]
    fn usage_errors_read_like_every_other_error() {
        let e = Cli::try_parse_from(["hutch", "list", "--bogus"]).unwrap_err();
        let text = usage_error(&e.render().to_string());
        assert!(text.starts_with("hutch: error: unexpected argument '--bogus' found\n"), "{text}");
        assert!(text.contains("Usage: hutch list"), "{text}");
        assert!(text.ends_with("hint: for more information, try '--help'.\n"), "{text}");
    }

    #[test]
    fn value_enums_name_their_values_as_the_domain_does() {
        use clap::ValueEnum;
        for k in crate::image::template::SourceKind::value_variants() {
            assert_eq!(k.to_possible_value().unwrap().get_name(), k.as_str());
        }
        for k in crate::storage::Kind::value_variants() {
            assert_eq!(k.to_possible_value().unwrap().get_name(), k.as_str());
        }
        for p in crate::network::nft::Proto::value_variants() {
            assert_eq!(p.to_possible_value().unwrap().get_name(), p.to_string());
        }
        let cli = Cli::try_parse_from(["hutch", "image", "pull", "debian", "--source", "image-server"]).unwrap();
        let super::Cmd::Image { cmd: super::ImageCmd::Pull { pull, .. } } = cli.cmd else { panic!("{cli:?}") };
        assert_eq!(pull.source, Some(crate::image::template::SourceKind::ImageServer));
    }
}
