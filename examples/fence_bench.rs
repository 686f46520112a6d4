//! Benchmark of the IPMI fence device against a local ipmi_sim BMC:
//! time for "status" and for "off confirmed" (power-down sent and the
//! chassis polled until it reports off), median of many runs; then the
//! same two operations through the external fence agent kind running
//! Debian's `fence_ipmilan` against the same BMC, for comparison.
//!
//!     cargo run --release --example fence_bench [RUNS]
//!
//! Starts its own simulator with `scripts/ipmi-peer.sh` (root installs
//! openipmi and ipmitool when missing) on a free loopback port. Set
//! `HACTL_IPMI_OFF_DELAY_MS` to make the chassis take that long to report
//! off. Prints ipmitool's time for the same status read as a reference.
//! The fence-agent part needs the fence-agents package (scripts/setup.sh);
//! without fence_ipmilan it is left out, saying so.

use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use hactl::config::Secret;
use hactl::fencing::agent::AgentDevice;
use hactl::fencing::ipmi::{IpmiDevice, IpmiSettings, Operation, Privilege};
use hactl::fencing::{FenceDevice, PowerState};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/ipmi-peer.sh");
/// Runs per measurement unless given on the command line (the issue asks
/// for the median of at least 10).
const RUNS_DEFAULT: usize = 20;
const TIMEOUT: Duration = Duration::from_secs(10);

struct Peer {
    dir: tempfile::TempDir,
    port: u16,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = Command::new(SCRIPT)
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

fn start_peer() -> Peer {
    let dir = tempfile::tempdir().expect("temporary directory");
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(SCRIPT)
        .arg("start")
        .arg(dir.path())
        .arg(port.to_string())
        .output()
        .expect("run scripts/ipmi-peer.sh");
    assert!(
        out.status.success(),
        "cannot start ipmi_sim: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Peer { dir, port }
}

fn summary(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(|a, b| a.total_cmp(b));
    let n = ms.len();
    let median = if n % 2 == 1 {
        ms[n / 2]
    } else {
        (ms[n / 2 - 1] + ms[n / 2]) / 2.0
    };
    println!(
        "{name:<34} n={n:<3} median {median:7.2} ms   min {:7.2}   p90 {:7.2}   max {:7.2}",
        ms[0],
        ms[(n * 9).div_ceil(10) - 1],
        ms[n - 1]
    );
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("RUNS is a number"))
        .unwrap_or(RUNS_DEFAULT);
    let peer = start_peer();
    let dev = IpmiDevice::new(
        "bench",
        IpmiSettings {
            host: "127.0.0.1".into(),
            port: peer.port,
            username: "admin".into(),
            password: Secret::Inline("fxpass".into()),
            cipher_suite: 3,
            privilege: Privilege::Operator,
            bmc_key: None,
        },
        TIMEOUT,
    )
    .expect("valid settings");

    let mut status = Vec::new();
    let mut off = Vec::new();
    let mut polls = 0;
    let mut datagrams = (0, 0);
    for _ in 0..runs {
        let t = Instant::now();
        let o = dev
            .execute(Operation::Status, TIMEOUT)
            .await
            .expect("status");
        status.push(millis(t.elapsed()));
        datagrams.0 = o.stats.datagrams_sent;

        let on = dev.execute(Operation::On, TIMEOUT).await.expect("on");
        assert_eq!(on.report.power, PowerState::On);
        let t = Instant::now();
        let o = dev.execute(Operation::Off, TIMEOUT).await.expect("off");
        off.push(millis(t.elapsed()));
        assert_eq!(o.report.power, PowerState::Off);
        polls += o.stats.status_polls;
        datagrams.1 = o.stats.datagrams_sent;
    }

    let mut ipmitool = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let out = Command::new("ipmitool")
            .args([
                "-I",
                "lanplus",
                "-H",
                "127.0.0.1",
                "-p",
                &peer.port.to_string(),
            ])
            .args([
                "-U", "admin", "-P", "fxpass", "-C", "3", "chassis", "power", "status",
            ])
            .output()
            .expect("run ipmitool");
        ipmitool.push(millis(t.elapsed()));
        assert!(out.status.success());
    }

    println!(
        "ipmi_sim on 127.0.0.1:{}, cipher suite 3, {} ms chassis off delay",
        peer.port,
        std::env::var("HACTL_IPMI_OFF_DELAY_MS").unwrap_or_else(|_| "0".into())
    );
    summary(&format!("hactl status ({} datagrams)", datagrams.0), status);
    summary(
        &format!("hactl off confirmed ({} datagrams)", datagrams.1),
        off,
    );
    println!(
        "  (off: {:.1} status polls per run on average)",
        polls as f64 / runs as f64
    );
    summary("ipmitool chassis power status", ipmitool);

    if !std::path::Path::new("/usr/sbin/fence_ipmilan").exists() {
        println!(
            "fence agent: left out: /usr/sbin/fence_ipmilan is missing (apt-get install fence-agents)"
        );
        return;
    }
    // The same BMC through fence_ipmilan: with its default power_wait
    // (it sleeps 2 s after the power-down before its own status check),
    // and with power_wait=0 (the cost of the agent protocol alone).
    for power_wait in [None, Some("0")] {
        let mut params: BTreeMap<String, String> = [
            ("ip", "127.0.0.1".to_string()),
            ("ipport", peer.port.to_string()),
            ("username", "admin".to_string()),
            ("lanplus", "1".to_string()),
            ("cipher", "3".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if let Some(w) = power_wait {
            params.insert("power_wait".into(), w.into());
        }
        let agent = AgentDevice::new(
            "bench-agent",
            "fence_ipmilan",
            params,
            Some(Secret::Inline("fxpass".into())),
            TIMEOUT,
        )
        .expect("valid agent settings");
        let mut status = Vec::new();
        let mut off = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            agent.status(TIMEOUT).await.expect("agent status");
            status.push(millis(t.elapsed()));
            // Power on natively (fast), then time the agent's confirmed off.
            let on = dev.execute(Operation::On, TIMEOUT).await.expect("on");
            assert_eq!(on.report.power, PowerState::On);
            let t = Instant::now();
            let p = agent.off(TIMEOUT).await.expect("agent off");
            off.push(millis(t.elapsed()));
            assert_eq!(p, PowerState::Off);
        }
        let label = match power_wait {
            None => "default power_wait (2 s)".to_string(),
            Some(w) => format!("power_wait={w}"),
        };
        println!("fence agent fence_ipmilan, same BMC, {label}:");
        summary("agent status", status);
        summary("agent off confirmed (+1 status)", off);
    }
}
