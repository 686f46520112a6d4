//! One IPMI fence operation from the command line, through hactl's native
//! RMCP+ client (until `hactl fence-device` exists; used by
//! vm-tests/fencing/ipmi-vm.sh).
//!
//!     ipmi_fence HOST PORT USER PASSWORD_FILE SUITE off|on|reboot|status [TIMEOUT_MS]
//!
//! Prints the power state the BMC reported ("on" / "off") and how long the
//! operation took. Exit codes follow the fence-agent convention: 0 success
//! (for status: on), 2 status off, 1 failure (the error on stderr).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use hactl::config::Secret;
use hactl::fencing::ipmi::{IpmiDevice, IpmiSettings, Privilege};
use hactl::fencing::{Action, FenceDevice, PowerState};

/// Default limit for one operation, as the configuration's default `timeout`.
const TIMEOUT_MS_DEFAULT: u64 = 60_000;
const USAGE: &str =
    "usage: ipmi_fence HOST PORT USER PASSWORD_FILE SUITE off|on|reboot|status [TIMEOUT_MS]";

/// The i-th argument as a number, or exit with the usage.
fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> T {
    args[i].parse().unwrap_or_else(|_| {
        eprintln!("{what}: not a valid number: {}\n{USAGE}", args[i]);
        std::process::exit(1)
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 6 || args.len() > 7 {
        eprintln!("{USAGE}");
        return ExitCode::from(1);
    }
    let port: u16 = arg(&args, 1, "PORT");
    let suite: u8 = arg(&args, 4, "SUITE");
    let action = match args[5].as_str() {
        "off" => Action::Off,
        "on" => Action::On,
        "reboot" => Action::Reboot,
        "status" => Action::Status,
        other => {
            eprintln!("unknown action {other}\n{USAGE}");
            return ExitCode::from(1);
        }
    };
    let timeout = Duration::from_millis(if args.len() == 7 {
        arg(&args, 6, "TIMEOUT_MS")
    } else {
        TIMEOUT_MS_DEFAULT
    });
    let settings = IpmiSettings {
        host: args[0].clone(),
        port,
        username: args[2].clone(),
        password: Secret::File(PathBuf::from(&args[3])),
        cipher_suite: suite,
        privilege: Privilege::Operator,
        bmc_key: None,
    };
    let device = match IpmiDevice::new("cli", settings, timeout) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let t = Instant::now();
    match runtime.block_on(device.run(action, timeout)) {
        Ok(power) => {
            println!("{power} {:.1} ms", t.elapsed().as_secs_f64() * 1_000.0);
            match (action, power) {
                (Action::Status, PowerState::Off) => ExitCode::from(2),
                _ => ExitCode::SUCCESS,
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
