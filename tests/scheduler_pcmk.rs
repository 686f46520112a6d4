//! Differential test against Pacemaker 2.1.5's own scheduler: every case in
//! ../shared/pcmk-scheduler/cases (inputs of Pacemaker's regression suite
//! with the answers Pacemaker computed for them) is imported, scheduled and
//! compared on three levels:
//!
//! 1. placement after the transition (`NAME.expected.json`, node lists as
//!    sets) — the issue's criterion;
//! 2. the allocation and promotion scores Pacemaker printed
//!    (`NAME.scores.txt`), line for line;
//! 3. the per-resource transition summary (the `# action ...` lines of
//!    `NAME.scores.txt`), without Pacemaker's free-text reasons.
//!
//! A case is "supported" when the import reports no unsupported feature.
//! Run with `cargo nextest run --test scheduler_pcmk --no-capture` to see
//! the counts and any mismatch.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hactl::scheduler::{self, Options, Transition, cib};

/// Issue 5: at least 90 % of the supported cases must place like Pacemaker.
const PLACEMENT_MATCH_PERCENT_MIN: usize = 90;
/// Scores and transition summaries match on every supported case today;
/// any divergence is a behaviour change to look at, so they are guarded at
/// 100 %.
const SCORES_MATCH_PERCENT_MIN: usize = 100;
const SUMMARY_MATCH_PERCENT_MIN: usize = 100;
/// "now" for the cases: none of them depends on it (no failure-timeout).
const CASES_NOW_EPOCH_S: u64 = 1_672_531_200;

/// Where Pacemaker's cases are: `HACTL_PCMK_CASES`, else `../shared`
/// beside the checkout, else the workplace's `/work/shared`. They are not
/// copied into the repository (they are Pacemaker's files).
fn cases_dir() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("HACTL_PCMK_CASES") {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/pcmk-scheduler/cases"));
    candidates.push(PathBuf::from("/work/shared/pcmk-scheduler/cases"));
    candidates.into_iter().find(|p| p.is_dir())
}

/// The cases, or None (after saying so loudly) where this machine has none:
/// set HACTL_REQUIRE_PCMK_CASES=1 to make their absence a failure.
fn cases_or_skip() -> Option<Vec<Case>> {
    match cases_dir() {
        Some(_) => Some(load_cases()),
        None if std::env::var_os("HACTL_REQUIRE_PCMK_CASES").is_some() => {
            panic!("Pacemaker's cases not found: set HACTL_PCMK_CASES to their directory")
        }
        None => {
            eprintln!(
                "SKIPPED: Pacemaker's scheduler cases are not on this machine (HACTL_PCMK_CASES, ../shared/pcmk-scheduler/cases, /work/shared/pcmk-scheduler/cases)"
            );
            None
        }
    }
}

struct Case {
    name: String,
    transition: Transition,
    unsupported: Vec<String>,
    expected_json: serde_json::Value,
    expected_scores: Vec<String>,
    expected_summary: Vec<String>,
}

fn load_cases() -> Vec<Case> {
    let dir = cases_dir().expect("checked by cases_or_skip");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the Pacemaker cases at {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".xml").map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no cases in {}", dir.display());
    names
        .into_iter()
        .map(|name| {
            let read = |ext: &str| {
                let p = dir.join(format!("{name}.{ext}"));
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            };
            let now = cib::epoch_instant(CASES_NOW_EPOCH_S);
            let imported = cib::import(&read("xml"), now)
                .unwrap_or_else(|e| panic!("{name}: import failed: {e}"));
            let transition = scheduler::schedule_with(
                &imported.config,
                &imported.extensions,
                &imported.view,
                now,
                Options { show_scores: true },
            );
            let scores_txt = read("scores.txt");
            let expected_json =
                serde_json::from_str(&read("expected.json")).expect("expected JSON parses");
            Case {
                name,
                transition,
                unsupported: imported.unsupported,
                expected_json,
                expected_scores: scores_txt
                    .lines()
                    .filter(|l| !l.starts_with('#'))
                    .map(str::to_string)
                    .collect(),
                expected_summary: scores_txt
                    .lines()
                    .filter_map(|l| l.strip_prefix("# "))
                    .filter(|l| !l.starts_with("transition summary") && !l.starts_with('('))
                    .map(strip_reason)
                    .collect(),
            }
        })
        .collect()
}

/// Removes ` reason="..."` (Pacemaker's free text) from a summary line.
fn strip_reason(line: &str) -> String {
    match line.find(" reason=\"") {
        Some(start) => {
            let rest = &line[start + " reason=\"".len()..];
            let end = rest.find('"').map_or(rest.len(), |e| e + 1);
            format!("{}{}", &line[..start], &rest[end..])
        }
        None => line.to_string(),
    }
}

/// Differences between the outcome and Pacemaker's (node lists as sets).
fn placement_mismatches(case: &Case) -> Vec<String> {
    let mut out = Vec::new();
    let expected = case.expected_json["resources"]
        .as_object()
        .expect("resources object");
    let got = &case.transition.outcome;
    let set = |v: &serde_json::Value| -> BTreeSet<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    for (id, e) in expected {
        match got.get(id) {
            None => out.push(format!("{id}: missing")),
            Some(g) => {
                if set(&e["nodes"]) != g.nodes {
                    out.push(format!(
                        "{id}: nodes expected {:?} got {:?}",
                        set(&e["nodes"]),
                        g.nodes
                    ));
                }
                if set(&e["promoted"]) != g.promoted {
                    out.push(format!(
                        "{id}: promoted expected {:?} got {:?}",
                        set(&e["promoted"]),
                        g.promoted
                    ));
                }
            }
        }
    }
    for id in got.keys() {
        if !expected.contains_key(id) {
            out.push(format!("{id}: not in Pacemaker's answer"));
        }
    }
    out
}

fn multiset(lines: &[String]) -> BTreeMap<&str, usize> {
    let mut m = BTreeMap::new();
    for l in lines {
        *m.entry(l.as_str()).or_insert(0) += 1;
    }
    m
}

fn line_mismatches(expected: &[String], got: &[String]) -> Vec<String> {
    let (e, g) = (multiset(expected), multiset(got));
    let mut out = Vec::new();
    for (l, n) in &e {
        if g.get(l) != Some(n) {
            out.push(format!("missing: {l}"));
        }
    }
    for (l, n) in &g {
        if e.get(l) != Some(n) {
            out.push(format!("extra:   {l}"));
        }
    }
    out
}

/// Checks one level on every supported case, prints the result and
/// returns (matched, supported).
fn check(what: &str, cases: &[Case], mismatches: impl Fn(&Case) -> Vec<String>) -> (usize, usize) {
    let supported: Vec<&Case> = cases.iter().filter(|c| c.unsupported.is_empty()).collect();
    let mut matched = 0;
    for c in &supported {
        let m = mismatches(c);
        if m.is_empty() {
            matched += 1;
        } else {
            println!("{what}: MISMATCH {}", c.name);
            for line in m {
                println!("    {line}");
            }
        }
    }
    for c in cases.iter().filter(|c| !c.unsupported.is_empty()) {
        println!(
            "{what}: unsupported {}: {}",
            c.name,
            c.unsupported.join("; ")
        );
    }
    println!(
        "{what}: {matched} of {} supported cases match Pacemaker 2.1.5 ({} cases in all)",
        supported.len(),
        cases.len()
    );
    (matched, supported.len())
}

fn assert_share(what: &str, (matched, supported): (usize, usize), percent_min: usize) {
    assert!(supported > 0, "{what}: no supported case");
    assert!(
        matched * 100 >= supported * percent_min,
        "{what}: only {matched} of {supported} supported cases match (need {percent_min} %)"
    );
}

#[test]
fn placements_match_pacemaker_on_its_regression_cases() {
    let Some(cases) = cases_or_skip() else { return };
    let result = check("placement", &cases, placement_mismatches);
    assert_share("placement", result, PLACEMENT_MATCH_PERCENT_MIN);
}

#[test]
fn allocation_scores_match_pacemaker_line_for_line() {
    let Some(cases) = cases_or_skip() else { return };
    let result = check("scores", &cases, |c| {
        line_mismatches(&c.expected_scores, &c.transition.scores)
    });
    assert_share("scores", result, SCORES_MATCH_PERCENT_MIN);
}

#[test]
fn transition_summaries_match_pacemaker() {
    let Some(cases) = cases_or_skip() else { return };
    let result = check("summary", &cases, |c| {
        line_mismatches(&c.expected_summary, &c.transition.summary)
    });
    assert_share("summary", result, SUMMARY_MATCH_PERCENT_MIN);
}

/// A divergence the randomized test (`scheduler_fuzz.rs`, seed 15779) found,
/// reduced: `c0` is a unique clone with two instances allowed per node;
/// `p0:0` must leave `n1` for `n2`, where `p0:1` already runs; `c2` is
/// interleaved after `c0`. Pacemaker pairs `c2`'s instance on `n2` with the
/// lowest-numbered instance of `c0` there (probing re-sorts instances by
/// number after placement), so it restarts after `p0:0`'s start. Expected
/// lines from `crm_simulate -S` (Pacemaker 2.1.5) on this input.
const INTERLEAVE_PAIRING_CIB: &str = r#"<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.9" epoch="1" num_updates="1" admin_epoch="0" have-quorum="1">
<configuration>
<crm_config><cluster_property_set id="opts"><nvpair id="o1" name="stonith-enabled" value="false"/></cluster_property_set></crm_config>
<nodes><node id="1" uname="n1"/><node id="2" uname="n2"/></nodes>
<resources>
<clone id="c0"><meta_attributes id="c0-m"><nvpair id="c0-u" name="globally-unique" value="true"/><nvpair id="c0-x" name="clone-max" value="2"/><nvpair id="c0-n" name="clone-node-max" value="2"/></meta_attributes><primitive id="p0" class="ocf" provider="pacemaker" type="Dummy"/></clone>
<clone id="c2"><meta_attributes id="c2-m"><nvpair id="c2-i" name="interleave" value="true"/></meta_attributes><primitive id="p2" class="ocf" provider="pacemaker" type="Dummy"/></clone>
</resources>
<constraints><rsc_order id="o" first="c0" then="c2" kind="Mandatory"/></constraints>
</configuration>
<status>
<node_state id="1" uname="n1" in_ccm="true" crmd="online" join="member" expected="member">
<transient_attributes id="1"><instance_attributes id="s1"><nvpair id="f1" name="fail-count-p0:0#monitor_10000" value="INFINITY"/><nvpair id="f2" name="last-failure-p0:0#monitor_10000" value="1672531200"/></instance_attributes></transient_attributes>
<lrm id="1"><lrm_resources>
<lrm_resource id="p0:0" class="ocf" provider="pacemaker" type="Dummy"><lrm_rsc_op id="p0:0_start_0" operation_key="p0:0_start_0" operation="start" crm_feature_set="3.16.1" transition-key="1:1:0:00000000-0000-0000-0000-000000000000" transition-magic="0:1;1:1:0:00000000-0000-0000-0000-000000000000" call-id="1" rc-code="1" op-status="0" interval="0" last-rc-change="1672531200" exec-time="1" queue-time="0" op-digest="f2317cad3d54cec5d7d7aa7d0bf35cf8"/></lrm_resource>
<lrm_resource id="p2" class="ocf" provider="pacemaker" type="Dummy"><lrm_rsc_op id="p2_start_0" operation_key="p2_start_0" operation="start" crm_feature_set="3.16.1" transition-key="2:1:0:00000000-0000-0000-0000-000000000000" transition-magic="0:0;2:1:0:00000000-0000-0000-0000-000000000000" call-id="2" rc-code="0" op-status="0" interval="0" last-rc-change="1672531200" exec-time="1" queue-time="0" op-digest="f2317cad3d54cec5d7d7aa7d0bf35cf8"/></lrm_resource>
</lrm_resources></lrm></node_state>
<node_state id="2" uname="n2" in_ccm="true" crmd="online" join="member" expected="member">
<lrm id="2"><lrm_resources>
<lrm_resource id="p0:1" class="ocf" provider="pacemaker" type="Dummy"><lrm_rsc_op id="p0:1_start_0" operation_key="p0:1_start_0" operation="start" crm_feature_set="3.16.1" transition-key="3:1:0:00000000-0000-0000-0000-000000000000" transition-magic="0:0;3:1:0:00000000-0000-0000-0000-000000000000" call-id="3" rc-code="0" op-status="0" interval="0" last-rc-change="1672531200" exec-time="1" queue-time="0" op-digest="f2317cad3d54cec5d7d7aa7d0bf35cf8"/></lrm_resource>
<lrm_resource id="p2" class="ocf" provider="pacemaker" type="Dummy"><lrm_rsc_op id="p2_start_0" operation_key="p2_start_0" operation="start" crm_feature_set="3.16.1" transition-key="4:1:0:00000000-0000-0000-0000-000000000000" transition-magic="0:0;4:1:0:00000000-0000-0000-0000-000000000000" call-id="4" rc-code="0" op-status="0" interval="0" last-rc-change="1672531200" exec-time="1" queue-time="0" op-digest="f2317cad3d54cec5d7d7aa7d0bf35cf8"/></lrm_resource>
</lrm_resources></lrm></node_state>
</status>
</cib>"#;

#[test]
fn interleaved_instances_pair_by_instance_number_like_pacemaker() {
    let now = cib::epoch_instant(CASES_NOW_EPOCH_S);
    let imported = cib::import(INTERLEAVE_PAIRING_CIB, now).expect("CIB imports");
    assert!(
        imported.unsupported.is_empty(),
        "{:?}",
        imported.unsupported
    );
    let t = scheduler::schedule_with(
        &imported.config,
        &imported.extensions,
        &imported.view,
        now,
        Options::default(),
    );
    // crm_simulate: Recover p0:0 (n1 -> n2); Stop p2:0 (n1) due to required
    // p0:0 start; Restart p2:1 (n2) due to required p0:0 start.
    assert_eq!(
        t.summary,
        [
            "recover p0:0 source=n1 dest=n2",
            "stop p2:0 node=n1",
            "restart p2:1 source=n2",
        ]
    );
}
