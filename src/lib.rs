//! hactl: a lean high-availability stack for two- and three-node appliances.
//!
//! Module map (one line each; see docs/DESIGN.md for the layers):
//! - [`api`]: hactld's D-Bus API (org.hactl.Cluster1) and the proxy `hactl` uses.
//! - [`agents`]: resource agents (systemd, ipaddr, filesystem, OCF, LSB) behind one interface.
//! - [`config`]: the TOML configuration language, validation, canonical form, digest, key file.
//! - [`executor`]: runs agent operations: one at a time per resource, timeouts, recurring monitors, fail counts.
//! - [`process`]: runs helper programs in their own process group, bounded in time and output.
//! - [`daemon`]: the I/O edge of `hactld`: logging, systemd notification, signals, main loop.
//! - [`cli`]: the `hactl` subcommands and their rendering.
//! - [`time`]: the crate's monotonic `Instant` (pure cores take `now` as an argument).
//! - [`quorum`]: votequorum rules as a pure state machine.
//! - [`fencing`]: fence devices: IPMI (RMCP+), libvirt, fence agents, watchdog.
//! - [`sim`]: the deterministic simulator (virtual clock, faulty network, one seed).
//! - [`state`]: the replicated cluster state: commands in agreed order, merge after partitions, persistence.
//! - [`scheduler`]: pacemaker-compatible placement and transitions (pure).
//! - [`totem`]: membership and ordered messaging; its encrypted packet envelope.

pub mod agents;
pub mod api;
pub mod cli;
pub mod config;
pub mod controller;
pub mod daemon;
pub mod executor;
pub mod fencing;
pub mod process;
pub mod quorum;
pub mod scheduler;
pub mod sim;
pub mod state;
pub mod time;
pub mod totem;
