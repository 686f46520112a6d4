//! The verbs that change the cluster, after crmsh: `standby [NODE]`,
//! `online [NODE]`, `migrate RESOURCE [NODE] [--lifetime D]`,
//! `unmigrate RESOURCE`, `cleanup [RESOURCE] [--node NODE]`,
//! `resource stop|start|restart RESOURCE`, `config apply FILE` and
//! `fence NODE`. Each asks the local hactld over D-Bus
//! (docs/api.md); hactld checks the caller (root or group haclient) and the
//! names.
//!
//! The placement verbs then wait until the cluster has settled (see
//! [`Waiter`]): they poll `Status()` every 100 ms until the controller is
//! idle after a new transition (or stayed idle for 1 s: nothing needed to
//! change), show what is still moving on stderr when it is a terminal,
//! and print where the affected resources run. `--no-wait` returns once
//! hactld has taken the change; `--timeout` bounds the wait. `config
//! apply` waits the same way, after this node runs the new configuration
//! epoch (`controller.config_epoch`), and then checks that the
//! configuration in force is the file's.
//!
//! `resource restart` is done here, as crmsh does it: `ResourceStop`, wait
//! until the cluster settled with the resource stopped everywhere, then
//! `ResourceStart` and wait again (`--no-wait` skips only that last wait;
//! `--timeout` bounds each wait). If the resource did not stop, it is not
//! started again: it stays stopped and hactl exits 1 saying so.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use super::show::placement;
use super::status::{Failure, call_failure, connect, fetch_status, runtime};
use crate::api::{Cluster1ClientProxy, ClusterStatus};
use crate::controller::summary::{ControllerSummary, ResourceSummary};

/// Exit status when the cluster did not settle within `--timeout`.
pub const EXIT_TIMEOUT: u8 = 4;
/// Exit status when interrupted (Ctrl-C) while waiting: 128 + SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;
/// How often the wait polls `Status()`.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// An idle controller whose transition counter did not move is taken as
/// "nothing needed to change" after this long.
pub const IDLE_GRACE: Duration = Duration::from_secs(1);

/// Waiting for the cluster to settle.
#[derive(Args, Debug, Clone)]
pub struct WaitArgs {
    /// Return once hactld has taken the change, without waiting for the
    /// cluster to settle.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for the cluster to settle; past it hactl exits 4
    /// saying what is still moving (the change stays in force).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
}

#[derive(Args, Debug)]
pub struct NodeArgs {
    /// The node (default: this node).
    pub node: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The resource, clone or group to move.
    pub resource: String,
    /// Where to move it (default: away from the node it runs on now).
    pub node: Option<String>,
    /// How long the preference lasts, e.g. 30s, 10m, 1h30m, 2d or ISO 8601
    /// (PT10M); default: until `hactl unmigrate`.
    #[arg(long, value_name = "DURATION", value_parser = parse_lifetime)]
    pub lifetime: Option<Duration>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Args, Debug)]
pub struct UnmigrateArgs {
    /// The resource, clone or group whose migrate preference to forget.
    pub resource: String,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Args, Debug)]
pub struct CleanupArgs {
    /// The resource (default: every resource).
    pub resource: Option<String>,
    /// Only on this node (default: every node).
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Args, Debug)]
pub struct ResourceArgs {
    /// The resource, clone or group.
    pub resource: String,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `hactl resource …`.
#[derive(Subcommand, Debug)]
pub enum ResourceCommand {
    /// Stop RESOURCE wherever it runs and keep it stopped (its target role
    /// becomes Stopped, on every node, until `hactl resource start`).
    Stop(ResourceArgs),
    /// Let RESOURCE run again (its target role becomes Started, also over
    /// a configuration's meta target_role = "stopped" applied before; the
    /// latest change wins).
    Start(ResourceArgs),
    /// Stop RESOURCE, wait until it is stopped everywhere, then start it
    /// again (--timeout bounds each wait; --no-wait skips only the last).
    Restart(ResourceArgs),
}

/// One placement verb, as given.
pub enum Verb<'a> {
    Standby(&'a NodeArgs),
    Online(&'a NodeArgs),
    Migrate(&'a MigrateArgs),
    Unmigrate(&'a UnmigrateArgs),
    Cleanup(&'a CleanupArgs),
    ResourceStop(&'a ResourceArgs),
    ResourceStart(&'a ResourceArgs),
}

impl Verb<'_> {
    fn wait(&self) -> &WaitArgs {
        match self {
            Verb::Standby(a) | Verb::Online(a) => &a.wait,
            Verb::Migrate(a) => &a.wait,
            Verb::Unmigrate(a) => &a.wait,
            Verb::Cleanup(a) => &a.wait,
            Verb::ResourceStop(a) | Verb::ResourceStart(a) => &a.wait,
        }
    }

    fn method(&self) -> &'static str {
        match self {
            Verb::Standby(_) => "Standby",
            Verb::Online(_) => "Online",
            Verb::Migrate(_) => "Migrate",
            Verb::Unmigrate(_) => "Unmigrate",
            Verb::Cleanup(_) => "Cleanup",
            Verb::ResourceStop(_) => "ResourceStop",
            Verb::ResourceStart(_) => "ResourceStart",
        }
    }

    /// The resource whose placement to print afterwards; None: whatever
    /// moved.
    fn resource(&self) -> Option<&str> {
        match self {
            Verb::Standby(_) | Verb::Online(_) => None,
            Verb::Migrate(a) => Some(&a.resource),
            Verb::Unmigrate(a) => Some(&a.resource),
            Verb::Cleanup(a) => a.resource.as_deref(),
            Verb::ResourceStop(a) | Verb::ResourceStart(a) => Some(&a.resource),
        }
    }

    async fn call(&self, proxy: &Cluster1ClientProxy<'static>) -> zbus::Result<()> {
        let or_empty = |s: &Option<String>| s.clone().unwrap_or_default();
        match self {
            Verb::Standby(a) => proxy.standby(&or_empty(&a.node)).await,
            Verb::Online(a) => proxy.online(&or_empty(&a.node)).await,
            Verb::Migrate(a) => {
                let secs = a.lifetime.map_or(0, |d| d.as_secs());
                proxy.migrate(&a.resource, &or_empty(&a.node), secs).await
            }
            Verb::Unmigrate(a) => proxy.unmigrate(&a.resource).await,
            Verb::Cleanup(a) => {
                proxy
                    .cleanup(&or_empty(&a.resource), &or_empty(&a.node))
                    .await
            }
            Verb::ResourceStop(a) => proxy.resource_stop(&a.resource).await,
            Verb::ResourceStart(a) => proxy.resource_start(&a.resource).await,
        }
    }

    /// The resource the change is made on, as hactld resolves the name
    /// given (a clone instance or a cloned primitive stands for its clone,
    /// a group member's migrate moves its group; see
    /// [`crate::api::resolve`]); None: no resource named.
    fn acts_on(&self, status: &ClusterStatus) -> Option<String> {
        use crate::api::resolve;
        let name = self.resource()?;
        let resolved = match self {
            Verb::Migrate(_) | Verb::Unmigrate(_) => resolve::placement_target(status, name),
            Verb::ResourceStop(_) | Verb::ResourceStart(_) => resolve::role_target(status, name),
            _ => return Some(name.to_string()),
        };
        Some(resolved.unwrap_or_else(|_| name.to_string()))
    }

    /// What hactld was asked, for the first output line.
    fn done_text(&self, local: &str, status: &ClusterStatus) -> String {
        let line = self.done_line(local, status);
        match (self.resource(), self.acts_on(status)) {
            (Some(given), Some(on)) if given != on => format!("{line} ({given} is part of {on})"),
            _ => line,
        }
    }

    fn done_line(&self, local: &str, status: &ClusterStatus) -> String {
        let on = self.acts_on(status).unwrap_or_default();
        let node = |n: &Option<String>| n.clone().unwrap_or_else(|| local.to_string());
        match self {
            Verb::Standby(a) => format!("{} is in standby", node(&a.node)),
            Verb::Online(a) => format!("{} is online", node(&a.node)),
            Verb::Migrate(a) => {
                let whither = a.node.as_ref().map_or_else(
                    || "away from where it ran".to_string(),
                    |n| format!("to {n}"),
                );
                let how_long = a.lifetime.map_or_else(
                    || "until hactl unmigrate".to_string(),
                    |d| format!("for {}", human(d)),
                );
                format!("{on} migrates {whither}, {how_long}")
            }
            Verb::Unmigrate(_) => format!("{on}: migrate preference removed"),
            Verb::Cleanup(a) => format!(
                "cleaned up {} on {}",
                a.resource.as_deref().unwrap_or("every resource"),
                a.node.as_deref().unwrap_or("every node")
            ),
            Verb::ResourceStop(_) => format!("{on}: stopping (target role Stopped)"),
            Verb::ResourceStart(_) => format!("{on}: starting (target role Started)"),
        }
    }
}

/// A failed mutating call, for people.
fn verb_failure(method: &str, e: zbus::Error) -> Failure {
    use zbus::fdo::Error as Fdo;
    if let zbus::Error::FDO(fdo) = &e {
        match fdo.as_ref() {
            Fdo::AccessDenied(m) => {
                return Failure::Failed(format!(
                    "permission denied: only root and members of the group haclient may change the cluster ({m}); use sudo, or add the user to haclient"
                ));
            }
            Fdo::InvalidArgs(m) | Fdo::Failed(m) => {
                return Failure::Failed(format!("{method} refused: {m}"));
            }
            _ => {}
        }
    }
    call_failure(method, e)
}

/// Runs a placement verb.
pub fn run(verb: Verb<'_>) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(f) => return f.report(),
    };
    rt.block_on(async {
        let proxy = match connect().await {
            Ok(p) => p,
            Err(f) => return f.report(),
        };
        match run_on(&proxy, &verb, verb.wait().no_wait).await {
            Ok(_) => ExitCode::SUCCESS,
            Err(code) => code,
        }
    })
}

/// Calls `verb`, prints what hactld was asked, and (unless `no_wait`)
/// waits until settled and prints the placement. Returns the controller's
/// summary once settled (None with `no_wait`), or the exit code of a
/// failure already reported.
async fn run_on(
    proxy: &Cluster1ClientProxy<'static>,
    verb: &Verb<'_>,
    no_wait: bool,
) -> Result<Option<ControllerSummary>, ExitCode> {
    let before = fetch_status(proxy).await.map_err(Failure::report)?;
    if let Err(e) = verb.call(proxy).await {
        return Err(verb_failure(verb.method(), e).report());
    }
    println!("{}", verb.done_text(&before.node.name, &before));
    if no_wait {
        return Ok(None);
    }
    let after = wait_settled(
        proxy,
        &before,
        Duration::from_secs(verb.wait().timeout),
        None,
    )
    .await?
    .and_then(|s| s.controller);
    // What moves with the named resource: all of its group or clone (a
    // stopped member stops those after it too).
    let shown = verb.resource().map(|name| {
        crate::api::resolve::placement_target(&before, name).unwrap_or_else(|_| name.to_string())
    });
    for line in placement_lines(before.controller.as_ref(), after.as_ref(), shown.as_deref()) {
        println!("{line}");
    }
    Ok(after)
}

/// `hactl resource stop|start|restart RESOURCE`.
pub fn resource(cmd: &ResourceCommand) -> ExitCode {
    let args = match cmd {
        ResourceCommand::Stop(a) => return run(Verb::ResourceStop(a)),
        ResourceCommand::Start(a) => return run(Verb::ResourceStart(a)),
        ResourceCommand::Restart(a) => a,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(f) => return f.report(),
    };
    rt.block_on(async {
        let proxy = match connect().await {
            Ok(p) => p,
            Err(f) => return f.report(),
        };
        // The stop is always waited for: the start must come after it.
        let stopped = match run_on(&proxy, &Verb::ResourceStop(args), false).await {
            Ok(s) => s,
            Err(code) => return code,
        };
        let still: Vec<&str> = stopped
            .iter()
            .flat_map(|c| &c.resources)
            .filter(|r| belongs(r, &args.resource))
            .flat_map(|r| r.running_on.iter().map(String::as_str))
            .collect();
        if !still.is_empty() {
            eprintln!(
                "hactl: {} did not stop (still active on {}), so it was not started again; it stays \
                 stopped (target role Stopped): check hactl status, then hactl resource start {}",
                args.resource,
                still.join(", "),
                args.resource
            );
            return ExitCode::FAILURE;
        }
        match run_on(&proxy, &Verb::ResourceStart(args), args.wait.no_wait).await {
            Ok(_) => ExitCode::SUCCESS,
            Err(code) => code,
        }
    })
}

/// Polls until settled; returns the status then, or the exit code after
/// saying why it did not settle. With `epoch_above`, the cluster has not
/// settled before this node runs a configuration epoch above it (`hactl
/// config apply`).
async fn wait_settled(
    proxy: &Cluster1ClientProxy<'static>,
    before: &ClusterStatus,
    timeout: Duration,
    epoch_above: Option<u64>,
) -> Result<Option<ClusterStatus>, ExitCode> {
    let start = Instant::now();
    let mut waiter = Waiter::new(before.controller.as_ref().map(|c| c.transition));
    let mut progress = Progress::new(std::io::stderr().is_terminal());
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let (settle, now) = match fetch_status(proxy).await {
            Ok(s) => {
                let epoch = s.controller.as_ref().map_or(0, |c| c.config_epoch);
                let settle = match epoch_above {
                    Some(e0) if epoch <= e0 => Settle::Waiting(format!(
                        "configuration epoch {} not in force yet on {} (it runs epoch {epoch})",
                        e0 + 1,
                        s.node.name
                    )),
                    _ => waiter.observe(s.controller.as_ref(), start.elapsed()),
                };
                (settle, Some(s))
            }
            Err(Failure::NotRunning(m) | Failure::Failed(m)) => {
                (Settle::Waiting(format!("hactld did not answer: {m}")), None)
            }
        };
        match settle {
            Settle::Done => {
                progress.clear();
                return Ok(now);
            }
            Settle::Waiting(msg) => {
                if start.elapsed() >= timeout {
                    progress.clear();
                    eprintln!(
                        "hactl: the cluster did not settle within {} s: {msg}; the change stays in force; check hactl status",
                        timeout.as_secs()
                    );
                    return Err(ExitCode::from(EXIT_TIMEOUT));
                }
                progress.show(&msg);
                tokio::select! {
                    _ = tokio::time::sleep(POLL_INTERVAL) => {}
                    _ = &mut ctrl_c => {
                        progress.clear();
                        eprintln!("hactl: interrupted; the change was made and stays in force, the cluster may still be settling: {msg}");
                        return Err(ExitCode::from(EXIT_INTERRUPTED));
                    }
                }
            }
        }
    }
}

/// `waiting for the cluster: …` on one stderr line, redrawn in place;
/// nothing when stderr is not a terminal.
struct Progress {
    tty: bool,
    shown: Option<String>,
}

impl Progress {
    fn new(tty: bool) -> Progress {
        Progress { tty, shown: None }
    }

    fn show(&mut self, msg: &str) {
        if !self.tty || self.shown.as_deref() == Some(msg) {
            return;
        }
        let mut err = std::io::stderr();
        let _ = write!(err, "\r\x1b[Kwaiting for the cluster: {msg} …");
        let _ = err.flush();
        self.shown = Some(msg.to_string());
    }

    fn clear(&mut self) {
        if self.shown.take().is_some() {
            let mut err = std::io::stderr();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}

/// What the wait concluded from one status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settle {
    /// The cluster has settled.
    Done,
    /// Still moving: what, for people.
    Waiting(String),
}

/// Decides from successive controller summaries whether the cluster has
/// settled after a change: the controller is idle and its transition
/// counter moved past the value seen before the call, or it stayed idle
/// with the same counter for [`IDLE_GRACE`] (nothing needed to change).
/// A partition without a DC (no quorum) never settles.
#[derive(Clone, Debug)]
pub struct Waiter {
    before: Option<u64>,
    idle_since: Option<Duration>,
}

impl Waiter {
    /// `before`: the transition counter seen before the call (None: the
    /// controller had no state then).
    pub fn new(before: Option<u64>) -> Waiter {
        Waiter {
            before,
            idle_since: None,
        }
    }

    /// One observation, `at` after the call.
    pub fn observe(&mut self, now: Option<&ControllerSummary>, at: Duration) -> Settle {
        let Some(c) = now else {
            self.idle_since = None;
            return Settle::Waiting("hactld's controller has no state yet".to_string());
        };
        if c.dc.is_none() {
            self.idle_since = None;
            return Settle::Waiting(
                "no DC: this node's partition has no quorum, nothing can move".to_string(),
            );
        }
        if !c.idle {
            self.idle_since = None;
            return Settle::Waiting(moving(c));
        }
        if self.before.is_some_and(|b| c.transition != b) {
            return Settle::Done;
        }
        let since = *self.idle_since.get_or_insert(at);
        if at.saturating_sub(since) >= IDLE_GRACE {
            Settle::Done
        } else {
            Settle::Waiting(format!(
                "the DC ({}) has not taken up the change yet",
                c.dc.as_deref().unwrap_or("?")
            ))
        }
    }
}

/// What is moving, for people: `web-ip moving node2 → node1; db starting
/// on node3`.
pub fn moving(c: &ControllerSummary) -> String {
    let parts: Vec<String> = c
        .resources
        .iter()
        .filter_map(|r| match (&r.target, r.running_on.as_slice()) {
            (Some(t), []) => Some(format!("{} starting on {t}", r.id)),
            (Some(t), on) if !on.contains(t) => {
                Some(format!("{} moving {} → {t}", r.id, on.join(", ")))
            }
            (None, on) if !on.is_empty() => Some(format!("{} stopping on {}", r.id, on.join(", "))),
            _ => None,
        })
        .collect();
    if parts.is_empty() {
        format!("transition {} in progress", c.transition)
    } else {
        parts.join("; ")
    }
}

/// Whether `r` is `name`, one of its clone instances, or in group or
/// clone `name`.
fn belongs(r: &ResourceSummary, name: &str) -> bool {
    r.id == name
        || r.id.split(':').next() == Some(name)
        || r.group.as_deref() == Some(name)
        || r.clone.as_deref() == Some(name)
}

/// The lines printed once settled: the named resource's primitives, or
/// (`resource` None) those whose placement changed; `web-ip: Started node1`.
pub fn placement_lines(
    before: Option<&ControllerSummary>,
    after: Option<&ControllerSummary>,
    resource: Option<&str>,
) -> Vec<String> {
    let Some(after) = after else {
        return vec![];
    };
    let lines: Vec<String> = after
        .resources
        .iter()
        .filter(|r| match resource {
            Some(name) => belongs(r, name),
            None => {
                let was = before
                    .and_then(|b| b.resources.iter().find(|o| o.id == r.id))
                    .map(|o| &o.running_on);
                was != Some(&r.running_on)
            }
        })
        .map(|r| format!("{}: {}", r.id, placement(r)))
        .collect();
    if lines.is_empty() && resource.is_none() {
        vec!["no resource moved".to_string()]
    } else {
        lines
    }
}

/// `--lifetime`: `30s`, `10m`, `1h30m`, `2d`, a plain number of seconds, or
/// ISO 8601 (`PT10M`, `P1DT2H`, as crmsh's `lifetime=`). Zero is refused
/// (no lifetime means until `hactl unmigrate`).
pub fn parse_lifetime(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "{s:?} is not a duration: use a number with a unit, e.g. 30s, 10m, 1h30m, 2d, or ISO 8601 like PT10M"
        )
    };
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    if let Ok(n) = t.parse::<u64>() {
        total = n;
    } else {
        let (iso, body) = match t.strip_prefix(['P', 'p']) {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        let mut in_time = !iso;
        let mut digits = String::new();
        let mut any = false;
        for ch in body.chars() {
            if ch.is_ascii_digit() {
                digits.push(ch);
                continue;
            }
            if iso && (ch == 'T' || ch == 't') && digits.is_empty() && !in_time {
                in_time = true;
                continue;
            }
            let n: u64 = digits.parse().map_err(|_| bad())?;
            digits.clear();
            let unit = match (ch.to_ascii_lowercase(), in_time) {
                ('w', false) if iso => 7 * 86_400,
                ('d', _) => 86_400,
                ('h', true) => 3600,
                ('m', true) => 60,
                ('s', true) => 1,
                _ => return Err(bad()),
            };
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(bad)?;
            any = true;
        }
        if !digits.is_empty() || !any {
            return Err(bad());
        }
    }
    if total == 0 {
        return Err(format!(
            "{s:?}: a lifetime must be longer than 0 s (leave --lifetime out to keep the preference until hactl unmigrate)"
        ));
    }
    Ok(Duration::from_secs(total))
}

/// `1h30m`, `10m`, `45s`.
fn human(d: Duration) -> String {
    let mut s = d.as_secs();
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if s >= len {
            out.push_str(&format!("{}{unit}", s / len));
            s %= len;
        }
    }
    out
}

/// `hactl config apply FILE`: sends the file to hactld, which validates it
/// and distributes it to every node; then (unless `--no-wait`) waits until
/// this node runs the new configuration epoch and the cluster has settled
/// with it, as the placement verbs wait, checks that the configuration in
/// force is this file's, and prints where what moved runs. Every member of
/// the ring takes an epoch in the same agreed order and computes the same
/// schedule, so this node's view stands for the ring's; an offline node
/// takes the epoch when it rejoins (it is named).
pub fn config_apply(file: &Path, wait: &WaitArgs) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("hactl: cannot read {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let name = std::path::absolute(file).unwrap_or_else(|_| PathBuf::from(file));
    // What `ConfigShow()` returns once this file is in force (hactld
    // validates the file; a file that does not parse here is refused there).
    let expected = crate::config::parse_str(&text, file)
        .ok()
        .map(|l| crate::config::canonical_redacted(&l.config));
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(f) => return f.report(),
    };
    rt.block_on(async {
        let proxy = match connect().await {
            Ok(p) => p,
            Err(f) => return f.report(),
        };
        let before = match fetch_status(&proxy).await {
            Ok(s) => s,
            Err(f) => return f.report(),
        };
        let summary = match proxy.config_apply(&text, &name.display().to_string()).await {
            Ok(s) => s,
            Err(e) => return verb_failure("ConfigApply", e).report(),
        };
        println!("{}", summary.trim_end());
        if wait.no_wait {
            return ExitCode::SUCCESS;
        }
        let epoch_before = before.controller.as_ref().map_or(0, |c| c.config_epoch);
        let timeout = Duration::from_secs(wait.timeout);
        let after = match wait_settled(&proxy, &before, timeout, Some(epoch_before)).await {
            Ok(Some(s)) => s,
            Ok(None) => return ExitCode::FAILURE,
            Err(code) => return code,
        };
        let epoch = after.controller.as_ref().map_or(0, |c| c.config_epoch);
        let running = match proxy.config_show().await {
            Ok(t) => t,
            Err(e) => return verb_failure("ConfigShow", e).report(),
        };
        if expected.as_deref().is_some_and(|e| e != running) {
            eprintln!(
                "hactl: the configuration in force (epoch {epoch}) is not {}: another hactl config \
                 apply went first or right after; compare hactl config show --running with the file \
                 and apply it again if it should be in force",
                name.display()
            );
            return ExitCode::FAILURE;
        }
        let offline: Vec<&str> = after
            .nodes
            .iter()
            .filter(|n| !n.online)
            .map(|n| n.name.as_str())
            .collect();
        if offline.is_empty() {
            println!("configuration epoch {epoch} in force on every node");
        } else {
            println!(
                "configuration epoch {epoch} in force on every node of the ring; {} offline (takes it when it rejoins)",
                offline.join(", ")
            );
        }
        for line in placement_lines(before.controller.as_ref(), after.controller.as_ref(), None) {
            println!("{line}");
        }
        ExitCode::SUCCESS
    })
}

/// `hactl fence NODE`.
#[derive(Args, Debug)]
pub struct FenceArgs {
    /// The node to fence (another node than this one).
    pub node: String,
    /// How long to wait for the outcome; past it hactl exits 4 (the
    /// fencing may still go on). Default: the timeouts (and delays) of
    /// every device in NODE's fence levels, from the running
    /// configuration, plus 10 s.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
}

/// What `hactl fence` waits beyond the devices' own timeouts (the call's
/// way through the bus and the main loop).
pub const FENCE_WAIT_MARGIN: Duration = Duration::from_secs(10);

/// The longest fencing of `node` can take with `config`: every device of
/// every level, each its delay and its timeout (a level that fails hands
/// over to the next). None when the node or its levels are unknown.
pub fn fence_wait(config: &crate::config::Config, node: &str) -> Option<Duration> {
    let node = config.node_by_name(node)?;
    if node.fence_levels.is_empty() {
        return None;
    }
    let ms: u64 = node
        .fence_levels
        .iter()
        .flatten()
        .map(|id| {
            config
                .fence_devices
                .iter()
                .find(|d| d.id == *id)
                .map_or(0, |d| d.delay_ms.saturating_add(d.timeout_ms))
        })
        .fold(0, u64::saturating_add);
    Some(Duration::from_millis(ms))
}

/// `hactl fence NODE [--timeout S]`: asks the local hactld to fence NODE
/// now with its fence levels (`Fence`, docs/api.md) and waits for the
/// outcome. Exit 0 fenced, 1 refused or failed, 3 no hactld, 4 no outcome
/// within the timeout.
pub fn fence(args: &FenceArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(f) => return f.report(),
    };
    rt.block_on(async {
        let timeout = match args.timeout {
            Some(s) => Duration::from_secs(s),
            None => {
                // The running configuration says how long the devices may
                // take; without it, the daemon's own bound.
                let proxy = match connect().await {
                    Ok(p) => p,
                    Err(f) => return f.report(),
                };
                let from_config = proxy.config_show().await.ok().and_then(|text| {
                    let loaded =
                        crate::config::parse_str(&text, Path::new("running configuration")).ok()?;
                    fence_wait(&loaded.config, &args.node)
                });
                from_config.unwrap_or(crate::api::FENCE_TIMEOUT) + FENCE_WAIT_MARGIN
            }
        };
        // The bus must not give up before we do.
        let proxy = match super::status::connect_with(timeout + FENCE_WAIT_MARGIN).await {
            Ok(p) => p,
            Err(f) => return f.report(),
        };
        let timed_out = || {
            eprintln!(
                "hactl: no outcome of fencing {} within {} s; it may still be going on: see the fencing history in hactl status and journalctl -u hactld, and check the node's fence devices (hactl fence-device status DEVICE)",
                args.node,
                timeout.as_secs()
            );
            ExitCode::from(EXIT_TIMEOUT)
        };
        match tokio::time::timeout(timeout, proxy.fence(&args.node)).await {
            Ok(Ok(summary)) => {
                println!("{}", summary.trim_end());
                ExitCode::SUCCESS
            }
            Ok(Err(e)) => {
                use zbus::fdo::Error as Fdo;
                if let zbus::Error::FDO(fdo) = &e {
                    match fdo.as_ref() {
                        Fdo::InvalidArgs(m) | Fdo::Failed(m) => {
                            eprintln!("hactl: fence {}: {m}", args.node);
                            return ExitCode::FAILURE;
                        }
                        Fdo::NoReply(_) | Fdo::Timeout(_) => return timed_out(),
                        _ => {}
                    }
                }
                verb_failure("Fence", e).report()
            }
            Err(_) => timed_out(),
        }
    })
}

/// `hactl config show --running`: the configuration hactld runs.
pub fn config_show_running() -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(f) => return f.report(),
    };
    let result = rt.block_on(async {
        let proxy = connect().await?;
        proxy
            .config_show()
            .await
            .map_err(|e| verb_failure("ConfigShow", e))
    });
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(f) => f.report(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsc(id: &str, on: &[&str], target: Option<&str>) -> ResourceSummary {
        ResourceSummary {
            id: id.to_string(),
            agent: "ipaddr".to_string(),
            group: Some("web".to_string()),
            clone: None,
            running_on: on.iter().map(|s| s.to_string()).collect(),
            promoted_on: vec![],
            target: target.map(str::to_string),
        }
    }

    fn summary(idle: bool, transition: u64, resources: Vec<ResourceSummary>) -> ControllerSummary {
        ControllerSummary {
            dc: Some("node1".to_string()),
            idle,
            transition,
            resources,
            ..Default::default()
        }
    }

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn settled_after_a_new_transition_ends() {
        let mut w = Waiter::new(Some(7));
        // The DC has not seen the change yet: idle, same counter.
        let s0 = summary(true, 7, vec![rsc("web-ip", &["node2"], Some("node2"))]);
        assert!(matches!(w.observe(Some(&s0), MS(100)), Settle::Waiting(_)));
        // The transition runs: web-ip moves.
        let s1 = summary(false, 8, vec![rsc("web-ip", &["node2"], Some("node1"))]);
        assert_eq!(
            w.observe(Some(&s1), MS(200)),
            Settle::Waiting("web-ip moving node2 → node1".to_string())
        );
        let s2 = summary(false, 8, vec![rsc("web-ip", &[], Some("node1"))]);
        assert_eq!(
            w.observe(Some(&s2), MS(300)),
            Settle::Waiting("web-ip starting on node1".to_string())
        );
        let s3 = summary(true, 8, vec![rsc("web-ip", &["node1"], Some("node1"))]);
        assert_eq!(w.observe(Some(&s3), MS(400)), Settle::Done);
    }

    #[test]
    fn nothing_to_change_settles_after_the_grace() {
        let mut w = Waiter::new(Some(3));
        let s = summary(true, 3, vec![rsc("web-ip", &["node1"], Some("node1"))]);
        assert!(matches!(w.observe(Some(&s), MS(100)), Settle::Waiting(_)));
        assert!(matches!(w.observe(Some(&s), MS(900)), Settle::Waiting(_)));
        assert_eq!(w.observe(Some(&s), MS(1100)), Settle::Done);
        // A busy spell resets the grace.
        let mut w = Waiter::new(Some(3));
        assert!(matches!(w.observe(Some(&s), MS(0)), Settle::Waiting(_)));
        let busy = summary(false, 3, vec![rsc("web-ip", &["node1"], None)]);
        assert_eq!(
            w.observe(Some(&busy), MS(500)),
            Settle::Waiting("web-ip stopping on node1".to_string())
        );
        assert!(matches!(w.observe(Some(&s), MS(1200)), Settle::Waiting(_)));
        assert_eq!(w.observe(Some(&s), MS(2200)), Settle::Done);
    }

    #[test]
    fn no_dc_or_no_controller_never_settles() {
        let mut w = Waiter::new(Some(1));
        let mut s = summary(true, 2, vec![]);
        s.dc = None;
        for t in [0, 5000, 60_000] {
            let Settle::Waiting(m) = w.observe(Some(&s), MS(t)) else {
                panic!("settled without a DC")
            };
            assert!(m.contains("no quorum"), "{m}");
            assert!(matches!(w.observe(None, MS(t)), Settle::Waiting(_)));
        }
    }

    #[test]
    fn placement_lines_name_the_resource_or_what_moved() {
        let before = summary(
            true,
            1,
            vec![
                rsc("web-ip", &["node2"], Some("node2")),
                rsc("db", &["node3"], Some("node3")),
            ],
        );
        let after = summary(
            true,
            2,
            vec![
                rsc("web-ip", &["node1"], Some("node1")),
                rsc("db", &["node3"], Some("node3")),
            ],
        );
        assert_eq!(
            placement_lines(Some(&before), Some(&after), None),
            ["web-ip: Started node1"]
        );
        assert_eq!(
            placement_lines(Some(&before), Some(&after), Some("web")),
            ["web-ip: Started node1", "db: Started node3"]
        );
        assert_eq!(
            placement_lines(Some(&after), Some(&after), None),
            ["no resource moved"]
        );
    }

    #[test]
    fn fence_waits_for_every_device_of_every_level_with_its_delay() {
        let text = "[cluster]\nname = \"t\"\n\
            [[node]]\nname = \"n1\"\nid = 1\naddresses = [\"10.0.0.1\"]\n\
            [[node]]\nname = \"n2\"\nid = 2\naddresses = [\"10.0.0.2\"]\nfence_levels = [[\"a\", \"b\"], [\"c\"]]\n\
            [[fence_device]]\nid = \"a\"\nkind = \"agent\"\nagent = \"fence_apc\"\ntimeout = \"10s\"\ndelay = \"2s\"\n\
            [[fence_device]]\nid = \"b\"\nkind = \"agent\"\nagent = \"fence_apc\"\ntimeout = \"5s\"\n\
            [[fence_device]]\nid = \"c\"\nkind = \"agent\"\nagent = \"fence_apc\"\ntimeout = \"30s\"\n";
        let c = crate::config::parse_str(text, Path::new("t.toml"))
            .expect("valid")
            .config;
        assert_eq!(fence_wait(&c, "n2"), Some(Duration::from_secs(47)));
        assert_eq!(fence_wait(&c, "n1"), None, "no levels");
        assert_eq!(fence_wait(&c, "n9"), None, "no such node");
    }

    #[test]
    fn lifetimes() {
        let s = |n| Ok(Duration::from_secs(n));
        assert_eq!(parse_lifetime("30s"), s(30));
        assert_eq!(parse_lifetime("10m"), s(600));
        assert_eq!(parse_lifetime("1h"), s(3600));
        assert_eq!(parse_lifetime("1h30m"), s(5400));
        assert_eq!(parse_lifetime("2d"), s(172_800));
        assert_eq!(parse_lifetime("90"), s(90));
        assert_eq!(parse_lifetime("PT10M"), s(600));
        assert_eq!(parse_lifetime("P1DT2H"), s(93_600));
        assert_eq!(parse_lifetime("P1W"), s(604_800));
        for bad in [
            "",
            "m",
            "10x",
            "1h30",
            "PT",
            "P10M",
            "-5m",
            "99999999999999999999d",
        ] {
            assert!(parse_lifetime(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_lifetime("0").unwrap_err().contains("longer than 0"));
        assert!(parse_lifetime("0m").is_err());
        assert_eq!(human(Duration::from_secs(5400)), "1h30m");
    }
}
