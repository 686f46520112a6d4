//! Fence devices: power a node off (or on, or reboot it) through a device
//! that does not depend on the node itself.
//!
//! One interface for every kind of device: [`FenceDevice`], with the
//! operations off, on, reboot and status, each bounded by a timeout and
//! returning the chassis' [`PowerState`] or a [`FenceError`] that names the
//! device, what went wrong ([`ErrorKind`]) and what to check.
//!
//! Semantics every device keeps:
//! - `off` succeeds only once the device *reports* the power off (it polls
//!   the status after the power-down command, within the timeout): an
//!   acknowledged command is not a fence.
//! - `reboot` succeeds when its power-off was confirmed. If powering on
//!   again then fails, it still succeeds, with [`PowerState::Off`]: the node
//!   is fenced, it just did not come back (as pacemaker counts a reboot).
//! - A timeout is a failure, never a success.
//!
//! Who fences whom, and when, is the cluster's decision (later work); this
//! module only drives devices. Kinds: [`ipmi`] (IPMI over LAN, RMCP+, native),
//! [`libvirt`] (a domain on a hypervisor, libvirt's RPC protocol, native),
//! [`agent`] (external `fence_*` programs of the fence-agents family).
//! [`watchdog`] is not a [`FenceDevice`]: it fences the local node itself
//! when hactl stops feeding it (see its module documentation).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::config::{self, FenceKind, Secret};

pub mod agent;
pub mod ipmi;
pub mod libvirt;
pub mod watchdog;

/// The power state a device reports for its node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PowerState {
    On,
    Off,
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PowerState::On => "on",
            PowerState::Off => "off",
        })
    }
}

/// The operations of the fence device interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Off,
    On,
    Reboot,
    Status,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Off => "off",
            Action::On => "on",
            Action::Reboot => "reboot",
            Action::Status => "status",
        })
    }
}

/// What kind of failure, for programs; [`FenceError`]'s message is for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The device's address cannot be reached: the name does not resolve,
    /// or there is no route to it.
    Unreachable,
    /// No (complete) answer within the timeout, or the power did not reach
    /// the requested state within it.
    Timeout,
    /// The device refused the credentials: unknown user, wrong password,
    /// wrong or missing BMC key. Also a device that could not prove it knows
    /// the password (an impostor looks the same).
    AuthenticationFailed,
    /// Authenticated, but the account or channel may not do this.
    InsufficientPrivilege,
    /// hactl refuses the configured cipher suite as insecure (checked before
    /// any datagram is sent).
    RefusedCipherSuite,
    /// The device lacks what is asked for (a cipher suite, IPMI v2.0).
    Unsupported,
    /// The device answered something hactl cannot accept (malformed,
    /// inconsistent, an algorithm downgrade).
    Protocol,
    /// The device understood and refused or failed the command.
    DeviceError,
    /// The local configuration cannot be used as is (a password file that
    /// cannot be read, a name that is too long, a kind not implemented yet).
    Configuration,
}

impl ErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::AuthenticationFailed => "authentication failed",
            ErrorKind::InsufficientPrivilege => "insufficient privilege",
            ErrorKind::RefusedCipherSuite => "cipher suite refused",
            ErrorKind::Unsupported => "not supported by the device",
            ErrorKind::Protocol => "protocol error",
            ErrorKind::DeviceError => "device error",
            ErrorKind::Configuration => "configuration error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed fence operation. Its message names the device, what went wrong
/// and what to check, for example:
///
/// `fence device "bmc-beta" (ipmi admin@10.0.0.12:623, cipher suite 17):
/// authentication failed: the BMC's RAKP message 2 key exchange code does
/// not match the password of user "admin": wrong password (or a device that
/// is not this BMC); check the password (password_file or password) of this
/// user on the BMC`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceError {
    /// The device's configured id.
    pub device: String,
    /// How the device is reached, e.g. `ipmi admin@10.0.0.12:623, cipher suite 17`.
    pub target: String,
    pub kind: ErrorKind,
    /// What happened, specifically.
    pub detail: String,
    /// What to check or change.
    pub check: String,
}

impl fmt::Display for FenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fence device \"{}\" ({}): {}: {}; check {}",
            self.device, self.target, self.kind, self.detail, self.check
        )
    }
}

impl std::error::Error for FenceError {}

/// The future every operation returns: boxed, so that devices of different
/// kinds can sit behind one `Box<dyn FenceDevice>`.
pub type FenceFuture<'a> =
    Pin<Box<dyn Future<Output = Result<PowerState, FenceError>> + Send + 'a>>;

/// A fence device. Each operation ends within its timeout, with the power
/// state the device reported last or an error.
pub trait FenceDevice: Send + Sync {
    /// The configured id.
    fn id(&self) -> &str;

    /// The configured limit for one operation (`timeout` of the device).
    fn timeout(&self) -> Duration;

    /// Runs one operation, bounded by `timeout`.
    fn run(&self, action: Action, timeout: Duration) -> FenceFuture<'_>;

    /// Powers the node off; succeeds once the device reports it off.
    fn off(&self, timeout: Duration) -> FenceFuture<'_> {
        self.run(Action::Off, timeout)
    }

    /// Powers the node on; succeeds once the device reports it on.
    fn on(&self, timeout: Duration) -> FenceFuture<'_> {
        self.run(Action::On, timeout)
    }

    /// Off (confirmed), then on. `Ok(Off)` when it came back off only.
    fn reboot(&self, timeout: Duration) -> FenceFuture<'_> {
        self.run(Action::Reboot, timeout)
    }

    /// Reads the power state.
    fn status(&self, timeout: Duration) -> FenceFuture<'_> {
        self.run(Action::Status, timeout)
    }
}

/// Builds the device a `[[fence_device]]` describes.
pub fn device_from_config(dev: &config::FenceDevice) -> Result<Box<dyn FenceDevice>, FenceError> {
    match &dev.kind {
        FenceKind::Ipmi { .. } => Ok(Box::new(ipmi::IpmiDevice::from_config(dev)?)),
        FenceKind::Agent { .. } => Ok(Box::new(agent::AgentDevice::from_config(dev)?)),
        FenceKind::Libvirt { .. } => Ok(Box::new(libvirt::LibvirtDevice::from_config(dev)?)),
        other => Err(FenceError {
            device: dev.id.clone(),
            target: other.name().to_string(),
            kind: ErrorKind::Configuration,
            detail: format!(
                "fence devices of kind \"{}\" are not implemented yet",
                other.name()
            ),
            check: "the device's kind (\"ipmi\", \"libvirt\" and \"agent\" work in this version; a watchdog guards its own node and is armed by hactld, see fencing::watchdog)".to_string(),
        }),
    }
}

/// Reads a secret when it is needed. A file is read at every use, so that a
/// changed password takes effect without a restart; one trailing newline
/// (what `echo` and editors leave) is not part of it.
pub fn read_secret(secret: &Secret) -> Result<ipmi::crypto::SecretBytes, String> {
    match secret {
        Secret::Inline(s) => Ok(ipmi::crypto::SecretBytes::new(s.as_bytes().to_vec())),
        Secret::File(path) => {
            let mut bytes = std::fs::read(path)
                .map_err(|e| format!("cannot read password file {}: {e}", path.display()))?;
            if bytes.ends_with(b"\n") {
                bytes.pop();
                if bytes.ends_with(b"\r") {
                    bytes.pop();
                }
            }
            Ok(ipmi::crypto::SecretBytes::new(bytes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_is_read_at_use_without_its_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\n").unwrap();
        let s = Secret::File(p.clone());
        assert_eq!(read_secret(&s).unwrap().expose(), b"s3cret");
        std::fs::write(&p, "other\r\n").unwrap();
        assert_eq!(read_secret(&s).unwrap().expose(), b"other");
        std::fs::write(&p, "two\n\n").unwrap();
        assert_eq!(read_secret(&s).unwrap().expose(), b"two\n");
        std::fs::remove_file(&p).unwrap();
        let e = read_secret(&s).unwrap_err();
        assert!(e.contains(&p.display().to_string()), "{e}");
        assert_eq!(
            read_secret(&Secret::Inline("x y".into())).unwrap().expose(),
            b"x y"
        );
    }

    #[test]
    fn the_error_message_names_device_kind_detail_and_check() {
        let e = FenceError {
            device: "bmc-a".into(),
            target: "ipmi admin@10.0.0.1:623, cipher suite 17".into(),
            kind: ErrorKind::Timeout,
            detail: "no answer".into(),
            check: "the cable".into(),
        };
        assert_eq!(
            e.to_string(),
            "fence device \"bmc-a\" (ipmi admin@10.0.0.1:623, cipher suite 17): timeout: no answer; check the cable"
        );
    }
}
