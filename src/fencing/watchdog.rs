//! Watchdog self-fencing: a Linux watchdog device (`/dev/watchdog`,
//! `/dev/watchdogN`: a board's hardware timer, or the kernel's `softdog`)
//! that resets this node unless it is fed in time.
//!
//! Interface, for the cluster to use: [`Watchdog::arm`] opens the device
//! (opening starts the timer), sets its timeout (`WDIOC_SETTIMEOUT`) and
//! reads back the one the driver really uses (`WDIOC_GETTIMEOUT`, drivers
//! round), and identifies it (`WDIOC_GETSUPPORT`, `WDIOC_GETBOOTSTATUS`);
//! [`Watchdog::feed`] restarts the timer (`WDIOC_KEEPALIVE`, or a write
//! for drivers without it); [`Watchdog::disarm`] stops it with the "magic
//! close" (write `V`, then close), for an orderly shutdown.
//!
//! Why this is not a [`crate::fencing::FenceDevice`]: a fence device acts
//! on *another* node and reports a power state; a watchdog acts on its own
//! node only, has no power state to read, and its one fencing action is
//! the absence of an action: **self-fencing is "stop feeding"**. hactld is
//! to feed it only while this node is healthy and in the quorate partition;
//! when it loses quorum, hangs or crashes, the feeding stops and the node
//! resets within the timeout. Peers then count the node as fenced once a
//! safe wait has passed without hearing from it (as pacemaker's
//! `fencing-watchdog-timeout`, which must exceed the watchdog's timeout,
//! commonly twice it). Dropping a [`Watchdog`] without [`Watchdog::disarm`]
//! closes the device *without* the magic character: the kernel logs
//! "watchdog did not stop!" and the timer runs out — a crash of hactld
//! fences its node, which is the point. [`Watchdog::stop_feeding`] says so
//! explicitly.
//!
//! A watchdog is single-open: while hactld holds it, nothing else can
//! (wdmd, sbd and systemd's `RuntimeWatchdogSec=` use the same device;
//! configure one of them only).

use std::fs::File;
use std::io::Write as _;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};

use crate::config::{self, FenceKind};
use crate::fencing::{ErrorKind, FenceError};

/// `struct watchdog_info` of `<linux/watchdog.h>`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct RawInfo {
    options: u32,
    firmware_version: u32,
    identity: [u8; 32],
}

mod ioctl {
    use super::RawInfo;
    // <linux/watchdog.h>: WATCHDOG_IOCTL_BASE 'W'.
    nix::ioctl_read!(get_support, b'W', 0, RawInfo);
    nix::ioctl_read!(get_boot_status, b'W', 2, libc::c_int);
    nix::ioctl_read!(keepalive, b'W', 5, libc::c_int);
    nix::ioctl_readwrite!(set_timeout, b'W', 6, libc::c_int);
    nix::ioctl_read!(get_timeout, b'W', 7, libc::c_int);
    nix::ioctl_read!(get_time_left, b'W', 10, libc::c_int);
    use nix::libc;
}

/// `WDIOF_*` option bits a driver reports.
pub mod options {
    /// The last reboot was caused by this watchdog.
    pub const CARDRESET: u32 = 0x0020;
    /// The timeout can be set.
    pub const SETTIMEOUT: u32 = 0x0080;
    /// It stops only after the magic close character `V`.
    pub const MAGICCLOSE: u32 = 0x0100;
    /// It supports `WDIOC_KEEPALIVE`.
    pub const KEEPALIVEPING: u32 = 0x8000;
}

/// What the driver says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchdogInfo {
    /// e.g. "Software Watchdog", "iTCO_wdt".
    pub identity: String,
    pub firmware_version: u32,
    /// `WDIOF_*` bits, see [`options`].
    pub options: u32,
    /// Whether the last boot was caused by this watchdog (when the driver
    /// can tell: `WDIOC_GETBOOTSTATUS` has [`options::CARDRESET`]).
    pub last_boot_by_watchdog: bool,
}

/// An armed watchdog: it resets this node unless fed within
/// [`Watchdog::timeout_s`]. Dropping it without [`Watchdog::disarm`]
/// leaves the timer running (see the module documentation).
#[derive(Debug)]
pub struct Watchdog {
    id: String,
    path: PathBuf,
    file: File,
    info: WatchdogInfo,
    timeout_s: u32,
}

impl Watchdog {
    /// Arms the watchdog a `[[fence_device]]` of kind "watchdog" names.
    /// Panics on another kind.
    pub fn arm_from_config(dev: &config::FenceDevice) -> Result<Watchdog, FenceError> {
        let FenceKind::Watchdog { device, timeout_s } = &dev.kind else {
            panic!("Watchdog::arm_from_config on a {} device", dev.kind.name());
        };
        Watchdog::arm(&dev.id, device, *timeout_s)
    }

    /// Opens `path` (which starts the timer: from here on the node resets
    /// unless fed), sets the timeout to `timeout_s` and reads back the one
    /// in effect. On any error after the open, the device is disarmed
    /// again before returning.
    pub fn arm(id: &str, path: &Path, timeout_s: u32) -> Result<Watchdog, FenceError> {
        let err = |kind, detail: String, check: &str| FenceError {
            device: id.to_string(),
            target: format!("watchdog {}", path.display()),
            kind,
            detail,
            check: check.to_string(),
        };
        let requested = libc_int(timeout_s).ok_or_else(|| {
            err(
                ErrorKind::Configuration,
                format!("a timeout of {timeout_s} s is out of range"),
                "watchdog_timeout",
            )
        })?;
        // Write-only, close-on-exec (std's default): a fence agent or any
        // other child must not inherit the device.
        let file = File::options().write(true).open(path).map_err(|e| {
            let check = match e.raw_os_error() {
                Some(nix::libc::ENOENT) => {
                    "that a watchdog driver is loaded (a board's, e.g. iTCO_wdt or ipmi_watchdog, or `modprobe softdog`) and the device path"
                }
                Some(nix::libc::EBUSY) => {
                    "what else holds the watchdog (wdmd, sbd, watchdog, systemd's RuntimeWatchdogSec=): only one may"
                }
                Some(nix::libc::EACCES) | Some(nix::libc::EPERM) => "that hactld runs as root",
                _ => "the device path",
            };
            err(
                ErrorKind::Configuration,
                format!("cannot open {}: {e}", path.display()),
                check,
            )
        })?;
        let mut wd = Watchdog {
            id: id.to_string(),
            path: path.to_path_buf(),
            file,
            info: WatchdogInfo {
                identity: String::new(),
                firmware_version: 0,
                options: 0,
                last_boot_by_watchdog: false,
            },
            timeout_s: 0,
        };
        match wd.configure(requested) {
            Ok(()) => Ok(wd),
            Err((kind, detail, check)) => {
                // Do not leave a half-configured timer running behind an error.
                let _ = wd.disarm();
                Err(err(kind, detail, check))
            }
        }
    }

    fn configure(
        &mut self,
        requested: nix::libc::c_int,
    ) -> Result<(), (ErrorKind, String, &'static str)> {
        let fd = self.file.as_raw_fd();
        let mut raw = RawInfo::default();
        // SAFETY: fd is open for the lifetime of self.file; raw is a
        // correctly sized and aligned `struct watchdog_info`.
        unsafe { ioctl::get_support(fd, &mut raw) }.map_err(|e| {
            (
                ErrorKind::Unsupported,
                format!("WDIOC_GETSUPPORT failed: {e}: this is not a watchdog device"),
                "the device path",
            )
        })?;
        let end = raw.identity.iter().position(|&b| b == 0).unwrap_or(32);
        let mut boot: nix::libc::c_int = 0;
        // SAFETY: as above, an int out-parameter.
        let boot_ok = unsafe { ioctl::get_boot_status(fd, &mut boot) }.is_ok();
        self.info = WatchdogInfo {
            identity: String::from_utf8_lossy(&raw.identity[..end]).into_owned(),
            firmware_version: raw.firmware_version,
            options: raw.options,
            last_boot_by_watchdog: boot_ok && (boot as u32) & options::CARDRESET != 0,
        };
        if raw.options & options::SETTIMEOUT == 0 {
            return Err((
                ErrorKind::Unsupported,
                format!(
                    "the driver \"{}\" cannot change its timeout",
                    self.info.identity
                ),
                "the driver's module parameters for its fixed timeout, or another watchdog",
            ));
        }
        let mut t = requested;
        // SAFETY: as above, an int in/out-parameter.
        unsafe { ioctl::set_timeout(fd, &mut t) }.map_err(|e| {
            (
                ErrorKind::Unsupported,
                format!(
                    "the driver \"{}\" refused a timeout of {requested} s: {e}",
                    self.info.identity
                ),
                "watchdog_timeout: a value the hardware supports (often 1 to 255 s)",
            )
        })?;
        let mut actual: nix::libc::c_int = 0;
        // SAFETY: as above.
        unsafe { ioctl::get_timeout(fd, &mut actual) }.map_err(|e| {
            (
                ErrorKind::Unsupported,
                format!("WDIOC_GETTIMEOUT failed: {e}"),
                "the driver",
            )
        })?;
        if actual <= 0 {
            return Err((
                ErrorKind::Protocol,
                format!("the driver reports a timeout of {actual} s"),
                "the driver",
            ));
        }
        if actual != requested {
            tracing::warn!(
                device = %self.id,
                "watchdog {}: asked for a {requested} s timeout, the driver uses {actual} s",
                self.path.display()
            );
        }
        self.timeout_s = actual as u32;
        Ok(())
    }

    /// What the driver says about itself.
    pub fn info(&self) -> &WatchdogInfo {
        &self.info
    }

    /// The timeout in effect (read back from the driver).
    pub fn timeout_s(&self) -> u32 {
        self.timeout_s
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Restarts the timer. A failure means the node will reset at the
    /// timeout: the caller cannot do more than log it.
    pub fn feed(&mut self) -> Result<(), FenceError> {
        let fd = self.file.as_raw_fd();
        let r = if self.info.options & options::KEEPALIVEPING != 0 {
            let mut dummy: nix::libc::c_int = 0;
            // SAFETY: fd is open; an int out-parameter the kernel ignores.
            unsafe { ioctl::keepalive(fd, &mut dummy) }.map(|_| ())
        } else {
            // Any write is a keepalive; not 'V', which would allow release.
            self.file
                .write_all(b"\0")
                .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)))
        };
        r.map_err(|e| FenceError {
            device: self.id.clone(),
            target: format!("watchdog {}", self.path.display()),
            kind: ErrorKind::DeviceError,
            detail: format!(
                "feeding failed: {e}; the node will reset within {} s",
                self.timeout_s
            ),
            check: "the watchdog driver (kernel log)".to_string(),
        })
    }

    /// Seconds until the reset, when the driver can tell (`WDIOC_GETTIMELEFT`).
    pub fn time_left_s(&self) -> Option<u32> {
        let mut left: nix::libc::c_int = 0;
        // SAFETY: fd is open; an int out-parameter.
        unsafe { ioctl::get_time_left(self.file.as_raw_fd(), &mut left) }
            .ok()
            .and_then(|_| u32::try_from(left).ok())
    }

    /// Stops the timer: the magic character `V`, then close. For an
    /// orderly shutdown of hactld only. A driver built with NOWAYOUT cannot
    /// be stopped: it then keeps running, and the caller must keep feeding
    /// or accept the reset.
    pub fn disarm(mut self) -> Result<(), FenceError> {
        let r = self.file.write_all(b"V").and_then(|()| self.file.flush());
        // The close itself happens when self.file drops here.
        r.map_err(|e| FenceError {
            device: self.id.clone(),
            target: format!("watchdog {}", self.path.display()),
            kind: ErrorKind::DeviceError,
            detail: format!(
                "cannot write the magic close character: {e}; the node will reset within {} s",
                self.timeout_s
            ),
            check: "the watchdog driver (kernel log)".to_string(),
        })
    }

    /// Self-fencing: closes the device without the magic character, so the
    /// timer runs out and the node resets within [`Watchdog::timeout_s`]
    /// (the same happens when hactld dies holding it).
    pub fn stop_feeding(self) {
        drop(self);
    }
}

fn libc_int(v: u32) -> Option<nix::libc::c_int> {
    nix::libc::c_int::try_from(v).ok().filter(|&v| v > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_info_struct_has_the_kernel_layout() {
        // struct watchdog_info: u32 options, u32 firmware_version, u8 identity[32].
        assert_eq!(std::mem::size_of::<RawInfo>(), 40);
    }

    #[test]
    fn a_missing_device_is_a_configuration_error_saying_what_to_load() {
        let e = Watchdog::arm("wd", Path::new("/dev/hactl-no-such-watchdog"), 10).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Configuration);
        let m = e.to_string();
        assert!(m.contains("/dev/hactl-no-such-watchdog"), "{m}");
        assert!(m.contains("softdog"), "{m}");
    }

    #[test]
    fn a_file_that_is_not_a_watchdog_is_refused_by_getsupport() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("not-a-watchdog");
        std::fs::write(&p, "").unwrap();
        let e = Watchdog::arm("wd", &p, 10).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
        assert!(e.to_string().contains("not a watchdog device"), "{e}");
    }
}
