//! The D-Bus policy shipped in conf/dbus/ enforced by a real dbus-daemon:
//! anyone may read (Status, Quorum, ShowConfig, introspection), only root
//! and the group "haclient" may call anything else, and only root may own
//! the service name. The bus runs with a system-bus-like default policy and
//! includes the shipped file unchanged; a stand-in service (the real API
//! comes with the controller) answers the calls that get through.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const NAME: &str = "org.hactl.Cluster1";
const PATH: &str = "/org/hactl/Cluster1";

struct Stand;

#[zbus::interface(name = "org.hactl.Cluster1")]
impl Stand {
    fn status(&self) -> String {
        "stand-in status".to_string()
    }
    fn standby(&self, node: &str) -> String {
        format!("standby {node}")
    }
    fn fence(&self, node: &str) -> String {
        format!("fence {node}")
    }
}

use common::Bus;

fn start_bus() -> Bus {
    common::start_bus(true)
}

/// Runs busctl against the test bus as `uid`/`gid` with supplementary
/// `groups` (root when uid is None). Returns (success, output).
fn busctl(bus: &Bus, who: Option<(u32, u32, &[u32])>, args: &[&str]) -> (bool, String) {
    let mut cmd = match who {
        None => Command::new("busctl"),
        Some((uid, gid, groups)) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"));
            if groups.is_empty() {
                c.arg("--clear-groups");
            } else {
                c.arg(format!(
                    "--groups={}",
                    groups
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                ));
            }
            c.arg("busctl");
            c
        }
    };
    let out = cmd
        .arg(format!("--address={}", bus.address))
        .args(args)
        .output()
        .expect("run busctl");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn haclient_gid() -> u32 {
    let group = nix::unistd::Group::from_name("haclient")
        .unwrap()
        .expect("group haclient is missing: run scripts/setup.sh");
    group.gid.as_raw()
}

const NOBODY: u32 = 65534;

/// Serves the stand-in on its own thread and runtime (the test's thread
/// blocks in busctl) until the returned flag is set.
fn serve(address: String) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let flag = stop.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let conn = zbus::connection::Builder::address(address.as_str())
                .name(NAME)
                .serve_at(PATH, Stand)
                .build()
                .await;
            ready_tx
                .send(conn.as_ref().map(|_| ()).map_err(|e| e.to_string()))
                .unwrap();
            // Keep the connection (and with it the name) until told to stop.
            while conn.is_ok() && !flag.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("service thread")
        .expect("root may own org.hactl.Cluster1");
    stop
}

#[test]
fn only_root_and_haclient_may_call_mutating_methods() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to switch users");
        return;
    }
    let haclient = haclient_gid();
    let bus = start_bus();
    let stop = serve(bus.address.clone());
    let call = |who: Option<(u32, u32, &[u32])>, method: &str| {
        let mut args = vec!["call", NAME, PATH, NAME, method];
        if method != "Status" {
            args.extend(["s", "node1"]);
        }
        busctl(&bus, who, &args)
    };
    let nobody: Option<(u32, u32, &[u32])> = Some((NOBODY, NOBODY, &[]));
    let member_groups = [haclient];
    let member: Option<(u32, u32, &[u32])> = Some((NOBODY, NOBODY, &member_groups));

    let (ok, out) = call(nobody, "Status");
    assert!(
        ok && out.contains("stand-in status"),
        "anyone may read the status: {out}"
    );
    for method in ["Standby", "Fence"] {
        let (ok, out) = call(nobody, method);
        assert!(
            !ok && out.to_lowercase().contains("access denied"),
            "{method} by nobody must be refused by the bus: {out}"
        );
        let (ok, out) = call(member, method);
        assert!(
            ok && out.contains("node1"),
            "{method} by a haclient member must get through: {out}"
        );
        let (ok, out) = call(None, method);
        assert!(
            ok && out.contains("node1"),
            "{method} by root must get through: {out}"
        );
    }
    stop.store(true, Ordering::Relaxed);
}

#[test]
fn nobody_but_root_may_own_the_service_name() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to switch users");
        return;
    }
    let bus = start_bus();
    let (ok, out) = busctl(
        &bus,
        Some((NOBODY, NOBODY, &[])),
        &[
            "call",
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "RequestName",
            "su",
            NAME,
            "0",
        ],
    );
    assert!(
        !ok && out.to_lowercase().contains("access denied"),
        "an unprivileged process must not be able to impersonate hactld: {out}"
    );
    // The same request from root succeeds: the refusal above is the policy's.
    let (ok, out) = busctl(
        &bus,
        None,
        &[
            "call",
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "RequestName",
            "su",
            NAME,
            "0",
        ],
    );
    assert!(
        ok && out.trim() == "u 1",
        "root must be able to own the name: {out}"
    );
}
