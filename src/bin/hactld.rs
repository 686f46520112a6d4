//! `hactld`: the cluster daemon, run by systemd (units/hactld.service).

use std::path::PathBuf;

use clap::Parser;
use hactl::config::DEFAULT_CONFIG_PATH;

#[derive(Parser, Debug)]
#[command(
    name = "hactld",
    version,
    about = "The hactl high-availability cluster daemon"
)]
struct Args {
    /// The cluster configuration file.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// This node's name in the configuration (default: found from the host
    /// name, or from the addresses of this host).
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// Where the node keeps its state.
    #[arg(long, value_name = "DIR", default_value = hactl::daemon::STATE_DIR_DEFAULT)]
    state_dir: PathBuf,
    /// Run at normal priority instead of real-time (SCHED_RR). Real-time
    /// keeps a busy machine from delaying totem past its failure detection
    /// timeout (as corosync does); agents always run at normal priority.
    #[arg(long)]
    no_realtime: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    hactl::daemon::init_logging();
    hactl::daemon::run(hactl::daemon::Options {
        config: args.config,
        node: args.node,
        state_dir: args.state_dir,
        realtime: !args.no_realtime,
    })
}
