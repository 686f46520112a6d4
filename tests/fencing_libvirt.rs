//! The libvirt fence device against a real libvirtd with a real QEMU
//! domain: `scripts/libvirt-peer.sh` starts a private libvirtd per test (in
//! its own mount and PID namespaces, so tests run in parallel) with a TCG domain,
//! reachable over its unix socket and over TCP on a loopback port; virsh
//! and the qemu process itself are the cross-checks. The error cases use
//! the real daemon where it can produce them (unknown domain, SASL
//! required) and small local listeners where a daemon cannot (nothing
//! listening, a server that never answers, one that speaks another
//! protocol).
//!
//! Nothing is skipped: a test that cannot get its peer fails, saying why.

mod common;
#[path = "libvirt_peer/mod.rs"]
mod libvirt_peer;

use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::alive;
use libvirt_peer::{Peer, SCRIPT, free_tcp_port};

use hactl::config::{self, FenceKind};
use hactl::fencing::libvirt::LibvirtDevice;
use hactl::fencing::{Action, ErrorKind, FenceDevice, FenceError, PowerState, device_from_config};

/// Generous: destroy takes ~0.2 s and start ~0.3–1 s under TCG at nice 19 on
/// a busy two-core machine.
const TIMEOUT: Duration = libvirt_peer::TIMEOUT;
/// How late after its deadline an operation may return: scheduling jitter
/// on a loaded two-core CI machine, not protocol time.
const DEADLINE_SLACK: Duration = Duration::from_millis(500);

fn kind_of<T: std::fmt::Debug>(r: Result<T, FenceError>) -> (ErrorKind, String) {
    let e = r.expect_err("the operation should fail");
    // Shown with --nocapture: what a user would read.
    eprintln!("{e}");
    (e.kind, e.to_string())
}

// ------------------------------------------------------------------ power

#[tokio::test]
async fn status_off_on_and_reboot_by_name_over_the_unix_socket() {
    let peer = Peer::start();
    let dev = peer.device(&peer.unix_uri(), &peer.domain);
    let first = peer.qemu_pid().expect("the peer's domain runs");

    let o = dev.execute(Action::Status, TIMEOUT).await.unwrap();
    assert_eq!(o.power, PowerState::On);
    assert_eq!(peer.qemu_pid(), Some(first), "status changed nothing");

    let o = dev.execute(Action::Off, TIMEOUT).await.unwrap();
    assert_eq!(o.power, PowerState::Off);
    assert!(
        !alive(first),
        "qemu {first} still runs after a confirmed off"
    );
    assert_eq!(peer.qemu_pid(), None);
    assert_eq!(peer.virsh_state(), "shut off");
    assert_eq!(dev.status(TIMEOUT).await.unwrap(), PowerState::Off);
    // Off again: already off, still a success.
    assert_eq!(dev.off(TIMEOUT).await.unwrap(), PowerState::Off);

    assert_eq!(dev.on(TIMEOUT).await.unwrap(), PowerState::On);
    let second = peer.qemu_pid().expect("qemu runs after on");
    assert_ne!(second, first);
    assert_eq!(peer.virsh_state(), "running");
    // On again: already on.
    assert_eq!(dev.on(TIMEOUT).await.unwrap(), PowerState::On);
    assert_eq!(peer.qemu_pid(), Some(second));

    assert_eq!(dev.reboot(TIMEOUT).await.unwrap(), PowerState::On);
    assert!(!alive(second), "qemu {second} survived the reboot's off");
    let third = peer.qemu_pid().expect("qemu runs after reboot");
    assert_ne!(third, second);
    assert_eq!(peer.virsh_state(), "running");
}

#[tokio::test]
async fn status_off_and_on_by_uuid_over_tcp_from_the_configuration() {
    let peer = Peer::start();
    let cfg = config::FenceDevice {
        id: "vm-node2".into(),
        kind: FenceKind::Libvirt {
            uri: peer.tcp_uri(),
            domain: peer.uuid.clone(),
        },
        timeout_ms: 20_000,
        delay_ms: 0,
    };
    let dev = device_from_config(&cfg).unwrap();
    assert_eq!(dev.id(), "vm-node2");
    assert_eq!(dev.timeout(), TIMEOUT);
    let first = peer.qemu_pid().expect("the peer's domain runs");

    assert_eq!(dev.status(TIMEOUT).await.unwrap(), PowerState::On);
    assert_eq!(dev.off(TIMEOUT).await.unwrap(), PowerState::Off);
    assert!(
        !alive(first),
        "qemu {first} still runs after a confirmed off"
    );
    assert_eq!(peer.virsh_state(), "shut off");
    assert_eq!(dev.status(TIMEOUT).await.unwrap(), PowerState::Off);
    assert_eq!(dev.on(TIMEOUT).await.unwrap(), PowerState::On);
    assert!(peer.qemu_pid().is_some());
    assert_eq!(peer.virsh_state(), "running");

    // The UUID without dashes names the same domain.
    let plain = peer.uuid.replace('-', "");
    let dev = peer.device(&peer.tcp_uri(), &plain);
    assert_eq!(dev.status(TIMEOUT).await.unwrap(), PowerState::On);
}

#[tokio::test]
async fn a_transient_domain_that_vanishes_on_destroy_is_off() {
    // Started from XML, never defined: libvirt forgets it once it stops.
    let peer = Peer::start_with(&[("HACTL_LV_STATE", "shutoff")]);
    let name = format!("hactl-lv-tr{}", std::process::id());
    let xml = peer.dir.path().join("transient.xml");
    std::fs::write(
        &xml,
        format!(
            "<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='pc'>hvm</type></os><devices>\
             <emulator>/usr/bin/qemu-system-x86_64</emulator><controller type='usb' model='none'/>\
             <memballoon model='none'/></devices></domain>"
        ),
    )
    .unwrap();
    let out = Command::new(SCRIPT)
        .arg("virsh")
        .arg(peer.dir.path())
        .arg("create")
        .arg(&xml)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "virsh create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let qemu = peer.qemu_pid().expect("the transient domain runs");
    let dev = peer.device(&peer.unix_uri(), &name);
    assert_eq!(dev.status(TIMEOUT).await.unwrap(), PowerState::On);
    assert_eq!(dev.off(TIMEOUT).await.unwrap(), PowerState::Off);
    assert!(!alive(qemu), "qemu {qemu} still runs after a confirmed off");
    // Gone: its state is unknown now, which is not "off".
    let (kind, msg) = kind_of(dev.execute(Action::Status, TIMEOUT).await);
    assert_eq!(kind, ErrorKind::Configuration, "{msg}");
    assert!(msg.contains("Domain not found"), "{msg}");
}

#[tokio::test]
async fn status_and_off_over_tcp_on_ipv6() {
    let peer = Peer::start_with(&[("HACTL_LV_LISTEN_ADDR", "::1")]);
    let first = peer.qemu_pid().expect("the peer's domain runs");
    let uri = format!("qemu+tcp://[::1]:{}/system", peer.port);
    let dev = peer.device(&uri, &peer.domain);
    assert_eq!(dev.status(TIMEOUT).await.unwrap(), PowerState::On);
    assert_eq!(dev.off(TIMEOUT).await.unwrap(), PowerState::Off);
    assert!(
        !alive(first),
        "qemu {first} still runs after a confirmed off"
    );
    assert_eq!(peer.virsh_state(), "shut off");
}

/// Run by `the_default_uri_reaches_the_default_socket` inside the peer's
/// mount namespace, where /var/run/libvirt is the peer's: not on its own.
#[tokio::test]
#[ignore = "run inside a peer's mount namespace by the_default_uri_reaches_the_default_socket"]
async fn default_uri_inner() {
    let domain = std::env::var("HACTL_LV_INNER_DOMAIN").expect(
        "run by the_default_uri_reaches_the_default_socket, which sets HACTL_LV_INNER_DOMAIN",
    );
    let dev = LibvirtDevice::new("vm-test", "qemu:///system", &domain, TIMEOUT).unwrap();
    assert_eq!(dev.status(TIMEOUT).await.unwrap(), PowerState::On);
    assert_eq!(dev.off(TIMEOUT).await.unwrap(), PowerState::Off);
    println!("HACTL_LV_INNER_OK");
}

#[tokio::test]
async fn the_default_uri_reaches_the_default_socket() {
    let peer = Peer::start();
    let first = peer.qemu_pid().expect("the peer's domain runs");
    let me = std::env::current_exe().unwrap();
    // Enter only the peer's mount namespace (there /var/run/libvirt holds
    // its sockets) and run the inner test of this same binary.
    let out = Command::new("nsenter")
        .arg("-t")
        .arg(peer.unshare_pid.to_string())
        .arg("-m")
        .arg("--")
        .arg(&me)
        .args(["default_uri_inner", "--exact", "--ignored", "--nocapture"])
        .env("HACTL_LV_INNER_DOMAIN", &peer.domain)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("HACTL_LV_INNER_OK"),
        "{text}"
    );
    assert!(
        !alive(first),
        "qemu {first} still runs after a confirmed off"
    );
    assert_eq!(peer.virsh_state(), "shut off");
}

/// A network namespace joined to the root namespace by a veth pair: the
/// fencing node on one side, the hypervisor's address on the other. Named
/// after this process; deleted when dropped.
struct Netns {
    name: String,
    veth: String,
    host_addr: String,
}

impl Netns {
    fn create() -> Netns {
        let pid = std::process::id();
        let name = format!("hactl-lv-{pid}");
        let veth = format!("hlv{pid}a");
        // A /30 of 10.251.0.0/16 chosen by the PID: unique among this
        // machine's live test processes.
        let (x, y) = ((pid >> 6) & 0xff, (pid & 63) * 4);
        let host_addr = format!("10.251.{x}.{}", y + 1);
        let ns_addr = format!("10.251.{x}.{}", y + 2);
        let ns = Netns {
            name: name.clone(),
            veth: veth.clone(),
            host_addr: host_addr.clone(),
        };
        let peer_end = format!("hlv{pid}b");
        for args in [
            vec!["netns", "add", &name],
            vec![
                "link", "add", &veth, "type", "veth", "peer", "name", &peer_end,
            ],
            vec!["link", "set", &peer_end, "netns", &name],
            vec!["addr", "add", &format!("{host_addr}/30"), "dev", &veth],
            vec!["link", "set", &veth, "up"],
            vec![
                "-n",
                &name,
                "addr",
                "add",
                &format!("{ns_addr}/30"),
                "dev",
                &peer_end,
            ],
            vec!["-n", &name, "link", "set", &peer_end, "up"],
            vec!["-n", &name, "link", "set", "lo", "up"],
        ] {
            let out = Command::new("ip").args(&args).output().unwrap();
            assert!(
                out.status.success(),
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Run by `status_and_off_over_tcp_from_another_network_namespace`
/// inside that namespace: not on its own.
#[tokio::test]
#[ignore = "run inside a network namespace by status_and_off_over_tcp_from_another_network_namespace"]
async fn tcp_from_netns_inner() {
    let uri = std::env::var("HACTL_LV_INNER_URI").expect(
        "run by status_and_off_over_tcp_from_another_network_namespace, which sets HACTL_LV_INNER_URI",
    );
    let domain = std::env::var("HACTL_LV_INNER_DOMAIN").unwrap();
    let dev = LibvirtDevice::new("vm-test", &uri, &domain, TIMEOUT).unwrap();
    assert_eq!(dev.status(TIMEOUT).await.unwrap(), PowerState::On);
    assert_eq!(dev.off(TIMEOUT).await.unwrap(), PowerState::Off);
    println!("HACTL_LV_INNER_OK");
}

#[tokio::test]
async fn status_and_off_over_tcp_from_another_network_namespace() {
    let ns = Netns::create();
    let peer = Peer::start_with(&[("HACTL_LV_LISTEN_ADDR", ns.host_addr.as_str())]);
    let first = peer.qemu_pid().expect("the peer's domain runs");
    let uri = format!("qemu+tcp://{}:{}/system", ns.host_addr, peer.port);
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(std::env::current_exe().unwrap())
        .args([
            "tcp_from_netns_inner",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("HACTL_LV_INNER_URI", &uri)
        .env("HACTL_LV_INNER_DOMAIN", &peer.domain)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("HACTL_LV_INNER_OK"),
        "{text}"
    );
    assert!(
        !alive(first),
        "qemu {first} still runs after a confirmed off"
    );
    assert_eq!(peer.virsh_state(), "shut off");
}

// ------------------------------------------------------------------ errors

#[tokio::test]
async fn an_unknown_domain_is_a_configuration_error_quoting_libvirt() {
    let peer = Peer::start_with(&[("HACTL_LV_STATE", "shutoff")]);
    for domain in ["no-such-vm", "00000000-1111-4222-8333-444444444444"] {
        for uri in [peer.unix_uri(), peer.tcp_uri()] {
            let dev = peer.device(&uri, domain);
            for action in [Action::Status, Action::Off] {
                let (kind, msg) = kind_of(dev.execute(action, TIMEOUT).await);
                assert_eq!(kind, ErrorKind::Configuration, "{msg}");
                let by = if domain.starts_with("0000") {
                    "uuid"
                } else {
                    "name"
                };
                assert!(
                    msg.contains(&format!("libvirt has no domain \"{domain}\""))
                        && msg.contains(&format!("Domain not found: no domain with matching {by}"))
                        && msg.contains("libvirt error 42")
                        && msg.contains("virsh list --all"),
                    "{msg}"
                );
            }
        }
    }
    // The real domain is untouched.
    assert_eq!(peer.virsh_state(), "shut off");
}

#[tokio::test]
async fn a_socket_path_without_a_daemon_is_unreachable_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libvirt-sock");
    let uri = format!("qemu+unix:///system?socket={}", path.display());
    let dev = LibvirtDevice::new("vm-test", &uri, "vm1", TIMEOUT).unwrap();
    let (kind, msg) = kind_of(dev.execute(Action::Off, TIMEOUT).await);
    assert_eq!(kind, ErrorKind::Unreachable, "{msg}");
    assert!(
        msg.contains(&format!("there is no libvirt socket at {}", path.display()))
            && msg.contains("that libvirtd runs"),
        "{msg}"
    );

    // A socket file that nobody accepts on (a daemon that died).
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    drop(listener);
    let (kind, msg) = kind_of(dev.execute(Action::Status, TIMEOUT).await);
    assert_eq!(kind, ErrorKind::Unreachable, "{msg}");
    assert!(msg.contains("refused the connection"), "{msg}");
}

#[tokio::test]
async fn a_tcp_port_with_nothing_listening_is_unreachable() {
    let port = free_tcp_port();
    let uri = format!("qemu+tcp://127.0.0.1:{port}/system");
    let dev = LibvirtDevice::new("vm-test", &uri, "vm1", TIMEOUT).unwrap();
    let (kind, msg) = kind_of(dev.execute(Action::Off, TIMEOUT).await);
    assert_eq!(kind, ErrorKind::Unreachable, "{msg}");
    assert!(
        msg.contains(&format!("127.0.0.1:{port} refused the connection"))
            && msg.contains("listen_tcp = 1"),
        "{msg}"
    );
}

/// A listener that accepts connections and never says a word: a hung
/// libvirtd. Returns its port; the thread lives as long as the test.
fn silent_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for s in listener.incoming() {
            match s {
                Ok(s) => held.push(s),
                Err(_) => break,
            }
        }
    });
    port
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_timeout_within_the_timeout() {
    let port = silent_server();
    let uri = format!("qemu+tcp://127.0.0.1:{port}/system");
    let timeout = Duration::from_millis(800);
    let dev = LibvirtDevice::new("vm-test", &uri, "vm1", timeout).unwrap();
    for action in [Action::Status, Action::Off, Action::Reboot] {
        let t = Instant::now();
        let (kind, msg) = kind_of(dev.execute(action, timeout).await);
        let took = t.elapsed();
        assert_eq!(kind, ErrorKind::Timeout, "{msg}");
        assert!(
            msg.contains("libvirtd did not answer AUTH_LIST within the timeout"),
            "{msg}"
        );
        assert!(
            took >= timeout && took < timeout + DEADLINE_SLACK,
            "{action} returned after {took:?} with a timeout of {timeout:?}"
        );
    }
}

#[tokio::test]
async fn a_server_that_speaks_another_protocol_is_a_protocol_error() {
    // An SSH server's greeting where libvirtd's reply should be: its first
    // four bytes read as a frame length of 1.4 GB.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::Write;
        for mut s in listener.incoming().flatten() {
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
            std::thread::sleep(Duration::from_secs(5));
        }
    });
    let uri = format!("qemu+tcp://127.0.0.1:{port}/system");
    let dev = LibvirtDevice::new("vm-test", &uri, "vm1", TIMEOUT).unwrap();
    let (kind, msg) = kind_of(dev.execute(Action::Off, TIMEOUT).await);
    assert_eq!(kind, ErrorKind::Protocol, "{msg}");
    assert!(
        msg.contains("answering AUTH_LIST")
            && msg.contains("frame of")
            && msg.contains("not another service"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_daemon_that_requires_sasl_is_refused_with_what_to_configure() {
    let peer = Peer::start_with(&[("HACTL_LV_STATE", "shutoff"), ("HACTL_LV_AUTH_TCP", "sasl")]);
    let dev = peer.device(&peer.tcp_uri(), &peer.domain);
    let (kind, msg) = kind_of(dev.execute(Action::Off, TIMEOUT).await);
    assert_eq!(kind, ErrorKind::AuthenticationFailed, "{msg}");
    assert!(
        msg.contains("libvirtd requires SASL authentication")
            && msg.contains("hactl does not support")
            && msg.contains("auth_tcp = \"none\""),
        "{msg}"
    );
    // The unix socket of the same daemon needs none.
    let dev = peer.device(&peer.unix_uri(), &peer.domain);
    assert_eq!(dev.status(TIMEOUT).await.unwrap(), PowerState::Off);
}

#[test]
fn unsupported_uris_are_refused_when_the_device_is_built() {
    for uri in [
        "qemu+tls://hv1/system",
        "qemu+ssh://root@hv1/system",
        "qemu://hv1/system",
    ] {
        let e = LibvirtDevice::new("vm-test", uri, "vm1", TIMEOUT).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Configuration, "{e}");
        assert!(e.to_string().contains("not support"), "{e}");
    }
}

#[tokio::test]
async fn root_passes_a_polkit_guarded_socket_and_a_read_only_socket_cannot_fence() {
    // Debian's stock libvirtd guards its sockets with polkit; root passes
    // without polkit being asked (there is no polkitd on this machine).
    let peer = Peer::start_with(&[
        ("HACTL_LV_STATE", "shutoff"),
        ("HACTL_LV_AUTH_UNIX", "polkit"),
    ]);
    let dev = peer.device(&peer.unix_uri(), &peer.domain);
    assert_eq!(dev.status(TIMEOUT).await.unwrap(), PowerState::Off);

    let ro = format!("qemu+unix:///system?socket={}-ro", peer.socket.display());
    let dev = peer.device(&ro, &peer.domain);
    assert_eq!(dev.status(TIMEOUT).await.unwrap(), PowerState::Off);
    let (kind, msg) = kind_of(dev.execute(Action::On, TIMEOUT).await);
    assert_eq!(kind, ErrorKind::InsufficientPrivilege, "{msg}");
    assert!(
        msg.contains("libvirtd denied DOMAIN_CREATE")
            && msg.contains("read only access")
            && msg.contains("not libvirt-sock-ro"),
        "{msg}"
    );
    assert_eq!(peer.virsh_state(), "shut off");
    assert_eq!(peer.qemu_pid(), None);
}

// ------------------------------------------------------------------ a scripted daemon
//
// What a real libvirtd does not do on demand — keep a destroyed domain
// running, fail to start one — a scripted daemon does: a unit test of the
// device's logic (confirmation, the deadline, reboot's rule), not a proof
// of the protocol, which the tests above give against the real daemon.

#[derive(Clone, Copy)]
struct Script {
    /// The state DOMAIN_GET_STATE reports after DOMAIN_DESTROY.
    after_destroy: i32,
    /// DOMAIN_CREATE fails with this libvirt error code.
    create_fails: Option<i32>,
}

/// Serves `script` on a loopback port; returns the port and a log of the
/// procedures called.
fn scripted_daemon(script: Script) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>) {
    use hactl::fencing::libvirt::wire::{self, Header, MessageType, Status, XdrWriter};
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = log.clone();
    std::thread::spawn(move || {
        let mut state = 1; // running
        for s in listener.incoming() {
            let Ok(mut s) = s else { break };
            loop {
                let mut len = [0u8; 4];
                if s.read_exact(&mut len).is_err() {
                    break;
                }
                let mut rest = vec![0u8; wire::frame_rest_bytes(len).unwrap()];
                s.read_exact(&mut rest).unwrap();
                let (h, _) = wire::decode_header(&rest).unwrap();
                let mut w = XdrWriter::new();
                let mut status = Status::Ok;
                let name = match h.procedure {
                    66 => {
                        w.u32(1).i32(wire::AUTH_NONE);
                        "AUTH_LIST"
                    }
                    1 => "CONNECT_OPEN",
                    2 => "CONNECT_CLOSE",
                    23 => {
                        w.string("vm1").opaque_fixed(&[7; 16]).i32(1);
                        "DOMAIN_LOOKUP_BY_NAME"
                    }
                    212 => {
                        w.i32(state).i32(1);
                        "DOMAIN_GET_STATE"
                    }
                    12 => {
                        state = script.after_destroy;
                        "DOMAIN_DESTROY"
                    }
                    9 => {
                        if let Some(code) = script.create_fails {
                            status = Status::Error;
                            w.i32(code).i32(10);
                            w.opt_string(Some(
                                "internal error: qemu unexpectedly closed the monitor",
                            ));
                        } else {
                            state = 1;
                        }
                        "DOMAIN_CREATE"
                    }
                    other => panic!("the scripted daemon got procedure {other}"),
                };
                seen.lock().unwrap().push(name);
                let reply = Header {
                    kind: MessageType::Reply,
                    status,
                    ..h
                };
                s.write_all(&wire::encode_frame(&reply, &w.into_bytes()))
                    .unwrap();
            }
        }
    });
    (port, log)
}

#[tokio::test]
async fn a_domain_still_running_after_destroy_is_a_timeout_never_a_success() {
    let (port, log) = scripted_daemon(Script {
        after_destroy: 1,
        create_fails: None,
    });
    let uri = format!("qemu+tcp://127.0.0.1:{port}/system");
    let timeout = Duration::from_millis(600);
    let dev = LibvirtDevice::new("vm-test", &uri, "vm1", timeout).unwrap();
    let t = Instant::now();
    let (kind, msg) = kind_of(dev.execute(Action::Off, timeout).await);
    let took = t.elapsed();
    assert_eq!(kind, ErrorKind::Timeout, "{msg}");
    assert!(
        msg.contains("after DOMAIN_DESTROY the domain is still running"),
        "{msg}"
    );
    assert!(took < timeout + DEADLINE_SLACK, "{took:?}");
    let log = log.lock().unwrap();
    assert!(log.contains(&"DOMAIN_DESTROY"), "{log:?}");
    let polls = log.iter().filter(|p| **p == "DOMAIN_GET_STATE").count();
    assert!(polls >= 3, "it polled the state {polls} times: {log:?}");
}

#[tokio::test]
async fn a_reboot_whose_power_on_fails_is_a_fence_that_reports_off() {
    let (port, log) = scripted_daemon(Script {
        after_destroy: 5,
        create_fails: Some(1),
    });
    let uri = format!("qemu+tcp://127.0.0.1:{port}/system");
    let dev = LibvirtDevice::new("vm-test", &uri, "vm1", TIMEOUT).unwrap();
    assert_eq!(dev.reboot(TIMEOUT).await.unwrap(), PowerState::Off);
    assert_eq!(
        *log.lock().unwrap(),
        [
            "AUTH_LIST",
            "CONNECT_OPEN",
            "DOMAIN_LOOKUP_BY_NAME",
            "DOMAIN_GET_STATE",
            "DOMAIN_DESTROY",
            "DOMAIN_GET_STATE",
            "DOMAIN_GET_STATE",
            "DOMAIN_CREATE",
            "CONNECT_CLOSE",
        ]
    );
    // A plain "on" that fails is a failure, quoting libvirt.
    let (kind, msg) = kind_of(dev.execute(Action::On, TIMEOUT).await);
    assert_eq!(kind, ErrorKind::DeviceError, "{msg}");
    assert!(
        msg.contains(
            "DOMAIN_CREATE failed: \"internal error: qemu unexpectedly closed the monitor\""
        ),
        "{msg}"
    );
}

#[tokio::test]
async fn a_test_uri_opens_libvirts_test_driver_in_the_daemon() {
    // The daemon's test driver has a running domain "test"; its state lives
    // as long as some connection to it is open, so each operation (one
    // connection) starts from "running" again.
    let peer = Peer::start_with(&[("HACTL_LV_STATE", "shutoff")]);
    let uri = format!("test:///default?socket={}", peer.socket.display());
    let dev = peer.device(&uri, "test");
    assert_eq!(dev.status(TIMEOUT).await.unwrap(), PowerState::On);
    let o = dev.execute(Action::Off, TIMEOUT).await.unwrap();
    assert_eq!(o.power, PowerState::Off);
    assert!(
        o.stats.state_polls >= 1,
        "off was not confirmed by a state read"
    );
    // The peer's qemu domain is another driver's: untouched.
    assert_eq!(peer.virsh_state(), "shut off");
}
