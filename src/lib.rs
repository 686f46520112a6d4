//! hactl: a lean high-availability stack for two- and three-node appliances.
//!
//! Module map (one line each; see docs/DESIGN.md for the layers):
//! - [`config`]: the TOML configuration language, validation, canonical form, digest, key file.
//! - [`daemon`]: the I/O edge of `hactld`: logging, systemd notification, signals, main loop.
//! - [`cli`]: the `hactl` subcommands and their rendering.

pub mod cli;
pub mod config;
pub mod daemon;
