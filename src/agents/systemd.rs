//! The `systemd:UNIT` resource agent: a systemd unit, driven through
//! systemd's own D-Bus API (`org.freedesktop.systemd1`) on the system bus.
//!
//! - `start` / `stop`: `Manager.StartUnit` / `StopUnit` in mode `replace`.
//!   The agent listens for `JobRemoved` before it makes the call (so the end
//!   of a quick job cannot be missed), waits for its job to end, then reads
//!   the unit's `ActiveState`: a start succeeded only if the unit is active.
//!   For services whose readiness systemd cannot know (`Type=simple`, `exec`,
//!   `idle`) the start also waits [`START_SETTLE_MS`] and checks again, so
//!   that a program that dies at once (`ExecStart=/bin/false`) is a failed
//!   start, not a start that succeeded and a failure a moment later.
//!   Before a start the agent resets the unit's failed state
//!   (`Unit.ResetFailed`): the cluster, not systemd's start rate limit
//!   (`StartLimitBurst=`), decides when to give up on a unit, and a failure
//!   reason must be this start's, not the last run's. A stop leaves a unit
//!   that failed on the way down `inactive` (reset), since it is stopped.
//! - `monitor`: `ActiveState` / `SubState`; a unit between two states
//!   (`activating`, `deactivating`) is waited for within the operation's
//!   timeout.
//! - [`ResourceAgent::watch`]: a match on `PropertiesChanged` of the unit's
//!   object. A unit that hactl had running and that fails or stops by
//!   itself, or is stopped outside hactl, is reported at once as a
//!   [`Notice`]. Transitions that hactl's own operations cause are not
//!   reported: while one of them is in flight the watch holds what it saw,
//!   and afterwards keeps only what came after the operation's last look at
//!   the unit (messages on one D-Bus connection are ordered, and zbus numbers
//!   them as they arrive).
//! - [`SystemdAgent::boot_enabled_warning`]: a unit enabled to start at boot
//!   (`UnitFileState`) starts outside the cluster's control.
//!
//! The bus is the system bus (zbus honours `DBUS_SYSTEM_BUS_ADDRESS`), or
//! the address given to [`SystemdAgent::with_address`] (the tests talk to a
//! container's systemd from the host that way). The connection is made on
//! first use, on the tokio runtime of that use, and made again if it closes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use zbus::message::Sequence;
use zbus::{Connection, MatchRule, Message, MessageStream, OwnedObjectPath, OwnedVariant, Variant};

use super::{
    AgentAction, AgentFuture, AgentInfo, Notice, NoticeSender, OcfCode, OpOutcome, OpRequest,
    ResourceAgent, WatchFuture,
};

const SYSTEMD: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const UNIT: &str = "org.freedesktop.systemd1.Unit";
const SERVICE: &str = "org.freedesktop.systemd1.Service";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";

/// After the start job of a service whose readiness systemd cannot know
/// (`Type=simple`, `exec`, `idle`: the job ends once the program is
/// forked or executed), how long the start watches the unit before it calls
/// the start a success. Long enough for a program that refuses to run at
/// all to have exited on a busy machine; a failure after it is the watch's
/// (or the next monitor's) to report.
pub const START_SETTLE_MS: u64 = 500;

/// How often `monitor` looks again at a unit that is between two states.
const MONITOR_POLL_MS: u64 = 100;

/// Share of an operation's timeout spent waiting for systemd (a job, a
/// transition); the rest is left to read the unit's state and answer with a
/// reason before the executor's own deadline.
const WAIT_SHARE_PERCENT: u32 = 90;

/// Queue length of the watch's signal match (zbus's default is 64; a full
/// queue stalls the whole connection). The watch drains it continuously;
/// this covers the moments it spends asking systemd for details.
const WATCH_QUEUE_LEN: usize = 256;

/// Queue length of an operation's `JobRemoved` match: every job of the
/// system ends there, and the queue is not read while the operation waits
/// for systemd's answer to `StartUnit` (a boot ends hundreds of jobs).
const JOB_QUEUE_LEN: usize = 1024;

/// Limits of the watch's reconnection backoff when the bus goes away.
const WATCH_RECONNECT_MS_MIN: u64 = 200;
const WATCH_RECONNECT_MS_MAX: u64 = 5_000;

/// The full unit name for a configured one: `nginx` means `nginx.service`,
/// as for `systemctl`.
pub fn unit_name(configured: &str) -> String {
    const SUFFIXES: [&str; 11] = [
        ".service",
        ".socket",
        ".target",
        ".device",
        ".mount",
        ".automount",
        ".swap",
        ".timer",
        ".path",
        ".slice",
        ".scope",
    ];
    if SUFFIXES.iter().any(|s| configured.ends_with(s)) {
        configured.to_string()
    } else {
        format!("{configured}.service")
    }
}

/// What hactl last knew the unit to be (from its own operations), so that
/// the watch reports only a change nobody in hactl asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Nothing known yet (no operation, or one that did not finish).
    Unknown,
    Running,
    Stopped,
    /// Failed, and already reported (by an operation or by the watch).
    Failed,
}

#[derive(Debug)]
struct Tracked {
    expect: Expect,
    /// Position (on the current connection) of the last message an
    /// operation read the unit's state from: signals received before it
    /// are accounted for.
    accounted: Sequence,
}

struct Shared {
    /// The configured name (`nginx`), for [`ResourceAgent::name`].
    configured: String,
    /// The full unit name (`nginx.service`).
    unit: String,
    /// `None`: the system bus.
    address: Option<String>,
    conn: tokio::sync::Mutex<Option<Connection>>,
    /// Start and stop operations in flight.
    ops_in_flight: tokio::sync::watch::Sender<u32>,
    tracked: Mutex<Tracked>,
}

/// The `systemd:UNIT` agent for one unit. See the module documentation.
pub struct SystemdAgent {
    shared: Arc<Shared>,
    /// The watch task's lifeline: dropped (with the agent, or replaced by
    /// a new watch), it ends the task.
    watching: Mutex<Option<tokio::sync::watch::Sender<()>>>,
}

impl SystemdAgent {
    /// An agent for `unit` (`nginx` or `nginx.service`) on the system bus.
    pub fn new(unit: &str) -> SystemdAgent {
        SystemdAgent::build(unit, None)
    }

    /// An agent for `unit` on the bus at `address`
    /// (`unix:path=/run/dbus/system_bus_socket`).
    pub fn with_address(unit: &str, address: &str) -> SystemdAgent {
        SystemdAgent::build(unit, Some(address.to_string()))
    }

    fn build(unit: &str, address: Option<String>) -> SystemdAgent {
        SystemdAgent {
            shared: Arc::new(Shared {
                configured: unit.to_string(),
                unit: unit_name(unit),
                address,
                conn: tokio::sync::Mutex::new(None),
                ops_in_flight: tokio::sync::watch::Sender::new(0),
                tracked: Mutex::new(Tracked {
                    expect: Expect::Unknown,
                    accounted: Sequence::default(),
                }),
            }),
            watching: Mutex::new(None),
        }
    }

    /// The full unit name (`nginx.service`).
    pub fn unit(&self) -> &str {
        &self.shared.unit
    }

    /// A warning for people when the unit is enabled to start at boot: then
    /// systemd starts it on every boot outside the cluster's control, and it
    /// may run on two nodes at once. `Ok(None)`: not enabled (or no such
    /// unit). `Err`: the question could not be asked (a message for people).
    pub async fn boot_enabled_warning(&self) -> Result<Option<String>, String> {
        let conn = self.shared.connection().await?;
        let unit = &self.shared.unit;
        let reply = conn
            .call_method(
                Some(SYSTEMD),
                MANAGER_PATH,
                Some(MANAGER),
                "GetUnitFileState",
                &(unit.as_str(),),
            )
            .await;
        let state: String = match reply {
            Ok(m) => m.body().deserialize().map_err(|e| {
                format!("unit {unit}: cannot read systemd's answer to GetUnitFileState: {e}")
            })?,
            // No unit file: nothing starts it at boot.
            Err(e)
                if matches!(
                    error_name(&e).as_deref(),
                    Some(
                        "org.freedesktop.systemd1.NoSuchUnit"
                            | "org.freedesktop.DBus.Error.FileNotFound"
                    )
                ) =>
            {
                return Ok(None);
            }
            Err(e) => {
                return Err(format!(
                    "unit {unit}: cannot ask systemd whether it is enabled (GetUnitFileState): {e}"
                ));
            }
        };
        Ok(boot_warning_for(unit, &state))
    }
}

/// The D-Bus name of an error reply (zbus reports the standard
/// `org.freedesktop.DBus.Error.*` ones apart from the others).
fn error_name(e: &zbus::Error) -> Option<String> {
    use zbus::DBusError;
    match e {
        zbus::Error::MethodError(name, _, _) => Some(name.as_str().to_string()),
        zbus::Error::FDO(e) => Some(e.name().as_str().to_string()),
        _ => None,
    }
}

/// The warning for a unit file state, if it starts the unit at boot.
fn boot_warning_for(unit: &str, state: &str) -> Option<String> {
    match state {
        "enabled" | "enabled-runtime" => Some(format!(
            "unit {unit} is enabled to start at boot (UnitFileState={state}): systemd starts it \
             on every boot outside the cluster's control, so it may run on two nodes at once; \
             run `systemctl disable {unit}` on this node and let hactl start it"
        )),
        _ => None,
    }
}

impl ResourceAgent for SystemdAgent {
    fn name(&self) -> String {
        format!("systemd:{}", self.shared.configured)
    }

    fn execute(&self, req: OpRequest) -> AgentFuture<'_> {
        let shared = self.shared.clone();
        Box::pin(async move {
            let unit = shared.unit.clone();
            let action = req.action;
            let timeout = req.timeout;
            let wait = timeout * WAIT_SHARE_PERCENT / 100;
            let work = async {
                match action {
                    AgentAction::Start => shared.start(wait).await,
                    AgentAction::Stop => shared.stop(wait).await,
                    AgentAction::Monitor => shared.monitor(wait).await,
                    AgentAction::ValidateAll => shared.validate().await,
                    AgentAction::MetaData => OpOutcome {
                        output: meta_data(&shared.configured),
                        ..OpOutcome::ok()
                    },
                    AgentAction::Promote | AgentAction::Demote => OpOutcome::fail(
                        OcfCode::ErrUnimplemented,
                        format!(
                            "systemd:{}: systemd units have no promoted role ({action} is not supported)",
                            shared.configured
                        ),
                    ),
                }
            };
            match tokio::time::timeout(timeout, work).await {
                Ok(outcome) => outcome,
                Err(_) => OpOutcome::fail(
                    OcfCode::ErrGeneric,
                    format!(
                        "{action} of unit {unit} did not finish within {} ms (check `systemctl status {unit}` and `journalctl -u {unit}`)",
                        timeout.as_millis()
                    ),
                ),
            }
        })
    }

    fn watch(&self, resource: &str, notices: NoticeSender) -> WatchFuture<'_> {
        let shared = self.shared.clone();
        let resource = resource.to_string();
        Box::pin(async move {
            let conn = shared.connection().await?;
            let (path, stream) = shared.watch_stream(&conn).await?;
            let (lifeline, alive) = tokio::sync::watch::channel(());
            tokio::spawn(watch_task(shared, resource, notices, alive, path, stream));
            // A second watch replaces the first (whose task ends).
            *self.watching.lock().unwrap_or_else(|e| e.into_inner()) = Some(lifeline);
            Ok(true)
        })
    }
}

/// Counts an operation as in flight until dropped; if it is dropped before
/// it [`finish`](OpGuard::finish)es (a timeout), hactl no longer knows what
/// to expect of the unit.
struct OpGuard<'a> {
    shared: &'a Shared,
    finished: bool,
}

impl<'a> OpGuard<'a> {
    fn new(shared: &'a Shared) -> OpGuard<'a> {
        shared.ops_in_flight.send_modify(|n| *n += 1);
        OpGuard {
            shared,
            finished: false,
        }
    }

    /// Records what the operation leaves the unit as, up to `seen`.
    fn finish(mut self, expect: Expect, seen: Sequence) {
        self.shared.set_tracked(expect, seen);
        self.finished = true;
    }
}

impl Drop for OpGuard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let mut t = self
                .shared
                .tracked
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            t.expect = Expect::Unknown;
        }
        self.shared.ops_in_flight.send_modify(|n| {
            assert!(*n > 0, "systemd agent: operation count underflow");
            *n -= 1;
        });
    }
}

/// A unit's properties, as `GetAll` returns them, and where its answer
/// arrived on the connection.
struct Props {
    map: HashMap<String, OwnedVariant>,
    seen: Sequence,
}

impl Props {
    fn str(&self, key: &str) -> String {
        match self.map.get(key).map(|v| &**v) {
            Some(Variant::Str(s)) => s.to_string(),
            Some(Variant::ObjectPath(p)) => p.as_str().to_string(),
            _ => String::new(),
        }
    }

    fn int(&self, key: &str) -> Option<i64> {
        match self.map.get(key).map(|v| &**v) {
            Some(Variant::I32(n)) => Some(i64::from(*n)),
            Some(Variant::U32(n)) => Some(i64::from(*n)),
            Some(Variant::I64(n)) => Some(*n),
            Some(Variant::U64(n)) => i64::try_from(*n).ok(),
            _ => None,
        }
    }

    fn bool(&self, key: &str) -> Option<bool> {
        match self.map.get(key).map(|v| &**v) {
            Some(Variant::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    fn active(&self) -> String {
        self.str("ActiveState")
    }

    fn sub(&self) -> String {
        self.str("SubState")
    }
}

impl Shared {
    fn set_tracked(&self, expect: Expect, seen: Sequence) {
        let mut t = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        t.expect = expect;
        if seen > t.accounted {
            t.accounted = seen;
        }
    }

    fn bus_name(&self) -> String {
        match &self.address {
            Some(a) => format!("the D-Bus at {a}"),
            None => "the system D-Bus".to_string(),
        }
    }

    /// The connection, made (and subscribed to systemd's signals) if there
    /// is none or the last one closed.
    async fn connection(&self) -> Result<Connection, String> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        *slot = None;
        let built = match &self.address {
            Some(a) => zbus::connection::Builder::address(a.as_str()).build().await,
            None => Connection::system().await,
        };
        let conn = built.map_err(|e| {
            format!(
                "unit {}: cannot connect to {}: {e} (is dbus running? check `systemctl status dbus`)",
                self.unit,
                self.bus_name()
            )
        })?;
        // systemd sends unit and job signals only while some client is
        // subscribed; the subscription ends with the connection.
        conn.call_method(Some(SYSTEMD), MANAGER_PATH, Some(MANAGER), "Subscribe", &())
            .await
            .map_err(|e| {
                format!(
                    "unit {}: systemd on {} refused Subscribe: {e} (is systemd the init system there?)",
                    self.unit,
                    self.bus_name()
                )
            })?;
        // A new connection numbers its messages from the start again.
        self.tracked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .accounted = Sequence::default();
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn manager_call<B>(
        &self,
        conn: &Connection,
        method: &str,
        body: &B,
    ) -> Result<Message, String>
    where
        B: serde::Serialize + zbus::wire::DynamicType,
    {
        conn.call_method(Some(SYSTEMD), MANAGER_PATH, Some(MANAGER), method, body)
            .await
            .map_err(|e| format!("unit {}: systemd's {method} failed: {e}", self.unit))
    }

    /// Loads the unit (systemd makes an object for a unit it has no file
    /// for, with `LoadState=not-found`) and returns its object path.
    async fn load(&self, conn: &Connection) -> Result<OwnedObjectPath, String> {
        let reply = self
            .manager_call(conn, "LoadUnit", &(self.unit.as_str(),))
            .await?;
        reply.body().deserialize().map_err(|e| {
            format!(
                "unit {}: cannot read systemd's answer to LoadUnit: {e}",
                self.unit
            )
        })
    }

    async fn props(
        &self,
        conn: &Connection,
        path: &OwnedObjectPath,
        iface: &str,
    ) -> Result<Props, String> {
        let reply = conn
            .call_method(
                Some(SYSTEMD),
                path.as_str(),
                Some(PROPERTIES),
                "GetAll",
                &(iface,),
            )
            .await
            .map_err(|e| {
                format!(
                    "unit {}: cannot read its properties ({iface}): {e}",
                    self.unit
                )
            })?;
        let map = reply.body().deserialize().map_err(|e| {
            format!(
                "unit {}: cannot read systemd's answer to GetAll({iface}): {e}",
                self.unit
            )
        })?;
        Ok(Props {
            map,
            seen: reply.recv_position(),
        })
    }

    async fn unit_props(&self, conn: &Connection, path: &OwnedObjectPath) -> Result<Props, String> {
        self.props(conn, path, UNIT).await
    }

    /// The service's properties (`Type`, `Result`, `ExecMain*`), or none
    /// for a unit of another kind.
    async fn service_props(&self, conn: &Connection, path: &OwnedObjectPath) -> Option<Props> {
        if !self.unit.ends_with(".service") {
            return None;
        }
        self.props(conn, path, SERVICE).await.ok()
    }

    /// Why a unit is in the state it is, for people: its states, systemd's
    /// `Result` and what became of its main process.
    async fn details(&self, conn: &Connection, path: &OwnedObjectPath, unit: &Props) -> String {
        let service = self.service_props(conn, path).await;
        describe(&self.unit, unit, service.as_ref())
    }

    /// `Err` with the outcome when the unit cannot run here at all.
    fn check_loaded(&self, p: &Props) -> Result<(), OpOutcome> {
        let unit = &self.unit;
        match p.str("LoadState").as_str() {
            "loaded" => Ok(()),
            "not-found" => Err(OpOutcome::fail(
                OcfCode::ErrInstalled,
                format!(
                    "unit {unit} not found: systemd has no unit file for it (install it, e.g. in /etc/systemd/system/{unit}, then `systemctl daemon-reload`)"
                ),
            )),
            "masked" => Err(OpOutcome::fail(
                OcfCode::ErrInstalled,
                format!("unit {unit} is masked (`systemctl unmask {unit}` if it should run here)"),
            )),
            other => {
                let why = match p.map.get("LoadError").map(|v| &**v) {
                    Some(Variant::Structure(s)) => s
                        .fields()
                        .iter()
                        .filter_map(|f| match f {
                            Variant::Str(s) if !s.is_empty() => Some(s.to_string()),
                            _ => None,
                        })
                        .collect::<Vec<_>>()
                        .join(": "),
                    _ => String::new(),
                };
                Err(OpOutcome::fail(
                    OcfCode::ErrConfigured,
                    format!(
                        "unit {unit} cannot be loaded (LoadState={other}{}{why}); check `systemd-analyze verify {unit}`",
                        if why.is_empty() { "" } else { ": " }
                    ),
                ))
            }
        }
    }

    /// `Unit.ResetFailed` on the unit's object (systemd loads the unit for
    /// it if it has dropped an inactive one meanwhile, which the manager's
    /// `ResetFailedUnit` by name would refuse).
    async fn reset_failed(&self, conn: &Connection, path: &OwnedObjectPath) -> Result<(), String> {
        conn.call_method(Some(SYSTEMD), path.as_str(), Some(UNIT), "ResetFailed", &())
            .await
            .map(|_| ())
            .map_err(|e| format!("unit {}: systemd's ResetFailed failed: {e}", self.unit))
    }

    /// Listens for `JobRemoved`; made before the call that queues the job.
    async fn job_stream(&self, conn: &Connection) -> Result<MessageStream, String> {
        let rule = MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .path(MANAGER_PATH)
            .interface(MANAGER)
            .member("JobRemoved")
            .build()
            .map_err(|e| format!("unit {}: bad match rule for JobRemoved: {e}", self.unit))?;
        let len = std::num::NonZeroUsize::new(JOB_QUEUE_LEN).expect("JOB_QUEUE_LEN > 0");
        MessageStream::for_match_rule(rule, conn, Some(len))
            .await
            .map_err(|e| {
                format!(
                    "unit {}: cannot listen for systemd's JobRemoved: {e}",
                    self.unit
                )
            })
    }

    /// Queues `method` (`StartUnit`, `StopUnit`) and waits for the job's
    /// end: its result (`done`, `failed`, `canceled`, `timeout`,
    /// `dependency`, `skipped`), or `Err` with a reason.
    async fn run_job(
        &self,
        conn: &Connection,
        method: &str,
        deadline: Instant,
    ) -> Result<String, String> {
        let unit = &self.unit;
        let mut jobs = self.job_stream(conn).await?;
        let reply = self
            .manager_call(conn, method, &(unit.as_str(), "replace"))
            .await?;
        let job: OwnedObjectPath = reply
            .body()
            .deserialize()
            .map_err(|e| format!("unit {unit}: cannot read systemd's answer to {method}: {e}"))?;
        let wait = async {
            while let Some(m) = jobs.next().await {
                let Ok(m) = m else { continue };
                let Ok((_id, path, _unit, result)) = m
                    .body()
                    .deserialize::<(u32, OwnedObjectPath, String, String)>()
                else {
                    continue;
                };
                if path == job {
                    return Ok(result);
                }
            }
            Err(format!(
                "unit {unit}: the connection to {} closed while waiting for the {method} job",
                self.bus_name()
            ))
        };
        match tokio::time::timeout_at(deadline.into(), wait).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "unit {unit}: systemd's {method} job ({}) did not end in time; the unit may be hanging in its start or stop (check `systemctl status {unit}`, `journalctl -u {unit}`, and the unit's TimeoutStartSec/TimeoutStopSec)",
                job.as_str()
            )),
        }
    }

    async fn start(&self, wait: Duration) -> OpOutcome {
        let deadline = Instant::now() + wait;
        let guard = OpGuard::new(self);
        match self.start_inner(deadline).await {
            Ok((outcome, expect, seen)) => {
                guard.finish(expect, seen);
                outcome
            }
            Err(reason) => OpOutcome::fail(OcfCode::ErrGeneric, reason),
        }
    }

    async fn start_inner(
        &self,
        deadline: Instant,
    ) -> Result<(OpOutcome, Expect, Sequence), String> {
        let unit = &self.unit;
        let conn = self.connection().await?;
        let path = self.load(&conn).await?;
        let p = self.unit_props(&conn, &path).await?;
        if let Err(outcome) = self.check_loaded(&p) {
            return Ok((outcome, Expect::Stopped, p.seen));
        }
        if matches!(p.active().as_str(), "active" | "reloading") {
            return Ok((OpOutcome::ok(), Expect::Running, p.seen));
        }
        // The cluster decides when to give up on a unit (migration
        // threshold), not systemd's start rate limit (StartLimitBurst=),
        // and a failure reason must not be the last run's: reset both.
        self.reset_failed(&conn, &path).await?;
        // Whether the job's end says the program is ready.
        let settle = match self.service_props(&conn, &path).await {
            Some(s) => matches!(s.str("Type").as_str(), "simple" | "exec" | "idle"),
            None => false,
        };
        let result = self.run_job(&conn, "StartUnit", deadline).await?;
        let mut p = self.unit_props(&conn, &path).await?;
        if result == "done" && p.active() == "active" && settle {
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(Duration::from_millis(START_SETTLE_MS).min(left)).await;
            p = self.unit_props(&conn, &path).await?;
        }
        if result == "done" && matches!(p.active().as_str(), "active" | "reloading") {
            return Ok((OpOutcome::ok(), Expect::Running, p.seen));
        }
        let mut why = self.details(&conn, &path, &p).await;
        if result == "done" && p.active() == "inactive" {
            why.push_str(if p.bool("ConditionResult") == Some(false) {
                " (a Condition...= of the unit is not met: see `systemctl status`)"
            } else {
                " (it ran and ended: a Type=oneshot unit needs RemainAfterExit=yes to stay active)"
            });
        }
        let job = match result.as_str() {
            "done" => "the start job ended".to_string(),
            "dependency" => "the start job failed: a unit it requires failed to start (see `systemctl list-dependencies`)".to_string(),
            "timeout" => "the start job timed out (TimeoutStartSec=)".to_string(),
            "canceled" => "the start job was canceled (another job for the unit replaced it: someone stopped it meanwhile?)".to_string(),
            "skipped" => "the start job was skipped (a condition of the unit is not met: see ConditionXxx= in the unit)".to_string(),
            other => format!("the start job ended with result \"{other}\""),
        };
        Ok((
            OpOutcome::fail(
                OcfCode::ErrGeneric,
                format!("unit {unit} did not start: {job}, and {why}"),
            ),
            Expect::Failed,
            p.seen,
        ))
    }

    async fn stop(&self, wait: Duration) -> OpOutcome {
        let deadline = Instant::now() + wait;
        let guard = OpGuard::new(self);
        match self.stop_inner(deadline).await {
            Ok((outcome, expect, seen)) => {
                guard.finish(expect, seen);
                outcome
            }
            Err(reason) => OpOutcome::fail(OcfCode::ErrGeneric, reason),
        }
    }

    async fn stop_inner(&self, deadline: Instant) -> Result<(OpOutcome, Expect, Sequence), String> {
        let unit = &self.unit;
        let conn = self.connection().await?;
        let path = self.load(&conn).await?;
        let mut p = self.unit_props(&conn, &path).await?;
        if p.str("LoadState") == "not-found" && p.active() == "inactive" {
            // Not there, so not running.
            return Ok((OpOutcome::ok(), Expect::Stopped, p.seen));
        }
        if !matches!(p.active().as_str(), "inactive" | "failed") {
            let result = self.run_job(&conn, "StopUnit", deadline).await?;
            p = self.unit_props(&conn, &path).await?;
            if !matches!(p.active().as_str(), "inactive" | "failed") {
                let why = self.details(&conn, &path, &p).await;
                return Ok((
                    OpOutcome::fail(
                        OcfCode::ErrGeneric,
                        format!(
                            "unit {unit} did not stop: the stop job ended with result \"{result}\", and {why}"
                        ),
                    ),
                    Expect::Unknown,
                    p.seen,
                ));
            }
        }
        if p.active() == "failed" {
            // Stopped is stopped; a unit left "failed" would make the next
            // monitor (or probe) report a failure hactl already handled.
            self.reset_failed(&conn, &path).await?;
            p = self.unit_props(&conn, &path).await?;
        }
        Ok((OpOutcome::ok(), Expect::Stopped, p.seen))
    }

    async fn monitor(&self, wait: Duration) -> OpOutcome {
        match self.monitor_inner(wait).await {
            Ok(o) => o,
            Err(reason) => OpOutcome::fail(OcfCode::ErrGeneric, reason),
        }
    }

    async fn monitor_inner(&self, wait: Duration) -> Result<OpOutcome, String> {
        let unit = &self.unit;
        let deadline = Instant::now() + wait;
        let conn = self.connection().await?;
        let path = self.load(&conn).await?;
        loop {
            let p = self.unit_props(&conn, &path).await?;
            let in_flight = *self.ops_in_flight.borrow() > 0;
            // What the monitor saw counts for the watch only if no start
            // or stop is changing the unit at the same time.
            let record = |expect| {
                if !in_flight {
                    self.set_tracked(expect, p.seen);
                }
            };
            let load = p.str("LoadState");
            if load == "not-found" || load == "masked" {
                if p.active() == "inactive" {
                    record(Expect::Stopped);
                    return Ok(OpOutcome::code(OcfCode::NotRunning));
                }
            } else if let Err(outcome) = self.check_loaded(&p) {
                return Ok(outcome);
            }
            let active = p.active();
            let sub = p.sub();
            let transitional = match active.as_str() {
                "active" | "reloading" => {
                    record(Expect::Running);
                    return Ok(OpOutcome::ok());
                }
                "inactive" => {
                    record(Expect::Stopped);
                    return Ok(OpOutcome::code(OcfCode::NotRunning));
                }
                "failed" => {
                    record(Expect::Failed);
                    let why = self.details(&conn, &path, &p).await;
                    return Ok(OpOutcome::fail(
                        OcfCode::ErrGeneric,
                        format!("unit {unit} failed: {why}"),
                    ));
                }
                "activating" if sub == "auto-restart" => {
                    record(Expect::Failed);
                    let why = self.details(&conn, &path, &p).await;
                    return Ok(OpOutcome::fail(
                        OcfCode::ErrGeneric,
                        format!(
                            "unit {unit} failed and systemd is restarting it by itself (Restart= in the unit; a unit the cluster manages should leave restarts to hactl): {why}"
                        ),
                    ));
                }
                "activating" | "deactivating" => true,
                _ => false,
            };
            if !transitional {
                let why = self.details(&conn, &path, &p).await;
                return Ok(OpOutcome::fail(
                    OcfCode::ErrGeneric,
                    format!("unit {unit} is in a state hactl does not know: {why}"),
                ));
            }
            if Instant::now() + Duration::from_millis(MONITOR_POLL_MS) > deadline {
                let why = self.details(&conn, &path, &p).await;
                let doing = if active == "activating" {
                    "starting"
                } else {
                    "stopping"
                };
                return Ok(OpOutcome::fail(
                    OcfCode::ErrGeneric,
                    format!(
                        "unit {unit} is still {doing} after {} ms of monitor (a start or stop outside hactl, or one that hangs?): {why}",
                        wait.as_millis()
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(MONITOR_POLL_MS)).await;
        }
    }

    async fn validate(&self) -> OpOutcome {
        let check = async {
            let conn = self.connection().await?;
            let path = self.load(&conn).await?;
            self.unit_props(&conn, &path).await
        };
        match check.await {
            Ok(p) => match self.check_loaded(&p) {
                Ok(()) => OpOutcome::ok(),
                Err(o) => o,
            },
            Err(reason) => OpOutcome::fail(OcfCode::ErrGeneric, reason),
        }
    }

    /// The watch's match, in place on the bus when this returns.
    async fn watch_stream(
        &self,
        conn: &Connection,
    ) -> Result<(OwnedObjectPath, MessageStream), String> {
        let unit = &self.unit;
        let path = self.load(conn).await?;
        let rule = MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .path(path.as_str())
            .interface(PROPERTIES)
            .member("PropertiesChanged")
            .arg(0, UNIT)
            .build()
            .map_err(|e| format!("unit {unit}: bad match rule for PropertiesChanged: {e}"))?;
        let len = std::num::NonZeroUsize::new(WATCH_QUEUE_LEN).expect("WATCH_QUEUE_LEN > 0");
        let stream = MessageStream::for_match_rule(rule, conn, Some(len))
            .await
            .map_err(|e| {
                format!(
                    "unit {unit}: cannot watch it (match for PropertiesChanged on {}): {e}",
                    self.bus_name()
                )
            })?;
        Ok((path, stream))
    }
}

/// The state a `PropertiesChanged` of the unit carries, if it is one the
/// watch must look at: the unit stopped (`inactive`), `failed`, or is being
/// restarted by systemd itself (`activating`/`auto-restart`).
fn trouble(msg: &Message) -> Option<(String, String)> {
    let (iface, changed, _): (String, HashMap<String, OwnedVariant>, Vec<String>) =
        msg.body().deserialize().ok()?;
    if iface != UNIT {
        return None;
    }
    let p = Props {
        map: changed,
        seen: msg.recv_position(),
    };
    let (active, sub) = (p.active(), p.sub());
    is_trouble(&active, &sub).then_some((active, sub))
}

async fn watch_task(
    shared: Arc<Shared>,
    resource: String,
    notices: NoticeSender,
    mut alive: tokio::sync::watch::Receiver<()>,
    mut path: OwnedObjectPath,
    mut stream: MessageStream,
) {
    let mut idle = shared.ops_in_flight.subscribe();
    // Troubles seen and not yet judged: (position, ActiveState, SubState).
    let mut pending: Vec<(Sequence, String, String)> = Vec::new();
    let mut backoff_ms = WATCH_RECONNECT_MS_MIN;
    loop {
        let busy = *idle.borrow_and_update() > 0;
        if !pending.is_empty() && !busy {
            let first = {
                let t = shared.tracked.lock().unwrap_or_else(|e| e.into_inner());
                if t.expect == Expect::Running {
                    pending
                        .iter()
                        .find(|(pos, _, _)| *pos > t.accounted)
                        .cloned()
                } else {
                    None
                }
            };
            pending.clear();
            if let Some((_, active, sub)) = first
                && !report(&shared, &resource, &notices, &path, &active, &sub).await
            {
                return;
            }
            continue;
        }
        tokio::select! {
            _ = alive.changed() => return,
            _ = idle.changed(), if busy => {}
            m = stream.next() => match m {
                Some(Ok(m)) => {
                    if let Some((active, sub)) = trouble(&m) {
                        pending.push((m.recv_position(), active, sub));
                    }
                }
                Some(Err(_)) => {}
                None => {
                    // The bus went away (dbus restarted?): watch again on a
                    // new connection, then judge the unit as it is now.
                    pending.clear();
                    loop {
                        tokio::select! {
                            _ = alive.changed() => return,
                            _ = tokio::time::sleep(Duration::from_millis(backoff_ms)) => {}
                        }
                        backoff_ms = (backoff_ms * 2).min(WATCH_RECONNECT_MS_MAX);
                        let Ok(conn) = shared.connection().await else { continue };
                        let Ok((p, s)) = shared.watch_stream(&conn).await else { continue };
                        path = p;
                        stream = s;
                        break;
                    }
                    backoff_ms = WATCH_RECONNECT_MS_MIN;
                    if let Ok(conn) = shared.connection().await
                        && let Ok(p) = shared.unit_props(&conn, &path).await
                        && is_trouble(&p.active(), &p.sub())
                    {
                        pending.push((p.seen, p.active(), p.sub()));
                    }
                }
            },
        }
    }
}

/// Sends the Notice for a trouble the watch saw; `false` when nobody
/// listens any more (the watch ends).
async fn report(
    shared: &Shared,
    resource: &str,
    notices: &NoticeSender,
    path: &OwnedObjectPath,
    active: &str,
    sub: &str,
) -> bool {
    let unit = &shared.unit;
    // What became of it, read now: the signal says only the state, and a
    // unit that failed may already be restarting (Restart=).
    let now = match shared.connection().await {
        Ok(conn) => match shared.unit_props(&conn, path).await {
            Ok(p) => Some((shared.details(&conn, path, &p).await, p.active(), p.sub())),
            Err(_) => None,
        },
        Err(_) => None,
    };
    let (state, detail) = match now {
        Some((d, a, s)) if is_trouble(&a, &s) => ((a, s), d),
        Some((d, a, s)) => (
            (active.to_string(), sub.to_string()),
            format!(
                "it was {active}/{sub} when systemd reported the change, and is now {a}/{s}: {d}"
            ),
        ),
        None => (
            (active.to_string(), sub.to_string()),
            format!("ActiveState={active} SubState={sub}"),
        ),
    };
    let (code, what) = match state.0.as_str() {
        "inactive" => (OcfCode::NotRunning, "stopped outside hactl"),
        "failed" => (OcfCode::ErrGeneric, "failed"),
        _ => (
            OcfCode::ErrGeneric,
            "failed and systemd is restarting it by itself (Restart= in the unit; a unit the cluster manages should leave restarts to hactl)",
        ),
    };
    shared.set_tracked(Expect::Failed, Sequence::default());
    notices
        .send(Notice {
            resource: resource.to_string(),
            code,
            exit_reason: format!("unit {unit} {what}: {detail}"),
        })
        .is_ok()
}

/// A state the watch reports when hactl had the unit running: stopped
/// (`inactive`), `failed`, or being restarted by systemd itself
/// (`activating`/`auto-restart`).
fn is_trouble(active: &str, sub: &str) -> bool {
    active == "inactive" || active == "failed" || (active == "activating" && sub == "auto-restart")
}

/// `ActiveState=failed SubState=failed Result=signal: main process (PID
/// 42) killed by signal SIGKILL; see journalctl -u UNIT`.
fn describe(unit: &str, p: &Props, service: Option<&Props>) -> String {
    let mut s = format!("ActiveState={} SubState={}", p.active(), p.sub());
    if let Some(sv) = service {
        let result = sv.str("Result");
        if !result.is_empty() {
            s.push_str(&format!(" Result={result}"));
        }
        let pid = sv.int("ExecMainPID").unwrap_or(0);
        let pid = if pid > 0 {
            format!(" (PID {pid})")
        } else {
            String::new()
        };
        let status = sv.int("ExecMainStatus").unwrap_or(0);
        // ExecMainCode: the si_code of the main process's end.
        match sv.int("ExecMainCode").unwrap_or(0) {
            1 => {
                s.push_str(&format!(": main process{pid} exited with status {status}"));
                if let Some(hint) = exit_status_hint(status) {
                    s.push_str(&format!(" ({hint})"));
                }
            }
            2 | 3 => {
                let name = i32::try_from(status)
                    .ok()
                    .and_then(|n| nix::sys::signal::Signal::try_from(n).ok())
                    .map(|sig| sig.as_str().to_string())
                    .unwrap_or_else(|| format!("{status}"));
                let dumped = if sv.int("ExecMainCode") == Some(3) {
                    " (core dumped)"
                } else {
                    ""
                };
                s.push_str(&format!(
                    ": main process{pid} killed by signal {name}{dumped}"
                ));
            }
            _ => {}
        }
        if let Some(hint) = result_hint(&result) {
            s.push_str(&format!("; {hint}"));
        }
    }
    s.push_str(&format!("; see `journalctl -u {unit}`"));
    s
}

/// systemd's own exit statuses (set when it could not run the program).
fn exit_status_hint(status: i64) -> Option<&'static str> {
    Some(match status {
        200 => "systemd could not change to WorkingDirectory=",
        203 => "systemd could not execute the program: check the path in ExecStart=",
        209 => "systemd could not set up standard input/output",
        217 => "systemd could not switch to User=: does the user exist?",
        226 => {
            "systemd could not set up the namespace (a path in ReadWritePaths= and the like is missing?)"
        }
        _ => return None,
    })
}

fn result_hint(result: &str) -> Option<&'static str> {
    Some(match result {
        "timeout" => "it did not finish in time (TimeoutStartSec=/TimeoutStopSec=)",
        "watchdog" => "it stopped answering systemd's watchdog (WatchdogSec=)",
        "start-limit-hit" => {
            "systemd refuses to start it again so soon (StartLimitBurst=; `systemctl reset-failed` clears it)"
        }
        "oom-kill" => "the kernel's OOM killer ended it",
        "resources" => "systemd could not set up its resources (see the journal)",
        _ => return None,
    })
}

/// Default timeout of start, stop and monitor (as Pacemaker's for systemd
/// units): systemd's own TimeoutStartSec= / TimeoutStopSec= default to
/// 90 s, and the job must be able to end before hactl gives up on it.
const DEFAULT_TIMEOUT_S: u64 = 100;

/// What `hactl ra info systemd:UNIT` shows.
pub fn info() -> AgentInfo {
    let t = Some(Duration::from_secs(DEFAULT_TIMEOUT_S));
    AgentInfo {
        name: "systemd:UNIT".to_string(),
        shortdesc: "a systemd unit, through systemd's D-Bus API".to_string(),
        longdesc: "Starts and stops the unit with systemd jobs and monitors its ActiveState;                    reports at once when the unit fails or is stopped outside the cluster.                    UNIT without a suffix is UNIT.service. Takes no parameters: configure                    the unit itself (a drop-in under /etc/systemd/system/UNIT.d/), and do                    not enable it to start at boot."
            .to_string(),
        params: Vec::new(),
        actions: vec![
            ("start".to_string(), t),
            ("stop".to_string(), t),
            ("monitor".to_string(), t),
            ("meta-data".to_string(), Some(Duration::from_secs(5))),
            ("validate-all".to_string(), Some(Duration::from_secs(5))),
        ],
    }
}

/// OCF meta-data for `systemd:UNIT`.
fn meta_data(unit: &str) -> String {
    format!(
        r#"<?xml version="1.0"?>
<resource-agent name="systemd:{unit}" version="1.0">
  <version>1.1</version>
  <shortdesc lang="en">systemd unit {unit}</shortdesc>
  <longdesc lang="en">Starts, stops and monitors the systemd unit {unit} through systemd's D-Bus API, and reports at once when it fails or is stopped outside the cluster. Takes no parameters: configure the unit itself.</longdesc>
  <parameters/>
  <actions>
    <action name="start" timeout="{t}s"/>
    <action name="stop" timeout="{t}s"/>
    <action name="monitor" timeout="{t}s" interval="60s"/>
    <action name="meta-data" timeout="5s"/>
    <action name="validate-all" timeout="5s"/>
  </actions>
</resource-agent>
"#,
        t = DEFAULT_TIMEOUT_S
    )
}

/// Warnings for managed systemd units that are also enabled to start at
/// boot on this host (systemd would start them outside the cluster's
/// control). Asked of this host's systemd over the system bus; where there
/// is none (a build machine, a container without systemd) nothing is said.
pub fn boot_enabled_warnings(c: &crate::config::Config) -> Vec<String> {
    let units: Vec<(&str, &str)> = c
        .resources
        .iter()
        .filter_map(|r| match &r.agent {
            crate::config::Agent::Systemd { unit } => Some((r.id.as_str(), unit.as_str())),
            _ => None,
        })
        .collect();
    if units.is_empty() {
        return Vec::new();
    }
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    rt.block_on(async {
        let mut out = Vec::new();
        for (id, unit) in units {
            let agent = SystemdAgent::new(unit);
            // Not enabled, no systemd to ask, or no answer in time: nothing.
            if let Ok(Ok(Some(w))) = tokio::time::timeout(
                std::time::Duration::from_secs(3),
                agent.boot_enabled_warning(),
            )
            .await
            {
                out.push(format!("warning: resource {id}: {w}"));
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_are_services_and_typed_names_stay() {
        assert_eq!(unit_name("nginx"), "nginx.service");
        assert_eq!(unit_name("web.socket"), "web.socket");
        assert_eq!(unit_name("srv-data.mount"), "srv-data.mount");
        assert_eq!(unit_name("my.app"), "my.app.service");
    }

    #[test]
    fn the_configuration_builds_a_systemd_agent_for_the_unit() {
        let res = crate::config::Resource {
            id: "web".into(),
            agent: crate::config::Agent::Systemd {
                unit: "nginx".into(),
            },
            params: Default::default(),
            ops: Vec::new(),
            meta: Default::default(),
        };
        let agent = crate::agents::agent_from_config(&res).unwrap();
        assert_eq!(agent.name(), "systemd:nginx");
    }

    #[test]
    fn only_enabled_units_get_a_boot_warning() {
        let w = boot_warning_for("web.service", "enabled").unwrap();
        assert!(w.contains("systemctl disable web.service"), "{w}");
        assert!(boot_warning_for("web.service", "enabled-runtime").is_some());
        for s in ["disabled", "static", "masked", "indirect", ""] {
            assert_eq!(boot_warning_for("web.service", s), None, "{s}");
        }
    }

    fn props(pairs: &[(&str, Variant<'static>)]) -> Props {
        Props {
            map: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), OwnedVariant::try_from(v.clone()).unwrap()))
                .collect(),
            seen: Sequence::default(),
        }
    }

    #[test]
    fn a_killed_main_process_is_described_with_the_signal_name() {
        let unit = props(&[
            ("ActiveState", Variant::from("failed")),
            ("SubState", Variant::from("failed")),
        ]);
        let service = props(&[
            ("Result", Variant::from("signal")),
            ("ExecMainCode", Variant::from(2i32)),
            ("ExecMainStatus", Variant::from(9i32)),
            ("ExecMainPID", Variant::from(42u32)),
        ]);
        assert_eq!(
            describe("a.service", &unit, Some(&service)),
            "ActiveState=failed SubState=failed Result=signal: main process (PID 42) killed by signal SIGKILL; see `journalctl -u a.service`"
        );
    }

    #[test]
    fn an_exec_failure_says_to_check_exec_start() {
        let unit = props(&[
            ("ActiveState", Variant::from("failed")),
            ("SubState", Variant::from("failed")),
        ]);
        let service = props(&[
            ("Result", Variant::from("exit-code")),
            ("ExecMainCode", Variant::from(1i32)),
            ("ExecMainStatus", Variant::from(203i32)),
        ]);
        let d = describe("a.service", &unit, Some(&service));
        assert!(d.contains("exited with status 203 (systemd could not execute the program: check the path in ExecStart=)"), "{d}");
    }
}
