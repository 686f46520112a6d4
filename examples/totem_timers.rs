//! Chooses totem timers by measurement, in the simulator: for each token
//! timeout and datagram loss rate, (a) how long a crash takes to produce a
//! new ring (2 and 3 nodes; median and max of 20 crashes), and (b) how many
//! false membership changes happen in 10 simulated minutes without any
//! fault. Prints a table; asserts nothing.
//!   cargo run --release --example totem_timers
//! HACTL_TOKENS=150,300, HACTL_RETRANSMITS=4 and HACTL_CONSENSUS=360 (ms)
//! choose what is measured (hactl's defaults without them).

use std::time::Duration;

use hactl::config::{
    HOLD_MS_DEFAULT, JOIN_MS_DEFAULT, SEQNO_UNCHANGED_CONST_DEFAULT,
    TOKEN_RETRANSMITS_BEFORE_LOSS_DEFAULT, default_consensus_ms,
};
use hactl::sim::{NetFaults, TotemSim};
use hactl::time::Instant;
use hactl::totem::srp::{Srp, SrpConfig, TotemEvent};
use hactl::totem::wire::NodeSet;

/// token_retransmits_before_loss_const (HACTL_RETRANSMITS; hactl's default
/// without it).
fn retransmits_before_loss() -> u64 {
    std::env::var("HACTL_RETRANSMITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::from(TOKEN_RETRANSMITS_BEFORE_LOSS_DEFAULT))
}

/// The token timeouts to measure (HACTL_TOKENS, comma-separated ms).
fn tokens() -> Vec<u64> {
    std::env::var("HACTL_TOKENS")
        .ok()
        .map(|v| v.split(',').filter_map(|t| t.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100, 200, 300, 500, 1000])
}

fn cfg(n: usize, token_ms: u64) -> SrpConfig {
    let mut nodes = NodeSet::EMPTY;
    (1..=n as u32).for_each(|id| nodes.insert(id));
    SrpConfig {
        token: Duration::from_millis(token_ms),
        token_retransmit: Duration::from_millis(
            (token_ms * 10 / (retransmits_before_loss() * 10 + 2)).max(1),
        ),
        // Clamped by Srp::new to its share of token_retransmit.
        hold: Duration::from_millis(HOLD_MS_DEFAULT),
        seqno_unchanged_const: SEQNO_UNCHANGED_CONST_DEFAULT,
        join: Duration::from_millis(50.min(token_ms / 2)),
        consensus: Duration::from_millis(
            std::env::var("HACTL_CONSENSUS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default_consensus_ms(token_ms, JOIN_MS_DEFAULT)),
        ),
        merge: Duration::from_millis(200),
        max_messages: 17,
        window_size: 50,
        nodes,
    }
}

fn faults(loss: u32) -> NetFaults {
    NetFaults {
        loss_per_million: loss,
        duplicate_per_million: 0,
        delay_min: Duration::from_micros(50),
        delay_max: Duration::from_micros(500),
    }
}

fn sim(n: usize, token_ms: u64, loss: u32, seed: u64) -> TotemSim {
    let nodes = (1..=n as u32)
        .map(|id| Srp::new(id, cfg(n, token_ms), 1, Instant::ZERO))
        .collect();
    TotemSim::new(nodes, faults(loss), seed)
}

/// Time from a crash until the survivors have a ring without the crashed node.
fn detection(n: usize, token_ms: u64, loss: u32, seed: u64) -> Option<Duration> {
    let mut s = sim(n, token_ms, loss, seed);
    s.run_until(Instant::from_millis(3_000));
    let crash_at = Instant::from_millis(3_000 + seed % 97);
    s.run_until(crash_at);
    s.crash(n - 1);
    let mut t = crash_at;
    while t < crash_at + Duration::from_secs(30) {
        t += Duration::from_millis(1);
        s.run_until(t);
        let (ring, members) = s.nodes[0].ring();
        if s.nodes[0].is_operational()
            && members.len() == n - 1
            && (1..n - 1).all(|i| s.nodes[i].ring() == (ring, members))
        {
            return Some(t - crash_at);
        }
    }
    None
}

/// Regular configurations installed after the first, with nothing failing.
fn false_alarms(n: usize, token_ms: u64, loss: u32, seed: u64, minutes: u64) -> usize {
    let mut s = sim(n, token_ms, loss, seed);
    s.run_until(Instant::from_millis(3_000));
    let before: usize = s
        .observed
        .iter()
        .map(|o| {
            o.events
                .iter()
                .filter(|e| matches!(e, TotemEvent::Regular { .. }))
                .count()
        })
        .sum();
    // Some traffic all along: one message per node every 100 ms.
    let end = 3_000 + minutes * 60_000;
    let mut t = 3_000;
    while t < end {
        t += 100;
        s.run_until(Instant::from_millis(t));
        for i in 0..n {
            // Unique payloads: the simulator's checks tell messages apart
            // by their bytes.
            let mut payload = vec![0; 100];
            payload[..8].copy_from_slice(&t.to_le_bytes());
            payload[8] = i as u8;
            s.broadcast(i, payload);
        }
    }
    let after: usize = s
        .observed
        .iter()
        .map(|o| {
            o.events
                .iter()
                .filter(|e| matches!(e, TotemEvent::Regular { .. }))
                .count()
        })
        .sum();
    (after - before) / n
}

fn main() {
    println!(
        "token_retransmits_before_loss_const = {} (HACTL_RETRANSMITS)",
        retransmits_before_loss()
    );
    println!(
        "token  loss   | crash→new ring, 2 nodes | 3 nodes             | false ring changes in 10 min"
    );
    println!("(ms)   (%)    | median     max          | median     max      | 2 nodes  3 nodes");
    for token_ms in tokens() {
        for loss in [0u32, 10_000, 20_000, 50_000] {
            let mut cols = Vec::new();
            for n in [2usize, 3] {
                let mut d: Vec<Duration> = (1..=20)
                    .filter_map(|seed| detection(n, token_ms, loss, seed))
                    .collect();
                d.sort();
                let (median, max) = if d.is_empty() {
                    (Duration::ZERO, Duration::ZERO)
                } else {
                    (d[d.len() / 2], d[d.len() - 1])
                };
                cols.push(format!(
                    "{:>7.0} ms {:>7.0} ms",
                    median.as_secs_f64() * 1e3,
                    max.as_secs_f64() * 1e3
                ));
            }
            let fa2 = false_alarms(2, token_ms, loss, 1, 10);
            let fa3 = false_alarms(3, token_ms, loss, 2, 10);
            println!(
                "{token_ms:>5}  {:>4.1}   | {}     | {}  | {fa2:>7}  {fa3:>7}",
                f64::from(loss) / 10_000.0,
                cols[0],
                cols[1]
            );
        }
    }
}
