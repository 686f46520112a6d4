//! The `ocf:` and `lsb:` agents against real scripts: Debian's
//! resource-agents (Dummy; IPaddr2 inside a network namespace this test
//! creates) and scripts the tests write into a private OCF root, one per
//! behaviour to prove (every OCF code, exit reasons, a hang that leaves a
//! grandchild, megabytes of garbage, a missing or unexecutable agent, an
//! agent that leaves a daemon holding its output open), plus an init script.
//!
//! Needs root and the package resource-agents (scripts/setup.sh installs it).

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hactl::agents::ocf::{self, LsbAgent, OcfAgent};
use hactl::agents::{AgentAction, OcfCode, OpOutcome, OpRequest, ResourceAgent};

use common::{alive, gone_within};

const SYSTEM_OCF_ROOT: &str = "/usr/lib/ocf";
const TIMEOUT: Duration = Duration::from_secs(20);

fn require_resource_agents() {
    let dummy = Path::new(SYSTEM_OCF_ROOT).join("resource.d/heartbeat/Dummy");
    assert!(
        dummy.exists(),
        "{} is missing: install the package resource-agents (scripts/setup.sh does)",
        dummy.display()
    );
}

fn req(resource: &str, action: AgentAction, params: &[(&str, &str)]) -> OpRequest {
    OpRequest {
        resource: resource.to_string(),
        action,
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        timeout: TIMEOUT,
        interval: Duration::ZERO,
        check_level: 0,
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn run(agent: &dyn ResourceAgent, r: OpRequest) -> OpOutcome {
    rt().block_on(agent.execute(r))
}

/// A private OCF root with provider `hactltest`.
struct TestRoot {
    dir: tempfile::TempDir,
}

impl TestRoot {
    fn new() -> TestRoot {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("resource.d/hactltest")).unwrap();
        TestRoot { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn script(&self, name: &str, body: &str) -> OcfAgent {
        let path = self.root().join("resource.d/hactltest").join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        OcfAgent::with_root(self.root(), "hactltest", name)
    }
}

fn read_pid(path: &Path) -> u32 {
    for _ in 0..100 {
        if let Ok(s) = std::fs::read_to_string(path)
            && let Ok(p) = s.trim().parse()
        {
            return p;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} was never written", path.display());
}

// ------------------------------------------------------------ resource-agents

#[test]
fn dummy_start_monitor_stop_monitor_keeps_its_state_in_a_file() {
    require_resource_agents();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("dummy.state");
    let state_s = state.to_str().unwrap();
    let dummy = OcfAgent::with_root(SYSTEM_OCF_ROOT, "heartbeat", "Dummy");
    assert_eq!(dummy.name(), "ocf:heartbeat:Dummy");
    let p = [("state", state_s)];

    let probe = run(&dummy, req("d1", AgentAction::Monitor, &p));
    assert_eq!(probe.code, OcfCode::NotRunning, "{probe:?}");
    let start = run(&dummy, req("d1", AgentAction::Start, &p));
    assert_eq!(start.code, OcfCode::Success, "{start:?}");
    assert!(state.exists(), "Dummy start did not create {state_s}");
    let mon = run(&dummy, req("d1", AgentAction::Monitor, &p));
    assert_eq!(mon.code, OcfCode::Success, "{mon:?}");
    let stop = run(&dummy, req("d1", AgentAction::Stop, &p));
    assert_eq!(stop.code, OcfCode::Success, "{stop:?}");
    assert!(!state.exists());
    let mon = run(&dummy, req("d1", AgentAction::Monitor, &p));
    assert_eq!(mon.code, OcfCode::NotRunning, "{mon:?}");
    let again = run(&dummy, req("d1", AgentAction::Stop, &p));
    assert_eq!(
        again.code,
        OcfCode::Success,
        "stop of a stopped Dummy: {again:?}"
    );
}

#[test]
fn dummy_meta_data_parses_into_parameters_and_actions() {
    require_resource_agents();
    let dummy = OcfAgent::with_root(SYSTEM_OCF_ROOT, "heartbeat", "Dummy");
    let out = run(&dummy, req("d", AgentAction::MetaData, &[]));
    assert_eq!(out.code, OcfCode::Success, "{out:?}");
    let info = ocf::parse_metadata(&dummy.name(), &out.output).unwrap();
    assert!(!info.shortdesc.is_empty());
    let state = info
        .params
        .iter()
        .find(|p| p.name == "state")
        .expect("Dummy has a state parameter");
    assert!(!state.shortdesc.is_empty());
    assert!(state.default.is_some());
    let start = info
        .actions
        .iter()
        .find(|(n, _)| n == "start")
        .expect("Dummy lists start");
    assert!(start.1.is_some(), "start has a default timeout");
    assert!(info.actions.iter().any(|(n, _)| n.starts_with("monitor")));
}

#[test]
fn dummy_validate_all_accepts_its_defaults() {
    require_resource_agents();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("s");
    let dummy = OcfAgent::with_root(SYSTEM_OCF_ROOT, "heartbeat", "Dummy");
    let out = run(
        &dummy,
        req(
            "d",
            AgentAction::ValidateAll,
            &[("state", state.to_str().unwrap())],
        ),
    );
    assert_eq!(out.code, OcfCode::Success, "{out:?}");
}

/// A network namespace with a veth pair, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("hactl-ocf-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let ok = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().unwrap();
            assert!(
                out.status.success(),
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ok(&["netns", "add", &name]);
        let ns = Netns { name };
        let n = ns.name.as_str();
        ok(&[
            "-n", n, "link", "add", "va", "type", "veth", "peer", "name", "vb",
        ]);
        ok(&["-n", n, "link", "set", "va", "up"]);
        ok(&["-n", n, "link", "set", "vb", "up"]);
        ok(&["-n", n, "link", "set", "lo", "up"]);
        ok(&["-n", n, "addr", "add", "192.168.77.1/24", "dev", "va"]);
        ns
    }

    fn addresses(&self) -> String {
        let out = Command::new("ip")
            .args(["-n", &self.name, "-4", "addr", "show", "dev", "va"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // send_arp, started by IPaddr2, may still run in the namespace.
        let _ = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .map(|o| {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    if let Ok(p) = pid.parse::<i32>() {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(p),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
            });
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn ipaddr2_start_monitor_stop_inside_a_network_namespace() {
    require_resource_agents();
    let ns = Netns::new("ip2");
    // The agent runs through `ip netns exec`: a wrapper script in a private
    // OCF root whose lib/ is the system's, so IPaddr2 finds its shell
    // functions (only the test needs the namespace).
    let root = TestRoot::new();
    std::os::unix::fs::symlink(
        Path::new(SYSTEM_OCF_ROOT).join("lib"),
        root.root().join("lib"),
    )
    .unwrap();
    let agent = root.script(
        "IPaddr2",
        &format!(
            "exec ip netns exec {} {SYSTEM_OCF_ROOT}/resource.d/heartbeat/IPaddr2 \"$@\"",
            ns.name
        ),
    );
    let p = [
        ("ip", "192.168.77.10"),
        ("cidr_netmask", "24"),
        ("nic", "va"),
    ];
    let v = run(&agent, req("vip", AgentAction::ValidateAll, &p));
    assert_eq!(v.code, OcfCode::Success, "{v:?}");
    let probe = run(&agent, req("vip", AgentAction::Monitor, &p));
    assert_eq!(probe.code, OcfCode::NotRunning, "{probe:?}");
    let t = Instant::now();
    let start = run(&agent, req("vip", AgentAction::Start, &p));
    assert_eq!(start.code, OcfCode::Success, "{start:?}");
    // IPaddr2 leaves send_arp running in the background: the start must
    // still return at once, not when send_arp is done.
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(
        ns.addresses().contains("192.168.77.10/24"),
        "{}",
        ns.addresses()
    );
    let mon = run(&agent, req("vip", AgentAction::Monitor, &p));
    assert_eq!(mon.code, OcfCode::Success, "{mon:?}");
    let stop = run(&agent, req("vip", AgentAction::Stop, &p));
    assert_eq!(stop.code, OcfCode::Success, "{stop:?}");
    assert!(
        !ns.addresses().contains("192.168.77.10"),
        "{}",
        ns.addresses()
    );
    let mon = run(&agent, req("vip", AgentAction::Monitor, &p));
    assert_eq!(mon.code, OcfCode::NotRunning, "{mon:?}");
}

#[test]
fn ipaddr2_validate_all_rejects_a_bad_address_with_a_reason() {
    require_resource_agents();
    let agent = OcfAgent::with_root(SYSTEM_OCF_ROOT, "heartbeat", "IPaddr2");
    let out = run(
        &agent,
        req("vip", AgentAction::ValidateAll, &[("ip", "not-an-address")]),
    );
    assert_ne!(out.code, OcfCode::Success, "{out:?}");
    assert!(!out.exit_reason.is_empty(), "{out:?}");
}

// ------------------------------------------------------------ own scripts

#[test]
fn every_ocf_code_is_passed_through_with_the_exit_reason() {
    let root = TestRoot::new();
    let agent = root.script(
        "codes",
        "[ -n \"$OCF_RESKEY_reason\" ] && echo \"${OCF_EXIT_REASON_PREFIX}$OCF_RESKEY_reason\" >&2\n\
         exit $OCF_RESKEY_code",
    );
    for code in OcfCode::ALL {
        let c = code.code().to_string();
        let out = run(
            &agent,
            req(
                "r",
                AgentAction::Monitor,
                &[("code", &c), ("reason", "disk on fire")],
            ),
        );
        assert_eq!(out.code, code);
        if code == OcfCode::Success {
            assert_eq!(out.exit_reason, "");
        } else {
            assert_eq!(out.exit_reason, "disk on fire", "{code}");
        }
    }
    // Without an exit reason, a failure still says what happened.
    let out = run(&agent, req("r", AgentAction::Start, &[("code", "6")]));
    assert_eq!(out.code, OcfCode::ErrConfigured);
    assert!(
        out.exit_reason
            .contains("ocf:hactltest:codes start returned not configured (6)"),
        "{out:?}"
    );
}

#[test]
fn the_agent_gets_the_ocf_environment() {
    let root = TestRoot::new();
    let dump = root.root().join("env.txt");
    let agent = root.script(
        "env",
        &format!("env | grep -E '^OCF_' | sort > {}\nexit 0", dump.display()),
    );
    let mut r = req(
        "web-ip",
        AgentAction::Monitor,
        &[("ip", "10.0.0.5"), ("nic", "eth0")],
    );
    r.timeout = Duration::from_millis(15_000);
    r.interval = Duration::from_millis(10_000);
    r.check_level = 10;
    // A stale variable in our own environment must not reach the agent.
    // SAFETY: no other thread of this test reads OCF_RESKEY_stale.
    unsafe { std::env::set_var("OCF_RESKEY_stale", "1") };
    let out = run(&agent, r);
    assert_eq!(out.code, OcfCode::Success, "{out:?}");
    let env = std::fs::read_to_string(&dump).unwrap();
    let root_s = root.root().display().to_string();
    for want in [
        format!("OCF_ROOT={root_s}"),
        format!("OCF_FUNCTIONS_DIR={root_s}/lib/heartbeat"),
        "OCF_RA_VERSION_MAJOR=1".to_string(),
        "OCF_RA_VERSION_MINOR=1".to_string(),
        "OCF_RESOURCE_INSTANCE=web-ip".to_string(),
        "OCF_RESOURCE_TYPE=env".to_string(),
        "OCF_RESOURCE_PROVIDER=hactltest".to_string(),
        "OCF_EXIT_REASON_PREFIX=ocf-exit-reason:".to_string(),
        "OCF_RESKEY_ip=10.0.0.5".to_string(),
        "OCF_RESKEY_nic=eth0".to_string(),
        "OCF_RESKEY_CRM_meta_timeout=15000".to_string(),
        "OCF_RESKEY_CRM_meta_interval=10000".to_string(),
        "OCF_CHECK_LEVEL=10".to_string(),
    ] {
        assert!(env.lines().any(|l| l == want), "missing {want} in:\n{env}");
    }
    assert!(!env.contains("OCF_RESKEY_stale"), "{env}");
}

#[test]
fn a_hang_past_the_timeout_kills_the_whole_process_group() {
    let root = TestRoot::new();
    let gc = root.root().join("grandchild.pid");
    let stubborn = root.root().join("stubborn.pid");
    // A grandchild that sleeps, and one that ignores SIGTERM (only SIGKILL
    // ends it), then the agent itself hangs.
    let agent = root.script(
        "hang",
        &format!(
            "sleep 1000 &\necho $! > {}\n(trap '' TERM; echo $$ > /dev/null; exec sh -c 'trap \"\" TERM; echo $$ > {}; while :; do sleep 1; done') &\nsleep 1000",
            gc.display(),
            stubborn.display()
        ),
    );
    let mut r = req("h", AgentAction::Start, &[]);
    r.timeout = Duration::from_millis(500);
    let t = Instant::now();
    let out = run(&agent, r);
    let took = t.elapsed();
    assert_eq!(out.code, OcfCode::ErrGeneric);
    assert!(
        out.exit_reason.contains("timed out after 500 ms"),
        "{out:?}"
    );
    // 500 ms, then SIGTERM and at most the grace period before SIGKILL.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let (gc_pid, stubborn_pid) = (read_pid(&gc), read_pid(&stubborn));
    assert!(
        gone_within(gc_pid, Duration::from_secs(1)),
        "grandchild {gc_pid} survived the timeout"
    );
    assert!(
        gone_within(stubborn_pid, Duration::from_secs(1)),
        "grandchild {stubborn_pid} (ignoring SIGTERM) survived the timeout"
    );
}

#[test]
fn megabytes_of_garbage_and_an_unknown_exit_code_are_a_generic_error() {
    let root = TestRoot::new();
    let agent = root.script(
        "garbage",
        "head -c 8000000 /dev/urandom\nhead -c 8000000 /dev/urandom >&2\necho >&2\necho 'ocf-exit-reason:after the noise' >&2\nexit 42",
    );
    let t = Instant::now();
    let out = run(&agent, req("g", AgentAction::Monitor, &[]));
    assert_eq!(out.code, OcfCode::ErrGeneric);
    assert!(
        out.exit_reason
            .contains("exited with code 42, which is not an OCF code"),
        "{out:?}"
    );
    // The tail of stderr is kept, so the exit reason printed last survives.
    assert!(out.exit_reason.contains("after the noise"), "{out:?}");
    assert!(t.elapsed() < Duration::from_secs(10));

    // meta-data output is bounded too.
    let big = root.script("big", "head -c 8000000 /dev/zero | tr '\\0' x\nexit 0");
    let out = run(&big, req("g", AgentAction::MetaData, &[]));
    assert_eq!(out.code, OcfCode::Success);
    assert_eq!(out.output.len(), hactl::process::STDOUT_BYTES_MAX);
}

#[test]
fn an_agent_killed_by_a_signal_is_a_generic_error() {
    let root = TestRoot::new();
    let agent = root.script("seg", "kill -SEGV $$");
    let out = run(&agent, req("s", AgentAction::Stop, &[]));
    assert_eq!(out.code, OcfCode::ErrGeneric);
    assert!(out.exit_reason.contains("killed by signal 11"), "{out:?}");
}

#[test]
fn a_missing_agent_is_not_installed_and_names_the_path() {
    let root = TestRoot::new();
    let agent = OcfAgent::with_root(root.root(), "hactltest", "Nowhere");
    let path = root.root().join("resource.d/hactltest/Nowhere");
    for action in [AgentAction::Start, AgentAction::Monitor, AgentAction::Stop] {
        let out = run(&agent, req("m", action, &[]));
        assert_eq!(out.code, OcfCode::ErrInstalled, "{action}");
        assert!(
            out.exit_reason.contains(&path.display().to_string()),
            "{out:?}"
        );
    }
    // A script that is there but cannot be run.
    let p = root.root().join("resource.d/hactltest/noexec");
    std::fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
    let agent = OcfAgent::with_root(root.root(), "hactltest", "noexec");
    let out = run(&agent, req("m", AgentAction::Start, &[]));
    assert_eq!(out.code, OcfCode::ErrPerm, "{out:?}");
    assert!(out.exit_reason.contains("not executable"), "{out:?}");
}

#[test]
fn a_daemon_holding_the_output_open_does_not_hold_the_operation() {
    let root = TestRoot::new();
    let pidfile = root.root().join("daemon.pid");
    // The "daemon" keeps stdout and stderr (inherited) open for 1000 s.
    let agent = root.script(
        "daemon",
        &format!("sleep 1000 &\necho $! > {}\nexit 0", pidfile.display()),
    );
    let t = Instant::now();
    let out = run(&agent, req("d", AgentAction::Start, &[]));
    assert_eq!(out.code, OcfCode::Success, "{out:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // What a start leaves running is not killed.
    let pid = read_pid(&pidfile);
    assert!(alive(pid));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

// ------------------------------------------------------------ LSB

fn lsb_dir() -> (tempfile::TempDir, LsbAgent, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("svc.running");
    let over = dir.path().join("svc.status-code");
    let body = format!(
        "#!/bin/sh\n### BEGIN INIT INFO\n# Provides: svc\n# Short-Description: test service\n### END INIT INFO\n\
         case \"$1\" in\n\
         start) touch {s}; exit 0;;\n\
         stop) rm -f {s}; exit 0;;\n\
         status) [ -f {o} ] && exit $(cat {o}); [ -f {s} ] && exit 0; exit 3;;\n\
         *) echo \"usage: $0 start|stop|status\"; exit 3;;\n\
         esac\n",
        s = state.display(),
        o = over.display()
    );
    let path = dir.path().join("svc");
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let agent = LsbAgent::with_dir(dir.path(), "svc");
    (dir, agent, over)
}

#[test]
fn lsb_script_start_status_stop_with_lsb_codes_mapped() {
    let (_dir, agent, over) = lsb_dir();
    assert_eq!(agent.name(), "lsb:svc");
    let m = |a: AgentAction| run(&agent, req("svc", a, &[]));
    assert_eq!(m(AgentAction::Monitor).code, OcfCode::NotRunning);
    assert_eq!(m(AgentAction::Start).code, OcfCode::Success);
    assert_eq!(m(AgentAction::Monitor).code, OcfCode::Success);
    // Dead with a pid file (1) or a lock file (2): not running.
    for c in ["1", "2"] {
        std::fs::write(&over, c).unwrap();
        assert_eq!(
            m(AgentAction::Monitor).code,
            OcfCode::NotRunning,
            "status {c}"
        );
    }
    std::fs::write(&over, "4").unwrap();
    let unknown = m(AgentAction::Monitor);
    assert_eq!(unknown.code, OcfCode::ErrGeneric);
    assert!(unknown.exit_reason.contains("unknown"), "{unknown:?}");
    std::fs::remove_file(&over).unwrap();
    assert_eq!(m(AgentAction::Stop).code, OcfCode::Success);
    assert_eq!(m(AgentAction::Monitor).code, OcfCode::NotRunning);
    assert_eq!(m(AgentAction::Promote).code, OcfCode::ErrUnimplemented);
    let missing = LsbAgent::with_dir(_dir.path(), "absent");
    let out = run(&missing, req("x", AgentAction::Start, &[]));
    assert_eq!(out.code, OcfCode::ErrInstalled);
    assert!(out.exit_reason.contains("absent"), "{out:?}");
}

// ------------------------------------------------------------ the runner

#[test]
fn the_runner_feeds_stdin_and_closes_it_as_fence_agents_need() {
    // Fence agents read key=value lines on stdin until its end.
    let input = b"action=status\nport=node2\n".to_vec();
    let mut spec = hactl::process::Spec::new("/bin/sh", Duration::from_secs(10))
        .arg("-c")
        .arg("cat; echo done >&2; exit 3")
        .env("HACTL_TEST", "1");
    spec.stdin = Some(input.clone());
    let f = rt().block_on(hactl::process::run(spec)).unwrap();
    assert_eq!(f.ending, hactl::process::Ending::Exited(3));
    assert_eq!(f.stdout, input);
    assert_eq!(f.stderr, b"done\n");
    assert_eq!(f.discarded_bytes, 0);
    let missing = hactl::process::Spec::new("/nonexistent/fence_x", Duration::from_secs(1));
    let e = rt().block_on(hactl::process::run(missing)).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/fence_x"), "{e}");
}

#[test]
fn stdin_is_in_the_pipe_before_the_program_starts_so_an_early_exit_costs_nothing() {
    // The program exits without reading: the input was written before it
    // started, so there is no writer left to block or to get SIGPIPE.
    let input = vec![b'x'; hactl::process::STDIN_BYTES_MAX];
    let mut spec = hactl::process::Spec::new("/bin/sh", Duration::from_secs(10))
        .arg("-c")
        .arg("exit 0");
    spec.stdin = Some(input);
    let f = rt().block_on(hactl::process::run(spec)).unwrap();
    assert_eq!(f.ending, hactl::process::Ending::Exited(0));
    // And all of it arrives when the program does read.
    let mut spec = hactl::process::Spec::new("/bin/sh", Duration::from_secs(10))
        .arg("-c")
        .arg("wc -c");
    spec.stdin = Some(vec![b'y'; hactl::process::STDIN_BYTES_MAX]);
    let f = rt().block_on(hactl::process::run(spec)).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&f.stdout).trim(),
        hactl::process::STDIN_BYTES_MAX.to_string()
    );
    // More than the bound is refused before anything runs, saying why.
    let mut spec = hactl::process::Spec::new("/bin/cat", Duration::from_secs(10));
    spec.stdin = Some(vec![b'z'; hactl::process::STDIN_BYTES_MAX + 1]);
    let e = rt().block_on(hactl::process::run(spec)).unwrap_err();
    assert!(e.to_string().contains("at most"), "{e}");
}
