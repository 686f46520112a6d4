//! `hactl`: the administration tool. See `hactl --help`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Die quietly on a closed pipe (`hactl config show | head`), like other
    // command-line tools, instead of panicking in println!.
    // SAFETY: called first thing in main, before any other thread exists.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        );
    }
    hactl::cli::run(hactl::cli::Cli::parse())
}
