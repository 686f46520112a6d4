//! Randomized differential test against Pacemaker itself: generated CIBs
//! (the supported subset: primitives, groups, clones, promotable clones,
//! location / colocation / order constraints with roles, stickiness, fail
//! counts, failed operations, standby and offline nodes, quorum policies,
//! fencing) go through `crm_simulate -S` (Pacemaker schedules and simulates
//! the transition) and through hactl; the resulting placements must agree.
//!
//! Needs `crm_simulate` (Debian: `pacemaker-cli-utils`, 2.1.5). Run:
//! `cargo test --release --test scheduler_fuzz -- --ignored --nocapture`
//! Environment: `HACTL_FUZZ_CASES` (default 300), `HACTL_FUZZ_SEED` (first
//! seed, default 0). A failing seed replays exactly.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use hactl::scheduler::{self, Options, cib};

const CASES_DEFAULT: u64 = 300;
/// Share of generated cases that must agree with Pacemaker.
const MATCH_PERCENT_MIN: u64 = 100;
const NOW_EPOCH_S: u64 = 1_672_531_200;
/// Node names, chosen so that byte order and numeric order differ.
const NODE_NAMES: [&str; 4] = ["node1", "node10", "node2", "node3"];
/// Pacemaker's parameter digests for these resources (no parameters): of a
/// one-shot operation and of the 10 s monitor. Without them Pacemaker
/// would restart everything for a "definition change".
const DIGEST_ONE_SHOT: &str = "f2317cad3d54cec5d7d7aa7d0bf35cf8";
const DIGEST_MONITOR_10S: &str = "4811cef7f7f94e3a35a70be7916cb2fd";

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03 | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn score(rng: &mut Rng) -> String {
    match rng.below(8) {
        0 => "INFINITY".into(),
        1 => "-INFINITY".into(),
        _ => {
            let v = rng.range(-200, 200);
            if v == 0 { "1".into() } else { v.to_string() }
        }
    }
}

/// What a configured primitive is part of.
#[derive(Clone)]
struct Prim {
    id: String,
    /// The clone it is (directly or through its group) in.
    clone: Option<usize>,
}

#[derive(Clone)]
struct CloneInfo {
    unique: bool,
    promotable: bool,
    node_max: usize,
}

struct Top {
    id: String,
    promotable: bool,
}

fn generate(seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let node_count = 2 + rng.below(3);
    let nodes: Vec<&str> = NODE_NAMES[..node_count].to_vec();
    let fencing = rng.chance(20);
    let have_quorum = rng.chance(85);
    let policy = ["stop", "freeze", "ignore"][rng.below(3)];
    let symmetric = !rng.chance(10);

    let mut x = String::new();
    let _ = writeln!(
        x,
        "<cib crm_feature_set=\"3.16.1\" validate-with=\"pacemaker-3.9\" epoch=\"1\" num_updates=\"1\" admin_epoch=\"0\" have-quorum=\"{}\">",
        u8::from(have_quorum)
    );
    x.push_str("<configuration>\n<crm_config><cluster_property_set id=\"opts\">\n");
    let _ = writeln!(
        x,
        "<nvpair id=\"opt-stonith\" name=\"stonith-enabled\" value=\"{fencing}\"/>\n<nvpair id=\"opt-nqp\" name=\"no-quorum-policy\" value=\"{policy}\"/>\n<nvpair id=\"opt-sym\" name=\"symmetric-cluster\" value=\"{symmetric}\"/>"
    );
    x.push_str("</cluster_property_set></crm_config>\n");
    if rng.chance(30) {
        let _ = writeln!(
            x,
            "<rsc_defaults><meta_attributes id=\"rd\"><nvpair id=\"rd-s\" name=\"resource-stickiness\" value=\"{}\"/></meta_attributes></rsc_defaults>",
            rng.range(0, 150)
        );
    }
    x.push_str("<nodes>\n");
    for (i, n) in nodes.iter().enumerate() {
        if rng.chance(10) {
            let _ = writeln!(
                x,
                "<node id=\"{}\" uname=\"{n}\"><instance_attributes id=\"{n}-ia\"><nvpair id=\"{n}-sb\" name=\"standby\" value=\"on\"/></instance_attributes></node>",
                i + 1
            );
        } else {
            let _ = writeln!(x, "<node id=\"{}\" uname=\"{n}\"/>", i + 1);
        }
    }
    x.push_str("</nodes>\n<resources>\n");

    // Resources.
    let prim_count = 2 + rng.below(8);
    let mut prims: Vec<Prim> = Vec::new();
    let mut clones: Vec<CloneInfo> = Vec::new();
    let mut tops: Vec<Top> = Vec::new();
    let prim_xml = |rng: &mut Rng, id: &str, stateful: bool| {
        let mut meta = Vec::new();
        if rng.chance(40) {
            meta.push(("resource-stickiness", rng.range(0, 200).to_string()));
        }
        if rng.chance(20) {
            meta.push(("migration-threshold", rng.range(1, 3).to_string()));
        }
        if rng.chance(5) {
            meta.push(("target-role", "Stopped".to_string()));
        }
        if rng.chance(10) {
            meta.push(("priority", rng.range(0, 10).to_string()));
        }
        let mut s = format!(
            "<primitive id=\"{id}\" class=\"ocf\" provider=\"pacemaker\" type=\"{}\">",
            if stateful { "Stateful" } else { "Dummy" }
        );
        if !meta.is_empty() {
            let _ = write!(s, "<meta_attributes id=\"{id}-meta\">");
            for (k, v) in meta {
                let _ = write!(s, "<nvpair id=\"{id}-{k}\" name=\"{k}\" value=\"{v}\"/>");
            }
            s.push_str("</meta_attributes>");
        }
        let _ = write!(
            s,
            "<operations><op id=\"{id}-mon\" name=\"monitor\" interval=\"10s\"/></operations></primitive>"
        );
        s
    };
    let mut i = 0;
    while i < prim_count {
        let kind = rng.below(10);
        if kind < 2 && i + 2 <= prim_count {
            // A group of 2 or 3, maybe cloned.
            let len = (2 + rng.below(2)).min(prim_count - i);
            let gid = format!("g{i}");
            let cloned = rng.chance(25);
            let clone_index = clones.len();
            let mut inner = format!("<group id=\"{gid}\">");
            for k in 0..len {
                let pid = format!("p{}", i + k);
                inner.push_str(&prim_xml(&mut rng, &pid, false));
                prims.push(Prim {
                    id: pid,
                    clone: cloned.then_some(clone_index),
                });
            }
            inner.push_str("</group>");
            if cloned {
                let cid = format!("c{i}");
                let _ = writeln!(
                    x,
                    "<clone id=\"{cid}\">{}{inner}</clone>",
                    clone_meta(&mut rng, &cid, false, false, node_count).0
                );
                clones.push(CloneInfo {
                    unique: false,
                    promotable: false,
                    node_max: 1,
                });
                tops.push(Top {
                    id: cid,
                    promotable: false,
                });
            } else {
                let _ = writeln!(x, "{inner}");
                tops.push(Top {
                    id: gid,
                    promotable: false,
                });
            }
            i += len;
        } else if kind < 5 {
            // A clone of a primitive: anonymous, unique or promotable.
            let pid = format!("p{i}");
            let cid = format!("c{i}");
            let promotable = rng.chance(50);
            let unique = !promotable && rng.chance(25);
            let (meta, node_max) = clone_meta(&mut rng, &cid, promotable, unique, node_count);
            let _ = writeln!(
                x,
                "<clone id=\"{cid}\">{meta}{}</clone>",
                prim_xml(&mut rng, &pid, promotable)
            );
            prims.push(Prim {
                id: pid,
                clone: Some(clones.len()),
            });
            clones.push(CloneInfo {
                unique,
                promotable,
                node_max,
            });
            tops.push(Top {
                id: cid,
                promotable,
            });
            i += 1;
        } else {
            let pid = format!("p{i}");
            let _ = writeln!(x, "{}", prim_xml(&mut rng, &pid, false));
            prims.push(Prim {
                id: pid.clone(),
                clone: None,
            });
            tops.push(Top {
                id: pid,
                promotable: false,
            });
            i += 1;
        }
    }
    if fencing {
        x.push_str("<primitive id=\"fencer\" class=\"stonith\" type=\"fence_dummy\"/>\n");
    }
    x.push_str("</resources>\n<constraints>\n");
    let mut used = BTreeSet::new();
    for k in 0..rng.below(7) {
        let t = &tops[rng.below(tops.len())];
        let n = nodes[rng.below(node_count)];
        if !used.insert(format!("l{}{n}", t.id)) {
            continue;
        }
        let role = if t.promotable && rng.chance(50) {
            " role=\"Promoted\""
        } else {
            ""
        };
        let _ = writeln!(
            x,
            "<rsc_location id=\"loc{k}\" rsc=\"{}\" node=\"{n}\" score=\"{}\"{role}/>",
            t.id,
            score(&mut rng)
        );
    }
    for k in 0..rng.below(5) {
        let (a, b) = (rng.below(tops.len()), rng.below(tops.len()));
        if a == b || !used.insert(format!("c{a}-{b}")) || used.contains(&format!("c{b}-{a}")) {
            continue;
        }
        let mut roles = String::new();
        if tops[a].promotable && rng.chance(40) {
            let _ = write!(
                roles,
                " rsc-role=\"{}\"",
                ["Promoted", "Unpromoted"][rng.below(2)]
            );
        }
        if tops[b].promotable && rng.chance(40) {
            let _ = write!(
                roles,
                " with-rsc-role=\"{}\"",
                ["Promoted", "Unpromoted"][rng.below(2)]
            );
        }
        let _ = writeln!(
            x,
            "<rsc_colocation id=\"col{k}\" rsc=\"{}\" with-rsc=\"{}\" score=\"{}\"{roles}/>",
            tops[a].id,
            tops[b].id,
            score(&mut rng)
        );
    }
    for k in 0..rng.below(4) {
        let (a, b) = (rng.below(tops.len()), rng.below(tops.len()));
        if a >= b || !used.insert(format!("o{a}-{b}")) {
            continue;
        }
        let kind = ["Mandatory", "Mandatory", "Optional", "Serialize"][rng.below(4)];
        let mut extra = String::new();
        if kind != "Serialize" && rng.chance(20) {
            extra.push_str(" symmetrical=\"false\"");
        }
        if tops[a].promotable && rng.chance(40) {
            let _ = write!(
                extra,
                " first-action=\"{}\"",
                ["promote", "demote"][rng.below(2)]
            );
        }
        if tops[b].promotable && rng.chance(40) {
            let _ = write!(
                extra,
                " then-action=\"{}\"",
                ["promote", "start"][rng.below(2)]
            );
        }
        let _ = writeln!(
            x,
            "<rsc_order id=\"ord{k}\" first=\"{}\" then=\"{}\" kind=\"{kind}\"{extra}/>",
            tops[a].id, tops[b].id
        );
    }
    x.push_str("</constraints>\n</configuration>\n<status>\n");

    // The cluster now.
    let mut online: Vec<bool> = (0..node_count).map(|_| !rng.chance(15)).collect();
    online[rng.below(node_count)] = true;
    let mut call = 10;
    let mut unique_next: Vec<usize> = vec![0; clones.len()];
    let mut single_running: Vec<usize> = vec![0; prims.len()];
    for (ni, n) in nodes.iter().enumerate() {
        let (in_ccm, crmd, join, expected) = if online[ni] {
            ("true", "online", "member", "member")
        } else {
            ("false", "offline", "down", "down")
        };
        let _ = writeln!(
            x,
            "<node_state id=\"{}\" uname=\"{n}\" in_ccm=\"{in_ccm}\" crmd=\"{crmd}\" join=\"{join}\" expected=\"{expected}\">",
            ni + 1
        );
        let mut attrs = Vec::new();
        let mut lrm = String::new();
        for (pi, p) in prims.iter().enumerate() {
            let clone = p.clone.map(|c| clones[c].clone());
            let promotable = clone.as_ref().is_some_and(|c| c.promotable);
            if promotable && rng.chance(60) {
                attrs.push((format!("master-{}", p.id), rng.range(0, 20).to_string()));
            }
            // How many instances of a unique clone run here.
            let copies = match &clone {
                Some(c) if c.unique => 1 + rng.below(c.node_max),
                _ => 1,
            };
            for _ in 0..copies {
                let state = rng.below(100);
                let running_single = clone.is_none() && single_running[pi] > 0;
                let name = match &clone {
                    Some(c) if c.unique => {
                        let ci = p.clone.expect("clone");
                        let inst = unique_next[ci];
                        unique_next[ci] += 1;
                        format!("{}:{inst}", p.id)
                    }
                    _ => p.id.clone(),
                };
                let mut ops: Vec<(String, i64, i64, u64)> = Vec::new(); // (op, rc, target, interval)
                match state {
                    0..=39 => {}
                    40..=64 => ops.push(("monitor".into(), 7, 7, 0)),
                    _ if running_single && !rng.chance(10) => ops.push(("monitor".into(), 7, 7, 0)),
                    65..=89 => {
                        ops.push(("start".into(), 0, 0, 0));
                        ops.push(("monitor".into(), 0, 0, 10_000));
                    }
                    90..=93 if promotable => {
                        ops.push(("start".into(), 0, 0, 0));
                        ops.push(("promote".into(), 0, 0, 0));
                    }
                    90..=96 => {
                        ops.push(("start".into(), 0, 0, 0));
                        ops.push(("monitor".into(), 1, 0, 10_000));
                        attrs.push((
                            format!("fail-count-{}#monitor_10000", base(&name, &clone)),
                            rng.range(1, 3).to_string(),
                        ));
                        attrs.push((
                            format!("last-failure-{}#monitor_10000", base(&name, &clone)),
                            NOW_EPOCH_S.to_string(),
                        ));
                    }
                    _ => {
                        ops.push(("start".into(), 1, 0, 0));
                        attrs.push((
                            format!("fail-count-{}#start_0", base(&name, &clone)),
                            "INFINITY".into(),
                        ));
                        attrs.push((
                            format!("last-failure-{}#start_0", base(&name, &clone)),
                            NOW_EPOCH_S.to_string(),
                        ));
                    }
                }
                if ops.iter().any(|o| o.0 == "start" && o.1 == 0) {
                    single_running[pi] += 1;
                }
                if ops.is_empty() {
                    continue;
                }
                let type_ = if promotable { "Stateful" } else { "Dummy" };
                let _ = write!(
                    lrm,
                    "<lrm_resource id=\"{name}\" class=\"ocf\" provider=\"pacemaker\" type=\"{type_}\">"
                );
                for (k, (op, rc, target, interval)) in ops.iter().enumerate() {
                    call += 1;
                    let id = if *interval > 0 {
                        format!("{name}_{op}_{interval}")
                    } else if k + 1 == ops.len() || *op == "monitor" {
                        format!("{name}_last_{k}")
                    } else {
                        format!("{name}_{op}_0")
                    };
                    let _ = write!(
                        lrm,
                        "<lrm_rsc_op id=\"{id}\" operation_key=\"{name}_{op}_{interval}\" operation=\"{op}\" crm-debug-origin=\"fuzz\" crm_feature_set=\"3.16.1\" transition-key=\"{call}:1:{target}:00000000-0000-0000-0000-000000000000\" transition-magic=\"0:{rc};{call}:1:{target}:00000000-0000-0000-0000-000000000000\" call-id=\"{call}\" rc-code=\"{rc}\" op-status=\"0\" interval=\"{interval}\" last-rc-change=\"{NOW_EPOCH_S}\" exec-time=\"1\" queue-time=\"0\" op-digest=\"{}\"/>",
                        if *interval > 0 {
                            DIGEST_MONITOR_10S
                        } else {
                            DIGEST_ONE_SHOT
                        }
                    );
                }
                lrm.push_str("</lrm_resource>");
            }
        }
        if !attrs.is_empty() {
            let _ = write!(
                x,
                "<transient_attributes id=\"{}\"><instance_attributes id=\"status-{}\">",
                ni + 1,
                ni + 1
            );
            for (k, (name, value)) in attrs.iter().enumerate() {
                let _ = write!(
                    x,
                    "<nvpair id=\"a{ni}-{k}\" name=\"{name}\" value=\"{value}\"/>"
                );
            }
            x.push_str("</instance_attributes></transient_attributes>\n");
        }
        let _ = writeln!(
            x,
            "<lrm id=\"{}\"><lrm_resources>{lrm}</lrm_resources></lrm>",
            ni + 1
        );
        x.push_str("</node_state>\n");
    }
    x.push_str("</status>\n</cib>\n");
    x
}

fn base(name: &str, clone: &Option<CloneInfo>) -> String {
    match clone {
        Some(c) if c.unique => name.to_string(),
        _ => name.split(':').next().unwrap_or(name).to_string(),
    }
}

fn clone_meta(
    rng: &mut Rng,
    id: &str,
    promotable: bool,
    unique: bool,
    nodes: usize,
) -> (String, usize) {
    let mut s = format!("<meta_attributes id=\"{id}-meta\">");
    let mut node_max = 1;
    if promotable {
        let _ = write!(
            s,
            "<nvpair id=\"{id}-p\" name=\"promotable\" value=\"true\"/>"
        );
        if rng.chance(30) {
            let _ = write!(
                s,
                "<nvpair id=\"{id}-pm\" name=\"promoted-max\" value=\"{}\"/>",
                1 + rng.below(2)
            );
        }
    }
    if unique {
        node_max = 1 + rng.below(2);
        let _ = write!(
            s,
            "<nvpair id=\"{id}-u\" name=\"globally-unique\" value=\"true\"/><nvpair id=\"{id}-nm\" name=\"clone-node-max\" value=\"{node_max}\"/>"
        );
    }
    if rng.chance(40) {
        let _ = write!(
            s,
            "<nvpair id=\"{id}-m\" name=\"clone-max\" value=\"{}\"/>",
            1 + rng.below(nodes)
        );
    }
    if rng.chance(30) {
        let _ = write!(
            s,
            "<nvpair id=\"{id}-i\" name=\"interleave\" value=\"true\"/>"
        );
    }
    if rng.chance(30) {
        let _ = write!(
            s,
            "<nvpair id=\"{id}-s\" name=\"resource-stickiness\" value=\"{}\"/>",
            rng.range(0, 100)
        );
    }
    s.push_str("</meta_attributes>");
    (s, node_max)
}

/// crm_simulate's transition summary (`<actions><rsc_action .../>`) in
/// the words of `Transition::summary`, sorted, without the free-text reason.
fn summary_lines(xml: &str) -> Vec<String> {
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        return vec!["(unparsable crm_simulate output)".into()];
    };
    let mut out: Vec<String> = doc
        .descendants()
        .filter(|n| {
            n.has_tag_name("rsc_action") && n.parent().is_some_and(|p| p.has_tag_name("actions"))
        })
        .map(|n| {
            let mut line = format!(
                "{} {}",
                n.attribute("action").unwrap_or("?"),
                n.attribute("resource").unwrap_or("?")
            );
            for a in n.attributes() {
                if !matches!(a.name(), "action" | "resource" | "reason") {
                    let _ = write!(line, " {}={}", a.name(), a.value());
                }
            }
            line
        })
        .collect();
    out.sort();
    out
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

#[test]
#[ignore = "needs crm_simulate; run with --ignored --nocapture"]
fn generated_clusters_are_scheduled_like_pacemaker() {
    let Some(crm_simulate) = which("crm_simulate") else {
        panic!("crm_simulate is not installed (Debian: pacemaker-cli-utils)");
    };
    let cases: u64 = std::env::var("HACTL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES_DEFAULT);
    let first: u64 = std::env::var("HACTL_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let dir = tempfile::tempdir().expect("temporary directory");
    let now = cib::epoch_instant(NOW_EPOCH_S);
    let (mut matched, mut compared) = (0u64, 0u64);
    let mut failures = Vec::new();
    for seed in first..first + cases {
        let xml = generate(seed);
        let input = dir.path().join(format!("in-{seed}.xml"));
        let output = dir.path().join(format!("out-{seed}.xml"));
        std::fs::write(&input, &xml).expect("write");
        let run = std::process::Command::new(&crm_simulate)
            .args([
                "-x".as_ref(),
                input.as_os_str(),
                "-S".as_ref(),
                "-Q".as_ref(),
                "--output-as=xml".as_ref(),
                "-O".as_ref(),
                output.as_os_str(),
            ])
            .output()
            .expect("run crm_simulate");
        if !run.status.success() || !output.exists() {
            println!(
                "seed {seed}: crm_simulate failed, skipped: {}",
                String::from_utf8_lossy(&run.stderr)
                    .lines()
                    .next()
                    .unwrap_or("")
            );
            continue;
        }
        let imported = cib::import(&xml, now).expect("generated CIB imports");
        assert!(
            imported.unsupported.is_empty(),
            "seed {seed}: {:?}",
            imported.unsupported
        );
        let t = scheduler::schedule_with(
            &imported.config,
            &imported.extensions,
            &imported.view,
            now,
            Options::default(),
        );
        let after_xml = std::fs::read_to_string(&output).expect("read result");
        let after = cib::import(&after_xml, now).expect("result imports");
        let expected =
            scheduler::current_outcome(&after.config, &after.extensions, &after.view, now);
        compared += 1;
        let pcmk_summary = summary_lines(&String::from_utf8_lossy(&run.stdout));
        let mut ours = t.summary.clone();
        ours.sort();
        if expected == t.outcome && pcmk_summary == ours {
            matched += 1;
        } else {
            let mut diff = Vec::new();
            for (id, e) in &expected {
                let g = t.outcome.get(id);
                if g != Some(e) {
                    diff.push(format!(
                        "{id}: pacemaker {:?}/{:?} hactl {:?}/{:?}",
                        e.nodes,
                        e.promoted,
                        g.map(|g| &g.nodes),
                        g.map(|g| &g.promoted)
                    ));
                }
            }
            for id in t.outcome.keys() {
                if !expected.contains_key(id) {
                    diff.push(format!("{id}: only in hactl's outcome"));
                }
            }
            if pcmk_summary != ours {
                diff.push(format!("summary: pacemaker {pcmk_summary:?}"));
            }
            println!(
                "seed {seed}: MISMATCH\n  {}\n  hactl: {ours:?}",
                diff.join("\n  ")
            );
            failures.push(seed);
            let _ = std::fs::copy(
                &input,
                Path::new("/tmp").join(format!("hactl-fuzz-{seed}.xml")),
            );
        }
    }
    println!(
        "fuzz: {matched} of {compared} generated clusters scheduled like Pacemaker 2.1.5 (seeds {first}..{})",
        first + cases
    );
    if !failures.is_empty() {
        println!("mismatching seeds (inputs copied to /tmp/hactl-fuzz-SEED.xml): {failures:?}");
    }
    assert!(compared > 0);
    assert!(
        matched * 100 >= compared * MATCH_PERCENT_MIN,
        "{} of {compared} generated clusters differ from Pacemaker",
        compared - matched
    );
}
