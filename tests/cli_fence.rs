//! `hactl fence-device` as a user runs it: the hactl binary, a
//! configuration file the test writes, and real devices behind it: a BMC
//! (OpenIPMI's ipmi_sim through scripts/ipmi-peer.sh) driven natively and
//! through Debian's fence_ipmilan, plus script agents. Checks the output,
//! the exit codes documented in docs/fencing.md (0 done/on, 1 the device
//! failed, 2 usage or unknown device, 3 power off) and the chassis itself.

mod common;
#[path = "fence_peer/mod.rs"]
mod fence_peer;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::hactl_fence_device as hactl;
use fence_peer::{Peer, fence_ipmilan, script};

/// The configuration: two nodes, the peer's BMC as "bmc-beta" (native
/// IPMI) and as "agent-beta" (fence_ipmilan), plus `extra` devices.
fn config(dir: &Path, peer_port: u16, password_file: &Path, extra: &str) -> PathBuf {
    let text = format!(
        r#"
[cluster]
name = "fence-cli"

[[node]]
name = "alpha"
id = 1
addresses = ["10.20.0.1"]
fence_levels = [["wd-alpha"]]

[[node]]
name = "beta"
id = 2
addresses = ["10.20.0.2"]
fence_levels = [["bmc-beta"], ["agent-beta"]]

[[fence_device]]
id = "bmc-beta"
kind = "ipmi"
host = "127.0.0.1"
port = {peer_port}
username = "admin"
password_file = "{pw}"
cipher_suite = 3
timeout = "10s"

[[fence_device]]
id = "agent-beta"
kind = "agent"
agent = "fence_ipmilan"
params = {{ ip = "127.0.0.1", ipport = {peer_port}, username = "admin", lanplus = 1, cipher = 3 }}
password_file = "{pw}"
timeout = "20s"

[[fence_device]]
id = "wd-alpha"
kind = "watchdog"
{extra}
"#,
        pw = password_file.display()
    );
    let p = dir.join("cluster.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn list_shows_every_device_with_kind_target_and_the_nodes_using_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        9623,
        &dir.path().join("pw"),
        "\n[[fence_device]]\nid = \"spare\"\nkind = \"agent\"\nagent = \"/usr/sbin/fence_apc\"\nparams = { ip = \"10.1.1.9\", plug = 4 }\n",
    );
    let r = hactl(&cfg, &["list"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", r.stdout);
    let row = |id: &str| -> Vec<String> {
        let l = lines
            .iter()
            .find(|l| l.starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("no row for {id}: {}", r.stdout));
        vec![l.to_string()]
    };
    assert!(lines[0].starts_with("DEVICE"), "{}", r.stdout);
    let bmc = &row("bmc-beta")[0];
    assert!(bmc.contains("ipmi"), "{bmc}");
    assert!(
        bmc.contains("admin@127.0.0.1:9623, cipher suite 3"),
        "{bmc}"
    );
    assert!(bmc.contains("10s"), "{bmc}");
    assert!(bmc.ends_with("beta (level 1)"), "{bmc}");
    let agent = &row("agent-beta")[0];
    assert!(
        agent.contains("fence_ipmilan ip=127.0.0.1 ipport=9623 username=admin"),
        "{agent}"
    );
    assert!(agent.ends_with("beta (level 2)"), "{agent}");
    let wd = &row("wd-alpha")[0];
    assert!(
        wd.contains("watchdog") && wd.contains("/dev/watchdog, 10 s"),
        "{wd}"
    );
    assert!(wd.ends_with("alpha (level 1)"), "{wd}");
    assert!(row("spare")[0].ends_with(" -"), "{}", r.stdout);
}

#[test]
fn native_ipmi_status_off_on_reboot_with_exit_codes_and_timings() {
    let peer = Peer::start(true);
    let pw = peer.password_file("pw", "fxpass");
    let cfg = config(peer.dir.path(), peer.port, &pw, "");

    let r = hactl(&cfg, &["status", "bmc-beta"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.starts_with("bmc-beta: status: power on ("),
        "{}",
        r.stdout
    );
    assert!(r.stdout.trim_end().ends_with(" s)"), "{}", r.stdout);

    let r = hactl(&cfg, &["off", "bmc-beta"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("bmc-beta: off: power off, confirmed by the device"),
        "{}",
        r.stdout
    );
    assert_eq!(peer.power(), "off");

    let r = hactl(&cfg, &["status", "bmc-beta"]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("power off"), "{}", r.stdout);

    let r = hactl(&cfg, &["on", "bmc-beta"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(peer.power(), "on");

    let r = hactl(&cfg, &["reboot", "bmc-beta"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("power cycled: off, then on"),
        "{}",
        r.stdout
    );
    let log = peer.chassis_log();
    let last_off = log.iter().rposition(|l| l == "set power 0").unwrap();
    let last_on = log.iter().rposition(|l| l == "set power 1").unwrap();
    assert!(last_off < last_on, "{log:?}");
    assert_eq!(peer.power(), "on");
}

#[test]
fn fence_agent_off_and_status_through_fence_ipmilan() {
    fence_ipmilan();
    let peer = Peer::start(true);
    let pw = peer.password_file("pw", "fxpass");
    let cfg = config(peer.dir.path(), peer.port, &pw, "");
    let r = hactl(&cfg, &["off", "agent-beta"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("agent-beta: off: power off, confirmed"),
        "{}",
        r.stdout
    );
    assert_eq!(peer.power(), "off");
    let r = hactl(&cfg, &["status", "agent-beta"]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
}

#[test]
fn a_wrong_password_fails_with_exit_1_naming_device_and_password() {
    fence_ipmilan();
    let peer = Peer::start(true);
    let pw = peer.password_file("pw", "wrong-password");
    let cfg = config(peer.dir.path(), peer.port, &pw, "");
    for dev in ["bmc-beta", "agent-beta"] {
        let r = hactl(&cfg, &["off", dev]);
        assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
        assert!(r.stdout.is_empty(), "{}", r.stdout);
        assert!(
            r.stderr.contains(&format!("fence device \"{dev}\"")),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains("password"), "{}", r.stderr);
        assert!(!r.stderr.contains("wrong-password"), "{}", r.stderr);
    }
    assert_eq!(peer.power(), "on");
}

#[test]
fn an_unreachable_bmc_times_out_with_exit_1() {
    // A port nobody answers on: a BMC that is down or unreachable.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "fxpass\n").unwrap();
    let cfg = config(dir.path(), port, &pw, "");
    let r = hactl(&cfg, &["status", "bmc-beta", "--timeout", "1"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("fence device \"bmc-beta\""),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("timeout"), "{}", r.stderr);
}

#[test]
fn a_slow_bmc_that_does_not_report_off_in_time_is_a_failure() {
    // The chassis keeps reporting "on" for 3 s after the power-down.
    let peer = {
        // Peer::start has no options; start this one by hand.
        let dir = tempfile::tempdir().unwrap();
        let port = fence_peer::free_udp_port();
        let out = Command::new(fence_peer::SCRIPT)
            .args(["start", dir.path().to_str().unwrap(), &port.to_string()])
            .env("HACTL_IPMI_POWER", "on")
            .env("HACTL_IPMI_OFF_DELAY_MS", "3000")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Peer { dir, port }
    };
    let pw = peer.password_file("pw", "fxpass");
    let cfg = config(peer.dir.path(), peer.port, &pw, "");
    let r = hactl(&cfg, &["off", "bmc-beta", "--timeout", "1"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("fence device \"bmc-beta\""),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("timeout"), "{}", r.stderr);
}

#[test]
fn a_missing_agent_fails_naming_the_program_and_the_package() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        9623,
        &dir.path().join("pw"),
        "\n[[fence_device]]\nid = \"pdu\"\nkind = \"agent\"\nagent = \"fence_hactl_test_absent\"\n",
    );
    let r = hactl(&cfg, &["off", "pdu"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("fence device \"pdu\""), "{}", r.stderr);
    assert!(r.stderr.contains("fence_hactl_test_absent"), "{}", r.stderr);
    assert!(
        r.stderr.contains("apt-get install fence-agents"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_script_agent_reports_off_with_exit_3_and_its_failure_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let agent = script(
        dir.path(),
        "fence_cli_test",
        "read a\ncase $a in action=status) exit 2 ;; esac\necho 'ERROR: plug 7 not found' >&2\nexit 1",
    );
    let cfg = config(
        dir.path(),
        9623,
        &dir.path().join("pw"),
        &format!(
            "\n[[fence_device]]\nid = \"pdu\"\nkind = \"agent\"\nagent = \"{}\"\nparams = {{ plug = 7 }}\n",
            agent.display()
        ),
    );
    let r = hactl(&cfg, &["status", "pdu"]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.starts_with("pdu: status: power off ("),
        "{}",
        r.stdout
    );
    let r = hactl(&cfg, &["on", "pdu"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("\"ERROR: plug 7 not found\""),
        "{}",
        r.stderr
    );
}

#[test]
fn ctrl_c_ends_the_command_and_kills_the_agent_it_ran() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let agent = script(
        dir.path(),
        "fence_cli_hang",
        &format!(
            "sleep 300 &\necho $! > {p}.tmp\necho $$ >> {p}.tmp\nmv {p}.tmp {p}\nwhile :; do sleep 1; done",
            p = pids.display()
        ),
    );
    let cfg = config(
        dir.path(),
        9623,
        &dir.path().join("pw"),
        &format!(
            "\n[[fence_device]]\nid = \"pdu\"\nkind = \"agent\"\nagent = \"{}\"\n",
            agent.display()
        ),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_hactl"))
        .arg("--config")
        .arg(&cfg)
        .args(["fence-device", "off", "pdu"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while !pids.exists() {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "the agent did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    for pid in std::fs::read_to_string(&pids).unwrap().lines() {
        let pid: u32 = pid.parse().unwrap();
        assert!(
            common::gone_within(pid, std::time::Duration::from_millis(500)),
            "agent process {pid} survived the Ctrl-C"
        );
    }
}

#[test]
fn an_unknown_device_lists_the_known_ones_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 9623, &dir.path().join("pw"), "");
    let r = hactl(&cfg, &["off", "bmc-gamma"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("no fence device \"bmc-gamma\"")
            && r.stderr.contains("bmc-beta, agent-beta, wd-alpha"),
        "{}",
        r.stderr
    );
    // A watchdog is not driven from here (opening it would arm it).
    let r = hactl(&cfg, &["status", "wd-alpha"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("is a watchdog"), "{}", r.stderr);
    // A configuration file that does not exist.
    let r = hactl(&dir.path().join("none.toml"), &["list"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("none.toml"), "{}", r.stderr);
}
