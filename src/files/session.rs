//! One session with a container's files: the container's state decides how the helper
//! reaches them (under the container's lock), then the helper runs and the two sides'
//! results are settled into one.

use std::fs::File;

use super::Error;
use super::helper::{self, Access, Done, Ended, Flow, JobError, Report, Tree};
use crate::base::lock::Lock;
use crate::base::paths::Paths;
use crate::config::Config;
use crate::container::{self, Notices, Status};

/// How a container's files are reached, and the lock that keeps a stopped one stopped.
pub(super) struct Reached {
    pub access: Access,
    pub lock: Option<Lock>,
}

/// Decides how to reach `name`'s files. A stopped container stays locked (it cannot
/// start meanwhile); a running one is reached through a pidfd of its init, which
/// pins that init, so the lock is let go (a `stop` need not wait for a copy).
pub(super) fn reach(paths: &Paths, name: &str, action: &str, notices: &mut Notices) -> Result<Reached, Error> {
    container::require_exists(paths, name)?;
    let lock = Lock::acquire(&paths.lock(name)).map_err(|source| container::Error::Io {
        action: "lock",
        path: paths.lock(name),
        source,
    })?;
    let config = Config::load(&paths.config(name)).map_err(container::Error::from)?;
    let obs = container::reconcile(paths, name, Some(&config), notices)?;
    let busy = |state| Error::Busy { action: action.into(), name: name.into(), state };
    match obs.status {
        Status::Frozen => Err(Error::Frozen { action: action.into(), name: name.into() }),
        Status::Stopping => Err(busy("stopping")),
        Status::Stopped => {
            let dir = paths.container(name);
            let access = Access::Stopped { rootfs: config.rootfs_path(&dir), layers: config.layers(paths, &dir) };
            Ok(Reached { access, lock: Some(lock) })
        }
        _ if obs.init_alive => {
            let state = obs.state.expect("a running container has state");
            let init = state.init.expect("a running container has an init");
            // Init is recorded once executed, after it made its own mount namespace;
            // never join one that is still the host's or the monitor's.
            let ns = |pid: String| {
                std::fs::metadata(format!("/proc/{pid}/ns/mnt")).ok().map(|m| {
                    use std::os::unix::fs::MetadataExt;
                    (m.dev(), m.ino())
                })
            };
            let own = ns(init.pid.to_string());
            if own.is_none() || own == ns("self".into()) || own == ns(state.monitor.pid.to_string()) {
                return Err(busy("starting"));
            }
            let pidfd = init.pidfd().ok_or_else(|| busy("stopping"))?;
            Ok(Reached { access: Access::Running { pidfd, privileged: state.privileged }, lock: None })
        }
        _ => Err(busy("starting")),
    }
}

/// Runs `job` in the helper (in `name`'s tree) and `host` here, each with its end of
/// the data pipe, and returns the host's result and the helper's report.
pub(super) fn run<T>(
    paths: &Paths,
    name: &str,
    action: &str,
    flow: Flow,
    job: impl FnOnce(&Tree, File) -> Result<Done, JobError>,
    host: impl FnOnce(File) -> Result<T, Error>,
) -> Result<(T, Done, Notices), Error> {
    let mut notices = Notices::new();
    let reached = reach(paths, name, action, &mut notices)?;
    let ended = helper::session(&reached.access, flow, reached.lock.as_ref().map(|l| l.as_fd()), job, host)
        .map_err(|source| Error::Sys { action: action.into(), source })?;
    drop(reached);
    let (t, done) = settle(action, flow, ended)?;
    Ok((t, done, notices))
}

/// One error from two sides: the side that failed first is the one to report. A
/// writer that failed only because its reader went away (`EPIPE`) yields to the
/// reader; a reader that failed only because its writer stopped mid-stream yields to
/// the writer's own failure.
pub(super) fn settle<T>(action: &str, flow: Flow, ended: Ended<Result<T, Error>>) -> Result<(T, Done), Error> {
    let helper = |failure: JobError| Error::Helper { action: action.into(), source: failure.error };
    match (flow, ended.host, ended.report) {
        (_, Ok(t), Ok(Report::Done { done })) => Ok((t, done)),
        (_, Ok(_), Ok(Report::Failed { failure })) => Err(helper(failure)),
        (_, Ok(_), Err(why)) => Err(Error::Helper {
            action: action.into(),
            source: crate::runtime::wire::WireError::new(crate::runtime::wire::Kind::Unknown, why),
        }),
        (Flow::ToHelper, Err(e), Ok(Report::Failed { failure })) if e.is_broken_pipe() => Err(helper(failure)),
        (Flow::FromHelper, Err(_), Ok(Report::Failed { failure })) if !failure.broken_pipe => Err(helper(failure)),
        (_, Err(e), _) => Err(e),
    }
}
