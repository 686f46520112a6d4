//! External fence agents: Debian's real `fence_ipmilan` against a real BMC
//! (OpenIPMI's ipmi_sim, one per test, through `scripts/ipmi-peer.sh`), and
//! small shell-script agents for what a real agent will not do on demand:
//! hang past the timeout with a grandchild, print garbage, exit with an
//! undefined code, keep saying "on" after a successful off.
//!
//! Needs the Debian package fence-agents (scripts/setup.sh installs it);
//! without it the fence_ipmilan tests fail, saying so. Nothing is skipped.

mod common;
#[path = "fence_peer/mod.rs"]
mod fence_peer;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::gone_within;
use fence_peer::{Peer, fence_ipmilan, script};
use hactl::config::{self, FenceKind, Secret};
use hactl::fencing::agent::{AgentDevice, AgentExit, OUTPUT_BYTES_MAX};
use hactl::fencing::{ErrorKind, FenceDevice, PowerState, device_from_config};

/// fence_ipmilan's off takes ~2.3 s (its power_wait of 2 s, then its own
/// status check), plus hactl's confirming status.
const TIMEOUT: Duration = Duration::from_secs(20);
/// How late after its deadline an operation may return: scheduling jitter
/// on a loaded two-core machine.
const DEADLINE_SLACK: Duration = Duration::from_millis(700);
/// A SIGKILLed process is gone once it has been scheduled: allow for that.
const KILL_SETTLE: Duration = Duration::from_millis(500);

fn ipmilan(peer: &Peer, password: &str) -> AgentDevice {
    let pw = peer.password_file("agent-pass", password);
    let params: BTreeMap<String, String> = [
        ("ip", "127.0.0.1".to_string()),
        ("ipport", peer.port.to_string()),
        ("username", "admin".to_string()),
        ("lanplus", "1".to_string()),
        ("cipher", "3".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    AgentDevice::new(
        "bmc-agent",
        fence_ipmilan().to_str().unwrap(),
        params,
        Some(Secret::File(pw)),
        TIMEOUT,
    )
    .unwrap()
}

fn scripted(path: &Path, timeout: Duration) -> AgentDevice {
    AgentDevice::new(
        "pdu-test",
        path.to_str().unwrap(),
        BTreeMap::from([("plug".to_string(), "node2".to_string())]),
        None,
        timeout,
    )
    .unwrap()
}

// ------------------------------------------------------------ fence_ipmilan, real

#[tokio::test]
async fn fence_ipmilan_status_reports_both_power_states() {
    fence_ipmilan();
    let off = Peer::start(false);
    let on = Peer::start(true);
    assert_eq!(
        ipmilan(&off, "fxpass").status(TIMEOUT).await.unwrap(),
        PowerState::Off
    );
    assert_eq!(
        ipmilan(&on, "fxpass").status(TIMEOUT).await.unwrap(),
        PowerState::On
    );
    // Status only reads.
    assert!(on.chassis_log().iter().all(|l| l == "get power"));
}

#[tokio::test]
async fn fence_ipmilan_off_is_confirmed_and_the_chassis_is_off() {
    fence_ipmilan();
    let peer = Peer::start(true);
    let dev = ipmilan(&peer, "fxpass");
    let t = Instant::now();
    assert_eq!(dev.off(TIMEOUT).await.unwrap(), PowerState::Off);
    let took = t.elapsed();
    assert_eq!(peer.power(), "off");
    let log = peer.chassis_log();
    let set = log
        .iter()
        .position(|l| l == "set power 0")
        .expect("the power-down reached the chassis");
    // hactl's own confirming status comes after the agent's: at least two
    // reads after the power-down.
    assert!(
        log[set..].iter().filter(|l| *l == "get power").count() >= 2,
        "{log:?}"
    );
    eprintln!("fence_ipmilan off confirmed in {took:?}");
}

#[tokio::test]
async fn fence_ipmilan_on_powers_the_chassis_up() {
    fence_ipmilan();
    let peer = Peer::start(false);
    let dev = ipmilan(&peer, "fxpass");
    assert_eq!(dev.on(TIMEOUT).await.unwrap(), PowerState::On);
    assert_eq!(peer.power(), "on");
    assert_eq!(dev.status(TIMEOUT).await.unwrap(), PowerState::On);
}

#[tokio::test]
async fn fence_ipmilan_reboot_goes_off_then_on() {
    fence_ipmilan();
    let peer = Peer::start(true);
    let dev = ipmilan(&peer, "fxpass");
    assert_eq!(dev.reboot(TIMEOUT).await.unwrap(), PowerState::On);
    assert_eq!(peer.power(), "on");
    let log = peer.chassis_log();
    let off = log.iter().position(|l| l == "set power 0").expect("off");
    let on = log.iter().position(|l| l == "set power 1").expect("on");
    assert!(off < on, "{log:?}");
}

#[tokio::test]
async fn fence_ipmilan_with_a_wrong_password_fails_quoting_the_agent() {
    fence_ipmilan();
    let peer = Peer::start(true);
    let dev = ipmilan(&peer, "not-the-password");
    for r in [dev.status(TIMEOUT).await, dev.off(TIMEOUT).await] {
        let e = r.unwrap_err();
        assert_eq!(e.kind, ErrorKind::DeviceError, "{e}");
        let msg = e.to_string();
        assert!(msg.contains("fence device \"bmc-agent\""), "{msg}");
        assert!(msg.contains("exit 1"), "{msg}");
        // fence_ipmilan's own words, without its timestamp, and what to check.
        assert!(
            msg.contains("\"ERROR: Failed: Unable to obtain correct plug status"),
            "{msg}"
        );
        assert!(msg.contains("password"), "{msg}");
        assert!(!msg.contains("not-the-password"), "{msg}");
    }
    assert_eq!(peer.power(), "on");
    assert!(!peer.chassis_log().iter().any(|l| l.starts_with("set")));
}

#[tokio::test]
async fn fence_ipmilan_against_a_silent_port_times_out_and_its_ipmitool_dies() {
    fence_ipmilan();
    // A bound UDP port that never answers: fence_ipmilan would wait ~20 s.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let params: BTreeMap<String, String> = [
        ("ip", "127.0.0.1".to_string()),
        ("ipport", port.to_string()),
        ("username", "admin".to_string()),
        ("lanplus", "1".to_string()),
        ("cipher", "3".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let timeout = Duration::from_secs(3);
    let dev = AgentDevice::new(
        "bmc-silent",
        "fence_ipmilan",
        params,
        Some(Secret::Inline("fxpass".into())),
        timeout,
    )
    .unwrap();
    let t = Instant::now();
    let e = dev.status(timeout).await.unwrap_err();
    let took = t.elapsed();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(e.to_string().contains("process group was killed"), "{e}");
    assert!(took <= timeout + DEADLINE_SLACK, "took {took:?}");
    // No ipmitool aimed at that port survives.
    let needle = format!("-p\0{port}\0");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            assert!(
                gone_within(pid, KILL_SETTLE),
                "pid {pid} still runs: {}",
                String::from_utf8_lossy(&cmdline)
            );
        }
    }
}

#[tokio::test]
async fn a_device_built_from_configuration_runs_the_agent_found_on_path() {
    fence_ipmilan();
    let peer = Peer::start(true);
    let pw = peer.password_file("cfg-pass", "fxpass");
    let dev = config::FenceDevice {
        id: "cfg-agent".into(),
        kind: FenceKind::Agent {
            agent: "fence_ipmilan".into(),
            params: [
                ("ip", "127.0.0.1".to_string()),
                ("ipport", peer.port.to_string()),
                ("username", "admin".to_string()),
                ("lanplus", "1".to_string()),
                ("cipher", "3".to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            password: Some(Secret::File(pw)),
        },
        timeout_ms: 20_000,
        delay_ms: 0,
    };
    let d = device_from_config(&dev).unwrap();
    assert_eq!(d.id(), "cfg-agent");
    assert_eq!(d.status(d.timeout()).await.unwrap(), PowerState::On);
}

// ------------------------------------------------------------ scripted agents

#[tokio::test]
async fn the_password_goes_on_stdin_never_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("record");
    let agent = script(
        dir.path(),
        "fence_recorder",
        &format!(
            "echo \"args:$#:$*\" > {r}; cat >> {r}; exit 0",
            r = rec.display()
        ),
    );
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let dev = AgentDevice::new(
        "rec",
        agent.to_str().unwrap(),
        BTreeMap::from([
            ("ip".to_string(), "10.9.9.9".to_string()),
            ("plug".to_string(), "node2".to_string()),
        ]),
        Some(Secret::File(pw)),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(
        dev.status(Duration::from_secs(5)).await.unwrap(),
        PowerState::On
    );
    assert_eq!(
        std::fs::read_to_string(&rec).unwrap(),
        "args:0:\naction=status\nip=10.9.9.9\nplug=node2\npassword=s3cret\n"
    );
}

#[tokio::test]
async fn a_hung_agent_and_its_grandchild_are_killed_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    // Ignores SIGTERM, so only the SIGKILL to the group ends it; its
    // background child would outlive a kill of the agent alone.
    let agent = script(
        dir.path(),
        "fence_hang",
        &format!(
            "trap '' TERM\nsleep 300 &\necho $! > {p}\necho $$ >> {p}\necho 'connecting to the PDU...' >&2\nwhile :; do sleep 1; done",
            p = pids.display()
        ),
    );
    let timeout = Duration::from_millis(1500);
    let dev = scripted(&agent, timeout);
    let t = Instant::now();
    let e = dev.off(timeout).await.unwrap_err();
    let took = t.elapsed();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("fence_hang action=off did not finish"),
        "{msg}"
    );
    assert!(msg.contains("\"connecting to the PDU...\""), "{msg}");
    assert!(took <= timeout + DEADLINE_SLACK, "took {took:?}");
    let text = std::fs::read_to_string(&pids).unwrap();
    let pids: Vec<u32> = text.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(pids.len(), 2, "{text}");
    for pid in pids {
        assert!(
            gone_within(pid, KILL_SETTLE),
            "process {pid} of the agent's group survived the timeout"
        );
    }
}

#[tokio::test]
async fn the_group_gets_sigterm_first_and_the_operation_ends_within_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("term");
    // Notes the SIGTERM and exits: the polite way out it is given first.
    let agent = script(
        dir.path(),
        "fence_polite",
        &format!(
            "trap 'echo term > {}; exit 1' TERM\nwhile :; do sleep 0.1; done",
            mark.display()
        ),
    );
    let timeout = Duration::from_secs(2);
    let dev = scripted(&agent, timeout);
    let t = Instant::now();
    let e = dev.status(timeout).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(t.elapsed() <= timeout + DEADLINE_SLACK, "{:?}", t.elapsed());
    assert_eq!(std::fs::read_to_string(&mark).unwrap(), "term\n");
}

#[tokio::test]
async fn fence_ipmilan_monitor_tells_a_reachable_device_from_a_wrong_password() {
    fence_ipmilan();
    let peer = Peer::start(false);
    ipmilan(&peer, "fxpass").monitor(TIMEOUT).await.unwrap();
    let e = ipmilan(&peer, "wrong").monitor(TIMEOUT).await.unwrap_err();
    assert!(
        e.to_string().contains("action=monitor failed (exit 1)"),
        "{e}"
    );
}

#[tokio::test]
async fn an_agent_that_exits_leaving_a_stray_does_not_block_and_the_stray_dies() {
    let dir = tempfile::tempdir().unwrap();
    let pidf = dir.path().join("stray");
    // The stray keeps stdout open: reading to its end would wait 300 s.
    let agent = script(
        dir.path(),
        "fence_stray",
        &format!(
            "sleep 300 &\necho $! > {}\necho 'Status: ON'\nexit 0",
            pidf.display()
        ),
    );
    let dev = scripted(&agent, Duration::from_secs(10));
    let t = Instant::now();
    assert_eq!(
        dev.status(Duration::from_secs(10)).await.unwrap(),
        PowerState::On
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let pid: u32 = std::fs::read_to_string(&pidf)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(gone_within(pid, KILL_SETTLE), "the stray {pid} still runs");
}

#[tokio::test]
async fn garbage_output_is_bounded_and_quoted_printably() {
    let dir = tempfile::tempdir().unwrap();
    // 1 MiB of random bytes on each stream, then a line with escapes.
    let agent = script(
        dir.path(),
        "fence_garbage",
        "head -c 1048576 /dev/urandom\nhead -c 1048576 /dev/urandom >&2\nprintf '\\n\\033[31mboom\\001\\377\\n' >&2\nexit 1",
    );
    let dev = scripted(&agent, Duration::from_secs(10));
    let run = dev.call("status", Duration::from_secs(10)).await.unwrap();
    assert_eq!(run.exit, AgentExit::Code(1));
    assert!(run.truncated);
    assert!(run.stdout.len() <= 4 * OUTPUT_BYTES_MAX); // lossy UTF-8 may widen
    let e = dev.status(Duration::from_secs(10)).await.unwrap_err();
    let msg = e.to_string();
    assert_eq!(e.kind, ErrorKind::DeviceError, "{msg}");
    assert!(!msg.chars().any(|c| c.is_control()), "{msg:?}");
    assert!(msg.len() < 2_000, "{} bytes", msg.len());
}

#[tokio::test]
async fn an_undefined_exit_code_is_a_protocol_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let agent = script(dir.path(), "fence_odd", "echo 'something odd' >&2\nexit 7");
    let dev = scripted(&agent, Duration::from_secs(5));
    let e = dev.status(Duration::from_secs(5)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
    let msg = e.to_string();
    assert!(msg.contains("exited with code 7"), "{msg}");
    assert!(msg.contains("\"something odd\""), "{msg}");
    // Exit 2 means off for status only; for on it is undefined as well.
    let agent2 = script(dir.path(), "fence_two", "exit 2");
    let dev2 = scripted(&agent2, Duration::from_secs(5));
    assert_eq!(
        dev2.status(Duration::from_secs(5)).await.unwrap(),
        PowerState::Off
    );
    let e = dev2.on(Duration::from_secs(5)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
}

#[tokio::test]
async fn a_missing_agent_is_a_configuration_error_naming_program_and_package() {
    for name in ["fence_hactl_test_no_such_agent", "/nonexistent/fence_x"] {
        let dev =
            AgentDevice::new("pdu-x", name, BTreeMap::new(), None, Duration::from_secs(1)).unwrap();
        let e = dev.off(Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Configuration, "{e}");
        let msg = e.to_string();
        assert!(msg.contains(name), "{msg}");
        assert!(msg.contains("fence-agents"), "{msg}");
        assert!(msg.contains("fence device \"pdu-x\""), "{msg}");
    }
}

#[tokio::test]
async fn off_waits_until_status_says_off() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("count");
    // Off "succeeds" at once; status says on for its first two reads.
    let agent = script(
        dir.path(),
        "fence_slowoff",
        &format!(
            "read line\ncase $line in\naction=off) exit 0 ;;\naction=status) echo x >> {c}; [ $(wc -l < {c}) -ge 3 ] && exit 2; exit 0 ;;\nesac\nexit 1",
            c = count.display()
        ),
    );
    let dev = scripted(&agent, Duration::from_secs(10));
    assert_eq!(
        dev.off(Duration::from_secs(10)).await.unwrap(),
        PowerState::Off
    );
    assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 3);
}

#[tokio::test]
async fn off_whose_status_never_says_off_is_a_timeout_not_a_success() {
    let dir = tempfile::tempdir().unwrap();
    let agent = script(dir.path(), "fence_liar", "exit 0");
    let timeout = Duration::from_millis(1500);
    let dev = scripted(&agent, timeout);
    let t = Instant::now();
    let e = dev.off(timeout).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(e.to_string().contains("still said on"), "{e}");
    assert!(t.elapsed() <= timeout + DEADLINE_SLACK);
}

#[tokio::test]
async fn a_reboot_whose_status_read_fails_still_counts_as_fenced_off() {
    let dir = tempfile::tempdir().unwrap();
    // Reboot succeeds (its off part did); every status read fails.
    let agent = script(
        dir.path(),
        "fence_reboot_only",
        "read a\ncase $a in action=reboot) exit 0 ;; esac\necho 'ERROR: status unavailable' >&2\nexit 1",
    );
    let dev = scripted(&agent, Duration::from_secs(5));
    assert_eq!(
        dev.reboot(Duration::from_secs(5)).await.unwrap(),
        PowerState::Off
    );
}

#[tokio::test]
async fn an_off_whose_status_reads_keep_failing_times_out_quoting_the_last_one() {
    let dir = tempfile::tempdir().unwrap();
    let agent = script(
        dir.path(),
        "fence_blind",
        "read a\ncase $a in action=off) exit 0 ;; esac\necho 'ERROR: Connection timed out' >&2\nexit 1",
    );
    let timeout = Duration::from_millis(1500);
    let dev = scripted(&agent, timeout);
    let e = dev.off(timeout).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    let msg = e.to_string();
    assert!(msg.contains("the last status read failed"), "{msg}");
    assert!(msg.contains("ERROR: Connection timed out"), "{msg}");
}
