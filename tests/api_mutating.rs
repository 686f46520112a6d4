//! The mutating half of the D-Bus API, at the API layer: the real API task
//! (`ApiHandle::start_with_requests_at`) serves on a private dbus-daemon
//! configured like a system bus (the shipped policy included unchanged, or
//! left out to reach hactld's own caller check), and a small stand-in for
//! the daemon's main loop in this process receives the `Request`s, records
//! them, answers, and publishes snapshots with a `ControllerSummary`.
//! This proves the API and `hactl`'s verbs against a real bus, not the
//! daemon end to end (that needs the controller).
//!
//! Callers: zbus as root; `dbus-send` and the real `hactl` switched to
//! uid 65534 with setpriv (as tests/dbus_policy.rs does).

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hactl::api::{ApiHandle, Cluster1ClientProxy, ClusterStatus, Request};
use hactl::config::Role;
use hactl::controller::summary::{ControllerSummary, ResourceSummary};
use hactl::quorum::{Quorum, QuorumStatus};
use hactl::state::{Command as StateCommand, MigrateTarget, WallMs};

const NOBODY: u32 = 65534;
const WAIT: Duration = Duration::from_secs(30);

const CONFIG: &str = r#"
[cluster]
name = "apimut"
[[node]]
name = "node1"
id = 1
addresses = ["10.0.0.1"]
[[node]]
name = "node2"
id = 2
addresses = ["10.0.0.2"]
[[node]]
name = "node3"
id = 3
addresses = ["10.0.0.3"]
"#;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

use common::{Bus, start_bus};

fn rsc(id: &str, group: Option<&str>, on: &[&str], target: Option<&str>) -> ResourceSummary {
    ResourceSummary {
        id: id.to_string(),
        agent: "ipaddr".to_string(),
        group: group.map(str::to_string),
        clone: None,
        running_on: on.iter().map(|s| s.to_string()).collect(),
        promoted_on: vec![],
        target: target.map(str::to_string),
    }
}

fn summary(idle: bool, transition: u64, web_on: &[&str], web_to: &str) -> ControllerSummary {
    ControllerSummary {
        dc: Some("node1".to_string()),
        idle,
        transition,
        standby: vec![],
        resources: vec![
            rsc("web-ip", Some("web"), web_on, Some(web_to)),
            rsc("web-server", Some("web"), web_on, Some(web_to)),
            rsc("db", None, &["node3"], Some("node3")),
        ],
        ..Default::default()
    }
}

fn base_status() -> (ClusterStatus, QuorumStatus) {
    let config = hactl::config::parse_str(CONFIG, Path::new("apimut.toml"))
        .expect("valid")
        .config;
    let q = Quorum::new(&config, 1).unwrap().status();
    let mut s = ClusterStatus::build(&config, 1, None, &[], &HashMap::new(), &q);
    s.controller = Some(summary(true, 5, &["node2"], "node2"));
    (s, q)
}

/// What the stand-in main loop saw.
#[derive(Debug, PartialEq)]
enum Seen {
    Submit(StateCommand),
    Apply { text: String, file: String },
    Fence(u32),
}

/// The API task and the stand-in main loop, on their own thread and
/// runtime, until the bus goes away.
struct Server {
    seen: std_mpsc::Receiver<Seen>,
}

impl Server {
    /// The next request the main loop got, within a few seconds.
    fn next(&self) -> Seen {
        self.seen
            .recv_timeout(Duration::from_secs(10))
            .expect("the main loop got no request")
    }

    fn none(&self) {
        if let Ok(s) = self.seen.recv_timeout(Duration::from_millis(200)) {
            panic!("the main loop got a request it should not have: {s:?}");
        }
    }
}

/// The stand-in's answers:
/// - `Unmigrate db`: refused (no quorum);
/// - `Cleanup` on node3: never answered (the API's timeout);
/// - `SetStandby node2 on`: OK, then the cluster moves web to node1
///   (a busy snapshot, 300 ms later a settled one with a new transition);
/// - `SetStandby node3 on`: OK, then the cluster is busy forever;
/// - `SetTargetRole web Stopped`: OK, then web stops (busy, 300 ms later
///   settled with web stopped); `SetTargetRole web Started`: OK, then web
///   starts on node2 the same way;
/// - `ApplyConfig`: refused if the text contains "bad", else a summary;
/// - `Fence` node3: answered after 6 s (longer than a request's 5 s, as
///   fence devices take), from a task, the main loop going on meanwhile;
///   `Fence` of another node: refused at once;
/// - anything else: OK, nothing changes.
async fn main_loop(
    api: ApiHandle,
    mut rx: tokio::sync::mpsc::Receiver<Request>,
    seen: std_mpsc::Sender<Seen>,
) {
    let (mut status, quorum) = base_status();
    api.publish(status.clone(), quorum.clone());
    api.publish_config("[cluster]\nname = \"apimut\"\n".to_string());
    let mut held = Vec::new();
    while let Some(req) = rx.recv().await {
        match req {
            Request::Submit { command, reply } => {
                let _ = seen.send(Seen::Submit(command.clone()));
                match command {
                    StateCommand::Unmigrate { resource } if resource == "db" => {
                        let _ =
                            reply
                                .send(Err("no quorum: this partition cannot change the cluster"
                                    .to_string()));
                    }
                    StateCommand::Cleanup { node: Some(3), .. } => held.push(reply),
                    StateCommand::SetStandby {
                        node: 2,
                        standby: true,
                    } => {
                        let _ = reply.send(Ok(()));
                        status.controller = Some(summary(false, 6, &["node2"], "node1"));
                        api.publish(status.clone(), quorum.clone());
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        let mut settled = summary(true, 6, &["node1"], "node1");
                        settled.standby = vec!["node2".to_string()];
                        status.controller = Some(settled);
                        api.publish(status.clone(), quorum.clone());
                    }
                    StateCommand::SetTargetRole { resource, role } if resource == "web" => {
                        let _ = reply.send(Ok(()));
                        let stop = role == Some(hactl::config::Role::Stopped);
                        let prev = status.controller.as_ref().unwrap();
                        let (was_on, transition) =
                            (prev.resources[0].running_on.clone(), prev.transition + 1);
                        let was_on: Vec<&str> = was_on.iter().map(String::as_str).collect();
                        let web = |idle, on: &[&str]| {
                            let mut s = summary(idle, transition, on, "node2");
                            for r in s.resources.iter_mut().filter(|r| r.group.is_some()) {
                                if stop {
                                    r.target = None;
                                }
                            }
                            s
                        };
                        status.controller = Some(web(false, &was_on));
                        api.publish(status.clone(), quorum.clone());
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        status.controller = Some(web(true, if stop { &[] } else { &["node2"] }));
                        api.publish(status.clone(), quorum.clone());
                    }
                    StateCommand::SetStandby {
                        node: 3,
                        standby: true,
                    } => {
                        let _ = reply.send(Ok(()));
                        status.controller = Some(summary(false, 7, &["node1"], "node3"));
                        api.publish(status.clone(), quorum.clone());
                    }
                    _ => {
                        let _ = reply.send(Ok(()));
                    }
                }
            }
            Request::ApplyConfig { text, file, reply } => {
                let answer = if text.contains("bad") {
                    Err(format!("{file}:1: unknown key bad\n{file}: 1 error(s)"))
                } else {
                    Ok("configuration epoch 2 applied: 3 resources".to_string())
                };
                let _ = seen.send(Seen::Apply { text, file });
                let _ = reply.send(answer);
            }
            Request::Fence { node, reply } => {
                let _ = seen.send(Seen::Fence(node));
                if node == 3 {
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(6)).await;
                        let _ =
                            reply.send(Ok("node node3 fenced (reboot) with pdu in 6.0 s".into()));
                    });
                } else {
                    let _ = reply.send(Err(format!("node node{node} has no fence_levels")));
                }
            }
        }
    }
}

fn start_server(bus: &Bus) -> Server {
    let address = bus.address.clone();
    let (seen_tx, seen) = std_mpsc::channel();
    std::thread::spawn(move || {
        rt().block_on(async move {
            let (api, rx) = ApiHandle::start_with_requests_at(&address);
            main_loop(api, rx, seen_tx).await;
        })
    });
    Server { seen }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A root client, once the API serves.
async fn client(bus: &Bus) -> Cluster1ClientProxy<'static> {
    let conn = zbus::connection::Builder::address(bus.address.as_str())
        .method_timeout(Duration::from_secs(20))
        .build()
        .await
        .unwrap();
    let proxy = Cluster1ClientProxy::builder(&conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while let Err(e) = proxy.status().await {
        assert!(Instant::now() < deadline, "the API never served: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy
}

fn fdo(e: zbus::Error) -> zbus::fdo::Error {
    match e {
        zbus::Error::FDO(f) => *f,
        other => panic!("not a D-Bus error reply: {other:?}"),
    }
}

fn invalid_args(r: zbus::Result<()>) -> String {
    match fdo(r.expect_err("an unknown name must be refused")) {
        zbus::fdo::Error::InvalidArgs(m) => m,
        other => panic!("InvalidArgs expected, got {other:?}"),
    }
}

fn failed<T: std::fmt::Debug>(r: zbus::Result<T>) -> String {
    match fdo(r.expect_err("must fail")) {
        zbus::fdo::Error::Failed(m) => m,
        other => panic!("Failed expected, got {other:?}"),
    }
}

fn wall_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn every_method_hands_the_main_loop_its_request_and_returns_its_answer() {
    if !is_root() {
        panic!("needs root (the shipped policy lets only root own org.hactl.Cluster1)");
    }
    let bus = start_bus(true);
    let server = start_server(&bus);
    rt().block_on(async {
        let p = client(&bus).await;
        let submit = |c: StateCommand| Seen::Submit(c);

        p.standby("node2").await.unwrap();
        assert_eq!(
            server.next(),
            submit(StateCommand::SetStandby {
                node: 2,
                standby: true
            })
        );
        // "" is this node (node1).
        p.online("").await.unwrap();
        assert_eq!(
            server.next(),
            submit(StateCommand::SetStandby {
                node: 1,
                standby: false
            })
        );

        let t0 = wall_now();
        p.migrate("web", "node1", 600).await.unwrap();
        let t1 = wall_now();
        match server.next() {
            Seen::Submit(StateCommand::Migrate {
                resource,
                target,
                expires: Some(WallMs(at)),
            }) => {
                assert_eq!(resource, "web");
                assert_eq!(target, MigrateTarget::To(1));
                assert!(
                    (t0 + 600_000..=t1 + 600_000).contains(&at),
                    "expires {at} not 600 s after the call ({t0}..{t1})"
                );
            }
            other => panic!("{other:?}"),
        }
        // No node: away from where it runs now (the stand-in moved web to
        // node1 after the standby of node2). A member moves with its group:
        // the preference is the group's.
        p.migrate("web-ip", "", 0).await.unwrap();
        assert_eq!(
            server.next(),
            submit(StateCommand::Migrate {
                resource: "web".to_string(),
                target: MigrateTarget::AwayFrom(1),
                expires: None
            })
        );
        p.unmigrate("web").await.unwrap();
        assert_eq!(
            server.next(),
            submit(StateCommand::Unmigrate {
                resource: "web".to_string()
            })
        );
        p.cleanup("", "").await.unwrap();
        assert_eq!(
            server.next(),
            submit(StateCommand::Cleanup {
                resource: None,
                node: None
            })
        );
        p.cleanup("web-server", "node2").await.unwrap();
        assert_eq!(
            server.next(),
            submit(StateCommand::Cleanup {
                resource: Some("web-server".to_string()),
                node: Some(2)
            })
        );

        p.resource_stop("web-ip").await.unwrap();
        assert_eq!(
            server.next(),
            submit(StateCommand::SetTargetRole {
                resource: "web-ip".to_string(),
                role: Some(Role::Stopped)
            })
        );
        p.resource_start("db").await.unwrap();
        assert_eq!(
            server.next(),
            submit(StateCommand::SetTargetRole {
                resource: "db".to_string(),
                role: Some(Role::Started)
            })
        );

        // The main loop's refusal reaches the caller as its message.
        let m = failed(p.unmigrate("db").await);
        assert!(m.contains("no quorum"), "{m}");
        server.next();

        let summary = p
            .config_apply("[cluster]\nname = \"apimut\"\n", "/etc/hactl/new.toml")
            .await
            .unwrap();
        assert_eq!(summary, "configuration epoch 2 applied: 3 resources");
        assert_eq!(
            server.next(),
            Seen::Apply {
                text: "[cluster]\nname = \"apimut\"\n".to_string(),
                file: "/etc/hactl/new.toml".to_string()
            }
        );
        let m = failed(p.config_apply("bad = 1\n", "new.toml").await);
        assert!(m.contains("new.toml:1: unknown key bad"), "{m}");
        server.next();

        assert_eq!(
            p.config_show().await.unwrap(),
            "[cluster]\nname = \"apimut\"\n"
        );

        // A main loop that never answers: the caller hears so after 5 s.
        let started = Instant::now();
        let m = failed(p.cleanup("db", "node3").await);
        assert!(m.contains("hactld did not answer in 5 s"), "{m}");
        assert!(started.elapsed() >= Duration::from_secs(5));
        server.next();
    });
}

#[test]
fn unknown_nodes_and_resources_are_invalid_args_listing_the_known_ones() {
    if !is_root() {
        panic!("needs root (the shipped policy lets only root own org.hactl.Cluster1)");
    }
    let bus = start_bus(true);
    let server = start_server(&bus);
    rt().block_on(async {
        let p = client(&bus).await;
        let nodes = "the nodes are: node1, node2, node3";
        let resources = "the resources are: web, web-ip, web-server, db";
        for (what, r, list) in [
            ("standby", p.standby("node9").await, nodes),
            ("online", p.online("node9").await, nodes),
            (
                "migrate resource",
                p.migrate("nosuch", "", 0).await,
                resources,
            ),
            ("migrate node", p.migrate("web", "node9", 0).await, nodes),
            ("unmigrate", p.unmigrate("nosuch").await, resources),
            ("cleanup resource", p.cleanup("nosuch", "").await, resources),
            ("cleanup node", p.cleanup("", "node9").await, nodes),
            ("resource stop", p.resource_stop("nosuch").await, resources),
            (
                "resource start",
                p.resource_start("nosuch").await,
                resources,
            ),
        ] {
            let m = invalid_args(r);
            assert!(m.contains(list), "{what}: {m}");
        }
        let m = invalid_args(p.fence("node9").await.map(drop));
        assert!(m.contains(nodes), "fence: {m}");
        // Fence has no "this node" default: the name is required.
        let m = invalid_args(p.fence("").await.map(drop));
        assert!(m.contains("name the node to fence"), "fence \"\": {m}");
        server.none();
    });
}

#[test]
fn an_api_without_a_main_loop_reading_requests_says_so() {
    let bus = start_bus(false);
    let address = bus.address.clone();
    std::thread::spawn(move || {
        rt().block_on(async move {
            let (api, rx) = ApiHandle::start_with_requests_at(&address);
            drop(rx);
            let (s, q) = base_status();
            api.publish(s, q);
            // ConfigShow before publish_config: a clear error.
            std::future::pending::<()>().await;
        })
    });
    rt().block_on(async {
        let p = client(&bus).await;
        let m = failed(p.standby("node2").await);
        assert!(m.contains("does not take changes"), "{m}");
        let m = failed(p.config_show().await);
        assert!(
            m.contains("has not published its running configuration"),
            "{m}"
        );
    });
}

/// Calls `method` with `args` through dbus-send, as nobody (groups
/// `groups`) or root.
fn dbus_send(bus: &Bus, who: Option<&[u32]>, method: &str, args: &[&str]) -> (bool, String) {
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
        .arg(format!("{}.{method}", hactl::api::INTERFACE))
        .args(args)
        .output()
        .unwrap();
    (o.status.success(), text(&o))
}

const MUTATING: [(&str, &[&str]); 9] = [
    ("Standby", &["string:node2"]),
    ("Online", &["string:node2"]),
    ("Migrate", &["string:web", "string:node1", "uint64:0"]),
    ("Unmigrate", &["string:web"]),
    ("Cleanup", &["string:", "string:"]),
    ("ResourceStop", &["string:web"]),
    ("ResourceStart", &["string:web"]),
    ("ConfigApply", &["string:x", "string:f.toml"]),
    ("Fence", &["string:node3"]),
];

#[test]
fn nobody_gets_access_denied_on_every_mutating_method_and_may_still_read() {
    if !is_root() {
        panic!("needs root to switch users");
    }
    for with_policy in [true, false] {
        let bus = start_bus(with_policy);
        let server = start_server(&bus);
        rt().block_on(client(&bus));
        for (method, args) in MUTATING {
            let (ok, out) = dbus_send(&bus, Some(&[]), method, args);
            assert!(
                !ok && out.contains("org.freedesktop.DBus.Error.AccessDenied"),
                "{method} by nobody (policy {with_policy}): {out}"
            );
            if !with_policy {
                // The bus let it through: hactld's own check refused it.
                assert!(
                    out.contains("only root and members of the group haclient"),
                    "{out}"
                );
            }
        }
        server.none();
        for method in ["Status", "Quorum", "ConfigShow"] {
            let (ok, out) = dbus_send(&bus, Some(&[]), method, &[]);
            assert!(ok, "{method} by nobody (policy {with_policy}): {out}");
        }
        // A member of haclient gets through both lines.
        let haclient = nix::unistd::Group::from_name("haclient")
            .unwrap()
            .expect("group haclient is missing: run scripts/setup.sh")
            .gid
            .as_raw();
        let (ok, out) = dbus_send(&bus, Some(&[haclient]), "Online", &["string:node2"]);
        assert!(ok, "haclient member (policy {with_policy}): {out}");
        assert_eq!(
            server.next(),
            Seen::Submit(StateCommand::SetStandby {
                node: 2,
                standby: false
            })
        );
    }
}

fn hactl(bus: &Bus, as_nobody: bool, args: &[&str]) -> Output {
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
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
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

#[test]
fn hactl_verbs_wait_until_the_cluster_settled_and_exit_4_when_it_does_not() {
    if !is_root() {
        panic!("needs root (the shipped policy lets only root own org.hactl.Cluster1)");
    }
    let bus = start_bus(true);
    let server = start_server(&bus);
    rt().block_on(client(&bus));

    // Settles: web moves from node2 to node1 after a busy spell.
    let o = hactl(&bus, false, &["standby", "node2"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("node2 is in standby"), "{out}");
    assert!(out.contains("web-ip: Started node1"), "{out}");
    assert!(out.contains("web-server: Started node1"), "{out}");
    assert!(!out.contains("db:"), "db did not move: {out}");
    server.next();

    // hactl status now shows the controller's part.
    let o = hactl(&bus, true, &["status"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("DC:       node1 (settled)"), "{out}");
    assert!(out.contains("* Node node2: standby"), "{out}");
    assert!(out.contains("* web-ip (ipaddr): Started node1"), "{out}");

    // Never settles: exit 4 naming what still moves.
    let started = Instant::now();
    let o = hactl(&bus, false, &["standby", "node3", "--timeout", "1"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(4), "{out}");
    assert!(
        out.contains("did not settle within 1 s: web-ip moving node1 → node3"),
        "{out}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "{out}");
    server.next();

    // --no-wait returns at once.
    let o = hactl(
        &bus,
        false,
        &["migrate", "web", "node1", "--lifetime", "10m", "--no-wait"],
    );
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("web migrates to node1, for 10m"), "{out}");
    assert!(matches!(
        server.next(),
        Seen::Submit(StateCommand::Migrate {
            expires: Some(_),
            ..
        })
    ));

    // Refusals: exit 1 with hactld's message.
    let o = hactl(&bus, false, &["migrate", "nosuch", "--no-wait"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("the resources are: web, web-ip, web-server, db"),
        "{out}"
    );
    let o = hactl(&bus, true, &["cleanup", "--no-wait"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("permission denied"), "{out}");
    server.none();

    // config apply and config show --running.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("new.toml");
    std::fs::write(&file, "bad = 1\n").unwrap();
    let o = hactl(&bus, false, &["config", "apply", file.to_str().unwrap()]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("new.toml:1: unknown key bad"), "{out}");
    server.next();
    std::fs::write(&file, CONFIG).unwrap();
    let o = hactl(
        &bus,
        false,
        &["config", "apply", file.to_str().unwrap(), "--no-wait"],
    );
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("configuration epoch 2 applied"), "{out}");
    assert_eq!(
        server.next(),
        Seen::Apply {
            text: CONFIG.to_string(),
            file: file.display().to_string()
        }
    );
    // Waiting (the default) for an epoch the stand-in never takes up:
    // exit 4 after --timeout, saying what it waited for.
    let o = hactl(
        &bus,
        false,
        &["config", "apply", file.to_str().unwrap(), "--timeout", "1"],
    );
    let out = text(&o);
    assert_eq!(o.status.code(), Some(4), "{out}");
    assert!(
        out.contains("did not settle within 1 s: configuration epoch 1 not in force yet on node1"),
        "{out}"
    );
    server.next();
    let o = hactl(&bus, true, &["config", "show", "--running"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "[cluster]\nname = \"apimut\"\n"
    );
}

#[test]
fn hactl_resource_stop_start_restart_wait_and_restart_starts_only_after_the_stop() {
    if !is_root() {
        panic!("needs root (the shipped policy lets only root own org.hactl.Cluster1)");
    }
    let bus = start_bus(true);
    let server = start_server(&bus);
    rt().block_on(client(&bus));
    let role = |resource: &str, role| {
        Seen::Submit(StateCommand::SetTargetRole {
            resource: resource.to_string(),
            role: Some(role),
        })
    };

    let o = hactl(&bus, false, &["resource", "stop", "web"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("web: stopping (target role Stopped)"), "{out}");
    assert!(
        out.contains("web-ip: Stopped\nweb-server: Stopped\n"),
        "{out}"
    );
    assert_eq!(server.next(), role("web", Role::Stopped));

    let o = hactl(&bus, false, &["resource", "start", "web"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("web-ip: Started node2"), "{out}");
    assert_eq!(server.next(), role("web", Role::Started));

    // restart: the stop, settled with web stopped, then the start.
    let o = hactl(&bus, false, &["resource", "restart", "web"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let stopped = out.find("web-ip: Stopped").expect(&out);
    let starting = out.find("web: starting").expect(&out);
    let started = out.find("web-ip: Started node2").expect(&out);
    assert!(stopped < starting && starting < started, "{out}");
    assert_eq!(server.next(), role("web", Role::Stopped));
    assert_eq!(server.next(), role("web", Role::Started));

    // db does not stop (the stand-in changes nothing): not started again.
    let o = hactl(&bus, false, &["resource", "restart", "db", "--no-wait"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("db did not stop (still active on node3), so it was not started again"),
        "{out}"
    );
    assert_eq!(server.next(), role("db", Role::Stopped));
    server.none();

    // --no-wait and refusals as the other verbs.
    let o = hactl(&bus, false, &["resource", "stop", "db", "--no-wait"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(server.next(), role("db", Role::Stopped));
    let o = hactl(&bus, false, &["resource", "start", "nosuch"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("the resources are: web, web-ip, web-server, db"),
        "{out}"
    );
    let o = hactl(&bus, true, &["resource", "restart", "web"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("permission denied"), "{out}");
    server.none();
}

/// `Fence` answers when the fencing is over, which takes the devices'
/// time: longer than the 5 s other requests wait for the main loop. Other
/// calls are answered meanwhile. `hactl fence` prints the outcome, or
/// exits 4 when its --timeout runs out first.
#[test]
fn fence_waits_for_the_outcome_beyond_the_request_timeout() {
    if !is_root() {
        panic!("needs root (the shipped policy lets only root own org.hactl.Cluster1)");
    }
    let bus = start_bus(true);
    let server = start_server(&bus);
    rt().block_on(async {
        let p = client(&bus).await;
        let m = failed(p.fence("node2").await);
        assert!(m.contains("node node2 has no fence_levels"), "{m}");
        assert_eq!(server.next(), Seen::Fence(2));
        let started = Instant::now();
        let (fenced, status) = tokio::join!(p.fence("node3"), async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            (p.status().await, started.elapsed())
        });
        assert_eq!(
            fenced.unwrap(),
            "node node3 fenced (reboot) with pdu in 6.0 s"
        );
        assert!(started.elapsed() >= Duration::from_secs(6));
        assert!(status.0.is_ok(), "{:?}", status.0);
        assert!(
            status.1 < Duration::from_secs(3),
            "Status waited for the fencing: {:?}",
            status.1
        );
        assert_eq!(server.next(), Seen::Fence(3));
    });
    // hactl fence: the outcome, or exit 4 when --timeout runs out first.
    let o = hactl(&bus, false, &["fence", "node3", "--timeout", "2"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(4), "{out}");
    assert!(
        out.contains("no outcome of fencing node3 within 2 s; it may still be going on"),
        "{out}"
    );
    assert_eq!(server.next(), Seen::Fence(3));
    let o = hactl(&bus, false, &["fence", "node3"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("node node3 fenced (reboot) with pdu in 6.0 s"),
        "{out}"
    );
    assert_eq!(server.next(), Seen::Fence(3));
    let o = hactl(&bus, false, &["fence", "node2"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("hactl: fence node2: node node2 has no fence_levels"),
        "{out}"
    );
}

#[test]
fn hactl_verbs_without_a_daemon_exit_3() {
    let bus = start_bus(true);
    for args in [
        &["standby"][..],
        &["migrate", "web"],
        &["cleanup"],
        &["resource", "restart", "web"],
        &["config", "show", "--running"],
        &["fence", "node2"],
    ] {
        let o = hactl(&bus, false, args);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {out}");
        assert!(out.contains("hactld is not running on this node"), "{out}");
    }
}

#[test]
fn a_full_request_queue_fails_at_once_with_busy() {
    let bus = start_bus(false);
    let address = bus.address.clone();
    std::thread::spawn(move || {
        rt().block_on(async move {
            // A main loop that takes no request: the queue fills up.
            let (api, _rx) = ApiHandle::start_with_requests_at(&address);
            let (s, q) = base_status();
            api.publish(s, q);
            std::future::pending::<()>().await;
        })
    });
    rt().block_on(async {
        let p = client(&bus).await;
        let calls: Vec<_> = (0..=hactl::api::REQUEST_QUEUE)
            .map(|_| {
                let p = p.clone();
                tokio::spawn(async move {
                    let started = Instant::now();
                    (failed(p.standby("node2").await), started.elapsed())
                })
            })
            .collect();
        let mut busy = 0;
        for c in calls {
            let (m, took) = c.await.unwrap();
            if m == "hactld is busy, try again" {
                busy += 1;
                assert!(took < Duration::from_secs(4), "busy took {took:?}");
            } else {
                assert!(m.contains("hactld did not answer in 5 s"), "{m}");
            }
        }
        assert_eq!(busy, 1, "one call more than the queue holds");
    });
}
