//! hactld's D-Bus API (daemon side) and its proxy (the `hactl` side).
//!
//! hactld owns the well-known name [`BUS_NAME`] on the system bus (zbus
//! honours `DBUS_SYSTEM_BUS_ADDRESS`, which tests use for a private bus) and
//! serves the object [`OBJECT_PATH`] with the interface [`INTERFACE`]:
//!
//! - property `ApiVersion` (u): [`API_VERSION`];
//! - `Status() -> s`: [`ClusterStatus`] as JSON;
//! - `Quorum() -> s`: [`crate::quorum::QuorumStatus`] as JSON;
//! - `ConfigShow() -> s`: the running configuration without secrets;
//! - the mutating methods, for root and the group [`ADMIN_GROUP`] only
//!   ([`check_admin`], after the bus's policy): `Standby(s node)`,
//!   `Online(s node)`, `Migrate(s resource, s node, t lifetime_seconds)`,
//!   `Unmigrate(s resource)`, `Cleanup(s resource, s node)`,
//!   `ResourceStop(s resource)`, `ResourceStart(s resource)`,
//!   `ConfigApply(s text, s file) -> s`, `Fence(s node) -> s` (answers
//!   once the fencing is over, so it may take up to [`FENCE_TIMEOUT`]);
//! - signal `MembershipChanged(u ring_rep, t ring_seq, as members)` when a
//!   new ring is installed, and `QuorumChanged(b quorate, u total_votes,
//!   u expected_votes, u quorum)` when the quorum summary changes.
//!
//! docs/api.md is the reference for clients.
//!
//! The mutating methods check the caller, resolve names against the latest
//! snapshot ([`resolve`]: an unknown node or resource is `InvalidArgs`
//! listing the known ones), and hand a [`Request`] to the main loop
//! through a bounded channel ([`ApiHandle::start_with_requests`]); the
//! method returns when the main loop answers on the request's oneshot
//! channel, or fails after [`REQUEST_TIMEOUT`].
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

pub mod resolve;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
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
    /// The running configuration in canonical form without secrets
    /// ([`crate::config::canonical_redacted`]), what `ConfigShow()`
    /// returns; None until the main loop gives it
    /// ([`ApiHandle::publish_config`]).
    pub config_text: Option<Arc<str>>,
}

/// A change a D-Bus caller asked for, handed to the main loop.
#[derive(Debug)]
pub enum Request {
    /// Submit a command to the replicated state. Reply Ok once submitted,
    /// Err(message for people) if refused (e.g. no quorum, unknown
    /// node/resource).
    Submit {
        command: crate::state::Command,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// `hactl config apply`: the new configuration's text and the file name
    /// for messages; the main loop runs [`crate::state::prepare_config`].
    /// Reply Ok(summary line) or Err(all diagnostics).
    ApplyConfig {
        text: String,
        file: String,
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// `hactl fence NODE`: fence `node` with its fence levels now. The main
    /// loop refuses (no quorum, this node, fencing off, no fence levels) or
    /// starts the fencing and hands `reply` to it: Ok(summary line) once
    /// the devices confirmed it, Err(what failed) otherwise.
    Fence {
        node: crate::totem::NodeId,
        reply: oneshot::Sender<Result<String, String>>,
    },
}

/// How many requests may wait for the main loop; a call beyond that fails
/// with "hactld is busy, try again".
pub const REQUEST_QUEUE: usize = 64;
/// How long a mutating method waits for the main loop's reply.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `Fence` waits for the fencing's outcome: the controller's own
/// bound on a fencing ([`crate::controller::FENCE_RESULT_TIMEOUT`]); each
/// device is bounded by its `timeout` well before that.
pub const FENCE_TIMEOUT: Duration = crate::controller::FENCE_RESULT_TIMEOUT;

/// The main loop's side of the API.
pub struct ApiHandle {
    tx: watch::Sender<Option<Arc<Snapshot>>>,
    /// The last [`ApiHandle::publish_config`], kept for snapshots to come.
    config_text: std::sync::Mutex<Option<Arc<str>>>,
}

impl ApiHandle {
    /// Starts the API task on the current tokio runtime. It serves nothing
    /// until the first [`ApiHandle::publish`]. Mutating methods fail with
    /// "this hactld does not take changes" (nobody receives requests); see
    /// [`ApiHandle::start_with_requests`].
    pub fn start() -> ApiHandle {
        ApiHandle::start_with_requests().0
    }

    /// Starts the API task on the current tokio runtime, with the receiver
    /// of the changes callers ask for: the main loop takes each
    /// [`Request`], acts, and answers on its `reply` within
    /// [`REQUEST_TIMEOUT`].
    pub fn start_with_requests() -> (ApiHandle, mpsc::Receiver<Request>) {
        ApiHandle::spawn(None)
    }

    /// [`ApiHandle::start_with_requests`] on the bus at `address` instead
    /// of the system bus (for tests, which run several buses in one
    /// process).
    pub fn start_with_requests_at(address: &str) -> (ApiHandle, mpsc::Receiver<Request>) {
        ApiHandle::spawn(Some(address.to_string()))
    }

    fn spawn(address: Option<String>) -> (ApiHandle, mpsc::Receiver<Request>) {
        let (tx, rx) = watch::channel(None);
        let (req_tx, req_rx) = mpsc::channel(REQUEST_QUEUE);
        tokio::spawn(serve_forever(rx, req_tx, address));
        (
            ApiHandle {
                tx,
                config_text: std::sync::Mutex::new(None),
            },
            req_rx,
        )
    }

    fn config_text(&self) -> Option<Arc<str>> {
        self.config_text
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Publishes the running configuration's canonical text without
    /// secrets ([`crate::config::canonical_redacted`]), for `ConfigShow()`:
    /// at start and after every configuration change.
    pub fn publish_config(&self, redacted_canonical: String) {
        let text: Arc<str> = Arc::from(redacted_canonical);
        *self
            .config_text
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(text.clone());
        self.tx.send_if_modified(|cur| match cur {
            Some(old) if old.config_text.as_deref() != Some(&*text) => {
                let mut new = Snapshot::clone(old);
                new.config_text = Some(text);
                *cur = Some(Arc::new(new));
                true
            }
            _ => false,
        });
    }

    /// Publishes the current state. Never blocks; wakes the API task only
    /// if something changed.
    pub fn publish(&self, status: ClusterStatus, quorum: QuorumStatus) {
        let config_text = self.config_text();
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
                config_text,
            }));
            true
        });
    }
}

/// The object served at [`OBJECT_PATH`].
struct Cluster1 {
    rx: watch::Receiver<Option<Arc<Snapshot>>>,
    requests: mpsc::Sender<Request>,
}

impl Cluster1 {
    fn snapshot(&self) -> zbus::fdo::Result<Arc<Snapshot>> {
        // The borrow ends here: no lock is held while the reply is sent.
        self.rx.borrow().clone().ok_or_else(|| {
            zbus::fdo::Error::Failed("hactld is starting: no state yet, try again".to_string())
        })
    }

    /// Hands `request` to the main loop and waits for its answer.
    async fn ask<T>(&self, request: Request, answer: oneshot::Receiver<T>) -> zbus::fdo::Result<T> {
        self.ask_within(request, answer, REQUEST_TIMEOUT).await
    }

    /// [`Cluster1::ask`], waiting up to `timeout`.
    async fn ask_within<T>(
        &self,
        request: Request,
        answer: oneshot::Receiver<T>,
        timeout: Duration,
    ) -> zbus::fdo::Result<T> {
        use mpsc::error::TrySendError;
        match self.requests.try_send(request) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(zbus::fdo::Error::Failed(
                    "hactld is busy, try again".to_string(),
                ));
            }
            Err(TrySendError::Closed(_)) => {
                return Err(zbus::fdo::Error::Failed(
                    "this hactld does not take changes (its main loop does not read requests); \
                     is hactld the same version as hactl? (hactld --version)"
                        .to_string(),
                ));
            }
        }
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(zbus::fdo::Error::Failed(
                "hactld dropped the request without answering; check journalctl -u hactld"
                    .to_string(),
            )),
            Err(_) => Err(zbus::fdo::Error::Failed(format!(
                "hactld did not answer in {} s; check systemctl status hactld and journalctl -u hactld",
                timeout.as_secs()
            ))),
        }
    }

    /// Submits `command` to the replicated state through the main loop.
    async fn submit(&self, command: crate::state::Command) -> zbus::fdo::Result<()> {
        let (reply, answer) = oneshot::channel();
        self.ask(Request::Submit { command, reply }, answer)
            .await?
            .map_err(zbus::fdo::Error::Failed)
    }

    async fn set_standby(
        &self,
        conn: &zbus::Connection,
        header: &zbus::message::Header<'_>,
        node: &str,
        standby: bool,
    ) -> zbus::fdo::Result<()> {
        check_admin(conn, header).await?;
        let (node, _) = resolve::node(&self.snapshot()?.status, node)?;
        self.submit(crate::state::Command::SetStandby { node, standby })
            .await
    }

    async fn set_target_role(
        &self,
        conn: &zbus::Connection,
        header: &zbus::message::Header<'_>,
        resource: &str,
        role: crate::config::Role,
    ) -> zbus::fdo::Result<()> {
        check_admin(conn, header).await?;
        let resource = resolve::role_target(&self.snapshot()?.status, resource)?;
        self.submit(crate::state::Command::SetTargetRole {
            resource,
            role: Some(role),
        })
        .await
    }
}

/// Milliseconds since the Unix epoch, now.
fn wall_now() -> crate::state::WallMs {
    crate::state::WallMs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    )
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

    /// The running configuration in canonical form, without secrets.
    fn config_show(&self) -> zbus::fdo::Result<String> {
        self.snapshot()?
            .config_text
            .as_deref()
            .map(str::to_string)
            .ok_or_else(|| {
                zbus::fdo::Error::Failed(
                    "hactld has not published its running configuration yet; try again in a moment"
                        .to_string(),
                )
            })
    }

    /// Puts a node ("" = this node) in standby: its resources move away.
    async fn standby(
        &self,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(header)] header: zbus::message::Header<'_>,
        node: &str,
    ) -> zbus::fdo::Result<()> {
        self.set_standby(conn, &header, node, true).await
    }

    /// Brings a node ("" = this node) out of standby.
    async fn online(
        &self,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(header)] header: zbus::message::Header<'_>,
        node: &str,
    ) -> zbus::fdo::Result<()> {
        self.set_standby(conn, &header, node, false).await
    }

    /// Prefers `node` for `resource`, or ("") keeps it off the node it
    /// runs on now; for `lifetime_seconds` (0: until `Unmigrate`).
    async fn migrate(
        &self,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(header)] header: zbus::message::Header<'_>,
        resource: &str,
        node: &str,
        lifetime_seconds: u64,
    ) -> zbus::fdo::Result<()> {
        use crate::state::MigrateTarget;
        check_admin(conn, &header).await?;
        let snap = self.snapshot()?;
        let status = &snap.status;
        let resource = resolve::placement_target(status, resource)?;
        let target = if node.is_empty() {
            MigrateTarget::AwayFrom(resolve::away_from(status, &resource)?)
        } else {
            MigrateTarget::To(resolve::node(status, node)?.0)
        };
        let expires = (lifetime_seconds > 0).then(|| {
            crate::state::WallMs(
                wall_now()
                    .0
                    .saturating_add(lifetime_seconds.saturating_mul(1000)),
            )
        });
        self.submit(crate::state::Command::Migrate {
            resource,
            target,
            expires,
        })
        .await
    }

    /// Forgets the migrate preference of `resource`.
    async fn unmigrate(
        &self,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(header)] header: zbus::message::Header<'_>,
        resource: &str,
    ) -> zbus::fdo::Result<()> {
        check_admin(conn, &header).await?;
        let resource = resolve::placement_target(&self.snapshot()?.status, resource)?;
        self.submit(crate::state::Command::Unmigrate { resource })
            .await
    }

    /// Forgets fail counts and operation history of `resource` ("" = every
    /// resource) on `node` ("" = every node).
    async fn cleanup(
        &self,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(header)] header: zbus::message::Header<'_>,
        resource: &str,
        node: &str,
    ) -> zbus::fdo::Result<()> {
        check_admin(conn, &header).await?;
        let snap = self.snapshot()?;
        // A group or clone is cleaned up primitive by primitive: fail
        // counts and operation history are kept per primitive.
        let resources = if resource.is_empty() {
            vec![None]
        } else {
            resolve::primitives(&snap.status, resource)?
                .into_iter()
                .map(Some)
                .collect()
        };
        let node = if node.is_empty() {
            None
        } else {
            Some(resolve::node(&snap.status, node)?.0)
        };
        for resource in resources {
            self.submit(crate::state::Command::Cleanup { resource, node })
                .await?;
        }
        Ok(())
    }

    /// Stops `resource` (primitive, group or clone) wherever it runs and
    /// keeps it stopped: its target role becomes Stopped (crmsh's
    /// `resource stop`, Pacemaker's `target-role=Stopped`), set where
    /// [`resolve::role_target`] says.
    async fn resource_stop(
        &self,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(header)] header: zbus::message::Header<'_>,
        resource: &str,
    ) -> zbus::fdo::Result<()> {
        self.set_target_role(conn, &header, resource, crate::config::Role::Stopped)
            .await
    }

    /// Lets `resource` run again: its target role becomes Started (crmsh's
    /// `resource start`), which also overrides a configuration's
    /// `meta.target_role = "stopped"` applied before it (the latest change
    /// wins: [`crate::state::ClusterState::target_role_overrides`]).
    async fn resource_start(
        &self,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(header)] header: zbus::message::Header<'_>,
        resource: &str,
    ) -> zbus::fdo::Result<()> {
        self.set_target_role(conn, &header, resource, crate::config::Role::Started)
            .await
    }

    /// Validates and distributes a new configuration (`text`, named `file`
    /// in messages); returns a summary line.
    async fn config_apply(
        &self,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(header)] header: zbus::message::Header<'_>,
        text: String,
        file: String,
    ) -> zbus::fdo::Result<String> {
        check_admin(conn, &header).await?;
        let (reply, answer) = oneshot::channel();
        self.ask(Request::ApplyConfig { text, file, reply }, answer)
            .await?
            .map_err(zbus::fdo::Error::Failed)
    }

    /// Fences `node` now with its fence levels (Pacemaker's `stonith_admin
    /// --fence`); returns a summary line once the devices confirmed it, an
    /// error naming what failed otherwise. Refused without quorum, for this
    /// node itself, with fencing off, or for a node without fence levels.
    async fn fence(
        &self,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(header)] header: zbus::message::Header<'_>,
        node: &str,
    ) -> zbus::fdo::Result<String> {
        check_admin(conn, &header).await?;
        if node.is_empty() {
            return Err(zbus::fdo::Error::InvalidArgs(
                "name the node to fence (hactld does not fence the node it runs on)".to_string(),
            ));
        }
        let (node, _) = resolve::node(&self.snapshot()?.status, node)?;
        let (reply, answer) = oneshot::channel();
        // The main loop answers at once when it refuses; otherwise the
        // fencing task answers when the devices are done.
        self.ask_within(Request::Fence { node, reply }, answer, FENCE_TIMEOUT)
            .await?
            .map_err(zbus::fdo::Error::Failed)
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
    fn config_show(&self) -> zbus::Result<String>;
    fn standby(&self, node: &str) -> zbus::Result<()>;
    fn online(&self, node: &str) -> zbus::Result<()>;
    fn migrate(&self, resource: &str, node: &str, lifetime_seconds: u64) -> zbus::Result<()>;
    fn unmigrate(&self, resource: &str) -> zbus::Result<()>;
    fn cleanup(&self, resource: &str, node: &str) -> zbus::Result<()>;
    fn resource_stop(&self, resource: &str) -> zbus::Result<()>;
    fn resource_start(&self, resource: &str) -> zbus::Result<()>;
    fn config_apply(&self, text: &str, file: &str) -> zbus::Result<String>;
    fn fence(&self, node: &str) -> zbus::Result<String>;
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
async fn serve_forever(
    mut rx: watch::Receiver<Option<Arc<Snapshot>>>,
    requests: mpsc::Sender<Request>,
    address: Option<String>,
) {
    let mut warned = false;
    loop {
        let object = Cluster1 {
            rx: rx.clone(),
            requests: requests.clone(),
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, connect(object, address.as_deref())).await {
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

async fn connect(object: Cluster1, address: Option<&str>) -> zbus::Result<zbus::Connection> {
    let builder = match address {
        Some(a) => zbus::connection::Builder::address(a),
        None => zbus::connection::Builder::system(),
    };
    builder
        .serve_at(OBJECT_PATH, object)
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
