//! The configuration language: `/etc/hactl/cluster.toml`, parsed and
//! validated in one pass that reports every problem with file, line,
//! column, key and what to do.
//!
//! Public surface:
//! - [`load`] / [`parse_str`]: text → [`Config`] plus warnings, or all
//!   [`Diagnostic`]s;
//! - [`canonical`]: the configuration as canonical TOML (`hactl config show`);
//! - [`membership_digest`]: SHA-256 of what members must agree on;
//! - [`authkey`]: creating and checking the cluster key file.

pub mod authkey;
mod diag;
pub mod libvirt_uri;
mod model;
mod parse;
mod reader;
pub mod score;
mod show;
mod validate;

use std::path::Path;

pub use diag::{Diagnostic, Severity};
pub use model::*;
pub use parse::{
    FILESYSTEM_PARAMS, HOLD_MS_DEFAULT, IPADDR_PARAMS, JOIN_MS_DEFAULT,
    SEQNO_UNCHANGED_CONST_DEFAULT, TOKEN_RETRANSMITS_BEFORE_LOSS_DEFAULT, default_consensus_ms,
};
pub use score::Score;
pub use show::{canonical, canonical_redacted, membership_canonical, membership_digest};

/// A configuration that passed validation, with the warnings it produced.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

/// Why a configuration could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    Io {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
    /// Everything wrong with it (warnings included, after the errors).
    Invalid(Vec<Diagnostic>),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Io { path, error } => write!(
                f,
                "{}: cannot read the configuration: {error}",
                path.display()
            ),
            LoadError::Invalid(diags) => {
                let errors = diags
                    .iter()
                    .filter(|d| d.severity == Severity::Error)
                    .count();
                for d in diags {
                    writeln!(f, "{d}")?;
                }
                write!(f, "{errors} error(s) in the configuration")
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|error| LoadError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    parse_str(&text, path).map_err(LoadError::Invalid)
}

/// Parses and validates configuration text; `file` is used in messages.
/// Returns every error (and warning) found, errors first in file order.
pub fn parse_str(text: &str, file: &Path) -> Result<Loaded, Vec<Diagnostic>> {
    let mut sink = diag::Sink::new(file, text);
    let root = match toml::de::DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            // Later syntax errors are often echoes of the first: report it alone.
            let span = e.span().unwrap_or(0..0);
            sink.error(
                &span,
                "(syntax)",
                format!("invalid TOML: {}", e.message().trim()),
                "fix this first; the file was not checked further",
            );
            return Err(sink.diagnostics);
        }
    };
    let mut spans = reader::Spans::default();
    let (config, paths) = parse::parse_document(root.get_ref(), &mut sink, &mut spans);
    validate::validate(&config, &paths, &mut sink, &spans);
    let mut diagnostics = sink.diagnostics;
    diagnostics.sort_by_key(|d| (d.severity != Severity::Error, d.line, d.column));
    if diagnostics.iter().any(|d| d.severity == Severity::Error) {
        Err(diagnostics)
    } else {
        Ok(Loaded {
            config,
            warnings: diagnostics,
        })
    }
}
