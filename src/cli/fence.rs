//! `hactl fence-device list|status|off|on|reboot DEVICE`: one action on one
//! configured fence device, directly from this host, without `hactld`.
//!
//! For testing a device after installing or changing it (does the password
//! work, does the BMC answer, how long does an off take) and for an
//! administrator who must power a node off by hand. It does not ask the
//! cluster, does not record the fencing in the cluster's history and does
//! not apply the device's `delay`.
//!
//! Exit codes (documented in docs/fencing.md):
//! - 0: done; for status, the power is on.
//! - 1: the device failed (the message names the device and what to check).
//! - 2: usage: bad arguments, an unknown device, a configuration file that
//!   cannot be loaded, a device that cannot be driven from here (a watchdog).
//! - 3: the device reports the power off (status; or a reboot whose
//!   power-on failed: the node is fenced and stays off).
//! - 130: interrupted (Ctrl-C); a fence agent it ran is killed with it.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use crate::config::{self, Config, FenceKind, LoadError, Severity};
use crate::fencing::{self, Action, PowerState};

/// Exit code: the device reports the power off.
pub const EXIT_POWER_OFF: u8 = 3;
/// Exit code: usage, unknown device, unusable configuration.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: interrupted (SIGINT), as shells report it (128 + 2).
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Subcommand, Debug)]
pub enum FenceCommand {
    /// List the configured fence devices: kind, target, which nodes use them.
    List,
    /// Read the power state (exit 0 on, 3 off).
    Status(DeviceArgs),
    /// Power the node off; done once the device reports it off.
    Off(DeviceArgs),
    /// Power the node on.
    On(DeviceArgs),
    /// Power off (confirmed), then on.
    Reboot(DeviceArgs),
}

#[derive(Args, Debug)]
pub struct DeviceArgs {
    /// The fence device's id (see `hactl fence-device list`).
    pub device: String,
    /// Limit for this operation in seconds (default: the device's timeout).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
}

pub fn run(config_path: &Path, cmd: &FenceCommand) -> ExitCode {
    let cfg = match load(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match cmd {
        FenceCommand::List => {
            print!("{}", render_list(&cfg));
            ExitCode::SUCCESS
        }
        FenceCommand::Status(a) => act(config_path, &cfg, Action::Status, a),
        FenceCommand::Off(a) => act(config_path, &cfg, Action::Off, a),
        FenceCommand::On(a) => act(config_path, &cfg, Action::On, a),
        FenceCommand::Reboot(a) => act(config_path, &cfg, Action::Reboot, a),
    }
}

fn load(path: &Path) -> Result<Config, ExitCode> {
    match config::load(path) {
        Ok(l) => Ok(l.config),
        Err(LoadError::Invalid(diags)) => {
            for d in diags.iter().filter(|d| d.severity == Severity::Error) {
                eprintln!("{d}");
            }
            eprintln!(
                "hactl fence-device: {} is not valid (see above); check it with `hactl config check`",
                path.display()
            );
            Err(ExitCode::from(EXIT_USAGE))
        }
        Err(e) => {
            eprintln!("hactl fence-device: {e}; give the file with --config PATH");
            Err(ExitCode::from(EXIT_USAGE))
        }
    }
}

/// How a device is reached, from its configuration alone (no secret).
pub fn target_of(kind: &FenceKind) -> String {
    match kind {
        FenceKind::Ipmi {
            host,
            port,
            username,
            cipher_suite,
            ..
        } => {
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.clone()
            };
            format!("{username}@{host}:{port}, cipher suite {cipher_suite}")
        }
        FenceKind::Libvirt { uri, domain } => format!("domain {domain} at {uri}"),
        FenceKind::Agent { agent, params, .. } => fencing::agent::target_of(agent, params)
            .trim_start_matches("agent ")
            .to_string(),
        FenceKind::Watchdog { device, timeout_s } => {
            format!("{}, {timeout_s} s", device.display())
        }
    }
}

/// Which nodes name `device` in their fence_levels: "alpha (level 1)".
fn users_of(cfg: &Config, device: &str) -> String {
    let mut users = Vec::new();
    for n in &cfg.nodes {
        for (i, level) in n.fence_levels.iter().enumerate() {
            if level.iter().any(|d| d == device) {
                users.push(format!("{} (level {})", n.name, i + 1));
            }
        }
    }
    if users.is_empty() {
        "-".to_string()
    } else {
        users.join(", ")
    }
}

fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}ms", ms)
    }
}

/// The `list` table.
pub fn render_list(cfg: &Config) -> String {
    if cfg.fence_devices.is_empty() {
        return "no fence devices are configured\n".to_string();
    }
    let rows: Vec<[String; 6]> = cfg
        .fence_devices
        .iter()
        .map(|d| {
            [
                d.id.clone(),
                d.kind.name().to_string(),
                target_of(&d.kind),
                seconds(d.timeout_ms),
                seconds(d.delay_ms),
                users_of(cfg, &d.id),
            ]
        })
        .collect();
    let head = ["DEVICE", "KIND", "TARGET", "TIMEOUT", "DELAY", "USED BY"];
    let mut width = head.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 6]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ", w = width[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(head);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]);
    }
    out
}

fn act(config_path: &Path, cfg: &Config, action: Action, args: &DeviceArgs) -> ExitCode {
    let Some(dev) = cfg.fence_devices.iter().find(|d| d.id == args.device) else {
        let known: Vec<&str> = cfg.fence_devices.iter().map(|d| d.id.as_str()).collect();
        let known = if known.is_empty() {
            "it configures no fence devices".to_string()
        } else {
            format!("the configured ones are: {}", known.join(", "))
        };
        eprintln!(
            "hactl fence-device: no fence device \"{}\" in {}; {known}",
            args.device,
            config_path.display()
        );
        return ExitCode::from(EXIT_USAGE);
    };
    if let FenceKind::Watchdog { device, .. } = &dev.kind {
        eprintln!(
            "hactl fence-device: \"{}\" is a watchdog ({}): it fences only the node it runs on, when hactld stops feeding it; it has no power state to read and cannot be driven from here (opening it would arm it)",
            dev.id,
            device.display()
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let timeout = match args.timeout {
        None => Duration::from_millis(dev.timeout_ms),
        Some(s) if s.is_finite() && s > 0.0 && s <= 3600.0 => Duration::from_secs_f64(s),
        Some(s) => {
            eprintln!(
                "hactl fence-device: --timeout {s}: give a number of seconds above 0 and at most 3600"
            );
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let device = match fencing::device_from_config(dev) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("hactl fence-device: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hactl fence-device: cannot start the I/O runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    // On Ctrl-C, drop the operation: that kills a fence agent's process
    // group, which sits outside the terminal's foreground group and would
    // not get the SIGINT itself.
    let result = runtime.block_on(async {
        tokio::select! {
            r = device.run(action, timeout) => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    let took = started.elapsed().as_secs_f64();
    let Some(result) = result else {
        eprintln!(
            "hactl fence-device: {action} of \"{}\" interrupted after {took:.2} s; the device may have acted already: check with `hactl fence-device status {}`",
            dev.id, dev.id
        );
        return ExitCode::from(EXIT_INTERRUPTED);
    };
    match result {
        Ok(power) => {
            let what = match (action, power) {
                (Action::Off, PowerState::Off) => "power off, confirmed by the device".to_string(),
                (Action::Reboot, PowerState::Off) => {
                    "power off: fenced, but it did not come back on".to_string()
                }
                (Action::Reboot, PowerState::On) => "power cycled: off, then on".to_string(),
                (_, p) => format!("power {p}"),
            };
            println!("{}: {action}: {what} ({took:.2} s)", dev.id);
            match power {
                PowerState::Off if matches!(action, Action::Status | Action::Reboot) => {
                    ExitCode::from(EXIT_POWER_OFF)
                }
                _ => ExitCode::SUCCESS,
            }
        }
        Err(e) => {
            eprintln!("hactl fence-device: {action} failed after {took:.2} s: {e}");
            ExitCode::FAILURE
        }
    }
}
