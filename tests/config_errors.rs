//! Bad configurations and what the validator says about them.
//!
//! Every case is a complete TOML document written inline. The helpers drop
//! the newline right after `r#"`, so line 1 is the first line of TOML you
//! see and line numbers can be read off the test. Each case asserts the
//! exact line and column, the key path and a distinctive part of the
//! message (and of the hint where the hint is the useful part).

use std::path::Path;

use hactl::config::{Diagnostic, Loaded, Severity, parse_str};

// ---------------------------------------------------------------- helpers

fn parse(text: &str) -> Result<Loaded, Vec<Diagnostic>> {
    let text = text.strip_prefix('\n').unwrap_or(text);
    parse_str(text, Path::new("case.toml"))
}

fn all_diagnostics(text: &str) -> Vec<Diagnostic> {
    match parse(text) {
        Ok(loaded) => loaded.warnings,
        Err(diags) => diags,
    }
}

fn dump(diags: &[Diagnostic]) -> String {
    if diags.is_empty() {
        return "    (no diagnostics)".to_string();
    }
    diags
        .iter()
        .map(|d| format!("    {d:?}\n      = {d}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn errors(diags: &[Diagnostic]) -> Vec<&Diagnostic> {
    diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect()
}

/// Finds the diagnostic of `severity` at `line:column` with `key` whose
/// message contains `message_part`; on failure prints every diagnostic.
fn find(
    diags: &[Diagnostic],
    severity: Severity,
    line: usize,
    column: usize,
    key: &str,
    message_part: &str,
) -> Diagnostic {
    match diags.iter().find(|d| {
        d.severity == severity
            && d.line == line
            && d.column == column
            && d.key == key
            && d.message.contains(message_part)
    }) {
        Some(d) => d.clone(),
        None => panic!(
            "expected {severity:?} at {line}:{column} key `{key}` with message containing \
             {message_part:?}; all diagnostics:\n{}",
            dump(diags)
        ),
    }
}

/// The load fails and one of its errors is the one described.
fn expect_error(
    text: &str,
    line: usize,
    column: usize,
    key: &str,
    message_part: &str,
) -> Diagnostic {
    match parse(text) {
        Ok(loaded) => panic!(
            "expected the load to fail with an error at {line}:{column} `{key}` \
             ({message_part:?}), but it succeeded; warnings:\n{}",
            dump(&loaded.warnings)
        ),
        Err(diags) => find(&diags, Severity::Error, line, column, key, message_part),
    }
}

/// Like [`expect_error`], and the hint contains `hint_part`.
fn expect_error_hint(
    text: &str,
    line: usize,
    column: usize,
    key: &str,
    message_part: &str,
    hint_part: &str,
) -> Diagnostic {
    let d = expect_error(text, line, column, key, message_part);
    assert!(
        d.hint.contains(hint_part),
        "hint of {key} should contain {hint_part:?}; all diagnostics:\n{}",
        dump(&all_diagnostics(text))
    );
    d
}

/// Like [`expect_error`], and it is the only error: the mistake does not
/// drag follow-up errors along.
fn expect_sole_error(
    text: &str,
    line: usize,
    column: usize,
    key: &str,
    message_part: &str,
) -> Diagnostic {
    let d = expect_error(text, line, column, key, message_part);
    let diags = all_diagnostics(text);
    assert_eq!(
        errors(&diags).len(),
        1,
        "expected exactly one error; all diagnostics:\n{}",
        dump(&diags)
    );
    d
}

/// The load succeeds and returns the warning described.
fn expect_warning(
    text: &str,
    line: usize,
    column: usize,
    key: &str,
    message_part: &str,
) -> Diagnostic {
    match parse(text) {
        Ok(loaded) => find(
            &loaded.warnings,
            Severity::Warning,
            line,
            column,
            key,
            message_part,
        ),
        Err(diags) => panic!(
            "expected the load to succeed with a warning at {line}:{column} `{key}`, \
             but it failed:\n{}",
            dump(&diags)
        ),
    }
}

fn expect_ok(text: &str) -> Loaded {
    match parse(text) {
        Ok(loaded) => loaded,
        Err(diags) => panic!("expected the load to succeed:\n{}", dump(&diags)),
    }
}

// ---------------------------------------------------------------- syntax and sections

#[test]
fn toml_syntax_error_is_reported_alone_at_the_unquoted_value() {
    let text = r#"
[cluster]
name = "c"
no_quorum_policy = stop
colour = "blue"
"#;
    let d = expect_error_hint(
        text,
        3,
        20,
        "(syntax)",
        "string values must be quoted",
        "fix this first",
    );
    assert!(d.message.starts_with("invalid TOML"), "{d}");
    // The unknown key on line 4 is not checked: a syntax error stops the pass.
    assert_eq!(all_diagnostics(text).len(), 1);
}

#[test]
fn duplicate_toml_key_is_a_syntax_error_on_the_second_occurrence() {
    expect_sole_error(
        r#"
[cluster]
name = "c"
name = "d"
"#,
        3,
        1,
        "(syntax)",
        "duplicate key",
    );
}

#[test]
fn unknown_top_level_section_points_at_its_name_and_suggests_resource() {
    let d = expect_sole_error(
        r#"
[cluster]
name = "c"

[ressource]
id = "x"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
"#,
        4,
        2,
        "ressource",
        "unknown key `ressource`",
    );
    assert_eq!(d.hint, "did you mean `resource`?");
}

#[test]
fn unknown_top_level_section_without_a_near_name_lists_the_known_sections() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[logging]
level = "debug"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
"#,
        4,
        2,
        "logging",
        "unknown key `logging`",
        "known keys here: clone, cluster, colocation, fence_device, group, location, node, order, quorum, resource, totem",
    );
}

#[test]
fn resource_section_written_as_a_table_asks_for_double_brackets() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[resource]
id = "x"
agent = "systemd:x"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
"#,
        4,
        1,
        "resource",
        "must be an array of tables",
        "[[resource]]",
    );
}

#[test]
fn missing_cluster_section_is_reported_at_the_start_of_the_file() {
    expect_sole_error(
        r#"
[totem]
transport = "udpu"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
"#,
        1,
        1,
        "cluster",
        "missing section [cluster]",
    );
}

#[test]
fn file_without_nodes_is_refused() {
    expect_error_hint(
        r#"
[cluster]
name = "c"
"#,
        1,
        1,
        "node",
        "no [[node]] is configured",
        "add one [[node]] section per cluster member",
    );
}

// ---------------------------------------------------------------- unknown keys

#[test]
fn unknown_key_in_cluster_suggests_no_quorum_policy() {
    let d = expect_sole_error(
        r#"
[cluster]
name = "c"
no_quorum_polcy = "stop"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
"#,
        3,
        1,
        "cluster.no_quorum_polcy",
        "unknown key `no_quorum_polcy`",
    );
    assert_eq!(d.hint, "did you mean `no_quorum_policy`?");
}

#[test]
fn hyphenated_key_in_cluster_suggests_the_underscore_spelling() {
    let d = expect_sole_error(
        r#"
[cluster]
name = "c"
no-quorum-policy = "stop"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
"#,
        3,
        1,
        "cluster.no-quorum-policy",
        "unknown key `no-quorum-policy`",
    );
    assert_eq!(d.hint, "did you mean `no_quorum_policy`?");
}

#[test]
fn unknown_key_in_totem_suggests_token() {
    let d = expect_sole_error(
        r#"
[cluster]
name = "c"

[totem]
tokn = 500

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
"#,
        5,
        1,
        "totem.tokn",
        "unknown key `tokn`",
    );
    assert_eq!(d.hint, "did you mean `token`?");
}

#[test]
fn unknown_key_in_totem_link_suggests_port() {
    let d = expect_sole_error(
        r#"
[cluster]
name = "c"

[[totem.link]]
prot = 5405

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
"#,
        5,
        1,
        "totem.link[0].prot",
        "unknown key `prot`",
    );
    assert_eq!(d.hint, "did you mean `port`?");
}

#[test]
fn unknown_key_in_quorum_suggests_two_node() {
    let d = expect_sole_error(
        r#"
[cluster]
name = "c"

[quorum]
two_nodes = true

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[node]]
name = "n2"
id = 2
addresses = ["10.0.0.2"]
"#,
        5,
        1,
        "quorum.two_nodes",
        "unknown key `two_nodes`",
    );
    assert_eq!(d.hint, "did you mean `two_node`?");
}

#[test]
fn unknown_key_in_resource_suggests_params() {
    let d = expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "web"
agent = "systemd:nginx"
paramz = { workers = 4 }
"#,
        12,
        1,
        "resource[0].paramz",
        "unknown key `paramz`",
    );
    assert_eq!(d.hint, "did you mean `params`?");
}

#[test]
fn unknown_key_in_inline_resource_meta_suggests_resource_stickiness() {
    let d = expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "web"
agent = "systemd:nginx"
meta = { resource_stickness = 100 }
"#,
        12,
        10,
        "resource[0].meta.resource_stickness",
        "unknown key `resource_stickness`",
    );
    assert_eq!(d.hint, "did you mean `resource_stickiness`?");
}

#[test]
fn hyphenated_key_in_resource_meta_table_suggests_migration_threshold() {
    let d = expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "web"
agent = "systemd:nginx"
[resource.meta]
migration-threshold = 3
"#,
        13,
        1,
        "resource[0].meta.migration-threshold",
        "unknown key `migration-threshold`",
    );
    assert_eq!(d.hint, "did you mean `migration_threshold`?");
}

#[test]
fn unknown_ipaddr_param_points_at_the_param_and_suggests_cidr_netmask() {
    let d = expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "vip"
agent = "ipaddr"
params = { ip = "10.0.0.100", cidr_netmaks = 24 }
"#,
        12,
        31,
        "resource[0].params.cidr_netmaks",
        "ipaddr has no parameter `cidr_netmaks`",
    );
    assert_eq!(d.hint, "did you mean `cidr_netmask`?");
}

#[test]
fn unknown_key_in_operation_suggests_interval() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "web"
agent = "systemd:nginx"
[[resource.op]]
name = "monitor"
intervall = "10s"
"#,
        14,
        1,
        "resource[0].op[0].intervall",
        "unknown key `intervall`",
        "did you mean `interval`?",
    );
}

// ---------------------------------------------------------------- types

#[test]
fn quoted_integer_asks_to_remove_the_quotes() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = "1"
addresses = ["10.0.0.1"]
"#,
        6,
        6,
        "node[0].id",
        "expected an integer, found a string",
        "remove the quotes around the number",
    );
}

#[test]
fn quoted_bool_asks_for_a_bare_true_or_false() {
    let d = expect_sole_error(
        r#"
[cluster]
name = "c"

[quorum]
two_node = "true"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[node]]
name = "n2"
id = 2
addresses = ["10.0.0.2"]
"#,
        5,
        12,
        "quorum.two_node",
        "expected a boolean, found a string",
    );
    assert!(d.hint.contains("without quotes"), "{d}");
}

#[test]
fn array_where_a_string_belongs_is_a_type_error() {
    expect_sole_error(
        r#"
[cluster]
name = ["web"]

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
"#,
        2,
        8,
        "cluster.name",
        "expected a string, found an array",
    );
}

#[test]
fn array_where_an_enum_word_belongs_is_a_type_error() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[totem]
transport = ["udp"]

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
"#,
        5,
        13,
        "totem.transport",
        "expected a string, found an array",
    );
}

#[test]
fn float_where_an_integer_belongs_asks_for_a_whole_number() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
votes = 1.5
"#,
        8,
        9,
        "node[0].votes",
        "expected an integer, found a float",
        "use a whole number",
    );
}

// ---------------------------------------------------------------- ranges

#[test]
fn node_id_0_is_out_of_range() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 0
addresses = ["10.0.0.1"]
"#,
        6,
        6,
        "node[0].id",
        "0 is out of range",
        "from 1 to 32",
    );
}

#[test]
fn node_id_33_is_out_of_range() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 33
addresses = ["10.0.0.1"]
"#,
        6,
        6,
        "node[0].id",
        "33 is out of range",
        "from 1 to 32",
    );
}

#[test]
fn link_port_0_is_out_of_range() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[totem.link]]
port = 0

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
"#,
        5,
        8,
        "totem.link[0].port",
        "0 is out of range",
        "from 1 to 65535",
    );
}

#[test]
fn link_ttl_300_is_out_of_range() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[totem.link]]
ttl = 300

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
"#,
        5,
        7,
        "totem.link[0].ttl",
        "300 is out of range",
        "from 0 to 255",
    );
}

#[test]
fn watchdog_timeout_0_is_out_of_range() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
fence_levels = [["wd"]]

[[fence_device]]
id = "wd"
kind = "watchdog"
watchdog_timeout = 0
"#,
        13,
        20,
        "fence_device[0].watchdog_timeout",
        "0 is out of range",
    );
}

// ---------------------------------------------------------------- enums

#[test]
fn invalid_transport_suggests_udp() {
    let d = expect_sole_error(
        r#"
[cluster]
name = "c"

[totem]
transport = "udpx"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
"#,
        5,
        13,
        "totem.transport",
        "\"udpx\" is not a valid value",
    );
    assert!(d.hint.contains("did you mean \"udp\""), "{d}");
    assert!(d.hint.contains("udp, udpu"), "{d}");
}

#[test]
fn invalid_no_quorum_policy_lists_the_choices() {
    expect_error_hint(
        r#"
[cluster]
name = "c"
no_quorum_policy = "suicide"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
"#,
        3,
        20,
        "cluster.no_quorum_policy",
        "\"suicide\" is not a valid value",
        "use one of: stop, freeze, ignore",
    );
}

#[test]
fn invalid_order_kind_suggests_mandatory() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "a"
agent = "systemd:a"

[[resource]]
id = "b"
agent = "systemd:b"

[[order]]
first = "a"
then = "b"
kind = "mandtory"
"#,
        20,
        8,
        "order[0].kind",
        "\"mandtory\" is not a valid value",
        "did you mean \"mandatory\"?",
    );
}

#[test]
fn invalid_on_fail_suggests_fence() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "a"
agent = "systemd:a"
[[resource.op]]
name = "monitor"
interval = "10s"
on_fail = "fenc"
"#,
        15,
        11,
        "resource[0].op[0].on_fail",
        "\"fenc\" is not a valid value",
        "did you mean \"fence\"?",
    );
}

#[test]
fn invalid_operation_role_suggests_promoted() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "a"
agent = "systemd:a"
[[resource.op]]
name = "monitor"
interval = "10s"
role = "promotd"
"#,
        15,
        8,
        "resource[0].op[0].role",
        "\"promotd\" is not a valid value",
        "did you mean \"promoted\"?",
    );
}

#[test]
fn invalid_fence_kind_lists_the_kinds_and_hides_kind_specific_keys() {
    let text = r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[fence_device]]
id = "f1"
kind = "ipmitool"
host = "10.0.1.1"
"#;
    expect_error_hint(
        text,
        11,
        8,
        "fence_device[0].kind",
        "\"ipmitool\" is not a valid value",
        "ipmi, libvirt, agent, watchdog",
    );
    // `host` is not reported as unknown on top of the bad kind.
    let diags = all_diagnostics(text);
    assert!(
        !diags.iter().any(|d| d.key == "fence_device[0].host"),
        "{}",
        dump(&diags)
    );
}

// ---------------------------------------------------------------- scores and durations

#[test]
fn score_infinite_is_not_a_score() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "a"
agent = "systemd:a"

[[location]]
resource = "a"
node = "n1"
score = "INFINITE"
"#,
        16,
        9,
        "location[0].score",
        "`INFINITE` is not a score",
        "\"INFINITY\"",
    );
}

#[test]
fn fractional_score_is_not_a_score() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "a"
agent = "systemd:a"

[[colocation]]
resource = "a"
with = "b"
score = 1.5

[[resource]]
id = "b"
agent = "systemd:b"
"#,
        16,
        9,
        "colocation[0].score",
        "`1.5` is not a score",
    );
}

#[test]
fn every_infinity_spelling_is_accepted_as_a_score() {
    let loaded = expect_ok(
        r#"
[cluster]
name = "c"

[cluster.resource_defaults]
resource_stickiness = "inf"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "a"
agent = "systemd:a"

[[location]]
id = "l1"
resource = "a"
node = "n1"
score = "INFINITY"

[[location]]
id = "l2"
resource = "a"
node = "n1"
score = "+INFINITY"

[[location]]
id = "l3"
resource = "a"
node = "n1"
score = "-INFINITY"

[[location]]
id = "l4"
resource = "a"
node = "n1"
score = "-inf"
"#,
    );
    let c = &loaded.config;
    assert_eq!(
        c.cluster.resource_defaults.resource_stickiness,
        hactl::config::Score::INFINITY
    );
    let scores: Vec<i64> = c.locations.iter().map(|l| l.score.value()).collect();
    assert_eq!(scores, [1_000_000, 1_000_000, -1_000_000, -1_000_000]);
}

#[test]
fn duration_with_an_unknown_unit_is_refused() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[cluster.op_defaults]
timeout = "10x"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
"#,
        5,
        11,
        "cluster.op_defaults.timeout",
        "\"10x\" is not a duration",
        "\"500ms\", \"10s\", \"2m\"",
    );
}

#[test]
fn negative_migration_threshold_is_refused() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "a"
agent = "systemd:a"
meta = { migration_threshold = -1 }
"#,
        12,
        32,
        "resource[0].meta.migration_threshold",
        "must be a positive count or \"INFINITY\"",
    );
}

// ---------------------------------------------------------------- ids

#[test]
fn resource_and_group_sharing_an_id_is_reported_at_the_second() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "web"
agent = "systemd:nginx"

[[resource]]
id = "db"
agent = "systemd:postgresql"

[[group]]
id = "web"
members = ["db"]
"#,
        18,
        6,
        "group[0].id",
        "id \"web\" is already used by the resource at resource[0]",
        "ids are shared",
    );
}

#[test]
fn invalid_resource_id_explains_the_id_rules() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "1web"
agent = "systemd:nginx"
"#,
        10,
        6,
        "resource[0].id",
        "\"1web\" is not a valid id",
        "ids start with a letter",
    );
}

// ---------------------------------------------------------------- nodes and links

#[test]
fn duplicate_node_name_is_reported_at_the_second_node() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[node]]
name = "n1"
id = 2
addresses = ["10.0.0.2"]
"#,
        10,
        8,
        "node[1].name",
        "node name \"n1\" is used twice (also at node[0])",
    );
}

#[test]
fn duplicate_node_id_is_reported_at_the_second_node() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[node]]
name = "n2"
id = 1
addresses = ["10.0.0.2"]
"#,
        11,
        6,
        "node[1].id",
        "node id 1 is used twice (also at node[0])",
    );
}

#[test]
fn duplicate_node_address_points_at_the_array_element() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[node]]
name = "n2"
id = 2
addresses = ["10.0.0.1"]
"#,
        12,
        14,
        "node[1].addresses[0]",
        "address 10.0.0.1 is used twice (also at node[0])",
    );
}

#[test]
fn node_with_fewer_addresses_than_links_is_refused() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[totem.link]]
network = "10.0.0.0/24"

[[totem.link]]
network = "10.0.1.0/24"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1", "10.0.1.1"]

[[node]]
name = "n2"
id = 2
addresses = ["10.0.0.2"]
"#,
        18,
        13,
        "node[1].addresses",
        "node \"n2\" has 1 address(es) but totem has 2 link(s)",
    );
}

#[test]
fn address_outside_its_link_network_points_at_the_address() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[totem.link]]
network = "10.0.0.0/24"

[[totem.link]]
network = "10.0.1.0/24"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1", "10.0.5.1"]
"#,
        13,
        26,
        "node[0].addresses[1]",
        "10.0.5.1 is not in link 1's network 10.0.1.0/24",
    );
}

#[test]
fn third_link_is_refused_at_its_header() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[totem.link]]
network = "10.0.0.0/24"

[[totem.link]]
network = "10.0.1.0/24"

[[totem.link]]
network = "10.0.2.0/24"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1", "10.0.1.1", "10.0.2.1"]
"#,
        10,
        1,
        "totem.link[2]",
        "3 links configured, at most 2 are supported",
    );
}

#[test]
fn both_address_and_addresses_is_refused() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
address = "10.0.0.1"
addresses = ["10.0.0.1"]
"#,
        7,
        11,
        "node[0].address",
        "both `address` and `addresses` are set",
    );
}

#[test]
fn node_name_starting_with_a_dash_is_refused() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[node]]
name = "-n2"
id = 2
addresses = ["10.0.0.2"]
"#,
        10,
        8,
        "node[1].name",
        "\"-n2\" is not a valid node name",
    );
}

#[test]
fn link_network_with_prefix_33_is_not_a_network() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[totem.link]]
network = "10.0.0.0/33"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
"#,
        5,
        11,
        "totem.link[0].network",
        "\"10.0.0.0/33\" is not a network",
    );
}

#[test]
fn unicast_mcast_addr_is_refused() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[totem.link]]
mcast_addr = "10.0.0.5"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
"#,
        5,
        14,
        "totem.link[0].mcast_addr",
        "10.0.0.5 is not a multicast address",
        "239.192.0.0/16",
    );
}

// ---------------------------------------------------------------- references

#[test]
fn unknown_resource_in_location_suggests_the_close_id() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "nginx"
agent = "systemd:nginx"

[[location]]
resource = "ngnix"
node = "n1"
score = 100
"#,
        14,
        12,
        "location[0].resource",
        "unknown resource \"ngnix\"",
        "did you mean \"nginx\"?",
    );
}

#[test]
fn unknown_resource_in_colocation_with_suggests_the_close_id() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "nginx"
agent = "systemd:nginx"

[[resource]]
id = "vip"
agent = "ipaddr"
params = { ip = "10.0.0.100" }

[[colocation]]
resource = "vip"
with = "ngix"
score = "INFINITY"
"#,
        20,
        8,
        "colocation[0].with",
        "unknown resource \"ngix\"",
        "did you mean \"nginx\"?",
    );
}

#[test]
fn unknown_resource_in_order_first_suggests_the_close_id() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "nginx"
agent = "systemd:nginx"

[[resource]]
id = "vip"
agent = "ipaddr"
params = { ip = "10.0.0.100" }

[[order]]
first = "vipp"
then = "nginx"
"#,
        19,
        9,
        "order[0].first",
        "unknown resource \"vipp\"",
        "did you mean \"vip\"?",
    );
}

#[test]
fn unknown_node_in_location_suggests_the_close_name() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "node1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "nginx"
agent = "systemd:nginx"

[[location]]
resource = "nginx"
node = "nod1"
score = 100
"#,
        15,
        8,
        "location[0].node",
        "unknown node \"nod1\"",
        "did you mean \"node1\"?",
    );
}

#[test]
fn constraint_naming_a_fence_device_says_it_is_not_a_resource() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
fence_levels = [["wd"]]

[[fence_device]]
id = "wd"
kind = "watchdog"

[[location]]
resource = "wd"
node = "n1"
score = 10
"#,
        15,
        12,
        "location[0].resource",
        "\"wd\" is a fence device, not a resource",
    );
}

#[test]
fn location_without_score_points_at_the_location() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "a"
agent = "systemd:a"

[[location]]
resource = "a"
node = "n1"
"#,
        13,
        1,
        "location[0].score",
        "missing required key `score`",
    );
}

#[test]
fn unknown_member_in_a_multi_line_array_points_at_its_line() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "vip"
agent = "ipaddr"
params = { ip = "10.0.0.100" }

[[resource]]
id = "nginx"
agent = "systemd:nginx"

[[group]]
id = "web"
members = [
    "vip",
    "ngnix",
]
"#,
        22,
        5,
        "group[0].members[1]",
        "unknown resource \"ngnix\"",
        "did you mean \"nginx\"?",
    );
}

// ---------------------------------------------------------------- groups and clones

#[test]
fn resource_in_two_groups_is_reported_at_the_second_group() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "a"
agent = "systemd:a"

[[resource]]
id = "b"
agent = "systemd:b"

[[group]]
id = "g1"
members = ["a", "b"]

[[group]]
id = "g2"
members = ["b"]
"#,
        23,
        12,
        "group[1].members[0]",
        "resource \"b\" is in two groups: \"g1\" and \"g2\"",
        "one group only",
    );
}

#[test]
fn group_member_listed_twice_is_reported_at_the_repeat() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "a"
agent = "systemd:a"

[[resource]]
id = "b"
agent = "systemd:b"

[[group]]
id = "g"
members = ["a", "b", "a"]
"#,
        19,
        22,
        "group[0].members[2]",
        "\"a\" is listed twice in group \"g\"",
    );
}

#[test]
fn group_containing_a_group_is_refused() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "a"
agent = "systemd:a"

[[group]]
id = "inner"
members = ["a"]

[[group]]
id = "outer"
members = ["inner"]
"#,
        19,
        12,
        "group[1].members[0]",
        "\"inner\" is a group; groups contain only primitive resources",
    );
}

#[test]
fn cloning_a_group_member_suggests_cloning_the_group() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "a"
agent = "systemd:a"

[[group]]
id = "g"
members = ["a"]

[[clone]]
id = "a-clone"
resource = "a"
"#,
        19,
        12,
        "clone[0].resource",
        "\"a\" is a member of group \"g\"",
        "clone the whole group: resource = \"g\"",
    );
}

#[test]
fn cloning_a_clone_is_refused() {
    expect_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "a"
agent = "systemd:a"

[[clone]]
id = "a-clone"
resource = "a"

[[clone]]
id = "a-clone-clone"
resource = "a-clone"
"#,
        19,
        12,
        "clone[1].resource",
        "\"a-clone\" is a clone and cannot be cloned",
    );
}

#[test]
fn promoted_max_above_clone_max_is_refused() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "db"
agent = "ocf:heartbeat:pgsql"

[[clone]]
id = "db-clone"
resource = "db"
clone_max = 2
promotable = true
promoted_max = 3
"#,
        18,
        16,
        "clone[0].promoted_max",
        "promoted_max (3) exceeds clone_max (2)",
    );
}

#[test]
fn location_on_a_resource_inside_a_clone_asks_for_the_clone() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "a"
agent = "systemd:a"

[[clone]]
id = "a-clone"
resource = "a"

[[location]]
resource = "a"
node = "n1"
score = 10
"#,
        18,
        12,
        "location[0].resource",
        "\"a\" is inside clone \"a-clone\"",
        "constrain the clone instead: \"a-clone\"",
    );
}

#[test]
fn colocation_with_itself_is_reported_at_with() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "b"
agent = "systemd:b"

[[colocation]]
resource = "b"
with = "b"
score = 10
"#,
        15,
        8,
        "colocation[0].with",
        "\"b\" is colocated with itself",
    );
}

#[test]
fn order_with_itself_is_reported_at_then() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "b"
agent = "systemd:b"

[[order]]
first = "b"
then = "b"
"#,
        15,
        8,
        "order[0].then",
        "\"b\" is ordered after itself",
    );
}

// ---------------------------------------------------------------- order cycles

#[test]
fn two_mandatory_orders_in_opposite_directions_form_a_cycle() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "a"
agent = "systemd:a"

[[resource]]
id = "b"
agent = "systemd:b"

[[order]]
first = "a"
then = "b"

[[order]]
first = "b"
then = "a"
"#,
        17,
        1,
        "order[0]",
        "mandatory orders form a cycle: a → b → a",
        "kind = \"optional\"",
    );
}

#[test]
fn order_against_a_groups_implicit_order_forms_a_cycle() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "a"
agent = "systemd:a"

[[resource]]
id = "b"
agent = "systemd:b"

[[group]]
id = "g"
members = ["a", "b"]

[[order]]
first = "b"
then = "a"
"#,
        21,
        1,
        "order[0]",
        "mandatory orders form a cycle: a → b → a",
    );
}

#[test]
fn orders_through_a_group_and_back_into_it_form_a_cycle() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "a"
agent = "systemd:a"

[[resource]]
id = "b"
agent = "systemd:b"

[[resource]]
id = "c"
agent = "systemd:c"

[[group]]
id = "g"
members = ["a", "b"]

[[order]]
first = "g"
then = "c"

[[order]]
first = "c"
then = "a"
"#,
        25,
        1,
        "order[0]",
        "mandatory orders form a cycle: a → b → c → a",
    );
}

#[test]
fn an_optional_order_does_not_close_a_cycle() {
    expect_ok(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "a"
agent = "systemd:a"

[[resource]]
id = "b"
agent = "systemd:b"

[[order]]
first = "a"
then = "b"

[[order]]
first = "b"
then = "a"
kind = "optional"
"#,
    );
}

// ---------------------------------------------------------------- promotable roles

#[test]
fn promoted_target_role_outside_a_promotable_clone_is_refused() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "vip"
agent = "ipaddr"
params = { ip = "10.0.0.100" }
meta = { target_role = "promoted" }
"#,
        13,
        24,
        "resource[0].meta.target_role",
        "\"vip\" is not in a promotable clone, so it has no promoted role",
        "use target_role = \"started\"",
    );
}

#[test]
fn promoted_with_role_on_a_plain_clone_is_refused() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "db"
agent = "ocf:heartbeat:pgsql"

[[clone]]
id = "db-clone"
resource = "db"

[[resource]]
id = "vip"
agent = "ipaddr"
params = { ip = "10.0.0.100" }

[[colocation]]
resource = "vip"
with = "db-clone"
score = "INFINITY"
with_role = "master"
"#,
        26,
        13,
        "colocation[0].with_role",
        "\"db-clone\" is not a promotable clone, so it has no promoted role",
    );
}

#[test]
fn promote_action_on_a_plain_clone_is_refused() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "db"
agent = "ocf:heartbeat:pgsql"

[[clone]]
id = "db-clone"
resource = "db"

[[resource]]
id = "vip"
agent = "ipaddr"
params = { ip = "10.0.0.100" }

[[order]]
first = "db-clone"
then = "vip"
first_action = "promote"
then_action = "start"
"#,
        25,
        16,
        "order[0].first_action",
        "\"db-clone\" is not a promotable clone, so it cannot be promoted",
    );
}

// ---------------------------------------------------------------- quorum

#[test]
fn two_node_with_three_nodes_is_refused() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[quorum]
two_node = true

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[node]]
name = "n2"
id = 2
addresses = ["10.0.0.2"]

[[node]]
name = "n3"
id = 3
addresses = ["10.0.0.3"]
"#,
        5,
        12,
        "quorum.two_node",
        "two_node is set but 3 node(s) are configured",
    );
}

#[test]
fn auto_tie_breaker_with_two_node_is_refused() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[quorum]
two_node = true
auto_tie_breaker = true

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[node]]
name = "n2"
id = 2
addresses = ["10.0.0.2"]
"#,
        6,
        20,
        "quorum.auto_tie_breaker",
        "auto_tie_breaker cannot be combined with two_node",
    );
}

#[test]
fn two_node_with_expected_votes_3_is_a_contradiction() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[quorum]
two_node = true
expected_votes = 3

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[node]]
name = "n2"
id = 2
addresses = ["10.0.0.2"]
"#,
        6,
        18,
        "quorum.expected_votes",
        "expected_votes = 3 contradicts two_node",
    );
}

#[test]
fn all_nodes_with_zero_votes_can_never_be_quorate() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
votes = 0

[[node]]
name = "n2"
id = 2
addresses = ["10.0.0.2"]
votes = 0
"#,
        4,
        1,
        "node",
        "every node has votes = 0",
    );
}

#[test]
fn last_man_standing_refuses_a_node_with_two_votes() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[quorum]
last_man_standing = true
wait_for_all = true

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[node]]
name = "n2"
id = 2
addresses = ["10.0.0.2"]
votes = 2

[[node]]
name = "n3"
id = 3
addresses = ["10.0.0.3"]
"#,
        17,
        9,
        "node[1].votes",
        "last_man_standing needs every node to have 1 vote; node \"n2\" has 2",
    );
}

#[test]
fn auto_tie_breaker_with_odd_node_count_needs_wait_for_all() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[quorum]
auto_tie_breaker = true

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[node]]
name = "n2"
id = 2
addresses = ["10.0.0.2"]

[[node]]
name = "n3"
id = 3
addresses = ["10.0.0.3"]
"#,
        5,
        20,
        "quorum.auto_tie_breaker",
        "auto_tie_breaker with an odd number of nodes (3) needs wait_for_all",
        "set wait_for_all = true",
    );
}

#[test]
fn tie_breaker_list_naming_a_missing_node_points_at_the_id() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[quorum]
auto_tie_breaker = true
auto_tie_breaker_node = [2, 7]

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[node]]
name = "n2"
id = 2
addresses = ["10.0.0.2"]
"#,
        6,
        29,
        "quorum.auto_tie_breaker_node[1]",
        "no node has id 7",
    );
}

// ---------------------------------------------------------------- built-in agents

#[test]
fn ipaddr_without_ip_points_at_params_and_names_ip() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "vip"
agent = "ipaddr"
params = { cidr_netmask = 24 }
"#,
        12,
        10,
        "resource[0].params.ip",
        "ipaddr needs the parameter `ip`",
        "ip = \"10.0.0.100\"",
    );
}

#[test]
fn ipaddr_with_a_bad_ip_points_at_the_value() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "vip"
agent = "ipaddr"
params = { ip = "10.0.0.300" }
"#,
        12,
        17,
        "resource[0].params.ip",
        "\"10.0.0.300\" is not an IP address",
    );
}

#[test]
fn ipaddr_cidr_netmask_33_is_not_a_prefix_length() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "vip"
agent = "ipaddr"
params = { ip = "10.0.0.100", cidr_netmask = 33 }
"#,
        12,
        46,
        "resource[0].params.cidr_netmask",
        "\"33\" is not a prefix length",
        "from 1 to 32",
    );
}

#[test]
fn filesystem_without_params_names_each_missing_parameter() {
    let text = r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "fs"
agent = "filesystem"
"#;
    for name in ["device", "directory", "fstype"] {
        expect_error(
            text,
            9,
            1,
            &format!("resource[0].params.{name}"),
            &format!("filesystem needs the parameter `{name}`"),
        );
    }
    assert_eq!(errors(&all_diagnostics(text)).len(), 3);
}

#[test]
fn filesystem_with_a_relative_directory_is_refused() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "fs"
agent = "filesystem"
params = { device = "/dev/sdb1", directory = "srv/www", fstype = "xfs" }
"#,
        12,
        46,
        "resource[0].params.directory",
        "\"srv/www\" is not an absolute mount point",
        "directory = \"/srv/www\"",
    );
}

#[test]
fn systemd_resource_with_params_is_refused() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "web"
agent = "systemd:nginx"
params = { worker_processes = 4 }
"#,
        12,
        10,
        "resource[0].params",
        "systemd resources take no params",
        "drop-in",
    );
}

#[test]
fn unknown_agent_class_is_refused() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "x"
agent = "upstart:foo"
"#,
        11,
        9,
        "resource[0].agent",
        "unknown agent class \"upstart\"",
        "systemd:UNIT, ipaddr, filesystem, ocf:PROVIDER:TYPE or lsb:SCRIPT",
    );
}

#[test]
fn ocf_agent_without_provider_is_malformed() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "y"
agent = "ocf:IPaddr2"
"#,
        11,
        9,
        "resource[0].agent",
        "\"ocf:IPaddr2\" is not an OCF agent: write ocf:PROVIDER:TYPE",
    );
}

// ---------------------------------------------------------------- operations

#[test]
fn monitor_without_interval_points_at_the_operation() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "a"
agent = "systemd:a"
[[resource.op]]
name = "monitor"
timeout = "10s"
"#,
        12,
        1,
        "resource[0].op[0].interval",
        "a monitor needs an interval",
        "interval = \"10s\"",
    );
}

#[test]
fn interval_on_start_is_refused() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "a"
agent = "systemd:a"
[[resource.op]]
name = "start"
interval = "10s"
"#,
        14,
        12,
        "resource[0].op[0].interval",
        "only monitors recur: start takes no interval",
    );
}

#[test]
fn on_fail_fence_without_a_fence_device_is_refused() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "a"
agent = "systemd:a"
[[resource.op]]
name = "stop"
on_fail = "fence"
"#,
        14,
        11,
        "resource[0].op[0].on_fail",
        "on_fail = \"fence\" but no [[fence_device]] is configured",
    );
}

#[test]
fn duplicate_monitor_with_the_same_interval_is_reported_at_the_second() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "b"
agent = "systemd:b"
[[resource.op]]
name = "monitor"
interval = "10s"
[[resource.op]]
name = "monitor"
interval = "10000ms"
timeout = "30s"
"#,
        15,
        1,
        "resource[0].op[1]",
        "duplicate monitor operation with the same interval",
    );
}

// ---------------------------------------------------------------- fence devices

#[test]
fn ipmi_without_host_username_and_password_file_names_each() {
    let text = r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[fence_device]]
id = "ipmi-n1"
kind = "ipmi"
"#;
    expect_error_hint(
        text,
        9,
        1,
        "fence_device[0].host",
        "missing required key `host`",
        "the BMC's address",
    );
    expect_error_hint(
        text,
        9,
        1,
        "fence_device[0].username",
        "missing required key `username`",
        "the BMC user",
    );
    expect_error_hint(
        text,
        9,
        1,
        "fence_device[0].password_file",
        "missing required key `password_file`",
        "root-only file",
    );
    assert_eq!(errors(&all_diagnostics(text)).len(), 3);
}

#[test]
fn ipmi_cipher_suite_0_is_refused_on_purpose() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
fence_levels = [["ipmi-n1"]]

[[fence_device]]
id = "ipmi-n1"
kind = "ipmi"
host = "10.0.1.1"
username = "admin"
password_file = "/etc/hactl/ipmi-n1.pass"
cipher_suite = 0
"#,
        16,
        16,
        "fence_device[0].cipher_suite",
        "only cipher suites 3 and 17 are supported",
        "suite 0 and the other weak suites are refused on purpose",
    );
}

#[test]
fn password_and_password_file_together_are_refused_at_password() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[fence_device]]
id = "ipmi-n1"
kind = "ipmi"
host = "10.0.1.1"
username = "admin"
password_file = "/etc/hactl/ipmi-n1.pass"
password = "secret"
"#,
        15,
        12,
        "fence_device[0].password",
        "both password and password_file are set",
        "keep password_file",
    );
}

#[test]
fn libvirt_over_ssh_is_refused() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[fence_device]]
id = "virt"
kind = "libvirt"
uri = "qemu+ssh://root@hv/system"
domain = "n1"
"#,
        12,
        7,
        "fence_device[0].uri",
        "unsupported libvirt URI \"qemu+ssh://root@hv/system\"",
    );
}

#[test]
fn fence_agent_not_named_fence_star_is_refused() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[fence_device]]
id = "ag"
kind = "agent"
agent = "ipmilan"
"#,
        12,
        9,
        "fence_device[0].agent",
        "\"ipmilan\" is not a fence agent",
        "fence_ipmilan",
    );
}

#[test]
fn action_in_fence_agent_params_is_refused() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
fence_levels = [["pdu"]]

[[fence_device]]
id = "pdu"
kind = "agent"
agent = "fence_apc"
params = { ip = "10.0.0.9", action = "reboot" }
"#,
        14,
        38,
        "fence_device[0].params.action",
        "`action` is chosen by hactl",
    );
}

#[test]
fn fence_level_naming_an_unknown_device_asks_to_declare_it() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
fence_levels = [["ipmi-node1"], ["pdu-a"]]

[[fence_device]]
id = "ipmi-node1"
kind = "ipmi"
host = "10.0.1.1"
username = "admin"
password_file = "/etc/hactl/ipmi-n1.pass"
"#,
        8,
        34,
        "node[0].fence_levels[1][0]",
        "unknown fence device \"pdu-a\"",
        "declare it in a [[fence_device]] section",
    );
}

#[test]
fn fence_level_with_a_typo_suggests_the_device() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
fence_levels = [["ipmi-nod1"]]

[[fence_device]]
id = "ipmi-node1"
kind = "ipmi"
host = "10.0.1.1"
username = "admin"
password_file = "/etc/hactl/ipmi-n1.pass"
"#,
        8,
        18,
        "node[0].fence_levels[0][0]",
        "unknown fence device \"ipmi-nod1\"",
        "did you mean \"ipmi-node1\"?",
    );
}

// ---------------------------------------------------------------- totem

#[test]
fn relative_authkey_path_is_refused() {
    expect_error_hint(
        r#"
[cluster]
name = "c"

[totem]
authkey = "etc/hactl/authkey"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
"#,
        5,
        11,
        "totem.authkey",
        "the authkey path must be absolute",
        "/etc/hactl/authkey",
    );
}

#[test]
fn consensus_shorter_than_join_is_refused() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[totem]
join = 100
consensus = 50

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
"#,
        6,
        13,
        "totem.consensus",
        "consensus (50 ms) is shorter than join (100 ms)",
    );
}

#[test]
fn max_messages_above_window_size_is_refused() {
    expect_sole_error(
        r#"
[cluster]
name = "c"

[totem]
max_messages = 60
window_size = 40

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
"#,
        5,
        16,
        "totem.max_messages",
        "max_messages (60) is larger than window_size (40)",
    );
}

// ---------------------------------------------------------------- positions

#[test]
fn columns_count_characters_not_bytes() {
    // "é" is two bytes in UTF-8 but one column.
    expect_error(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[resource]]
id = "r"
agent = "systemd:r"
meta = { priority = "é", target_role = "boss" }
"#,
        12,
        40,
        "resource[0].meta.target_role",
        "\"boss\" is not a valid value",
    );
}

#[test]
fn crlf_line_endings_give_the_same_positions() {
    let text = "[cluster]\r\nname = \"c\"\r\ncolour = 1\r\n\r\n[[node]]\r\nname = \"n1\"\r\nid = 40\r\naddresses = [\"10.0.0.1\"]\r\n";
    expect_error(text, 3, 1, "cluster.colour", "unknown key `colour`");
    expect_error(text, 7, 6, "node[0].id", "40 is out of range");
}

// ---------------------------------------------------------------- one pass

#[test]
fn independent_mistakes_across_sections_are_all_reported_in_file_order() {
    let text = r#"
[cluster]
name = "c"
no_quorum_polcy = "stop"

[totem]
transport = "udpx"

[[node]]
name = "n1"
id = 0
addresses = ["10.0.0.1"]

[[resource]]
id = "vip"
agent = "ipaddr"
params = { ip = "10.0.0.300" }

[[resource]]
id = "web"
agent = "systemd:nginx"
[[resource.op]]
name = "start"
interval = "10s"

[[location]]
resource = "ngnix"
node = "n1"
score = "INFINITE"
"#;
    let diags = all_diagnostics(text);
    let expected: [(usize, usize, &str, &str); 7] = [
        (3, 1, "cluster.no_quorum_polcy", "unknown key"),
        (6, 13, "totem.transport", "is not a valid value"),
        (10, 6, "node[0].id", "0 is out of range"),
        (16, 17, "resource[0].params.ip", "is not an IP address"),
        (23, 12, "resource[1].op[0].interval", "only monitors recur"),
        (26, 12, "location[0].resource", "unknown resource \"ngnix\""),
        (28, 9, "location[0].score", "is not a score"),
    ];
    for (line, column, key, part) in expected {
        find(&diags, Severity::Error, line, column, key, part);
    }
    let errs = errors(&diags);
    assert_eq!(
        errs.len(),
        expected.len(),
        "one error per mistake; all diagnostics:\n{}",
        dump(&diags)
    );
    let positions: Vec<(usize, usize)> = errs.iter().map(|d| (d.line, d.column)).collect();
    let mut sorted = positions.clone();
    sorted.sort();
    assert_eq!(positions, sorted, "errors come in file order");
}

#[test]
fn reference_and_quorum_mistakes_are_reported_together() {
    let text = r#"
[cluster]
name = "c"

[quorum]
two_node = true

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]

[[node]]
name = "n1"
id = 2
addresses = ["10.0.0.2"]

[[node]]
name = "n3"
id = 3
addresses = ["10.0.0.3"]

[[resource]]
id = "a"
agent = "systemd:a"

[[resource]]
id = "b"
agent = "systemd:b"

[[group]]
id = "g"
members = ["a", "b", "a"]

[[colocation]]
resource = "g"
with = "g"
score = 10
"#;
    let diags = all_diagnostics(text);
    find(
        &diags,
        Severity::Error,
        5,
        12,
        "quorum.two_node",
        "two_node is set but 3 node(s)",
    );
    find(
        &diags,
        Severity::Error,
        13,
        8,
        "node[1].name",
        "node name \"n1\" is used twice",
    );
    find(
        &diags,
        Severity::Error,
        32,
        22,
        "group[0].members[2]",
        "listed twice",
    );
    find(
        &diags,
        Severity::Error,
        36,
        8,
        "colocation[0].with",
        "colocated with itself",
    );
    assert_eq!(errors(&diags).len(), 4, "{}", dump(&diags));
}

// ---------------------------------------------------------------- warnings

#[test]
fn inline_ipmi_password_is_a_warning_not_an_error() {
    let d = expect_warning(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
fence_levels = [["ipmi-n1"]]

[[fence_device]]
id = "ipmi-n1"
kind = "ipmi"
host = "10.0.1.1"
username = "admin"
password = "hunter2"
"#,
        15,
        12,
        "fence_device[0].password",
        "password given inline",
    );
    assert!(d.hint.contains("password_file"), "{d}");
}

#[test]
fn crypto_off_is_a_loud_warning_not_an_error() {
    let loaded = expect_ok(
        r#"
[cluster]
name = "c"

[totem]
insecure_no_crypto_i_understand_anyone_can_join = true

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
"#,
    );
    assert!(loaded.config.totem.insecure_no_crypto);
    find(
        &loaded.warnings,
        Severity::Warning,
        5,
        51,
        "totem.insecure_no_crypto_i_understand_anyone_can_join",
        "crypto is OFF",
    );
}

#[test]
fn node_without_fencing_is_a_warning_when_devices_exist() {
    expect_warning(
        r#"
[cluster]
name = "c"

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
fence_levels = [["wd"]]

[[node]]
name = "n2"
id = 2
addresses = ["10.0.0.2"]

[[fence_device]]
id = "wd"
kind = "watchdog"
"#,
        10,
        1,
        "node[1].fence_levels",
        "node \"n2\" has no fencing",
    );
}

#[test]
fn several_warnings_are_all_returned_with_the_loaded_config() {
    let loaded = expect_ok(
        r#"
[cluster]
name = "c"

[totem]
insecure_no_crypto_i_understand_anyone_can_join = true

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
fence_levels = [["ipmi-n1"]]

[[node]]
name = "n2"
id = 2
addresses = ["10.0.0.2"]

[[fence_device]]
id = "ipmi-n1"
kind = "ipmi"
host = "10.0.1.1"
username = "admin"
password = "hunter2"
"#,
    );
    let w = &loaded.warnings;
    assert_eq!(w.len(), 3, "{}", dump(w));
    assert!(w.iter().all(|d| d.severity == Severity::Warning));
    find(
        w,
        Severity::Warning,
        5,
        51,
        "totem.insecure_no_crypto_i_understand_anyone_can_join",
        "crypto is OFF",
    );
    find(
        w,
        Severity::Warning,
        13,
        1,
        "node[1].fence_levels",
        "has no fencing",
    );
    find(
        w,
        Severity::Warning,
        23,
        12,
        "fence_device[0].password",
        "password given inline",
    );
    assert_eq!(loaded.config.nodes.len(), 2);
}

#[test]
fn warnings_come_after_errors_when_the_load_fails() {
    let text = r#"
[cluster]
name = "c"

[totem]
insecure_no_crypto_i_understand_anyone_can_join = true

[[node]]
name = "n1"
id = 99
addresses = ["10.0.0.1"]
"#;
    let diags = match parse(text) {
        Ok(_) => panic!("expected the load to fail"),
        Err(diags) => diags,
    };
    // One error, then the warnings (crypto off; no fencing at all).
    assert_eq!(diags.len(), 3, "{}", dump(&diags));
    assert_eq!(diags[0].severity, Severity::Error);
    assert_eq!((diags[0].line, diags[0].column), (9, 6));
    assert!(
        diags[1..].iter().all(|d| d.severity == Severity::Warning),
        "{}",
        dump(&diags)
    );
    assert!(
        diags[1..]
            .iter()
            .any(|d| (d.line, d.column) == (5, 51) && d.message.contains("crypto is OFF")),
        "{}",
        dump(&diags)
    );
    assert!(
        diags[1..]
            .iter()
            .any(|d| d.key == "fence_device" && d.message == "no fencing is configured"),
        "{}",
        dump(&diags)
    );
}

#[test]
fn diagnostic_display_shows_file_position_key_message_and_hint() {
    let d = expect_error(
        r#"
[cluster]
name = "c"

[totem]
tokn = 500

[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
"#,
        5,
        1,
        "totem.tokn",
        "unknown key",
    );
    assert_eq!(d.file, Path::new("case.toml"));
    assert_eq!(
        d.to_string(),
        "case.toml:5:1: error: totem.tokn: unknown key `tokn`\n    hint: did you mean `token`?"
    );
}

// ---------------------------------------------------------------- shipped examples

fn load_example(name: &str) -> Loaded {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("conf")
        .join(name);
    match hactl::config::load(&path) {
        Ok(loaded) => loaded,
        Err(e) => panic!("{} does not load:\n{e}", path.display()),
    }
}

#[test]
fn web_cluster_example_loads_without_errors() {
    let loaded = load_example("web-cluster.toml");
    assert_eq!(loaded.config.cluster.name, "web");
    assert_eq!(loaded.config.nodes.len(), 3);
    assert!(loaded.warnings.is_empty(), "{}", dump(&loaded.warnings));
}

#[test]
fn appliance_two_node_example_loads_without_errors() {
    let loaded = load_example("appliance-2node.toml");
    assert_eq!(loaded.config.cluster.name, "appliance");
    assert!(loaded.config.quorum.two_node);
    assert!(loaded.warnings.is_empty(), "{}", dump(&loaded.warnings));
}

// ---------------------------------------------------------------- no follow-up errors
// An entry that fails to parse must not make everything that refers to it
// an error too, and a defaulted key must be explained as defaulted.

#[test]
fn a_broken_fence_device_is_not_also_unknown_in_fence_levels() {
    expect_sole_error(
        r#"
[cluster]
name = "c"
[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
fence_levels = [["virt"]]
[[fence_device]]
id = "virt"
kind = "libvirt"
uri = "qemu+ssh://host/system"
domain = "n1"
"#,
        11,
        7,
        "fence_device[0].uri",
        "unsupported libvirt URI",
    );
}

#[test]
fn a_broken_resource_is_not_also_unknown_in_its_group() {
    expect_sole_error(
        r#"
[cluster]
name = "c"
[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
[[resource]]
id = "a"
agent = "upstart:a"
[[group]]
id = "g"
members = ["a"]
"#,
        9,
        9,
        "resource[0].agent",
        "unknown agent class \"upstart\"",
    );
}

#[test]
fn a_node_with_a_bad_name_still_counts_as_a_node() {
    expect_sole_error(
        r#"
[cluster]
name = "c"
[[node]]
name = ["n1"]
id = 1
addresses = ["10.0.0.1"]
"#,
        4,
        8,
        "node[0].name",
        "expected a string, found an array",
    );
}

#[test]
fn an_address_written_as_a_string_gets_one_error_not_two() {
    expect_sole_error(
        r#"
[cluster]
name = "c"
[[node]]
name = "n1"
id = 1
addresses = "10.0.0.1"
"#,
        6,
        13,
        "node[0].addresses",
        "found a single string",
    );
}

#[test]
fn a_node_without_any_address_is_refused() {
    expect_sole_error(
        r#"
[cluster]
name = "c"
[[node]]
name = "n1"
id = 1
addresses = []
"#,
        6,
        13,
        "node[0].addresses",
        "the node has no address",
    );
}

#[test]
fn suggestions_work_for_ids_with_hyphens() {
    expect_error_hint(
        r#"
[cluster]
name = "c"
[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
[[resource]]
id = "db-fs-a"
agent = "systemd:db"
[[location]]
resource = "db-fs-s"
node = "n1"
score = 10
"#,
        11,
        12,
        "location[0].resource",
        "unknown resource \"db-fs-s\"",
        "did you mean \"db-fs-a\"?",
    );
}

#[test]
fn a_tie_breaker_id_out_of_range_says_so() {
    expect_error_hint(
        r#"
[cluster]
name = "c"
[quorum]
auto_tie_breaker = true
auto_tie_breaker_node = [0]
[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
[[node]]
name = "n2"
id = 2
addresses = ["10.0.0.2"]
"#,
        5,
        26,
        "quorum.auto_tie_breaker_node[0]",
        "0 is not a node id",
        "1 to 32",
    );
}

#[test]
fn a_quoted_cipher_suite_is_a_type_error() {
    expect_error_hint(
        r#"
[cluster]
name = "c"
[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
[[fence_device]]
id = "bmc"
kind = "ipmi"
host = "10.9.0.1"
username = "u"
password_file = "/etc/hactl/bmc.pass"
cipher_suite = "17"
"#,
        13,
        16,
        "fence_device[0].cipher_suite",
        "expected an integer, found a string",
        "without quotes",
    );
}

#[test]
fn promote_operations_need_a_promotable_clone() {
    expect_error(
        r#"
[cluster]
name = "c"
[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
[[resource]]
id = "db"
agent = "ocf:heartbeat:pgsql"
[[resource.op]]
name = "promote"
"#,
        10,
        1,
        "resource[0].op",
        "\"db\" has a promote operation, but it is not in a promotable clone",
    );
}

#[test]
fn a_promoted_role_monitor_needs_a_promotable_clone() {
    expect_error(
        r#"
[cluster]
name = "c"
[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
[[resource]]
id = "db"
agent = "ocf:heartbeat:pgsql"
[[resource.op]]
name = "monitor"
interval = "5s"
role = "promoted"
"#,
        10,
        1,
        "resource[0].op",
        "a monitor for the promoted role",
    );
}

#[test]
fn two_locations_of_one_resource_on_one_node_get_distinct_derived_ids() {
    let loaded = parse(
        r#"
[cluster]
name = "c"
[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
[[resource]]
id = "a"
agent = "systemd:a"
[[location]]
resource = "a"
node = "n1"
score = 10
[[location]]
resource = "a"
node = "n1"
score = 20
"#,
    )
    .unwrap_or_else(|d| panic!("{}", dump(&d)));
    let ids: Vec<&str> = loaded
        .config
        .locations
        .iter()
        .map(|l| l.id.as_str())
        .collect();
    assert_eq!(ids, ["location-a-n1", "location-a-n1-2"]);
}

#[test]
fn a_derived_id_clashing_with_a_written_one_asks_for_an_explicit_id() {
    expect_error_hint(
        r#"
[cluster]
name = "c"
[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
[[resource]]
id = "location-a-n1"
agent = "systemd:a"
[[resource]]
id = "a"
agent = "systemd:b"
[[location]]
resource = "a"
node = "n1"
score = 10
"#,
        13,
        1,
        "location[0].id",
        "the id \"location-a-n1\" derived for this constraint is already used",
        "explicit id",
    );
}

#[test]
fn a_defaulted_then_action_is_explained() {
    expect_error_hint(
        r#"
[cluster]
name = "c"
[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
[[resource]]
id = "db"
agent = "ocf:heartbeat:pgsql"
[[clone]]
id = "db-clone"
resource = "db"
promotable = true
[[resource]]
id = "app"
agent = "systemd:app"
[[order]]
first = "db-clone"
first_action = "promote"
then = "app"
"#,
        17,
        1,
        "order[0].then_action",
        "(then_action defaults to first_action)",
        "then_action = \"start\"",
    );
}

#[test]
fn a_consensus_shorter_than_two_joins_gets_a_warning() {
    let d = expect_warning(
        r#"
[cluster]
name = "c"
[totem]
consensus = 80
[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
"#,
        4,
        13,
        "totem.consensus",
        "consensus (80 ms) leaves time for less than 2 rounds of join messages (50 ms each)",
    );
    assert!(d.hint.contains("remove consensus"), "{}", d.hint);
}

#[test]
fn totem_timers_accept_units() {
    let loaded = parse(
        r#"
[cluster]
name = "c"
[totem]
token = "1s"
join = 60
[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
"#,
    )
    .unwrap_or_else(|d| panic!("{}", dump(&d)));
    assert_eq!(loaded.config.totem.timers.token_ms, 1000);
    assert_eq!(loaded.config.totem.timers.join_ms, 60);
    // A third of the token (docs/configuration.md, consensus).
    assert_eq!(loaded.config.totem.timers.consensus_ms, 333);
}

// ---------------------------------------------------------------- from the documentation review

const TWO_NODES: &str = r#"
[cluster]
name = "c"
[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
[[node]]
name = "n2"
id = 2
addresses = ["10.0.0.2"]
"#;

#[test]
fn expected_votes_that_can_never_be_reached_are_refused() {
    expect_error_hint(
        &format!("{TWO_NODES}[quorum]\nexpected_votes = 5\n"),
        12,
        18,
        "quorum.expected_votes",
        "needs 3 votes for quorum, but the nodes have only 2 in all",
        "never be quorate",
    );
}

#[test]
fn a_tie_breaker_listed_twice_is_refused() {
    expect_error(
        &format!("{TWO_NODES}[quorum]\nauto_tie_breaker = true\nauto_tie_breaker_node = [1, 1]\n"),
        13,
        29,
        "quorum.auto_tie_breaker_node[1]",
        "node id 1 is listed twice",
    );
}

#[test]
fn a_tie_breaker_choice_without_auto_tie_breaker_warns() {
    expect_warning(
        &format!("{TWO_NODES}[quorum]\nauto_tie_breaker_node = \"highest\"\n"),
        12,
        25,
        "quorum.auto_tie_breaker_node",
        "has no effect without auto_tie_breaker = true",
    );
}

#[test]
fn a_fencing_timeout_of_zero_is_refused() {
    expect_error(
        &format!("{TWO_NODES}[[fence_device]]\nid = \"wd\"\nkind = \"watchdog\"\ntimeout = 0\n"),
        14,
        11,
        "fence_device[0].timeout",
        "a fencing timeout of 0",
    );
}

#[test]
fn a_watchdog_device_must_be_under_dev() {
    expect_error(
        &format!(
            "{TWO_NODES}[[fence_device]]\nid = \"wd\"\nkind = \"watchdog\"\ndevice = \"watchdog\"\n"
        ),
        14,
        10,
        "fence_device[0].device",
        "\"watchdog\" is not a device path",
    );
}

#[test]
fn lsb_resources_take_no_params() {
    expect_error(
        &format!(
            "{TWO_NODES}[[resource]]\nid = \"old\"\nagent = \"lsb:old\"\nparams = {{ x = 1 }}\n"
        ),
        14,
        10,
        "resource[0].params",
        "lsb resources take no params",
    );
}

#[test]
fn on_fail_demote_needs_a_promotable_clone() {
    expect_error(
        &format!(
            "{TWO_NODES}[[resource]]\nid = \"a\"\nagent = \"systemd:a\"\n[[resource.op]]\nname = \"monitor\"\ninterval = \"5s\"\non_fail = \"demote\"\n"
        ),
        14,
        1,
        "resource[0].op",
        "a monitor with on_fail = \"demote\"",
    );
}

#[test]
fn ordering_a_monitor_is_one_error_not_two() {
    expect_sole_error(
        &format!(
            "{TWO_NODES}[[resource]]\nid = \"a\"\nagent = \"systemd:a\"\n[[resource]]\nid = \"b\"\nagent = \"systemd:b\"\n[[order]]\nfirst = \"a\"\nthen = \"b\"\nfirst_action = \"monitor\"\n"
        ),
        20,
        16,
        "order[0].first_action",
        "monitor cannot be ordered",
    );
}

#[test]
fn mounting_over_the_root_filesystem_is_refused() {
    expect_error(
        &format!(
            "{TWO_NODES}[[resource]]\nid = \"fs\"\nagent = \"filesystem\"\nparams = {{ device = \"/dev/sdb1\", directory = \"/\", fstype = \"xfs\" }}\n"
        ),
        14,
        46,
        "resource[0].params.directory",
        "the root filesystem cannot be a resource's mount point",
    );
}

#[test]
fn a_cluster_without_fencing_loads_with_a_warning() {
    let loaded = parse(TWO_NODES).unwrap_or_else(|d| panic!("{}", dump(&d)));
    let w: Vec<&Diagnostic> = loaded
        .warnings
        .iter()
        .filter(|d| d.key == "fence_device")
        .collect();
    assert_eq!(w.len(), 1, "{}", dump(&loaded.warnings));
    assert_eq!(w[0].message, "no fencing is configured");
    assert!(w[0].hint.contains("cannot be fenced"), "{}", w[0].hint);
}

#[test]
fn a_multicast_group_under_udpu_is_ignored_with_a_warning() {
    let text = format!(
        "{TWO_NODES}[totem]\ntransport = \"udpu\"\n[[totem.link]]\nmcast_addr = \"239.192.1.1\"\n"
    );
    let loaded = parse(&text).unwrap_or_else(|d| panic!("{}", dump(&d)));
    find(
        &loaded.warnings,
        Severity::Warning,
        14,
        14,
        "totem.link[0].mcast_addr",
        "ignored with transport = \"udpu\"",
    );
    assert_eq!(
        loaded.config.totem.links[0].mcast_addr, None,
        "ignored means ignored: not used, shown or digested"
    );
}

#[test]
fn derived_constraint_ids_longer_than_64_characters_load_again_from_config_show() {
    let long = "r".repeat(60);
    let text = format!(
        "{TWO_NODES}[[resource]]\nid = \"{long}\"\nagent = \"systemd:a\"\n[[location]]\nresource = \"{long}\"\nnode = \"n1\"\nscore = 5\n"
    );
    let loaded = parse(&text).unwrap_or_else(|d| panic!("{}", dump(&d)));
    let shown = hactl::config::canonical(&loaded.config);
    let again = parse(&shown).unwrap_or_else(|d| panic!("{}", dump(&d)));
    assert_eq!(again.config, loaded.config);
}

#[test]
fn an_integer_beyond_64_bits_is_out_of_range() {
    expect_sole_error(
        &format!("{TWO_NODES}[totem]\nwindow_size = 99999999999999999999\n"),
        12,
        15,
        "totem.window_size",
        "99999999999999999999 is out of range",
    );
}

#[test]
fn a_monitor_with_a_bad_interval_is_one_error() {
    expect_sole_error(
        &format!(
            "{TWO_NODES}[[resource]]\nid = \"a\"\nagent = \"systemd:a\"\n[[resource.op]]\nname = \"monitor\"\ninterval = \"5 s\"\n"
        ),
        16,
        12,
        "resource[0].op[0].interval",
        "\"5 s\" is not a duration",
    );
}

#[test]
fn a_bad_address_is_one_error_even_with_two_links() {
    expect_sole_error(
        r#"
[cluster]
name = "c"
[[totem.link]]
network = "10.0.0.0/24"
[[totem.link]]
network = "10.1.0.0/24"
[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.300", "10.1.0.1"]
"#,
        10,
        14,
        "node[0].addresses",
        "\"10.0.0.300\" is not an IP address",
    );
}

#[test]
fn node_as_a_plain_table_is_one_error() {
    expect_sole_error(
        "[cluster]\nname = \"c\"\n[node]\nname = \"n1\"\n",
        3,
        1,
        "node",
        "must be an array of tables",
    );
}

#[test]
fn cluster_as_a_string_is_one_error() {
    expect_sole_error(
        "cluster = \"c\"\n[[node]]\nname = \"n1\"\nid = 1\naddresses = [\"10.0.0.1\"]\n",
        1,
        11,
        "cluster",
        "expected a table, found a string",
    );
}

#[test]
fn the_last_man_standing_window_accepts_units() {
    let loaded = parse(&format!("{TWO_NODES}[quorum]\nlast_man_standing = true\nwait_for_all = true\nlast_man_standing_window = \"20s\"\n")).unwrap_or_else(|d| panic!("{}", dump(&d)));
    assert_eq!(loaded.config.quorum.last_man_standing_window_ms, 20_000);
}

#[test]
fn ipmi_user_names_and_passwords_respect_the_protocol_limits() {
    let text = format!(
        "{TWO_NODES}[[fence_device]]\nid = \"bmc\"\nkind = \"ipmi\"\nhost = \"10.9.0.1\"\nusername = \"a-very-long-user-name\"\npassword = \"{}\"\n",
        "p".repeat(21)
    );
    expect_error(
        &text,
        15,
        12,
        "fence_device[0].username",
        "IPMI allows at most 16",
    );
    expect_error(
        &text,
        16,
        12,
        "fence_device[0].password",
        "IPMI 2.0 allows at most 20",
    );
}

#[test]
fn expected_votes_below_the_total_is_refused_as_a_split_brain() {
    expect_error_hint(
        &format!("{TWO_NODES}[quorum]\nexpected_votes = 1\n"),
        12,
        18,
        "quorum.expected_votes",
        "two disjoint partitions could both be quorate",
        "remove expected_votes",
    );
}

#[test]
fn last_man_standing_needs_wait_for_all() {
    expect_error_hint(
        &format!("{TWO_NODES}[quorum]\nlast_man_standing = true\nwait_for_all = false\n"),
        12,
        21,
        "quorum.last_man_standing",
        "lets two disjoint partitions both be quorate",
        "wait_for_all = true",
    );
}

// ---------------------------------------------------------------- libvirt URIs
// The configuration refuses exactly what the libvirt fence device refuses:
// both use hactl::config::libvirt_uri::parse. One case per refused form;
// the URI stands at line 10, column 7 (after `uri = `).

/// The libvirt fence device refuses `uri` with the same message.
fn device_refuses_too(uri: &str, message_part: &str) {
    let e = hactl::fencing::libvirt::LibvirtDevice::new(
        "virt",
        uri,
        "n1",
        std::time::Duration::from_secs(1),
    )
    .expect_err(uri);
    assert_eq!(e.kind, hactl::fencing::ErrorKind::Configuration, "{e}");
    assert!(e.detail.contains(message_part), "{uri}: {e}");
}

/// A configuration whose only libvirt device has `uri`.
fn libvirt_case(uri: &str) -> String {
    format!(
        r#"
[cluster]
name = "c"
[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
[[fence_device]]
id = "virt"
kind = "libvirt"
uri = "{uri}"
domain = "n1"
"#
    )
}

#[test]
fn libvirt_session_uri_is_refused_for_the_system_instance() {
    let text = libvirt_case("qemu:///session");
    expect_sole_error(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "unsupported libvirt URI \"qemu:///session\": the path \"/session\": hactl fences through the system instance",
    );
    device_refuses_too(
        "qemu:///session",
        "unsupported libvirt URI \"qemu:///session\": the path \"/session\": hactl fences through the system instance",
    );
    expect_error_hint(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "unsupported libvirt URI \"qemu:///session\": the path \"/session\": hactl fences through the system instance",
        "qemu:///system",
    );
}

#[test]
fn libvirt_tcp_port_zero_is_refused() {
    let text = libvirt_case("qemu+tcp://hv1:0/system");
    expect_sole_error(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "unsupported libvirt URI \"qemu+tcp://hv1:0/system\": the port \"0\" is not 1..65535",
    );
    device_refuses_too(
        "qemu+tcp://hv1:0/system",
        "unsupported libvirt URI \"qemu+tcp://hv1:0/system\": the port \"0\" is not 1..65535",
    );
    expect_error_hint(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "unsupported libvirt URI \"qemu+tcp://hv1:0/system\": the port \"0\" is not 1..65535",
        "tcp_port",
    );
}

#[test]
fn libvirt_tcp_port_past_65535_is_refused() {
    let text = libvirt_case("qemu+tcp://hv1:99999/system");
    expect_sole_error(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "the port \"99999\" is not 1..65535",
    );
    device_refuses_too(
        "qemu+tcp://hv1:99999/system",
        "the port \"99999\" is not 1..65535",
    );
    expect_error_hint(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "the port \"99999\" is not 1..65535",
        "16509",
    );
}

#[test]
fn libvirt_unsupported_uri_parameter_is_refused_by_name() {
    let text = libvirt_case("qemu:///system?no_verify=1");
    expect_sole_error(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "the URI parameter \"no_verify\" is not supported (only socket= and mode=)",
    );
    device_refuses_too(
        "qemu:///system?no_verify=1",
        "the URI parameter \"no_verify\" is not supported (only socket= and mode=)",
    );
    expect_error_hint(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "the URI parameter \"no_verify\" is not supported (only socket= and mode=)",
        "remove no_verify=",
    );
}

#[test]
fn libvirt_unknown_socket_mode_is_refused() {
    let text = libvirt_case("qemu:///system?mode=magic");
    expect_sole_error(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "mode=\"magic\": libvirt knows auto, legacy and direct",
    );
    device_refuses_too(
        "qemu:///system?mode=magic",
        "mode=\"magic\": libvirt knows auto, legacy and direct",
    );
    expect_error_hint(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "mode=\"magic\": libvirt knows auto, legacy and direct",
        "mode=legacy",
    );
}

#[test]
fn libvirt_bad_percent_escape_is_refused() {
    let text = libvirt_case("qemu+unix:///system?socket=/run/a%zz");
    expect_sole_error(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "a bad %-escape at \"%zz\"",
    );
    device_refuses_too(
        "qemu+unix:///system?socket=/run/a%zz",
        "a bad %-escape at \"%zz\"",
    );
    expect_error_hint(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "a bad %-escape at \"%zz\"",
        "%20",
    );
}

#[test]
fn libvirt_host_without_transport_means_tls_and_is_refused() {
    let text = libvirt_case("qemu://hv1/system");
    expect_sole_error(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "names a host without a transport, which libvirt reaches over TLS",
    );
    device_refuses_too(
        "qemu://hv1/system",
        "names a host without a transport, which libvirt reaches over TLS",
    );
    expect_error_hint(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "names a host without a transport, which libvirt reaches over TLS",
        "qemu+tcp://HOST[:PORT]/system",
    );
}

#[test]
fn libvirt_tls_transport_is_refused() {
    let text = libvirt_case("qemu+tls://hv1/system");
    expect_sole_error(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "the transport \"tls\" is not supported",
    );
    device_refuses_too(
        "qemu+tls://hv1/system",
        "the transport \"tls\" is not supported",
    );
    expect_error_hint(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "the transport \"tls\" is not supported",
        "qemu+tcp://HOST[:PORT]/system",
    );
}

#[test]
fn libvirt_unknown_transport_is_refused() {
    let text = libvirt_case("qemu+udp://hv1/system");
    expect_sole_error(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "unknown transport \"udp\"",
    );
    device_refuses_too("qemu+udp://hv1/system", "unknown transport \"udp\"");
    expect_error_hint(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "unknown transport \"udp\"",
        "qemu:///system",
    );
}

#[test]
fn libvirt_tcp_without_host_is_refused() {
    let text = libvirt_case("qemu+tcp:///system");
    expect_sole_error(&text, 10, 7, "fence_device[0].uri", "no host");
    device_refuses_too("qemu+tcp:///system", "no host");
    expect_error_hint(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "no host",
        "qemu+tcp://HOST[:PORT]/system",
    );
}

#[test]
fn libvirt_tcp_with_a_user_name_is_refused() {
    let text = libvirt_case("qemu+tcp://admin@hv1/system");
    expect_sole_error(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "a user name (\"admin@\"): hactl does not authenticate (SASL)",
    );
    device_refuses_too(
        "qemu+tcp://admin@hv1/system",
        "a user name (\"admin@\"): hactl does not authenticate (SASL)",
    );
    expect_error_hint(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "a user name (\"admin@\"): hactl does not authenticate (SASL)",
        "auth_tcp",
    );
}

#[test]
fn libvirt_socket_parameter_on_tcp_is_refused() {
    let text = libvirt_case("qemu+tcp://hv1/system?socket=/run/x");
    expect_sole_error(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "socket= and mode= are for unix sockets",
    );
    device_refuses_too(
        "qemu+tcp://hv1/system?socket=/run/x",
        "socket= and mode= are for unix sockets",
    );
    expect_error_hint(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "socket= and mode= are for unix sockets",
        "qemu+unix:///system?socket=PATH",
    );
}

#[test]
fn libvirt_unclosed_ipv6_bracket_is_refused() {
    let text = libvirt_case("qemu+tcp://[fd00::1/system");
    expect_sole_error(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "an unclosed \"[\" in the host",
    );
    device_refuses_too(
        "qemu+tcp://[fd00::1/system",
        "an unclosed \"[\" in the host",
    );
    expect_error_hint(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "an unclosed \"[\" in the host",
        "[fd00::1]",
    );
}

#[test]
fn libvirt_other_hypervisor_driver_is_refused() {
    let text = libvirt_case("xen:///system");
    expect_sole_error(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "the hypervisor driver \"xen\" is not supported",
    );
    device_refuses_too(
        "xen:///system",
        "the hypervisor driver \"xen\" is not supported",
    );
    expect_error_hint(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "the hypervisor driver \"xen\" is not supported",
        "qemu:///system",
    );
}

#[test]
fn libvirt_uri_without_scheme_is_refused() {
    let text = libvirt_case("/var/run/libvirt/libvirt-sock");
    expect_sole_error(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "it is not a URI (no \"://\")",
    );
    device_refuses_too(
        "/var/run/libvirt/libvirt-sock",
        "it is not a URI (no \"://\")",
    );
    expect_error_hint(
        &text,
        10,
        7,
        "fence_device[0].uri",
        "it is not a URI (no \"://\")",
        "qemu+unix:///system?socket=PATH",
    );
}

#[test]
fn libvirt_uris_the_device_accepts_pass_the_check() {
    for uri in [
        "qemu:///system",
        "qemu:///system?mode=direct",
        "qemu+unix:///system?socket=/run/hactl%20test/libvirt-sock",
        "qemu+tcp://10.0.0.250/system",
        "qemu+tcp://[fd00::1]:16599/system",
        "test:///default",
        "test+tcp://127.0.0.1:16510/default",
    ] {
        let loaded = expect_ok(&libvirt_case(uri));
        // And the device built from it takes it too.
        let dev = &loaded.config.fence_devices[0];
        hactl::fencing::libvirt::LibvirtDevice::from_config(dev)
            .unwrap_or_else(|e| panic!("{uri}: {e}"));
    }
}

#[test]
fn a_hold_above_half_the_token_retransmit_interval_is_clamped_with_a_warning() {
    // token 250 ms → token_retransmit 250 / 2.2 = 113 ms → at most 40 %: 45 ms.
    let d = expect_warning(
        r#"
[cluster]
name = "c"
[totem]
hold = 100
[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
"#,
        4,
        8,
        "totem.hold",
        "hold (100 ms) is more than 40 % of the token retransmit interval (113 ms with 1 node); 45 ms is used",
    );
    assert!(d.hint.contains("raise token"), "{}", d.hint);
}

#[test]
fn hold_accepts_zero_and_units_and_a_default_above_the_limit_is_clamped_silently() {
    let text = |hold: &str| {
        format!(
            "[cluster]\nname = \"c\"\n[totem]\n{hold}\n[[node]]\nname = \"n1\"\nid = 1\naddresses = [\"10.0.0.1\"]\n"
        )
    };
    let about_totem = |l: &Loaded| {
        l.warnings
            .iter()
            .filter(|d| d.key.starts_with("totem"))
            .cloned()
            .collect::<Vec<_>>()
    };
    let off = expect_ok(&text("hold = 0"));
    assert_eq!(off.config.totem.timers.hold_ms, 0);
    assert!(about_totem(&off).is_empty(), "{}", dump(&off.warnings));
    let units = expect_ok(&text("hold = \"20ms\""));
    assert_eq!(units.config.totem.timers.hold_ms, 20);
    // token 50 ms → retransmit 22 ms → hold at most 8 ms; the default
    // (45 ms) is clamped without a warning the user could not act on.
    let short = expect_ok(&text("token = 50"));
    assert!(about_totem(&short).is_empty(), "{}", dump(&short.warnings));
    assert_eq!(short.config.totem.timers.effective_hold_ms(1), 8);
}

#[test]
fn fencing_disabled_is_said_loudly_and_replaces_the_no_fencing_warning() {
    let text = "[cluster]\nname = \"c\"\nfencing_disabled_i_understand_split_brain = true\n\n[totem]\nauthkey = \"/k\"\n\n[[node]]\nname = \"a\"\nid = 1\naddresses = [\"10.0.0.1\"]\n";
    let loaded = hactl::config::parse_str(text, std::path::Path::new("f.toml")).expect("valid");
    assert!(loaded.config.cluster.fencing_disabled);
    let keys: Vec<(&str, &str)> = loaded
        .warnings
        .iter()
        .map(|d| (d.key.as_str(), d.message.as_str()))
        .collect();
    assert_eq!(
        keys,
        vec![(
            "cluster.fencing_disabled_i_understand_split_brain",
            "fencing is OFF: a node that is cut off keeps running its resources while the others start them too"
        )],
        "{:?}",
        loaded.warnings
    );
    assert_eq!(loaded.warnings[0].line, 3);
    // It survives `config show` (the canonical form).
    let shown = hactl::config::canonical(&loaded.config);
    assert!(
        shown.contains("fencing_disabled_i_understand_split_brain = true"),
        "{shown}"
    );
}
