//! Shared by the fence-agent and `hactl fence-device` tests: a real BMC
//! (OpenIPMI's ipmi_sim through `scripts/ipmi-peer.sh`, one per test on its
//! own loopback port) and fake fence agents written as shell scripts.
//! Needs `mod common;` in the test file that includes it.
#![allow(dead_code)]

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/ipmi-peer.sh");
/// Attempts to start a simulator on a free port (another process may take
/// the port between our probe and ipmi_sim's bind).
const PEER_START_ATTEMPTS: u32 = 5;

fn install_peer_once() {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    crate::common::install_once(&INSTALLED, SCRIPT, "IPMI test peer (ipmi_sim, ipmitool)");
}

/// The path of Debian's fence_ipmilan; panics (never skips) without it.
pub fn fence_ipmilan() -> PathBuf {
    for d in ["/usr/sbin", "/usr/bin", "/sbin"] {
        let p = Path::new(d).join("fence_ipmilan");
        if p.exists() {
            return p;
        }
    }
    panic!(
        "fence_ipmilan is not installed: these tests run the real fence agent; run scripts/setup.sh (it installs the Debian package fence-agents)"
    );
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One ipmi_sim with its chassis, stopped when dropped.
pub struct Peer {
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl Peer {
    pub fn start(power_on: bool) -> Peer {
        Peer::start_with(&[("HACTL_IPMI_POWER", if power_on { "on" } else { "off" })])
    }

    /// A simulator started with these environment variables for
    /// scripts/ipmi-peer.sh (HACTL_IPMI_POWER, HACTL_IPMI_BMC_KEY, ...).
    pub fn start_with(env: &[(&str, &str)]) -> Peer {
        install_peer_once();
        let dir = tempfile::tempdir().unwrap();
        let mut last = String::new();
        for _ in 0..PEER_START_ATTEMPTS {
            let port = free_udp_port();
            let out = Command::new(SCRIPT)
                .arg("start")
                .arg(dir.path())
                .arg(port.to_string())
                .envs(env.iter().copied())
                .output()
                .unwrap();
            if out.status.success() {
                return Peer { dir, port };
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
        }
        panic!("cannot start ipmi_sim: {last}");
    }

    /// The chassis power as the simulator tracks it: "on" or "off".
    pub fn power(&self) -> String {
        let out = Command::new(SCRIPT)
            .arg("power")
            .arg(self.dir.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Every call that reached the chassis ("get power", "set power 0", …).
    pub fn chassis_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("chassis.log"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// A root-only file holding `password`, for password_file.
    pub fn password_file(&self, name: &str, password: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, format!("{password}\n")).unwrap();
        p
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

/// Writes an executable shell script `dir/name` (a fake fence agent).
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}
