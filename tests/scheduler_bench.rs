//! Benchmark (prints figures): time to compute a transition for 10, 100,
//! 1,000 and 10,000 resources on 3 nodes, and the same CIBs through
//! Pacemaker's `crm_simulate -x FILE -s` when it is installed (Debian:
//! `pacemaker-cli-utils`), side by side.
//!
//! Run: `cargo test --release --test scheduler_bench -- --ignored --nocapture`
//!
//! The generated cluster: 3 nodes, one of them just went down; resources
//! in chains of `CHAIN_LEN` (each colocated with and ordered after the one
//! before), each chain preferring one node; everything runs where it
//! prefers, so the resources of the lost node move.

use std::fmt::Write as _;
use std::time::{Duration, Instant as WallInstant};

use hactl::scheduler::{self, Options, cib};

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];
const NODES: [&str; 3] = ["node1", "node2", "node3"];
/// Resources per colocation/order chain.
const CHAIN_LEN: usize = 5;
/// Repetitions for hactl (the best is reported); crm_simulate runs once.
const HACTL_RUNS: usize = 5;
/// Targets from the issue.
const TARGET_1K_MS: u128 = 20;
const TARGET_10K_MS: u128 = 1_000;

fn generate_cib(n: usize) -> String {
    let mut x = String::new();
    x.push_str("<cib crm_feature_set=\"3.16.1\" validate-with=\"pacemaker-3.9\" epoch=\"1\" num_updates=\"0\" admin_epoch=\"0\" have-quorum=\"1\">\n<configuration>\n<crm_config><cluster_property_set id=\"opts\">\n");
    x.push_str("<nvpair id=\"opt-stonith\" name=\"stonith-enabled\" value=\"false\"/>\n");
    x.push_str("</cluster_property_set></crm_config>\n<nodes>\n");
    for (i, node) in NODES.iter().enumerate() {
        let _ = writeln!(x, "<node id=\"{}\" uname=\"{node}\"/>", i + 1);
    }
    x.push_str("</nodes>\n<resources>\n");
    for i in 0..n {
        let _ = writeln!(
            x,
            "<primitive id=\"r{i}\" class=\"ocf\" provider=\"pacemaker\" type=\"Dummy\"><operations><op id=\"r{i}-mon\" name=\"monitor\" interval=\"10s\"/></operations></primitive>"
        );
    }
    x.push_str("</resources>\n<constraints>\n");
    for i in 0..n {
        let chain = i / CHAIN_LEN;
        if i % CHAIN_LEN == 0 {
            let _ = writeln!(
                x,
                "<rsc_location id=\"l{i}\" rsc=\"r{i}\" node=\"{}\" score=\"100\"/>",
                NODES[home_of(chain)]
            );
        } else {
            let p = i - 1;
            let _ = writeln!(
                x,
                "<rsc_colocation id=\"c{i}\" rsc=\"r{i}\" with-rsc=\"r{p}\" score=\"INFINITY\"/>\n<rsc_order id=\"o{i}\" first=\"r{p}\" then=\"r{i}\" kind=\"Mandatory\"/>"
            );
        }
    }
    x.push_str("</constraints>\n</configuration>\n<status>\n");
    for (ni, node) in NODES.iter().enumerate() {
        // The last node has just gone down (cleanly).
        let (crmd, join, expected) = if ni == NODES.len() - 1 {
            ("offline", "down", "down")
        } else {
            ("online", "member", "member")
        };
        let _ = writeln!(
            x,
            "<node_state id=\"{}\" uname=\"{node}\" in_ccm=\"{}\" crmd=\"{crmd}\" join=\"{join}\" expected=\"{expected}\">\n<lrm id=\"{}\"><lrm_resources>",
            ni + 1,
            ni != NODES.len() - 1,
            ni + 1
        );
        for i in 0..n {
            let home = home_of(i / CHAIN_LEN);
            let (rc, op, key_rc) = if home == ni {
                (0, "start", 0)
            } else {
                (7, "monitor", 7)
            };
            let _ = writeln!(
                x,
                "<lrm_resource id=\"r{i}\" class=\"ocf\" provider=\"pacemaker\" type=\"Dummy\"><lrm_rsc_op id=\"r{i}_last_0\" operation_key=\"r{i}_{op}_0\" operation=\"{op}\" crm-debug-origin=\"bench\" crm_feature_set=\"3.16.1\" transition-key=\"1:1:{key_rc}:00000000-0000-0000-0000-000000000000\" transition-magic=\"0:{rc};1:1:{key_rc}:00000000-0000-0000-0000-000000000000\" call-id=\"{}\" rc-code=\"{rc}\" op-status=\"0\" interval=\"0\" last-rc-change=\"1672531200\" exec-time=\"1\" queue-time=\"0\" op-digest=\"0\"/></lrm_resource>",
                i + 1
            );
        }
        x.push_str("</lrm_resources></lrm>\n</node_state>\n");
    }
    x.push_str("</status>\n</cib>\n");
    x
}

/// The node a chain prefers (and runs on): the first chain on the node
/// that goes down, so even the smallest cluster has something to move.
fn home_of(chain: usize) -> usize {
    (chain + NODES.len() - 1) % NODES.len()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1_000.0)
}

#[test]
#[ignore = "benchmark: run with --release --ignored --nocapture"]
fn transition_time_for_10_to_10000_resources_against_crm_simulate() {
    let now = cib::epoch_instant(1_672_531_200);
    let dir = tempfile::tempdir().expect("temporary directory");
    let crm_simulate = which("crm_simulate");
    println!(
        "{:>9} | {:>14} | {:>22} | {:>18} | {:>9}",
        "resources", "hactl schedule", "hactl import+schedule", "crm_simulate -x -s", "ratio"
    );
    println!("{}", "-".repeat(86));
    let mut results = Vec::new();
    for &n in &SIZES {
        let xml = generate_cib(n);
        let mut best_schedule = Duration::MAX;
        let mut best_total = Duration::MAX;
        let mut moved = 0;
        for _ in 0..HACTL_RUNS {
            let t0 = WallInstant::now();
            let imported = cib::import(&xml, now).expect("generated CIB imports");
            let t1 = WallInstant::now();
            let t = scheduler::schedule_with(
                &imported.config,
                &imported.extensions,
                &imported.view,
                now,
                Options::default(),
            );
            let t2 = WallInstant::now();
            best_schedule = best_schedule.min(t2 - t1);
            best_total = best_total.min(t2 - t0);
            moved = t.summary.len();
        }
        assert!(
            moved > 0,
            "the transition moves the resources of the lost node"
        );
        let pcmk = crm_simulate.as_ref().map(|bin| {
            let path = dir.path().join(format!("bench-{n}.xml"));
            std::fs::write(&path, &xml).expect("write CIB");
            let t0 = WallInstant::now();
            let out = std::process::Command::new(bin)
                .arg("-x")
                .arg(&path)
                .arg("-s")
                .output()
                .expect("run crm_simulate");
            let d = t0.elapsed();
            assert!(
                out.status.success(),
                "crm_simulate failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            d
        });
        let (pcmk_s, ratio) = match pcmk {
            Some(d) => (
                ms(d),
                format!("{:.0}x", d.as_secs_f64() / best_total.as_secs_f64()),
            ),
            None => ("(not installed)".to_string(), "-".to_string()),
        };
        println!(
            "{n:>9} | {:>14} | {:>22} | {pcmk_s:>18} | {ratio:>9}",
            ms(best_schedule),
            ms(best_total)
        );
        results.push((n, best_schedule));
    }
    for (n, d) in results {
        match n {
            1_000 => assert!(d.as_millis() < TARGET_1K_MS, "1,000 resources took {d:?}"),
            10_000 => assert!(d.as_millis() < TARGET_10K_MS, "10,000 resources took {d:?}"),
            _ => {}
        }
    }
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}
