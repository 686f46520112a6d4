//! Whole nodes in the deterministic simulator ([`hactl::sim::cluster`]):
//! totem, quorum, the replicated state, the controller with the scheduler
//! and the executor's core per node, on a lossy network, with simulated
//! agents that fail, hang and recover.
//!
//! Per seed: 2–5 nodes, 1–4 resources (two of them in a group now and
//! then, some with a location preference or a ban), fencing on. Then random
//! crashes, restarts, partitions and heals, clean shutdowns (SIGTERM),
//! agent faults (starts that fail, stops that fail, operations that hang
//! past the controller's deadline, resources that die), and standby /
//! migrate / unmigrate commands from nodes of a settled quorate ring.
//!
//! Invariants (docs/simulation-cluster.md):
//! - (a) after every step: no resource runs (in truth) on two powered
//!   machines. Nothing is excused: with fencing on, the quorate side
//!   starts a lost node's resources only once fencing powered it off, and a
//!   cut-off node that still runs them is the only copy until then.
//! - (b) when the faults are over and every node is back in one settled
//!   ring: for every node's standby flag and every resource's migrate
//!   preference, a command applied by a node that stayed up since (same
//!   hactld process; for node X's standby flag, X itself) is not lost:
//!   every node holds its value or that of a command applied after it
//!   (agreed order) or stamped later (merges).
//! - (c) then, after an operator's cleanup (and every node online again),
//!   within a bounded time: every resource runs exactly once, on an allowed
//!   node, group members together, and every controller is idle.
//!
//! Seeds: 1,000 by default (short runs), HACTL_LONG=1 runs 20,000 longer
//! ones; HACTL_SEED=N replays one seed with its trace.

use std::time::Duration;

use hactl::config::parse_str;
use hactl::sim::cluster::{AgentFaults, ClusterSim};
use hactl::sim::{NetFaults, Rng, run_seeds};
use hactl::state::{Command, MigrateTarget, WallMs};
use hactl::time::Instant;
use hactl::totem::NodeId;

fn ms(v: u64) -> Instant {
    Instant::from_millis(v)
}

struct Setup {
    text: String,
    /// Per resource: nodes it must not run on.
    bans: Vec<Vec<NodeId>>,
    group: bool,
}

fn random_config(rng: &mut Rng) -> Setup {
    let n = rng.range(2, 5) as usize;
    let r = rng.range(1, 4) as usize;
    let mut t = String::from(
        "[cluster]\nname = \"sim\"\n\n[cluster.op_defaults]\ntimeout = \"4s\"\n\n[totem]\ninsecure_no_crypto_i_understand_anyone_can_join = true\n",
    );
    for id in 1..=n {
        t.push_str(&format!(
            "\n[[node]]\nname = \"n{id}\"\nid = {id}\naddresses = [\"10.0.0.{id}\"]\nfence_levels = [[\"fence-n{id}\"]]\n"
        ));
        t.push_str(&format!(
            "\n[[fence_device]]\nid = \"fence-n{id}\"\nkind = \"ipmi\"\nhost = \"10.0.1.{id}\"\nusername = \"sim\"\npassword_file = \"/nonexistent/sim.pass\"\n"
        ));
    }
    for k in 0..r {
        t.push_str(&format!(
            "\n[[resource]]\nid = \"r{k}\"\nagent = \"ocf:sim:Marker\"\n[[resource.op]]\nname = \"monitor\"\ninterval = \"{}ms\"\ntimeout = \"4s\"\n",
            rng.range(5, 20) * 100
        ));
    }
    let group = r >= 2 && rng.chance(400_000);
    if group {
        t.push_str("\n[[group]]\nid = \"g\"\nmembers = [\"r0\", \"r1\"]\n");
    }
    let mut bans = vec![Vec::new(); r];
    for (k, ban) in bans.iter_mut().enumerate() {
        if group && k == 1 {
            continue;
        }
        let target = if group && k == 0 { "g" } else { "" };
        let name = if target.is_empty() {
            format!("r{k}")
        } else {
            target.to_string()
        };
        match rng.range(0, 3) {
            0 => {
                let node = rng.range(1, n as u64);
                t.push_str(&format!(
                    "\n[[location]]\nresource = \"{name}\"\nnode = \"n{node}\"\nscore = {}\n",
                    rng.range(10, 200)
                ));
            }
            1 if n >= 3 => {
                let node = rng.range(1, n as u64) as NodeId;
                t.push_str(&format!(
                    "\n[[location]]\nresource = \"{name}\"\nnode = \"n{node}\"\nscore = \"-INFINITY\"\n"
                ));
                ban.push(node);
            }
            _ => {}
        }
    }
    if group {
        bans[1] = bans[0].clone();
    }
    Setup {
        text: t,
        bans,
        group,
    }
}

/// (a): no resource runs on two powered machines.
fn no_double_active(c: &ClusterSim) -> Result<(), String> {
    for (r, res) in c.config.resources.iter().enumerate() {
        let on = c.running_on(r);
        if on.len() > 1 {
            return Err(format!("{} runs on nodes {on:?} at once", res.id));
        }
    }
    Ok(())
}

/// A standby or migrate key, and the value the command gives it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Standby(NodeId),
    Migrate(String),
}

fn keyed(cmd: &Command) -> Option<(Key, String)> {
    Some(match cmd {
        Command::SetStandby { node, standby } => (Key::Standby(*node), standby.to_string()),
        Command::Migrate {
            resource, target, ..
        } => (Key::Migrate(resource.clone()), format!("{target:?}")),
        Command::Unmigrate { resource } => (Key::Migrate(resource.clone()), "none".into()),
        _ => return None,
    })
}

fn value_in(c: &ClusterSim, i: usize, key: &Key) -> String {
    let s = c.nodes[i].replica.state();
    match key {
        Key::Standby(n) => s.is_standby(*n).to_string(),
        Key::Migrate(r) => s
            .migrates
            .get(r)
            .and_then(|e| e.target)
            .map_or("none".into(), |t| format!("{t:?}")),
    }
}

struct Scenario {
    c: ClusterSim,
    setup: Setup,
    /// Commands submitted: (origin, command) → stamp (wall ms).
    submitted: Vec<(NodeId, Command, WallMs)>,
}

impl Scenario {
    fn up(&self) -> Vec<usize> {
        (0..self.c.nodes.len())
            .filter(|i| self.c.nodes[*i].up)
            .collect()
    }

    fn random_command(&mut self, rng: &mut Rng) {
        let up = self.up();
        if up.is_empty() {
            return;
        }
        let i = up[rng.range(0, up.len() as u64 - 1) as usize];
        let n = self.c.nodes.len() as u64;
        let r = self.c.config.resources.len() as u64;
        let res = format!("r{}", rng.range(0, r - 1));
        let res = if self.setup.group && (res == "r0" || res == "r1") {
            "g".to_string()
        } else {
            res
        };
        let cmd = match rng.range(0, 3) {
            0 => Command::SetStandby {
                node: rng.range(1, n) as NodeId,
                standby: rng.chance(400_000),
            },
            1 => Command::Migrate {
                resource: res,
                target: if rng.chance(700_000) {
                    MigrateTarget::To(rng.range(1, n) as NodeId)
                } else {
                    MigrateTarget::AwayFrom(rng.range(1, n) as NodeId)
                },
                expires: None,
            },
            _ => Command::Unmigrate { resource: res },
        };
        // One submission per (origin, command): an applied command then
        // tells its stamp.
        let origin = i as NodeId + 1;
        if self
            .submitted
            .iter()
            .any(|(o, c2, _)| *o == origin && *c2 == cmd)
        {
            return;
        }
        let wall = self.c.wall();
        if self.c.submit(i, cmd.clone()) {
            self.submitted.push((origin, cmd, wall));
        }
    }

    /// (b): a command applied by a node whose hactld is still the process
    /// that applied it (it never crashed, was fenced or stopped since) is
    /// not lost: every node holds its value, or the value of a command
    /// applied after it (agreed order) or stamped later (merges). For a standby
    /// flag of node X, the node that applied it must be X itself (merge
    /// rule 1: X's side decides X's facts; a standby of X made while X was
    /// apart is lost if X recorded anything about itself meanwhile, as
    /// docs/state.md says).
    fn check_no_lost_commands(&self) {
        let stamp_of = |origin: NodeId, cmd: &Command| {
            self.submitted
                .iter()
                .find(|(o, c2, _)| *o == origin && c2 == cmd)
                .map(|(_, _, w)| (*w, origin))
        };
        // Every application of a standby or migrate command, in the order
        // they happened: (key, value, stamp, protected).
        let mut seen: Vec<(Key, String, (WallMs, NodeId), bool)> = Vec::new();
        for a in &self.c.applied {
            let Some((key, value)) = keyed(&a.cmd) else {
                continue;
            };
            let Some(stamp) = stamp_of(a.origin, &a.cmd) else {
                continue;
            };
            let node = &self.c.nodes[a.by as usize - 1];
            // A node's standby flag belongs to the node's own facts, which
            // its own side decides at a merge (docs/state.md, merge rule
            // 1): guaranteed only once the node itself applied it.
            let protected = node.up
                && node.incarnation == a.incarnation
                && !matches!(key, Key::Standby(x) if x != a.by);
            seen.push((key, value, stamp, protected));
        }
        // A protected command is lost when a node holds a value that only
        // older commands gave: none applied after it (in agreed order, or
        // anywhere later) and none stamped later.
        for (k, (key, value, stamp, protected)) in seen.iter().enumerate() {
            if !*protected {
                continue;
            }
            for i in 0..self.c.nodes.len() {
                let have = value_in(&self.c, i, key);
                if have == *value {
                    continue;
                }
                let explained = seen
                    .iter()
                    .enumerate()
                    .any(|(j, (k2, v2, s2, _))| k2 == key && *v2 == have && (j > k || s2 > stamp));
                if explained {
                    continue;
                }
                let entry = match key {
                    Key::Migrate(r) => {
                        format!("{:?}", self.c.nodes[i].replica.state().migrates.get(r))
                    }
                    Key::Standby(x) => {
                        let all: Vec<String> = self
                            .c
                            .nodes
                            .iter()
                            .map(|n| {
                                format!(
                                    "n{}: {:?}",
                                    n.id,
                                    n.replica
                                        .state()
                                        .nodes
                                        .get(x)
                                        .map(|f| (f.standby, f.touched))
                                )
                            })
                            .collect();
                        all.join(", ")
                    }
                };
                let appliers: Vec<String> = self
                    .c
                    .applied
                    .iter()
                    .filter(|a| keyed(&a.cmd).is_some_and(|(k2, _)| k2 == *key))
                    .map(|a| format!("n{}#{} {:?} from n{}", a.by, a.incarnation, a.cmd, a.origin))
                    .collect();
                self.c.fail(&format!(
                    "lost command: {key:?} is {have} on n{} ({entry}), but a command applied by a node that is still up (stamp {stamp:?}) made it {value}, and nothing later changed it so\n  applied: {}",
                    i + 1,
                    appliers.join("; ")
                ));
            }
        }
    }

    /// (c): every resource runs once, on an allowed node, groups together,
    /// and every controller is idle. Err says what is not so yet.
    fn settled_and_running(&self) -> Result<(), String> {
        if !self.c.settled_together() {
            return Err("the nodes are not in one settled ring".into());
        }
        let mut group_node = None;
        for (r, res) in self.c.config.resources.iter().enumerate() {
            let on = self.c.running_on(r);
            if on.len() != 1 {
                // Replaying one seed: what the DC knows of the resource.
                let detail = if std::env::var_os("HACTL_SEED").is_some() {
                    let dc = self.c.nodes.iter().find(|n| n.ctl.dc() == Some(n.id));
                    dc.map(|n| {
                        let st = n.replica.state();
                        let hist: Vec<String> = self
                            .c
                            .nodes
                            .iter()
                            .map(|m| {
                                format!(
                                    "\n  n{}: fail count {}, history {:?}",
                                    m.id,
                                    st.fail_count(&res.id, m.id),
                                    st.op_history(&res.id, m.id)
                                )
                            })
                            .collect();
                        format!(
                            "\n  DC n{}: target {:?}, failures {:?}{}",
                            n.id,
                            n.ctl.target(&res.id),
                            n.ctl.failures(),
                            hist.concat()
                        )
                    })
                    .unwrap_or_default()
                } else {
                    String::new()
                };
                return Err(format!("{} runs on {on:?}{detail}", res.id));
            }
            if self.setup.bans[r].contains(&on[0]) {
                return Err(format!("{} runs on banned node n{}", res.id, on[0]));
            }
            if self.setup.group && r <= 1 {
                if group_node.is_some_and(|g| g != on[0]) {
                    return Err("the group's members run apart".into());
                }
                group_node = Some(on[0]);
            }
        }
        if self.up().len() != self.c.nodes.len() {
            return Err("not every node is up".into());
        }
        for n in &self.c.nodes {
            if !n.ctl.is_idle() {
                let detail = if std::env::var_os("HACTL_SEED").is_some() {
                    let ctls: Vec<String> = self
                        .c
                        .nodes
                        .iter()
                        .map(|m| format!("\n  controller: {:?}", m.ctl))
                        .collect();
                    format!("{}\n  state: {:?}", ctls.concat(), n.replica.state().nodes)
                } else {
                    String::new()
                };
                return Err(format!(
                    "the controller of n{} is not idle (waiting for probe: {:?}){detail}",
                    n.id,
                    n.ctl.waiting_for_probe()
                ));
            }
        }
        Ok(())
    }
}

fn run(seed: u64) -> String {
    let long = std::env::var_os("HACTL_LONG").is_some();
    let mut rng = Rng::new(seed);
    let setup = random_config(&mut rng);
    let config = parse_str(&setup.text, std::path::Path::new("sim.toml"))
        .unwrap_or_else(|d| panic!("seed {seed}: generated configuration refused: {d:?}"))
        .config;
    let n = config.nodes.len();
    let r = config.resources.len();
    let faults = NetFaults {
        loss_per_million: [0, 2_000, 10_000][rng.range(0, 2) as usize],
        duplicate_per_million: 5_000,
        delay_min: Duration::from_micros(50),
        delay_max: Duration::from_micros(rng.range(100, 2_000)),
    };
    let mut c = ClusterSim::new(config, faults, seed);
    c.check = Some(no_double_active);
    c.trace_notes = std::env::var_os("HACTL_SEED").is_some();
    let mut s = Scenario {
        c,
        setup,
        submitted: Vec::new(),
    };
    s.c.run_until(ms(3_000));
    let fault_end = if long { 60_000 } else { 20_000 };
    let mut t = 3_000;
    let mut faults_done = 0;
    while t < fault_end {
        t += rng.range(100, 1_500);
        s.c.run_until(ms(t));
        if rng.chance(300_000) {
            s.random_command(&mut rng);
        }
        if !rng.chance(400_000) {
            continue;
        }
        faults_done += 1;
        let i = rng.range(0, n as u64 - 1) as usize;
        let k = rng.range(0, r as u64 - 1) as usize;
        let up = s.up().len();
        match rng.range(0, 11) {
            0 => {
                let parts = rng.range(2, 3);
                let mut groups: Vec<Vec<usize>> = vec![Vec::new(); parts as usize];
                for j in 0..n {
                    groups[rng.range(0, parts - 1) as usize].push(j);
                }
                let refs: Vec<&[usize]> = groups.iter().map(Vec::as_slice).collect();
                s.c.partition(&refs);
            }
            1 | 2 => s.c.heal(),
            3 if s.c.nodes[i].up && up > 1 => s.c.crash(i),
            4 | 5 if !s.c.nodes[i].up => s.c.restart(i),
            6 if s.c.nodes[i].up && up > 1 => s.c.shutdown(i),
            7 => s.c.set_faults(
                i,
                k,
                AgentFaults {
                    broken: true,
                    ..AgentFaults::default()
                },
            ),
            8 => s.c.set_faults(
                i,
                k,
                AgentFaults {
                    hang_next: true,
                    ..AgentFaults::default()
                },
            ),
            9 => s.c.set_faults(
                i,
                k,
                AgentFaults {
                    fail_next_stop: true,
                    ..AgentFaults::default()
                },
            ),
            10 => s.c.kill_resource(i, k),
            _ => s.c.set_faults(i, k, AgentFaults::default()),
        }
    }

    // The faults are over: the network heals, agents recover, every node
    // comes back.
    s.c.heal();
    for i in 0..n {
        for k in 0..r {
            if s.c.nodes[i].faults[k] != AgentFaults::default() {
                s.c.set_faults(i, k, AgentFaults::default());
            }
        }
    }
    let deadline = t + 120_000;
    loop {
        for i in 0..n {
            if !s.c.nodes[i].up && s.c.nodes[i].stopping.is_none() {
                s.c.restart(i);
            }
        }
        t += 500;
        s.c.run_until(ms(t));
        if s.up().len() == n && s.c.settled_together() {
            break;
        }
        if t > deadline {
            s.c.fail("the nodes did not settle in one ring within 120 s of the last fault");
        }
    }
    s.check_no_lost_commands();

    // An operator's recovery: every node online, no migrate preference,
    // failures cleaned up.
    let dc = s.c.nodes[0].ctl.dc().expect("settled") as usize - 1;
    for id in 1..=n as NodeId {
        s.c.submit(
            dc,
            Command::SetStandby {
                node: id,
                standby: false,
            },
        );
    }
    for res in s.c.config.resources.clone() {
        s.c.submit(
            dc,
            Command::Unmigrate {
                resource: res.id.clone(),
            },
        );
    }
    if s.setup.group {
        s.c.submit(
            dc,
            Command::Unmigrate {
                resource: "g".into(),
            },
        );
    }
    s.c.submit(
        dc,
        Command::Cleanup {
            resource: None,
            node: None,
        },
    );
    let recovered_by = t + 60_000;
    let mut last = String::new();
    // An operation that hung during the faults may end, failed, after that
    // cleanup, and ban its resource again (long seed 70047: a hung start and
    // a hung stop of a group member ended failed 1 s after the cleanup, on
    // the two nodes the group was not banned from). The operator, seeing
    // failed actions in `hactl status`, cleans up once more.
    let mut cleaned_at = s.c.wall();
    while t < recovered_by {
        for i in 0..n {
            if !s.c.nodes[i].up && s.c.nodes[i].stopping.is_none() {
                s.c.restart(i);
            }
        }
        let late_failure =
            s.c.nodes
                .iter()
                .flat_map(|m| m.ctl.failures())
                .any(|f| f.at > cleaned_at);
        if late_failure
            && s.c.settled_together()
            && let Some(dc) = s.c.nodes[0].ctl.dc()
        {
            cleaned_at = s.c.wall();
            s.c.submit(
                dc as usize - 1,
                Command::Cleanup {
                    resource: None,
                    node: None,
                },
            );
        }
        t += 250;
        s.c.run_until(ms(t));
        match s.settled_and_running() {
            Ok(()) => {
                return format!(
                    "{n} nodes, {r} resources{}, {faults_done} faults, {} commands, {} fenced, recovered in {} ms",
                    if s.setup.group { " (group)" } else { "" },
                    s.submitted.len(),
                    s.c.fenced.len(),
                    t - (recovered_by - 60_000)
                );
            }
            Err(e) => last = e,
        }
    }
    s.c.fail(&format!(
        "not recovered 60 s after the faults ended and the cleanup: {last}"
    ))
}

#[test]
fn whole_nodes_survive_crashes_partitions_and_agent_faults() {
    run_seeds("cluster_sim", 1_000, 20_000, run);
}
