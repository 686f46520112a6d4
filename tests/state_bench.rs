//! Figures, not assertions: how big a realistic state is on the wire and on
//! disk, and how fast commands apply, encode and merge. Run explicitly:
//! `cargo test --release --test state_bench -- --ignored --nocapture`.

use std::path::Path;
use std::time::Instant;

use hactl::config::OpName;
use hactl::state::codec::{CHUNK_BYTES_MAX, Message, encode_snapshot, to_payloads};
use hactl::state::merge::{Side, merge};
use hactl::state::{ClusterState, Command, OpRecord, WallMs, persist, prepare_config};
use hactl::totem::wire::NodeSet;

const WEB: &str = include_str!("../conf/web-cluster.toml");

/// The web cluster after a day: its configuration, every resource started
/// and monitored on its node, a few failures and fencing entries.
fn realistic() -> ClusterState {
    let mut s = ClusterState::new();
    let cfg = prepare_config(WEB, Path::new("web-cluster.toml"), None).unwrap();
    s.apply(1, &cfg, WallMs(1)).unwrap();
    let config = s.config.as_ref().unwrap().parse().unwrap();
    for n in &config.nodes {
        for r in &config.resources {
            for (op, interval_ms) in [(OpName::Start, 0), (OpName::Monitor, 10_000)] {
                s.apply(
                    n.id,
                    &Command::OpResult(OpRecord {
                        resource: r.id.clone(),
                        node: n.id,
                        op,
                        interval_ms,
                        rc: 0,
                        at: WallMs(2),
                        exit_reason: String::new(),
                    }),
                    WallMs(2),
                )
                .unwrap();
            }
        }
    }
    s
}

#[test]
#[ignore = "benchmark: prints figures"]
fn state_sizes_and_speeds() {
    let s = realistic();
    let snap = encode_snapshot(&s);
    let sync = to_payloads(&Message::Sync(hactl::state::codec::Sync {
        ring: Default::default(),
        side: NodeSet::single(1),
        fresh: false,
        state: s.clone(),
    }));
    println!(
        "web cluster state: {} bytes encoded ({} bytes of it configuration), \
         a Sync is {} totem message(s) of at most {} bytes",
        snap.len(),
        s.config.as_ref().unwrap().text.len(),
        sync.len(),
        CHUNK_BYTES_MAX + 6
    );
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let saves = 50;
    for _ in 0..saves {
        persist::save(dir.path(), &s).unwrap();
    }
    println!(
        "persist::save (write, fsync, rename, fsync dir): {:.2} ms each on this disk",
        t.elapsed().as_secs_f64() * 1e3 / f64::from(saves)
    );

    let mut a = s.clone();
    let n = 100_000u64;
    let t = Instant::now();
    for i in 0..n {
        let cmd = Command::FailCountAdd {
            resource: "nginx".into(),
            node: 1 + (i % 3) as u32,
            by: 1,
        };
        a.apply(1, &cmd, WallMs(10 + i)).unwrap();
    }
    println!(
        "apply: {:.2} µs per command",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let t = Instant::now();
    let k = 1_000;
    for _ in 0..k {
        std::hint::black_box(encode_snapshot(&a));
    }
    println!(
        "encode_snapshot: {:.1} µs",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(k)
    );
    let t = Instant::now();
    for _ in 0..k {
        std::hint::black_box(merge(&[
            Side {
                members: NodeSet::from_bits(0b011),
                fresh: false,
                state: &s,
            },
            Side {
                members: NodeSet::from_bits(0b100),
                fresh: false,
                state: &a,
            },
        ]));
    }
    println!(
        "merge of two sides: {:.1} µs",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(k)
    );
}
