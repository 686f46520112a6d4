//! Resource agents: the things that start, stop and check a resource on the
//! local node. One interface for every kind, [`ResourceAgent`], answering
//! in OCF return codes ([`OcfCode`]) as Pacemaker's agents do, so that the
//! executor and the scheduler need not care which kind they talk to.
//!
//! Kinds (the `agent` key of a `[[resource]]`):
//! - `systemd:UNIT`: a systemd unit through systemd's D-Bus API;
//! - `ipaddr`: a virtual IP address through rtnetlink;
//! - `filesystem`: a mount;
//! - `ocf:PROVIDER:TYPE` and `lsb:NAME`: the standard agent scripts.
//!
//! Rules every agent keeps:
//! - `start` and `stop` are idempotent: starting a running resource and
//!   stopping a stopped one succeed.
//! - `stop` of a resource that is not there (a missing unit, an address on a
//!   vanished interface) succeeds: it is not running. `monitor` of it says
//!   [`OcfCode::NotRunning`], or [`OcfCode::ErrInstalled`] /
//!   [`OcfCode::ErrConfigured`] when the resource can never run here.
//! - An operation ends within its timeout: an agent that runs a program
//!   kills the program's whole process group when the time is up and
//!   answers [`OcfCode::ErrGeneric`] with an exit reason saying so. The
//!   executor also bounds every operation as a backstop.
//! - A failure carries an exit reason for people: what failed and, where it
//!   helps, what to check.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::config;

pub mod filesystem;
pub mod ipaddr;
pub mod metadata;
pub mod ocf;
pub mod systemd;

/// OCF return codes (OCF resource agent API 1.1, with Pacemaker's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OcfCode {
    /// 0: success (for monitor: running).
    Success,
    /// 1: generic failure.
    ErrGeneric,
    /// 2: invalid parameters.
    ErrArgs,
    /// 3: the action is not implemented.
    ErrUnimplemented,
    /// 4: insufficient privileges.
    ErrPerm,
    /// 5: something the agent needs is not installed.
    ErrInstalled,
    /// 6: the configuration is invalid (can never run anywhere).
    ErrConfigured,
    /// 7: cleanly not running.
    NotRunning,
    /// 8: running in the promoted role.
    RunningPromoted,
    /// 9: failed in the promoted role.
    FailedPromoted,
    /// 190: running, but degraded.
    Degraded,
    /// 191: promoted, but degraded.
    DegradedPromoted,
}

impl OcfCode {
    /// Every code, in numeric order.
    pub const ALL: [OcfCode; 12] = [
        OcfCode::Success,
        OcfCode::ErrGeneric,
        OcfCode::ErrArgs,
        OcfCode::ErrUnimplemented,
        OcfCode::ErrPerm,
        OcfCode::ErrInstalled,
        OcfCode::ErrConfigured,
        OcfCode::NotRunning,
        OcfCode::RunningPromoted,
        OcfCode::FailedPromoted,
        OcfCode::Degraded,
        OcfCode::DegradedPromoted,
    ];

    pub fn code(self) -> i32 {
        match self {
            OcfCode::Success => 0,
            OcfCode::ErrGeneric => 1,
            OcfCode::ErrArgs => 2,
            OcfCode::ErrUnimplemented => 3,
            OcfCode::ErrPerm => 4,
            OcfCode::ErrInstalled => 5,
            OcfCode::ErrConfigured => 6,
            OcfCode::NotRunning => 7,
            OcfCode::RunningPromoted => 8,
            OcfCode::FailedPromoted => 9,
            OcfCode::Degraded => 190,
            OcfCode::DegradedPromoted => 191,
        }
    }

    /// The code for a number, or `None` for a number OCF does not define
    /// (the caller turns that into [`OcfCode::ErrGeneric`] with a reason).
    pub fn from_code(code: i32) -> Option<OcfCode> {
        OcfCode::ALL.into_iter().find(|c| c.code() == code)
    }

    /// Pacemaker's name for the code, as `crm_mon` shows it.
    pub fn name(self) -> &'static str {
        match self {
            OcfCode::Success => "ok",
            OcfCode::ErrGeneric => "error",
            OcfCode::ErrArgs => "invalid parameter",
            OcfCode::ErrUnimplemented => "unimplemented feature",
            OcfCode::ErrPerm => "insufficient privileges",
            OcfCode::ErrInstalled => "not installed",
            OcfCode::ErrConfigured => "not configured",
            OcfCode::NotRunning => "not running",
            OcfCode::RunningPromoted => "promoted",
            OcfCode::FailedPromoted => "promoted (failed)",
            OcfCode::Degraded => "OCF_DEGRADED",
            OcfCode::DegradedPromoted => "promoted (degraded)",
        }
    }
}

impl fmt::Display for OcfCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

/// What an agent is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AgentAction {
    Start,
    Stop,
    Monitor,
    Promote,
    Demote,
    /// Describe the agent (OCF meta-data XML in [`OpOutcome::output`]).
    MetaData,
    /// Check the parameters without touching the resource.
    ValidateAll,
}

impl AgentAction {
    /// The OCF name of the action (`meta-data`, `validate-all`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            AgentAction::Start => "start",
            AgentAction::Stop => "stop",
            AgentAction::Monitor => "monitor",
            AgentAction::Promote => "promote",
            AgentAction::Demote => "demote",
            AgentAction::MetaData => "meta-data",
            AgentAction::ValidateAll => "validate-all",
        }
    }
}

impl From<config::OpName> for AgentAction {
    fn from(op: config::OpName) -> Self {
        match op {
            config::OpName::Start => AgentAction::Start,
            config::OpName::Stop => AgentAction::Stop,
            config::OpName::Monitor => AgentAction::Monitor,
            config::OpName::Promote => AgentAction::Promote,
            config::OpName::Demote => AgentAction::Demote,
        }
    }
}

impl fmt::Display for AgentAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One operation on one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpRequest {
    /// The resource's id (for OCF: `OCF_RESOURCE_INSTANCE`).
    pub resource: String,
    pub action: AgentAction,
    /// The resource's `params`.
    pub params: BTreeMap<String, String>,
    pub timeout: Duration,
    /// Zero for a one-shot operation; the period of a recurring monitor.
    pub interval: Duration,
    /// OCF_CHECK_LEVEL for monitors: 0 (cheap), 10 (read), 20 (read and write).
    pub check_level: u32,
}

/// The result of one operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpOutcome {
    pub code: OcfCode,
    /// Why it failed, for people (OCF's exit reason); empty on success.
    pub exit_reason: String,
    /// What the action produces besides its code: the XML of `meta-data`.
    pub output: String,
}

impl OpOutcome {
    pub fn ok() -> OpOutcome {
        OpOutcome::code(OcfCode::Success)
    }

    pub fn code(code: OcfCode) -> OpOutcome {
        OpOutcome {
            code,
            exit_reason: String::new(),
            output: String::new(),
        }
    }

    pub fn fail(code: OcfCode, reason: impl Into<String>) -> OpOutcome {
        OpOutcome {
            code,
            exit_reason: reason.into(),
            output: String::new(),
        }
    }
}

/// Something an agent noticed by itself, outside an operation: a systemd
/// unit that failed or was stopped behind hactl's back. The executor turns
/// it into a failed monitor of that resource at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub resource: String,
    pub code: OcfCode,
    pub exit_reason: String,
}

/// The future every operation returns: boxed, so that agents of different
/// kinds can sit behind one `Box<dyn ResourceAgent>`.
pub type AgentFuture<'a> = Pin<Box<dyn Future<Output = OpOutcome> + Send + 'a>>;

/// The future of [`ResourceAgent::watch`].
pub type WatchFuture<'a> = Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>>;

/// Where an agent sends its [`Notice`]s.
pub type NoticeSender = tokio::sync::mpsc::UnboundedSender<Notice>;

/// For a watcher: sends a [`Notice`] when `verdict` is a failure other than
/// the one last reported (`reported`, cleared by a success), so a resource
/// that stays broken is reported once. `false`: nobody listens any more and
/// the watcher should end.
pub(crate) fn notice_on_change(
    reported: &mut Option<OcfCode>,
    resource: &str,
    verdict: OpOutcome,
    notices: &NoticeSender,
) -> bool {
    if verdict.code == OcfCode::Success {
        *reported = None;
        return true;
    }
    if *reported == Some(verdict.code) {
        return true;
    }
    *reported = Some(verdict.code);
    notices
        .send(Notice {
            resource: resource.to_string(),
            code: verdict.code,
            exit_reason: verdict.exit_reason,
        })
        .is_ok()
}

/// A resource agent. One instance serves one resource.
pub trait ResourceAgent: Send + Sync {
    /// The agent as configured: `systemd:nginx`, `ipaddr`,
    /// `ocf:heartbeat:Dummy`, ...
    fn name(&self) -> String;

    /// Runs one operation; ends within `req.timeout`.
    fn execute(&self, req: OpRequest) -> AgentFuture<'_>;

    /// Starts watching the resource for changes outside hactl, reporting
    /// them on `notices` until the agent is dropped (the agent spawns what
    /// it needs on the current tokio runtime). The future ends once the
    /// watch is in place, so that nothing that happens after it is missed:
    /// `Ok(true)` watching, `Ok(false)` this kind of agent cannot watch
    /// (scripts: their resources are checked by recurring monitors alone),
    /// `Err` the watch could not be set up (a message for people).
    fn watch(&self, _resource: &str, _notices: NoticeSender) -> WatchFuture<'_> {
        Box::pin(async { Ok(false) })
    }
}

/// A parameter an agent takes, for `hactl ra info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamInfo {
    pub name: String,
    pub required: bool,
    /// OCF content type: string, integer, boolean, ...
    pub content_type: String,
    pub default: Option<String>,
    pub shortdesc: String,
    pub longdesc: String,
}

/// What `hactl ra info` shows about an agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentInfo {
    /// `systemd:UNIT`, `ipaddr`, `ocf:heartbeat:Dummy`, ...
    pub name: String,
    pub shortdesc: String,
    pub longdesc: String,
    pub params: Vec<ParamInfo>,
    /// The actions the agent supports, with their default timeouts.
    pub actions: Vec<(String, Option<Duration>)>,
}

/// Builds the agent a `[[resource]]` names. `Err` carries a message for
/// people (the agent kind is not available on this build or machine).
pub fn agent_from_config(res: &config::Resource) -> Result<Box<dyn ResourceAgent>, String> {
    match &res.agent {
        config::Agent::Systemd { unit } => Ok(Box::new(systemd::SystemdAgent::new(unit))),
        config::Agent::Ocf { provider, kind } => Ok(Box::new(ocf::OcfAgent::new(provider, kind))),
        config::Agent::Lsb { script } => Ok(Box::new(ocf::LsbAgent::new(script))),
        config::Agent::IpAddr => Ok(Box::new(ipaddr::IpAddrAgent::new(&res.id))),
        config::Agent::Filesystem => Ok(Box::new(filesystem::FilesystemAgent::new(&res.id))),
    }
}

/// What `hactl ra info` shows for the built-in agents `ipaddr` and
/// `filesystem` (their parameters are those the configuration accepts:
/// [`config::IPADDR_PARAMS`], [`config::FILESYSTEM_PARAMS`]); `None` for
/// any other name.
pub fn builtin_info(name: &str) -> Option<AgentInfo> {
    // The agents' own descriptions, which their meta-data action prints
    // too: one source, so `hactl ra info` and meta-data cannot disagree.
    match name {
        "ipaddr" => Some(ipaddr::info()),
        "filesystem" => Some(filesystem::info()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_numbers_are_not_codes() {
        for c in OcfCode::ALL {
            assert_eq!(OcfCode::from_code(c.code()), Some(c));
        }
        assert_eq!(OcfCode::from_code(10), None);
        assert_eq!(OcfCode::from_code(-1), None);
        assert_eq!(OcfCode::from_code(255), None);
        assert_eq!(OcfCode::NotRunning.to_string(), "not running (7)");
    }

    #[test]
    fn ocf_and_lsb_resources_get_their_script_agents() {
        let res = |agent| config::Resource {
            id: "r".into(),
            agent,
            params: BTreeMap::new(),
            ops: Vec::new(),
            meta: config::Meta::default(),
        };
        let a = agent_from_config(&res(config::Agent::Ocf {
            provider: "heartbeat".into(),
            kind: "Dummy".into(),
        }))
        .unwrap();
        assert_eq!(a.name(), "ocf:heartbeat:Dummy");
        let a = agent_from_config(&res(config::Agent::Lsb {
            script: "dbus".into(),
        }))
        .unwrap();
        assert_eq!(a.name(), "lsb:dbus");
    }

    #[test]
    fn builtin_info_describes_every_parameter_the_config_accepts() {
        for (name, known) in [
            ("ipaddr", config::IPADDR_PARAMS),
            ("filesystem", config::FILESYSTEM_PARAMS),
        ] {
            let info = builtin_info(name).unwrap();
            assert_eq!(info.params.len(), known.len());
            for (p, (n, req)) in info.params.iter().zip(known) {
                assert_eq!((p.name.as_str(), p.required), (*n, *req));
                assert!(!p.shortdesc.is_empty(), "{name}.{n} has no description");
            }
        }
        assert!(builtin_info("systemd").is_none());
    }

    #[test]
    fn action_names_are_the_ocf_names() {
        assert_eq!(AgentAction::MetaData.as_str(), "meta-data");
        assert_eq!(AgentAction::ValidateAll.as_str(), "validate-all");
        assert_eq!(
            AgentAction::from(config::OpName::Promote),
            AgentAction::Promote
        );
    }
}
