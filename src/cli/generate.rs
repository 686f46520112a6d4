//! `hactl generate completions SHELL` and `hactl generate man DIR`: shell
//! completions (clap_complete) and man pages (clap_mangen) from the clap
//! definition itself, so they never drift from `hactl --help`. Hidden from
//! `--help`; packagers run them at build time (docs/api.md, "Completions and
//! man pages").

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Subcommand};

use super::Cli;

#[derive(Subcommand, Debug)]
pub enum GenerateCommand {
    /// Print the completion script for SHELL on stdout.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write hactl.1 and one page per subcommand (hactl-status.1, …) into
    /// DIR.
    Man {
        /// The directory (created if missing).
        dir: PathBuf,
    },
}

pub fn run(cmd: &GenerateCommand) -> ExitCode {
    match cmd {
        GenerateCommand::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "hactl", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        GenerateCommand::Man { dir } => {
            let written = std::fs::create_dir_all(dir)
                .and_then(|()| clap_mangen::generate_to(Cli::command(), dir));
            match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!(
                        "hactl: cannot write the man pages into {}: {e}",
                        dir.display()
                    );
                    ExitCode::FAILURE
                }
            }
        }
    }
}
