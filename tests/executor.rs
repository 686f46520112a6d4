//! The executor driving real agents: Debian's ocf:heartbeat:Dummy and
//! scripts written into a private OCF root (an operation log proves the
//! ordering), plus tiny in-test agents for what a script cannot show (an
//! agent that never answers; an agent that sends a notice).
//!
//! Needs the package resource-agents (scripts/setup.sh installs it).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hactl::agents::ocf::OcfAgent;
use hactl::agents::{
    AgentAction, AgentFuture, Notice, NoticeSender, OcfCode, OpRequest, ResourceAgent, WatchFuture,
};
use hactl::executor::{
    self, ExecutorConfig, ExecutorHandle, FAIL_COUNT_INFINITY, MonitorRole, MonitorSpec, OpEvent,
    Origin, ResourceSpec,
};
use tokio::sync::mpsc::UnboundedReceiver;

const T: Duration = Duration::from_secs(20);
/// How long a test waits for an event that must come.
const WAIT: Duration = Duration::from_secs(15);

fn req(r: &str, action: AgentAction, params: &BTreeMap<String, String>) -> OpRequest {
    OpRequest {
        resource: r.to_string(),
        action,
        params: params.clone(),
        timeout: T,
        interval: Duration::ZERO,
        check_level: 0,
    }
}

async fn next(events: &mut UnboundedReceiver<OpEvent>) -> OpEvent {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("no event within the wait")
        .expect("the executor stopped")
}

/// Waits for the event of `resource`'s `action` (skipping others).
async fn next_of(
    events: &mut UnboundedReceiver<OpEvent>,
    resource: &str,
    action: AgentAction,
) -> OpEvent {
    loop {
        let e = next(events).await;
        if e.resource == resource && e.action == action {
            return e;
        }
    }
}

struct Scripts {
    dir: tempfile::TempDir,
}

impl Scripts {
    fn new() -> Scripts {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("resource.d/hactltest")).unwrap();
        Scripts { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn agent(&self, name: &str, body: &str) -> Box<OcfAgent> {
        let p = self.dir.path().join("resource.d/hactltest").join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        Box::new(OcfAgent::with_root(self.dir.path(), "hactltest", name))
    }

    /// An agent that logs "begin RES ACTION" and "end RES ACTION" with
    /// nanosecond times around a sleep of `sleep_s` seconds.
    fn logging_agent(&self, name: &str, sleep_s: &str) -> Box<OcfAgent> {
        let log = self.path("ops.log");
        self.agent(
            name,
            &format!(
                "echo \"$(date +%s%N) begin $OCF_RESOURCE_INSTANCE $1\" >> {log}\nsleep {sleep_s}\necho \"$(date +%s%N) end $OCF_RESOURCE_INSTANCE $1\" >> {log}\nexit 0",
                log = log.display()
            ),
        )
    }

    fn log(&self) -> Vec<(u128, String, String, String)> {
        std::fs::read_to_string(self.path("ops.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (
                    f[0].parse().unwrap(),
                    f[1].to_string(),
                    f[2].to_string(),
                    f[3].to_string(),
                )
            })
            .collect()
    }
}

fn spawn_exec(cfg: ExecutorConfig) -> (ExecutorHandle, UnboundedReceiver<OpEvent>) {
    executor::spawn(cfg)
}

#[tokio::test]
async fn operations_on_one_resource_run_one_at_a_time_in_order() {
    let s = Scripts::new();
    let (h, mut ev) = spawn_exec(ExecutorConfig::new("n1"));
    h.register("a", s.logging_agent("slow", "0.2"), ResourceSpec::default());
    let p = BTreeMap::new();
    let order = [
        AgentAction::Start,
        AgentAction::Monitor,
        AgentAction::ValidateAll,
        AgentAction::Stop,
    ];
    for a in order {
        h.execute(req("a", a, &p));
    }
    let mut seen = vec![];
    for _ in order {
        let e = next(&mut ev).await;
        assert_eq!(e.code, OcfCode::Success, "{e:?}");
        seen.push(e.action);
    }
    assert_eq!(seen, order, "events come in the order of the requests");
    let log = s.log();
    assert_eq!(log.len(), 8, "{log:?}");
    for (i, pair) in log.chunks(2).enumerate() {
        assert_eq!(pair[0].1, "begin");
        assert_eq!(
            pair[1].1, "end",
            "operation {i} overlapped another: {log:?}"
        );
        assert_eq!(pair[0].3, order[i].as_str());
        assert_eq!(pair[1].3, order[i].as_str());
    }
}

#[tokio::test]
async fn different_resources_run_in_parallel() {
    let s = Scripts::new();
    let (h, mut ev) = spawn_exec(ExecutorConfig::new("n1"));
    for r in ["a", "b", "c"] {
        h.register(r, s.logging_agent("slow", "1"), ResourceSpec::default());
    }
    let p = BTreeMap::new();
    for r in ["a", "b", "c"] {
        h.execute(req(r, AgentAction::Start, &p));
    }
    for _ in 0..3 {
        assert_eq!(next(&mut ev).await.code, OcfCode::Success);
    }
    let log = s.log();
    // Every begin comes before the first end: all three ran at once.
    let first_end = log.iter().position(|l| l.1 == "end").unwrap();
    assert_eq!(first_end, 3, "{log:?}");
}

#[tokio::test]
async fn a_recurring_monitor_finds_a_failure_and_a_stop_cancels_it() {
    let dummy = Path::new("/usr/lib/ocf/resource.d/heartbeat/Dummy");
    assert!(
        dummy.exists(),
        "{} is missing: install resource-agents (scripts/setup.sh)",
        dummy.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("dummy.state");
    let params: BTreeMap<String, String> =
        [("state".to_string(), state.display().to_string())].into();
    let spec = ResourceSpec {
        params: params.clone(),
        monitors: vec![MonitorSpec {
            interval: Duration::from_millis(300),
            timeout: T,
            role: MonitorRole::Any,
            check_level: 0,
        }],
    };
    let (h, mut ev) = spawn_exec(ExecutorConfig::new("n1"));
    h.register(
        "d",
        Box::new(OcfAgent::with_root("/usr/lib/ocf", "heartbeat", "Dummy")),
        spec,
    );
    h.execute(req("d", AgentAction::Start, &params));
    let e = next(&mut ev).await;
    assert_eq!((e.action, e.code), (AgentAction::Start, OcfCode::Success));
    let e = next(&mut ev).await;
    assert_eq!(
        (e.action, e.interval, e.code, e.origin),
        (
            AgentAction::Monitor,
            Duration::from_millis(300),
            OcfCode::Success,
            Origin::Recurring
        )
    );
    // The resource dies behind the cluster's back.
    std::fs::remove_file(&state).unwrap();
    let e = next(&mut ev).await;
    assert_eq!(e.code, OcfCode::NotRunning, "{e:?}");
    assert!(e.failed);
    assert_eq!(e.origin, Origin::Recurring);
    assert_eq!(e.fail_count, 1);
    let fc = h.fail_counts().await;
    assert_eq!(fc.len(), 1);
    assert_eq!(
        (fc[0].key.action, fc[0].key.interval_ms, fc[0].count),
        (AgentAction::Monitor, 300, 1)
    );
    // Unchanged results are not reported again: nothing for a while.
    assert!(
        tokio::time::timeout(Duration::from_millis(1000), ev.recv())
            .await
            .is_err(),
        "an unchanged failure was reported twice"
    );
    // Recovery: stop, start; the monitor resumes and reports the change.
    h.execute(req("d", AgentAction::Stop, &params));
    assert_eq!(next(&mut ev).await.action, AgentAction::Stop);
    h.execute(req("d", AgentAction::Start, &params));
    assert_eq!(next(&mut ev).await.code, OcfCode::Success);
    let e = next(&mut ev).await;
    assert_eq!((e.action, e.code), (AgentAction::Monitor, OcfCode::Success));
    h.execute(req("d", AgentAction::Stop, &params));
    let e = next(&mut ev).await;
    assert_eq!((e.action, e.code), (AgentAction::Stop, OcfCode::Success));
    // After the stop no monitor runs (it would report "not running").
    assert!(
        tokio::time::timeout(Duration::from_millis(1000), ev.recv())
            .await
            .is_err(),
        "a monitor ran after the stop"
    );
}

#[tokio::test]
async fn an_agent_timeout_fails_the_operation_and_the_queue_moves_on() {
    let s = Scripts::new();
    let (h, mut ev) = spawn_exec(ExecutorConfig::new("n1"));
    h.register(
        "a",
        s.agent("sleepy", "[ \"$1\" = start ] && sleep 100\nexit 0"),
        ResourceSpec::default(),
    );
    let p = BTreeMap::new();
    let mut r = req("a", AgentAction::Start, &p);
    r.timeout = Duration::from_millis(300);
    h.execute(r);
    h.execute(req("a", AgentAction::Monitor, &p));
    let e = next_of(&mut ev, "a", AgentAction::Start).await;
    assert_eq!(e.code, OcfCode::ErrGeneric);
    assert!(e.exit_reason.contains("timed out after 300 ms"), "{e:?}");
    assert!(e.failed);
    assert_eq!(e.fail_count, FAIL_COUNT_INFINITY);
    let e = next_of(&mut ev, "a", AgentAction::Monitor).await;
    assert_eq!(e.code, OcfCode::Success);
}

/// An agent that never answers (ignores its timeout): only the executor's
/// backstop ends its operations.
struct Stuck;

impl ResourceAgent for Stuck {
    fn name(&self) -> String {
        "test:stuck".into()
    }
    fn execute(&self, _req: OpRequest) -> AgentFuture<'_> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn the_backstop_ends_an_operation_the_agent_never_ends() {
    let mut cfg = ExecutorConfig::new("n1");
    cfg.backstop_grace = Duration::from_millis(200);
    cfg.start_failure_is_fatal = false;
    let (h, mut ev) = spawn_exec(cfg);
    h.register("s", Box::new(Stuck), ResourceSpec::default());
    let mut r = req("s", AgentAction::Start, &BTreeMap::new());
    r.timeout = Duration::from_millis(300);
    h.execute(r);
    let e = next(&mut ev).await;
    assert_eq!(e.code, OcfCode::ErrGeneric);
    assert!(
        e.exit_reason.contains("did not finish within 500 ms"),
        "{e:?}"
    );
    assert!(e.duration >= Duration::from_millis(500), "{e:?}");
    assert_eq!(e.fail_count, 1, "start-failure-is-fatal off: +1");
}

#[tokio::test]
async fn fail_counts_are_kept_per_node_resource_and_operation_and_cleanup_clears_them() {
    let s = Scripts::new();
    let (h, mut ev) = spawn_exec(ExecutorConfig::new("node-7"));
    h.register(
        "bad",
        s.agent("bad", "echo 'ocf-exit-reason:no disk' >&2\nexit 1"),
        ResourceSpec::default(),
    );
    h.register("bad2", s.agent("bad2", "exit 1"), ResourceSpec::default());
    let p = BTreeMap::new();
    h.execute(req("bad", AgentAction::Start, &p));
    h.execute(req("bad2", AgentAction::Stop, &p));
    let mut got = [next(&mut ev).await, next(&mut ev).await];
    got.sort_by(|a, b| a.resource.cmp(&b.resource));
    assert_eq!(got[0].exit_reason, "no disk");
    let fc = h.fail_counts().await;
    let keys: Vec<(String, String, AgentAction, u32)> = fc
        .iter()
        .map(|f| {
            (
                f.key.node.clone(),
                f.key.resource.clone(),
                f.key.action,
                f.count,
            )
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            (
                "node-7".into(),
                "bad".into(),
                AgentAction::Start,
                FAIL_COUNT_INFINITY
            ),
            (
                "node-7".into(),
                "bad2".into(),
                AgentAction::Stop,
                FAIL_COUNT_INFINITY
            ),
        ]
    );
    h.cleanup(Some("bad"));
    let fc = h.fail_counts().await;
    assert_eq!(fc.len(), 1);
    assert_eq!(fc[0].key.resource, "bad2");
    h.cleanup(None);
    assert!(h.fail_counts().await.is_empty());
}

/// An agent whose watch hands its notice sender to the test.
struct Watched {
    sender: Arc<Mutex<Option<NoticeSender>>>,
}

impl ResourceAgent for Watched {
    fn name(&self) -> String {
        "test:watched".into()
    }
    fn execute(&self, _req: OpRequest) -> AgentFuture<'_> {
        Box::pin(async { hactl::agents::OpOutcome::ok() })
    }
    fn watch(&self, _resource: &str, notices: NoticeSender) -> WatchFuture<'_> {
        *self.sender.lock().unwrap() = Some(notices);
        Box::pin(async { Ok(true) })
    }
}

#[tokio::test]
async fn a_notice_becomes_a_failed_monitor_event_at_once() {
    let sender = Arc::new(Mutex::new(None));
    let (h, mut ev) = spawn_exec(ExecutorConfig::new("n1"));
    h.register(
        "w",
        Box::new(Watched {
            sender: sender.clone(),
        }),
        ResourceSpec {
            params: BTreeMap::new(),
            monitors: vec![MonitorSpec {
                interval: Duration::from_secs(3600),
                timeout: T,
                role: MonitorRole::Any,
                check_level: 0,
            }],
        },
    );
    h.execute(req("w", AgentAction::Start, &BTreeMap::new()));
    assert_eq!(next(&mut ev).await.action, AgentAction::Start);
    // The first recurring monitor runs right after the start.
    let e = next(&mut ev).await;
    assert_eq!(
        (e.action, e.origin),
        (AgentAction::Monitor, Origin::Recurring)
    );
    let tx = sender.lock().unwrap().clone().expect("watch was called");
    let sent = std::time::Instant::now();
    tx.send(Notice {
        resource: "w".into(),
        code: OcfCode::NotRunning,
        exit_reason: "w.service entered state failed".into(),
    })
    .unwrap();
    let e = next(&mut ev).await;
    // Long before the hourly monitor would have noticed.
    assert!(sent.elapsed() < Duration::from_secs(5));
    assert_eq!(e.origin, Origin::Notice);
    assert_eq!(e.action, AgentAction::Monitor);
    assert_eq!(e.interval, Duration::from_secs(3600));
    assert_eq!(e.code, OcfCode::NotRunning);
    assert!(e.failed);
    assert_eq!(e.exit_reason, "w.service entered state failed");
    assert_eq!(e.fail_count, 1);
}

#[tokio::test]
async fn an_unregistered_resource_is_refused_with_an_event() {
    let (h, mut ev) = spawn_exec(ExecutorConfig::new("n1"));
    h.execute(req("nobody", AgentAction::Start, &BTreeMap::new()));
    let e = next(&mut ev).await;
    assert_eq!(e.origin, Origin::Refused);
    assert!(
        e.exit_reason.contains("\"nobody\" is not registered"),
        "{e:?}"
    );
}

/// An agent with a bug: its operations panic.
struct Panics;

impl ResourceAgent for Panics {
    fn name(&self) -> String {
        "test:panics".into()
    }
    fn execute(&self, _req: OpRequest) -> AgentFuture<'_> {
        Box::pin(async { panic!("agent bug") })
    }
}

#[tokio::test]
async fn an_agent_that_panics_fails_its_operation_and_the_queue_moves_on() {
    let (h, mut ev) = spawn_exec(ExecutorConfig::new("n1"));
    h.register("p", Box::new(Panics), ResourceSpec::default());
    h.execute(req("p", AgentAction::Start, &BTreeMap::new()));
    h.execute(req("p", AgentAction::Stop, &BTreeMap::new()));
    for action in [AgentAction::Start, AgentAction::Stop] {
        let e = next(&mut ev).await;
        assert_eq!((e.action, e.code), (action, OcfCode::ErrGeneric));
        assert!(e.exit_reason.contains("failed internally"), "{e:?}");
    }
}

/// Benchmark (run explicitly): what the executor adds to an operation, and
/// how fast a notice becomes an event. Prints figures; asserts nothing
/// about time.
///
/// cargo test --release --test executor -- --ignored --nocapture bench_
#[tokio::test]
#[ignore]
async fn bench_executor_overhead_and_notice_latency() {
    const N: usize = 200;
    let s = Scripts::new();
    let direct = s.agent("true", "exit 0");
    let p = BTreeMap::new();
    let mut t_direct = vec![];
    for _ in 0..N {
        let t = std::time::Instant::now();
        let o = direct.execute(req("b", AgentAction::Monitor, &p)).await;
        assert_eq!(o.code, OcfCode::Success);
        t_direct.push(t.elapsed());
    }
    let (h, mut ev) = spawn_exec(ExecutorConfig::new("n1"));
    h.register("b", s.agent("true", "exit 0"), ResourceSpec::default());
    let mut t_exec = vec![];
    for _ in 0..N {
        let t = std::time::Instant::now();
        h.execute(req("b", AgentAction::Monitor, &p));
        let e = next(&mut ev).await;
        assert_eq!(e.code, OcfCode::Success);
        t_exec.push(t.elapsed());
    }
    let sender = Arc::new(Mutex::new(None));
    h.register(
        "w",
        Box::new(Watched {
            sender: sender.clone(),
        }),
        ResourceSpec::default(),
    );
    h.execute(req("w", AgentAction::Start, &p));
    next(&mut ev).await;
    let tx = sender.lock().unwrap().clone().unwrap();
    let mut t_notice = vec![];
    for _ in 0..N {
        let t = std::time::Instant::now();
        tx.send(Notice {
            resource: "w".into(),
            code: OcfCode::NotRunning,
            exit_reason: String::new(),
        })
        .unwrap();
        next(&mut ev).await;
        t_notice.push(t.elapsed());
    }
    let stats = |name: &str, v: &mut Vec<Duration>| {
        v.sort();
        let mean = v.iter().sum::<Duration>() / v.len() as u32;
        println!(
            "{name:<34} n={} mean={:>8.3} ms p50={:>8.3} ms p99={:>8.3} ms",
            v.len(),
            mean.as_secs_f64() * 1e3,
            v[v.len() / 2].as_secs_f64() * 1e3,
            v[v.len() * 99 / 100].as_secs_f64() * 1e3
        );
    };
    stats("script run directly (exit 0)", &mut t_direct);
    stats("same script through the executor", &mut t_exec);
    stats("notice -> event", &mut t_notice);
}
