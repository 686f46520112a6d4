//! hactld's D-Bus API (daemon side) and its proxy (the `hactl` side).
//!
//! hactld owns the well-known name [`BUS_NAME`] on the system bus (zbus
//! honours `DBUS_SYSTEM_BUS_ADDRESS`, which tests use for a private bus) and
//! serves the object [`OBJECT_PATH`] with the interface [`INTERFACE`]:
//!
//! - property `ApiVersion` (u): [`API_VERSION`];
//! - `Status() -> s`: [`ClusterStatus`] as JSON;
//! - `Quorum() -> s`: [`crate::quorum::QuorumStatus`] as JSON;
//! - signal `MembershipChanged(u ring_rep, t ring_seq, as members)` when a
//!   new ring is installed, and `QuorumChanged(b quorate, u total_votes,
//!   u expected_votes, u quorum)` when the quorum summary changes.
//!
//! docs/api.md is the reference for clients. The mutating verbs come with
//! the controller; [`check_admin`] is the caller check they will use.
//!
//! # How it fits the daemon's single-threaded main loop
//!
//! The main loop owns an [`ApiHandle`] and calls [`ApiHandle::publish`]
//! after every change: that replaces a [`Snapshot`] in a `tokio::sync::watch`
//! channel, which never blocks and holds no lock across an await. The API
//! runs as a task on the same runtime ([`ApiHandle::start`]): it connects,
//! answers calls from the latest snapshot, and emits the signals when the
//! snapshot's generation counters move (changes are coalesced, never lost:
//! a client gets a signal carrying the state after the change). If the
//! bus cannot be reached, or the name is taken, the task logs one warning
//! and retries quietly every [`RECONNECT_INTERVAL`]; the daemon runs on
//! without the API meanwhile and never waits for it.

pub mod status;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, info, warn};
use zbus::object_server::SignalEmitter;

pub use status::ClusterStatus;

use crate::quorum::QuorumStatus;

/// The well-known bus name hactld owns.
pub const BUS_NAME: &str = "org.hactl.Cluster1";
/// The object hactld serves.
pub const OBJECT_PATH: &str = "/org/hactl/Cluster1";
/// The interface (versioned by its name's digit: an incompatible change
/// gets `org.hactl.Cluster2`).
pub const INTERFACE: &str = "org.hactl.Cluster1";
/// The `ApiVersion` property: compatible additions within [`INTERFACE`]
/// (methods, signals, JSON fields) raise it.
pub const API_VERSION: u32 = 1;
/// The group whose members may call the mutating methods (with root); the
/// D-Bus policy in conf/dbus/ names the same group.
pub const ADMIN_GROUP: &str = "haclient";
/// How long connecting to the bus and owning the name may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a daemon without the bus tries again.
pub const RECONNECT_INTERVAL: Duration = Duration::from_secs(10);

/// What the API serves: the latest state the main loop published.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub status: ClusterStatus,
    pub quorum: QuorumStatus,
    /// Moves each time a new ring is published.
    pub membership_generation: u64,
    /// Moves each time the quorum summary changes.
    pub quorum_generation: u64,
}

/// The main loop's side of the API.
pub struct ApiHandle {
    tx: watch::Sender<Option<Arc<Snapshot>>>,
}

impl ApiHandle {
    /// Starts the API task on the current tokio runtime. It serves nothing
    /// until the first [`ApiHandle::publish`].
    pub fn start() -> ApiHandle {
        let (tx, rx) = watch::channel(None);
        tokio::spawn(serve_forever(rx));
        ApiHandle { tx }
    }

    /// Publishes the current state. Never blocks; wakes the API task only
    /// if something changed.
    pub fn publish(&self, status: ClusterStatus, quorum: QuorumStatus) {
        self.tx.send_if_modified(|cur| {
            let (mut membership_generation, mut quorum_generation) = (0, 0);
            if let Some(old) = cur.as_deref() {
                if old.status == status && old.quorum == quorum {
                    return false;
                }
                membership_generation = old.membership_generation
                    + u64::from(
                        old.status.ring != status.ring || old.status.members != status.members,
                    );
                quorum_generation =
                    old.quorum_generation + u64::from(old.status.quorum != status.quorum);
            }
            *cur = Some(Arc::new(Snapshot {
                status,
                quorum,
                membership_generation,
                quorum_generation,
            }));
            true
        });
    }
}

/// The object served at [`OBJECT_PATH`].
struct Cluster1 {
    rx: watch::Receiver<Option<Arc<Snapshot>>>,
}

impl Cluster1 {
    fn snapshot(&self) -> zbus::fdo::Result<Arc<Snapshot>> {
        // The borrow ends here: no lock is held while the reply is sent.
        self.rx.borrow().clone().ok_or_else(|| {
            zbus::fdo::Error::Failed("hactld is starting: no state yet, try again".to_string())
        })
    }
}

#[zbus::interface(name = "org.hactl.Cluster1")]
impl Cluster1 {
    /// The API version within this interface (see docs/api.md).
    #[zbus(property(emits_changed_signal = "const"))]
    fn api_version(&self) -> u32 {
        API_VERSION
    }

    /// This node's view of the cluster, as JSON (docs/api.md).
    fn status(&self) -> zbus::fdo::Result<String> {
        Ok(self.snapshot()?.status.render_json())
    }

    /// Quorum information, as JSON: the data of `hactl quorum`.
    fn quorum(&self) -> zbus::fdo::Result<String> {
        Ok(self.snapshot()?.quorum.render_json())
    }

    /// A new ring was installed: its id and its members' names.
    #[zbus(signal)]
    async fn membership_changed(
        emitter: &SignalEmitter<'_>,
        ring_rep: u32,
        ring_seq: u64,
        members: Vec<String>,
    ) -> zbus::Result<()>;

    /// The quorum summary changed.
    #[zbus(signal)]
    async fn quorum_changed(
        emitter: &SignalEmitter<'_>,
        quorate: bool,
        total_votes: u32,
        expected_votes: u32,
        quorum: u32,
    ) -> zbus::Result<()>;
}

/// The client side, for `hactl` (and tests).
#[zbus::proxy(
    interface = "org.hactl.Cluster1",
    default_service = "org.hactl.Cluster1",
    default_path = "/org/hactl/Cluster1"
)]
pub trait Cluster1Client {
    #[zbus(property)]
    fn api_version(&self) -> zbus::Result<u32>;
    fn status(&self) -> zbus::Result<String>;
    fn quorum(&self) -> zbus::Result<String>;
    #[zbus(signal)]
    fn membership_changed(
        &self,
        ring_rep: u32,
        ring_seq: u64,
        members: Vec<String>,
    ) -> zbus::Result<()>;
    #[zbus(signal)]
    fn quorum_changed(
        &self,
        quorate: bool,
        total_votes: u32,
        expected_votes: u32,
        quorum: u32,
    ) -> zbus::Result<()>;
}

/// Connects, serves, and reconnects when the bus goes away; ends when the
/// main loop drops its [`ApiHandle`].
async fn serve_forever(mut rx: watch::Receiver<Option<Arc<Snapshot>>>) {
    let mut warned = false;
    loop {
        match tokio::time::timeout(CONNECT_TIMEOUT, connect(rx.clone())).await {
            Ok(Ok(conn)) => {
                info!(
                    "D-Bus API: serving {BUS_NAME} at {OBJECT_PATH} on the system bus{}",
                    if warned { " (the bus is back)" } else { "" }
                );
                if !serve(&conn, &mut rx).await {
                    return;
                }
                warn!(
                    "D-Bus API: lost the connection to the system bus; the daemon runs on, reconnecting every {} s",
                    RECONNECT_INTERVAL.as_secs()
                );
                warned = true;
            }
            failure => {
                let why = match failure {
                    Ok(Err(zbus::Error::NameTaken)) => format!(
                        "another process owns {BUS_NAME} (is another hactld running on this host? busctl status {BUS_NAME})"
                    ),
                    Ok(Err(e)) => format!("{}: {e}", system_bus_address()),
                    _ => format!(
                        "{}: no answer within {} s",
                        system_bus_address(),
                        CONNECT_TIMEOUT.as_secs()
                    ),
                };
                if warned {
                    debug!(error = %why, "D-Bus API: still no system bus");
                } else {
                    warn!(
                        "D-Bus API: cannot serve {BUS_NAME} on the system bus ({why}); hactld runs on without its API (hactl status and hactl quorum will not reach it) and tries again every {} s; check that dbus is running and that conf/dbus/org.hactl.Cluster1.conf is installed in /usr/share/dbus-1/system.d/",
                        RECONNECT_INTERVAL.as_secs()
                    );
                    warned = true;
                }
            }
        }
        // Wait out the interval, but stop at once if the daemon stops.
        tokio::select! {
            _ = tokio::time::sleep(RECONNECT_INTERVAL) => {}
            _ = sender_gone(&mut rx) => return,
        }
    }
}

/// The system bus's address, for messages (zbus finds it the same way).
pub fn system_bus_address() -> String {
    std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
        .unwrap_or_else(|_| "unix:path=/var/run/dbus/system_bus_socket".to_string())
}

async fn connect(rx: watch::Receiver<Option<Arc<Snapshot>>>) -> zbus::Result<zbus::Connection> {
    zbus::connection::Builder::system()
        .serve_at(OBJECT_PATH, Cluster1 { rx })
        .name(BUS_NAME)
        // One hactld per host: never take the name from a running one, and
        // never hand it over.
        .replace_existing_names(false)
        .allow_name_replacements(false)
        .build()
        .await
}

/// Emits the signals as the snapshot moves. Returns false when the daemon
/// stops (the handle is gone), true when the connection is lost.
async fn serve(conn: &zbus::Connection, rx: &mut watch::Receiver<Option<Arc<Snapshot>>>) -> bool {
    let emitter = match SignalEmitter::new(conn, OBJECT_PATH) {
        Ok(e) => e,
        Err(e) => {
            warn!(error = %e, "D-Bus API: cannot emit signals");
            return true;
        }
    };
    let mut last: Option<Arc<Snapshot>> = rx.borrow_and_update().clone();
    loop {
        tokio::select! {
            _ = conn.closed() => return true,
            changed = rx.changed() => {
                if changed.is_err() {
                    return false;
                }
                let Some(now) = rx.borrow_and_update().clone() else { continue };
                let (m_gen, q_gen) = last
                    .as_ref()
                    .map_or((None, None), |l| (Some(l.membership_generation), Some(l.quorum_generation)));
                if m_gen != Some(now.membership_generation)
                    && let Some(ring) = now.status.ring
                {
                    let members = now.status.members.iter().map(|m| m.name.clone()).collect();
                    if let Err(e) = Cluster1::membership_changed(&emitter, ring.rep, ring.seq, members).await {
                        debug!(error = %e, "D-Bus API: MembershipChanged not sent");
                    }
                }
                if q_gen != Some(now.quorum_generation) {
                    let q = &now.status.quorum;
                    if let Err(e) = Cluster1::quorum_changed(&emitter, q.quorate, q.total_votes, q.expected_votes, q.quorum).await {
                        debug!(error = %e, "D-Bus API: QuorumChanged not sent");
                    }
                }
                last = Some(now);
            }
        }
    }
}

/// Resolves once the sender is gone (the daemon stopping).
async fn sender_gone<T>(rx: &mut watch::Receiver<T>) {
    while rx.changed().await.is_ok() {}
}

// ---------------------------------------------------------------- callers

/// Whether a caller with user id `uid` and groups `groups` may change the
/// cluster: root, or a member of the admin group (`admin_gid`, None when
/// the group does not exist on this host).
pub fn may_administer(uid: u32, groups: &[u32], admin_gid: Option<u32>) -> bool {
    uid == 0 || admin_gid.is_some_and(|g| groups.contains(&g))
}

/// For the mutating methods to come: refuses a caller who is neither root
/// nor in [`ADMIN_GROUP`], asking the bus for the caller's credentials (the
/// D-Bus policy refuses them first; this is the second line). Fails closed:
/// a caller whose credentials the bus cannot tell is refused.
pub async fn check_admin(
    conn: &zbus::Connection,
    header: &zbus::message::Header<'_>,
) -> zbus::fdo::Result<()> {
    let sender = header
        .sender()
        .ok_or_else(|| zbus::fdo::Error::AccessDenied("a call without a sender".to_string()))?;
    let dbus = zbus::fdo::DBusProxy::new(conn).await?;
    let creds = dbus
        .get_connection_credentials(sender.clone().into())
        .await?;
    let uid = creds.unix_user_id().ok_or_else(|| {
        zbus::fdo::Error::AccessDenied(format!("the bus does not tell {sender}'s user id"))
    })?;
    let groups = creds.unix_group_ids().cloned().unwrap_or_default();
    let admin_gid = nix::unistd::Group::from_name(ADMIN_GROUP)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw());
    if may_administer(uid, &groups, admin_gid) {
        Ok(())
    } else {
        Err(zbus::fdo::Error::AccessDenied(format!(
            "only root and members of the group {ADMIN_GROUP} may change the cluster (caller uid {uid}); add the user to {ADMIN_GROUP} or use sudo"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_the_admin_group_may_administer_nobody_else() {
        assert!(may_administer(0, &[], None));
        assert!(may_administer(1000, &[100, 977], Some(977)));
        assert!(!may_administer(1000, &[100], Some(977)));
        assert!(!may_administer(65534, &[65534], None));
        // The primary group counts only if the bus lists it among the groups.
        assert!(!may_administer(1000, &[], Some(1000)));
    }
}
