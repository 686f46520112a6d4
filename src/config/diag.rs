//! Diagnostics: what is wrong in a configuration file, where, and what to do.
//!
//! Every problem a user can cause in `cluster.toml` becomes one [`Diagnostic`]
//! carrying the file, the 1-based line and column, the dotted key path (for
//! example `resource[2].params.ip`), a message and a hint. Validation collects
//! all of them in one pass instead of stopping at the first.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// How bad a diagnostic is: errors make the configuration unusable, warnings
/// are printed but accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    /// 1-based line of the offending key or value.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// Dotted path of the key, e.g. `totem.link[1].port`.
    pub key: String,
    pub message: String,
    /// What to do about it; empty when the message says it all.
    pub hint: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {sev}: {}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.key,
            self.message
        )?;
        if !self.hint.is_empty() {
            write!(f, "\n    hint: {}", self.hint)?;
        }
        Ok(())
    }
}

/// Turns byte offsets into line/column pairs and collects diagnostics.
pub(crate) struct Sink<'a> {
    file: PathBuf,
    source: &'a str,
    /// Byte offset at which each line starts.
    line_starts: Vec<usize>,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl<'a> Sink<'a> {
    pub(crate) fn new(file: &Path, source: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        Sink {
            file: file.to_path_buf(),
            source,
            line_starts,
            diagnostics: Vec::new(),
        }
    }

    /// 1-based (line, column) of a byte offset; columns count characters.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.source.len());
        let line_index = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line_index];
        let column = self
            .source
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line_index + 1, column + 1)
    }

    pub(crate) fn push(
        &mut self,
        severity: Severity,
        span: &Range<usize>,
        key: &str,
        message: String,
        hint: String,
    ) {
        let (line, column) = self.position(span.start);
        self.diagnostics.push(Diagnostic {
            severity,
            file: self.file.clone(),
            line,
            column,
            key: key.to_string(),
            message,
            hint,
        });
    }

    pub(crate) fn error(
        &mut self,
        span: &Range<usize>,
        key: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.push(Severity::Error, span, key, message.into(), hint.into());
    }

    pub(crate) fn warning(
        &mut self,
        span: &Range<usize>,
        key: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.push(Severity::Warning, span, key, message.into(), hint.into());
    }
}

/// Levenshtein distance, for "did you mean" suggestions on unknown keys.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// The known name closest to `unknown`, if it is close enough to be a typo.
pub(crate) fn closest<'k>(unknown: &str, known: &[&'k str]) -> Option<&'k str> {
    // Compare without case and with '-' and '_' alike, on both sides.
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let lower = norm(unknown);
    known
        .iter()
        .map(|k| (edit_distance(&lower, &norm(k)), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let sink = Sink::new(Path::new("x.toml"), "ab\n\u{e9}cd\n");
        assert_eq!(sink.position(0), (1, 1));
        assert_eq!(sink.position(3), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(sink.position(5), (2, 2));
    }

    #[test]
    fn typos_get_the_closest_known_key() {
        let known = ["resource_stickiness", "migration_threshold", "priority"];
        assert_eq!(
            closest("resource_stickness", &known),
            Some("resource_stickiness")
        );
        assert_eq!(
            closest("migration-threshold", &known),
            Some("migration_threshold")
        );
        assert_eq!(closest("colour", &known), None);
    }
}
