//! `hactl simulate`: runs the scheduler on a configuration and a cluster
//! state given by flags, or on a Pacemaker CIB, and prints the transition,
//! the outcome as JSON (`--json`) or the allocation scores (`--scores`).
//! This is an I/O edge: it reads files and the wall clock and hands both to
//! the pure scheduler.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::config::{self, Role};
use crate::scheduler::view::FAIL_COUNT_INFINITY;
use crate::scheduler::{
    self, ClusterView, Extensions, NodeState, NodeStatus, Options, cib, render,
};
use crate::time::Instant;

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// A Pacemaker CIB (configuration and status) instead of --config.
    #[arg(long, value_name = "FILE.xml")]
    pub cib: Option<PathBuf>,
    /// Take this node down (cleanly). Repeatable.
    #[arg(long = "node-down", value_name = "NODE")]
    pub node_down: Vec<String>,
    /// Put this node in standby. Repeatable.
    #[arg(long, value_name = "NODE")]
    pub standby: Vec<String>,
    /// A resource runs on a node now (ROLE: started, unpromoted, promoted).
    #[arg(long, value_name = "RESOURCE:NODE[:ROLE]")]
    pub running: Vec<String>,
    /// A resource failed on a node COUNT times (default 1, or INFINITY);
    /// if it runs there, its monitor's on_fail applies (restart: recovery).
    #[arg(long, value_name = "RESOURCE:NODE[:COUNT]")]
    pub fail: Vec<String>,
    /// Simulate a partition without quorum.
    #[arg(long)]
    pub no_quorum: bool,
    /// Print the allocation and promotion scores.
    #[arg(long)]
    pub scores: bool,
    /// Print only the state after the transition, as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(config_path: &Path, args: &SimulateArgs) -> ExitCode {
    let now = wall_clock_now();
    let (config, ext, mut view) = match &args.cib {
        Some(path) => match load_cib(path, now) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("hactl simulate: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        },
        None => match config::load(config_path) {
            Ok(loaded) => {
                let ext = Extensions::for_config(&loaded.config);
                let view = default_view(&loaded.config);
                (loaded.config, ext, view)
            }
            Err(e) => {
                eprintln!("hactl simulate: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    if let Err(e) = apply_flags(&config, &mut view, args, now) {
        eprintln!("hactl simulate: {e}");
        return ExitCode::from(2);
    }
    let options = Options {
        show_scores: args.scores,
    };
    let t = scheduler::schedule_with(&config, &ext, &view, now, options);
    if args.json {
        if args.scores {
            eprint!("{}", render::scores(&t));
        }
        for w in &t.warnings {
            eprintln!("warning: {w}");
        }
        print!("{}", render::json(&t));
    } else {
        if args.scores {
            print!("{}", render::scores(&t));
        }
        print!("{}", render::text(&t));
    }
    ExitCode::SUCCESS
}

fn wall_clock_now() -> Instant {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    cib::epoch_instant(secs)
}

fn load_cib(
    path: &Path,
    now: Instant,
) -> Result<(config::Config, Extensions, ClusterView), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let imported = cib::import(&text, now).map_err(|e| e.to_string())?;
    for u in &imported.unsupported {
        eprintln!("warning: unsupported, not scheduled like Pacemaker: {u}");
    }
    for i in &imported.ignored {
        eprintln!("note: not imported (no effect on placement): {i}");
    }
    Ok((imported.config, imported.extensions, imported.view))
}

/// Every configured node online, nothing running, quorum by majority of
/// votes (or one of two nodes with `two_node`).
fn default_view(config: &config::Config) -> ClusterView {
    ClusterView {
        nodes: config
            .nodes
            .iter()
            .map(|n| NodeStatus::online(&n.name))
            .collect(),
        has_quorum: true,
        resources: Vec::new(),
    }
}

fn apply_flags(
    config: &config::Config,
    view: &mut ClusterView,
    args: &SimulateArgs,
    now: Instant,
) -> Result<(), String> {
    let known_node = |view: &ClusterView, n: &str| {
        if view.node(n).is_some() {
            Ok(())
        } else {
            Err(format!("unknown node {n}"))
        }
    };
    for n in &args.node_down {
        known_node(view, n)?;
        if let Some(s) = view.node_mut(n) {
            s.state = NodeState::Offline;
        }
    }
    for n in &args.standby {
        known_node(view, n)?;
        if let Some(s) = view.node_mut(n) {
            s.standby = true;
        }
    }
    for spec in &args.running {
        let mut parts = spec.splitn(3, ':');
        let (Some(rsc), Some(node)) = (parts.next(), parts.next()) else {
            return Err(format!("--running {spec}: expected RESOURCE:NODE[:ROLE]"));
        };
        known_node(view, node)?;
        let role = match parts.next().map(str::to_ascii_lowercase).as_deref() {
            None | Some("started") => Role::Started,
            Some("unpromoted") | Some("slave") => Role::Unpromoted,
            Some("promoted") | Some("master") => Role::Promoted,
            Some(other) => return Err(format!("--running {spec}: unknown role {other}")),
        };
        for primitive in primitives_of(config, rsc) {
            let e = view.resource_mut(&primitive, node);
            e.role = role;
            e.known = true;
        }
    }
    for spec in &args.fail {
        let mut parts = spec.splitn(3, ':');
        let (Some(rsc), Some(node)) = (parts.next(), parts.next()) else {
            return Err(format!("--fail {spec}: expected RESOURCE:NODE[:COUNT]"));
        };
        known_node(view, node)?;
        let count = match parts.next() {
            None => 1,
            Some(c) if c.eq_ignore_ascii_case("infinity") => FAIL_COUNT_INFINITY,
            Some(c) => c
                .parse::<u32>()
                .map_err(|_| format!("--fail {spec}: COUNT must be a number or INFINITY"))?
                .min(FAIL_COUNT_INFINITY),
        };
        for primitive in primitives_of(config, rsc) {
            // A failure of a running resource is its monitor's failure and
            // gets that operation's on_fail.
            let on_fail = config
                .resource(&primitive)
                .and_then(|r| r.ops.iter().find(|o| o.name == config::OpName::Monitor))
                .map_or(config::OnFail::Restart, |o| o.on_fail);
            let e = view.resource_mut(&primitive, node);
            e.fail_count = e.fail_count.saturating_add(count).min(FAIL_COUNT_INFINITY);
            e.last_failure = Some(now);
            e.known = true;
            if e.is_active() {
                e.failure = Some(on_fail);
            }
        }
    }
    if args.cib.is_none() {
        view.has_quorum = !args.no_quorum && majority(config, view);
    } else if args.no_quorum {
        view.has_quorum = false;
    }
    Ok(())
}

/// The primitives a name stands for on the command line: a primitive
/// itself, a group's members, what a clone clones. Unknown names are kept
/// (a CIB may hold history of resources that are not configured).
fn primitives_of(config: &config::Config, name: &str) -> Vec<String> {
    let name = config
        .clones
        .iter()
        .find(|c| c.id == name)
        .map_or(name, |c| c.resource.as_str());
    match config.groups.iter().find(|g| g.id == name) {
        Some(g) => g.members.clone(),
        None => vec![name.to_string()],
    }
}

/// Quorum of the simulated partition: more than half of the configured
/// votes online, or one node of a `two_node` cluster.
fn majority(config: &config::Config, view: &ClusterView) -> bool {
    let online: u32 = config
        .nodes
        .iter()
        .filter(|n| {
            view.node(&n.name)
                .is_some_and(|s| s.state == NodeState::Online)
        })
        .map(|n| n.votes)
        .sum();
    let expected = config
        .quorum
        .expected_votes
        .unwrap_or_else(|| config.total_configured_votes());
    if config.quorum.two_node {
        return online >= 1;
    }
    online * 2 > expected
}
