//! hactld's D-Bus API for real: each node gets its own private system bus
//! (a real dbus-daemon with a system bus's default policy and the shipped
//! conf/dbus/org.hactl.Cluster1.conf included unchanged), two real hactld
//! processes form a ring over loopback (127.0.0.11/12), and the real `hactl`
//! binary reads their state over the bus, as root and as nobody. A crash of
//! node2 must reach a client as a QuorumChanged signal and in what `hactl
//! quorum` and `hactl status` print. Ports 15420-15429.
//! The same against real systemd and its system bus:
//! vm-tests/nspawn/test-unit.sh (check q).

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const CONFIG: &str = r#"
[cluster]
name = "apitest"
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

const NOBODY: u32 = 65534;
/// Every wait's limit: generous, the machine is shared.
const WAIT: Duration = Duration::from_secs(30);

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

use common::{Bus, start_bus, start_bus_in};

struct Cluster {
    dir: tempfile::TempDir,
    config: PathBuf,
}

fn cluster(port: u16) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("authkey");
    hactl::config::authkey::generate(&key, 64, false).unwrap();
    let config = dir.path().join("cluster.toml");
    let text = CONFIG
        .replace("KEY", key.to_str().unwrap())
        .replace("PORT", &port.to_string());
    std::fs::write(&config, text).unwrap();
    Cluster { dir, config }
}

/// A hactld process, killed on drop.
struct Daemon(Option<Child>);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Daemon {
    fn pid(&self) -> Pid {
        Pid::from_raw(self.0.as_ref().expect("running").id() as i32)
    }

    /// SIGTERM, then its exit status and output.
    fn stop(mut self) -> Output {
        kill(self.pid(), Signal::SIGTERM).unwrap();
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

/// Starts hactld as `node` with `bus_address` as its system bus.
fn hactld(c: &Cluster, node: &str, bus_address: &str) -> Daemon {
    let state = c.dir.path().join(format!("state-{node}"));
    let child = Command::new(env!("CARGO_BIN_EXE_hactld"))
        .args(["--config", c.config.to_str().unwrap(), "--node", node])
        .args(["--state-dir", state.to_str().unwrap()])
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus_address)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .env_remove("WATCHDOG_USEC")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hactld");
    Daemon(Some(child))
}

/// Runs the real `hactl` against `bus_address`, as root or as nobody.
fn hactl(bus_address: &str, as_nobody: bool, args: &[&str]) -> Output {
    let bin = env!("CARGO_BIN_EXE_hactl");
    let mut cmd = if as_nobody {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={NOBODY}"))
            .arg(format!("--regid={NOBODY}"))
            .arg("--clear-groups")
            .arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus_address)
        .output()
        .expect("run hactl")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}stderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `hactl ARGS` until its stdout satisfies `ok`, or fails after WAIT.
fn hactl_until(bus: &Bus, args: &[&str], ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let o = hactl(&bus.address, false, args);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        if o.status.success() && ok(&out) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "hactl {args:?} never showed what was expected within {WAIT:?}; last: {}",
            text(&o)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn hactl_quorum_and_status_follow_a_two_node_ring_and_a_crash_signalled_over_the_bus() {
    if !is_root() {
        eprintln!(
            "skipped: the key must be root-owned and only root may own the name; run as root"
        );
        return;
    }
    let c = cluster(15420);
    let (bus1, bus2) = (start_bus(true), start_bus(true));
    let _one = hactld(&c, "node1", &bus1.address);
    let two = hactld(&c, "node2", &bus2.address);

    // Both members, two votes, quorate.
    let out = hactl_until(&bus1, &["quorum"], |o| {
        o.contains("Quorate:          Yes") && o.contains("Nodes:            2")
    });
    for line in [
        "Node ID:          1",
        "Total votes:      2",
        "Expected votes:   2",
        "Quorum:           2",
        "         1          1 node1 (local)",
        "         2          1 node2",
    ] {
        assert!(out.contains(line), "no {line:?} in:\n{out}");
    }
    let ring_line = out
        .lines()
        .find(|l| l.starts_with("Ring ID:"))
        .unwrap()
        .to_string();

    // --json: the same data, machine-readable.
    let o = hactl(&bus1.address, false, &["quorum", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(j["quorate"], true, "{j}");
    assert_eq!(j["total_votes"], 2, "{j}");
    assert_eq!(j["node_id"], 1, "{j}");
    let names: Vec<&str> = j["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["node1", "node2"], "{j}");
    let ring = format!("{}.{}", j["ring_id"]["rep"], j["ring_id"]["seq"]);
    assert!(ring_line.ends_with(&ring), "{ring_line} vs {j}");

    let out = hactl_until(&bus1, &["status"], |o| o.contains("[ node1 node2 ]"));
    assert!(out.contains("Node:     node1 (id 1)"), "{out}");
    assert!(!out.contains("Offline"), "{out}");
    assert!(out.contains("Quorum:   quorate (2 of 2"), "{out}");
    assert!(out.contains("link 0 127.0.0.11:15420: up"), "{out}");
    let o = hactl(&bus1.address, false, &["status", "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(s["api_version"], 1, "{s}");
    assert_eq!(s["cluster"], "apitest", "{s}");
    assert_eq!(s["members"].as_array().unwrap().len(), 2, "{s}");

    // Listen for the signals the way a UI would, then crash node2.
    let rt = rt();
    let (quorate, members) = rt.block_on(async {
        use futures_lite_next::next;
        let conn = zbus::connection::Builder::address(bus1.address.as_str())
            .build()
            .await
            .unwrap();
        let proxy = hactl::api::Cluster1ClientProxy::new(&conn).await.unwrap();
        assert_eq!(proxy.api_version().await.unwrap(), 1);
        let mut quorum_changed = proxy.receive_quorum_changed().await.unwrap();
        let mut membership_changed = proxy.receive_membership_changed().await.unwrap();
        let crash = Instant::now();
        kill(two.pid(), Signal::SIGKILL).unwrap();
        let q = tokio::time::timeout(WAIT, next(&mut quorum_changed))
            .await
            .expect("QuorumChanged within 30 s of the crash")
            .unwrap();
        // A figure, not a goal: token + consensus timeouts plus the bus.
        eprintln!(
            "QuorumChanged arrived {:?} after the crash",
            crash.elapsed()
        );
        let m = tokio::time::timeout(WAIT, next(&mut membership_changed))
            .await
            .expect("MembershipChanged within 30 s of the crash")
            .unwrap();
        (q.args().unwrap().quorate, m.args().unwrap().members.clone())
    });
    assert!(!quorate, "QuorumChanged after the crash says quorate");
    assert_eq!(members, ["node1"]);

    // What a user sees right after the signal.
    let o = hactl(&bus1.address, false, &["quorum"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", text(&o));
    assert!(out.contains("Quorate:          No"), "{out}");
    assert!(out.contains("Nodes:            1"), "{out}");
    let o = hactl(&bus1.address, false, &["status"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("* Online:  [ node1 ]"), "{out}");
    assert!(out.contains("* Offline: [ node2 ]"), "{out}");
    assert!(out.contains("Quorum:   NOT quorate"), "{out}");
}

#[test]
fn anyone_may_read_status_and_quorum_through_the_shipped_policy() {
    if !is_root() {
        eprintln!("skipped: needs root to switch users");
        return;
    }
    let c = cluster(15424);
    let bus = start_bus(true);
    let _one = hactld(&c, "node1", &bus.address);
    // Until node1 has a ring, it lists no member (and so no name).
    hactl_until(&bus, &["quorum"], |o| o.contains("Nodes:            1"));
    for args in [
        &["quorum"][..],
        &["quorum", "--json"],
        &["status"],
        &["status", "--json"],
    ] {
        let o = hactl(&bus.address, true, args);
        assert!(o.status.success(), "hactl {args:?} as nobody: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("node1"),
            "hactl {args:?} as nobody: {}",
            text(&o)
        );
    }
    // Alone of two (no two_node): not quorate, and it says why.
    let o = hactl(&bus.address, true, &["quorum"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("Quorate:          No ("), "{out}");
}

#[test]
fn hactl_without_a_daemon_or_without_a_bus_exits_3_and_says_to_start_hactld() {
    let bus = start_bus(true);
    for args in [&["quorum"][..], &["status"], &["status", "--json"]] {
        let o = hactl(&bus.address, false, args);
        assert_eq!(o.status.code(), Some(3), "{}", text(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stderr).trim(),
            "hactl: hactld is not running on this node (no owner of org.hactl.Cluster1 on the system bus); start it with systemctl start hactld",
            "{}",
            text(&o)
        );
        assert!(o.stdout.is_empty(), "{}", text(&o));
    }
    // No bus at all: the same exit status, and the bus named.
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("unix:path={}", dir.path().join("no-bus").display());
    let o = hactl(&missing, false, &["quorum"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&missing) && err.contains("hactld is not running on this node"),
        "{err}"
    );
}

#[test]
fn hactld_without_a_system_bus_warns_once_and_runs_on() {
    if !is_root() {
        eprintln!("skipped: the key must be root-owned; run as root");
        return;
    }
    let c = cluster(15426);
    let missing = format!("unix:path={}", c.dir.path().join("no-bus").display());
    // NOTIFY_SOCKET shows it reached READY=1 without the bus.
    let sock_path = c.dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let state = c.dir.path().join("state");
    let d = Daemon(Some(
        Command::new(env!("CARGO_BIN_EXE_hactld"))
            .args(["--config", c.config.to_str().unwrap(), "--node", "node1"])
            .args(["--state-dir", state.to_str().unwrap()])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &missing)
            .env("NOTIFY_SOCKET", &sock_path)
            .env_remove("JOURNAL_STREAM")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 4096];
    let mut ready = false;
    while !ready && Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            ready = String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "READY=1");
        }
    }
    assert!(ready, "hactld without a bus never reported READY=1");
    let out = d.stop();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr
            .matches("D-Bus API: cannot serve org.hactl.Cluster1")
            .count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains(&missing),
        "the warning names the bus: {stderr}"
    );
}

/// A stand-in for a mutating method, guarded by hactld's own caller check.
struct Guarded;

#[zbus::interface(name = "org.hactl.Cluster1")]
impl Guarded {
    async fn standby(
        &self,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(header)] header: zbus::message::Header<'_>,
        node: &str,
    ) -> zbus::fdo::Result<String> {
        hactl::api::check_admin(conn, &header).await?;
        Ok(format!("standby {node}"))
    }
}

#[test]
fn the_caller_check_refuses_nobody_even_where_the_bus_lets_the_call_through() {
    if !is_root() {
        eprintln!("skipped: needs root to switch users");
        return;
    }
    let haclient = nix::unistd::Group::from_name("haclient")
        .unwrap()
        .expect("group haclient is missing: run scripts/setup.sh")
        .gid
        .as_raw();
    // No project policy on this bus: anyone's call reaches the service.
    let bus = start_bus(false);
    let address = bus.address.clone();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        rt().block_on(async move {
            let _conn = zbus::connection::Builder::address(address.as_str())
                .name(hactl::api::BUS_NAME)
                .serve_at(hactl::api::OBJECT_PATH, Guarded)
                .build()
                .await
                .unwrap();
            tx.send(()).unwrap();
            // Serve until the bus goes away at the end of the test.
            _conn.closed().await;
        })
    });
    rx.recv_timeout(WAIT).expect("the stand-in service started");
    // dbus-send prints the error's message (busctl only its errno text).
    let call = |who: Option<&[u32]>| {
        let mut cmd = match who {
            None => Command::new("dbus-send"),
            Some(groups) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={NOBODY}"))
                    .arg(format!("--regid={NOBODY}"));
                if groups.is_empty() {
                    c.arg("--clear-groups");
                } else {
                    c.arg(format!("--groups={}", groups[0]));
                }
                c.arg("dbus-send");
                c
            }
        };
        let o = cmd
            .arg(format!("--bus={}", bus.address))
            .arg("--print-reply")
            .arg(format!("--dest={}", hactl::api::BUS_NAME))
            .arg(hactl::api::OBJECT_PATH)
            .arg(format!("{}.Standby", hactl::api::INTERFACE))
            .arg("string:node1")
            .output()
            .unwrap();
        (o.status.success(), text(&o))
    };
    let (ok, out) = call(Some(&[]));
    assert!(
        !ok && out.contains("only root and members of the group haclient"),
        "nobody must be refused by hactld itself: {out}"
    );
    let (ok, out) = call(Some(&[haclient]));
    assert!(
        ok && out.contains("standby node1"),
        "haclient member: {out}"
    );
    let (ok, out) = call(None);
    assert!(ok && out.contains("standby node1"), "root: {out}");
    drop(bus);
    let _ = server.join();
}

/// `StreamExt::next` without a new dependency.
mod futures_lite_next {
    use std::future::poll_fn;
    use std::pin::Pin;

    pub async fn next<S: zbus::export::futures_core::Stream + Unpin>(s: &mut S) -> Option<S::Item> {
        poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
    }
}

#[test]
fn hactl_status_watch_redraws_when_a_node_leaves() {
    if !is_root() {
        eprintln!("skipped: the key must be root-owned; run as root");
        return;
    }
    use std::io::BufRead;
    let c = cluster(15428);
    let (bus1, bus2) = (start_bus(true), start_bus(true));
    let _one = hactld(&c, "node1", &bus1.address);
    let two = hactld(&c, "node2", &bus2.address);
    hactl_until(&bus1, &["status"], |o| o.contains("[ node1 node2 ]"));
    let mut watch = Daemon(Some(
        Command::new(env!("CARGO_BIN_EXE_hactl"))
            .args(["status", "--watch"])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus1.address)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let stdout = watch.0.as_mut().unwrap().stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |what: &str| {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                if line.contains(what) {
                    return;
                }
                seen.push(line);
            }
        }
        panic!(
            "hactl status --watch never showed {what:?}; it showed:\n{}",
            seen.join("\n")
        );
    };
    wait_for("* Online:  [ node1 node2 ]");
    kill(two.pid(), Signal::SIGKILL).unwrap();
    wait_for("* Offline: [ node2 ]");
}

/// Benchmark (run explicitly): how long `Status()` and `Quorum()` take
/// through a real dbus-daemon to a running hactld, and how long the `hactl
/// quorum` process takes end to end. Prints figures; asserts nothing about
/// time. `cargo test --release --test api -- --ignored --nocapture bench`
#[test]
#[ignore]
fn bench_status_and_quorum_call_latency() {
    if !is_root() {
        eprintln!("skipped: run as root");
        return;
    }
    const CALLS: usize = 2000;
    let c = cluster(15429);
    let bus = start_bus(true);
    let _one = hactld(&c, "node1", &bus.address);
    hactl_until(&bus, &["quorum"], |o| o.contains("Node ID:          1"));
    let rt = rt();
    rt.block_on(async {
        let conn = zbus::connection::Builder::address(bus.address.as_str())
            .build()
            .await
            .unwrap();
        let proxy = hactl::api::Cluster1ClientProxy::new(&conn).await.unwrap();
        for method in ["Status", "Quorum"] {
            let mut us = Vec::with_capacity(CALLS);
            for _ in 0..CALLS {
                let t = Instant::now();
                let json = if method == "Status" {
                    proxy.status().await.unwrap()
                } else {
                    proxy.quorum().await.unwrap()
                };
                us.push(t.elapsed().as_micros() as u64);
                assert!(json.contains("node1"));
            }
            us.sort_unstable();
            eprintln!(
                "{method}(): {CALLS} calls, p50 {} us, p99 {} us, max {} us",
                us[CALLS / 2],
                us[CALLS * 99 / 100],
                us[CALLS - 1]
            );
        }
    });
    let mut ms = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let o = hactl(&bus.address, false, &["quorum"]);
        assert!(o.status.success());
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    eprintln!(
        "hactl quorum (process, end to end): 50 runs, p50 {:.1} ms, max {:.1} ms",
        ms[25], ms[49]
    );
}

#[test]
fn hactld_outlives_its_bus_and_serves_again_when_a_new_one_comes_up() {
    if !is_root() {
        eprintln!("skipped: the key must be root-owned; run as root");
        return;
    }
    let c = cluster(15427);
    let bus_dir = tempfile::tempdir().unwrap();
    let bus = start_bus_in(bus_dir.path(), true);
    let address = bus.address.clone();
    let one = hactld(&c, "node1", &address);
    hactl_until(&bus, &["quorum"], |o| o.contains("Node ID:          1"));
    // The bus dies (dbus restarted, say); the daemon must not care.
    drop(bus);
    let o = hactl(&address, false, &["quorum"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    // node2 joins meanwhile: the main loop goes on without the API.
    let _two = hactld(&c, "node2", &start_bus(true).address);
    std::thread::sleep(Duration::from_secs(1));
    // A new bus at the same address: hactld serves again within its
    // reconnect interval (10 s), with the state it reached meanwhile.
    let bus = start_bus_in(bus_dir.path(), true);
    let out = hactl_until(&bus, &["status"], |o| o.contains("[ node1 node2 ]"));
    assert!(out.contains("Quorum:   quorate"), "{out}");
    let out = one.stop();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("D-Bus API: lost the connection to the system bus")
            && stderr.contains("(the bus is back)"),
        "{stderr}"
    );
}
