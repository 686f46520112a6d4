//! `ipaddr`: a virtual IP address, added and removed through rtnetlink and
//! announced to the segment after it is added (gratuitous ARP for IPv4, an
//! unsolicited neighbour advertisement for IPv6), so that peers and
//! switches learn at once that the address moved here.
//!
//! Parameters (see [`info`]): `ip` (required), `cidr_netmask`, `nic`,
//! `label`, `arp_count`, `arp_interval`. Without `nic`, the interface is the
//! one whose connected route (a main-table route without a gateway) covers
//! the address, longest prefix first, and the prefix length defaults to that
//! route's, as `ip route get` would choose it.
//!
//! `watch` listens to rtnetlink's link and address multicast groups and,
//! while the resource is started, reports the address removed or its link
//! failed behind hactl's back as a [`Notice`] at once.
//!
//! Where it runs: every socket is opened by the thread that polls the
//! operation, so the agent works in the network namespace of its caller
//! (the daemon's, or a test's namespace entered on a dedicated thread).
//!
//! Codes: malformed parameters are [`OcfCode::ErrConfigured`] (wrong on
//! every node); an interface that does not exist here (or no interface whose
//! route covers the address) is [`OcfCode::ErrInstalled`] on start (another
//! node may have it); `monitor` says [`OcfCode::NotRunning`] when the address
//! is not on the interface and [`OcfCode::ErrGeneric`] when it is but the
//! link is down or has no carrier; `stop` of an absent address succeeds.
//!
//! IPv6 addresses are added with `nodad`: a virtual address moves between
//! nodes that the cluster already keeps from holding it together, and
//! duplicate address detection would hold it back for a second or more.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkBuffer, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use nix::libc;
use tokio::task::AbortHandle;

use super::{
    AgentAction, AgentFuture, AgentInfo, NoticeSender, OcfCode, OpOutcome, OpRequest, ParamInfo,
    ResourceAgent, WatchFuture,
};

/// Announcements sent after adding the address when `arp_count` is unset
/// (IPaddr2's default).
pub const ARP_COUNT_DEFAULT: u32 = 5;
/// Milliseconds between announcements when `arp_interval` is unset.
pub const ARP_INTERVAL_MS_DEFAULT: u64 = 200;
/// The kernel's limit on an address label, without the final NUL (IFNAMSIZ - 1).
const LABEL_LEN_MAX: usize = 15;
/// How long one netlink request may wait for the kernel's answer.
const NETLINK_RECV_TIMEOUT_MS: u64 = 5_000;
/// Datagrams read for one request before giving up (a dump of a few
/// thousand addresses takes a few dozen).
const NETLINK_DATAGRAMS_MAX: usize = 10_000;
/// ETH_P_ARP.
const ETH_P_ARP: u16 = 0x0806;

/// The `ipaddr` agent for one resource.
pub struct IpAddrAgent {
    resource: String,
    /// The announcements still being sent after the last start: stop aborts
    /// them, so no announcement leaves for an address this node gave up.
    announcer: Mutex<Option<AbortHandle>>,
    /// The parameters of the last successful start, until the next stop or
    /// start: what [`ResourceAgent::watch`] holds the kernel's changes
    /// against. `None` while hactl itself changes the address, so that its
    /// own changes raise no notice.
    started: Arc<Mutex<Option<Params>>>,
    watcher: Mutex<Option<AbortHandle>>,
}

impl IpAddrAgent {
    pub fn new(resource: &str) -> IpAddrAgent {
        IpAddrAgent {
            resource: resource.to_string(),
            announcer: Mutex::new(None),
            started: Arc::new(Mutex::new(None)),
            watcher: Mutex::new(None),
        }
    }

    fn abort_announcer(&self) {
        if let Some(h) = self.announcer.lock().unwrap().take() {
            h.abort();
        }
    }
}

impl Drop for IpAddrAgent {
    fn drop(&mut self) {
        self.abort_announcer();
        if let Some(h) = self.watcher.lock().unwrap().take() {
            h.abort();
        }
    }
}

impl ResourceAgent for IpAddrAgent {
    fn name(&self) -> String {
        "ipaddr".to_string()
    }

    fn execute(&self, req: OpRequest) -> AgentFuture<'_> {
        Box::pin(async move {
            let timeout = req.timeout;
            let action = req.action;
            match tokio::time::timeout(timeout, self.run(req)).await {
                Ok(outcome) => outcome,
                Err(_) => OpOutcome::fail(
                    OcfCode::ErrGeneric,
                    format!(
                        "ipaddr {action} of resource \"{}\" did not finish within {} ms",
                        self.resource,
                        timeout.as_millis()
                    ),
                ),
            }
        })
    }

    /// Listens to the kernel's address and link changes (rtnetlink
    /// multicast) and, while the resource is started, checks the address
    /// after each: removed behind hactl's back, or its link down or without
    /// carrier, is noticed at once instead of at the next monitor. One
    /// notice per change of verdict.
    fn watch(&self, resource: &str, notices: NoticeSender) -> WatchFuture<'_> {
        // Both sockets are opened here, by the caller's thread, so that
        // they live in the caller's network namespace.
        let sockets = Rtnl::open().and_then(|nl| Ok((nl, listen_socket()?)));
        let resource = resource.to_string();
        Box::pin(async move {
            let (mut nl, events) = sockets.map_err(|e| {
                format!("ipaddr {resource}: cannot listen to rtnetlink changes: {e}")
            })?;
            // SAFETY: the socket owns its descriptor and moves into the
            // AsyncFd, which alone holds it until dropped.
            let events = unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(
                    events,
                    tokio::io::Interest::READABLE,
                )
            }
            .map_err(|e| {
                format!(
                    "ipaddr {resource}: cannot register the rtnetlink socket: {}",
                    e.into_parts().1
                )
            })?;
            let started = Arc::clone(&self.started);
            let task = tokio::spawn(async move {
                let mut reported: Option<OcfCode> = None;
                loop {
                    let Ok(mut ready) = events.readable().await else {
                        return;
                    };
                    // Drain: only the fact that something changed matters.
                    loop {
                        match ready.get_inner().recv_from_full() {
                            Ok(_) => {}
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            // ENOBUFS: changes were lost; the check below
                            // looks at the whole state anyway.
                            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
                            Err(e) => {
                                tracing::warn!(%resource, "rtnetlink watch ended: {e}");
                                return;
                            }
                        }
                    }
                    ready.clear_ready();
                    let Some(p) = started.lock().unwrap().clone() else {
                        reported = None;
                        continue;
                    };
                    let verdict = check(&mut nl, &p);
                    if !super::notice_on_change(&mut reported, &resource, verdict, &notices) {
                        return;
                    }
                }
            });
            if let Some(old) = self.watcher.lock().unwrap().replace(task.abort_handle()) {
                old.abort();
            }
            Ok(true)
        })
    }
}

/// A non-blocking rtnetlink socket subscribed to link and address changes.
fn listen_socket() -> io::Result<Socket> {
    // RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR.
    const GROUPS: [u32; 3] = [1, 5, 9];
    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind_auto()?;
    for g in GROUPS {
        sock.add_membership(g)?;
    }
    sock.set_non_blocking(true)?;
    Ok(sock)
}

/// What `hactl ra info ipaddr` shows.
pub fn info() -> AgentInfo {
    let p = |name: &str, required, ty: &str, default: Option<&str>, short: &str, long: &str| {
        ParamInfo {
            name: name.into(),
            required,
            content_type: ty.into(),
            default: default.map(Into::into),
            shortdesc: short.into(),
            longdesc: long.into(),
        }
    };
    AgentInfo {
        name: "ipaddr".into(),
        shortdesc: "A virtual IPv4 or IPv6 address, managed through rtnetlink".into(),
        longdesc: "Adds the address to an interface on start and announces it \
                   (gratuitous ARP for IPv4, unsolicited neighbour advertisement for \
                   IPv6), removes it on stop, and checks on monitor that it is on the \
                   interface and the link is up."
            .into(),
        params: vec![
            p(
                "ip",
                true,
                "string",
                None,
                "The address to manage",
                "The IPv4 or IPv6 address, without prefix length (10.0.0.100, fd00::100); \
                 not a loopback, multicast, wildcard or broadcast address.",
            ),
            p(
                "cidr_netmask",
                false,
                "integer",
                None,
                "Prefix length",
                "1 to 32 for IPv4, 1 to 128 for IPv6, e.g. 24. Default: the prefix of the \
                 connected route that covers the address.",
            ),
            p(
                "nic",
                false,
                "string",
                None,
                "Interface",
                "The interface to add the address to. Default: the interface whose \
                 connected route covers the address.",
            ),
            p(
                "label",
                false,
                "string",
                None,
                "Address label (IPv4)",
                "Appended to the interface name as NIC:LABEL (as ifconfig aliases show); \
                 15 characters at most in all. IPv6 addresses have no labels.",
            ),
            p(
                "arp_count",
                false,
                "integer",
                Some("5"),
                "Announcements",
                "Gratuitous ARPs (IPv4) or unsolicited neighbour advertisements (IPv6) \
                 sent after adding the address: 0 to 100; 0 sends none.",
            ),
            p(
                "arp_interval",
                false,
                "integer",
                Some("200"),
                "Milliseconds between announcements",
                "1 to 10,000. The first announcement is sent at once; the others follow \
                 in the background and stop when the resource is stopped.",
            ),
        ],
        actions: vec![
            ("start".into(), Some(Duration::from_secs(20))),
            ("stop".into(), Some(Duration::from_secs(20))),
            ("monitor".into(), Some(Duration::from_secs(20))),
            ("validate-all".into(), Some(Duration::from_secs(20))),
            ("meta-data".into(), Some(Duration::from_secs(5))),
        ],
    }
}

// ---------------------------------------------------------------- parameters

/// The parameters, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Params {
    pub ip: IpAddr,
    pub prefix: Option<u8>,
    pub nic: Option<String>,
    pub label: Option<String>,
    pub arp_count: u32,
    pub arp_interval: Duration,
}

/// Parses the parameters; `Err` is the reason for people (the caller
/// answers [`OcfCode::ErrConfigured`]).
pub(crate) fn parse_params(
    params: &std::collections::BTreeMap<String, String>,
) -> Result<Params, String> {
    let ip_s = params
        .get("ip")
        .ok_or("the parameter ip is missing: set ip = \"ADDRESS\" in the resource's params")?;
    let ip: IpAddr = ip_s.trim().parse().map_err(|_| {
        format!("ip \"{ip_s}\" is not an IPv4 or IPv6 address (e.g. 10.0.0.100 or fd00::100)")
    })?;
    if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() {
        return Err(format!(
            "ip \"{ip_s}\" is a {} address, which cannot be a virtual IP",
            if ip.is_unspecified() {
                "wildcard"
            } else if ip.is_multicast() {
                "multicast"
            } else {
                "loopback"
            }
        ));
    }
    if let IpAddr::V4(v4) = ip
        && v4.is_broadcast()
    {
        return Err(format!("ip \"{ip_s}\" is the broadcast address"));
    }
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match params.get("cidr_netmask") {
        None => None,
        Some(m) => match m.trim().parse::<u8>() {
            Ok(n) if (1..=max).contains(&n) => Some(n),
            _ => {
                return Err(format!(
                    "cidr_netmask \"{m}\" is not a prefix length from 1 to {max} for {ip}"
                ));
            }
        },
    };
    let nic = match params.get("nic").map(|s| s.trim()) {
        None | Some("") => None,
        Some(n)
            if n.len() > LABEL_LEN_MAX
                || n.contains(['/', ':'])
                || n.contains(char::is_whitespace) =>
        {
            return Err(format!("nic \"{n}\" is not an interface name"));
        }
        Some(n) => Some(n.to_string()),
    };
    let label = match params.get("label").map(|s| s.trim()) {
        None | Some("") => None,
        Some(_) if ip.is_ipv6() => None,
        Some(l) => Some(l.to_string()),
    };
    let arp_count = match params.get("arp_count") {
        None => ARP_COUNT_DEFAULT,
        Some(c) => match c.trim().parse::<u32>() {
            Ok(n) if n <= 100 => n,
            _ => return Err(format!("arp_count \"{c}\" is not a count from 0 to 100")),
        },
    };
    let arp_interval = match params.get("arp_interval") {
        None => Duration::from_millis(ARP_INTERVAL_MS_DEFAULT),
        Some(c) => match c.trim().parse::<u64>() {
            Ok(n) if (1..=10_000).contains(&n) => Duration::from_millis(n),
            _ => {
                return Err(format!(
                    "arp_interval \"{c}\" is not a number of milliseconds from 1 to 10000"
                ));
            }
        },
    };
    Ok(Params {
        ip,
        prefix,
        nic,
        label,
        arp_count,
        arp_interval,
    })
}

/// The full label of the address on `nic` (`eth0:vip`), checked against
/// the kernel's limit.
fn full_label(nic: &str, label: &str) -> Result<String, String> {
    let full = format!("{nic}:{label}");
    if full.len() > LABEL_LEN_MAX {
        return Err(format!(
            "label \"{full}\" (interface name, ':' and label) is longer than the kernel's \
             {LABEL_LEN_MAX} characters: shorten label"
        ));
    }
    Ok(full)
}

// ---------------------------------------------------------------- operations

impl IpAddrAgent {
    async fn run(&self, req: OpRequest) -> OpOutcome {
        if req.action == AgentAction::MetaData {
            let mut o = OpOutcome::ok();
            o.output = super::metadata::to_xml(&info());
            return o;
        }
        if req.action == AgentAction::Stop {
            // From here on, changes to the address are hactl's own.
            *self.started.lock().unwrap() = None;
        }
        let params = match parse_params(&req.params) {
            Ok(p) => p,
            // A stop of an address that cannot be parsed cannot fail: such an
            // address was never added (a failed stop would get the node fenced).
            Err(_) if req.action == AgentAction::Stop => return OpOutcome::ok(),
            Err(e) => return OpOutcome::fail(OcfCode::ErrConfigured, e),
        };
        match req.action {
            AgentAction::Start => {
                *self.started.lock().unwrap() = None;
                let o = self.start(&params).await;
                if o.code == OcfCode::Success {
                    *self.started.lock().unwrap() = Some(params);
                }
                o
            }
            AgentAction::Stop => self.stop(&params),
            AgentAction::Monitor => self.monitor(&params),
            AgentAction::ValidateAll => match Rtnl::open().and_then(|mut nl| {
                let links = nl.links()?;
                let routes = nl.connected_routes(&params.ip)?;
                Ok((links, routes))
            }) {
                Ok((links, routes)) => match choose_target(&params, &links, &routes) {
                    Ok(_) => OpOutcome::ok(),
                    Err(o) => o,
                },
                Err(e) => netlink_failed(&params, "read the interfaces", &e),
            },
            AgentAction::Promote | AgentAction::Demote => OpOutcome::fail(
                OcfCode::ErrUnimplemented,
                format!("ipaddr has no {} action", req.action),
            ),
            AgentAction::MetaData => unreachable!("answered above"),
        }
    }

    async fn start(&self, p: &Params) -> OpOutcome {
        let mut nl = match Rtnl::open() {
            Ok(nl) => nl,
            Err(e) => return netlink_failed(p, "open a netlink socket", &e),
        };
        let (links, addrs) = match nl.links().and_then(|l| Ok((l, nl.addresses(&p.ip)?))) {
            Ok(x) => x,
            Err(e) => return netlink_failed(p, "read the interfaces and addresses", &e),
        };
        // Already there: success if it is where it belongs (start is
        // idempotent), announced again since this start is where hactl
        // takes the address; elsewhere, a clear refusal.
        let link = if let Some(a) = addrs.iter().find(|a| a.ip == p.ip) {
            let link = links.iter().find(|l| l.index == a.index);
            let name = link.map_or("?", |l| l.name.as_str());
            if let Some(nic) = &p.nic
                && nic != name
            {
                return OpOutcome::fail(
                    OcfCode::ErrGeneric,
                    format!(
                        "{} is already on interface {name}, not on nic {nic}: remove it \
                         there (ip addr del {}/{} dev {name}) or fix nic",
                        p.ip, p.ip, a.prefix
                    ),
                );
            }
            let Some(link) = link else {
                return OpOutcome::ok();
            };
            let state = link_state(link, p);
            if state.code != OcfCode::Success {
                return state;
            }
            link
        } else {
            match Self::add(&mut nl, p, &links) {
                Ok(link) => link,
                Err(o) => return o,
            }
        };
        if p.arp_count == 0 || link.flags.contains(LinkFlags::Noarp) {
            return OpOutcome::ok();
        }
        let Some(mac) = link.mac else {
            return OpOutcome::ok();
        };
        let announcer = match Announcer::open(p.ip, link.index, mac) {
            Ok(a) => a,
            Err(e) => {
                return OpOutcome::fail(
                    OcfCode::ErrGeneric,
                    format!(
                        "{} is on {}, but announcing it failed (socket): {e}",
                        p.ip, link.name
                    ),
                );
            }
        };
        if let Err(e) = announcer.send() {
            return OpOutcome::fail(
                OcfCode::ErrGeneric,
                format!(
                    "{} is on {}, but announcing it failed: {e}",
                    p.ip, link.name
                ),
            );
        }
        if p.arp_count > 1 {
            let (count, interval) = (p.arp_count, p.arp_interval);
            let task = tokio::spawn(async move {
                for _ in 1..count {
                    tokio::time::sleep(interval).await;
                    if let Err(e) = announcer.send() {
                        tracing::warn!(ip = %announcer.ip, "announcing the address failed: {e}");
                        break;
                    }
                }
            });
            self.abort_announcer();
            *self.announcer.lock().unwrap() = Some(task.abort_handle());
        }
        OpOutcome::ok()
    }

    /// Adds the address where [`choose_target`] puts it; the link it went to.
    fn add<'l>(nl: &mut Rtnl, p: &Params, links: &'l [Link]) -> Result<&'l Link, OpOutcome> {
        let routes = nl
            .connected_routes(&p.ip)
            .map_err(|e| netlink_failed(p, "read the routing table", &e))?;
        let (link, prefix) = choose_target(p, links, &routes)?;
        if !link.flags.contains(LinkFlags::Up) {
            return Err(OpOutcome::fail(
                OcfCode::ErrGeneric,
                format!(
                    "interface {} is down, so {} was not added: bring it up (ip link set {} up)",
                    link.name, p.ip, link.name
                ),
            ));
        }
        let label = p
            .label
            .as_ref()
            .map(|l| full_label(&link.name, l))
            .transpose()
            .map_err(|e| OpOutcome::fail(OcfCode::ErrConfigured, e))?;
        match nl.add_address(link.index, p.ip, prefix, label.as_deref()) {
            Ok(()) => {}
            // Added meanwhile by someone else: the state asked for is there.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => {
                return Err(OpOutcome::fail(
                    OcfCode::ErrGeneric,
                    format!(
                        "adding {}/{prefix} to interface {} failed: {e}",
                        p.ip, link.name
                    ),
                ));
            }
        }
        tracing::info!(ip = %p.ip, prefix, nic = %link.name, "added address");
        Ok(link)
    }

    fn stop(&self, p: &Params) -> OpOutcome {
        self.abort_announcer();
        let mut nl = match Rtnl::open() {
            Ok(nl) => nl,
            Err(e) => return netlink_failed(p, "open a netlink socket", &e),
        };
        let (links, addrs) = match nl.links().and_then(|l| Ok((l, nl.addresses(&p.ip)?))) {
            Ok(x) => x,
            Err(e) => return netlink_failed(p, "read the interfaces and addresses", &e),
        };
        let Some(a) = find_ours(p, &links, &addrs) else {
            return OpOutcome::ok();
        };
        let name = links
            .iter()
            .find(|l| l.index == a.index)
            .map_or_else(|| format!("#{}", a.index), |l| l.name.clone());
        match nl.del_address(a.index, a.ip, a.prefix) {
            Ok(()) => {}
            // Gone meanwhile (the interface vanished, someone removed it).
            Err(e) if matches!(e.raw_os_error(), Some(libc::EADDRNOTAVAIL | libc::ENODEV)) => {}
            Err(e) => {
                return OpOutcome::fail(
                    OcfCode::ErrGeneric,
                    format!(
                        "removing {}/{} from interface {name} failed: {e}",
                        a.ip, a.prefix
                    ),
                );
            }
        }
        tracing::info!(ip = %p.ip, nic = %name, "removed address");
        OpOutcome::ok()
    }

    fn monitor(&self, p: &Params) -> OpOutcome {
        match Rtnl::open() {
            Ok(mut nl) => check(&mut nl, p),
            Err(e) => netlink_failed(p, "open a netlink socket", &e),
        }
    }
}

/// The monitor's verdict, on an open socket.
fn check(nl: &mut Rtnl, p: &Params) -> OpOutcome {
    let (links, addrs) = match nl.links().and_then(|l| Ok((l, nl.addresses(&p.ip)?))) {
        Ok(x) => x,
        Err(e) => return netlink_failed(p, "read the interfaces and addresses", &e),
    };
    let Some(a) = find_ours(p, &links, &addrs) else {
        return OpOutcome::fail(
            OcfCode::NotRunning,
            format!(
                "{} is not on {}",
                p.ip,
                p.nic.as_deref().unwrap_or("any interface")
            ),
        );
    };
    if a.flags.contains(AddressFlags::Dadfailed) {
        return OpOutcome::fail(
            OcfCode::ErrGeneric,
            format!(
                "{} failed duplicate address detection: another host on the link holds it",
                p.ip
            ),
        );
    }
    match links.iter().find(|l| l.index == a.index) {
        Some(l) => link_state(l, p),
        None => OpOutcome::code(OcfCode::NotRunning),
    }
}

fn netlink_failed(p: &Params, what: &str, e: &io::Error) -> OpOutcome {
    OpOutcome::fail(
        OcfCode::ErrGeneric,
        format!(
            "could not {what} for {} through rtnetlink: {e} (hactld needs CAP_NET_ADMIN)",
            p.ip
        ),
    )
}

/// The address as this resource owns it: on `nic` when one is configured,
/// anywhere otherwise.
fn find_ours<'a>(p: &Params, links: &[Link], addrs: &'a [Addr]) -> Option<&'a Addr> {
    let index = match &p.nic {
        Some(nic) => Some(links.iter().find(|l| &l.name == nic)?.index),
        None => None,
    };
    addrs
        .iter()
        .find(|a| a.ip == p.ip && index.is_none_or(|i| i == a.index))
}

/// Success when the link is up with carrier, else the failure saying which.
fn link_state(l: &Link, p: &Params) -> OpOutcome {
    if !l.flags.contains(LinkFlags::Up) {
        OpOutcome::fail(
            OcfCode::ErrGeneric,
            format!(
                "{} is on interface {}, but the interface is down (ip link set {} up)",
                p.ip, l.name, l.name
            ),
        )
    } else if !l.flags.contains(LinkFlags::LowerUp) {
        OpOutcome::fail(
            OcfCode::ErrGeneric,
            format!(
                "{} is on interface {}, but the link has no carrier: check the cable, \
                 the switch port or the peer of the interface",
                p.ip, l.name
            ),
        )
    } else {
        OpOutcome::ok()
    }
}

/// The interface and prefix length to add the address with.
fn choose_target<'a>(
    p: &Params,
    links: &'a [Link],
    routes: &[Route],
) -> Result<(&'a Link, u8), OpOutcome> {
    let covering = |index: Option<u32>| {
        routes
            .iter()
            .filter(|r| index.is_none_or(|i| i == r.index))
            .filter(|r| covers(r.dest, r.prefix, p.ip))
            .max_by_key(|r| r.prefix)
    };
    match &p.nic {
        Some(nic) => {
            let link = links.iter().find(|l| &l.name == nic).ok_or_else(|| {
                OpOutcome::fail(
                    OcfCode::ErrInstalled,
                    format!(
                        "interface {nic} (parameter nic) does not exist on this node: check \
                         `ip link`"
                    ),
                )
            })?;
            let prefix = match p.prefix {
                Some(n) => n,
                None => covering(Some(link.index))
                    .map(|r| r.prefix)
                    .ok_or_else(|| {
                        OpOutcome::fail(
                            OcfCode::ErrConfigured,
                            format!(
                                "no route on {nic} covers {}, so its prefix length is unknown: \
                             set cidr_netmask",
                                p.ip
                            ),
                        )
                    })?,
            };
            Ok((link, prefix))
        }
        None => {
            let route = covering(None).ok_or_else(|| {
                OpOutcome::fail(
                    OcfCode::ErrInstalled,
                    format!(
                        "no interface on this node has a connected route covering {}: set \
                         nic, or give an interface an address in that network",
                        p.ip
                    ),
                )
            })?;
            let link = links
                .iter()
                .find(|l| l.index == route.index)
                .ok_or_else(|| {
                    OpOutcome::fail(
                        OcfCode::ErrGeneric,
                        format!(
                            "the route covering {} names interface #{}, which is gone",
                            p.ip, route.index
                        ),
                    )
                })?;
            Ok((link, p.prefix.unwrap_or(route.prefix)))
        }
    }
}

/// Whether `dest/prefix` contains `ip` (both of one family).
pub(crate) fn covers(dest: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    match (dest, ip) {
        (IpAddr::V4(d), IpAddr::V4(i)) if prefix <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(d) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(d), IpAddr::V6(i)) if prefix <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(d) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

// ---------------------------------------------------------------- announcements

/// A socket ready to announce one address on one interface.
struct Announcer {
    ip: IpAddr,
    /// `Some` until dropped.
    fd: Option<OwnedFd>,
    index: u32,
    mac: [u8; 6],
}

impl Drop for Announcer {
    fn drop(&mut self) {
        // Closing a packet socket waits for an RCU grace period (about
        // 10 ms, measured by bench_ipaddr_operation_latency): close it on the
        // blocking pool, not on the thread that runs operations.
        let Some(fd) = self.fd.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(move || drop(fd))),
            Err(_) => drop(fd),
        }
    }
}

impl Announcer {
    fn open(ip: IpAddr, index: u32, mac: [u8; 6]) -> io::Result<Announcer> {
        let fd = match ip {
            IpAddr::V4(_) => {
                // SAFETY: plain socket(2); the result is checked before use.
                let fd = unsafe {
                    libc::socket(
                        libc::AF_PACKET,
                        libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                        i32::from(ETH_P_ARP.to_be()),
                    )
                };
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                // SAFETY: fd is a fresh descriptor that nothing else owns.
                unsafe { OwnedFd::from_raw_fd(fd) }
            }
            IpAddr::V6(v6) => {
                let s = socket2::Socket::new(
                    socket2::Domain::IPV6,
                    socket2::Type::RAW,
                    Some(socket2::Protocol::ICMPV6),
                )?;
                // Neighbour discovery messages are valid only with hop limit 255.
                s.set_multicast_hops_v6(255)?;
                s.set_multicast_if_v6(index)?;
                let scope = if v6.is_unicast_link_local() { index } else { 0 };
                s.bind(&SocketAddrV6::new(v6, 0, 0, scope).into())?;
                s.into()
            }
        };
        Ok(Announcer {
            ip,
            fd: Some(fd),
            index,
            mac,
        })
    }

    fn fd(&self) -> &OwnedFd {
        self.fd.as_ref().expect("open until dropped")
    }

    fn send(&self) -> io::Result<()> {
        match self.ip {
            IpAddr::V4(v4) => {
                let frame = garp_payload(v4, self.mac);
                // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
                let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                sll.sll_family = libc::AF_PACKET as u16;
                sll.sll_protocol = ETH_P_ARP.to_be();
                sll.sll_ifindex = self.index as i32;
                sll.sll_halen = 6;
                sll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
                // SAFETY: the buffer and address live across the call and the
                // lengths given are theirs.
                let n = unsafe {
                    libc::sendto(
                        self.fd().as_raw_fd(),
                        frame.as_ptr().cast(),
                        frame.len(),
                        0,
                        (&sll as *const libc::sockaddr_ll).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                    )
                };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            }
            IpAddr::V6(v6) => {
                let s = socket2::SockRef::from(self.fd());
                let all_nodes =
                    SocketAddrV6::new(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), 0, 0, self.index);
                s.send_to(&unsolicited_na(v6, self.mac), &all_nodes.into())?;
                Ok(())
            }
        }
    }
}

/// The ARP payload of a gratuitous ARP request (RFC 5227's announcement):
/// sender and target protocol address both the announced address.
pub(crate) fn garp_payload(ip: Ipv4Addr, mac: [u8; 6]) -> [u8; 28] {
    let mut f = [0u8; 28];
    f[0..2].copy_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    f[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    f[4] = 6;
    f[5] = 4;
    f[6..8].copy_from_slice(&1u16.to_be_bytes()); // request
    f[8..14].copy_from_slice(&mac);
    f[14..18].copy_from_slice(&ip.octets());
    // target hardware address stays zero
    f[24..28].copy_from_slice(&ip.octets());
    f
}

/// An unsolicited neighbour advertisement (RFC 4861 7.2.6): override set,
/// solicited clear, with the target link-layer address option. The kernel
/// fills the ICMPv6 checksum of raw ICMPv6 sockets.
pub(crate) fn unsolicited_na(ip: Ipv6Addr, mac: [u8; 6]) -> [u8; 32] {
    let mut m = [0u8; 32];
    m[0] = 136; // neighbour advertisement
    m[4] = 0x20; // override
    m[8..24].copy_from_slice(&ip.octets());
    m[24] = 2; // target link-layer address
    m[25] = 1; // length in units of 8 bytes
    m[26..32].copy_from_slice(&mac);
    m
}

// ---------------------------------------------------------------- rtnetlink

#[derive(Clone, Debug)]
struct Link {
    index: u32,
    name: String,
    flags: LinkFlags,
    mac: Option<[u8; 6]>,
}

#[derive(Clone, Debug)]
struct Addr {
    index: u32,
    ip: IpAddr,
    prefix: u8,
    flags: AddressFlags,
}

#[derive(Clone, Debug)]
struct Route {
    index: u32,
    dest: IpAddr,
    prefix: u8,
}

/// A blocking rtnetlink socket. The kernel answers route requests while
/// handling the send, so a request blocks for microseconds; the receive
/// timeout bounds the rest.
struct Rtnl {
    sock: Socket,
    seq: u32,
}

impl Rtnl {
    fn open() -> io::Result<Rtnl> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        let tv = libc::timeval {
            tv_sec: (NETLINK_RECV_TIMEOUT_MS / 1000) as libc::time_t,
            tv_usec: ((NETLINK_RECV_TIMEOUT_MS % 1000) * 1000) as libc::suseconds_t,
        };
        // SAFETY: setsockopt with a timeval that outlives the call.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Rtnl { sock, seq: 0 })
    }

    /// Sends one request and collects the answers: the messages of a dump
    /// until NLMSG_DONE, or nothing but the acknowledgement.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut nl = NetlinkMessage::from(msg);
        nl.header.flags = flags;
        nl.header.sequence_number = self.seq;
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        let mut out = Vec::new();
        for _ in 0..NETLINK_DATAGRAMS_MAX {
            let (data, _) = self.sock.recv_from_full().map_err(|e| {
                if e.kind() == io::ErrorKind::WouldBlock {
                    io::Error::new(io::ErrorKind::TimedOut, "the kernel did not answer")
                } else {
                    e
                }
            })?;
            let mut off = 0;
            while off + 16 <= data.len() {
                let len = NetlinkBuffer::new(&data[off..]).length() as usize;
                if len < 16 || off + len > data.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "truncated netlink message",
                    ));
                }
                let raw = &data[off..off + len];
                off += len.next_multiple_of(4);
                let Ok(m) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(raw) else {
                    // A message of a kind this library cannot decode: not
                    // one of the few this agent asks about.
                    continue;
                };
                if m.header.sequence_number != self.seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            Some(c) => Err(io::Error::from_raw_os_error(-c.get())),
                            None => Ok(out),
                        };
                    }
                    NetlinkPayload::InnerMessage(i) => out.push(i),
                    _ => {}
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the kernel's answer did not end",
        ))
    }

    fn links(&mut self) -> io::Result<Vec<Link>> {
        let msgs = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_REQUEST | NLM_F_DUMP,
        )?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .map(|l| {
                let mut name = String::new();
                let mut mac = None;
                for a in &l.attributes {
                    match a {
                        LinkAttribute::IfName(n) => name = n.clone(),
                        LinkAttribute::Address(m) if m.len() == 6 => {
                            mac = Some(<[u8; 6]>::try_from(&m[..]).expect("length checked"))
                        }
                        _ => {}
                    }
                }
                Link {
                    index: l.header.index,
                    name,
                    flags: l.header.flags,
                    mac,
                }
            })
            .collect())
    }

    /// The addresses of `ip`'s family.
    fn addresses(&mut self, ip: &IpAddr) -> io::Result<Vec<Addr>> {
        let mut req = AddressMessage::default();
        req.header.family = family(ip);
        let msgs = self.request(
            RouteNetlinkMessage::GetAddress(req),
            NLM_F_REQUEST | NLM_F_DUMP,
        )?;
        let mut out = Vec::new();
        for m in msgs {
            let RouteNetlinkMessage::NewAddress(a) = m else {
                continue;
            };
            if a.header.family != family(ip) {
                continue;
            }
            let mut local = None;
            let mut address = None;
            let mut flags = AddressFlags::from_bits_retain(u32::from(a.header.flags.bits()));
            for attr in &a.attributes {
                match attr {
                    AddressAttribute::Local(l) => local = Some(*l),
                    AddressAttribute::Address(x) => address = Some(*x),
                    AddressAttribute::Flags(f) => flags = *f,
                    _ => {}
                }
            }
            // IFA_LOCAL is the interface's own address on point-to-point
            // links; IPv6 has IFA_ADDRESS only.
            if let Some(ip) = local.or(address) {
                out.push(Addr {
                    index: a.header.index,
                    ip,
                    prefix: a.header.prefix_len,
                    flags,
                });
            }
        }
        Ok(out)
    }

    /// Main-table unicast routes without a gateway (connected networks), of
    /// `ip`'s family, except default routes.
    fn connected_routes(&mut self, ip: &IpAddr) -> io::Result<Vec<Route>> {
        let mut req = RouteMessage::default();
        req.header.address_family = family(ip);
        let msgs = self.request(
            RouteNetlinkMessage::GetRoute(req),
            NLM_F_REQUEST | NLM_F_DUMP,
        )?;
        let mut out = Vec::new();
        for m in msgs {
            let RouteNetlinkMessage::NewRoute(r) = m else {
                continue;
            };
            let mut table = u32::from(r.header.table);
            let mut dest = None;
            let mut oif = None;
            let mut gateway = false;
            for attr in &r.attributes {
                match attr {
                    RouteAttribute::Table(t) => table = *t,
                    RouteAttribute::Destination(RouteAddress::Inet(a)) => {
                        dest = Some(IpAddr::V4(*a))
                    }
                    RouteAttribute::Destination(RouteAddress::Inet6(a)) => {
                        dest = Some(IpAddr::V6(*a))
                    }
                    RouteAttribute::Oif(i) => oif = Some(*i),
                    RouteAttribute::Gateway(_) | RouteAttribute::Via(_) => gateway = true,
                    _ => {}
                }
            }
            if table != u32::from(RouteHeader::RT_TABLE_MAIN)
                || r.header.kind != RouteType::Unicast
                || gateway
                || r.header.destination_prefix_length == 0
            {
                continue;
            }
            if let (Some(dest), Some(index)) = (dest, oif) {
                out.push(Route {
                    index,
                    dest,
                    prefix: r.header.destination_prefix_length,
                });
            }
        }
        Ok(out)
    }

    fn add_address(
        &mut self,
        index: u32,
        ip: IpAddr,
        prefix: u8,
        label: Option<&str>,
    ) -> io::Result<()> {
        let mut m = AddressMessage::default();
        m.header.family = family(&ip);
        m.header.prefix_len = prefix;
        m.header.index = index;
        m.attributes.push(AddressAttribute::Local(ip));
        m.attributes.push(AddressAttribute::Address(ip));
        match ip {
            IpAddr::V4(v4) => {
                if prefix < 31 {
                    let host_bits = u32::MAX >> prefix;
                    m.attributes
                        .push(AddressAttribute::Broadcast(Ipv4Addr::from(
                            u32::from(v4) | host_bits,
                        )));
                }
                if let Some(l) = label {
                    m.attributes.push(AddressAttribute::Label(l.to_string()));
                }
            }
            IpAddr::V6(_) => m
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad)),
        }
        self.request(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )?;
        Ok(())
    }

    fn del_address(&mut self, index: u32, ip: IpAddr, prefix: u8) -> io::Result<()> {
        let mut m = AddressMessage::default();
        m.header.family = family(&ip);
        m.header.prefix_len = prefix;
        m.header.index = index;
        m.attributes.push(AddressAttribute::Local(ip));
        if ip.is_ipv6() {
            m.attributes.push(AddressAttribute::Address(ip));
        }
        self.request(
            RouteNetlinkMessage::DelAddress(m),
            NLM_F_REQUEST | NLM_F_ACK,
        )?;
        Ok(())
    }
}

fn family(ip: &IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn params(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parameters_parse_with_defaults() {
        let p = parse_params(&params(&[("ip", "10.1.2.3")])).unwrap();
        assert_eq!(p.ip, "10.1.2.3".parse::<IpAddr>().unwrap());
        assert_eq!(p.prefix, None);
        assert_eq!(p.nic, None);
        assert_eq!(p.arp_count, ARP_COUNT_DEFAULT);
        assert_eq!(
            p.arp_interval,
            Duration::from_millis(ARP_INTERVAL_MS_DEFAULT)
        );
        let p = parse_params(&params(&[
            ("ip", "fd00::5"),
            ("cidr_netmask", "64"),
            ("nic", "eth1"),
            ("label", "vip"),
            ("arp_count", "0"),
        ]))
        .unwrap();
        assert_eq!(p.prefix, Some(64));
        assert_eq!(p.nic.as_deref(), Some("eth1"));
        assert_eq!(p.label, None, "IPv6 addresses have no labels");
        assert_eq!(p.arp_count, 0);
    }

    #[test]
    fn malformed_parameters_are_refused_with_the_value_named() {
        let e = parse_params(&params(&[("ip", "10.1.2")])).unwrap_err();
        assert!(
            e.contains("\"10.1.2\" is not an IPv4 or IPv6 address"),
            "{e}"
        );
        let e = parse_params(&params(&[("ip", "10.1.2.3"), ("cidr_netmask", "33")])).unwrap_err();
        assert!(e.contains("cidr_netmask \"33\""), "{e}");
        assert!(parse_params(&params(&[("ip", "fd00::1"), ("cidr_netmask", "33")])).is_ok());
        let e = parse_params(&params(&[("ip", "224.0.0.1")])).unwrap_err();
        assert!(e.contains("multicast"), "{e}");
        let e = parse_params(&params(&[("ip", "10.0.0.1"), ("arp_interval", "0")])).unwrap_err();
        assert!(e.contains("arp_interval"), "{e}");
        let e = parse_params(&params(&[("ip", "10.0.0.1"), ("nic", "a/b")])).unwrap_err();
        assert!(e.contains("nic \"a/b\""), "{e}");
        assert!(full_label("enp0s31f6", "backup").is_err());
        assert_eq!(full_label("eth0", "vip").unwrap(), "eth0:vip");
    }

    #[test]
    fn prefix_coverage() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(covers(ip("10.1.2.0"), 24, ip("10.1.2.200")));
        assert!(!covers(ip("10.1.2.0"), 24, ip("10.1.3.1")));
        assert!(covers(ip("10.0.0.0"), 8, ip("10.255.0.1")));
        assert!(covers(ip("10.1.2.3"), 32, ip("10.1.2.3")));
        assert!(covers(ip("fd00:1::"), 64, ip("fd00:1::99")));
        assert!(!covers(ip("fd00:1::"), 64, ip("fd00:2::99")));
        assert!(!covers(ip("10.0.0.0"), 8, ip("fd00::1")));
    }

    #[test]
    fn announcement_payloads() {
        let mac = [2, 0, 0, 0, 0, 9];
        let g = garp_payload(Ipv4Addr::new(10, 1, 2, 3), mac);
        assert_eq!(&g[0..8], &[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(&g[8..14], &mac);
        assert_eq!(&g[14..18], &[10, 1, 2, 3]);
        assert_eq!(&g[18..24], &[0; 6]);
        assert_eq!(&g[24..28], &[10, 1, 2, 3]);
        let na = unsolicited_na("fd00::7".parse().unwrap(), mac);
        assert_eq!(na[0], 136);
        assert_eq!(na[4], 0x20);
        assert_eq!(na[23], 7);
        assert_eq!(&na[24..26], &[2, 1]);
        assert_eq!(&na[26..32], &mac);
    }
}
