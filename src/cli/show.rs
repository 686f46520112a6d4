//! The controller's part of `hactl status`, after crm_mon: the DC, nodes
//! in standby, one line per resource and where it runs, migrate
//! preferences, fail counts and failed actions with time and reason.
//! Pure text from a [`ControllerSummary`].

use std::fmt::Write;

use crate::api::ClusterStatus;
use crate::controller::summary::{ControllerSummary, ResourceSummary};

/// The whole `hactl status` text: the membership part
/// ([`ClusterStatus::render_text`]) and, when present, the controller's.
pub fn status_text(s: &ClusterStatus) -> String {
    let mut out = s.render_text();
    if let Some(c) = &s.controller {
        out.push('\n');
        out.push_str(&controller_text(c));
    }
    out
}

/// Where a resource is, crm_mon-like: `Started node2`, `Stopped`,
/// `Promoted node1`, and a move in progress (`Started node2, moving to
/// node1`).
pub fn placement(r: &ResourceSummary) -> String {
    let mut text = if r.running_on.is_empty() {
        "Stopped".to_string()
    } else {
        let mut parts = Vec::new();
        let started: Vec<&str> = r
            .running_on
            .iter()
            .filter(|n| !r.promoted_on.contains(n))
            .map(String::as_str)
            .collect();
        if !r.promoted_on.is_empty() {
            parts.push(format!("Promoted {}", r.promoted_on.join(" ")));
        }
        if !started.is_empty() {
            parts.push(format!("Started {}", started.join(" ")));
        }
        parts.join(", ")
    };
    match &r.target {
        Some(t) if !r.running_on.iter().any(|n| n == t) => {
            if r.running_on.is_empty() {
                let _ = write!(text, ", starting on {t}");
            } else {
                let _ = write!(text, ", moving to {t}");
            }
        }
        None if !r.running_on.is_empty() => text.push_str(", stopping"),
        _ => {}
    }
    text
}

/// The controller's section of `hactl status`.
pub fn controller_text(c: &ControllerSummary) -> String {
    let mut out = String::new();
    let state = if c.idle {
        "settled".to_string()
    } else {
        format!("transition {} in progress", c.transition)
    };
    let _ = writeln!(
        out,
        "DC:       {} ({state})",
        c.dc.as_deref().unwrap_or("none (no quorum)")
    );
    for n in &c.standby {
        let _ = writeln!(out, "  * Node {n}: standby");
    }

    let _ = writeln!(out, "\nResources:");
    if c.resources.is_empty() {
        let _ = writeln!(out, "  No resources");
    }
    let mut group: Option<&str> = None;
    for r in &c.resources {
        if r.group.as_deref() != group {
            group = r.group.as_deref();
            if let Some(g) = group {
                let _ = writeln!(out, "  * Resource Group: {g}:");
            }
        }
        let indent = if group.is_some() { "    " } else { "  " };
        let _ = writeln!(out, "{indent}* {} ({}): {}", r.id, r.agent, placement(r));
    }

    if !c.migrations.is_empty() {
        let _ = writeln!(out, "\nMigrations:");
        for m in &c.migrations {
            let what = match (&m.to, &m.away_from) {
                (Some(to), _) => format!("prefer {to}"),
                (None, Some(from)) => format!("keep off {from}"),
                (None, None) => "no preference".to_string(),
            };
            let until = m.expires_ms.map_or_else(
                || "until unmigrate".to_string(),
                |ms| format!("until {}", utc(ms)),
            );
            let _ = writeln!(out, "  * {}: {what}, {until}", m.resource);
        }
    }
    if !c.target_roles.is_empty() {
        let _ = writeln!(out, "\nTarget roles:");
        for t in &c.target_roles {
            let hint = if t.role == "stopped" {
                format!(" (hactl resource start {})", t.resource)
            } else {
                String::new()
            };
            let _ = writeln!(out, "  * {}: {}{hint}", t.resource, t.role);
        }
    }
    if !c.fail_counts.is_empty() {
        let _ = writeln!(out, "\nFail counts:");
        for f in &c.fail_counts {
            let last = f
                .last_failure_ms
                .map_or_else(String::new, |ms| format!(" (last {})", utc(ms)));
            let count = if f.count >= crate::scheduler::view::FAIL_COUNT_INFINITY {
                "INFINITY".to_string()
            } else {
                f.count.to_string()
            };
            let _ = writeln!(
                out,
                "  * {} on {}: fail count {count}{last}",
                f.resource, f.node
            );
        }
    }
    if !c.failed_actions.is_empty() {
        let _ = writeln!(out, "\nFailed actions:");
        for a in &c.failed_actions {
            let interval = if a.interval_ms > 0 {
                format!(" (every {})", seconds(a.interval_ms))
            } else {
                String::new()
            };
            let reason = a
                .reason
                .as_deref()
                .filter(|r| !r.is_empty())
                .map_or_else(String::new, |r| format!(": {r}"));
            let _ = writeln!(
                out,
                "  * {} {}{interval} on {}: {} (rc {}) at {}{reason}",
                a.resource,
                a.operation,
                a.node,
                a.rc_text,
                a.rc,
                utc(a.at_ms)
            );
        }
    }
    if !c.fencing.is_empty() {
        // The latest few; `status --json` has the whole history.
        let _ = writeln!(out, "\nFencing history (latest first):");
        for f in c.fencing.iter().take(FENCING_SHOWN) {
            let outcome = match &f.error {
                None => format!("{} done with {}", f.action, f.device),
                Some(e) => format!("{} FAILED: {e}", f.action),
            };
            let _ = writeln!(
                out,
                "  * {} by {}: {outcome} at {}",
                f.target,
                f.executor,
                utc(f.at_ms)
            );
        }
    }
    out
}

/// How many fencing records the text status shows.
const FENCING_SHOWN: usize = 5;

fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{} ms", ms)
    }
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (the era-based
/// conversion: 400-year eras of 146,097 days, years starting in March).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::summary::{
        FailCountSummary, FailedAction, FencingSummary, MigrationSummary, TargetRoleSummary,
    };

    fn rsc(id: &str, group: Option<&str>, on: &[&str], target: Option<&str>) -> ResourceSummary {
        ResourceSummary {
            id: id.to_string(),
            agent: "ipaddr".to_string(),
            group: group.map(str::to_string),
            clone: None,
            running_on: on.iter().map(|s| s.to_string()).collect(),
            promoted_on: vec![],
            target: target.map(str::to_string),
        }
    }

    #[test]
    fn a_summary_from_a_daemon_before_target_roles_still_reads() {
        let old = r#"{"dc":"node1","idle":true,"transition":1,"standby":[],"resources":[],
            "migrations":[],"fail_counts":[],"failed_actions":[]}"#;
        let c: ControllerSummary = serde_json::from_str(old).expect("reads");
        assert!(c.target_roles.is_empty());
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_798_334_677_000), "2026-12-27 01:24:37 UTC");
    }

    #[test]
    fn the_controller_section_lists_resources_and_failures() {
        let c = ControllerSummary {
            dc: Some("node1".to_string()),
            idle: true,
            transition: 4,
            standby: vec!["node3".to_string()],
            resources: vec![
                rsc("web-ip", Some("web"), &["node2"], Some("node2")),
                rsc("web-server", Some("web"), &["node2"], Some("node1")),
                rsc("spare", None, &[], None),
            ],
            migrations: vec![MigrationSummary {
                resource: "web".to_string(),
                to: Some("node1".to_string()),
                away_from: None,
                expires_ms: None,
            }],
            target_roles: vec![TargetRoleSummary {
                resource: "spare".to_string(),
                role: "stopped".to_string(),
            }],
            config_epoch: 3,
            fail_counts: vec![FailCountSummary {
                resource: "web-server".to_string(),
                node: "node2".to_string(),
                count: 2,
                last_failure_ms: Some(0),
            }],
            failed_actions: vec![FailedAction {
                resource: "web-server".to_string(),
                node: "node2".to_string(),
                operation: "monitor".to_string(),
                interval_ms: 10_000,
                rc: 7,
                rc_text: "not running".to_string(),
                reason: Some("nginx.service is inactive".to_string()),
                at_ms: 0,
            }],
            fencing: vec![
                FencingSummary {
                    target: "node3".to_string(),
                    device: "pdu".to_string(),
                    action: "reboot".to_string(),
                    executor: "node1".to_string(),
                    ok: true,
                    error: None,
                    at_ms: 1_000,
                },
                FencingSummary {
                    target: "node3".to_string(),
                    device: "bmc".to_string(),
                    action: "reboot".to_string(),
                    executor: "node2".to_string(),
                    ok: false,
                    error: Some("bmc: timeout".to_string()),
                    at_ms: 0,
                },
            ],
        };
        let t = controller_text(&c);
        for line in [
            "DC:       node1 (settled)",
            "  * Node node3: standby",
            "  * Resource Group: web:",
            "    * web-ip (ipaddr): Started node2",
            "    * web-server (ipaddr): Started node2, moving to node1",
            "  * spare (ipaddr): Stopped",
            "Migrations:\n  * web: prefer node1, until unmigrate",
            "Target roles:\n  * spare: stopped (hactl resource start spare)",
            "Fail counts:\n  * web-server on node2: fail count 2 (last 1970-01-01 00:00:00 UTC)",
            "Failed actions:\n  * web-server monitor (every 10 s) on node2: not running (rc 7) at 1970-01-01 00:00:00 UTC: nginx.service is inactive",
            "Fencing history (latest first):\n  * node3 by node1: reboot done with pdu at 1970-01-01 00:00:01 UTC\n  * node3 by node2: reboot FAILED: bmc: timeout at 1970-01-01 00:00:00 UTC",
        ] {
            assert!(t.contains(line), "missing {line:?} in\n{t}");
        }
    }
}
