//! The I/O edge of `hactld`: logging (journal or stderr), the systemd
//! notification protocol (READY=1, STATUS=, WATCHDOG=1, STOPPING=1),
//! signals, and the main loop.
//!
//! The daemon loads and validates the configuration, works out which node
//! it is, checks the cluster key, and then runs its main loop: totem
//! ([`crate::totem::driver`]), quorum, the replicated state, the controller
//! ([`crate::controller`]) with the executor and fencing, watchdog pings,
//! reload on SIGHUP, and on SIGTERM a clean stop that moves this node's
//! resources away first. The D-Bus API ([`crate::api`]) runs beside it,
//! serves what the loop publishes and hands it the requests of `hactl`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use nix::libc;
use sd_notify::NotifyState;
use tracing::{debug, error, info, warn};

use crate::config::{self, Config, Diagnostic, LoadError, Node, Severity};
use crate::controller::{self, Controller, Message, SERVICE_CONTROL};
use crate::quorum::{NodeInfo, Quorum, QuorumError, QuorumEvent};
use crate::totem::crypto::OpenError;
use crate::totem::driver::{Driver, DriverSetup, LinkState};
use crate::totem::srp::TotemEvent;
use crate::totem::wire::{NodeSet, RingId};

/// Exit status for a configuration problem (sysexits' EX_CONFIG); the unit
/// lists it in RestartPreventExitStatus= so systemd does not restart a daemon
/// that can only fail again the same way.
pub const EXIT_CONFIG: u8 = 78;
/// Exit status for a failure of the environment (no runtime, no signals).
pub const EXIT_SOFTWARE: u8 = 70;

#[derive(Clone, Debug)]
pub struct Options {
    pub config: PathBuf,
    /// This node's name; default: the node whose name is the host name, or
    /// whose address is configured on a local interface.
    pub node: Option<String>,
    /// Where the node keeps its state (`/var/lib/hactl`).
    pub state_dir: PathBuf,
    /// Run at real-time priority (see [`set_realtime`]).
    pub realtime: bool,
}

/// The round-robin real-time priority hactld asks for (corosync uses the
/// highest, 99; one below leaves room for the kernel's own threads and a
/// watchdog daemon).
pub const REALTIME_PRIORITY: i32 = 98;

/// Moves hactld to `SCHED_RR` real-time scheduling, as corosync does:
/// failure detection is a timeout (token + consensus), so a node whose
/// daemon is not scheduled for that long looks dead to the others. With
/// `SCHED_RESET_ON_FORK`, agents and fence agents started by hactld run at
/// normal priority. Returns why not, when the kernel refuses (no
/// CAP_SYS_NICE, a cgroup without real-time budget).
pub fn set_realtime() -> Result<(), String> {
    let param = libc::sched_param {
        sched_priority: REALTIME_PRIORITY,
    };
    // SAFETY: sched_setscheduler reads `param` only; pid 0 is the calling
    // thread, the one that runs the main loop.
    let rc =
        unsafe { libc::sched_setscheduler(0, libc::SCHED_RR | libc::SCHED_RESET_ON_FORK, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().to_string())
    }
}

/// The default state directory (the unit's StateDirectory=hactl).
pub const STATE_DIR_DEFAULT: &str = "/var/lib/hactl";

/// Sets up logging: to the journal, with structured fields, when stderr is
/// connected to it (systemd sets JOURNAL_STREAM); otherwise to stderr.
pub fn init_logging() {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_env("HACTL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if std::env::var_os("JOURNAL_STREAM").is_some()
        && let Ok(journal) = tracing_journald::layer()
    {
        let journal = journal
            .with_field_prefix(None)
            .with_syslog_identifier("hactld".to_string());
        tracing_subscriber::registry()
            .with(filter)
            .with(journal)
            .init();
        return;
    }
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// Sends systemd a notification. Not running under systemd is normal
/// (NOTIFY_SOCKET unset: no-op); a failure to reach systemd is logged but
/// never fatal. The send never blocks: a service manager that does not read
/// its socket (a full queue) must not stall the main loop, and with it the
/// totem protocol; the message is dropped instead.
fn notify(states: &[NotifyState]) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let mut msg = String::new();
    for s in states {
        msg.push_str(&s.to_string());
        msg.push('\n');
    }
    match send_notification(&path, msg.as_bytes()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            debug!(
                "the service manager's notification queue is full; dropped: {}",
                msg.trim_end()
            )
        }
        Err(e) => warn!(error = %e, "cannot notify systemd"),
    }
}

fn send_notification(path: &std::ffi::OsStr, msg: &[u8]) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let sock = UnixDatagram::unbound()?;
    sock.set_nonblocking(true)?;
    let bytes = path.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        // An abstract socket (systemd's own is a path, but sd_notify(3)
        // allows both).
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        }
        None => SocketAddr::from_pathname(path)?,
    };
    let sent = sock.send_to_addr(msg, &addr)?;
    if sent != msg.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            "incomplete notification",
        ));
    }
    Ok(())
}

fn status(text: &str) {
    notify(&[NotifyState::Status(text)]);
}

fn log_diagnostic(d: &Diagnostic) {
    let file = d.file.display().to_string();
    match d.severity {
        Severity::Error => {
            error!(file = %file, line = d.line, column = d.column, key = %d.key, hint = %d.hint, "{d}")
        }
        Severity::Warning => {
            warn!(file = %file, line = d.line, column = d.column, key = %d.key, hint = %d.hint, "{d}")
        }
    }
}

/// Loads the configuration, logging every diagnostic.
/// `on_error` reports the diagnostics of a file that is refused.
fn load_config(path: &Path, on_error: fn(&Diagnostic)) -> Result<Config, String> {
    match config::load(path) {
        Ok(loaded) => {
            loaded.warnings.iter().for_each(log_diagnostic);
            Ok(loaded.config)
        }
        Err(LoadError::Invalid(diags)) => {
            diags.iter().for_each(on_error);
            let n = diags
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            Err(format!(
                "{}: {n} configuration error(s); run `hactl config check {}`",
                path.display(),
                path.display()
            ))
        }
        Err(e @ LoadError::Io { .. }) => Err(e.to_string()),
    }
}

/// Which configured node this host is: the one named explicitly, else the
/// one named like the host, else the one with an address on this host.
pub fn pick_local_node<'c>(
    config: &'c Config,
    explicit: Option<&str>,
    hostname: &str,
    local_addrs: &[IpAddr],
) -> Result<&'c Node, String> {
    let names = || {
        config
            .nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(name) = explicit {
        return config.node_by_name(name).ok_or_else(|| {
            format!(
                "--node {name}: no such node in the configuration (nodes: {})",
                names()
            )
        });
    }
    let short = hostname.split('.').next().unwrap_or(hostname);
    if let Some(n) = config
        .nodes
        .iter()
        .find(|n| n.name == hostname || n.name == short)
    {
        return Ok(n);
    }
    let by_addr: Vec<&Node> = config
        .nodes
        .iter()
        .filter(|n| n.addresses.iter().any(|a| local_addrs.contains(a)))
        .collect();
    match by_addr.as_slice() {
        [one] => Ok(one),
        [] => Err(format!(
            "this host (\"{hostname}\") is none of the configured nodes ({}): no node has its name or one of its addresses; pass --node NAME",
            names()
        )),
        many => Err(format!(
            "addresses of several nodes are on this host ({}); pass --node NAME",
            many.iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn local_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|a| {
            let s = a.address?;
            if let Some(v4) = s.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect()
}

/// Everything the daemon checks before it declares itself started.
struct Started {
    config: Config,
    node: Node,
    /// The cluster key; None in the insecure no-crypto mode.
    authkey: Option<Vec<u8>>,
    incarnation: u64,
    /// The highest ring sequence number this node saw before it stopped.
    ring_seq_seen: u64,
    /// The replicated cluster state (src/state) and its sync.
    replica: crate::state::replica::Replica,
    /// The installed ring and its members, once there is one.
    ring: Option<(RingId, NodeSet)>,
    quorate: bool,
    /// Moves whenever something the controller summary shows may have
    /// changed (a replicated command, a ring, an operation result).
    changes: u64,
    /// The summary last built, and what it was built from.
    summary: Option<(SummaryKey, crate::controller::summary::ControllerSummary)>,
}

/// What a controller summary depends on besides [`Started::changes`].
type SummaryKey = (
    u64,
    Option<u32>,
    bool,
    u64,
    bool,
    Option<(RingId, NodeSet)>,
    u64,
);

/// First byte of a totem message: which service it belongs to. (The
/// replicated state and the controller add theirs.)
const SERVICE_QUORUM: u8 = 1;

/// How long a node that must leave stays, so that its peers deliver its
/// membership summary and log why it left.
const LEAVE_GRACE: Duration = Duration::from_millis(500);

/// How long a stopping node waits for its resources to move away (the
/// unit's TimeoutStopSec= is longer).
const STOP_DEADLINE: Duration = Duration::from_secs(240);

/// How long a D-Bus request waits for a changing ring to settle before it
/// is refused (the API gives up after 5 s).
const REQUEST_SETTLE_WAIT: Duration = Duration::from_secs(3);

/// How long a stopping node with nothing to move waits for its own
/// shutdown announcement to come back before it leaves anyway.
const ANNOUNCE_WAIT: Duration = Duration::from_secs(1);

/// How often the controller looks at time-outs and pending work.
const CONTROLLER_TICK: Duration = Duration::from_millis(250);

/// How often STATUS= is looked at for changes that come without an event.
const STATUS_REFRESH: Duration = Duration::from_secs(1);

/// Prints a line about why the daemon refuses to start to stderr, with the
/// journal's priority prefix when stderr is the journal. Not through the
/// native journal protocol: journald reads such a message after the
/// process has exited, cannot tell which unit sent it any more, and
/// `journalctl -u hactld` / `systemctl status` would miss the one message
/// that explains the failure. The stream is attributed when it connects.
fn refusal_line(text: &str) {
    let prefix = if std::env::var_os("JOURNAL_STREAM").is_some() {
        "<3>"
    } else {
        ""
    };
    for line in text.lines() {
        eprintln!("{prefix}{line}");
    }
}

fn refusal_diagnostic(d: &Diagnostic) {
    refusal_line(&d.to_string());
}

fn start(opts: &Options) -> Result<Started, String> {
    let config = load_config(&opts.config, refusal_diagnostic)?;
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let node =
        pick_local_node(&config, opts.node.as_deref(), &hostname, &local_addresses())?.clone();
    let authkey = if config.totem.insecure_no_crypto {
        warn!(
            "crypto is OFF (insecure_no_crypto_i_understand_anyone_can_join): anyone on the network can join this cluster"
        );
        None
    } else {
        Some(config::authkey::load(&config.totem.authkey).map_err(|e| e.to_string())?)
    };
    let incarnation = new_incarnation(&opts.state_dir)?;
    let ring_seq_seen = crate::totem::incarnation::load_ring_seq(&opts.state_dir)
        .map_err(|e| format!("{}: {e}", opts.state_dir.display()))?;
    // The replicated cluster state as this node last saw it (src/state):
    // a corrupt file is moved aside and the cluster's state taken at the
    // first sync; a disk that cannot be read stops the start.
    let recovered = crate::state::persist::load_or_recover(&opts.state_dir, wall_now())
        .map_err(|e| e.to_string())?;
    if let Some((aside, why)) = &recovered.moved_aside {
        warn!(file = %aside.display(), "state: the saved cluster state was unreadable ({why}); moved aside, taking the cluster's state at the first sync");
    }
    let replica = crate::state::replica::Replica::new(
        node.id,
        recovered.state,
        Some(crate::state::membership::Summary::of(&config)),
    );
    Ok(Started {
        config,
        node,
        authkey,
        incarnation,
        ring_seq_seen,
        replica,
        ring: None,
        quorate: false,
        changes: 0,
        summary: None,
    })
}

/// A new incarnation number, persisted under the state directory first.
/// Wall-clock milliseconds, for the replicated state's timestamps.
fn wall_now() -> crate::state::WallMs {
    crate::state::WallMs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    )
}

fn new_incarnation(state_dir: &Path) -> Result<u64, String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(|e| {
            format!(
                "{}: cannot create the state directory: {e}",
                state_dir.display()
            )
        })?;
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    crate::totem::incarnation::next(state_dir, now_s)
        .map_err(|e| format!("{}: cannot record this start: {e}", state_dir.display()))
}

/// Runs the daemon until SIGTERM or SIGINT. Returns the process exit code.
pub fn run(opts: Options) -> ExitCode {
    status("loading configuration");
    let started = match start(&opts) {
        Ok(s) => s,
        Err(msg) => {
            refusal_line(&format!("hactld: refusing to start: {msg}"));
            status(&format!("failed: {msg}"));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // Only now: a refusal to start exits at normal priority, giving
    // journald (at normal priority) the time to attribute its lines to the
    // unit (`journalctl -u hactld`), which it cannot once the process is
    // gone (seen in vm-tests/nspawn check g with real-time from the start).
    // The main loop runs on this thread (a current-thread runtime); threads
    // made later (the runtime's blocking pool) and child processes start at
    // normal priority (SCHED_RESET_ON_FORK).
    if opts.realtime {
        match set_realtime() {
            Ok(()) => info!(
                priority = REALTIME_PRIORITY,
                "running at real-time priority (SCHED_RR {REALTIME_PRIORITY})"
            ),
            Err(e) => warn!(
                "cannot run at real-time priority ({e}): a busy machine may delay this node's totem long enough for the others to take it as failed; give hactld CAP_SYS_NICE or start it with --no-realtime to silence this"
            ),
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::from(EXIT_SOFTWARE);
        }
    };
    runtime.block_on(main_loop(opts, started))
}

fn describe(s: &Started, driver: &Driver, ctl: &Controller) -> String {
    let membership = match s.ring {
        None => "forming a membership".to_string(),
        Some((ring, members)) => format!(
            "ring {}/{} with {} of {} nodes ({}), {}",
            ring.rep,
            ring.seq,
            members.len(),
            s.config.nodes.len(),
            member_names(&s.config, members),
            if s.quorate { "quorate" } else { "not quorate" }
        ),
    };
    let here = s
        .config
        .resources
        .iter()
        .filter(|r| {
            s.replica
                .state()
                .op_history(&r.id, s.node.id)
                .last()
                .is_some_and(|rec| {
                    rec.rc == 0 && rec.op != config::OpName::Stop
                        || rec.rc == controller::RC_PENDING
                })
        })
        .count();
    let dc = match ctl.dc() {
        Some(id) if id == s.node.id => " (this node is the DC)".to_string(),
        Some(id) => format!(" (DC {})", member_names(&s.config, NodeSet::single(id))),
        None => String::new(),
    };
    let mut text = format!(
        "node {} (id {}) of cluster {}: {membership}; {} resources, {here} active here{dc}{}, configuration {}",
        s.node.name,
        s.node.id,
        s.config.cluster.name,
        s.config.resources.len(),
        if ctl.dc().is_some() && !ctl.is_idle() {
            ", moving resources"
        } else {
            ""
        },
        &config::membership_digest(&s.config)[..12]
    );
    let links = driver.links();
    if links.len() > 1 || links.iter().any(|l| l.state == LinkState::Down) {
        let states: Vec<String> = links
            .iter()
            .map(|l| format!("{} {}", l.index, l.state))
            .collect();
        text.push_str(&format!("; links {}", states.join(", ")));
    }
    // Packets that failed authentication or came from elsewhere; a second
    // copy over the other link is not news.
    let mut rejected: Vec<(String, u64)> = driver
        .stats()
        .dropped
        .iter()
        .filter(|(e, n)| **e != OpenError::Replayed && **n > 0)
        .map(|(e, n)| (e.to_string(), *n))
        .collect();
    if !rejected.is_empty() {
        rejected.sort();
        let total: u64 = rejected.iter().map(|(_, n)| n).sum();
        let why: Vec<String> = rejected.iter().map(|(e, n)| format!("{n} {e}")).collect();
        text.push_str(&format!("; {total} packets rejected ({})", why.join("; ")));
    }
    text
}

fn member_names(config: &Config, members: NodeSet) -> String {
    members
        .iter()
        .map(|id| {
            config
                .nodes
                .iter()
                .find(|n| n.id == id)
                .map_or_else(|| format!("id {id}"), |n| n.name.clone())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn main_loop(opts: Options, mut started: Started) -> ExitCode {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        error!("cannot install signal handlers");
        return ExitCode::from(EXIT_SOFTWARE);
    };
    // systemd's watchdog: ping at half the interval it asked for.
    let watchdog = sd_notify::watchdog_enabled();
    let ping_every = watchdog.map_or(Duration::from_secs(3600), |w| w / 2);
    let mut ping = tokio::time::interval(ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let setup = DriverSetup::from_config(&started.config, started.node.id);
    let mut driver = match Driver::start(
        setup,
        started.authkey.as_deref(),
        started.incarnation,
        started.ring_seq_seen,
        Some(opts.state_dir.clone()),
    ) {
        Ok(d) => d,
        Err(e) => {
            refusal_line(&format!(
                "hactld: refusing to start: {e}; is {} configured on this host?",
                started
                    .node
                    .addresses
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            status(&format!("failed: {e}"));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let mut quorum = match Quorum::new(&started.config, started.node.id) {
        Ok(q) => q,
        Err(e) => {
            refusal_line(&format!("hactld: refusing to start: quorum settings: {e}"));
            status(&format!("failed: {e}"));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // The D-Bus API: a task beside this loop that serves what we publish;
    // it never makes this loop wait (see src/api/mod.rs).
    let (api, mut requests) = crate::api::ApiHandle::start_with_requests();
    // The resource configuration in force: the replicated one once `hactl
    // config apply` made one, else the file's.
    if let Some(config) = replicated_config(&started) {
        started.config = config;
    }
    api.publish_config(config::canonical_redacted(&started.config));
    // The local executor and every configured resource's agent.
    let (executor, mut op_events) =
        crate::executor::spawn(crate::executor::ExecutorConfig::new(&started.node.name));
    for res in &started.config.resources {
        match crate::agents::agent_from_config(res) {
            Ok(agent) => executor.register(
                &res.id,
                agent,
                crate::executor::ResourceSpec::from_config(res),
            ),
            Err(e) => error!(resource = %res.id, "resource {}: no agent: {e}", res.id),
        }
    }
    let mut ctl = Controller::new(started.node.id);
    // Outcomes of fencing this node ran: as the DC, or asked by `hactl
    // fence` (both are recorded with Command::Fenced, in agreed order).
    let (fence_tx, mut fence_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut fencer = Fencer {
        tx: fence_tx,
        waiting: std::collections::VecDeque::new(),
    };
    let mut tick = tokio::time::interval(CONTROLLER_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    publish(&api, &mut started, &driver, &quorum, &ctl);
    let text = describe(&started, &driver, &ctl);
    info!(node = %started.node.name, node_id = started.node.id, cluster = %started.config.cluster.name, incarnation = started.incarnation, "started: {text}");
    status(&text);
    let mut ready = false;
    if let Some(w) = watchdog {
        info!(
            "systemd watchdog every {} ms; pinging every {} ms",
            w.as_millis(),
            ping_every.as_millis()
        );
    }

    // A managed unit that systemd also starts at boot runs outside the
    // cluster's control: say so once, without holding up the start.
    {
        let config = started.config.clone();
        tokio::task::spawn_blocking(move || {
            for w in crate::agents::systemd::boot_enabled_warnings(&config) {
                warn!("{}", w.trim_start_matches("warning: "));
            }
        });
    }

    // STATUS= also changes without a membership event (a link goes down,
    // packets are rejected): look once a second.
    let mut refresh = tokio::time::interval(STATUS_REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shown = String::new();
    // Set when this node must leave the cluster (a membership configuration
    // that differs from a peer's that was running first): when, and why.
    let mut leaving: Option<(tokio::time::Instant, String)> = None;
    // D-Bus requests that arrived while the ring was changing.
    let mut deferred: Vec<(tokio::time::Instant, crate::api::Request)> = Vec::new();
    // Set by SIGTERM: resources move away (or stop) before the node leaves;
    // by then at the latest.
    let mut stopping: Option<tokio::time::Instant> = None;
    // State service payloads totem pushed back, sent at the next turn.
    let mut state_out: std::collections::VecDeque<Vec<u8>> = std::collections::VecDeque::new();

    loop {
        let quorum_wait = quorum
            .poll_timeout()
            .map(|t| t.saturating_since(driver.now()));
        tokio::select! {
            _ = refresh.tick() => {
                publish(&api, &mut started, &driver, &quorum, &ctl);
                let text = describe(&started, &driver, &ctl);
                if ready && text != shown {
                    status(&text);
                    shown = text;
                }
            }
            Some(rec) = fence_rx.recv() => {
                let rec: crate::state::FenceRecord = rec;
                match &rec.error {
                    None => warn!(target = rec.target, device = %rec.device, "fencing: node {} fenced with {}", member_names(&started.config, NodeSet::single(rec.target)), rec.device),
                    Some(e) => error!(target = rec.target, "fencing: node {} could not be fenced: {e}; its resources stay where they are until it is", member_names(&started.config, NodeSet::single(rec.target))),
                }
                started.replica.submit(crate::state::Command::Fenced(rec), wall_now());
                controller_turn(&mut ctl, &mut started, &driver, &quorum, &executor, &mut state_out, &mut fencer);
                flush_out(&mut driver, &mut state_out);
            }
            Some(req) = requests.recv() => {
                let mut fencing = Fencing { fencer: &mut fencer, now: driver.now(), config_file: &opts.config };
                if let Some(later) = handle_request(req, tokio::time::Instant::now(), &mut started, &quorum, &mut ctl, &mut fencing) {
                    deferred.push(later);
                }
                controller_turn(&mut ctl, &mut started, &driver, &quorum, &executor, &mut state_out, &mut fencer);
                flush_out(&mut driver, &mut state_out);
            }
            _ = tick.tick() => {
                let mut fencing = Fencing { fencer: &mut fencer, now: driver.now(), config_file: &opts.config };
                for (since, req) in std::mem::take(&mut deferred) {
                    if let Some(later) = handle_request(req, since, &mut started, &quorum, &mut ctl, &mut fencing) {
                        deferred.push(later);
                    }
                }
                controller_turn(&mut ctl, &mut started, &driver, &quorum, &executor, &mut state_out, &mut fencer);
                flush_out(&mut driver, &mut state_out);
            }
            Some(ev) = op_events.recv() => {
                started.changes += 1;
                controller_op_event(&mut ctl, &ev);
                controller_turn(&mut ctl, &mut started, &driver, &quorum, &executor, &mut state_out, &mut fencer);
                flush_out(&mut driver, &mut state_out);
                publish(&api, &mut started, &driver, &quorum, &ctl);
            }
            _ = ping.tick() => {
                if watchdog.is_some() {
                    notify(&[NotifyState::Watchdog]);
                }
            }
            _ = hup.recv() => {
                notify(&[NotifyState::Reloading, NotifyState::monotonic_usec_now().unwrap_or(NotifyState::Custom(""))]);
                match load_config(&opts.config, log_diagnostic) {
                    Ok(config) if config.node_by_name(&started.node.name).is_some() => {
                        info!("configuration reloaded");
                        started.config = config;
                    }
                    Ok(_) => error!("reload refused: node {} is not in the new configuration; keeping the old one", started.node.name),
                    Err(msg) => error!("reload refused, keeping the running configuration: {msg}"),
                }
                publish(&api, &mut started, &driver, &quorum, &ctl);
                let text = describe(&started, &driver, &ctl);
                notify(&[NotifyState::Ready, NotifyState::Status(&text)]);
            }
            _ = async {
                match quorum_wait {
                    Some(w) => tokio::time::sleep(w).await,
                    None => std::future::pending().await,
                }
            } => {
                quorum.handle_timeout(driver.now());
                quorum_events(&mut quorum, &mut started);
                publish(&api, &mut started, &driver, &quorum, &ctl);
            }
            _ = driver.turn() => {
                // Most turns are a token passing by on an idle ring: only
                // events and state changes need the controller and the API.
                let changes_before = started.changes;
                let mut events = 0u32;
                while let Some(event) = driver.poll_event() {
                    events += 1;
                    started.replica.handle_event(&event);
                    match event {
                        TotemEvent::Regular { ring, members, joined } => {
                            started.ring = Some((ring, members));
                            ctl.handle_joined(joined);
                            let ids: Vec<u32> = members.iter().collect();
                            if let Err(e) = quorum.handle_membership(driver.now(), ring, &ids) {
                                warn!(error = %e, "quorum: membership refused");
                            }
                            while let Some(info) = quorum.poll_broadcast() {
                                let mut payload = vec![SERVICE_QUORUM];
                                payload.extend_from_slice(&info.to_bytes());
                                if driver.broadcast(payload).is_err() {
                                    warn!("quorum: totem pushed back; the node information goes with the next ring");
                                }
                            }
                            quorum_events(&mut quorum, &mut started);
                            publish(&api, &mut started, &driver, &quorum, &ctl);
                            let text = describe(&started, &driver, &ctl);
                            info!(ring_rep = ring.rep, ring_seq = ring.seq, members = %member_names(&started.config, members), joined = %member_names(&started.config, joined), "membership: {text}");
                            if ready {
                                status(&text);
                            } else {
                                // Ready once this node has formed or joined a ring.
                                notify(&[NotifyState::Ready, NotifyState::Status(&text)]);
                                ready = true;
                            }
                        }
                        TotemEvent::Transitional { members, left, .. } => {
                            if !left.is_empty() {
                                warn!(left = %member_names(&started.config, left), staying = %member_names(&started.config, members), "membership: nodes left the ring");
                            }
                        }
                        TotemEvent::Deliver { sender, payload, .. } => {
                            if payload.first() == Some(&SERVICE_CONTROL) {
                                match Message::from_bytes(&payload) {
                                    Ok(Message::Execute(msg)) => {
                                        ctl.handle_execute(sender, &msg, wall_now());
                                        // Ahead of a Sync this turn may still queue
                                        // (Controller::take_submits).
                                        for cmd in ctl.take_submits() {
                                            started.replica.submit(cmd, wall_now());
                                        }
                                    }
                                    Ok(Message::Leaving) => {
                                        info!(node = %member_names(&started.config, NodeSet::single(sender)), "controller: node {} is shutting down; its resources move away", member_names(&started.config, NodeSet::single(sender)));
                                        ctl.handle_leaving(sender);
                                    }
                                    Ok(Message::Fencing { target }) => {
                                        // Every node notes who fences whom;
                                        // this node's own announcement back
                                        // starts its devices
                                        // (Output::OperatorFence).
                                        info!(node = %member_names(&started.config, NodeSet::single(sender)), target = %member_names(&started.config, NodeSet::single(target)), "controller: node {} fences node {} on an operator's request", member_names(&started.config, NodeSet::single(sender)), member_names(&started.config, NodeSet::single(target)));
                                        ctl.handle_fencing(sender, target, driver.now());
                                    }
                                    Err(e) => warn!(sender, error = %e, "controller: message refused"),
                                }
                            }
                            if payload.first() == Some(&SERVICE_QUORUM) {
                                match NodeInfo::from_bytes(&payload[1..]) {
                                    Ok(info) => {
                                        match quorum.handle_node_info(driver.now(), sender, info) {
                                            Ok(()) => {}
                                            // Sent in one ring, delivered in the next (extended
                                            // virtual synchrony): expected after a ring change.
                                            Err(e @ QuorumError::OtherRing { .. }) => debug!(sender, error = %e, "quorum: node information of an earlier ring"),
                                            Err(e) => warn!(sender, error = %e, "quorum: node information refused"),
                                        }
                                    }
                                    Err(e) => warn!(sender, error = %e, "quorum: malformed node information"),
                                }
                                let changed = quorum_events(&mut quorum, &mut started);
                                // Votes and sync state change without a flip of quorate.
                                publish(&api, &mut started, &driver, &quorum, &ctl);
                                if changed {
                                    let text = describe(&started, &driver, &ctl);
                                    info!(quorate = started.quorate, "quorum: {text}");
                                    status(&text);
                                }
                            }
                        }
                    }
                }
                let state_result = state_turn(&opts, &mut started, &mut driver, &mut state_out, &mut ctl);
                if events > 0 || started.changes != changes_before {
                    if let Some(config) = replicated_config(&started)
                        && config != started.config
                    {
                        apply_resource_config(&mut started, config, &executor);
                        started.changes += 1;
                        api.publish_config(config::canonical_redacted(&started.config));
                    }
                    controller_turn(&mut ctl, &mut started, &driver, &quorum, &executor, &mut state_out, &mut fencer);
                    publish(&api, &mut started, &driver, &quorum, &ctl);
                }
                flush_out(&mut driver, &mut state_out);
                if let Err(refusal) = state_result
                    && leaving.is_none()
                {
                    // Stay a moment, so that the peers deliver this node's
                    // own summary and can say why it left.
                    error!("membership: {refusal}");
                    leaving = Some((tokio::time::Instant::now() + LEAVE_GRACE, refusal));
                }
            }
            _ = async {
                match &leaving {
                    Some((at, _)) => tokio::time::sleep_until(*at).await,
                    None => std::future::pending().await,
                }
            } => {
                let refusal = leaving.take().map(|(_, r)| r).unwrap_or_default();
                refusal_line(&format!("hactld: leaving the cluster: {refusal}"));
                status(&format!("failed: {refusal}"));
                notify(&[NotifyState::Stopping]);
                return ExitCode::from(EXIT_CONFIG);
            }
            _ = term.recv() => {
                if begin_stop(&mut stopping, &mut ctl, &started) {
                    break;
                }
            }
            _ = int.recv() => {
                if begin_stop(&mut stopping, &mut ctl, &started) {
                    break;
                }
            }
        }
        if let Some(deadline) = stopping {
            let began = deadline - STOP_DEADLINE;
            // The others know this node is shutting down once its own
            // announcement came back in agreed order.
            let announced = ctl.ring_view().shutting_down.contains(started.node.id)
                || alone(&ctl, &started)
                || began.elapsed() >= ANNOUNCE_WAIT;
            if announced
                && !Controller::has_active_resources(
                    &started.config,
                    started.replica.state(),
                    started.node.id,
                )
                && !ctl.has_local_ops()
            {
                info!("stopping: no resource is active on this node any more; leaving the ring");
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                error!(
                    "stopping: resources are still active on this node after {} s (the DC did not move or stop them); leaving anyway, they may keep running",
                    STOP_DEADLINE.as_secs()
                );
                break;
            }
        }
    }
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    info!("stopped");
    ExitCode::SUCCESS
}

/// After totem's events: sends what the replicated state asks for (in
/// order, keeping what totem pushes back), persists the state when it
/// changed, and handles its events. `Err` when this node must leave: its
/// membership configuration differs from a peer's and it is the one that
/// started later (of two that started in the same second, the higher id).
fn state_turn(
    opts: &Options,
    started: &mut Started,
    driver: &mut Driver,
    out: &mut std::collections::VecDeque<Vec<u8>>,
    ctl: &mut Controller,
) -> Result<(), String> {
    while let Some(p) = started.replica.poll_broadcast() {
        out.push_back(p);
    }
    while let Some(p) = out.front() {
        if driver.broadcast(p.clone()).is_err() {
            break;
        }
        out.pop_front();
    }
    if started.replica.take_dirty()
        && let Err(e) = crate::state::persist::save(&opts.state_dir, started.replica.state())
    {
        error!(error = %e, "state: cannot save the cluster state");
    }
    while let Some(e) = started.replica.poll_event() {
        started.changes += 1;
        use crate::state::replica::ReplicaEvent;
        match e {
            ReplicaEvent::Applied { origin, cmd } => {
                debug!(origin, ?cmd, "state: applied");
                if let crate::state::Command::Fenced(rec) = &cmd
                    && rec.error.is_none()
                {
                    ctl.handle_fenced(rec.target);
                }
                ctl.handle_applied(&started.config, &cmd);
            }
            ReplicaEvent::Refused {
                origin,
                cmd,
                reason,
            } => {
                warn!(origin, ?cmd, %reason, "state: command refused");
                ctl.handle_refused(&cmd);
            }
            ReplicaEvent::Synced { ring, notes } => {
                ctl.handle_state_synced();
                info!(
                    ring_rep = ring.rep,
                    ring_seq = ring.seq,
                    "state: synchronised with the ring"
                );
                for n in notes {
                    warn!("state: {n}");
                }
            }
            ReplicaEvent::MembershipMismatch { node, message } => {
                let name = member_names(&started.config, NodeSet::single(node));
                let mine = started.incarnation;
                let me = started.node.id;
                match driver.peer_incarnation(node) {
                    Some(theirs) if (mine, me) > (theirs, node) => {
                        return Err(format!(
                            "the membership configuration differs from node {name}'s, which was running first: {message}; make {} the same on every node (`hactl config show --digest` must print the same digest everywhere), then start hactld again",
                            opts.config.display()
                        ));
                    }
                    _ => {
                        error!(node = %name, "membership: node {name} runs a different membership configuration: {message}; it started later and leaves the cluster")
                    }
                }
            }
            ReplicaEvent::Malformed { sender, error } => {
                warn!(sender, %error, "state: malformed message")
            }
        }
    }
    Ok(())
}

/// Hands the API the current state; the API task wakes only if it changed.
fn publish(
    api: &crate::api::ApiHandle,
    s: &mut Started,
    driver: &Driver,
    quorum: &Quorum,
    ctl: &Controller,
) {
    let q = quorum.status();
    let mut status = crate::api::ClusterStatus::build(
        &s.config,
        s.node.id,
        s.ring,
        &driver.links(),
        &driver.stats().dropped,
        &q,
    );
    // Building the summary runs the scheduler's view: only when something
    // it shows may have changed (at least every minute, for migrate
    // lifetimes that end), not at every token.
    let now_wall = wall_now();
    let key: SummaryKey = (
        s.changes,
        ctl.dc(),
        ctl.is_idle(),
        ctl.transitions(),
        quorum.is_quorate(),
        s.ring,
        now_wall.0 / 60_000,
    );
    let fresh = match &s.summary {
        Some((k, summary)) if *k == key => summary.clone(),
        _ => {
            let summary = controller::summary::build(
                &s.config,
                s.replica.state(),
                ctl,
                s.ring.map_or(NodeSet::EMPTY, |(_, m)| m),
                now_wall,
                driver.now(),
            );
            s.summary = Some((key, summary.clone()));
            summary
        }
    };
    status.controller = Some(fresh);
    api.publish(status, q);
}

/// Fences node `target` with its fence levels, in order: a level succeeds
/// when every device in it reboots (or powers off) the node; the first
/// level that succeeds ends it.
async fn fence_node(
    config: &Config,
    me: crate::totem::NodeId,
    target: crate::totem::NodeId,
) -> crate::state::FenceRecord {
    use crate::state::{FenceAction, FenceRecord};
    let record = |device: String, error: Option<String>| FenceRecord {
        at: wall_now(),
        target,
        device,
        action: FenceAction::Reboot,
        error,
        executor: me,
    };
    let Some(node) = config.nodes.iter().find(|n| n.id == target) else {
        return record(
            String::new(),
            Some(format!("node {target} is not configured")),
        );
    };
    if node.fence_levels.is_empty() {
        return record(
            String::new(),
            Some(format!(
                "node {} has no fence_levels: add fence_levels = [[\"DEVICE\"]] to its [[node]]",
                node.name
            )),
        );
    }
    let mut errors = Vec::new();
    for level in &node.fence_levels {
        let mut failed = None;
        for id in level {
            let Some(dev) = config.fence_devices.iter().find(|d| d.id == *id) else {
                failed = Some(format!("fence device {id} is not configured"));
                break;
            };
            let device = match crate::fencing::device_from_config(dev) {
                Ok(d) => d,
                Err(e) => {
                    failed = Some(format!("{id}: {e}"));
                    break;
                }
            };
            if dev.delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(dev.delay_ms)).await;
            }
            if let Err(e) = device.reboot(device.timeout()).await {
                failed = Some(format!("{id}: {e}"));
                break;
            }
        }
        match failed {
            None => return record(level.join("+"), None),
            Some(e) => errors.push(e),
        }
    }
    record(
        node.fence_levels
            .last()
            .map(|l| l.join("+"))
            .unwrap_or_default(),
        Some(errors.join("; ")),
    )
}

/// The replicated resource configuration, if `hactl config apply` made one
/// and it parses (it was validated when applied; a failure is logged).
fn replicated_config(started: &Started) -> Option<Config> {
    let epoch = started.replica.state().config.as_ref()?;
    match epoch.parse() {
        Ok(c) => Some(c),
        Err(e) => {
            error!(
                epoch = epoch.epoch,
                "state: the replicated configuration does not parse; keeping the one in force: {e}"
            );
            None
        }
    }
}

/// Switches to a new resource configuration: agents of new or changed
/// resources are registered with the executor, those of removed ones
/// dropped (the DC has stopped them or stops them now: they are orphans).
fn apply_resource_config(
    started: &mut Started,
    config: Config,
    executor: &crate::executor::ExecutorHandle,
) {
    for old in &started.config.resources {
        if !config.resources.iter().any(|r| r.id == old.id) {
            info!(resource = %old.id, "configuration: resource {} removed", old.id);
        }
    }
    for res in &config.resources {
        let before = started.config.resources.iter().find(|r| r.id == res.id);
        if before == Some(res) {
            continue;
        }
        match crate::agents::agent_from_config(res) {
            Ok(agent) => executor.register(
                &res.id,
                agent,
                crate::executor::ResourceSpec::from_config(res),
            ),
            Err(e) => error!(resource = %res.id, "resource {}: no agent: {e}", res.id),
        }
        info!(resource = %res.id, "configuration: resource {} {}", res.id, if before.is_some() { "changed" } else { "added" });
    }
    let epoch = started
        .replica
        .state()
        .config
        .as_ref()
        .map_or(0, |e| e.epoch);
    info!(
        epoch,
        "configuration: epoch {epoch} in force ({} resources)",
        config.resources.len()
    );
    started.config = config;
}

/// A change asked for over D-Bus. Refused unless this node is in a settled,
/// quorate ring: a command made in a minority partition would be lost or
/// fight the majority's when the partition heals.
///
/// While the ring is changing (a membership being formed or synchronised)
/// the request waits, up to [`REQUEST_SETTLE_WAIT`]: `Some` gives it back
/// to be tried again.
fn handle_request(
    req: crate::api::Request,
    since: tokio::time::Instant,
    started: &mut Started,
    quorum: &Quorum,
    ctl: &mut Controller,
    fencing: &mut Fencing,
) -> Option<(tokio::time::Instant, crate::api::Request)> {
    use crate::api::Request;
    let settling = started.ring.is_none()
        || quorum.status().syncing
        || started.replica.is_syncing()
        || ctl.dc().is_none();
    if settling && since.elapsed() < REQUEST_SETTLE_WAIT {
        return Some((since, req));
    }
    let refusal = if settling {
        Some(format!(
            "this node has not joined a settled ring within {} s; check `hactl status` and try again",
            REQUEST_SETTLE_WAIT.as_secs()
        ))
    } else if !quorum.is_quorate() {
        Some("this node's partition has no quorum: changes are refused here; run the command on a node of the quorate partition".to_string())
    } else {
        None
    };
    match req {
        Request::Submit { command, reply } => {
            if let Some(r) = refusal {
                let _ = reply.send(Err(r));
                return None;
            }
            // Starting a member of a stopped group (or of a stopped clone)
            // would not start it, and must not undo the operator's stop of
            // the group behind their back: say what to start instead.
            if let crate::state::Command::SetTargetRole {
                resource,
                role: Some(crate::config::Role::Started),
            } = &command
                && let Some(around) = started
                    .replica
                    .state()
                    .stopped_container(&started.config, resource)
            {
                let _ = reply.send(Err(format!(
                    "{resource} is part of {around}, which is stopped (target role Stopped); \
                     a member does not run without it: start it with hactl resource start {around}"
                )));
                return None;
            }
            info!(?command, "api: submitting");
            started.replica.submit(command, wall_now());
            let _ = reply.send(Ok(()));
        }
        Request::ApplyConfig { text, file, reply } => {
            if let Some(r) = refusal {
                let _ = reply.send(Err(r));
                return None;
            }
            // The first apply is compared with the file's configuration in
            // force (epoch 0).
            let running = crate::state::ConfigEpoch {
                epoch: 0,
                text: config::canonical(&started.config),
                digest: crate::state::config_digest(&config::canonical(&started.config)),
                stamp: Default::default(),
            };
            let current = started.replica.state().config.clone().unwrap_or(running);
            match crate::state::prepare_config(&text, Path::new(&file), Some(&current)) {
                Ok(cmd) => {
                    let epoch = match &cmd {
                        crate::state::Command::Configure { epoch, .. } => *epoch,
                        _ => 0,
                    };
                    let new = crate::config::parse_str(&text, Path::new(&file)).ok();
                    let count = new.as_ref().map_or(0, |l| l.config.resources.len());
                    // The latest change wins: say which roles set with
                    // hactl resource start|stop the file replaces.
                    let replaced: String = new
                        .map(|l| {
                            started
                                .replica
                                .state()
                                .target_roles_replaced_by(&started.config, &l.config)
                        })
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(id, ours, theirs)| {
                            let verb = if ours == crate::config::Role::Stopped { "stop" } else { "start" };
                            format!(
                                "\n  {id}: target_role = \"{}\" in {file} replaces hactl resource {verb} {id}",
                                theirs.as_str()
                            )
                        })
                        .collect();
                    info!(epoch, file = %file, "api: applying configuration epoch {epoch}");
                    started.replica.submit(cmd, wall_now());
                    let _ = reply.send(Ok(format!(
                        "{file}: applied as configuration epoch {epoch} ({count} resources); every node takes it in agreed order{replaced}"
                    )));
                }
                Err(e) => {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
        Request::Fence { node, reply } => {
            let refusal = refusal.or_else(|| {
                fence_refusal(&started.config, fencing.config_file, started.node.id, node)
            });
            if let Some(r) = refusal {
                let _ = reply.send(Err(r));
                return None;
            }
            let name = member_names(&started.config, NodeSet::single(node));
            info!(target = %name, "fencing: announcing to the ring that this node fences node {name} (requested with hactl fence)");
            // Every node learns who fences whom before the devices run, so
            // that a DC that sees the node leave awaits this fencing's
            // record instead of fencing it again (src/controller,
            // announce_fencing); the devices start at
            // Output::OperatorFence (controller_turn).
            ctl.announce_fencing(node, fencing.now);
            fencing.fencer.waiting.push_back(OperatorFencing {
                target: node,
                reply,
                since: std::time::Instant::now(),
            });
        }
    }
    None
}

/// What [`handle_request`] needs to start a fencing: the fencer, the clock
/// of the controller, and the configuration file's name for messages.
struct Fencing<'a> {
    fencer: &'a mut Fencer,
    now: crate::time::Instant,
    config_file: &'a Path,
}

/// The fencing this node's daemon runs: where outcomes go (the main loop's
/// `fence_rx`, which records them with `Command::Fenced`), and the `hactl
/// fence` callers whose fencing was announced to the ring and has not
/// started yet.
struct Fencer {
    tx: tokio::sync::mpsc::UnboundedSender<crate::state::FenceRecord>,
    /// Oldest first; the controller starts them in the same order
    /// (`Output::OperatorFence`), each within `FENCE_ANNOUNCE_WAIT`.
    waiting: std::collections::VecDeque<OperatorFencing>,
}

/// A `hactl fence` call whose devices have not started yet.
struct OperatorFencing {
    target: crate::totem::NodeId,
    reply: tokio::sync::oneshot::Sender<Result<String, String>>,
    /// When the request was taken (the answer's duration counts from it).
    since: std::time::Instant,
}

impl Fencer {
    /// Answers the caller of an announced fencing of `target` that will
    /// not run with `reason`, and records it as failed (through
    /// `fence_rx`, as any outcome) so that no node awaits it any longer.
    fn refuse_operator_fencing(
        &mut self,
        config: &Config,
        me: crate::totem::NodeId,
        target: crate::totem::NodeId,
        reason: String,
    ) {
        let name = member_names(config, NodeSet::single(target));
        let Some(i) = self.waiting.iter().position(|w| w.target == target) else {
            error!(target = %name, "fencing: the controller refused an operator's fencing of node {name} that nobody requested here (a bug)");
            return;
        };
        let waiting = self.waiting.remove(i).expect("found");
        let _ = self.tx.send(crate::state::FenceRecord {
            at: wall_now(),
            target,
            device: String::new(),
            action: crate::state::FenceAction::Reboot,
            error: Some(reason.clone()),
            executor: me,
        });
        let _ = waiting
            .reply
            .send(Err(format!("node {name} was not fenced: {reason}")));
    }

    /// Runs the fencing of `target` an operator asked for (its
    /// announcement came back) off the main loop: the devices may take
    /// their timeouts; the record goes the way of the controller's fencing
    /// (`fence_rx`), and the caller is answered when it is over.
    fn start_operator_fencing(
        &mut self,
        config: &Config,
        me: crate::totem::NodeId,
        target: crate::totem::NodeId,
    ) {
        let name = member_names(config, NodeSet::single(target));
        let Some(i) = self.waiting.iter().position(|w| w.target == target) else {
            error!(target = %name, "fencing: the controller asked to run an operator's fencing of node {name} that nobody requested here (a bug); not fencing");
            return;
        };
        let waiting = self.waiting.remove(i).expect("found");
        warn!(target = %name, "fencing: fencing node {name} (requested with hactl fence)");
        let tx = self.tx.clone();
        let config = config.clone();
        tokio::spawn(async move {
            let rec = fence_node(&config, me, target).await;
            let took = waiting.since.elapsed();
            let answer = match &rec.error {
                None => Ok(format!(
                    "node {name} fenced ({}) with {} in {:.1} s",
                    rec.action.as_str(),
                    rec.device,
                    took.as_secs_f64()
                )),
                Some(e) => Err(format!(
                    "node {name} could not be fenced (after {:.1} s): {e}",
                    took.as_secs_f64()
                )),
            };
            let _ = tx.send(rec);
            let _ = waiting.reply.send(answer);
        });
    }
}

/// Why `hactl fence` of node `target` is refused on node `me` (quorum
/// aside), or None: `target` is this node, fencing is off, or `target` has
/// no fence levels.
fn fence_refusal(
    config: &Config,
    config_file: &Path,
    me: crate::totem::NodeId,
    target: crate::totem::NodeId,
) -> Option<String> {
    let name = member_names(config, NodeSet::single(target));
    let file = config_file.display();
    if target == me {
        return Some(format!(
            "node {name} is the node this hactld runs on, and a node does not fence itself: run hactl fence {name} on another node of the cluster"
        ));
    }
    if config.cluster.fencing_disabled {
        return Some(format!(
            "fencing is disabled in this cluster ([cluster] fencing_disabled_i_understand_split_brain = true in {file}): add a [[fence_device]] and fence_levels for {name}, remove that setting, and apply the configuration"
        ));
    }
    let node = config.nodes.iter().find(|n| n.id == target)?;
    if node.fence_levels.is_empty() {
        return Some(format!(
            "node {name} has no fence_levels: add a [[fence_device]] that can power it off and fence_levels = [[\"DEVICE\"]] to its [[node]] in {file}, then apply the configuration (hactl fence-device status DEVICE checks the device first)"
        ));
    }
    None
}

/// Whether no other node would notice this one leave: not in a settled
/// ring, or alone in it.
fn alone(ctl: &Controller, started: &Started) -> bool {
    ctl.dc().is_none() || started.ring.is_none_or(|(_, members)| members.len() <= 1)
}

/// The first SIGTERM (or SIGINT): ask the cluster to move this node's
/// resources away; true when the node can leave at once (a second signal,
/// or nothing runs here).
fn begin_stop(
    stopping: &mut Option<tokio::time::Instant>,
    ctl: &mut Controller,
    started: &Started,
) -> bool {
    if stopping.is_some() {
        warn!("stopping: a second signal; leaving now");
        return true;
    }
    let idle_here = !Controller::has_active_resources(
        &started.config,
        started.replica.state(),
        started.node.id,
    ) && !ctl.has_local_ops();
    if idle_here && alone(ctl, started) {
        return true;
    }
    if idle_here {
        // Nothing to move, but say so, or the others take this node as lost
        // (and fence it when fencing is on).
        info!("stopping: announcing a clean shutdown to the ring");
    } else {
        info!(
            "stopping: moving this node's resources away (or stopping them) before leaving the ring"
        );
        notify(&[NotifyState::Status("stopping: moving resources away")]);
    }
    ctl.begin_shutdown();
    *stopping = Some(tokio::time::Instant::now() + STOP_DEADLINE);
    false
}

/// Tells the controller where the ring stands, lets it work, and carries
/// out what it asks for.
fn controller_turn(
    ctl: &mut Controller,
    started: &mut Started,
    driver: &Driver,
    quorum: &Quorum,
    executor: &crate::executor::ExecutorHandle,
    out: &mut std::collections::VecDeque<Vec<u8>>,
    fencer: &mut Fencer,
) {
    let members = started.ring.map_or(NodeSet::EMPTY, |(_, m)| m);
    let settled =
        started.ring.is_some() && !quorum.status().syncing && !started.replica.is_syncing();
    let fencing =
        !started.config.fence_devices.is_empty() && !started.config.cluster.fencing_disabled;
    ctl.handle_ring(members, settled, quorum.is_quorate(), fencing);
    ctl.tick(
        &started.config,
        started.replica.state(),
        wall_now(),
        driver.now(),
    );
    while let Some(o) = ctl.poll_output() {
        match o {
            controller::Output::Broadcast(p) => out.push_back(p),
            controller::Output::Submit(cmd) => started.replica.submit(cmd, wall_now()),
            controller::Output::Run {
                resource,
                op,
                interval_ms,
                timeout_ms,
            } => {
                let Some(res) = started.config.resources.iter().find(|r| r.id == resource) else {
                    warn!(resource = %resource, "controller: asked to run {} on an unknown resource", op.as_str());
                    continue;
                };
                info!(resource = %resource, operation = op.as_str(), interval_ms, "controller: running {} {resource}", op.as_str());
                executor.execute(crate::agents::OpRequest {
                    resource,
                    action: agent_action(op),
                    params: res.params.clone(),
                    timeout: Duration::from_millis(timeout_ms),
                    interval: Duration::from_millis(interval_ms),
                    check_level: 0,
                });
            }
            controller::Output::OperatorFence { target } => {
                fencer.start_operator_fencing(&started.config, started.node.id, target)
            }
            controller::Output::OperatorFenceRefused { target, reason } => {
                fencer.refuse_operator_fencing(&started.config, started.node.id, target, reason)
            }
            controller::Output::Fence { target } => {
                let tx = fencer.tx.clone();
                let config = started.config.clone();
                let me = started.node.id;
                warn!(target = %member_names(&started.config, NodeSet::single(target)), "fencing: fencing node {}", member_names(&started.config, NodeSet::single(target)));
                tokio::spawn(async move {
                    let rec = fence_node(&config, me, target).await;
                    let _ = tx.send(rec);
                });
            }
            controller::Output::ForgetFailures { resource } => {
                executor.cleanup(resource.as_deref())
            }
            controller::Output::StartMonitors { resource, promoted } => {
                executor.start_monitors(&resource, promoted)
            }
            controller::Output::Note(text) => info!("controller: {text}"),
        }
    }
    while let Some(p) = started.replica.poll_broadcast() {
        out.push_back(p);
    }
}

/// Sends what is queued for totem, keeping what it pushes back.
fn flush_out(driver: &mut Driver, out: &mut std::collections::VecDeque<Vec<u8>>) {
    while let Some(p) = out.front() {
        if driver.broadcast(p.clone()).is_err() {
            break;
        }
        out.pop_front();
    }
}

fn agent_action(op: config::OpName) -> crate::agents::AgentAction {
    use crate::agents::AgentAction as A;
    match op {
        config::OpName::Start => A::Start,
        config::OpName::Stop => A::Stop,
        config::OpName::Monitor => A::Monitor,
        config::OpName::Promote => A::Promote,
        config::OpName::Demote => A::Demote,
    }
}

/// A local operation's result (or a recurring monitor's change) goes to the
/// controller, which records it in the replicated state.
fn controller_op_event(ctl: &mut Controller, ev: &crate::executor::OpEvent) {
    use crate::agents::AgentAction as A;
    let op = match ev.action {
        A::Start => config::OpName::Start,
        A::Stop => config::OpName::Stop,
        A::Monitor => config::OpName::Monitor,
        A::Promote => config::OpName::Promote,
        A::Demote => config::OpName::Demote,
        A::MetaData | A::ValidateAll => return,
    };
    let rc = ev.code.code();
    if ev.failed {
        debug!(resource = %ev.resource, operation = op.as_str(), interval_ms = ev.interval.as_millis() as u64, rc, exit_reason = %ev.exit_reason, fail_count = ev.fail_count, "{} {} failed: rc {rc}{}", op.as_str(), ev.resource, if ev.exit_reason.is_empty() { String::new() } else { format!(" ({})", ev.exit_reason) });
    } else {
        info!(resource = %ev.resource, operation = op.as_str(), interval_ms = ev.interval.as_millis() as u64, rc, duration_ms = ev.duration.as_millis() as u64, "{} {}: rc {rc}", op.as_str(), ev.resource);
    }
    ctl.handle_op_result(
        &ev.resource,
        op,
        ev.interval.as_millis() as u64,
        rc,
        &ev.exit_reason,
        ev.failed,
        ev.fail_count,
        wall_now(),
    );
}

/// Logs quorum events and tracks the quorate flag; true if it changed.
fn quorum_events(quorum: &mut Quorum, started: &mut Started) -> bool {
    let before = started.quorate;
    while let Some(e) = quorum.poll_event() {
        match e {
            QuorumEvent::Gained { ring } => info!(ring_seq = ring.seq, "quorum: gained"),
            QuorumEvent::Lost { ring, reason } => {
                warn!(ring_seq = ring.seq, reason = %reason, "quorum: lost")
            }
            QuorumEvent::Synced { .. } => {}
            QuorumEvent::ExpectedVotesLowered {
                expected_votes,
                quorum,
                ..
            } => {
                info!(
                    expected_votes,
                    quorum, "quorum: last_man_standing lowered the expected votes"
                )
            }
        }
    }
    started.quorate = quorum.is_quorate();
    started.quorate != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn three_nodes() -> Config {
        let text = r#"
[cluster]
name = "t"
[[node]]
name = "node1"
id = 1
addresses = ["10.0.0.1"]
[[node]]
name = "node2"
id = 2
addresses = ["10.0.0.2"]
[[node]]
name = "node3"
id = 3
addresses = ["10.0.0.3"]
"#;
        config::parse_str(text, Path::new("t.toml"))
            .expect("valid")
            .config
    }

    #[test]
    fn hactl_fence_is_refused_for_this_node_with_fencing_off_or_without_levels() {
        let text = |extra_cluster: &str| {
            format!(
                "[cluster]\nname = \"t\"\n{extra_cluster}\n\
                 [[node]]\nname = \"node1\"\nid = 1\naddresses = [\"10.0.0.1\"]\n\
                 [[node]]\nname = \"node2\"\nid = 2\naddresses = [\"10.0.0.2\"]\nfence_levels = [[\"pdu\"]]\n\
                 [[node]]\nname = \"node3\"\nid = 3\naddresses = [\"10.0.0.3\"]\n\
                 [[fence_device]]\nid = \"pdu\"\nkind = \"agent\"\nagent = \"fence_apc\"\n"
            )
        };
        let on = config::parse_str(&text(""), Path::new("t.toml"))
            .expect("valid")
            .config;
        let file = Path::new("/etc/hactl/cluster.toml");
        assert_eq!(fence_refusal(&on, file, 1, 2), None);
        let me = fence_refusal(&on, file, 2, 2).unwrap();
        assert!(
            me.contains("node node2 is the node this hactld runs on")
                && me.contains("run hactl fence node2 on another node"),
            "{me}"
        );
        let none = fence_refusal(&on, file, 1, 3).unwrap();
        assert!(
            none.contains("node node3 has no fence_levels")
                && none.contains("/etc/hactl/cluster.toml"),
            "{none}"
        );
        let off = config::parse_str(
            &text("fencing_disabled_i_understand_split_brain = true"),
            Path::new("t.toml"),
        )
        .expect("valid")
        .config;
        let e = fence_refusal(&off, file, 1, 2).unwrap();
        assert!(
            e.contains("fencing is disabled") && e.contains("/etc/hactl/cluster.toml"),
            "{e}"
        );
    }

    #[test]
    fn local_node_is_found_by_flag_then_hostname_then_address() {
        let c = three_nodes();
        let a2: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(
            pick_local_node(&c, Some("node3"), "node1", &[a2])
                .unwrap()
                .id,
            3
        );
        assert_eq!(
            pick_local_node(&c, None, "node1.example.com", &[a2])
                .unwrap()
                .id,
            1
        );
        assert_eq!(pick_local_node(&c, None, "box", &[a2]).unwrap().id, 2);
        let e = pick_local_node(&c, None, "box", &[]).unwrap_err();
        assert!(e.contains("pass --node NAME"), "{e}");
        let e = pick_local_node(&c, Some("node9"), "box", &[]).unwrap_err();
        assert!(
            e.contains("no such node") && e.contains("node1, node2, node3"),
            "{e}"
        );
    }
}
