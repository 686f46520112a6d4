//! `hactl config show` writes the canonical form; parsing it must give back
//! the same configuration, and the membership digest must depend on exactly
//! the membership-relevant part.

use std::path::{Path, PathBuf};
use std::process::Command;

use hactl::config::{self, Config};

fn conf(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("conf")
        .join(name)
}

fn parse(text: &str) -> Config {
    match config::parse_str(text, Path::new("t.toml")) {
        Ok(l) => l.config,
        Err(d) => panic!(
            "{}",
            d.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// Everything the language has, in one file.
const EVERYTHING: &str = r#"
[cluster]
name = "all"
no_quorum_policy = "freeze"
[cluster.resource_defaults]
resource_stickiness = "INFINITY"
migration_threshold = 2
failure_timeout = "1m30s"
[cluster.op_defaults]
timeout = "45s"
monitor_interval = 0

[totem]
transport = "udp"
authkey = "/etc/hactl/other.key"
token = 250
token_coefficient = 100
consensus = 400
window_size = 60
max_messages = 20
[[totem.link]]
network = "10.1.0.0/24"
mcast_addr = "239.192.1.1"
port = 6000
ttl = 2
[[totem.link]]
network = "fd00:2::/64"

[quorum]
expected_votes = 4
wait_for_all = true
last_man_standing = true
last_man_standing_window = 20000
auto_tie_breaker = true
auto_tie_breaker_node = [3, 1]

[[node]]
name = "a"
id = 1
addresses = ["10.1.0.1", "fd00:2::1"]
fence_levels = [["ipmi-a"], ["pdu", "virt"]]
[[node]]
name = "b"
id = 2
addresses = ["10.1.0.2", "fd00:2::2"]
fence_levels = [["sbd"]]
[[node]]
name = "c"
id = 3
addresses = ["10.1.0.3", "fd00:2::3"]
[[node]]
name = "d"
id = 4
addresses = ["10.1.0.4", "fd00:2::4"]

[[fence_device]]
id = "ipmi-a"
kind = "ipmi"
host = "bmc-a.example.com"
port = 6230
username = "admin"
password_file = "/etc/hactl/a.pass"
cipher_suite = 3
privilege = "administrator"
delay = "2s"
[[fence_device]]
id = "pdu"
kind = "agent"
agent = "/usr/sbin/fence_apc"
password_file = "/etc/hactl/pdu.pass"
params = { ip = "10.9.9.9", plug = 4, "ssh-options" = "-x", secure = true }
[[fence_device]]
id = "virt"
kind = "libvirt"
uri = "qemu+tcp://10.9.9.1:16509/system"
domain = "a-vm"
timeout = "30s"
[[fence_device]]
id = "sbd"
kind = "watchdog"
device = "/dev/watchdog1"
watchdog_timeout = 5

[[resource]]
id = "db"
agent = "ocf:heartbeat:pgsql"
params = { pgdata = "/var/lib/pg", port = 5432 }
meta = { resource_stickiness = -5, migration_threshold = "INFINITY", failure_timeout = "500ms", priority = 10 }
[[resource.op]]
name = "monitor"
interval = "15s"
role = "unpromoted"
[[resource.op]]
name = "monitor"
interval = "10s"
role = "Master"
on_fail = "demote"
[[resource.op]]
name = "promote"
timeout = "2m"
[[resource.op]]
name = "stop"
on_fail = "block"

[[resource]]
id = "vip"
agent = "ipaddr"
params = { ip = "fd00:2::100", cidr_netmask = 64, nic = "eth1", arp_count = 3 }
[[resource]]
id = "old"
agent = "lsb:legacy-app"
meta = { target_role = "stopped" }
[[resource]]
id = "mnt"
agent = "filesystem"
params = { device = "LABEL=data", directory = "/data", fstype = "xfs", force_unmount = true }
[[resource]]
id = "pinger"
agent = "systemd:pinger.service"

[[group]]
id = "front"
members = ["vip", "mnt"]
meta = { resource_stickiness = 7 }

[[clone]]
id = "db-clone"
resource = "db"
clone_max = 2
promotable = true
promoted_max = 1
meta = { target_role = "promoted" }
[[clone]]
id = "pinger-clone"
resource = "pinger"
clone_node_max = 2

[[location]]
id = "db-not-on-d"
resource = "db-clone"
node = "d"
score = "-inf"
[[location]]
resource = "front"
node = "a"
score = "+inf"

[[colocation]]
resource = "front"
with = "db-clone"
with_role = "promoted"
score = "INFINITY"
[[colocation]]
id = "old-apart"
resource = "old"
with = "front"
score = -200

[[order]]
first = "db-clone"
first_action = "promote"
then = "front"
then_action = "start"
[[order]]
id = "ser"
first = "old"
then = "pinger-clone"
kind = "serialize"
[[order]]
first = "pinger-clone"
then = "front"
kind = "optional"
symmetrical = false
"#;

fn assert_round_trip(original: &Config) {
    let shown = config::canonical(original);
    let reparsed = parse(&shown);
    assert_eq!(
        &reparsed, original,
        "canonical form did not parse back to the same configuration:\n{shown}"
    );
    assert_eq!(
        config::canonical(&reparsed),
        shown,
        "canonical form is not a fixed point"
    );
}

#[test]
fn every_feature_survives_show_and_parse() {
    let c = parse(EVERYTHING);
    assert_round_trip(&c);
    // Spot-check that the file meant what it says (not just "round trips").
    assert_eq!(c.totem.links.len(), 2);
    assert_eq!(
        c.nodes[0].fence_levels,
        vec![
            vec!["ipmi-a".to_string()],
            vec!["pdu".to_string(), "virt".to_string()]
        ]
    );
    assert_eq!(c.clones[0].promoted_max, 1);
    assert_eq!(c.orders[0].first_action, config::OpName::Promote);
    assert_eq!(c.orders[1].kind, config::OrderKind::Serialize);
    assert!(
        !c.orders[1].symmetrical,
        "serialize orders default to not symmetrical"
    );
    assert_eq!(c.locations[1].score, config::Score::INFINITY);
    assert_eq!(
        c.locations[1].id, "location-front-a",
        "missing constraint ids are derived"
    );
    assert_eq!(
        c.resources[0].params["port"], "5432",
        "numbers reach agents as strings"
    );
}

#[test]
fn shipped_examples_survive_show_and_parse() {
    for name in ["web-cluster.toml", "appliance-2node.toml"] {
        let loaded = config::load(&conf(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(loaded.warnings.is_empty(), "{name}: {:?}", loaded.warnings);
        assert_round_trip(&loaded.config);
        // What `config show` prints loads without new warnings either.
        let again =
            config::parse_str(&config::canonical(&loaded.config), Path::new("shown.toml")).unwrap();
        assert!(again.warnings.is_empty(), "{name}: {:?}", again.warnings);
    }
}

#[test]
fn show_fills_in_defaults() {
    let c = parse(
        "[cluster]\nname = \"x\"\n[[node]]\nname = \"n1\"\nid = 1\naddresses = [\"10.0.0.1\"]\n[[resource]]\nid = \"r\"\nagent = \"systemd:r\"\n",
    );
    let shown = config::canonical(&c);
    for expected in [
        "no_quorum_policy = \"stop\"",
        "token = 250",
        "consensus = 100",
        "token_retransmits_before_loss_const = 2",
        "hold = 45",
        "port = 5405",
        "votes = 1",
        "migration_threshold = \"INFINITY\"",
        "name = \"monitor\"\ninterval = \"10s\"\ntimeout = \"20s\"\non_fail = \"restart\"",
        "name = \"stop\"\ntimeout = \"20s\"\non_fail = \"block\"",
    ] {
        assert!(
            shown.contains(expected),
            "missing {expected:?} in:\n{shown}"
        );
    }
    // Unicast by default: no multicast group.
    assert!(shown.contains("transport = \"udpu\""), "{shown}");
    assert!(!shown.contains("mcast_addr"), "{shown}");
}

#[test]
fn multicast_links_get_a_group_derived_from_the_cluster_name() {
    let text = |name: &str, addr: &str| {
        format!(
            "[cluster]\nname = \"{name}\"\n[totem]\ntransport = \"udp\"\n[[node]]\nname = \"n1\"\nid = 1\naddresses = [\"{addr}\"]\n"
        )
    };
    let group = |c: &Config| c.totem.links[0].mcast_addr.expect("derived").to_string();
    let web = group(&parse(&text("web", "10.0.0.1")));
    assert!(web.starts_with("239.192."), "{web}");
    assert_eq!(group(&parse(&text("web", "10.0.0.1"))), web, "stable");
    assert_ne!(
        group(&parse(&text("db", "10.0.0.1"))),
        web,
        "another cluster, another group"
    );
    assert!(
        group(&parse(&text("web", "fd00::1"))).starts_with("ff15:"),
        "IPv6 nodes get an IPv6 group"
    );
}

#[test]
fn consensus_defaults_to_a_third_of_the_token_in_effect_for_the_node_count() {
    let mut text =
        String::from("[cluster]\nname = \"x\"\n[totem]\ntoken = 1000\ntoken_coefficient = 500\n");
    for i in 1..=4 {
        text.push_str(&format!(
            "[[node]]\nname = \"n{i}\"\nid = {i}\naddresses = [\"10.0.0.{i}\"]\n"
        ));
    }
    // Four nodes: token in effect = 1000 + 2 × 500 = 2000 ms.
    assert_eq!(parse(&text).totem.timers.consensus_ms, 666);
    // A short token: two join intervals at least.
    let short = text.replace(
        "token = 1000\ntoken_coefficient = 500\n",
        "token = 150\njoin = 40\n",
    );
    assert_eq!(parse(&short).totem.timers.consensus_ms, 80);
}

#[test]
fn two_node_implies_wait_for_all_unless_turned_off() {
    let base = "[cluster]\nname = \"x\"\n[[node]]\nname = \"a\"\nid = 1\naddresses = [\"10.0.0.1\"]\n[[node]]\nname = \"b\"\nid = 2\naddresses = [\"10.0.0.2\"]\n";
    assert!(
        parse(&format!("{base}[quorum]\ntwo_node = true\n"))
            .quorum
            .wait_for_all
    );
    assert!(
        !parse(&format!(
            "{base}[quorum]\ntwo_node = true\nwait_for_all = false\n"
        ))
        .quorum
        .wait_for_all
    );
}

#[test]
fn digest_ignores_formatting_and_resources_but_not_membership() {
    let base = config::load(&conf("web-cluster.toml")).unwrap().config;
    let digest = config::membership_digest(&base);
    assert_eq!(digest.len(), 64);
    assert!(digest.chars().all(|c| c.is_ascii_hexdigit()));

    // The canonical form (other formatting, no comments) has the same digest.
    assert_eq!(
        config::membership_digest(&parse(&config::canonical(&base))),
        digest
    );

    // Resources, constraints, fencing and the local key path do not count.
    let mut c = base.clone();
    c.resources.pop();
    c.locations.clear();
    c.fence_devices.clear();
    c.nodes[0].fence_levels.clear();
    c.totem.authkey = "/root/key".into();
    assert_eq!(config::membership_digest(&c), digest);

    // Node order in the file does not count (ring order is by id).
    let mut c = base.clone();
    c.nodes.reverse();
    assert_eq!(config::membership_digest(&c), digest);

    // Anything the members must agree on does.
    let changes: Vec<(&str, Change)> = vec![
        (
            "address",
            Box::new(|c| c.nodes[1].addresses[0] = "192.168.10.99".parse().unwrap()),
        ),
        ("node id", Box::new(|c| c.nodes[2].id = 5)),
        ("votes", Box::new(|c| c.nodes[0].votes = 2)),
        ("token", Box::new(|c| c.totem.timers.token_ms += 1)),
        ("port", Box::new(|c| c.totem.links[0].port += 1)),
        ("crypto", Box::new(|c| c.totem.insecure_no_crypto = true)),
        ("quorum", Box::new(|c| c.quorum.wait_for_all = true)),
        ("name", Box::new(|c| c.cluster.name.push('2'))),
    ];
    for (what, change) in changes {
        let mut c = base.clone();
        change(&mut c);
        assert_ne!(
            config::membership_digest(&c),
            digest,
            "changing the {what} must change the digest"
        );
    }
}

type Change = Box<dyn Fn(&mut Config)>;

fn hactl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hactl"))
        .args(args)
        .output()
        .expect("run hactl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_show_command_prints_a_file_that_checks_and_shows_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let web = conf("web-cluster.toml");
    let (code, shown, err) = hactl(&["config", "show", web.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let copy = dir.path().join("shown.toml");
    std::fs::write(&copy, &shown).unwrap();
    let (code, again, err) = hactl(&["--config", copy.to_str().unwrap(), "config", "show"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(again, shown);

    let (code, digest, _) = hactl(&["config", "show", "--digest", web.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(
        digest.trim(),
        config::membership_digest(&config::load(&web).unwrap().config)
    );
}

#[test]
fn config_check_command_exits_0_for_examples_and_1_listing_every_error() {
    for name in ["web-cluster.toml", "appliance-2node.toml"] {
        let (code, out, err) = hactl(&["config", "check", conf(name).to_str().unwrap()]);
        assert_eq!(code, 0, "{name}: {out}{err}");
        assert!(out.contains(": OK: cluster"), "{out}");
        assert!(out.contains("membership digest "), "{out}");
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[cluster]\nname = \"x\"\ncolour = 1\n[[node]]\nname = \"a\"\nid = 99\naddresses = [\"10.0.0.1\"]\n").unwrap();
    let (code, out, _) = hactl(&["config", "check", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let file = bad.display().to_string();
    assert!(
        out.contains(&format!(
            "{file}:3:1: error: cluster.colour: unknown key `colour`"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{file}:6:6: error: node[0].id: 99 is out of range"
        )),
        "{out}"
    );
    assert!(out.contains("2 error(s)"), "{out}");

    let (code, _, err) = hactl(&["config", "check", "/nonexistent/cluster.toml"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("/nonexistent/cluster.toml: cannot read the configuration"),
        "{err}"
    );
}

#[test]
fn config_show_hides_inline_passwords_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "[cluster]\nname = \"x\"\n[[node]]\nname = \"a\"\nid = 1\naddresses = [\"10.0.0.1\"]\nfence_levels = [[\"bmc\"], [\"pdu\"]]\n\
         [[fence_device]]\nid = \"bmc\"\nkind = \"ipmi\"\nhost = \"10.9.0.1\"\nusername = \"u\"\npassword = \"s3cret-bmc\"\n\
         [[fence_device]]\nid = \"pdu\"\nkind = \"agent\"\nagent = \"fence_apc\"\nparams = { ip = \"10.9.0.2\", password = \"s3cret-pdu\" }\n",
    )
    .unwrap();
    let (code, shown, err) = hactl(&["config", "show", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("# password = (hidden"), "{shown}");
    assert!(shown.contains("# params.password = (hidden"), "{shown}");
    assert!(
        err.contains("password given inline"),
        "the warnings still go to stderr: {err}"
    );

    let (code, shown, _) = hactl(&["config", "show", "--show-secrets", file.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        shown.contains("password = \"s3cret-bmc\"") && shown.contains("password = \"s3cret-pdu\""),
        "{shown}"
    );
}
