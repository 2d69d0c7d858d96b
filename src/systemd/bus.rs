//! The D-Bus calls, as small hand-written zbus proxies. Everything here is async and
//! runs only inside a helper process (see `helper`), never in the monitor itself.

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use zbus::{Connection, OwnedObjectPath, Variant};

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
trait Systemd {
    fn start_transient_unit(
        &self,
        name: &str,
        mode: &str,
        properties: &[(&str, Variant<'_>)],
        aux: &[(&str, &[(&str, Variant<'_>)])],
    ) -> zbus::Result<OwnedObjectPath>;

    fn get_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;

    fn subscribe(&self) -> zbus::Result<()>;

    #[zbus(signal)]
    fn job_removed(&self, id: u32, job: OwnedObjectPath, unit: String, result: String) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "org.freedesktop.machine1.Manager",
    default_service = "org.freedesktop.machine1",
    default_path = "/org/freedesktop/machine1"
)]
trait Machined {
    fn register_machine(
        &self,
        name: &str,
        id: &[u8],
        service: &str,
        class: &str,
        leader: u32,
        root_directory: &str,
    ) -> zbus::Result<OwnedObjectPath>;

    fn unregister_machine(&self, name: &str) -> zbus::Result<()>;
}

/// What went wrong on the bus, classified by the D-Bus error's name when it is
/// received (not by searching the text later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// `org.freedesktop.DBus.Error.ServiceUnknown`: nothing owns the service's name
    /// (for machine1: systemd-machined is not installed).
    ServiceUnknown,
    Other,
}

/// A failed D-Bus exchange (it crosses the helper's pipe as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct BusError {
    pub fault: Fault,
    pub message: String,
}

impl From<String> for BusError {
    fn from(message: String) -> BusError {
        BusError { fault: Fault::Other, message }
    }
}

impl From<&str> for BusError {
    fn from(message: &str) -> BusError {
        BusError::from(message.to_string())
    }
}

const SERVICE_UNKNOWN: &str = "org.freedesktop.DBus.Error.ServiceUnknown";

fn classify(name: &str, message: String) -> BusError {
    let fault = if name == SERVICE_UNKNOWN { Fault::ServiceUnknown } else { Fault::Other };
    BusError { fault, message }
}

fn text(e: zbus::Error) -> BusError {
    match e {
        // "org.freedesktop.systemd1.UnitExists: Unit hutch-c.scope already exists."
        zbus::Error::MethodError(name, detail, _) => {
            let message = match detail {
                Some(d) => format!("{d} ({name})"),
                None => name.to_string(),
            };
            classify(name.as_str(), message)
        }
        zbus::Error::FDO(e) => {
            let message = e.to_string();
            match *e {
                zbus::fdo::Error::ServiceUnknown(_) => BusError { fault: Fault::ServiceUnknown, message },
                _ => BusError::from(message),
            }
        }
        other => BusError::from(other.to_string()),
    }
}

/// `StartTransientUnit` for a scope around `pid`, then waits for its start job.
pub async fn start_scope(unit: &str, pid: u32, slice: &str, description: &str) -> Result<(), BusError> {
    let conn = Connection::system().await.map_err(text)?;
    let manager = SystemdProxy::new(&conn).await.map_err(text)?;
    // Signals reach clients that subscribed (and, on recent systemd, a job's creator):
    // subscribe, and listen before the job exists, so its end cannot be missed.
    let _ = manager.subscribe().await;
    let mut removed = manager.receive_job_removed().await.map_err(text)?;
    let properties = [
        ("PIDs", Variant::from(vec![pid])),
        ("Delegate", Variant::from(true)),
        ("Slice", Variant::from(slice)),
        ("Description", Variant::from(description)),
        // Collected once it ends, even if it failed: a stale failed unit would block
        // the next start under the same name.
        ("CollectMode", Variant::from("inactive-or-failed")),
        // At host shutdown hutch.service stops the containers in their autostart
        // order: the scopes wait for it rather than being stopped beside it.
        ("Before", Variant::from(vec!["hutch.service"])),
    ];
    let job = manager.start_transient_unit(unit, "fail", &properties, &[]).await.map_err(text)?;
    while let Some(signal) = removed.next().await {
        let args = signal.args().map_err(text)?;
        if args.job == job {
            return match args.result.as_str() {
                "done" => Ok(()),
                other => Err(format!("its start job ended with result \"{other}\"").into()),
            };
        }
    }
    Err("the bus connection closed before the start job ended".into())
}

/// The `Delegate` property of a loaded service or scope.
pub async fn unit_delegates(unit: &str) -> Result<bool, BusError> {
    let conn = Connection::system().await.map_err(text)?;
    let manager = SystemdProxy::new(&conn).await.map_err(text)?;
    let path = manager.get_unit(unit).await.map_err(text)?;
    let iface =
        if unit.ends_with(".scope") { "org.freedesktop.systemd1.Scope" } else { "org.freedesktop.systemd1.Service" };
    let props = zbus::Proxy::new(&conn, "org.freedesktop.systemd1", path, iface).await.map_err(text)?;
    props.get_property::<bool>("Delegate").await.map_err(text)
}

pub async fn register_machine(name: &str, leader: u32, root_directory: &str) -> Result<(), BusError> {
    let conn = Connection::system().await.map_err(text)?;
    let machined = MachinedProxy::new(&conn).await.map_err(text)?;
    // No machine id (an empty array): machined then reads none. machined finds the
    // unit itself, from the leader's cgroup.
    machined.register_machine(name, &[], "hutch", "container", leader, root_directory).await.map(drop).map_err(text)
}

pub async fn unregister_machine(name: &str) -> Result<(), BusError> {
    let conn = Connection::system().await.map_err(text)?;
    let machined = MachinedProxy::new(&conn).await.map_err(text)?;
    machined.unregister_machine(name).await.map_err(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_services_are_known_by_name() {
        let e = classify(SERVICE_UNKNOWN, "The name is not activatable".into());
        assert_eq!(e.fault, Fault::ServiceUnknown);
        assert_eq!(classify("org.freedesktop.systemd1.UnitExists", "exists".into()).fault, Fault::Other);
        // The name decides, not words in the message.
        assert_eq!(classify("org.example.Error", "ServiceUnknown".into()).fault, Fault::Other);
    }
}
