//! The `ipaddr` agent against the real kernel: two network namespaces made
//! per test and joined by a veth pair; the agent runs in the first (on a
//! thread that entered it, with its own tokio runtime, as the daemon runs
//! in its node's namespace), and the second plays the peer that must learn
//! where the address went. Needs root and iproute2; nothing is skipped.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::Ipv6Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hactl::agents::{
    AgentAction, Notice, NoticeSender, OcfCode, OpOutcome, OpRequest, agent_from_config,
};
use hactl::config;
use nix::libc;
use nix::sched::{CloneFlags, setns};

// ---------------------------------------------------------------- namespaces

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (install iproute2: scripts/setup.sh)", args[0]));
    assert!(
        out.status.success(),
        "{} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two namespaces joined by a veth pair, deleted on drop.
struct Pair {
    a: String,
    b: String,
    veth_a: String,
    veth_b: String,
}

impl Pair {
    /// `a` holds 10.77.0.1/24 and fd00:77::1/64 on `veth_a`, `b` the .2 / ::2.
    fn new() -> Pair {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the ipaddr tests need root (network namespaces)"
        );
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        // Hex pid, a separator and the counter: unique across the parallel test
        // processes of nextest, and short enough for interface names (15).
        let id = format!("{:x}x{n}", std::process::id());
        let p = Pair {
            a: format!("hactl-ipaddr-{id}-a"),
            b: format!("hactl-ipaddr-{id}-b"),
            veth_a: format!("hip{id}a"),
            veth_b: format!("hip{id}b"),
        };
        sh(&["ip", "netns", "add", &p.a]);
        // From here on, Drop cleans up whatever was made.
        sh(&["ip", "netns", "add", &p.b]);
        sh(&[
            "ip", "link", "add", &p.veth_a, "netns", &p.a, "type", "veth", "peer", "name",
            &p.veth_b, "netns", &p.b,
        ]);
        for (ns, dev, host) in [(&p.a, &p.veth_a, "1"), (&p.b, &p.veth_b, "2")] {
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            sh(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("10.77.0.{host}/24"),
                "dev",
                dev,
            ]);
            sh(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("fd00:77::{host}/64"),
                "dev",
                dev,
                "nodad",
            ]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        p
    }

    fn mac_a(&self) -> [u8; 6] {
        let out = sh(&["ip", "-n", &self.a, "-o", "link", "show", &self.veth_a]);
        let text = out
            .split("link/ether ")
            .nth(1)
            .expect("veth has a MAC address");
        let mut mac = [0u8; 6];
        for (i, h) in text[..17].split(':').enumerate() {
            mac[i] = u8::from_str_radix(h, 16).unwrap();
        }
        mac
    }

    /// The addresses on `veth_a` as `ip -o addr` prints them.
    fn addrs_a(&self) -> String {
        sh(&[
            "ip",
            "-n",
            &self.a,
            "-o",
            "addr",
            "show",
            "dev",
            &self.veth_a,
        ])
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn enter_netns(ns: &str) {
    let f = File::open(format!("/run/netns/{ns}")).expect("namespace exists");
    setns(f, CloneFlags::CLONE_NEWNET).expect("setns into the test namespace");
}

// ---------------------------------------------------------------- the agent in a namespace

enum Job {
    Op(OpRequest, mpsc::Sender<OpOutcome>),
    Watch(NoticeSender, mpsc::Sender<Result<bool, String>>),
}

/// An `ipaddr` agent living on a thread inside a namespace, with a
/// current-thread runtime that keeps running between operations (so that
/// its background announcements and its watch go on).
struct NsAgent {
    tx: Option<tokio::sync::mpsc::UnboundedSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl NsAgent {
    fn new(ns: &str) -> NsAgent {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let ns = ns.to_string();
        let thread = std::thread::spawn(move || {
            enter_netns(&ns);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let res = config::Resource {
                id: "vip".into(),
                agent: config::Agent::IpAddr,
                params: BTreeMap::new(),
                ops: vec![],
                meta: Default::default(),
            };
            let agent = agent_from_config(&res).expect("ipaddr is built in");
            rt.block_on(async {
                while let Some(job) = rx.recv().await {
                    match job {
                        Job::Op(req, reply) => {
                            let _ = reply.send(agent.execute(req).await);
                        }
                        Job::Watch(notices, reply) => {
                            let _ = reply.send(agent.watch("vip", notices).await);
                        }
                    }
                }
            });
        });
        NsAgent {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    fn op(&self, action: AgentAction, params: &[(&str, &str)]) -> OpOutcome {
        let req = OpRequest {
            resource: "vip".into(),
            action,
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            timeout: Duration::from_secs(10),
            interval: Duration::ZERO,
            check_level: 0,
        };
        let (rtx, rrx) = mpsc::channel();
        self.tx.as_ref().unwrap().send(Job::Op(req, rtx)).unwrap();
        rrx.recv_timeout(Duration::from_secs(15))
            .expect("the agent answers within its timeout")
    }

    fn watch(&self) -> tokio::sync::mpsc::UnboundedReceiver<Notice> {
        let (ntx, nrx) = tokio::sync::mpsc::unbounded_channel();
        let (rtx, rrx) = mpsc::channel();
        self.tx
            .as_ref()
            .unwrap()
            .send(Job::Watch(ntx, rtx))
            .unwrap();
        let r = rrx
            .recv_timeout(Duration::from_secs(15))
            .expect("watch answers");
        assert_eq!(r, Ok(true), "ipaddr watches");
        nrx
    }
}

/// The next notice within `wait`, if any.
fn next_notice(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Notice>,
    wait: Duration,
) -> Option<Notice> {
    let t = Instant::now();
    loop {
        if let Ok(n) = rx.try_recv() {
            return Some(n);
        }
        if t.elapsed() >= wait {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for NsAgent {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------- capture on the peer

/// Frames of one ethertype received on `dev` in `ns`, from the moment
/// `new` returns until `collect` is called (at most for `max_wait`).
struct Capture {
    handle: JoinHandle<Vec<Vec<u8>>>,
    stop: mpsc::Sender<()>,
}

impl Capture {
    fn new(ns: &str, dev: &str, ethertype: u16, max_wait: Duration) -> Capture {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let (ns, dev) = (ns.to_string(), dev.to_string());
        let handle = std::thread::spawn(move || {
            enter_netns(&ns);
            let index = nix::net::if_::if_nametoindex(dev.as_str()).expect("peer veth exists");
            // SAFETY: plain socket calls on a descriptor owned by this thread.
            let fd = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_DGRAM,
                    i32::from(ethertype.to_be()),
                )
            };
            assert!(
                fd >= 0,
                "AF_PACKET socket: {}",
                std::io::Error::last_os_error()
            );
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = ethertype.to_be();
            sll.sll_ifindex = index as i32;
            let rc = unsafe {
                libc::bind(
                    fd,
                    (&sll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 50_000,
            };
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&tv as *const libc::timeval).cast(),
                    std::mem::size_of::<libc::timeval>() as u32,
                )
            };
            ready_tx.send(()).unwrap();
            let start = Instant::now();
            let mut frames = Vec::new();
            while start.elapsed() < max_wait && stop_rx.try_recv().is_err() {
                let mut buf = [0u8; 2048];
                let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n > 0 {
                    frames.push(buf[..n as usize].to_vec());
                }
            }
            unsafe { libc::close(fd) };
            frames
        });
        ready_rx.recv().expect("capture started");
        Capture {
            handle,
            stop: stop_tx,
        }
    }

    /// The frames received during the next `wait`.
    fn collect(self, wait: Duration) -> Vec<Vec<u8>> {
        std::thread::sleep(wait);
        let _ = self.stop.send(());
        self.handle.join().unwrap()
    }
}

/// Gratuitous ARP requests for `ip` among ARP payloads.
fn garps(frames: &[Vec<u8>], ip: [u8; 4]) -> Vec<Vec<u8>> {
    frames
        .iter()
        .filter(|f| f.len() >= 28 && f[6..8] == [0, 1] && f[14..18] == ip && f[24..28] == ip)
        .cloned()
        .collect()
}

/// Unsolicited neighbour advertisements for `ip` among IPv6 packets:
/// (hop limit, ICMPv6 message).
fn advertisements(frames: &[Vec<u8>], ip: Ipv6Addr) -> Vec<(u8, Vec<u8>)> {
    frames
        .iter()
        .filter(|f| f.len() >= 40 + 24 && f[6] == 58 && f[40] == 136 && f[48..64] == ip.octets())
        .map(|f| (f[7], f[40..].to_vec()))
        .collect()
}

fn reason_has(o: &OpOutcome, code: OcfCode, words: &[&str]) {
    assert_eq!(o.code, code, "{o:?}");
    for w in words {
        assert!(o.exit_reason.contains(w), "exit reason lacks {w:?}: {o:?}");
    }
}

// ---------------------------------------------------------------- tests

#[test]
fn start_adds_the_address_and_the_peer_learns_it_from_gratuitous_arp() {
    let p = Pair::new();
    // The peer accepts gratuitous ARP into its neighbour table (arp_accept),
    // so the table shows what a switch or router would learn.
    sh(&[
        "ip",
        "netns",
        "exec",
        &p.b,
        "sysctl",
        "-q",
        "-w",
        "net.ipv4.conf.all.arp_accept=1",
    ]);
    let agent = NsAgent::new(&p.a);
    let cap = Capture::new(&p.b, &p.veth_b, 0x0806, Duration::from_secs(5));
    let params = [
        ("ip", "10.77.0.100"),
        ("cidr_netmask", "24"),
        ("nic", p.veth_a.as_str()),
        ("label", "vip"),
        ("arp_count", "3"),
        ("arp_interval", "100"),
    ];
    let o = agent.op(AgentAction::Start, &params);
    assert_eq!(o.code, OcfCode::Success, "{o:?}");
    let addrs = p.addrs_a();
    assert!(addrs.contains("inet 10.77.0.100/24"), "{addrs}");
    assert!(
        addrs.contains(&format!("{}:vip", p.veth_a)),
        "label: {addrs}"
    );

    let frames = cap.collect(Duration::from_millis(1500));
    let g = garps(&frames, [10, 77, 0, 100]);
    assert_eq!(g.len(), 3, "arp_count = 3 gratuitous ARPs, saw {g:?}");
    let mac = p.mac_a();
    for f in &g {
        assert_eq!(f[8..14], mac, "sender hardware address is the interface's");
    }
    // The peer sent nothing, yet knows where the address lives.
    let neigh = sh(&["ip", "-n", &p.b, "neigh", "show", "10.77.0.100"]);
    let mac_text = mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    assert!(neigh.contains(&mac_text), "peer neighbour table: {neigh:?}");

    assert_eq!(
        agent.op(AgentAction::Monitor, &params).code,
        OcfCode::Success
    );
    assert_eq!(agent.op(AgentAction::Stop, &params).code, OcfCode::Success);
    assert!(!p.addrs_a().contains("10.77.0.100"));
}

#[test]
fn monitor_follows_the_address_and_the_link() {
    let p = Pair::new();
    let agent = NsAgent::new(&p.a);
    let params = [
        ("ip", "10.77.0.101"),
        ("cidr_netmask", "24"),
        ("nic", p.veth_a.as_str()),
        ("arp_count", "1"),
    ];
    assert_eq!(
        agent.op(AgentAction::Monitor, &params).code,
        OcfCode::NotRunning
    );
    assert_eq!(agent.op(AgentAction::Start, &params).code, OcfCode::Success);
    assert_eq!(
        agent.op(AgentAction::Monitor, &params).code,
        OcfCode::Success
    );

    sh(&["ip", "-n", &p.a, "link", "set", &p.veth_a, "down"]);
    let o = agent.op(AgentAction::Monitor, &params);
    reason_has(&o, OcfCode::ErrGeneric, &["10.77.0.101", &p.veth_a, "down"]);
    sh(&["ip", "-n", &p.a, "link", "set", &p.veth_a, "up"]);
    assert_eq!(
        agent.op(AgentAction::Monitor, &params).code,
        OcfCode::Success
    );

    // The far end goes away: the link loses its carrier.
    sh(&["ip", "-n", &p.b, "link", "set", &p.veth_b, "down"]);
    let o = agent.op(AgentAction::Monitor, &params);
    reason_has(&o, OcfCode::ErrGeneric, &[&p.veth_a, "no carrier"]);
    sh(&["ip", "-n", &p.b, "link", "set", &p.veth_b, "up"]);

    // Removed behind the agent's back.
    sh(&[
        "ip",
        "-n",
        &p.a,
        "addr",
        "del",
        "10.77.0.101/24",
        "dev",
        &p.veth_a,
    ]);
    assert_eq!(
        agent.op(AgentAction::Monitor, &params).code,
        OcfCode::NotRunning
    );
}

#[test]
fn start_and_stop_are_idempotent() {
    let p = Pair::new();
    let agent = NsAgent::new(&p.a);
    let params = [
        ("ip", "10.77.0.102"),
        ("nic", p.veth_a.as_str()),
        ("cidr_netmask", "24"),
        ("arp_count", "0"),
    ];
    assert_eq!(agent.op(AgentAction::Start, &params).code, OcfCode::Success);
    assert_eq!(agent.op(AgentAction::Start, &params).code, OcfCode::Success);
    assert_eq!(p.addrs_a().matches("10.77.0.102/").count(), 1);
    assert_eq!(agent.op(AgentAction::Stop, &params).code, OcfCode::Success);
    assert_eq!(agent.op(AgentAction::Stop, &params).code, OcfCode::Success);
    assert!(!p.addrs_a().contains("10.77.0.102"));
    assert_eq!(
        agent.op(AgentAction::Monitor, &params).code,
        OcfCode::NotRunning
    );
}

#[test]
fn nic_and_prefix_are_found_from_the_connected_route() {
    let p = Pair::new();
    let agent = NsAgent::new(&p.a);
    let params = [("ip", "10.77.0.103"), ("arp_count", "0")];
    assert_eq!(
        agent.op(AgentAction::ValidateAll, &params).code,
        OcfCode::Success
    );
    assert_eq!(agent.op(AgentAction::Start, &params).code, OcfCode::Success);
    assert!(
        p.addrs_a().contains("inet 10.77.0.103/24"),
        "{}",
        p.addrs_a()
    );
    assert_eq!(
        agent.op(AgentAction::Monitor, &params).code,
        OcfCode::Success
    );
    assert_eq!(agent.op(AgentAction::Stop, &params).code, OcfCode::Success);
    assert!(!p.addrs_a().contains("10.77.0.103"));
}

#[test]
fn malformed_ip_and_netmask_are_configuration_errors() {
    let p = Pair::new();
    let agent = NsAgent::new(&p.a);
    let nic = p.veth_a.as_str();
    for action in [
        AgentAction::Start,
        AgentAction::Monitor,
        AgentAction::ValidateAll,
    ] {
        let o = agent.op(action, &[("ip", "10.77.0.300"), ("nic", nic)]);
        reason_has(&o, OcfCode::ErrConfigured, &["ip \"10.77.0.300\""]);
        let o = agent.op(
            action,
            &[("ip", "10.77.0.104"), ("cidr_netmask", "40"), ("nic", nic)],
        );
        reason_has(&o, OcfCode::ErrConfigured, &["cidr_netmask \"40\""]);
    }
    // Stopping what could never have started succeeds.
    let o = agent.op(AgentAction::Stop, &[("ip", "10.77.0.300"), ("nic", nic)]);
    assert_eq!(o.code, OcfCode::Success, "{o:?}");
    assert!(!p.addrs_a().contains("10.77.0.104"));
}

#[test]
fn missing_nic_or_uncovered_address_is_not_installed_here() {
    let p = Pair::new();
    let agent = NsAgent::new(&p.a);
    let params = [
        ("ip", "10.77.0.105"),
        ("cidr_netmask", "24"),
        ("nic", "hnonexist0"),
    ];
    let o = agent.op(AgentAction::Start, &params);
    reason_has(&o, OcfCode::ErrInstalled, &["hnonexist0", "does not exist"]);
    assert_eq!(
        agent.op(AgentAction::Monitor, &params).code,
        OcfCode::NotRunning
    );
    assert_eq!(agent.op(AgentAction::Stop, &params).code, OcfCode::Success);

    // No nic, and no connected route covers the address.
    let o = agent.op(AgentAction::Start, &[("ip", "10.78.0.1")]);
    reason_has(&o, OcfCode::ErrInstalled, &["10.78.0.1", "set nic"]);
    assert!(!p.addrs_a().contains("10.78.0.1"));
}

#[test]
fn start_refuses_when_the_interface_is_down() {
    let p = Pair::new();
    let agent = NsAgent::new(&p.a);
    sh(&["ip", "-n", &p.a, "link", "set", &p.veth_a, "down"]);
    let params = [
        ("ip", "10.77.0.106"),
        ("cidr_netmask", "24"),
        ("nic", p.veth_a.as_str()),
    ];
    let o = agent.op(AgentAction::Start, &params);
    reason_has(&o, OcfCode::ErrGeneric, &[&p.veth_a, "down"]);
    assert!(!p.addrs_a().contains("10.77.0.106"));
}

#[test]
fn ipv6_address_is_added_announced_and_monitored() {
    let p = Pair::new();
    let agent = NsAgent::new(&p.a);
    let cap = Capture::new(&p.b, &p.veth_b, 0x86dd, Duration::from_secs(5));
    let ip: Ipv6Addr = "fd00:77::100".parse().unwrap();
    let params = [
        ("ip", "fd00:77::100"),
        ("nic", p.veth_a.as_str()),
        ("arp_count", "2"),
        ("arp_interval", "100"),
    ];
    let o = agent.op(AgentAction::Start, &params);
    assert_eq!(o.code, OcfCode::Success, "{o:?}");
    assert!(
        p.addrs_a().contains("inet6 fd00:77::100/64"),
        "prefix from the connected route: {}",
        p.addrs_a()
    );
    let frames = cap.collect(Duration::from_millis(1200));
    let na = advertisements(&frames, ip);
    assert_eq!(na.len(), 2, "arp_count = 2 advertisements, saw {na:?}");
    let mac = p.mac_a();
    for (hops, m) in &na {
        assert_eq!(*hops, 255, "neighbour discovery needs hop limit 255");
        assert_eq!(m[4] & 0x20, 0x20, "override flag");
        assert_eq!(&m[24..26], &[2, 1], "target link-layer address option");
        assert_eq!(m[26..32], mac);
    }
    assert_eq!(
        agent.op(AgentAction::Monitor, &params).code,
        OcfCode::Success
    );
    assert_eq!(agent.op(AgentAction::Stop, &params).code, OcfCode::Success);
    assert_eq!(
        agent.op(AgentAction::Monitor, &params).code,
        OcfCode::NotRunning
    );
    assert!(!p.addrs_a().contains("fd00:77::100"));
}

#[test]
fn meta_data_describes_every_parameter() {
    let p = Pair::new();
    let agent = NsAgent::new(&p.a);
    let o = agent.op(AgentAction::MetaData, &[]);
    assert_eq!(o.code, OcfCode::Success);
    for name in config::IPADDR_PARAMS.iter().map(|(n, _)| n) {
        assert!(o.output.contains(&format!("name=\"{name}\"")), "{name}");
    }
}

#[test]
fn stop_ends_the_announcements_of_the_address_it_gave_up() {
    let p = Pair::new();
    let agent = NsAgent::new(&p.a);
    let cap = Capture::new(&p.b, &p.veth_b, 0x0806, Duration::from_secs(5));
    let params = [
        ("ip", "10.77.0.107"),
        ("nic", p.veth_a.as_str()),
        ("arp_count", "10"),
        ("arp_interval", "1000"),
    ];
    assert_eq!(agent.op(AgentAction::Start, &params).code, OcfCode::Success);
    assert_eq!(agent.op(AgentAction::Stop, &params).code, OcfCode::Success);
    // Three would leave in the 2.5 s watched without the stop; only the
    // first (and a second, were the stop a second late) may.
    let g = garps(&cap.collect(Duration::from_millis(2500)), [10, 77, 0, 107]);
    assert!(
        (1..=2).contains(&g.len()),
        "announcements after stop: {} of 10",
        g.len()
    );
}

/// Figures, not assertions: `cargo test --test agent_ipaddr -- --ignored
/// --nocapture bench_`.
#[test]
#[ignore]
fn bench_ipaddr_operation_latency() {
    let p = Pair::new();
    let agent = NsAgent::new(&p.a);
    const CYCLES: usize = 50;
    for arp_count in ["0", "1", "5"] {
        let params = [
            ("ip", "10.77.0.200"),
            ("nic", p.veth_a.as_str()),
            ("cidr_netmask", "24"),
            ("arp_count", arp_count),
        ];
        let mut t: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
        for _ in 0..CYCLES {
            for (name, action) in [
                ("start", AgentAction::Start),
                ("monitor", AgentAction::Monitor),
                ("stop", AgentAction::Stop),
            ] {
                let t0 = Instant::now();
                assert_eq!(agent.op(action, &params).code, OcfCode::Success);
                t.entry(name).or_default().push(t0.elapsed());
            }
        }
        for (name, mut v) in t {
            v.sort();
            println!(
                "ipaddr arp_count={arp_count} {name:<8} n={CYCLES} median {:>7.3} ms  p90 {:>7.3} ms  max {:>7.3} ms",
                v[v.len() / 2].as_secs_f64() * 1e3,
                v[v.len() * 9 / 10].as_secs_f64() * 1e3,
                v[v.len() - 1].as_secs_f64() * 1e3
            );
        }
    }
}

#[test]
fn watch_notices_changes_behind_hactls_back_at_once() {
    let p = Pair::new();
    let agent = NsAgent::new(&p.a);
    let mut notices = agent.watch();
    let params = [
        ("ip", "10.77.0.108"),
        ("nic", p.veth_a.as_str()),
        ("cidr_netmask", "24"),
        ("arp_count", "0"),
    ];
    assert_eq!(agent.op(AgentAction::Start, &params).code, OcfCode::Success);
    let quiet = Duration::from_millis(300);
    assert_eq!(next_notice(&mut notices, quiet), None, "hactl's own start");

    sh(&[
        "ip",
        "-n",
        &p.a,
        "addr",
        "del",
        "10.77.0.108/24",
        "dev",
        &p.veth_a,
    ]);
    let n = next_notice(&mut notices, Duration::from_secs(3)).expect("removal noticed");
    assert_eq!(
        (n.resource.as_str(), n.code),
        ("vip", OcfCode::NotRunning),
        "{n:?}"
    );
    assert!(n.exit_reason.contains("10.77.0.108"), "{n:?}");

    assert_eq!(agent.op(AgentAction::Start, &params).code, OcfCode::Success);
    assert_eq!(next_notice(&mut notices, quiet), None, "hactl's own start");
    sh(&["ip", "-n", &p.a, "link", "set", &p.veth_a, "down"]);
    let n = next_notice(&mut notices, Duration::from_secs(3)).expect("link down noticed");
    assert_eq!(n.code, OcfCode::ErrGeneric, "{n:?}");
    assert!(n.exit_reason.contains("down"), "{n:?}");
    sh(&["ip", "-n", &p.a, "link", "set", &p.veth_a, "up"]);
    assert_eq!(
        next_notice(&mut notices, quiet),
        None,
        "recovery is no failure"
    );

    // Once stopped, nothing is hactl's business any more.
    assert_eq!(agent.op(AgentAction::Stop, &params).code, OcfCode::Success);
    sh(&["ip", "-n", &p.a, "link", "set", &p.veth_a, "down"]);
    assert_eq!(next_notice(&mut notices, quiet), None, "stopped: no notice");
}

#[test]
fn start_of_an_address_already_there_takes_it_and_announces_it_again() {
    let p = Pair::new();
    let agent = NsAgent::new(&p.a);
    // Left behind (by hand, or by a crashed run before a reboot).
    sh(&[
        "ip",
        "-n",
        &p.a,
        "addr",
        "add",
        "10.77.0.109/24",
        "dev",
        &p.veth_a,
    ]);
    let cap = Capture::new(&p.b, &p.veth_b, 0x0806, Duration::from_secs(5));
    let params = [
        ("ip", "10.77.0.109"),
        ("nic", p.veth_a.as_str()),
        ("arp_count", "2"),
        ("arp_interval", "100"),
    ];
    let o = agent.op(AgentAction::Start, &params);
    assert_eq!(o.code, OcfCode::Success, "{o:?}");
    assert_eq!(p.addrs_a().matches("10.77.0.109/").count(), 1);
    let g = garps(&cap.collect(Duration::from_millis(1200)), [10, 77, 0, 109]);
    assert_eq!(g.len(), 2, "announced again");
    // On another interface than nic: refused, named.
    let o = agent.op(
        AgentAction::Start,
        &[("ip", "10.77.0.109"), ("nic", "lo"), ("cidr_netmask", "32")],
    );
    reason_has(
        &o,
        OcfCode::ErrGeneric,
        &["already on interface", &p.veth_a, "lo"],
    );
}
