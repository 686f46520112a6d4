//! `hactl fence-device` with libvirt devices, as a user runs it: the hactl
//! binary, a configuration file the test writes, and a real libvirtd with a
//! real QEMU domain behind it (`scripts/libvirt-peer.sh`, shared with
//! tests/fencing_libvirt.rs). Checks the output, the exit codes documented
//! in docs/fencing.md (0 done/on, 1 the device failed, 3 power off) and the
//! domain itself (virsh, the qemu process).

mod common;
#[path = "libvirt_peer/mod.rs"]
mod libvirt_peer;

use std::path::{Path, PathBuf};

use common::{alive, hactl_fence_device as hactl};
use libvirt_peer::Peer;

/// Two nodes; "vm-beta" fences beta's domain over the peer's unix socket,
/// "vm-tcp" names `tcp_domain` over the peer's TCP port.
fn config(dir: &Path, peer: &Peer, tcp_domain: &str) -> PathBuf {
    let text = format!(
        r#"
[cluster]
name = "fence-cli-libvirt"

[[node]]
name = "alpha"
id = 1
addresses = ["10.20.0.1"]
fence_levels = [["vm-tcp"]]

[[node]]
name = "beta"
id = 2
addresses = ["10.20.0.2"]
fence_levels = [["vm-beta"]]

[[fence_device]]
id = "vm-beta"
kind = "libvirt"
uri = "{unix}"
domain = "{domain}"
timeout = "20s"

[[fence_device]]
id = "vm-tcp"
kind = "libvirt"
uri = "{tcp}"
domain = "{tcp_domain}"
timeout = "20s"
"#,
        unix = peer.unix_uri(),
        tcp = peer.tcp_uri(),
        domain = peer.domain,
    );
    let p = dir.join("cluster.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn list_status_off_and_on_of_a_libvirt_domain_with_exit_codes() {
    let peer = Peer::start();
    let cfg = config(peer.dir.path(), &peer, &peer.domain);
    let first = peer.qemu_pid().expect("the peer's domain runs");

    // list: the device, its kind, its domain and URI, who uses it.
    let r = hactl(&cfg, &["list"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let row = r
        .stdout
        .lines()
        .find(|l| l.starts_with("vm-beta "))
        .unwrap_or_else(|| panic!("no row for vm-beta:\n{}", r.stdout));
    assert!(row.contains(" libvirt "), "{row}");
    assert!(
        row.contains(&format!("domain {} at {}", peer.domain, peer.unix_uri())),
        "{row}"
    );
    assert!(row.contains("20s"), "{row}");
    assert!(row.ends_with("beta (level 1)"), "{row}");
    let tcp_row = r.stdout.lines().find(|l| l.starts_with("vm-tcp ")).unwrap();
    assert!(
        tcp_row.contains(&format!("at qemu+tcp://127.0.0.1:{}/system", peer.port)),
        "{tcp_row}"
    );

    // status of a running domain: on, exit 0; nothing changed.
    let r = hactl(&cfg, &["status", "vm-beta"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.starts_with("vm-beta: status: power on ("),
        "{}",
        r.stdout
    );
    assert_eq!(peer.qemu_pid(), Some(first));

    // off: confirmed, exit 0, and the qemu process is gone.
    let r = hactl(&cfg, &["off", "vm-beta"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .starts_with("vm-beta: off: power off, confirmed by the device ("),
        "{}",
        r.stdout
    );
    assert!(
        !alive(first),
        "qemu {first} still runs after a confirmed off"
    );
    assert_eq!(peer.virsh_state(), "shut off");

    // status of a domain that is off: exit 3; the same over TCP.
    for dev in ["vm-beta", "vm-tcp"] {
        let r = hactl(&cfg, &["status", dev]);
        assert_eq!(r.code, 3, "{dev}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stdout.starts_with(&format!("{dev}: status: power off (")),
            "{}",
            r.stdout
        );
    }

    // on: exit 0, a new qemu runs.
    let r = hactl(&cfg, &["on", "vm-beta"]);
    println!("{}", r.stdout.trim());
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.starts_with("vm-beta: on: power on ("),
        "{}",
        r.stdout
    );
    assert_eq!(peer.virsh_state(), "running");
    let second = peer.qemu_pid().expect("qemu runs after on");
    assert_ne!(second, first);
}

#[test]
fn an_unknown_domain_fails_with_exit_1_quoting_libvirt_and_touches_nothing() {
    let peer = Peer::start_with(&[("HACTL_LV_STATE", "shutoff")]);
    let cfg = config(peer.dir.path(), &peer, "no-such-vm");
    for action in ["status", "off", "on"] {
        let r = hactl(&cfg, &[action, "vm-tcp"]);
        // 1: the device failed (docs/fencing.md, exit codes); not 2, which
        // is for a device hactl does not know.
        assert_eq!(r.code, 1, "{action}: {}{}", r.stdout, r.stderr);
        assert!(r.stdout.is_empty(), "{action}: {}", r.stdout);
        let msg = r.stderr.trim();
        // Shown with --nocapture: what a user reads.
        eprintln!("{msg}");
        assert!(
            msg.starts_with(&format!("hactl fence-device: {action} failed after ")),
            "{msg}"
        );
        assert!(
            msg.contains("fence device \"vm-tcp\"")
                && msg.contains("libvirt has no domain \"no-such-vm\"")
                && msg.contains("Domain not found: no domain with matching name")
                && msg.contains("virsh list --all"),
            "{action}: {msg}"
        );
        assert_eq!(msg.lines().count(), 1, "one line: {msg}");
    }
    // The real domain is untouched (still off; on named another domain).
    assert_eq!(peer.virsh_state(), "shut off");
    assert_eq!(peer.qemu_pid(), None);
}
