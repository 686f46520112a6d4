//! The `filesystem` agent against real mounts: ext4 images on loop devices
//! (mkfs.ext4, losetup), tmpfs and bind mounts, each test under its own
//! temporary directory. Guards unmount everything below that directory and
//! detach the loop devices, also when a test fails. Needs root,
//! e2fsprogs and util-linux; nothing is skipped.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use hactl::agents::{AgentAction, OcfCode, OpOutcome, OpRequest, ResourceAgent, agent_from_config};
use hactl::config;
use nix::mount::MntFlags;

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/setup.sh installs it)", args[0]));
    assert!(
        out.status.success(),
        "{} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn unique() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    // Short enough for an ext4 label (16), unique across test processes.
    format!(
        "{:x}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A temporary directory; on drop every mount at or below it comes off
/// (lazily, so that a failing test still cleans up).
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the filesystem tests need root (mount, losetup)"
        );
        Scratch {
            dir: tempfile::Builder::new()
                .prefix("hactl-fs-test-")
                .tempdir()
                .unwrap(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn s(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }
}

/// The mount points at or below `root`, topmost last.
fn mounts_below(root: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(root))
        .collect()
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for _ in 0..20 {
            let m = mounts_below(self.dir.path());
            if m.is_empty() {
                break;
            }
            for p in m.iter().rev() {
                let _ = nix::mount::umount2(p, MntFlags::MNT_DETACH);
            }
        }
    }
}

/// An ext4 image attached to a loop device; detached on drop.
struct Loop {
    dev: String,
    label: String,
    uuid: String,
}

impl Loop {
    fn new(scratch: &Scratch) -> Loop {
        let image = scratch.path("image.ext4");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(16 << 20)
            .unwrap();
        let label = format!("hfs{}", unique());
        sh(&[
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            &label,
            image.to_str().unwrap(),
        ]);
        let dev = sh(&["losetup", "--find", "--show", image.to_str().unwrap()]);
        let mut l = Loop {
            dev,
            label,
            uuid: String::new(),
        };
        l.uuid = sh(&["blkid", "-p", "-s", "UUID", "-o", "value", &l.dev]);
        l
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

fn agent() -> Box<dyn ResourceAgent> {
    agent_from_config(&config::Resource {
        id: "fs".into(),
        agent: config::Agent::Filesystem,
        params: BTreeMap::new(),
        ops: vec![],
        meta: Default::default(),
    })
    .expect("filesystem is built in")
}

fn op_with(
    agent: &dyn ResourceAgent,
    action: AgentAction,
    params: &[(&str, &str)],
    check_level: u32,
    timeout: Duration,
) -> OpOutcome {
    let req = OpRequest {
        resource: "fs".into(),
        action,
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        timeout,
        interval: Duration::ZERO,
        check_level,
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(agent.execute(req))
}

fn op(agent: &dyn ResourceAgent, action: AgentAction, params: &[(&str, &str)]) -> OpOutcome {
    op_with(agent, action, params, 0, Duration::from_secs(20))
}

/// `SOURCE FSTYPE OPTIONS` of the mount on `dir`, as findmnt sees it.
fn findmnt(dir: &str) -> Option<String> {
    let out = Command::new("findmnt")
        .args([
            "-n",
            "-r",
            "-o",
            "SOURCE,FSTYPE,OPTIONS",
            "--mountpoint",
            dir,
        ])
        .output()
        .expect("findmnt (util-linux)");
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn reason_has(o: &OpOutcome, code: OcfCode, words: &[&str]) {
    assert_eq!(o.code, code, "{o:?}");
    for w in words {
        assert!(o.exit_reason.contains(w), "exit reason lacks {w:?}: {o:?}");
    }
}

/// A child process killed by the end of the test whatever happens.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------- tests

#[test]
fn ext4_on_a_loop_device_mounts_monitors_at_every_level_and_unmounts() {
    let s = Scratch::new();
    let lo = Loop::new(&s);
    std::fs::create_dir(s.path("mnt")).unwrap();
    let dir = s.s("mnt");
    let a = agent();
    let params = [
        ("device", lo.dev.as_str()),
        ("directory", dir.as_str()),
        ("fstype", "ext4"),
        ("options", "noatime,nodev,nosuid,errors=remount-ro"),
    ];
    assert_eq!(
        op(&*a, AgentAction::Monitor, &params).code,
        OcfCode::NotRunning
    );
    assert_eq!(
        op(&*a, AgentAction::ValidateAll, &params).code,
        OcfCode::Success
    );
    let o = op(&*a, AgentAction::Start, &params);
    assert_eq!(o.code, OcfCode::Success, "{o:?}");
    let m = findmnt(&dir).expect("mounted");
    assert!(m.starts_with(&format!("{} ext4 ", lo.dev)), "{m}");
    for opt in ["noatime", "nodev", "nosuid", "errors=remount-ro"] {
        assert!(m.contains(opt), "option {opt} in {m}");
    }
    // Idempotent start.
    assert_eq!(op(&*a, AgentAction::Start, &params).code, OcfCode::Success);
    assert_eq!(mounts_below(&s.path("mnt")).len(), 1, "mounted once");
    for level in [0, 10, 20] {
        let o = op_with(
            &*a,
            AgentAction::Monitor,
            &params,
            level,
            Duration::from_secs(20),
        );
        assert_eq!(o.code, OcfCode::Success, "check_level {level}: {o:?}");
    }
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".hactl"))
        .collect();
    assert!(left.is_empty(), "check_level 20 cleans up: {left:?}");

    // A rw mount that turned read-only (what errors=remount-ro does).
    sh(&["mount", "-o", "remount,ro", &dir]);
    let o = op(&*a, AgentAction::Monitor, &params);
    reason_has(&o, OcfCode::ErrGeneric, &[&dir, "read-only"]);

    assert_eq!(op(&*a, AgentAction::Stop, &params).code, OcfCode::Success);
    assert_eq!(findmnt(&dir), None);
    assert_eq!(
        op(&*a, AgentAction::Monitor, &params).code,
        OcfCode::NotRunning
    );
    assert_eq!(op(&*a, AgentAction::Stop, &params).code, OcfCode::Success);
}

#[test]
fn check_level_20_fails_on_a_mount_that_cannot_be_written() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("src")).unwrap();
    std::fs::write(s.path("src/file"), "x").unwrap();
    std::fs::create_dir(s.path("mnt")).unwrap();
    let (src, dir) = (s.s("src"), s.s("mnt"));
    let a = agent();
    // A read-only bind mount: mount(8) binds, then remounts with the flags.
    let params = [
        ("device", src.as_str()),
        ("directory", dir.as_str()),
        ("fstype", "none"),
        ("options", "bind,ro"),
    ];
    let o = op(&*a, AgentAction::Start, &params);
    assert_eq!(o.code, OcfCode::Success, "{o:?}");
    assert_eq!(std::fs::read_to_string(s.path("mnt/file")).unwrap(), "x");
    assert!(std::fs::write(s.path("mnt/new"), "y").is_err(), "read-only");
    for level in [0, 10] {
        let o = op_with(
            &*a,
            AgentAction::Monitor,
            &params,
            level,
            Duration::from_secs(20),
        );
        assert_eq!(o.code, OcfCode::Success, "check_level {level}: {o:?}");
    }
    let o = op_with(
        &*a,
        AgentAction::Monitor,
        &params,
        20,
        Duration::from_secs(20),
    );
    reason_has(&o, OcfCode::ErrGeneric, &["writing", &dir]);
    assert_eq!(op(&*a, AgentAction::Stop, &params).code, OcfCode::Success);
    assert_eq!(findmnt(&dir), None);
}

#[test]
fn tmpfs_gets_its_data_options() {
    let s = Scratch::new();
    std::fs::create_dir(s.path("t")).unwrap();
    let dir = s.s("t");
    let a = agent();
    let params = [
        ("device", "tmpfs"),
        ("directory", dir.as_str()),
        ("fstype", "tmpfs"),
        ("options", "size=8m,mode=0700,noexec"),
    ];
    let o = op(&*a, AgentAction::Start, &params);
    assert_eq!(o.code, OcfCode::Success, "{o:?}");
    let m = findmnt(&dir).expect("mounted");
    assert!(m.starts_with("tmpfs tmpfs "), "{m}");
    assert!(m.contains("size=8192k") && m.contains("noexec"), "{m}");
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let o = op_with(
        &*a,
        AgentAction::Monitor,
        &params,
        20,
        Duration::from_secs(20),
    );
    assert_eq!(o.code, OcfCode::Success, "{o:?}");
    assert_eq!(op(&*a, AgentAction::Stop, &params).code, OcfCode::Success);
    assert_eq!(findmnt(&dir), None);
}

#[test]
fn label_and_uuid_find_the_loop_device() {
    let s = Scratch::new();
    let lo = Loop::new(&s);
    std::fs::create_dir(s.path("mnt")).unwrap();
    let dir = s.s("mnt");
    let a = agent();
    for device in [format!("LABEL={}", lo.label), format!("UUID={}", lo.uuid)] {
        let params = [
            ("device", device.as_str()),
            ("directory", dir.as_str()),
            ("fstype", "ext4"),
        ];
        let o = op(&*a, AgentAction::Start, &params);
        assert_eq!(o.code, OcfCode::Success, "{device}: {o:?}");
        let m = findmnt(&dir).expect("mounted");
        assert!(m.starts_with(&format!("{} ext4", lo.dev)), "{device}: {m}");
        let o = op_with(
            &*a,
            AgentAction::Monitor,
            &params,
            10,
            Duration::from_secs(20),
        );
        assert_eq!(o.code, OcfCode::Success, "{device}: {o:?}");
        assert_eq!(op(&*a, AgentAction::Stop, &params).code, OcfCode::Success);
        assert_eq!(findmnt(&dir), None, "{device}");
    }
}

#[test]
fn a_device_mounted_elsewhere_is_refused_with_both_paths_named() {
    let s = Scratch::new();
    let lo = Loop::new(&s);
    std::fs::create_dir(s.path("one")).unwrap();
    std::fs::create_dir(s.path("two")).unwrap();
    let (one, two) = (s.s("one"), s.s("two"));
    sh(&["mount", "-t", "ext4", &lo.dev, &one]);
    let a = agent();
    let params = [
        ("device", lo.dev.as_str()),
        ("directory", two.as_str()),
        ("fstype", "ext4"),
    ];
    let o = op(&*a, AgentAction::Start, &params);
    reason_has(
        &o,
        OcfCode::ErrGeneric,
        &[&lo.dev, &one, &two, "already mounted"],
    );
    assert_eq!(findmnt(&two), None);
    assert_eq!(
        op(&*a, AgentAction::Monitor, &params).code,
        OcfCode::NotRunning
    );
    // Stopping this resource leaves the other mount alone.
    assert_eq!(op(&*a, AgentAction::Stop, &params).code, OcfCode::Success);
    assert!(findmnt(&one).is_some());
}

#[test]
fn the_mount_point_is_created_only_when_asked() {
    let s = Scratch::new();
    let dir = s.s("deep/er/mnt");
    let a = agent();
    let mut params = vec![
        ("device", "tmpfs"),
        ("directory", dir.as_str()),
        ("fstype", "tmpfs"),
    ];
    let o = op(&*a, AgentAction::Start, &params);
    reason_has(&o, OcfCode::ErrInstalled, &[&dir, "create_directory"]);
    assert!(!s.path("deep").exists());
    params.push(("create_directory", "true"));
    let o = op(&*a, AgentAction::Start, &params);
    assert_eq!(o.code, OcfCode::Success, "{o:?}");
    assert!(findmnt(&dir).is_some());
    assert_eq!(op(&*a, AgentAction::Stop, &params).code, OcfCode::Success);
    assert_eq!(findmnt(&dir), None);
}

fn spawn_in(dir: &Path, script: &str) -> Proc {
    let p = Proc(
        Command::new("sh")
            .args(["-c", script])
            .current_dir(dir)
            .spawn()
            .unwrap(),
    );
    // Wait until the shell has exec'd sleep, holding what it should hold.
    let comm = format!("/proc/{}/comm", p.0.id());
    let t = Instant::now();
    while std::fs::read_to_string(&comm).unwrap_or_default().trim() != "sleep" {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{script} did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    p
}

#[test]
fn a_busy_mount_fails_the_stop_with_its_users_named_unless_force_unmount() {
    let s = Scratch::new();
    std::fs::create_dir(s.path("mnt")).unwrap();
    let dir = s.s("mnt");
    let a = agent();
    let base = [
        ("device", "tmpfs"),
        ("directory", dir.as_str()),
        ("fstype", "tmpfs"),
    ];
    assert_eq!(op(&*a, AgentAction::Start, &base).code, OcfCode::Success);
    std::fs::write(s.path("mnt/held"), "x").unwrap();
    // One user with its working directory inside, one holding a file open
    // from outside.
    let mut by_cwd = spawn_in(&s.path("mnt"), "exec sleep 600");
    let mut by_fd = spawn_in(s.dir.path(), "exec sleep 600 3<mnt/held");
    // Beside the mount, not in it: must survive the forced unmount.
    let mut bystander = spawn_in(s.dir.path(), "exec sleep 600");
    let o = op(&*a, AgentAction::Stop, &base);
    let (p1, p2) = (by_cwd.0.id().to_string(), by_fd.0.id().to_string());
    reason_has(
        &o,
        OcfCode::ErrGeneric,
        &[&dir, "busy", &p1, &p2, "sleep", "force_unmount"],
    );
    assert!(findmnt(&dir).is_some(), "still mounted");
    assert!(by_cwd.0.try_wait().unwrap().is_none(), "not killed");

    let mut forced = base.to_vec();
    forced.push(("force_unmount", "true"));
    let o = op(&*a, AgentAction::Stop, &forced);
    assert_eq!(o.code, OcfCode::Success, "{o:?}");
    assert_eq!(findmnt(&dir), None);
    for p in [&mut by_cwd, &mut by_fd] {
        let status = p.0.wait().unwrap();
        assert_eq!(status.signal(), Some(libc_sigterm()), "{status:?}");
    }
    assert!(
        bystander.0.try_wait().unwrap().is_none(),
        "bystander killed"
    );
}

fn libc_sigterm() -> i32 {
    nix::sys::signal::Signal::SIGTERM as i32
}

#[test]
fn force_unmount_kills_a_user_that_ignores_sigterm() {
    let s = Scratch::new();
    std::fs::create_dir(s.path("mnt")).unwrap();
    let dir = s.s("mnt");
    let a = agent();
    let params = [
        ("device", "tmpfs"),
        ("directory", dir.as_str()),
        ("fstype", "tmpfs"),
        ("force_unmount", "true"),
    ];
    assert_eq!(op(&*a, AgentAction::Start, &params).code, OcfCode::Success);
    // An ignored signal stays ignored across exec.
    let mut stubborn = spawn_in(&s.path("mnt"), "trap '' TERM; exec sleep 600");
    let t = Instant::now();
    // A 4 s stop gives SIGTERM 2 s before SIGKILL.
    let o = op_with(&*a, AgentAction::Stop, &params, 0, Duration::from_secs(4));
    assert_eq!(o.code, OcfCode::Success, "{o:?}");
    assert!(t.elapsed() < Duration::from_secs(4));
    assert_eq!(findmnt(&dir), None);
    let status = stubborn.0.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(nix::sys::signal::Signal::SIGKILL as i32),
        "{status:?}"
    );
}

#[test]
fn a_missing_device_is_not_installed_here() {
    let s = Scratch::new();
    std::fs::create_dir(s.path("mnt")).unwrap();
    let dir = s.s("mnt");
    let a = agent();
    let missing = format!("/dev/hactl-missing-{}", unique());
    let label = format!("LABEL=hnone{}", unique());
    for device in [
        missing.as_str(),
        label.as_str(),
        "UUID=0badc0de-0000-4000-8000-000000000000",
    ] {
        let params = [
            ("device", device),
            ("directory", dir.as_str()),
            ("fstype", "ext4"),
        ];
        let o = op(&*a, AgentAction::Start, &params);
        let shown = device
            .trim_start_matches("LABEL=")
            .trim_start_matches("UUID=");
        reason_has(&o, OcfCode::ErrInstalled, &[shown, "this node"]);
        assert_eq!(
            op(&*a, AgentAction::Monitor, &params).code,
            OcfCode::NotRunning
        );
        assert_eq!(op(&*a, AgentAction::Stop, &params).code, OcfCode::Success);
    }
    assert_eq!(findmnt(&dir), None);
}

#[test]
fn an_image_file_or_bad_fstype_gets_a_clear_reason() {
    let s = Scratch::new();
    std::fs::create_dir(s.path("mnt")).unwrap();
    std::fs::write(s.path("img"), vec![0u8; 4096]).unwrap();
    let (img, dir) = (s.s("img"), s.s("mnt"));
    let a = agent();
    let o = op(
        &*a,
        AgentAction::Start,
        &[("device", &img), ("directory", &dir), ("fstype", "ext4")],
    );
    reason_has(&o, OcfCode::ErrConfigured, &[&img, "losetup"]);
    let o = op(
        &*a,
        AgentAction::Start,
        &[
            ("device", "none"),
            ("directory", &dir),
            ("fstype", "hactlnofs"),
        ],
    );
    reason_has(&o, OcfCode::ErrInstalled, &["hactlnofs"]);
    let o = op(
        &*a,
        AgentAction::Start,
        &[
            ("device", "tmpfs"),
            ("directory", "relative"),
            ("fstype", "tmpfs"),
        ],
    );
    reason_has(&o, OcfCode::ErrConfigured, &["relative", "absolute"]);
    assert_eq!(findmnt(&dir), None);
}

/// Figures, not assertions: `cargo test --test agent_filesystem --
/// --ignored --nocapture bench_`.
#[test]
#[ignore]
fn bench_filesystem_operation_latency() {
    let s = Scratch::new();
    let lo = Loop::new(&s);
    std::fs::create_dir(s.path("mnt")).unwrap();
    let dir = s.s("mnt");
    let a = agent();
    const CYCLES: usize = 30;
    for (kind, device, fstype) in [
        ("tmpfs", "tmpfs", "tmpfs"),
        ("ext4", lo.dev.as_str(), "ext4"),
        ("ext4 LABEL=", &*format!("LABEL={}", lo.label), "ext4"),
    ] {
        let params = [
            ("device", device),
            ("directory", dir.as_str()),
            ("fstype", fstype),
        ];
        let mut t: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
        for _ in 0..CYCLES {
            for (name, action, level) in [
                ("start", AgentAction::Start, 0),
                ("monitor0", AgentAction::Monitor, 0),
                ("monitor20", AgentAction::Monitor, 20),
                ("stop", AgentAction::Stop, 0),
            ] {
                let t0 = Instant::now();
                let o = op_with(&*a, action, &params, level, Duration::from_secs(20));
                assert_eq!(o.code, OcfCode::Success, "{o:?}");
                t.entry(name).or_default().push(t0.elapsed());
            }
        }
        for (name, mut v) in t {
            v.sort();
            println!(
                "filesystem {kind:<11} {name:<9} n={CYCLES} median {:>7.3} ms  p90 {:>7.3} ms  max {:>7.3} ms",
                v[v.len() / 2].as_secs_f64() * 1e3,
                v[v.len() * 9 / 10].as_secs_f64() * 1e3,
                v[v.len() - 1].as_secs_f64() * 1e3
            );
        }
    }
}

#[test]
fn watch_notices_an_unmount_or_a_read_only_turn_behind_hactls_back() {
    let s = Scratch::new();
    std::fs::create_dir(s.path("mnt")).unwrap();
    let dir = s.s("mnt");
    let a = agent();
    let params: BTreeMap<String, String> = [
        ("device", "tmpfs"),
        ("directory", dir.as_str()),
        ("fstype", "tmpfs"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let req = |action| OpRequest {
        resource: "fs".into(),
        action,
        params: params.clone(),
        timeout: Duration::from_secs(20),
        interval: Duration::ZERO,
        check_level: 0,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        assert_eq!(a.watch("fs", tx).await, Ok(true));
        let quiet = Duration::from_millis(300);
        let mut next = async |wait| tokio::time::timeout(wait, rx.recv()).await.ok().flatten();

        assert_eq!(
            a.execute(req(AgentAction::Start)).await.code,
            OcfCode::Success
        );
        assert_eq!(next(quiet).await, None, "hactl's own start");

        sh(&["umount", &dir]);
        let n = next(Duration::from_secs(3)).await.expect("unmount noticed");
        assert_eq!(
            (n.resource.as_str(), n.code),
            ("fs", OcfCode::NotRunning),
            "{n:?}"
        );
        assert!(n.exit_reason.contains(&dir), "{n:?}");

        assert_eq!(
            a.execute(req(AgentAction::Start)).await.code,
            OcfCode::Success
        );
        assert_eq!(next(quiet).await, None, "hactl's own start");
        sh(&["mount", "-o", "remount,ro", &dir]);
        let n = next(Duration::from_secs(3))
            .await
            .expect("read-only noticed");
        assert_eq!(n.code, OcfCode::ErrGeneric, "{n:?}");
        assert!(n.exit_reason.contains("read-only"), "{n:?}");

        assert_eq!(
            a.execute(req(AgentAction::Stop)).await.code,
            OcfCode::Success
        );
        sh(&["mount", "-t", "tmpfs", "tmpfs", &dir]);
        sh(&["umount", &dir]);
        assert_eq!(next(quiet).await, None, "stopped: no notice");
    });
}

#[test]
fn force_unmount_kills_users_running_as_other_users() {
    use std::os::unix::process::CommandExt;
    let s = Scratch::new();
    // The service user must be able to walk to its working directory.
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(s.path("mnt")).unwrap();
    let dir = s.s("mnt");
    let a = agent();
    let params = [
        ("device", "tmpfs"),
        ("directory", dir.as_str()),
        ("fstype", "tmpfs"),
        ("options", "mode=0755"),
        ("force_unmount", "true"),
    ];
    assert_eq!(op(&*a, AgentAction::Start, &params).code, OcfCode::Success);
    // As a service runs: another user (nobody), working directory inside.
    let mut service = Proc(
        Command::new("sleep")
            .arg("600")
            .current_dir(s.path("mnt"))
            .uid(65534)
            .gid(65534)
            .spawn()
            .unwrap(),
    );
    let o = op(&*a, AgentAction::Stop, &params);
    assert_eq!(o.code, OcfCode::Success, "{o:?}");
    assert_eq!(findmnt(&dir), None);
    let status = service.0.wait().unwrap();
    assert_eq!(status.signal(), Some(libc_sigterm()), "{status:?}");
}
