//! The `systemd:UNIT` agent against a real systemd: each test boots a
//! Debian bookworm container (systemd-nspawn, the rootfs of
//! vm-tests/nspawn/rootfs.sh, built on first use) with its own overlay and
//! test units in /etc/systemd/system, and talks to the container's systemd
//! over the container's system bus from the host
//! (unix:path=/proc/PID/root/run/dbus/system_bus_socket). Outside changes
//! are made the way an administrator makes them, inside the container
//! (`nsenter ... kill -9`, `systemctl stop`), and checked through what the
//! agent reports; the unit's state is cross-checked with `systemctl` inside.
//!
//! Needs root, systemd-nspawn and overlayfs (scripts/setup.sh installs the
//! packages). Everything a test creates is named `hsd-<pid>-<tag>` and is
//! removed when the test ends, failed or not.
//!
//! The benchmark (ignored by default) prints the delay from `kill -9` of a
//! unit's main process to the failure reaching the agent's caller:
//!     cargo test --release --test agent_systemd -- --ignored --nocapture

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hactl::agents::systemd::SystemdAgent;
use hactl::agents::{AgentAction, Notice, OcfCode, OpOutcome, OpRequest, ResourceAgent};

const BOOT_TIMEOUT_S: u64 = 120;
const OP_TIMEOUT_S: u64 = 30;
/// How long a test waits for a notice that must come.
const NOTICE_TIMEOUT_S: u64 = 15;
/// How long a test listens for a notice that must not come.
const QUIET_MS: u64 = 1500;

/// The units every test container has (name, file text).
const UNITS: &[(&str, &str)] = &[
    (
        "hsd-sleep.service",
        "[Service]\nExecStart=/bin/sleep infinity\n",
    ),
    ("hsd-false.service", "[Service]\nExecStart=/bin/false\n"),
    (
        "hsd-kill.service",
        "[Service]\nExecStart=/bin/sleep infinity\n",
    ),
    (
        "hsd-ext.service",
        "[Service]\nExecStart=/bin/sleep infinity\n",
    ),
    (
        "hsd-restart.service",
        "[Service]\nExecStart=/bin/sleep infinity\nRestart=always\nRestartSec=2\n",
    ),
    (
        "hsd-bench.service",
        "[Service]\nExecStart=/bin/sleep infinity\n",
    ),
    (
        "hsd-limit.service",
        "[Unit]\nStartLimitBurst=2\nStartLimitIntervalSec=600\n[Service]\nExecStart=/bin/sleep infinity\n",
    ),
    (
        "hsd-cond.service",
        "[Unit]\nConditionPathExists=/hsd-no-such-file\n[Service]\nExecStart=/bin/sleep infinity\n",
    ),
    (
        "hsd-enabled.service",
        "[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n",
    ),
];

fn cache_dir() -> PathBuf {
    PathBuf::from(std::env::var("HACTL_CACHE").unwrap_or_else(|_| "/var/cache/hactl-test".into()))
}

/// The cached rootfs, built by vm-tests/nspawn/rootfs.sh if missing (the
/// script serialises concurrent builders with a lock file in the cache, so
/// test binaries may call it at the same time).
fn rootfs() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("vm-tests/nspawn/rootfs.sh");
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed ({}): see its messages above",
        script.display(),
        out.status
    );
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(
        path.join("usr/lib/systemd/systemd").exists(),
        "{}: no systemd in {}",
        script.display(),
        path.display()
    );
    path
}

/// The variable that marks a test container's PID 1 with its run's name.
const RUN_ENV: &str = "HACTL_AGENT_SYSTEMD_RUN";

/// Removes what runs of this test left when they were killed outright
/// (their Drop never ran; killing systemd-nspawn does not end the
/// container): containers and overlay directories named `hsd-PID-TAG`
/// whose test process PID is gone. Only such names are touched.
fn reap_leftovers() {
    let dead = |name: &str| -> bool {
        let pid = name.strip_prefix("hsd-").and_then(|r| r.split('-').next());
        // Gone, or a zombie nobody has reaped yet.
        pid.and_then(|p| p.parse::<u32>().ok()).is_some_and(|p| {
            std::fs::read_to_string(format!("/proc/{p}/status"))
                .map(|st| {
                    st.lines()
                        .any(|l| l.starts_with("State:") && l.contains("zombie"))
                })
                .unwrap_or(true)
        })
    };
    let marker = format!("{RUN_ENV}=");
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        for var in env.split(|b| *b == 0) {
            let var = String::from_utf8_lossy(var);
            if let Some(name) = var.strip_prefix(&marker)
                && dead(name)
            {
                eprintln!("note: killing container {name} (PID {pid}), left by a killed test run");
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    let runs = cache_dir().join("runs");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    for e in std::fs::read_dir(&runs).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !dead(&name) {
            continue;
        }
        let dir = runs.join(&name);
        let prefix = format!("{}/", dir.display());
        if mounts
            .lines()
            .any(|l| l.split(' ').nth(1).is_some_and(|m| m.starts_with(&prefix)))
        {
            continue;
        }
        eprintln!(
            "note: removing {}, left by a killed test run",
            dir.display()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A booted container, killed and removed on drop.
struct Container {
    name: String,
    nspawn: Child,
    /// The container's PID 1 (systemd), as the host sees it.
    cpid: i32,
    rundir: PathBuf,
}

impl Container {
    fn boot(tag: &str) -> Container {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test boots a systemd-nspawn container and must run as root"
        );
        reap_leftovers();
        let rootfs = rootfs();
        let name = format!("hsd-{}-{tag}", std::process::id());
        let rundir = cache_dir().join("runs").join(&name);
        let upper = rundir.join("upper");
        let sysdir = upper.join("etc/systemd/system");
        std::fs::create_dir_all(sysdir.join("multi-user.target.wants"))
            .unwrap_or_else(|e| panic!("mkdir {}: {e}", sysdir.display()));
        for (unit, text) in UNITS {
            std::fs::write(sysdir.join(unit), text).unwrap();
        }
        // Enabled the way `systemctl enable` does it.
        std::os::unix::fs::symlink(
            "/etc/systemd/system/hsd-enabled.service",
            sysdir.join("multi-user.target.wants/hsd-enabled.service"),
        )
        .unwrap();
        std::fs::write(upper.join("etc/hostname"), format!("{tag}\n")).unwrap();
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).unwrap();
        std::fs::write(
            upper.join("etc/machine-id"),
            format!("{}\n", hex::encode(id)),
        )
        .unwrap();
        let console = std::fs::File::create(rundir.join("console.log")).unwrap();
        let nspawn = Command::new("systemd-nspawn")
            .arg("-q")
            .arg("-D")
            .arg(&rootfs)
            .arg(format!(
                "--overlay={}:{}:/",
                rootfs.display(),
                upper.display()
            ))
            .args([
                "--register=no",
                "--keep-unit",
                "--link-journal=no",
                "--private-network",
            ])
            .args(["-M", &name, "-b", "--console=pipe"])
            // Marks the container's PID 1 as this run's (see reap_leftovers).
            .arg(format!("--setenv={RUN_ENV}={name}"))
            .stdin(Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console)
            .spawn()
            .expect("systemd-nspawn (package systemd-container; scripts/setup.sh installs it)");
        let mut c = Container {
            name,
            nspawn,
            cpid: 0,
            rundir,
        };
        c.wait_boot();
        c
    }

    fn console(&self) -> String {
        std::fs::read_to_string(self.rundir.join("console.log")).unwrap_or_default()
    }

    fn wait_boot(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(BOOT_TIMEOUT_S);
        let nspawn_pid = self.nspawn.id() as i32;
        // PID 1 of the container: the child of nspawn that is 1 in its
        // own PID namespace.
        while self.cpid == 0 {
            if let Ok(Some(st)) = self.nspawn.try_wait() {
                panic!(
                    "systemd-nspawn {} exited ({st}) while booting:\n{}",
                    self.name,
                    self.console()
                );
            }
            assert!(
                Instant::now() < deadline,
                "container {}: no PID 1 after {BOOT_TIMEOUT_S} s",
                self.name
            );
            let children =
                std::fs::read_to_string(format!("/proc/{nspawn_pid}/task/{nspawn_pid}/children"))
                    .unwrap_or_default();
            for c in children.split_whitespace() {
                let status =
                    std::fs::read_to_string(format!("/proc/{c}/status")).unwrap_or_default();
                if let Some(ns) = status.lines().find(|l| l.starts_with("NSpid:")) {
                    let f: Vec<&str> = ns.split_whitespace().collect();
                    if f.len() == 3 && f[2] == "1" {
                        self.cpid = c.parse().unwrap();
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        loop {
            let (_, state) = self.cx(&["systemctl", "is-system-running"]);
            if state == "running" || state == "degraded" {
                break;
            }
            if let Ok(Some(st)) = self.nspawn.try_wait() {
                panic!(
                    "container {} died while booting ({st}):\n{}",
                    self.name,
                    self.console()
                );
            }
            assert!(
                Instant::now() < deadline,
                "container {}: system state still \"{state}\" after {BOOT_TIMEOUT_S} s",
                self.name
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs a command in the container: (success, stdout+stderr trimmed).
    fn cx(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("nsenter")
            .args(["-t", &self.cpid.to_string(), "-a", "env", "-i"])
            .args([
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                "SYSTEMD_PAGER=",
                "SYSTEMD_COLORS=0",
            ])
            .args(args)
            .output()
            .expect("nsenter (package util-linux)");
        let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
        s.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), s.trim().to_string())
    }

    /// A property of a unit, from `systemctl show` inside.
    fn prop(&self, unit: &str, prop: &str) -> String {
        self.cx(&["systemctl", "show", "--value", "-p", prop, unit])
            .1
    }

    fn bus(&self) -> String {
        format!(
            "unix:path=/proc/{}/root/run/dbus/system_bus_socket",
            self.cpid
        )
    }

    fn agent(&self, unit: &str) -> SystemdAgent {
        SystemdAgent::with_address(unit, &self.bus())
    }

    /// The host's PID for a PID of the container.
    fn host_pid(&self, pid_in: &str) -> i32 {
        let ns = std::fs::read_link(format!("/proc/{}/ns/pid", self.cpid)).unwrap();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if std::fs::read_link(format!("/proc/{pid}/ns/pid"))
                .ok()
                .as_ref()
                != Some(&ns)
            {
                continue;
            }
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            if let Some(l) = status.lines().find(|l| l.starts_with("NSpid:"))
                && l.split_whitespace().last() == Some(pid_in)
            {
                return pid;
            }
        }
        panic!(
            "container {}: no process with PID {pid_in} in it",
            self.name
        );
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // PID 1 first (that ends every process of the container), then nspawn.
        if self.cpid > 0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.cpid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.cpid > 0
            && Path::new(&format!("/proc/{}", self.cpid)).exists()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        // The overlay lived in nspawn's mount namespace; refuse to delete
        // through a mount that is somehow still there.
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let prefix = format!("{}/", self.rundir.display());
        if mounts
            .lines()
            .any(|l| l.split(' ').nth(1).is_some_and(|m| m.starts_with(&prefix)))
        {
            eprintln!(
                "warning: mounts remain below {}; not removing it",
                self.rundir.display()
            );
        } else if let Err(e) = std::fs::remove_dir_all(&self.rundir) {
            eprintln!("warning: cannot remove {}: {e}", self.rundir.display());
        }
    }
}

/// Waits until `systemctl show` inside says PROP=VALUE for the unit.
fn wait_prop(c: &Container, unit: &str, prop: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(NOTICE_TIMEOUT_S);
    loop {
        let got = c.prop(unit, prop);
        if got == value {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{unit}: {prop}={got}, expected {value}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn req(action: AgentAction) -> OpRequest {
    req_for("rsc", action)
}

fn req_for(resource: &str, action: AgentAction) -> OpRequest {
    OpRequest {
        resource: resource.into(),
        action,
        params: Default::default(),
        timeout: Duration::from_secs(OP_TIMEOUT_S),
        interval: Duration::ZERO,
        check_level: 0,
    }
}

async fn op(agent: &SystemdAgent, action: AgentAction) -> OpOutcome {
    agent.execute(req(action)).await
}

fn assert_code(what: &str, got: &OpOutcome, code: OcfCode) {
    assert_eq!(got.code, code, "{what}: expected {code}, got {got:?}");
}

async fn next_notice(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Notice>, what: &str) -> Notice {
    tokio::time::timeout(Duration::from_secs(NOTICE_TIMEOUT_S), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}: no notice within {NOTICE_TIMEOUT_S} s"))
        .expect("notice channel closed")
}

async fn no_notice(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Notice>, what: &str) {
    if let Ok(n) = tokio::time::timeout(Duration::from_millis(QUIET_MS), rx.recv()).await {
        panic!("{what}: unexpected notice {n:?}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn start_stop_monitor_failures_and_missing_units_on_a_real_systemd() {
    let c = Container::boot("ops");

    // A plain service: not running, start, running, idempotent start.
    let a = c.agent("hsd-sleep");
    assert_eq!(a.name(), "systemd:hsd-sleep");
    assert_eq!(a.unit(), "hsd-sleep.service");
    assert_code(
        "monitor before start",
        &op(&a, AgentAction::Monitor).await,
        OcfCode::NotRunning,
    );
    assert_code("start", &op(&a, AgentAction::Start).await, OcfCode::Success);
    assert_eq!(
        c.prop("hsd-sleep.service", "ActiveState"),
        "active",
        "systemctl inside after start"
    );
    let pid = c.prop("hsd-sleep.service", "MainPID");
    assert_ne!(pid, "0");
    assert_code(
        "monitor after start",
        &op(&a, AgentAction::Monitor).await,
        OcfCode::Success,
    );
    assert_code(
        "second start",
        &op(&a, AgentAction::Start).await,
        OcfCode::Success,
    );
    assert_eq!(
        c.prop("hsd-sleep.service", "MainPID"),
        pid,
        "a second start must not restart the unit"
    );

    // Stop, not running, idempotent stop.
    assert_code("stop", &op(&a, AgentAction::Stop).await, OcfCode::Success);
    assert_eq!(
        c.prop("hsd-sleep.service", "ActiveState"),
        "inactive",
        "systemctl inside after stop"
    );
    assert_code(
        "monitor after stop",
        &op(&a, AgentAction::Monitor).await,
        OcfCode::NotRunning,
    );
    assert_code(
        "second stop",
        &op(&a, AgentAction::Stop).await,
        OcfCode::Success,
    );
    assert_code(
        "validate-all",
        &op(&a, AgentAction::ValidateAll).await,
        OcfCode::Success,
    );

    // Restarts after failures in a row are not refused by systemd's start
    // rate limit (the unit allows 2 starts in 10 minutes; a failed unit
    // stays loaded, and so does its count).
    let l = c.agent("hsd-limit");
    for i in 1..=4 {
        assert_code(
            &format!("start #{i} of hsd-limit"),
            &op(&l, AgentAction::Start).await,
            OcfCode::Success,
        );
        let pid = c.prop("hsd-limit.service", "MainPID");
        let (ok, out) = c.cx(&["sh", "-c", &format!("kill -9 {pid}")]);
        assert!(ok, "kill -9 {pid} in the container: {out}");
        wait_prop(&c, "hsd-limit.service", "ActiveState", "failed");
    }
    assert_code(
        "stop of hsd-limit",
        &op(&l, AgentAction::Stop).await,
        OcfCode::Success,
    );

    // A program that exits at once: the start fails, and says why.
    let f = c.agent("hsd-false.service");
    let out = op(&f, AgentAction::Start).await;
    assert_code("start of ExecStart=/bin/false", &out, OcfCode::ErrGeneric);
    assert!(
        out.exit_reason.contains("hsd-false.service")
            && out.exit_reason.contains("exited with status 1"),
        "exit reason of a failed start: {}",
        out.exit_reason
    );
    assert_eq!(c.prop("hsd-false.service", "ActiveState"), "failed");
    let out = op(&f, AgentAction::Monitor).await;
    assert_code("monitor of a failed unit", &out, OcfCode::ErrGeneric);
    assert!(out.exit_reason.contains("failed"), "{}", out.exit_reason);
    // Stopping a failed unit clears it: the next monitor says not running.
    assert_code(
        "stop of a failed unit",
        &op(&f, AgentAction::Stop).await,
        OcfCode::Success,
    );
    assert_eq!(c.prop("hsd-false.service", "ActiveState"), "inactive");
    assert_code(
        "monitor after stop of a failed unit",
        &op(&f, AgentAction::Monitor).await,
        OcfCode::NotRunning,
    );

    // A unit whose condition is not met does not run: a failed start.
    let out = op(&c.agent("hsd-cond"), AgentAction::Start).await;
    assert_code(
        "start of a unit whose condition fails",
        &out,
        OcfCode::ErrGeneric,
    );
    assert!(
        out.exit_reason
            .contains("Condition...= of the unit is not met"),
        "{}",
        out.exit_reason
    );

    // A unit that does not exist.
    let m = c.agent("hsd-missing");
    assert_code(
        "monitor of a missing unit",
        &op(&m, AgentAction::Monitor).await,
        OcfCode::NotRunning,
    );
    let out = op(&m, AgentAction::Start).await;
    assert_code("start of a missing unit", &out, OcfCode::ErrInstalled);
    assert!(
        out.exit_reason.contains("hsd-missing.service not found"),
        "exit reason: {}",
        out.exit_reason
    );
    assert_code(
        "stop of a missing unit",
        &op(&m, AgentAction::Stop).await,
        OcfCode::Success,
    );
    assert_code(
        "validate-all of a missing unit",
        &op(&m, AgentAction::ValidateAll).await,
        OcfCode::ErrInstalled,
    );

    // Enabled at boot: a warning that says what to do; others none.
    let w = c.agent("hsd-enabled").boot_enabled_warning().await.unwrap();
    let w = w.expect("hsd-enabled.service is enabled: expected a warning");
    assert!(w.contains("systemctl disable hsd-enabled.service"), "{w}");
    assert_eq!(a.boot_enabled_warning().await.unwrap(), None);
    assert_eq!(m.boot_enabled_warning().await.unwrap(), None);

    // Promote has no meaning for a unit.
    assert_code(
        "promote",
        &op(&a, AgentAction::Promote).await,
        OcfCode::ErrUnimplemented,
    );
}

#[tokio::test(flavor = "current_thread")]
async fn watch_reports_units_killed_or_stopped_outside_hactl_and_not_its_own_changes() {
    let c = Container::boot("watch");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();

    // Killed outside: a notice, without any monitor.
    let k = c.agent("hsd-kill");
    assert_eq!(k.watch("rsc-kill", tx.clone()).await, Ok(true));
    assert_code("start", &op(&k, AgentAction::Start).await, OcfCode::Success);
    no_notice(&mut rx, "after hactl's own start").await;
    let pid = c.prop("hsd-kill.service", "MainPID");
    let (ok, out) = c.cx(&["sh", "-c", &format!("kill -9 {pid}")]);
    assert!(ok, "kill -9 {pid} in the container: {out}");
    let n = next_notice(&mut rx, "kill -9 of the main process").await;
    assert_eq!(n.resource, "rsc-kill");
    assert_eq!(n.code, OcfCode::ErrGeneric, "{n:?}");
    assert!(
        n.exit_reason.contains("hsd-kill.service failed") && n.exit_reason.contains("SIGKILL"),
        "{n:?}"
    );
    no_notice(&mut rx, "one failure, one notice").await;
    // Started again, the watch is armed again.
    assert_code(
        "start after the failure",
        &op(&k, AgentAction::Start).await,
        OcfCode::Success,
    );
    let pid = c.prop("hsd-kill.service", "MainPID");
    let (ok, out) = c.cx(&["sh", "-c", &format!("kill -9 {pid}")]);
    assert!(ok, "kill -9 {pid} in the container: {out}");
    let n = next_notice(&mut rx, "second kill -9 of the main process").await;
    assert_eq!(
        (n.resource.as_str(), n.code),
        ("rsc-kill", OcfCode::ErrGeneric),
        "{n:?}"
    );

    // Stopped outside.
    let e = c.agent("hsd-ext");
    assert_eq!(e.watch("rsc-ext", tx.clone()).await, Ok(true));
    // Watching again replaces the first watch (one change, one notice).
    assert_eq!(e.watch("rsc-ext", tx.clone()).await, Ok(true));
    assert_code("start", &op(&e, AgentAction::Start).await, OcfCode::Success);
    let (ok, out) = c.cx(&["systemctl", "stop", "hsd-ext"]);
    assert!(ok, "systemctl stop in the container: {out}");
    let n = next_notice(&mut rx, "systemctl stop outside hactl").await;
    assert_eq!(n.resource, "rsc-ext");
    assert_eq!(n.code, OcfCode::NotRunning, "{n:?}");
    assert!(n.exit_reason.contains("stopped outside hactl"), "{n:?}");
    no_notice(&mut rx, "a watch made twice").await;

    // hactl's own stop, start, stop, start: no notice.
    for action in [
        AgentAction::Start,
        AgentAction::Stop,
        AgentAction::Start,
        AgentAction::Stop,
    ] {
        assert_code(action.as_str(), &op(&e, action).await, OcfCode::Success);
    }
    assert_code("start", &op(&k, AgentAction::Start).await, OcfCode::Success);
    assert_code("stop", &op(&k, AgentAction::Stop).await, OcfCode::Success);
    no_notice(&mut rx, "after hactl's own starts and stops").await;

    // Restarted by systemd itself (Restart=always): reported as a failure.
    let r = c.agent("hsd-restart");
    assert_eq!(r.watch("rsc-restart", tx.clone()).await, Ok(true));
    assert_code("start", &op(&r, AgentAction::Start).await, OcfCode::Success);
    let pid = c.prop("hsd-restart.service", "MainPID");
    let (ok, out) = c.cx(&["sh", "-c", &format!("kill -9 {pid}")]);
    assert!(ok, "kill -9 {pid} in the container: {out}");
    let n = next_notice(&mut rx, "kill -9 of a Restart=always unit").await;
    assert_eq!(n.resource, "rsc-restart");
    assert_eq!(n.code, OcfCode::ErrGeneric, "{n:?}");
    assert!(n.exit_reason.contains("restarting it by itself"), "{n:?}");
    assert_code("stop", &op(&r, AgentAction::Stop).await, OcfCode::Success);

    // A dropped agent's watch ends: no notice for what happens after.
    drop(e);
    let (ok, out) = c.cx(&["systemctl", "start", "hsd-ext"]);
    assert!(ok, "{out}");
    let (ok, out) = c.cx(&["systemctl", "stop", "hsd-ext"]);
    assert!(ok, "{out}");
    no_notice(&mut rx, "after the agent was dropped").await;
}

fn stats(name: &str, ms: &mut [f64]) {
    ms.sort_by(f64::total_cmp);
    let median = if ms.len() % 2 == 1 {
        ms[ms.len() / 2]
    } else {
        (ms[ms.len() / 2 - 1] + ms[ms.len() / 2]) / 2.0
    };
    println!(
        "{name}: n={} median={median:.1} ms min={:.1} ms max={:.1} ms",
        ms.len(),
        ms[0],
        ms[ms.len() - 1]
    );
}

/// The delay from `kill -9` of a unit's main process (from the host, by
/// its host PID, so that the clock starts at the kill itself) to the
/// failure reaching the agent's caller: (a) as a watch notice, (b) from a
/// monitor polled at 1 s and at 200 ms (killed at a random moment of the
/// polling period).
#[tokio::test(flavor = "current_thread")]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn bench_failure_detection_delay() {
    const RUNS: usize = 15;
    let c = Container::boot("bench");
    let unit = "hsd-bench.service";
    let kill_main = |c: &Container| -> Instant {
        let pid = c.host_pid(&c.prop(unit, "MainPID"));
        let t0 = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        t0
    };

    // (a) the watch.
    let a = c.agent(unit);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    assert_eq!(a.watch("bench", tx).await, Ok(true));
    let mut watch_ms = Vec::new();
    for _ in 0..RUNS {
        assert_code("start", &op(&a, AgentAction::Start).await, OcfCode::Success);
        let t0 = kill_main(&c);
        let n = next_notice(&mut rx, "kill -9").await;
        watch_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(n.code, OcfCode::ErrGeneric, "{n:?}");
    }
    assert_code("stop", &op(&a, AgentAction::Stop).await, OcfCode::Success);
    drop(a);

    // (a') the same through the executor, as the daemon will use it: the
    // agent registered (its watch started by the executor), started with an
    // executor operation, killed; the clock stops at the executor's failure
    // event.
    let (exec, mut events) = hactl::executor::spawn(hactl::executor::ExecutorConfig::new("bench"));
    exec.register(
        "bench",
        Box::new(c.agent(unit)),
        hactl::executor::ResourceSpec::default(),
    );
    let mut exec_ms = Vec::new();
    for _ in 0..RUNS {
        exec.execute(req_for("bench", AgentAction::Start));
        loop {
            let e = tokio::time::timeout(Duration::from_secs(30), events.recv())
                .await
                .expect("start event")
                .expect("executor running");
            if e.action == AgentAction::Start {
                assert_eq!(e.code, OcfCode::Success, "{e:?}");
                break;
            }
        }
        let t0 = kill_main(&c);
        loop {
            let e = tokio::time::timeout(Duration::from_secs(30), events.recv())
                .await
                .expect("failure event")
                .expect("executor running");
            if e.failed {
                exec_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
                assert_eq!(e.origin, hactl::executor::Origin::Notice, "{e:?}");
                break;
            }
        }
    }
    exec.execute(req_for("bench", AgentAction::Stop));
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(30), events.recv()).await {
        if e.action == AgentAction::Stop {
            break;
        }
    }
    drop(exec);

    // (b) monitor polling alone.
    let mut polled = Vec::new();
    for interval_ms in [1000u64, 200] {
        let p = c.agent(unit);
        let mut ms = Vec::new();
        for _ in 0..RUNS {
            assert_code("start", &op(&p, AgentAction::Start).await, OcfCode::Success);
            let mut jitter = [0u8; 2];
            getrandom::fill(&mut jitter).unwrap();
            let offset = Duration::from_millis(u64::from(u16::from_le_bytes(jitter)) % interval_ms);
            let mut t0 = None;
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(interval_ms));
            loop {
                // Kill at a random moment of the period.
                let until_kill = (started + offset).saturating_duration_since(Instant::now());
                tokio::select! {
                    _ = tick.tick() => {
                        let out = op(&p, AgentAction::Monitor).await;
                        if out.code != OcfCode::Success {
                            assert!(t0.is_some(), "monitor failed before the kill: {out:?}");
                            break;
                        }
                    }
                    _ = tokio::time::sleep(until_kill), if t0.is_none() => {
                        t0 = Some(kill_main(&c));
                    }
                }
            }
            ms.push(t0.unwrap().elapsed().as_secs_f64() * 1000.0);
        }
        polled.push((interval_ms, ms));
        assert_code("stop", &op(&p, AgentAction::Stop).await, OcfCode::Success);
    }

    println!(
        "delay from kill -9 of the main process to the failure at the agent's caller ({RUNS} runs each):"
    );
    stats("watch (PropertiesChanged -> Notice)", &mut watch_ms);
    stats("watch through the executor (-> OpEvent)", &mut exec_ms);
    for (interval_ms, mut ms) in polled {
        stats(&format!("monitor polling every {interval_ms} ms"), &mut ms);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn watch_survives_a_restart_of_the_bus() {
    let c = Container::boot("bus");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let k = c.agent("hsd-kill");
    assert_eq!(k.watch("rsc-kill", tx).await, Ok(true));
    assert_code("start", &op(&k, AgentAction::Start).await, OcfCode::Success);

    // The bus daemon dies (and with it every connection to it); dbus.socket
    // starts it again on the next connection, systemd comes back on it.
    let bus_pid = c.prop("dbus.service", "MainPID");
    let (ok, out) = c.cx(&["sh", "-c", &format!("kill -9 {bus_pid}")]);
    assert!(
        ok,
        "kill -9 of dbus-daemon ({bus_pid}) in the container: {out}"
    );
    wait_prop(&c, "dbus.service", "ActiveState", "failed");
    let (ok, out) = c.cx(&["systemctl", "start", "dbus.service"]);
    assert!(ok, "systemctl start dbus in the container: {out}");

    // Killed while (or after) the watch finds the new bus: reported all the same.
    let pid = c.prop("hsd-kill.service", "MainPID");
    let (ok, out) = c.cx(&["sh", "-c", &format!("kill -9 {pid}")]);
    assert!(ok, "kill -9 {pid} in the container: {out}");
    let n = next_notice(&mut rx, "kill -9 after a restart of the bus").await;
    assert_eq!(
        (n.resource.as_str(), n.code),
        ("rsc-kill", OcfCode::ErrGeneric),
        "{n:?}"
    );
    assert!(n.exit_reason.contains("SIGKILL"), "{n:?}");

    // And operations work on the new bus.
    assert_code(
        "start on the new bus",
        &op(&k, AgentAction::Start).await,
        OcfCode::Success,
    );
    assert_code(
        "monitor on the new bus",
        &op(&k, AgentAction::Monitor).await,
        OcfCode::Success,
    );
}
