//! `hactl`, the command-line tool. Subcommands that need no daemon
//! (`config check|show`, `keygen`, `simulate`, `ra`) run here directly;
//! `status` and `quorum` ask the local `hactld` over D-Bus (docs/api.md);
//! the mutating verbs come with the controller.
//!
//! Exit codes: 0 success; 1 the command ran and found a problem (an invalid
//! configuration, a key that exists); 2 bad usage (from clap).
//! `fence-device` adds 3 (the device reports the power off); see
//! docs/fencing.md. `status` and `quorum` add 3: hactld is not running on
//! this node.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{
    self, DEFAULT_AUTHKEY_PATH, DEFAULT_CONFIG_PATH, LoadError, Severity, authkey,
};

mod fence;
mod ra;
mod simulate;
mod status;

#[derive(Parser, Debug)]
#[command(
    name = "hactl",
    version,
    about = "Administer an hactl high-availability cluster"
)]
pub struct Cli {
    /// The cluster configuration file.
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check or print the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Create the shared cluster key (copy it to every node, mode 0400).
    Keygen {
        /// Where to write the key.
        #[arg(long, short, value_name = "PATH", default_value = DEFAULT_AUTHKEY_PATH)]
        output: PathBuf,
        /// Replace an existing key.
        #[arg(long)]
        force: bool,
        /// Key size in bytes (32 to 4096).
        #[arg(long, default_value_t = authkey::KEY_BYTES_DEFAULT as u16, value_parser = clap::value_parser!(u16).range(authkey::KEY_BYTES_MIN as i64..=authkey::KEY_BYTES_MAX as i64))]
        bytes: u16,
    },
    /// Show what the scheduler would do, for --config (with the cluster
    /// state given by flags) or for a Pacemaker CIB (--cib).
    Simulate(simulate::SimulateArgs),
    /// Resource agents on this machine: classes, lists, descriptions.
    #[command(subcommand)]
    Ra(ra::RaCommand),
    /// Run one action on one configured fence device, directly (no
    /// daemon): list, status, off, on, reboot. Exit 0 done / on, 1 the
    /// device failed, 2 usage or unknown device, 3 power off.
    #[command(subcommand, name = "fence-device")]
    FenceDevice(fence::FenceCommand),
    /// Show this node's view of the cluster (asks the local hactld): the
    /// ring's members (online), configured nodes not in it (offline),
    /// links, quorum. Exit 0 shown, 1 hactld failed to answer, 3 hactld is
    /// not running on this node.
    Status(status::StatusArgs),
    /// Show quorum information (asks the local hactld), in the layout of
    /// corosync-quorumtool -s. Exit 0 shown, 1 hactld failed to answer, 3
    /// hactld is not running on this node.
    Quorum(status::QuorumArgs),
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate a configuration file and list every problem (exit 1 if any error).
    Check {
        /// The file to check (default: --config).
        file: Option<PathBuf>,
    },
    /// Print the configuration in canonical form, with every default filled in.
    Show {
        /// The file to show (default: --config).
        file: Option<PathBuf>,
        /// Print only the membership digest nodes compare when they join.
        #[arg(long)]
        digest: bool,
        /// Include inline passwords (hidden by default).
        #[arg(long)]
        show_secrets: bool,
    },
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Config(ConfigCommand::Check { file }) => {
            config_check(file.as_deref().unwrap_or(&cli.config))
        }
        Command::Config(ConfigCommand::Show {
            file,
            digest,
            show_secrets,
        }) => config_show(file.as_deref().unwrap_or(&cli.config), digest, show_secrets),
        Command::Keygen {
            output,
            force,
            bytes,
        } => keygen(&output, usize::from(bytes), force),
        Command::Simulate(args) => simulate::run(&cli.config, &args),
        Command::Ra(cmd) => ra::run(&cmd),
        Command::FenceDevice(cmd) => fence::run(&cli.config, &cmd),
        Command::Status(args) => status::status(&args),
        Command::Quorum(args) => status::quorum(&args),
    }
}

fn config_check(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                println!("{w}");
            }
            let c = &loaded.config;
            println!(
                "{}: OK: cluster {}, {} nodes, {} resources, {} constraints, {} fence devices, {} warning(s)",
                path.display(),
                c.cluster.name,
                c.nodes.len(),
                c.resources.len(),
                c.locations.len() + c.colocations.len() + c.orders.len(),
                c.fence_devices.len(),
                loaded.warnings.len()
            );
            println!("membership digest {}", config::membership_digest(c));
            if !c.totem.insecure_no_crypto
                && let Err(e) = authkey::load(&c.totem.authkey)
            {
                let fix = match e {
                    authkey::KeyError::Io(_, ref io)
                        if io.kind() == std::io::ErrorKind::NotFound =>
                    {
                        "\n    create it once with `hactl keygen`, then copy it to every node"
                    }
                    _ => "",
                };
                println!("note: hactld will refuse to start on this host: {e}{fix}");
            }
            for w in crate::agents::systemd::boot_enabled_warnings(c) {
                println!("{w}");
            }
            ExitCode::SUCCESS
        }
        Err(LoadError::Invalid(diags)) => {
            for d in &diags {
                println!("{d}");
            }
            let errors = diags
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            println!(
                "{}: {errors} error(s), {} warning(s)",
                path.display(),
                diags.len() - errors
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("hactl: {e}");
            ExitCode::FAILURE
        }
    }
}

fn config_show(path: &Path, digest: bool, show_secrets: bool) -> ExitCode {
    match config::load(path) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("{w}");
            }
            if digest {
                println!("{}", config::membership_digest(&loaded.config));
            } else if show_secrets {
                print!("{}", config::canonical(&loaded.config));
            } else {
                print!("{}", config::canonical_redacted(&loaded.config));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn keygen(path: &Path, bytes: usize, force: bool) -> ExitCode {
    match authkey::generate(path, bytes, force) {
        Ok(()) => {
            println!(
                "wrote a {}-bit key to {} (mode 0400); copy it to every node, keeping owner root and mode 0400",
                bytes * 8,
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hactl keygen: {e}");
            ExitCode::FAILURE
        }
    }
}
