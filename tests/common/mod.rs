//! Helpers several test binaries share: process liveness, installing a test
//! peer once per binary, running `hactl fence-device` as a user does, and
//! the configuration of a private bus that behaves like the system bus.
//! Each test file that needs them declares `mod common;` (the peer modules
//! tests/fence_peer and tests/libvirt_peer use them through `crate::common`).
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Whether `pid` is a live process: a zombie (or a dead one, X) has exited
/// and runs nothing.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(s) => {
            // The state follows the command name in parentheses.
            let state = s.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
    }
}

/// Whether `pid` is gone within `limit` (a SIGKILLed process needs a
/// moment to be scheduled and exit).
pub fn gone_within(pid: u32, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while alive(pid) {
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Runs `SCRIPT install` once per test binary (`cell` remembers the
/// outcome); panics, never skips, when the peer cannot be had, naming
/// `what` it is.
pub fn install_once(cell: &'static OnceLock<Result<(), String>>, script: &str, what: &str) {
    let r = cell.get_or_init(|| {
        let out = Command::new(script)
            .arg("install")
            .output()
            .map_err(|e| format!("{script}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    if let Err(e) = r {
        panic!("the {what} is not available and could not be installed: {e}");
    }
}

/// What a run of the hactl binary left: exit code and output.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// `hactl --config CONFIG fence-device ARGS...`.
pub fn hactl_fence_device(config: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_hactl"))
        .arg("--config")
        .arg(config)
        .arg("fence-device")
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code().expect("hactl exited by itself"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The configuration of a dbus-daemon with a system bus's defaults: nobody
/// owns names or calls methods unless a policy allows it; replies and
/// signals flow. `extra` goes into the default policy, `include` after it
/// (e.g. `<include>conf/dbus/org.hactl.Cluster1.conf</include>`).
pub fn system_bus_config(socket: &Path, extra: &str, include: &str) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    {extra}
  </policy>
  {include}
</busconfig>
"#,
        socket = socket.display(),
    )
}

/// A private dbus-daemon configured like a system bus (tests use it through
/// DBUS_SYSTEM_BUS_ADDRESS). Killed on drop.
pub struct Bus {
    child: std::process::Child,
    /// For DBUS_SYSTEM_BUS_ADDRESS.
    pub address: String,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A [`Bus`] in a directory of its own. `with_policy`: the project's
/// policy (conf/dbus/org.hactl.Cluster1.conf) included unchanged; else
/// anyone may own names and call methods (only hactld's own caller check
/// stands).
pub fn start_bus(with_policy: bool) -> Bus {
    let dir = tempfile::tempdir().unwrap();
    let mut bus = start_bus_in(dir.path(), with_policy);
    bus._dir = Some(dir);
    bus
}

/// A [`Bus`] whose socket is DIR/bus (DIR outlives it).
pub fn start_bus_in(dir: &Path, with_policy: bool) -> Bus {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    // Unprivileged clients must reach the socket.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = dir.join("bus");
    let _ = std::fs::remove_file(&socket);
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/dbus/org.hactl.Cluster1.conf");
    let (include, open) = if with_policy {
        (format!("<include>{}</include>", policy.display()), "")
    } else {
        (
            String::new(),
            r#"<allow own="*"/><allow send_type="method_call"/>"#,
        )
    };
    let config_path = dir.join("bus.conf");
    std::fs::write(&config_path, system_bus_config(&socket, open, &include)).unwrap();
    let child = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", config_path.display()))
        .args(["--nofork", "--nopidfile"])
        .spawn()
        .expect("dbus-daemon (package dbus; scripts/setup.sh installs it)");
    // Ready once it accepts a connection: the socket file appears at
    // bind(), before listen(), and a client that connects in between is
    // refused (seen under load).
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(
            Instant::now() < deadline,
            "dbus-daemon did not accept connections on {} within 10 s",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Bus {
        child,
        address: format!("unix:path={}", socket.display()),
        _dir: None,
    }
}
