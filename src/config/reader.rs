//! A cursor over toml's spanned document tree that reads typed values,
//! records where each one came from, and turns every problem into a
//! diagnostic instead of stopping (so that one pass reports all errors).

use std::collections::HashMap;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diag::{Sink, closest};
use super::score::Score;

pub(crate) type Span = Range<usize>;

/// Where every key path was found, for cross-checks that report later.
#[derive(Default)]
pub(crate) struct Spans {
    map: HashMap<String, Span>,
}

impl Spans {
    pub(crate) fn record(&mut self, path: &str, span: Span) {
        self.map.insert(path.to_string(), span);
    }

    /// Whether `path` itself was written in the file.
    pub(crate) fn contains(&self, path: &str) -> bool {
        self.map.contains_key(path)
    }

    /// The span of `path`, or of its nearest recorded ancestor (a defaulted
    /// key has no span of its own: point at its table instead).
    pub(crate) fn at(&self, path: &str) -> Span {
        let mut p = path;
        loop {
            if let Some(s) = self.map.get(p) {
                return s.clone();
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return 0..0,
            }
        }
    }
}

/// Describes a TOML value's type for "expected X, found Y" messages.
pub(crate) fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

pub(crate) fn integer_of(v: &DeValue<'_>) -> Option<i64> {
    match v {
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            i64::from_str_radix(&digits, i.radix()).ok()
        }
        _ => None,
    }
}

/// One TOML table being read. Every key read is remembered; `finish`
/// reports the keys nobody asked for as unknown, with a suggestion.
pub(crate) struct Table<'a, 'i> {
    table: &'a DeTable<'i>,
    pub(crate) span: Span,
    pub(crate) path: String,
    known: Vec<&'static str>,
}

impl<'a, 'i> Table<'a, 'i> {
    pub(crate) fn new(table: &'a DeTable<'i>, span: Span, path: String, spans: &mut Spans) -> Self {
        spans.record(&path, span.clone());
        Table {
            table,
            span,
            path,
            known: Vec::new(),
        }
    }

    pub(crate) fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Marks a key as known without reading it (read elsewhere or ignored).
    pub(crate) fn allow(&mut self, key: &'static str) {
        self.known.push(key);
    }

    /// A string value, without marking the key as read (for messages).
    pub(crate) fn peek_str(&self, key: &str) -> Option<String> {
        self.table
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .and_then(|(_, v)| v.get_ref().as_str().map(str::to_string))
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.table.iter().any(|(k, _)| k.get_ref() == key)
    }

    /// The raw value of `key`, marking it known and recording its span.
    pub(crate) fn raw(
        &mut self,
        key: &'static str,
        spans: &mut Spans,
    ) -> Option<&'a Spanned<DeValue<'i>>> {
        self.known.push(key);
        let v = self
            .table
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map(|(_, v)| v)?;
        spans.record(&self.key_path(key), v.span());
        Some(v)
    }

    fn wrong_type(
        &self,
        sink: &mut Sink,
        key: &str,
        v: &Spanned<DeValue<'_>>,
        expected: &str,
        hint: &str,
    ) {
        sink.error(
            &v.span(),
            &self.key_path(key),
            format!("expected {expected}, found {}", type_name(v.get_ref())),
            hint,
        );
    }

    pub(crate) fn missing(&self, sink: &mut Sink, key: &str, hint: &str) {
        sink.error(
            &self.span,
            &self.key_path(key),
            format!("missing required key `{key}`"),
            hint,
        );
    }

    pub(crate) fn string(
        &mut self,
        sink: &mut Sink,
        spans: &mut Spans,
        key: &'static str,
    ) -> Option<Spanned<String>> {
        let v = self.raw(key, spans)?;
        match v.get_ref() {
            DeValue::String(s) => Some(Spanned::new(v.span(), s.to_string())),
            _ => {
                self.wrong_type(sink, key, v, "a string", "put the value in double quotes");
                None
            }
        }
    }

    pub(crate) fn req_string(
        &mut self,
        sink: &mut Sink,
        spans: &mut Spans,
        key: &'static str,
        hint: &str,
    ) -> Option<Spanned<String>> {
        if !self.require(sink, key, hint) {
            return None;
        }
        self.string(sink, spans, key)
    }

    /// Whether a required key is present; if not, reports it missing (and
    /// marks it known, so it is not also "unknown").
    pub(crate) fn require(&mut self, sink: &mut Sink, key: &'static str, hint: &str) -> bool {
        if self.has(key) {
            return true;
        }
        self.allow(key);
        self.missing(sink, key, hint);
        false
    }

    pub(crate) fn bool(
        &mut self,
        sink: &mut Sink,
        spans: &mut Spans,
        key: &'static str,
    ) -> Option<bool> {
        let v = self.raw(key, spans)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            DeValue::String(s) if matches!(&**s, "true" | "false" | "yes" | "no") => {
                self.wrong_type(
                    sink,
                    key,
                    v,
                    "a boolean",
                    &format!("write {key} = true or {key} = false, without quotes"),
                );
                None
            }
            _ => {
                self.wrong_type(sink, key, v, "a boolean", "use true or false");
                None
            }
        }
    }

    /// An integer within `min..=max`.
    pub(crate) fn int(
        &mut self,
        sink: &mut Sink,
        spans: &mut Spans,
        key: &'static str,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let v = self.raw(key, spans)?;
        let Some(n) = integer_of(v.get_ref()) else {
            if let DeValue::Integer(i) = v.get_ref() {
                sink.error(
                    &v.span(),
                    &self.key_path(key),
                    format!("{} is out of range", i.as_str()),
                    format!("use a value from {min} to {max}"),
                );
                return None;
            }
            let hint = match v.get_ref() {
                DeValue::String(s) if s.trim().parse::<i64>().is_ok() => {
                    "remove the quotes around the number"
                }
                DeValue::Float(_) => "use a whole number",
                _ => "",
            };
            self.wrong_type(sink, key, v, "an integer", hint);
            return None;
        };
        if n < min || n > max {
            sink.error(
                &v.span(),
                &self.key_path(key),
                format!("{n} is out of range"),
                format!("use a value from {min} to {max}"),
            );
            return None;
        }
        Some(n)
    }

    /// A duration in milliseconds: an integer counts in `int_unit_ms`, a
    /// string carries its unit (`500ms`, `10s`, `2m`, `1h`, or combined
    /// like `1m30s`).
    pub(crate) fn duration_ms(
        &mut self,
        sink: &mut Sink,
        spans: &mut Spans,
        key: &'static str,
        int_unit_ms: u64,
    ) -> Option<u64> {
        let v = self.raw(key, spans)?;
        let unit_word = if int_unit_ms == 1 {
            "milliseconds"
        } else {
            "seconds"
        };
        let hint = format!(
            "write a number of {unit_word}, or a string with a unit such as \"500ms\", \"10s\", \"2m\""
        );
        match v.get_ref() {
            DeValue::Integer(_) => match integer_of(v.get_ref()) {
                Some(n) if n >= 0 => (n as u64).checked_mul(int_unit_ms).or_else(|| {
                    sink.error(
                        &v.span(),
                        &self.key_path(key),
                        "duration is too long",
                        hint.clone(),
                    );
                    None
                }),
                Some(_) => {
                    sink.error(
                        &v.span(),
                        &self.key_path(key),
                        "a duration cannot be negative",
                        hint,
                    );
                    None
                }
                None => {
                    sink.error(&v.span(), &self.key_path(key), "duration is too long", hint);
                    None
                }
            },
            DeValue::String(s) => match parse_duration_ms(s) {
                Some(ms) => Some(ms),
                None => {
                    sink.error(
                        &v.span(),
                        &self.key_path(key),
                        format!("\"{s}\" is not a duration"),
                        hint,
                    );
                    None
                }
            },
            _ => {
                self.wrong_type(sink, key, v, "a duration", &hint);
                None
            }
        }
    }

    /// A Pacemaker score: an integer or one of the INFINITY spellings.
    pub(crate) fn score(
        &mut self,
        sink: &mut Sink,
        spans: &mut Spans,
        key: &'static str,
    ) -> Option<Score> {
        let v = self.raw(key, spans)?;
        let parsed = match v.get_ref() {
            DeValue::Integer(_) => integer_of(v.get_ref()).map(Score::new),
            DeValue::String(s) => Score::parse(s),
            _ => None,
        };
        if parsed.is_none() {
            sink.error(
                &v.span(),
                &self.key_path(key),
                format!("`{}` is not a score", &sink_text(v)),
                "use an integer, or \"INFINITY\", \"+INFINITY\", \"-INFINITY\", \"inf\", \"-inf\"",
            );
        }
        parsed
    }

    /// One of a fixed set of words (case-insensitive).
    pub(crate) fn choice<T: Copy>(
        &mut self,
        sink: &mut Sink,
        spans: &mut Spans,
        key: &'static str,
        choices: &[(&'static str, T)],
    ) -> Option<T> {
        let s = self.string(sink, spans, key)?;
        match_choice(sink, &self.key_path(key), &s, choices)
    }

    /// A sub-table (`[a.b]` or an inline table).
    pub(crate) fn table(
        &mut self,
        sink: &mut Sink,
        spans: &mut Spans,
        key: &'static str,
    ) -> Option<Table<'a, 'i>> {
        let v = self.raw(key, spans)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(Table::new(t, v.span(), self.key_path(key), spans)),
            _ => {
                self.wrong_type(
                    sink,
                    key,
                    v,
                    "a table",
                    &format!("write {key} = {{ name = value, ... }}"),
                );
                None
            }
        }
    }

    /// An array of tables (`[[a]]`); each element gets the path `a[i]`.
    pub(crate) fn tables(
        &mut self,
        sink: &mut Sink,
        spans: &mut Spans,
        key: &'static str,
    ) -> Vec<Table<'a, 'i>> {
        let Some(v) = self.raw(key, spans) else {
            return Vec::new();
        };
        let path = self.key_path(key);
        let hint = format!("write each entry as [[{path}]] followed by its keys");
        match v.get_ref() {
            DeValue::Array(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item.get_ref() {
                        DeValue::Table(t) => {
                            out.push(Table::new(t, item.span(), format!("{path}[{i}]"), spans))
                        }
                        other => sink.error(
                            &item.span(),
                            &format!("{path}[{i}]"),
                            format!("expected a table, found {}", type_name(other)),
                            hint.clone(),
                        ),
                    }
                }
                out
            }
            DeValue::Table(_) => {
                sink.error(
                    &v.span(),
                    &path,
                    format!("`{key}` must be an array of tables"),
                    hint,
                );
                Vec::new()
            }
            other => {
                sink.error(
                    &v.span(),
                    &path,
                    format!("expected an array of tables, found {}", type_name(other)),
                    hint,
                );
                Vec::new()
            }
        }
    }

    /// An array of strings.
    pub(crate) fn strings(
        &mut self,
        sink: &mut Sink,
        spans: &mut Spans,
        key: &'static str,
    ) -> Option<Vec<Spanned<String>>> {
        let v = self.raw(key, spans)?;
        let path = self.key_path(key);
        match v.get_ref() {
            DeValue::Array(items) => {
                let mut out = Vec::new();
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    spans.record(&format!("{path}[{i}]"), item.span());
                    match item.get_ref() {
                        DeValue::String(s) => out.push(Spanned::new(item.span(), s.to_string())),
                        other => {
                            ok = false;
                            sink.error(
                                &item.span(),
                                &format!("{path}[{i}]"),
                                format!("expected a string, found {}", type_name(other)),
                                "put the value in double quotes",
                            );
                        }
                    }
                }
                ok.then_some(out)
            }
            DeValue::String(_) => {
                sink.error(
                    &v.span(),
                    &path,
                    "expected an array of strings, found a single string",
                    format!("write {key} = [\"...\"]"),
                );
                None
            }
            other => {
                self.wrong_type(sink, key, v, "an array of strings", "");
                let _ = other;
                None
            }
        }
    }

    /// A table of scalar values (strings, integers, booleans, floats), each
    /// turned into its string form, as agents receive them.
    pub(crate) fn string_map(
        &mut self,
        sink: &mut Sink,
        spans: &mut Spans,
        key: &'static str,
    ) -> Vec<(Spanned<String>, Spanned<String>)> {
        let Some(t) = self.table(sink, spans, key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in t.table.iter() {
            let path = t.key_path(k.get_ref());
            spans.record(&path, v.span());
            let text = match v.get_ref() {
                DeValue::String(s) => s.to_string(),
                DeValue::Integer(_) => match integer_of(v.get_ref()) {
                    Some(n) => n.to_string(),
                    None => sink_text(v),
                },
                DeValue::Float(f) => f.as_str().to_string(),
                DeValue::Boolean(b) => b.to_string(),
                other => {
                    sink.error(
                        &v.span(),
                        &path,
                        format!(
                            "expected a string, number or boolean, found {}",
                            type_name(other)
                        ),
                        "agent parameters are single values",
                    );
                    continue;
                }
            };
            out.push((
                Spanned::new(k.span(), k.get_ref().to_string()),
                Spanned::new(v.span(), text),
            ));
        }
        out
    }

    /// Reports every key of this table that was never asked for.
    pub(crate) fn finish(self, sink: &mut Sink) {
        for (k, _) in self.table.iter() {
            let name: &str = k.get_ref();
            if self.known.contains(&name) {
                continue;
            }
            let hint = match closest(name, &self.known) {
                Some(s) => format!("did you mean `{s}`?"),
                None => {
                    let mut known = self.known.clone();
                    known.sort_unstable();
                    known.dedup();
                    format!("known keys here: {}", known.join(", "))
                }
            };
            sink.error(
                &k.span(),
                &self.key_path(name),
                format!("unknown key `{name}`"),
                hint,
            );
        }
    }
}

/// The value as written, for messages (strings without their quotes).
fn sink_text(v: &Spanned<DeValue<'_>>) -> String {
    match v.get_ref() {
        DeValue::String(s) => s.to_string(),
        DeValue::Integer(i) => i.as_str().to_string(),
        DeValue::Float(f) => f.as_str().to_string(),
        DeValue::Boolean(b) => b.to_string(),
        other => type_name(other).to_string(),
    }
}

pub(crate) fn match_choice<T: Copy>(
    sink: &mut Sink,
    path: &str,
    s: &Spanned<String>,
    choices: &[(&'static str, T)],
) -> Option<T> {
    let wanted = s.get_ref().to_ascii_lowercase();
    if let Some((_, t)) = choices.iter().find(|(name, _)| *name == wanted) {
        return Some(*t);
    }
    let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
    let hint = match closest(&wanted, &names) {
        Some(c) => format!("did you mean \"{c}\"? (one of: {})", names.join(", ")),
        None => format!("use one of: {}", names.join(", ")),
    };
    sink.error(
        &s.span(),
        path,
        format!("\"{}\" is not a valid value", s.get_ref()),
        hint,
    );
    None
}

/// Parses `500ms`, `10s`, `2m`, `1h`, `1m30s`, or a bare `0`.
pub(crate) fn parse_duration_ms(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "0" {
        return Some(0);
    }
    let mut total: u64 = 0;
    let mut rest = t;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 1,
            "s" | "sec" => 1_000,
            "m" | "min" => 60_000,
            "h" | "hr" => 3_600_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(n.checked_mul(factor)?)?;
    }
    Some(total)
}

/// The canonical spelling of a duration, the largest exact unit.
pub(crate) fn format_duration_ms(ms: u64) -> String {
    if ms == 0 {
        "0".to_string()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration_ms("500ms"), Some(500));
        assert_eq!(parse_duration_ms("10s"), Some(10_000));
        assert_eq!(parse_duration_ms("2m"), Some(120_000));
        assert_eq!(parse_duration_ms("1h"), Some(3_600_000));
        assert_eq!(parse_duration_ms("1m30s"), Some(90_000));
        assert_eq!(parse_duration_ms("0"), Some(0));
        for bad in ["", "10", "s", "10x", "-5s", "1.5s"] {
            assert_eq!(parse_duration_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations_format_in_the_largest_exact_unit() {
        for ms in [0, 1, 500, 1_000, 90_000, 120_000, 3_600_000, 3_601_000] {
            assert_eq!(parse_duration_ms(&format_duration_ms(ms)), Some(ms));
        }
        assert_eq!(format_duration_ms(90_000), "90s");
        assert_eq!(format_duration_ms(120_000), "2m");
    }
}
