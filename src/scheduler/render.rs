//! Text renderings of a [`Transition`] for `hactl simulate`: the
//! transition for people, the outcome as JSON for checks, the scores.

use std::fmt::Write as _;

use super::{Task, Transition};

/// `{"resources": {"ID": {"nodes": [...], "promoted": [...]}}}`, node lists
/// sorted, one resource per line.
pub fn json(t: &Transition) -> String {
    let mut out = String::from("{\"resources\": {");
    let mut first = true;
    for (id, o) in &t.outcome {
        out.push_str(if first { "\n" } else { ",\n" });
        first = false;
        let nodes: Vec<&String> = o.nodes.iter().collect();
        let promoted: Vec<&String> = o.promoted.iter().collect();
        let _ = write!(
            out,
            "  {}: {{\"nodes\": {}, \"promoted\": {}}}",
            json_string(id),
            json_list(&nodes),
            json_list(&promoted)
        );
    }
    out.push_str("\n}}\n");
    out
}

fn json_list(items: &[&String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| json_string(s)).collect();
    format!("[{}]", inner.join(", "))
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// The transition for people: placements that change, then the actions in
/// execution order with what each waits for.
pub fn text(t: &Transition) -> String {
    let mut out = String::new();
    out.push_str("Transition summary:\n");
    if t.summary.is_empty() {
        out.push_str("  (no changes)\n");
    }
    for line in &t.summary {
        let _ = writeln!(out, "  {line}");
    }
    out.push_str("After the transition:\n");
    for (id, o) in &t.outcome {
        let nodes: Vec<&str> = o.nodes.iter().map(String::as_str).collect();
        let _ = write!(
            out,
            "  {id}: {}",
            if nodes.is_empty() {
                "stopped".to_string()
            } else {
                nodes.join(", ")
            }
        );
        if !o.promoted.is_empty() {
            let promoted: Vec<&str> = o.promoted.iter().map(String::as_str).collect();
            let _ = write!(out, " (promoted: {})", promoted.join(", "));
        }
        out.push('\n');
    }
    out.push_str("Actions:\n");
    if t.actions.is_empty() {
        out.push_str("  (none)\n");
    }
    for (i, a) in t.actions.iter().enumerate() {
        let what = match (&a.resource, a.task) {
            (None, Task::Fence) => format!("fence {}", a.node.as_deref().unwrap_or("?")),
            (Some(r), task) => {
                let mut s = format!("{} {r}", task.as_str());
                if let Some(n) = &a.node {
                    let _ = write!(s, " on {n}");
                }
                if a.interval_ms > 0 {
                    let _ = write!(s, " every {}", interval(a.interval_ms));
                }
                s
            }
            (None, task) => task.as_str().to_string(),
        };
        let deps: Vec<String> = t
            .edges
            .iter()
            .filter(|&&(_, then)| then == i)
            .map(|&(first, _)| format!("#{}", first + 1))
            .collect();
        let _ = write!(out, "  #{} {what}", i + 1);
        if let Some(reason) = &a.reason {
            let _ = write!(out, " ({reason})");
        }
        if !deps.is_empty() {
            let _ = write!(out, " after {}", deps.join(" "));
        }
        out.push('\n');
    }
    for w in &t.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

/// An interval in its largest exact unit (`10s`, `1500ms`, `2m`).
fn interval(ms: u64) -> String {
    const MS_PER_S: u64 = 1_000;
    const MS_PER_MIN: u64 = 60 * MS_PER_S;
    if ms.is_multiple_of(MS_PER_MIN) {
        format!("{}m", ms / MS_PER_MIN)
    } else if ms.is_multiple_of(MS_PER_S) {
        format!("{}s", ms / MS_PER_S)
    } else {
        format!("{ms}ms")
    }
}

/// The allocation and promotion scores, one per line.
pub fn scores(t: &Transition) -> String {
    let mut out = String::new();
    for line in &t.scores {
        out.push_str(line);
        out.push('\n');
    }
    out
}
