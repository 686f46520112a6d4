//! hactld speaks systemd's notification protocol for real: these tests play
//! systemd's side of it (a NOTIFY_SOCKET datagram socket, WATCHDOG_USEC) and
//! check what a service manager would see: READY=1 with a STATUS= line,
//! watchdog pings, STOPPING=1 on SIGTERM, and exit status 78 with a precise
//! message when the configuration or key is wrong. Two daemons on loopback
//! addresses form a ring over real UDP with the encrypted envelope.
//! The same daemon under real systemd: vm-tests/nspawn/test-unit.sh.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const CONFIG: &str = r#"
[cluster]
name = "t"
[totem]
authkey = "KEY"
[[totem.link]]
port = PORT
[[node]]
name = "node1"
id = 1
addresses = ["127.0.0.11"]
[[node]]
name = "node2"
id = 2
addresses = ["127.0.0.12"]
"#;

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    key: PathBuf,
}

/// `port`: a totem port of the test's own, so tests can run in parallel.
fn setup(config_text: &str, port: u16) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("authkey");
    hactl::config::authkey::generate(&key, 64, false).unwrap();
    let config = dir.path().join("cluster.toml");
    let text = config_text
        .replace("KEY", key.to_str().unwrap())
        .replace("PORT", &port.to_string());
    std::fs::write(&config, text).unwrap();
    Setup { dir, config, key }
}

fn spawn(s: &Setup, node: &str, notify: Option<&Path>, watchdog_usec: Option<u64>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hactld"));
    let state = s.dir.path().join(format!("state-{node}"));
    cmd.args([
        "--config",
        s.config.to_str().unwrap(),
        "--node",
        node,
        "--state-dir",
        state.to_str().unwrap(),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .env_remove("JOURNAL_STREAM")
    .env_remove("WATCHDOG_PID");
    match notify {
        Some(p) => cmd.env("NOTIFY_SOCKET", p),
        None => cmd.env_remove("NOTIFY_SOCKET"),
    };
    match watchdog_usec {
        Some(u) => cmd.env("WATCHDOG_USEC", u.to_string()),
        None => cmd.env_remove("WATCHDOG_USEC"),
    };
    cmd.spawn().expect("start hactld")
}

/// Collects notification messages until `done` says so or the deadline.
fn collect(
    sock: &UnixDatagram,
    deadline: Duration,
    mut done: impl FnMut(&[String]) -> bool,
) -> Vec<String> {
    let start = Instant::now();
    let mut msgs = Vec::new();
    let mut buf = [0u8; 4096];
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    while start.elapsed() < deadline && !done(&msgs) {
        if let Ok(n) = sock.recv(&mut buf) {
            msgs.extend(
                String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .map(str::to_string),
            );
        }
    }
    msgs
}

fn finish(child: Child) -> (i32, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn ready_status_watchdog_and_clean_stop_reach_the_service_manager() {
    if !is_root() {
        eprintln!("skipped: the key must be root-owned, run as root");
        return;
    }
    let s = setup(CONFIG, 15402);
    let sock_path = s.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    // Ask for a watchdog every 300 ms: the daemon must ping every 150 ms.
    let child = spawn(&s, "node1", Some(&sock_path), Some(300_000));

    let msgs = collect(&sock, Duration::from_secs(20), |m| {
        m.iter().filter(|l| *l == "WATCHDOG=1").count() >= 3
    });
    let ready = msgs
        .iter()
        .position(|l| l == "READY=1")
        .unwrap_or_else(|| panic!("no READY=1 in {msgs:?}"));
    // READY=1 comes with the first ring (alone here: node2 is not running).
    let status = msgs[ready..]
        .iter()
        .find(|l| l.starts_with("STATUS=") && l.contains("node node1 (id 1) of cluster t"))
        .unwrap_or_else(|| panic!("no STATUS= naming the node with READY=1 in {msgs:?}"));
    assert!(status.contains("with 1 of 2 nodes (node1)"), "{status}");
    let pings = msgs.iter().filter(|l| *l == "WATCHDOG=1").count();
    assert!(pings >= 3, "expected watchdog pings, got {msgs:?}");
    assert!(
        msgs[ready..].iter().any(|l| l == "WATCHDOG=1"),
        "pings go on after READY=1: {msgs:?}"
    );

    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let msgs = collect(&sock, Duration::from_secs(10), |m| {
        m.iter().any(|l| l == "STOPPING=1")
    });
    assert!(msgs.iter().any(|l| l == "STOPPING=1"), "{msgs:?}");
    let (code, stderr) = finish(child);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("started: node node1"), "{stderr}");
}

#[test]
fn reload_with_a_broken_file_keeps_running_on_the_old_configuration() {
    if !is_root() {
        eprintln!("skipped: the key must be root-owned, run as root");
        return;
    }
    let s = setup(CONFIG, 15404);
    let sock_path = s.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let child = spawn(&s, "node2", Some(&sock_path), None);
    collect(&sock, Duration::from_secs(20), |m| {
        m.iter().any(|l| l == "READY=1")
    });

    std::fs::write(&s.config, "[cluster]\nname = 3\n").unwrap();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGHUP).unwrap();
    let msgs = collect(&sock, Duration::from_secs(10), |m| {
        m.iter().any(|l| l == "READY=1")
    });
    assert!(msgs.iter().any(|l| l == "RELOADING=1"), "{msgs:?}");
    assert!(
        msgs.iter().any(|l| l.starts_with("STATUS=node node2")),
        "still serving the old configuration: {msgs:?}"
    );

    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let (code, stderr) = finish(child);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("reload refused, keeping the running configuration"),
        "{stderr}"
    );
    assert!(
        stderr.contains("cluster.toml:2:8: error: cluster.name: expected a string"),
        "{stderr}"
    );
}

#[test]
fn a_bad_configuration_exits_78_naming_file_line_and_column() {
    let s = setup(&CONFIG.replace("id = 2", "id = 2\nvotes = \"one\""), 15412);
    let sock_path = s.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let child = spawn(&s, "node1", Some(&sock_path), None);
    let (code, stderr) = finish(child);
    assert_eq!(code, 78, "{stderr}");
    let file = s.config.display().to_string();
    assert!(
        stderr.contains(&format!(
            "{file}:15:9: error: node[1].votes: expected an integer, found a string"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("refusing to start"), "{stderr}");
    let msgs = collect(&sock, Duration::from_secs(2), |m| {
        m.iter().any(|l| l.starts_with("STATUS=failed"))
    });
    assert!(
        msgs.iter()
            .any(|l| l.starts_with("STATUS=failed") && l.contains("configuration error")),
        "{msgs:?}"
    );
    assert!(!msgs.iter().any(|l| l == "READY=1"), "{msgs:?}");
}

#[test]
fn a_key_readable_by_others_exits_78_and_says_how_to_fix_it() {
    let s = setup(CONFIG, 15406);
    std::fs::set_permissions(&s.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, stderr) = finish(spawn(&s, "node1", None, None));
    assert_eq!(code, 78, "{stderr}");
    assert!(
        stderr.contains("chmod 0400") || stderr.contains("chown root"),
        "{stderr}"
    );
}

#[test]
fn a_missing_key_exits_78_and_names_the_file() {
    let s = setup(CONFIG, 15408);
    std::fs::remove_file(&s.key).unwrap();
    let (code, stderr) = finish(spawn(&s, "node1", None, None));
    assert_eq!(code, 78, "{stderr}");
    assert!(
        stderr.contains(&format!("{}: No such file", s.key.display())),
        "{stderr}"
    );
}

#[test]
fn an_unknown_node_exits_78_listing_the_configured_ones() {
    let s = setup(CONFIG, 15410);
    let (code, stderr) = finish(spawn(&s, "node7", None, None));
    assert_eq!(code, 78, "{stderr}");
    assert!(
        stderr.contains("--node node7: no such node in the configuration (nodes: node1, node2)"),
        "{stderr}"
    );
}

/// The last STATUS= line in `msgs`.
fn last_status(msgs: &[String]) -> Option<&str> {
    msgs.iter().rev().find_map(|l| l.strip_prefix("STATUS="))
}

#[test]
fn two_daemons_form_one_quorate_ring_and_the_survivor_notices_a_crash_and_loses_quorum() {
    if !is_root() {
        eprintln!("skipped: the key must be root-owned, run as root");
        return;
    }
    // Two real hactld processes on loopback addresses, talking totem over
    // UDP with the encrypted envelope.
    let s = setup(CONFIG, 15414);
    let socks: Vec<(PathBuf, UnixDatagram)> = ["n1.sock", "n2.sock"]
        .iter()
        .map(|name| {
            let p = s.dir.path().join(name);
            let sock = UnixDatagram::bind(&p).unwrap();
            (p, sock)
        })
        .collect();
    let mut one = spawn(&s, "node1", Some(&socks[0].0), None);
    let two = spawn(&s, "node2", Some(&socks[1].0), None);
    // Two of two votes: quorate (no two_node here).
    let both = "with 2 of 2 nodes (node1, node2), quorate";
    let mut seen = Vec::new();
    for (_, sock) in &socks {
        let msgs = collect(sock, Duration::from_secs(20), |m| {
            last_status(m).is_some_and(|st| st.contains(both))
        });
        assert!(msgs.iter().any(|l| l == "READY=1"), "{msgs:?}");
        assert!(
            last_status(&msgs).is_some_and(|st| st.contains(both)),
            "no common ring: {msgs:?}"
        );
        seen.push(msgs);
    }
    // The ring number is persisted before it is used (a restarted node must
    // never re-create a ring id): at least the installed ring's.
    let ring_seq: u64 = last_status(&seen[0])
        .and_then(|st| st.split(": ring ").nth(1))
        .and_then(|r| r.split(' ').next())
        .and_then(|r| r.split('/').nth(1))
        .and_then(|n| n.parse().ok())
        .expect("a ring id in STATUS=");
    let stored: u64 = std::fs::read_to_string(s.dir.path().join("state-node1/ring-seq"))
        .expect("hactld persisted the ring sequence number")
        .trim()
        .parse()
        .unwrap();
    assert!(
        stored >= ring_seq,
        "stored {stored} < installed ring {ring_seq}"
    );
    // Crash node2: node1 must report a ring without it, within token +
    // consensus (0.66 s with the defaults) plus scheduling slack.
    let crash = Instant::now();
    kill(Pid::from_raw(two.id() as i32), Signal::SIGKILL).unwrap();
    let msgs = collect(&socks[0].1, Duration::from_secs(20), |m| {
        last_status(m).is_some_and(|st| st.contains("with 1 of 2 nodes (node1), not quorate"))
    });
    assert!(
        last_status(&msgs).is_some_and(|st| st.contains("with 1 of 2 nodes (node1), not quorate")),
        "{msgs:?}"
    );
    eprintln!("crash noticed after {:?}", crash.elapsed());
    kill(Pid::from_raw(one.id() as i32), Signal::SIGTERM).unwrap();
    let _ = one.wait();
    let (_, stderr) = finish(two);
    let _ = stderr;
}

#[test]
fn a_service_manager_that_does_not_read_its_socket_does_not_stall_the_daemon() {
    if !is_root() {
        eprintln!("skipped: the key must be root-owned, run as root");
        return;
    }
    // The socket's queue holds 10 datagrams (net.unix.max_dgram_qlen) and
    // nobody reads it: a blocking send would freeze node1's main loop, and
    // with it totem, after the tenth status change.
    let s = setup(CONFIG, 15416);
    let unread = s.dir.path().join("unread.sock");
    let _sock = UnixDatagram::bind(&unread).unwrap();
    let mut one = spawn(&s, "node1", Some(&unread), None);
    for _ in 0..8 {
        let two = spawn(&s, "node2", None, None);
        std::thread::sleep(Duration::from_millis(700));
        kill(Pid::from_raw(two.id() as i32), Signal::SIGKILL).unwrap();
        let _ = finish(two);
        std::thread::sleep(Duration::from_millis(900));
    }
    // Still alive and responsive: a clean stop within a few seconds, and the
    // log shows it followed every ring change, the last one included.
    kill(Pid::from_raw(one.id() as i32), Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while one.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = one.kill();
            panic!("node1 did not stop within 10 s of SIGTERM: its main loop is stuck");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, stderr) = finish(one);
    assert_eq!(code, 0, "{stderr}");
    let alone = stderr.matches("with 1 of 2 nodes (node1)").count();
    let pair = stderr.matches("with 2 of 2 nodes (node1, node2)").count();
    assert!(
        alone >= 8 && pair >= 8,
        "node1 followed {pair} joins and {alone} departures of 8:\n{stderr}"
    );
}

#[test]
fn a_node_started_later_with_another_membership_configuration_leaves_naming_the_difference() {
    if !is_root() {
        eprintln!("skipped: the key must be root-owned, run as root");
        return;
    }
    let s = setup(CONFIG, 15418);
    // node2's copy differs in a membership setting: the token timeout.
    let other = s.dir.path().join("node2.toml");
    let text = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace("[totem]\n", "[totem]\ntoken = 400\n");
    std::fs::write(&other, text).unwrap();
    let mut one = spawn(&s, "node1", None, None);
    // Incarnations are wall-clock seconds: node2 starts in a later second.
    std::thread::sleep(Duration::from_millis(1_100));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hactld"));
    let two = cmd
        .args([
            "--config",
            other.to_str().unwrap(),
            "--node",
            "node2",
            "--state-dir",
        ])
        .arg(s.dir.path().join("state-node2"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut two = two;
    while two.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = two.kill();
            let _ = one.kill();
            panic!("node2 did not leave within 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, stderr) = finish(two);
    assert_eq!(code, 78, "{stderr}");
    assert!(
        stderr.contains("leaving the cluster")
            && stderr.contains("node1")
            && stderr.contains("totem.token"),
        "{stderr}"
    );
    // node1 carries on and says who left and why (it delivers node2's
    // summary at about the time node2 leaves: give it a moment).
    std::thread::sleep(Duration::from_millis(1_500));
    assert!(one.try_wait().unwrap().is_none(), "node1 must keep running");
    kill(Pid::from_raw(one.id() as i32), Signal::SIGTERM).unwrap();
    let (code, stderr) = finish(one);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("node2 runs a different membership configuration")
            && stderr.contains("totem.token"),
        "{stderr}"
    );
}
