//! Shared by the libvirt fence device and `hactl fence-device` tests: a
//! private libvirtd with one TCG domain per test (`scripts/libvirt-peer.sh`,
//! in its own mount and PID namespaces, so tests run in parallel), reachable
//! over its unix socket and over TCP on a free loopback port; virsh and the
//! qemu process are the cross-checks. A test that cannot get its peer
//! fails, saying why. Needs `mod common;` in the test file that includes it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use hactl::fencing::libvirt::LibvirtDevice;

pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/libvirt-peer.sh");
/// Generous: destroy takes ~0.2 s and start ~0.3–1 s under TCG at nice 19 on
/// a busy two-core machine.
pub const TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts to start a peer on a free port (another process may take the
/// port between our probe and libvirtd's bind).
const PEER_START_ATTEMPTS: u32 = 3;

fn install_peer_once() {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    crate::common::install_once(
        &INSTALLED,
        SCRIPT,
        "libvirt test peer (libvirtd, virsh, qemu)",
    );
}

pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One private libvirtd with one domain, stopped when dropped.
pub struct Peer {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub domain: String,
    pub uuid: String,
    pub port: u16,
    /// A process in the peer's mount namespace (for nsenter -m).
    pub unshare_pid: u32,
}

impl Peer {
    pub fn start() -> Peer {
        Peer::start_with(&[])
    }

    pub fn start_with(env: &[(&str, &str)]) -> Peer {
        install_peer_once();
        let dir = tempfile::Builder::new()
            .prefix("hactl-lvpeer.")
            .tempdir()
            .unwrap();
        let mut last = String::new();
        for _ in 0..PEER_START_ATTEMPTS {
            let port = free_tcp_port();
            let out = Command::new(SCRIPT)
                .arg("start")
                .arg(dir.path())
                .arg(port.to_string())
                .envs(env.iter().copied())
                .output()
                .unwrap();
            if out.status.success() {
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                let get = |k: &str| {
                    text.lines()
                        .find_map(|l| l.strip_prefix(&format!("{k}=")))
                        .unwrap_or_else(|| panic!("libvirt-peer.sh start printed no {k}=: {text}"))
                        .to_string()
                };
                return Peer {
                    socket: PathBuf::from(get("socket")),
                    domain: get("domain"),
                    uuid: get("uuid"),
                    port,
                    unshare_pid: get("unshare_pid").parse().unwrap(),
                    dir,
                };
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
        }
        panic!("cannot start the libvirt peer: {last}");
    }

    pub fn unix_uri(&self) -> String {
        format!("qemu+unix:///system?socket={}", self.socket.display())
    }

    pub fn tcp_uri(&self) -> String {
        format!("qemu+tcp://127.0.0.1:{}/system", self.port)
    }

    pub fn device(&self, uri: &str, domain: &str) -> LibvirtDevice {
        LibvirtDevice::new("vm-test", uri, domain, TIMEOUT).unwrap()
    }

    /// The PID of the domain's qemu while it lives.
    pub fn qemu_pid(&self) -> Option<u32> {
        let out = Command::new(SCRIPT)
            .arg("qemu-pid")
            .arg(self.dir.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    }

    /// virsh's view of the domain's state (`running`, `shut off`).
    pub fn virsh_state(&self) -> String {
        let out = Command::new(SCRIPT)
            .arg("virsh")
            .arg(self.dir.path())
            .args(["domstate", &self.domain])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "virsh domstate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = Command::new(SCRIPT)
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}
