//! `hutch exec` and `hutch shell`: run a command inside a running container.
//!
//! The CLI process stays on the host and relays the terminal or waits. A first child
//! makes itself non-dumpable, joins the container's cgroup (next to init), then every
//! namespace at once through a pidfd of init (`setns` with a pidfd, so a recycled pid
//! can never be joined), becomes the target user and allocates a pty from the
//! container's own devpts when asked. A second child, born inside the container's pid
//! namespace, starts a new session and execs the command with a clean environment and
//! no inherited descriptors. The first child exits with the command's status, 128+N
//! when it was killed by signal N.

mod passwd;
pub mod proxy;

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::base::paths::Paths;
use crate::base::state::RuntimeState;
use crate::container::{Status, observe};
use crate::runtime::channel;
use crate::runtime::wire::{Kind, WireError};
use crate::sys;

pub use passwd::User;
pub(crate) use passwd::passwd_entries;

#[derive(Debug, Error)]
pub enum Error {
    #[error("failed to run a command in {name}: it is not running")]
    NotRunning { name: String },
    #[error("failed to run a command in {name}: it is frozen")]
    Frozen { name: String },
    #[error("failed to run a command in {name}: {message}")]
    Failed { name: String, message: String },
    #[error("failed to run a command in {name}: {source}")]
    Sys { name: String, source: sys::Error },
    #[error("failed to run a command in {name}: {source}")]
    Cgroup { name: String, source: crate::cgroup::Error },
    #[error("failed to attach to the console of {name}: {source}")]
    Console { name: String, source: crate::monitor::proto::Error },
    /// The exec helper failed before the command ran.
    #[error("failed to run a command in {name}: {source}")]
    Helper { name: String, source: WireError },
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::NotRunning { name } => Some(format!("start it with `hutch start {name}`")),
            Error::Frozen { name } => Some(format!("thaw it with `hutch unfreeze {name}`")),
            Error::Sys { source, .. } => source.hint(),
            Error::Cgroup { source, .. } => source.hint(),
            Error::Helper { source, .. } => source.hint(),
            Error::Console { source, .. } => source.hint(),
            Error::Failed { .. } => None,
        }
    }
}

/// A failure of the exec helper (the first child), before the command ran.
#[derive(Debug, Error)]
enum HelperError {
    #[error("failed to {action}: {source}")]
    Step { action: String, source: std::io::Error },
    #[error(transparent)]
    Cgroup(#[from] crate::cgroup::Error),
    #[error(transparent)]
    Sys(#[from] sys::Error),
    #[error("failed to find the user: {0}")]
    User(#[from] passwd::UnknownId),
}

impl HelperError {
    fn step<E: Into<std::io::Error>>(action: impl Into<String>) -> impl FnOnce(E) -> HelperError {
        let action = action.into();
        move |e| HelperError::Step { action, source: e.into() }
    }

    fn to_wire(&self) -> WireError {
        let (kind, hint) = match self {
            HelperError::Sys(e @ sys::Error::NotSingleThreaded { .. }) => (Kind::Threads, e.hint()),
            HelperError::Cgroup(e) => (Kind::Cgroup, e.hint()),
            HelperError::User(_) => (
                Kind::Exec,
                Some("users come from the container's own /etc/passwd and /etc/group; a numeric uid[:gid] needs no entry".into()),
            ),
            _ => (Kind::Exec, None),
        };
        WireError::new(kind, self.to_string()).with_hint(hint)
    }
}

/// The messages on the socket from the exec helper to the CLI (JSON, one per packet,
/// an fd attached to `Master` and `Pid`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "snake_case")]
pub enum HelperMsg {
    /// The command's pty master is attached.
    Master,
    /// A pidfd of the command is attached (for forwarding signals).
    Pid,
    /// The helper failed before the command ran: the exec fails with this error.
    Failed { error: WireError },
    /// The command could not be executed: it did not run, and `hutch exec` exits with
    /// `code` (127 not found, 126 otherwise, as a shell does).
    NotRun { error: WireError, code: i32 },
}

impl HelperMsg {
    fn send(&self, sock: &OwnedFd, fd: Option<std::os::fd::BorrowedFd<'_>>) -> std::io::Result<()> {
        channel::send(sock.as_fd(), &serde_json::to_vec(self).expect("helper messages serialise"), fd)
    }

    pub fn parse(data: &[u8]) -> Option<HelperMsg> {
        serde_json::from_slice(data).ok()
    }
}

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// Program and arguments; the program is searched in the container's PATH.
    pub argv: Vec<String>,
    /// Extra environment (`-e K=V`), applied over the defaults.
    pub env: Vec<(String, String)>,
    /// User: a name, a uid, or `uid:gid` from the container's own files (default root).
    pub user: Option<String>,
    /// Working directory (default: the user's home, or /).
    pub cwd: Option<String>,
    /// Allocate a pseudo-terminal.
    pub tty: bool,
    /// Run the user's login shell instead of `argv`.
    pub login_shell: bool,
}

/// Runs `spec` in container `name`; returns the exit status to exit with.
pub fn run(paths: &Paths, name: &str, spec: &Spec) -> Result<i32, Error> {
    crate::base::name::validate(name).map_err(|e| Error::Failed { name: name.into(), message: e.to_string() })?;
    let obs = observe(paths, name);
    match obs.status {
        Status::Frozen => return Err(Error::Frozen { name: name.into() }),
        _ if !obs.init_alive => return Err(Error::NotRunning { name: name.into() }),
        _ => {}
    }
    let state = obs.state.expect("a running container has state");
    let init = state.init.expect("a running container has an init");
    let fail = |message: String| Error::Failed { name: name.into(), message };
    let pidfd = init.pidfd().ok_or_else(|| Error::NotRunning { name: name.into() })?;
    let sub = init_cgroup(&container_cgroup_path(&state.cgroup.unified, &paths.cgroup_parent, name), init.pid);

    let signals = sys::signalfd(&[
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGCHLD,
        Signal::SIGWINCH,
    ])
    .map_err(|source| Error::Sys { name: name.into(), source })?;
    let (ours, theirs) = channel::pair().map_err(|e| fail(format!("failed to create a socketpair: {e}")))?;
    // Without a pty the command gets pipes that this process relays: the host's own
    // stdio (perhaps the user's terminal) never reaches into the container.
    let (inner, outer) = if spec.tty {
        (None, None)
    } else {
        let p = proxy::pipes().map_err(|e| fail(format!("failed to create pipes: {e}")))?;
        (Some(p.0), Some(p.1))
    };

    // Born in init's cgroup2 directory (no migration: see sys::clone3). The CLI starts
    // no threads; `clone3_for` checks that before it forks.
    let into =
        state.cgroup.open_unified(Path::new(&sub)).map_err(|source| Error::Cgroup { name: name.into(), source })?;
    let c1 = match sys::clone3_for("start the exec helper", 0, Some(into.as_fd()))
        .map_err(|source| Error::Sys { name: name.into(), source })?
    {
        sys::Forked::Child => {
            drop((ours, signals, outer, into));
            first_child(&state, &pidfd, spec, inner, theirs)
        }
        sys::Forked::Parent { pid, .. } => Pid::from_raw(pid),
    };
    drop((theirs, pidfd, inner, into));
    proxy::supervise(c1, ours, signals, outer).map_err(|source| Error::Helper { name: name.into(), source })
}

/// The container's cgroup2 directory as /proc/PID/cgroup writes it (`/hutch/NAME`, or
/// `/machine.slice/hutch-NAME.scope/payload` on systemd hosts): its saved path less the
/// cgroup2 mount point.
fn container_cgroup_path(unified: &Path, parent: &str, name: &str) -> String {
    crate::cgroup::Layout::detect()
        .ok()
        .and_then(|l| unified.strip_prefix(l.unified_root()).ok().map(|rel| format!("/{}", rel.display())))
        .unwrap_or_else(|| format!("/{parent}/{name}"))
}

/// Init's cgroup relative to the container's cgroup2 root `base` (`/init.scope` under
/// systemd, `/` otherwise), read from the host's view of /proc/PID/cgroup.
fn init_cgroup(base: &str, pid: i32) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .and_then(|p| p.strip_prefix(base))
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        .map(|rest| if rest.is_empty() { "/".to_string() } else { rest.to_string() })
        .unwrap_or_else(|| "/".to_string())
}

/// Joins the container and forks the command's process; exits with its status.
fn first_child(state: &RuntimeState, pidfd: &OwnedFd, spec: &Spec, pipes: Option<[OwnedFd; 3]>, sock: OwnedFd) -> ! {
    match first_child_inner(state, pidfd, spec, pipes, &sock) {
        Ok(code) => sys::exit_now(code),
        Err(e) => {
            let _ = HelperMsg::Failed { error: e.to_wire() }.send(&sock, None);
            sys::exit_now(1)
        }
    }
}

fn first_child_inner(
    state: &RuntimeState,
    pidfd: &OwnedFd,
    spec: &Spec,
    pipes: Option<[OwnedFd; 3]>,
    sock: &OwnedFd,
) -> Result<i32, HelperError> {
    sys::set_non_dumpable().map_err(HelperError::step("make the helper non-dumpable"))?;
    // Opened before joining the container, whose /proc does not show this process.
    let threads = sys::ThreadCounter::open().map_err(HelperError::step("open /proc/self/status"))?;
    state.cgroup.attach_v1(0)?;
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWCGROUP;
    if !state.privileged {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    sys::join_container(pidfd.as_fd(), flags, !state.privileged)?;
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let user = passwd::resolve(spec.user.as_deref(), &passwd, &group)?;

    let stdio = if let Some(pipes) = pipes {
        Stdio::Pipes(pipes)
    } else {
        let master = rustix::fs::open(
            "/dev/ptmx",
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(HelperError::step("allocate a pseudo-terminal in the container"))?;
        sys::unlock_pty(master.as_fd()).map_err(HelperError::step("unlock the pseudo-terminal"))?;
        let slave = sys::pty_peer(master.as_fd()).map_err(HelperError::step("open the pseudo-terminal"))?;
        HelperMsg::Master.send(sock, Some(master.as_fd())).map_err(HelperError::step("pass the terminal on"))?;
        Stdio::Pty(slave)
    };

    // Still single-threaded (checked again); the grandchild execs or exits.
    match threads.fork("start the command's process")? {
        ForkResult::Child => second_child(spec, &user, stdio, sock),
        ForkResult::Parent { child } => {
            drop(stdio);
            // A pidfd, so the CLI's signal forwarding can never hit a recycled pid.
            if let Ok(fd) = sys::pidfd_open(child.as_raw()) {
                let _ = HelperMsg::Pid.send(sock, Some(fd.as_fd()));
            }
            loop {
                match waitpid(child, None) {
                    Ok(WaitStatus::Exited(_, code)) => return Ok(code),
                    Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
                    Ok(_) => continue,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(HelperError::step("wait for the command")(e)),
                }
            }
        }
    }
}

/// The command's standard streams inside the container.
enum Stdio {
    /// The slave side of a pty from the container's own devpts.
    Pty(OwnedFd),
    /// Pipes relayed by the CLI: stdin's read end, stdout's and stderr's write ends.
    Pipes([OwnedFd; 3]),
}

fn second_child(spec: &Spec, user: &User, stdio: Stdio, sock: &OwnedFd) -> ! {
    let Err((message, code)) = second_child_inner(spec, user, stdio);
    let _ = HelperMsg::NotRun { error: WireError::new(Kind::Command, message), code }.send(sock, None);
    sys::exit_now(code)
}

fn second_child_inner(spec: &Spec, user: &User, stdio: Stdio) -> Result<std::convert::Infallible, (String, i32)> {
    let fail = |m: String| (m, 126);
    let _ = nix::unistd::setsid();
    match stdio {
        Stdio::Pty(slave) => {
            let _ = rustix::fs::fchown(&slave, Some(rustix::fs::Uid::from_raw(user.uid)), None);
            sys::set_controlling_tty(slave.as_fd())
                .map_err(|e| fail(format!("failed to set the controlling terminal: {e}")))?;
            for fd in 0..3 {
                sys::dup_onto(slave.as_fd(), fd).map_err(|e| fail(format!("failed to set up stdio: {e}")))?;
            }
        }
        Stdio::Pipes(pipes) => {
            for (fd, target) in pipes.iter().zip(0..) {
                sys::dup_onto(fd.as_fd(), target).map_err(|e| fail(format!("failed to set up stdio: {e}")))?;
            }
        }
    }
    // The same bounding set as init, so exec'd processes are no more powerful than it
    // (before switching user: dropping needs CAP_SETPCAP).
    sys::drop_bounding(crate::runtime::policy::DROPPED_CAPS).map_err(|e| fail(e.to_string()))?;
    let groups: Vec<nix::unistd::Gid> = user.groups.iter().map(|g| (*g).into()).collect();
    nix::unistd::setgroups(&groups).map_err(|e| fail(format!("failed to set the groups of {}: {e}", user.name)))?;
    nix::unistd::setresgid(user.gid.into(), user.gid.into(), user.gid.into())
        .map_err(|e| fail(format!("failed to switch to gid {}: {e}", user.gid)))?;
    nix::unistd::setresuid(user.uid.into(), user.uid.into(), user.uid.into())
        .map_err(|e| fail(format!("failed to switch to user {}: {e}", user.name)))?;
    // The user switch reset the dumpable flag: until exec, nothing in the container
    // may ptrace this process or open its /proc/PID/exe (the host binary).
    sys::set_non_dumpable().map_err(|e| fail(format!("failed to make the helper non-dumpable: {e}")))?;

    match &spec.cwd {
        Some(dir) => std::env::set_current_dir(dir).map_err(|e| fail(format!("failed to change to {dir}: {e}")))?,
        None => {
            if std::env::set_current_dir(&user.home).is_err() {
                std::env::set_current_dir("/").map_err(|e| fail(format!("failed to change to /: {e}")))?;
            }
        }
    }
    // The working directory must be inside the container (CVE-2024-21626).
    match std::env::current_dir() {
        Ok(p) if p.is_absolute() => {}
        _ => {
            return Err(fail("the working directory is outside the container".into()));
        }
    }

    let env = environment(spec, user);
    let path_var = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone()).unwrap_or_default();
    let (program, argv) = if spec.login_shell {
        let base =
            Path::new(&user.shell).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "sh".into());
        (user.shell.clone(), vec![format!("-{base}")])
    } else {
        let program = find_program(&spec.argv[0], &path_var)
            .ok_or_else(|| (format!("{}: command not found", spec.argv[0]), 127))?;
        (program, spec.argv.clone())
    };
    let cstr = |s: &str| CString::new(s).map_err(|_| fail(format!("{s:?} contains a NUL byte")));
    let mut c_argv = vec![cstr(&program)?];
    c_argv.extend(argv.iter().map(|a| cstr(a)).collect::<Result<Vec<_>, _>>()?);
    let c_env = env.iter().map(|(k, v)| cstr(&format!("{k}={v}"))).collect::<Result<Vec<_>, _>>()?;

    sys::reset_signals();
    sys::cloexec_from(3).map_err(|e| fail(format!("failed to close inherited descriptors: {e}")))?;
    let err = execv_with_argv0(&c_argv, &c_env);
    let code = if err.raw_os_error() == Some(libc::ENOENT) { 127 } else { 126 };
    Err((format!("failed to execute {program}: {err}"), code))
}

/// execve(program, argv, env) where `c_argv[0]` is the program path and the rest is
/// the argv the program sees (so a login shell can be given `-bash` as its name).
fn execv_with_argv0(c_argv: &[CString], env: &[CString]) -> std::io::Error {
    let program = &c_argv[0];
    let args = &c_argv[1..];
    let mut argv_ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    // SAFETY: NULL-terminated arrays of pointers into CStrings that outlive the call.
    unsafe { libc::execve(program.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr()) };
    std::io::Error::last_os_error()
}

/// The command's environment: nothing from the host, a sane base, then `-e` values.
pub fn environment(spec: &Spec, user: &User) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), crate::runtime::policy::INIT_PATH.into()),
        ("HOME".into(), user.home.clone()),
        ("USER".into(), user.name.clone()),
        ("LOGNAME".into(), user.name.clone()),
        ("SHELL".into(), user.shell.clone()),
        ("LANG".into(), "C.UTF-8".into()),
    ];
    if spec.tty {
        let term = std::env::var("TERM").ok().filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()));
        env.push(("TERM".into(), term.unwrap_or_else(|| "xterm".into())));
    }
    for (k, v) in &spec.env {
        env.retain(|(ek, _)| ek != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

/// `program` if it names a path, else the first executable match in `path`.
fn find_program(program: &str, path: &str) -> Option<String> {
    if program.contains('/') {
        return Some(program.to_string());
    }
    path.split(':').filter(|d| !d.is_empty()).map(|d| format!("{d}/{program}")).find(|cand| {
        std::fs::metadata(cand)
            .is_ok_and(|m| m.is_file() && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
    })
}

/// Whether a wait status says the first child is done; its exit code if so.
pub(crate) fn reap(pid: Pid) -> Option<i32> {
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Some(code),
        Ok(WaitStatus::Signaled(_, sig, _)) => Some(128 + sig as i32),
        Ok(_) => None,
        Err(_) => Some(125),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_messages_are_typed_json() {
        let m = HelperMsg::NotRun { error: WireError::new(Kind::Command, "x: command not found"), code: 127 };
        let json = serde_json::to_vec(&m).unwrap();
        assert_eq!(HelperMsg::parse(&json), Some(m));
        assert_eq!(HelperMsg::parse(br#"{"msg":"master"}"#), Some(HelperMsg::Master));
        // The old byte tags are not messages.
        assert_eq!(HelperMsg::parse(b"Eoops"), None);
        let e = HelperError::User(passwd::UnknownId::User("bob".into())).to_wire();
        assert_eq!(e.detail, "failed to find the user: no user \"bob\" in the container's /etc/passwd");
        assert!(e.hint.unwrap().contains("numeric uid"));
    }

    fn root() -> User {
        User { name: "root".into(), uid: 0, gid: 0, home: "/root".into(), shell: "/bin/bash".into(), groups: vec![0] }
    }

    #[test]
    fn environment_is_clean_and_overridable() {
        // SAFETY: test-only; no other thread reads the environment concurrently here.
        unsafe { std::env::set_var("HUTCH_TEST_SECRET", "leak") };
        let spec =
            Spec { env: vec![("LANG".into(), "de_DE.UTF-8".into()), ("FOO".into(), "bar".into())], ..Spec::default() };
        let env = environment(&spec, &root());
        assert!(!env.iter().any(|(k, _)| k == "HUTCH_TEST_SECRET"));
        assert!(!env.iter().any(|(k, _)| k == "TERM"), "no TERM without a tty");
        assert!(env.contains(&("LANG".into(), "de_DE.UTF-8".into())));
        assert!(env.contains(&("FOO".into(), "bar".into())));
        assert_eq!(env.iter().filter(|(k, _)| k == "LANG").count(), 1);
        assert!(env.contains(&("HOME".into(), "/root".into())));
    }

    #[test]
    fn programs_are_found_in_path() {
        assert_eq!(find_program("/bin/true", "/nowhere").as_deref(), Some("/bin/true"));
        assert!(find_program("sh", "/nowhere:/bin:/usr/bin").is_some());
        assert_eq!(find_program("definitely-not-a-command", "/bin:/usr/bin"), None);
    }

    #[test]
    fn init_cgroup_is_relative_to_the_container() {
        let me = std::process::id() as i32;
        // Our own cgroup is not under /hutch/c: falls back to the container root.
        assert_eq!(init_cgroup("/hutch/c", me), "/");
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let own = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap().to_string();
        if let Some((base, leaf)) = own.rsplit_once('/').filter(|(b, _)| !b.is_empty()) {
            assert_eq!(init_cgroup(base, me), format!("/{leaf}"));
        }
    }
}
