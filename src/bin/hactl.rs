//! `hactl`: the administration tool. See `hactl --help`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    hactl::cli::run(hactl::cli::Cli::parse())
}
