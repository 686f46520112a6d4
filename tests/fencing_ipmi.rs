//! The IPMI (RMCP+) fence device against a real BMC: OpenIPMI's ipmi_sim,
//! started per test on its own loopback port by `scripts/ipmi-peer.sh`
//! (which installs openipmi and ipmitool when missing, as root), with
//! ipmitool as the cross-check. Suite 17, which ipmi_sim lacks, is tested
//! by replaying transcripts computed independently in Python
//! (`tests/fencing_ipmi/kat.py`) against the sans-I/O client.
//!
//! Each test starts its own simulator (≈70 ms), so tests run in parallel.
//! Nothing is skipped: a test that cannot get its peer fails, saying why.

mod common;
#[path = "fence_peer/mod.rs"]
mod fence_peer;

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hactl::config::{self, FenceKind, IpmiPrivilege, Secret};
use hactl::fencing::ipmi::crypto::{self, CipherSuite, Handshake, SecretBytes, SessionKeys};
use hactl::fencing::ipmi::session::{self, Client, Entropy, Operation, Privilege};
use hactl::fencing::ipmi::{IpmiDevice, IpmiSettings};
use hactl::fencing::{ErrorKind, FenceDevice, FenceError, PowerState, device_from_config};
use hactl::time::Instant;

use fence_peer::{Peer, free_udp_port};

/// Generous for loopback: an operation against ipmi_sim takes ~10–100 ms.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How late after its deadline an operation may return: scheduling jitter
/// on a loaded two-core CI machine, not protocol time.
const DEADLINE_SLACK: Duration = Duration::from_millis(500);

// ------------------------------------------------------------------ the peer

/// What these tests ask of the shared simulator ([`fence_peer::Peer`]).
trait IpmiPeer {
    fn addr(&self) -> SocketAddr;
    /// The chassis power as the simulator tracks it.
    fn power_state(&self) -> PowerState;
    fn settings(&self, user: &str, password: &str, suite: u8) -> IpmiSettings;
    fn device(&self, user: &str, password: &str, suite: u8) -> IpmiDevice;
    fn admin(&self) -> IpmiDevice;
    /// Runs ipmitool (lanplus) against `port`.
    fn ipmitool_at(&self, port: u16, args: &[&str]) -> (bool, String);
    /// ipmitool's view of the power, as admin with suite 3.
    fn ipmitool_power(&self) -> PowerState;
}

impl IpmiPeer for Peer {
    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn power_state(&self) -> PowerState {
        match self.power().as_str() {
            "on" => PowerState::On,
            "off" => PowerState::Off,
            other => panic!("ipmi-peer.sh power: {other:?}"),
        }
    }

    fn settings(&self, user: &str, password: &str, suite: u8) -> IpmiSettings {
        settings_at(self.addr(), user, password, suite)
    }

    fn device(&self, user: &str, password: &str, suite: u8) -> IpmiDevice {
        IpmiDevice::new("bmc-test", self.settings(user, password, suite), TIMEOUT).unwrap()
    }

    fn admin(&self) -> IpmiDevice {
        self.device("admin", "fxpass", 3)
    }

    fn ipmitool_at(&self, port: u16, args: &[&str]) -> (bool, String) {
        let out = Command::new("ipmitool")
            .args([
                "-I",
                "lanplus",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-N",
                "1",
                "-R",
                "2",
            ])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn ipmitool_power(&self) -> PowerState {
        let (ok, out) = self.ipmitool_at(
            self.port,
            &[
                "-U", "admin", "-P", "fxpass", "-C", "3", "chassis", "power", "status",
            ],
        );
        assert!(ok, "ipmitool: {out}");
        if out.contains("Chassis Power is on") {
            PowerState::On
        } else if out.contains("Chassis Power is off") {
            PowerState::Off
        } else {
            panic!("ipmitool said: {out}")
        }
    }
}

fn settings_at(addr: SocketAddr, user: &str, password: &str, suite: u8) -> IpmiSettings {
    IpmiSettings {
        host: addr.ip().to_string(),
        port: addr.port(),
        username: user.to_string(),
        password: Secret::Inline(password.to_string()),
        cipher_suite: suite,
        privilege: Privilege::Operator,
        bmc_key: None,
    }
}

fn kind_of(r: Result<impl std::fmt::Debug, FenceError>) -> (ErrorKind, String) {
    let e = r.expect_err("the operation should have failed");
    (e.kind, e.to_string())
}

// ------------------------------------------------------------------ a UDP proxy that sees, drops and mangles

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    ToBmc,
    FromBmc,
}

/// What the proxy does with one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Pass,
    Drop,
    /// Flip one bit (at this byte offset) and pass it on.
    Flip(usize),
    /// Pass it on twice (a replay).
    Twice,
}

type Rule = Box<dyn FnMut(Dir, &[u8]) -> Fate + Send>;
/// Every datagram the proxy saw, in order.
type Seen = Arc<Mutex<Vec<(Dir, Vec<u8>)>>>;

/// Sits between hactl and the simulator, records every datagram and
/// applies a rule to each.
struct Proxy {
    addr: SocketAddr,
    seen: Seen,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Proxy {
    fn start(upstream: SocketAddr, rule: Rule) -> Proxy {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").unwrap();
        back.connect(upstream).unwrap();
        for s in [&front, &back] {
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        }
        let addr = front.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let rule = Arc::new(Mutex::new(rule));
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let mut threads = Vec::new();
        for dir in [Dir::ToBmc, Dir::FromBmc] {
            let (front, back) = (front.try_clone().unwrap(), back.try_clone().unwrap());
            let (seen, stop, rule, client) =
                (seen.clone(), stop.clone(), rule.clone(), client.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    let (n, to_front) = match dir {
                        Dir::ToBmc => match front.recv_from(&mut buf) {
                            Ok((n, from)) => {
                                *client.lock().unwrap() = Some(from);
                                (n, None)
                            }
                            Err(_) => continue,
                        },
                        Dir::FromBmc => match back.recv(&mut buf) {
                            Ok(n) => (n, *client.lock().unwrap()),
                            Err(_) => continue,
                        },
                    };
                    let mut d = buf[..n].to_vec();
                    seen.lock().unwrap().push((dir, d.clone()));
                    let fate = (rule.lock().unwrap())(dir, &d);
                    let copies = match fate {
                        Fate::Drop => 0,
                        Fate::Pass => 1,
                        Fate::Twice => 2,
                        Fate::Flip(at) => {
                            d[at] ^= 0x01;
                            1
                        }
                    };
                    for _ in 0..copies {
                        let _ = match (dir, to_front) {
                            (Dir::ToBmc, _) => back.send(&d),
                            (Dir::FromBmc, Some(c)) => front.send_to(&d, c),
                            (Dir::FromBmc, None) => Ok(0),
                        };
                    }
                }
            }));
        }
        Proxy {
            addr,
            seen,
            stop,
            threads,
        }
    }

    fn seen(&self) -> Vec<(Dir, Vec<u8>)> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self, dir: Dir) -> usize {
        self.seen().iter().filter(|(d, _)| *d == dir).count()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The RMCP+ payload type byte (offset 5) of an IPMI 2.0 datagram; None
/// for the sessionless IPMI 1.5 ones.
fn payload_type(d: &[u8]) -> Option<u8> {
    (d.len() > 5 && d[4] == 0x06).then(|| d[5])
}

// ------------------------------------------------------------------ power operations against ipmi_sim

#[tokio::test]
async fn status_agrees_with_ipmitool_in_both_power_states() {
    let peer = Peer::start_with(&[]);
    let dev = peer.admin();
    assert_eq!(dev.status(TIMEOUT).await.unwrap(), PowerState::Off);
    assert_eq!(peer.ipmitool_power(), PowerState::Off);
    let (ok, out) = peer.ipmitool_at(
        peer.port,
        &[
            "-U", "admin", "-P", "fxpass", "-C", "3", "chassis", "power", "on",
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(dev.status(TIMEOUT).await.unwrap(), PowerState::On);
    assert_eq!(peer.ipmitool_power(), PowerState::On);
    // A status read never touches the power.
    assert!(
        peer.chassis_log()
            .iter()
            .all(|l| l == "get power" || l == "set power 1"),
        "{:?}",
        peer.chassis_log()
    );
}

#[tokio::test]
async fn off_is_confirmed_only_once_the_chassis_reports_off() {
    // This chassis goes on reporting "on" for 600 ms after the power-down
    // command, like a real one: success before then would be a lie.
    const OFF_DELAY_MS: u64 = 600;
    let peer = Peer::start_with(&[
        ("HACTL_IPMI_POWER", "on"),
        ("HACTL_IPMI_OFF_DELAY_MS", "600"),
    ]);
    let dev = peer.admin();
    let t = std::time::Instant::now();
    let outcome = dev.execute(Operation::Off, TIMEOUT).await.unwrap();
    let took = t.elapsed();
    assert_eq!(outcome.report.power, PowerState::Off);
    assert!(
        took >= Duration::from_millis(OFF_DELAY_MS),
        "confirmed after {took:?}"
    );
    assert!(
        took < Duration::from_millis(OFF_DELAY_MS + 1_500),
        "confirmed after {took:?}"
    );
    assert!(outcome.stats.status_polls >= 2, "{:?}", outcome.stats);
    let log = peer.chassis_log();
    let down = log
        .iter()
        .position(|l| l == "set power 0")
        .expect("power-down reached the chassis");
    assert!(
        log[down + 1..].iter().filter(|l| *l == "get power").count() >= 2,
        "{log:?}"
    );
    assert_eq!(peer.power_state(), PowerState::Off);
    assert_eq!(peer.ipmitool_power(), PowerState::Off);
}

#[tokio::test]
async fn off_that_never_completes_is_a_timeout_not_a_success() {
    // The chassis takes 10 s to report off; the operation may take 1.5 s.
    let peer = Peer::start_with(&[
        ("HACTL_IPMI_POWER", "on"),
        ("HACTL_IPMI_OFF_DELAY_MS", "10000"),
    ]);
    let timeout = Duration::from_millis(1_500);
    let t = std::time::Instant::now();
    let (kind, msg) = kind_of(peer.admin().off(timeout).await);
    let took = t.elapsed();
    assert_eq!(kind, ErrorKind::Timeout, "{msg}");
    assert!(
        msg.contains("did not report power off") && msg.contains("last status: on"),
        "{msg}"
    );
    assert!(
        took >= timeout && took < timeout + DEADLINE_SLACK,
        "{took:?}"
    );
}

#[tokio::test]
async fn a_reboot_whose_power_on_fails_still_fences_and_says_so() {
    let peer = Peer::start_with(&[("HACTL_IPMI_POWER", "on")]);
    // Session packets to the BMC: 1 Set Session Privilege, 2 status, 3
    // power down, 4 status (off). From the 5th on (the power-up part),
    // nothing gets through.
    let mut session_packets = 0;
    let proxy = Proxy::start(
        peer.addr(),
        Box::new(move |dir, d| {
            if dir == Dir::ToBmc && payload_type(d) == Some(0xC0) {
                session_packets += 1;
                if session_packets >= 5 {
                    return Fate::Drop;
                }
            }
            Fate::Pass
        }),
    );
    let dev = IpmiDevice::new(
        "bmc-test",
        settings_at(proxy.addr, "admin", "fxpass", 3),
        TIMEOUT,
    )
    .unwrap();
    let outcome = dev
        .execute(Operation::Reboot, Duration::from_millis(1_500))
        .await
        .unwrap();
    assert_eq!(outcome.report.power, PowerState::Off);
    let warning = outcome.report.warning.expect("a warning");
    assert!(
        warning.contains("power-off confirmed, power-on failed"),
        "{warning}"
    );
    assert_eq!(peer.power_state(), PowerState::Off);
}

#[tokio::test]
async fn off_on_a_chassis_that_is_already_off_sends_no_power_command() {
    let peer = Peer::start_with(&[]);
    assert_eq!(peer.admin().off(TIMEOUT).await.unwrap(), PowerState::Off);
    assert_eq!(peer.chassis_log(), ["get power"]);
}

#[tokio::test]
async fn on_powers_the_chassis_up_and_confirms_it() {
    let peer = Peer::start_with(&[]);
    assert_eq!(peer.admin().on(TIMEOUT).await.unwrap(), PowerState::On);
    assert_eq!(peer.power_state(), PowerState::On);
    assert_eq!(peer.ipmitool_power(), PowerState::On);
    assert!(peer.chassis_log().contains(&"set power 1".to_string()));
}

#[tokio::test]
async fn reboot_powers_off_confirmed_then_on() {
    let peer = Peer::start_with(&[
        ("HACTL_IPMI_POWER", "on"),
        ("HACTL_IPMI_OFF_DELAY_MS", "200"),
    ]);
    assert_eq!(peer.admin().reboot(TIMEOUT).await.unwrap(), PowerState::On);
    let log = peer.chassis_log();
    let down = log
        .iter()
        .position(|l| l == "set power 0")
        .expect("powered down");
    let up = log
        .iter()
        .position(|l| l == "set power 1")
        .expect("powered up");
    assert!(down < up, "{log:?}");
    // Power-up only after a status read that saw it off: at least one poll
    // between the two commands (the chassis said "on" for 200 ms).
    assert!(
        log[down + 1..up]
            .iter()
            .filter(|l| *l == "get power")
            .count()
            >= 2,
        "{log:?}"
    );
    assert_eq!(peer.ipmitool_power(), PowerState::On);
}

#[tokio::test]
async fn power_cycle_and_hard_reset_reach_the_chassis() {
    let peer = Peer::start_with(&[("HACTL_IPMI_POWER", "on")]);
    let dev = peer.admin();
    dev.hard_reset(TIMEOUT).await.unwrap();
    assert!(
        peer.chassis_log().contains(&"set reset 1".to_string()),
        "{:?}",
        peer.chassis_log()
    );
    dev.power_cycle(TIMEOUT).await.unwrap();
    // ipmi_sim: power down now, power up one second later.
    assert!(
        peer.chassis_log().contains(&"set power 0".to_string()),
        "{:?}",
        peer.chassis_log()
    );
}

#[tokio::test]
async fn the_operator_user_can_fence_and_a_device_built_from_configuration_works() {
    let peer = Peer::start_with(&[("HACTL_IPMI_POWER", "on")]);
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("bmc.pass");
    std::fs::write(&pw, "oppass\n").unwrap();
    let cfg = config::FenceDevice {
        id: "bmc-node2".into(),
        kind: FenceKind::Ipmi {
            host: "127.0.0.1".into(),
            port: peer.port,
            username: "operator".into(),
            password: Secret::File(pw),
            cipher_suite: 3,
            privilege: IpmiPrivilege::Operator,
        },
        timeout_ms: 5_000,
        delay_ms: 0,
    };
    let dev = device_from_config(&cfg).unwrap();
    assert_eq!(dev.id(), "bmc-node2");
    assert_eq!(dev.timeout(), Duration::from_secs(5));
    assert_eq!(dev.off(dev.timeout()).await.unwrap(), PowerState::Off);
    assert_eq!(peer.ipmitool_power(), PowerState::Off);
}

// ------------------------------------------------------------------ credentials and privileges

#[tokio::test]
async fn a_wrong_password_is_an_authentication_error_and_touches_nothing() {
    let peer = Peer::start_with(&[("HACTL_IPMI_POWER", "on")]);
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("bmc.pass");
    std::fs::write(&pw, "wrong\n").unwrap();
    let mut s = peer.settings("admin", "", 3);
    s.password = Secret::File(pw.clone());
    let dev = IpmiDevice::new("bmc-test", s, TIMEOUT).unwrap();
    for op in [Operation::Status, Operation::Off] {
        let (kind, msg) = kind_of(dev.execute(op, TIMEOUT).await);
        assert_eq!(kind, ErrorKind::AuthenticationFailed, "{msg}");
        assert!(
            msg.contains("RAKP message 2") && msg.contains("wrong password"),
            "{msg}"
        );
        assert!(
            msg.contains("bmc-test") && msg.contains("check the password"),
            "{msg}"
        );
    }
    assert!(peer.chassis_log().is_empty(), "{:?}", peer.chassis_log());
    assert_eq!(peer.power_state(), PowerState::On);
    // ipmitool agrees the password is wrong.
    let (ok, _) = peer.ipmitool_at(
        peer.port,
        &[
            "-U", "admin", "-P", "wrong", "-C", "3", "chassis", "power", "status",
        ],
    );
    assert!(!ok);
    // The file is read at every use: fixing it fixes the next operation.
    std::fs::write(&pw, "fxpass\n").unwrap();
    assert_eq!(dev.status(TIMEOUT).await.unwrap(), PowerState::On);
    // A missing file is a configuration error naming it, before any datagram.
    std::fs::remove_file(&pw).unwrap();
    let (kind, msg) = kind_of(dev.status(TIMEOUT).await);
    assert_eq!(kind, ErrorKind::Configuration, "{msg}");
    assert!(msg.contains(&pw.display().to_string()), "{msg}");
}

#[tokio::test]
async fn an_unknown_user_is_an_authentication_error() {
    let peer = Peer::start_with(&[]);
    let (kind, msg) = kind_of(peer.device("nobody", "fxpass", 3).status(TIMEOUT).await);
    assert_eq!(kind, ErrorKind::AuthenticationFailed, "{msg}");
    assert!(
        msg.contains("does not know user \"nobody\"") && msg.contains("check the username"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_privilege_the_bmc_does_not_grant_is_reported_as_such() {
    let peer = Peer::start_with(&[]);
    // Limit every cipher suite to USER privilege on the BMC's LAN channel.
    let (ok, out) = peer.ipmitool_at(
        peer.port,
        &[
            "-U",
            "admin",
            "-P",
            "fxpass",
            "-C",
            "3",
            "lan",
            "set",
            "1",
            "cipher_privs",
            "uuuuuuuuuuuuuuu",
        ],
    );
    assert!(ok, "{out}");
    let (kind, msg) = kind_of(peer.admin().off(TIMEOUT).await);
    assert_eq!(kind, ErrorKind::InsufficientPrivilege, "{msg}");
    assert!(msg.contains("operator"), "{msg}");
    // ipmitool is refused too at operator level, and allowed at user level.
    let (ok, _) = peer.ipmitool_at(
        peer.port,
        &[
            "-U", "admin", "-P", "fxpass", "-C", "3", "-L", "OPERATOR", "chassis", "power",
            "status",
        ],
    );
    assert!(!ok);
    let (ok, out) = peer.ipmitool_at(
        peer.port,
        &[
            "-U", "admin", "-P", "fxpass", "-C", "3", "-L", "USER", "chassis", "power", "status",
        ],
    );
    assert!(ok, "{out}");
}

#[tokio::test]
async fn a_bmc_key_is_detected_and_used() {
    let peer = Peer::start_with(&[("HACTL_IPMI_BMC_KEY", "kg-secret")]);
    let (kind, msg) = kind_of(peer.admin().status(TIMEOUT).await);
    assert_eq!(kind, ErrorKind::AuthenticationFailed, "{msg}");
    assert!(msg.contains("BMC key (Kg)"), "{msg}");
    let mut s = peer.settings("admin", "fxpass", 3);
    s.bmc_key = Some(Secret::Inline("kg-wrong".into()));
    let (kind, msg) = kind_of(
        IpmiDevice::new("bmc-test", s.clone(), TIMEOUT)
            .unwrap()
            .status(TIMEOUT)
            .await,
    );
    assert_eq!(kind, ErrorKind::AuthenticationFailed, "{msg}");
    assert!(msg.contains("RAKP message 4"), "{msg}");
    s.bmc_key = Some(Secret::Inline("kg-secret".into()));
    let dev = IpmiDevice::new("bmc-test", s, TIMEOUT).unwrap();
    assert_eq!(dev.on(TIMEOUT).await.unwrap(), PowerState::On);
    let (ok, out) = peer.ipmitool_at(
        peer.port,
        &[
            "-U",
            "admin",
            "-P",
            "fxpass",
            "-C",
            "3",
            "-k",
            "kg-secret",
            "chassis",
            "power",
            "status",
        ],
    );
    assert!(ok && out.contains("Chassis Power is on"), "{out}");
}

// ------------------------------------------------------------------ cipher suites

#[tokio::test]
async fn cipher_suite_0_is_refused_before_any_datagram_although_the_bmc_accepts_it() {
    let peer = Peer::start_with(&[("HACTL_IPMI_POWER", "on")]);
    let proxy = Proxy::start(peer.addr(), Box::new(|_, _| Fate::Pass));
    // The trap is real: through the same proxy, ipmitool with suite 0 and a
    // WRONG password is let in by this BMC.
    let (ok, out) = peer.ipmitool_at(
        proxy.addr.port(),
        &[
            "-U",
            "admin",
            "-P",
            "not-the-password",
            "-C",
            "0",
            "chassis",
            "power",
            "status",
        ],
    );
    assert!(
        ok && out.contains("Chassis Power is on"),
        "ipmi_sim should accept suite 0: {out}"
    );
    let before = proxy.count(Dir::ToBmc);
    assert!(before > 0);

    for suite in (0..=u8::MAX).filter(|s| *s != 3 && *s != 17) {
        let cfg = config::FenceDevice {
            id: "bmc-weak".into(),
            kind: FenceKind::Ipmi {
                host: "127.0.0.1".into(),
                port: proxy.addr.port(),
                username: "admin".into(),
                password: Secret::Inline("not-the-password".into()),
                cipher_suite: suite,
                privilege: IpmiPrivilege::Administrator,
            },
            timeout_ms: 2_000,
            delay_ms: 0,
        };
        match device_from_config(&cfg) {
            Err(e) => {
                assert_eq!(e.kind, ErrorKind::RefusedCipherSuite, "suite {suite}: {e}");
                assert!(
                    e.to_string()
                        .contains(&format!("cipher suite {suite} is refused")),
                    "{e}"
                );
            }
            Ok(dev) => {
                // Should hactl ever build such a device, it must still
                // neither succeed nor send.
                let r = dev.status(Duration::from_secs(2)).await;
                panic!("suite {suite} was accepted; status gave {r:?}");
            }
        }
    }
    assert_eq!(
        proxy.count(Dir::ToBmc),
        before,
        "hactl sent a datagram for a refused suite"
    );
}

#[tokio::test]
async fn suite_17_on_a_bmc_without_it_is_reported_as_unsupported() {
    let peer = Peer::start_with(&[]);
    let (kind, msg) = kind_of(peer.device("admin", "fxpass", 17).status(TIMEOUT).await);
    assert_eq!(kind, ErrorKind::Unsupported, "{msg}");
    assert!(
        msg.contains("cipher suite 17") && msg.contains("set cipher_suite = 3"),
        "{msg}"
    );
    // ipmitool gets the same refusal.
    let (ok, out) = peer.ipmitool_at(
        peer.port,
        &[
            "-U", "admin", "-P", "fxpass", "-C", "17", "chassis", "power", "status",
        ],
    );
    assert!(
        !ok && out.contains("invalid authentication algorithm"),
        "{out}"
    );
}

// ------------------------------------------------------------------ the network: loss, tampering, replay, silence

#[tokio::test]
async fn lost_datagrams_are_retransmitted() {
    let peer = Peer::start_with(&[("HACTL_IPMI_POWER", "on")]);
    // Lose the first try of: the auth capabilities answer, Open Session,
    // the RAKP2 answer, RAKP3, and the first two session packets each way.
    let mut dropped: Vec<(Dir, Option<u8>)> = Vec::new();
    let mut session_packets = [0u32; 2];
    let rule: Rule = Box::new(move |dir, d| {
        let key = (dir, payload_type(d));
        let first = !dropped.contains(&key);
        let fate = match key {
            (Dir::FromBmc, None)
            | (Dir::ToBmc, Some(0x10))
            | (Dir::FromBmc, Some(0x13))
            | (Dir::ToBmc, Some(0x14))
                if first =>
            {
                Fate::Drop
            }
            (dir, Some(0xC0)) => {
                let n = &mut session_packets[dir as usize];
                *n += 1;
                if *n == 1 || (*n == 3 && dir == Dir::FromBmc) {
                    Fate::Drop
                } else {
                    Fate::Pass
                }
            }
            _ => Fate::Pass,
        };
        if fate == Fate::Drop {
            dropped.push(key);
        }
        fate
    });
    let proxy = Proxy::start(peer.addr(), rule);
    let dev = IpmiDevice::new(
        "bmc-test",
        settings_at(proxy.addr, "admin", "fxpass", 3),
        TIMEOUT,
    )
    .unwrap();
    let outcome = dev.execute(Operation::Off, TIMEOUT).await.unwrap();
    assert_eq!(outcome.report.power, PowerState::Off);
    assert!(outcome.stats.retransmissions >= 6, "{:?}", outcome.stats);
    assert_eq!(peer.ipmitool_power(), PowerState::Off);
}

#[tokio::test]
async fn a_tampered_answer_is_dropped_and_the_request_retried() {
    let peer = Peer::start_with(&[]);
    let mut session_answers = 0;
    let proxy = Proxy::start(
        peer.addr(),
        Box::new(move |dir, d| {
            if dir == Dir::FromBmc && payload_type(d) == Some(0xC0) {
                session_answers += 1;
                if session_answers == 2 {
                    // A bit of the Get Chassis Status answer's ciphertext.
                    return Fate::Flip(40);
                }
            }
            Fate::Pass
        }),
    );
    let dev = IpmiDevice::new(
        "bmc-test",
        settings_at(proxy.addr, "admin", "fxpass", 3),
        TIMEOUT,
    )
    .unwrap();
    let outcome = dev.execute(Operation::Status, TIMEOUT).await.unwrap();
    assert_eq!(outcome.report.power, PowerState::Off);
    assert_eq!(outcome.stats.datagrams_dropped, 1, "{:?}", outcome.stats);
    assert_eq!(outcome.stats.retransmissions, 1, "{:?}", outcome.stats);
}

#[tokio::test]
async fn replayed_answers_are_dropped() {
    let peer = Peer::start_with(&[("HACTL_IPMI_POWER", "on")]);
    let proxy = Proxy::start(
        peer.addr(),
        Box::new(|dir, _| {
            if dir == Dir::FromBmc {
                Fate::Twice
            } else {
                Fate::Pass
            }
        }),
    );
    let dev = IpmiDevice::new(
        "bmc-test",
        settings_at(proxy.addr, "admin", "fxpass", 3),
        TIMEOUT,
    )
    .unwrap();
    let outcome = dev.execute(Operation::Status, TIMEOUT).await.unwrap();
    assert_eq!(outcome.report.power, PowerState::On);
    let s = outcome.stats;
    // Every answer came twice; each second copy was refused (pre-session:
    // not the awaited message; in session: a sequence number seen before).
    // The copy of the last answer may arrive after the client is done.
    assert_eq!(s.retransmissions, 0, "{s:?}");
    assert_eq!(
        s.datagrams_received - s.datagrams_dropped,
        s.datagrams_sent,
        "{s:?}"
    );
    assert!(s.datagrams_dropped >= s.datagrams_sent - 1, "{s:?}");
}

#[tokio::test]
async fn every_operation_closes_its_session() {
    let peer = Peer::start_with(&[]);
    let dev = peer.admin();
    for _ in 0..3 {
        dev.status(TIMEOUT).await.unwrap();
    }
    dev.on(TIMEOUT).await.unwrap();
    let (ok, out) = peer.ipmitool_at(
        peer.port,
        &[
            "-U", "admin", "-P", "fxpass", "-C", "3", "session", "info", "active",
        ],
    );
    assert!(ok, "{out}");
    // Only ipmitool's own session is open.
    assert!(out.contains("active sessions               : 1"), "{out}");
}

#[tokio::test]
async fn a_closed_port_times_out_within_the_timeout() {
    let port = free_udp_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let dev =
        IpmiDevice::new("bmc-gone", settings_at(addr, "admin", "fxpass", 3), TIMEOUT).unwrap();
    let timeout = Duration::from_millis(1_000);
    let t = std::time::Instant::now();
    let (kind, msg) = kind_of(dev.status(timeout).await);
    let took = t.elapsed();
    assert_eq!(kind, ErrorKind::Timeout, "{msg}");
    assert!(
        took >= timeout && took < timeout + DEADLINE_SLACK,
        "{took:?}"
    );
    assert!(
        msg.contains("port unreachable") && msg.contains("bmc-gone"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_silent_bmc_times_out_within_the_timeout() {
    // Bound but never answering: datagrams vanish, as behind a firewall.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dev = IpmiDevice::new(
        "bmc-mute",
        settings_at(silent.local_addr().unwrap(), "admin", "fxpass", 3),
        TIMEOUT,
    )
    .unwrap();
    let timeout = Duration::from_millis(1_200);
    let t = std::time::Instant::now();
    let (kind, msg) = kind_of(dev.off(timeout).await);
    let took = t.elapsed();
    assert_eq!(kind, ErrorKind::Timeout, "{msg}");
    assert!(
        took >= timeout && took < timeout + DEADLINE_SLACK,
        "{took:?}"
    );
    assert!(
        msg.contains("no answer to Get Channel Authentication Capabilities"),
        "{msg}"
    );
    // 0, 250, 750 ms: backoff, not a flood.
    let mut buf = [0u8; 64];
    silent.set_nonblocking(true).unwrap();
    let mut n = 0;
    while silent.recv(&mut buf).is_ok() {
        n += 1;
    }
    assert_eq!(n, 3);
}

// ------------------------------------------------------------------ the sans-I/O client: virtual time

struct Counter(u8);

impl Entropy for Counter {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self.0.wrapping_add(1);
            *b = self.0;
        }
    }
}

fn pure_settings(suite: CipherSuite) -> session::Settings {
    session::Settings {
        suite,
        privilege: Privilege::Administrator,
        username: b"admin".to_vec(),
        password: SecretBytes::new(b"fxpass".to_vec()),
        bmc_key: None,
    }
}

#[test]
fn retransmissions_back_off_and_stop_at_the_deadline() {
    let t0 = Instant::from_millis(1_000);
    let mut c = Client::new(
        pure_settings(CipherSuite::Suite17),
        Operation::Off,
        Box::new(Counter(0)),
        t0,
        Duration::from_millis(4_000),
    );
    let mut sent_at = Vec::new();
    let mut now = t0;
    while !c.is_finished() {
        while c.poll_transmit().is_some() {
            sent_at.push((now - t0).as_millis());
        }
        now = c.poll_timeout().expect("a running client has a timeout");
        c.handle_timeout(now);
    }
    assert_eq!(sent_at, [0, 250, 750, 1750, 3750]);
    assert_eq!(now - t0, Duration::from_millis(4_000));
    let f = c.result().unwrap().as_ref().unwrap_err();
    assert_eq!(f.kind, ErrorKind::Timeout);
    assert!(f.detail.contains("5 datagram(s) sent"), "{}", f.detail);
}

// ------------------------------------------------------------------ known-answer transcripts (suite 17 and 3)

/// Feeds the client the transcript's random numbers, in order.
struct Replay(VecDeque<Vec<u8>>);

impl Entropy for Replay {
    fn fill(&mut self, buf: &mut [u8]) {
        let next = self
            .0
            .pop_front()
            .expect("the client drew more random bytes than the transcript");
        assert_eq!(next.len(), buf.len(), "random draw of another size");
        buf.copy_from_slice(&next);
    }
}

/// Change the n-th received datagram of a transcript.
type Mutation<'a> = (usize, &'a dyn Fn(&mut Vec<u8>));

struct Kat {
    lines: Vec<(String, String)>,
}

impl Kat {
    fn load(name: &str) -> Kat {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fencing_ipmi")
            .join(name);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let lines = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once(' ').expect("KEY VALUE");
                (k.to_string(), v.to_string())
            })
            .collect();
        Kat { lines }
    }

    fn get(&self, key: &str) -> &str {
        &self
            .lines
            .iter()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!("no {key}"))
            .1
    }

    fn bytes(&self, key: &str) -> Vec<u8> {
        hex::decode(self.get(key)).unwrap()
    }

    fn settings(&self) -> session::Settings {
        session::Settings {
            suite: CipherSuite::from_id(self.get("suite").parse().unwrap()).unwrap(),
            privilege: match self.get("privilege") {
                "3" => Privilege::Operator,
                "4" => Privilege::Administrator,
                p => panic!("privilege {p}"),
            },
            username: self.get("username").as_bytes().to_vec(),
            password: SecretBytes::new(self.get("password").as_bytes().to_vec()),
            bmc_key: None,
        }
    }

    /// Replays the transcript into a fresh client; `mutate` may change the
    /// n-th received datagram. Stops early (returning the client) once the
    /// client's behaviour can no longer follow the transcript.
    fn replay(&self, mutate: Option<Mutation>) -> Client {
        let entropy = self
            .lines
            .iter()
            .filter(|(k, _)| k == "entropy")
            .map(|(_, v)| hex::decode(v).unwrap())
            .collect();
        let mut c = Client::new(
            self.settings(),
            Operation::Status,
            Box::new(Replay(entropy)),
            Instant::ZERO,
            Duration::from_secs(5),
        );
        let mut received = 0;
        for (i, (k, v)) in self.lines.iter().enumerate() {
            let now = Instant::from_millis(i as u64);
            match k.as_str() {
                "send" => assert_eq!(
                    c.poll_transmit().map(hex::encode).as_deref(),
                    Some(v.as_str()),
                    "datagram at line {i}"
                ),
                "recv" => {
                    let mut d = hex::decode(v).unwrap();
                    let mutated = matches!(mutate, Some((n, _)) if n == received);
                    if let Some((_, f)) = mutate.filter(|_| mutated) {
                        f(&mut d);
                    }
                    let dropped = c.stats().datagrams_dropped;
                    c.handle_datagram(now, &d);
                    received += 1;
                    if mutated {
                        return c;
                    }
                    assert_eq!(
                        c.stats().datagrams_dropped,
                        dropped,
                        "answer at line {i} dropped"
                    );
                }
                _ => {}
            }
        }
        assert_eq!(
            c.poll_transmit(),
            None,
            "the client sent more than the transcript"
        );
        c
    }
}

fn check_transcript_keys(kat: &Kat) {
    let suite = kat.settings().suite;
    let rm: [u8; 16] = kat.bytes("rm").try_into().unwrap();
    let rc: [u8; 16] = kat.bytes("rc").try_into().unwrap();
    let guid: [u8; 16] = kat.bytes("guid").try_into().unwrap();
    let le = |k: &str| u32::from_le_bytes(kat.bytes(k).try_into().unwrap());
    let h = Handshake {
        console_session_id: le("sidm"),
        bmc_session_id: le("sidc"),
        rm,
        rc,
        guid,
        role: u8::from_str_radix(kat.get("role"), 16).unwrap(),
        username: b"admin",
    };
    let kuid = b"fxpass";
    assert_eq!(
        crypto::rakp2_auth_code(suite, kuid, &h),
        kat.bytes("rakp2_code")
    );
    assert_eq!(
        crypto::rakp3_auth_code(suite, kuid, &h),
        kat.bytes("rakp3_code")
    );
    let sik = crypto::session_integrity_key(suite, kuid, &h);
    assert_eq!(sik.expose(), kat.bytes("sik"));
    assert_eq!(
        crypto::rakp4_icv(suite, sik.expose(), &h),
        kat.bytes("rakp4_icv")
    );
    let keys = SessionKeys::derive(suite, sik.expose());
    assert_eq!(keys.k1.expose(), kat.bytes("k1"));
    assert_eq!(keys.k2.expose(), kat.bytes("k2"));
}

#[test]
fn suite_17_key_derivation_and_hmacs_match_independent_vectors() {
    let kat = Kat::load("suite17-status.kat");
    assert_eq!(kat.settings().suite, CipherSuite::Suite17);
    assert_eq!(kat.bytes("sik").len(), 32);
    assert_eq!(kat.bytes("rakp4_icv").len(), 16);
    check_transcript_keys(&kat);
}

#[test]
fn suite_17_session_matches_an_independent_transcript_byte_for_byte() {
    let c = Kat::load("suite17-status.kat").replay(None);
    assert!(c.is_finished());
    assert_eq!(c.result().unwrap().as_ref().unwrap().power, PowerState::On);
}

#[test]
fn suite_3_transcript_from_the_same_generator_matches_too() {
    // hactl's suite 3 is proven against ipmi_sim by the tests above; that
    // the generator agrees with it for suite 3 vouches for its suite 17.
    let kat = Kat::load("suite3-status.kat");
    check_transcript_keys(&kat);
    let c = kat.replay(None);
    assert_eq!(c.result().unwrap().as_ref().unwrap().power, PowerState::On);
}

#[test]
fn suite_17_wrong_password_fails_authentication_and_tells_the_bmc() {
    // The transcript ends with RAKP3 status 0x0F, which replay() checks.
    let c = Kat::load("suite17-wrong-password.kat").replay(None);
    assert!(c.is_finished());
    let f = c.result().unwrap().as_ref().unwrap_err();
    assert_eq!(f.kind, ErrorKind::AuthenticationFailed, "{}", f.detail);
}

#[test]
fn suite_17_forged_or_downgraded_answers_are_refused() {
    let kat = Kat::load("suite17-status.kat");
    // Received datagrams: 0 auth caps, 1 Open Session, 2 RAKP2, 3 RAKP4,
    // 4 Set Session Privilege, 5 Get Chassis Status, 6 Close Session.
    let last = |d: &mut Vec<u8>| {
        let n = d.len();
        d[n - 1] ^= 1;
    };
    // A BMC answering Open Session with suite 3's algorithms: a downgrade.
    let downgrade = |d: &mut Vec<u8>| {
        d[16 + 16] = 0x01;
        d[16 + 24] = 0x01;
    };
    for (n, f, kind) in [
        (
            1,
            &downgrade as &dyn Fn(&mut Vec<u8>),
            Some(ErrorKind::Protocol),
        ),
        (2, &last, Some(ErrorKind::AuthenticationFailed)),
        (3, &last, Some(ErrorKind::AuthenticationFailed)),
        // A session packet that fails its integrity check is dropped (the
        // request will be retransmitted), never believed.
        (5, &last, None),
    ] {
        let c = kat.replay(Some((n, f)));
        match kind {
            Some(kind) => {
                let r = c
                    .result()
                    .unwrap_or_else(|| panic!("answer {n}: no result"));
                assert_eq!(r.as_ref().unwrap_err().kind, kind, "answer {n}: {r:?}");
            }
            None => {
                assert!(c.result().is_none(), "answer {n}");
                assert_eq!(c.stats().datagrams_dropped, 1, "answer {n}");
            }
        }
    }
}
