//! `hactl`, the command-line tool. Subcommands that need no daemon
//! (`config check|show`, `keygen`, `simulate`, `ra`) run here directly;
//! `status`, `quorum` and the verbs that change the cluster (`standby`,
//! `online`, `migrate`, `unmigrate`, `cleanup`, `resource start|stop|restart`,
//! `config apply`, `fence`) ask the
//! local `hactld` over D-Bus (docs/api.md).
//!
//! Exit codes:
//!
//! - 0: done (for the placement verbs and `config apply`: the cluster has
//!   settled, or `--no-wait` and hactld took the change);
//! - 1: the command ran and found a problem (an invalid configuration, a
//!   key that exists), or hactld refused or failed (its message is shown);
//! - 2: bad usage (from clap);
//! - 3: hactld is not running on this node (`status`, `quorum`, the verbs);
//!   for `fence-device`: the device reports the power off (docs/fencing.md);
//! - 4: a placement verb or `config apply` timed out waiting for the
//!   cluster to settle, or `fence` for the fencing's outcome
//!   (`--timeout`); the change stays in force and the message says what is
//!   still moving;
//! - 130: interrupted (Ctrl-C) while waiting; the change stays in force.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{
    self, DEFAULT_AUTHKEY_PATH, DEFAULT_CONFIG_PATH, LoadError, Severity, authkey,
};

mod fence;
mod generate;
mod ra;
mod show;
mod simulate;
mod status;
pub mod verbs;

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
    /// links, quorum, and the controller's view (DC, standby nodes, where
    /// every resource runs, migrations, fail counts, failed actions). Exit
    /// 0 shown, 1 hactld failed to answer, 3 hactld is
    /// not running on this node.
    Status(status::StatusArgs),
    /// Show quorum information (asks the local hactld), in the layout of
    /// corosync-quorumtool -s. Exit 0 shown, 1 hactld failed to answer, 3
    /// hactld is not running on this node.
    Quorum(status::QuorumArgs),
    /// Put a node (default: this node) in standby: its resources move
    /// away; waits until the cluster has settled.
    Standby(verbs::NodeArgs),
    /// Bring a node (default: this node) out of standby; waits until the
    /// cluster has settled.
    Online(verbs::NodeArgs),
    /// Move a resource to NODE, or away from where it runs now; the
    /// preference stays (for --lifetime) until `hactl unmigrate`. Waits
    /// until the cluster has settled.
    #[command(visible_alias = "move")]
    Migrate(verbs::MigrateArgs),
    /// Forget a resource's migrate preference; waits until the cluster has
    /// settled.
    #[command(visible_alias = "unmove")]
    Unmigrate(verbs::UnmigrateArgs),
    /// Forget fail counts and failed operations (of RESOURCE, on --node),
    /// so that the scheduler looks afresh; waits until the cluster has
    /// settled.
    Cleanup(verbs::CleanupArgs),
    /// Stop, start or restart a resource (its target role, as crmsh's
    /// `resource stop|start|restart`); waits until the cluster has settled.
    #[command(subcommand)]
    Resource(verbs::ResourceCommand),
    /// Fence NODE now with its fence levels (asks the local hactld, which
    /// runs the devices; as stonith_admin --fence): waits for the outcome.
    /// Exit 0 fenced, 1 refused (no quorum, this node, fencing off, no
    /// fence levels) or failed, 3 hactld is not running here, 4 no outcome
    /// within --timeout.
    Fence(verbs::FenceArgs),
    /// Shell completions and man pages, for packagers (docs/api.md).
    #[command(subcommand, hide = true)]
    Generate(generate::GenerateCommand),
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
        /// Print the configuration the local hactld runs (asks hactld;
        /// secrets are never shown).
        #[arg(long, conflicts_with_all = ["file", "digest", "show_secrets"])]
        running: bool,
    },
    /// Validate FILE and distribute it to every node as the running
    /// configuration (asks the local hactld; root or group haclient), then
    /// wait until every node runs it and the cluster has settled. The
    /// membership part (nodes, totem, quorum) must stay as it is.
    Apply {
        /// The new configuration.
        file: PathBuf,
        #[command(flatten)]
        wait: verbs::WaitArgs,
    },
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Config(ConfigCommand::Check { file }) => {
            config_check(file.as_deref().unwrap_or(&cli.config))
        }
        Command::Config(ConfigCommand::Show { running: true, .. }) => verbs::config_show_running(),
        Command::Config(ConfigCommand::Show {
            file,
            digest,
            show_secrets,
            running: false,
        }) => config_show(file.as_deref().unwrap_or(&cli.config), digest, show_secrets),
        Command::Config(ConfigCommand::Apply { file, wait }) => verbs::config_apply(&file, &wait),
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
        Command::Standby(args) => verbs::run(verbs::Verb::Standby(&args)),
        Command::Online(args) => verbs::run(verbs::Verb::Online(&args)),
        Command::Migrate(args) => verbs::run(verbs::Verb::Migrate(&args)),
        Command::Unmigrate(args) => verbs::run(verbs::Verb::Unmigrate(&args)),
        Command::Cleanup(args) => verbs::run(verbs::Verb::Cleanup(&args)),
        Command::Resource(cmd) => verbs::resource(&cmd),
        Command::Fence(args) => verbs::fence(&args),
        Command::Generate(cmd) => generate::run(&cmd),
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
