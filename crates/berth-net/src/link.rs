//! Links, addresses and routes over rtnetlink, with our own few messages on a plain `NETLINK_ROUTE`
//! socket (synchronous, one per [`Netlink`]): a bridge per network, and a veth per container
//! endpoint created with its peer already in the container's namespace, under its final name,
//! with its MAC address and up, in one message. Inside the container's namespace only its
//! addresses and default route are set, on a socket opened there by a short-lived thread.
//! Nothing here spawns `ip`.

use std::ffi::CString;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use ipnet::IpNet;

/// A netlink operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The kernel refused a request.
    #[error("{action}: {source}")]
    Kernel {
        /// What was asked ("creating bridge br-1234").
        action: String,
        /// The errno.
        source: std::io::Error,
    },
    /// An interface that should exist does not.
    #[error("interface {0} not found")]
    NoSuchLink(String),
}

fn kerr(action: impl Into<String>, errno: i32) -> LinkError {
    LinkError::Kernel {
        action: action.into(),
        source: std::io::Error::from_raw_os_error(errno),
    }
}

/// A veth endpoint to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Veth {
    /// The bridge the host end joins.
    pub bridge: String,
    /// The host end's name.
    pub host_name: String,
    /// The container end's name (eth0, eth1, …).
    pub ifname: String,
    /// The container end's MAC address.
    pub mac: Option<[u8; 6]>,
    /// The container end's addresses, with their prefixes.
    pub addrs: Vec<IpNet>,
    /// Default routes through these gateways (none: no default route).
    pub gateways: Vec<IpAddr>,
    /// The MTU of both ends.
    pub mtu: Option<u32>,
}

/// The host end's name of `owner_id`'s veth on `network_id`: "veth" and 11 hex digits of both.
pub fn veth_name(owner_id: &str, network_id: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in owner_id.bytes().chain([0]).chain(network_id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    format!("veth{:011x}", h & 0xfff_ffff_ffff)
}

/// Docker's MAC address for an IPv4 address: 02:42 and the address's four bytes.
pub fn mac_for(addr: Ipv4Addr) -> [u8; 6] {
    let o = addr.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

// Message types and attributes (linux/rtnetlink.h, if_link.h, if_addr.h, veth.h).
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_SETLINK: u16 = 19;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_MASTER: u16 = 10;
const IFLA_PROTINFO: u16 = 12;
const IFLA_BRPORT_MODE: u16 = 4;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_F_NODAD: u8 = 0x02;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_TABLE: u16 = 15;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RTN_UNICAST: u8 = 1;
const IFF_UP: u32 = 1;
const NLA_F_NESTED: u16 = 0x8000;

/// A netlink message under construction: header, fixed part, attributes (nested ones by offset).
#[derive(Clone)]
struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    fn new(kind: u16, flags: u16, fixed: &[u8]) -> Msg {
        let mut buf = vec![0u8; 16];
        buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        buf.extend_from_slice(fixed);
        Msg { buf }
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn attr(&mut self, kind: u16, data: &[u8]) -> &mut Msg {
        self.pad();
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    fn str_attr(&mut self, kind: u16, s: &str) -> &mut Msg {
        let mut d = s.as_bytes().to_vec();
        d.push(0);
        self.attr(kind, &d)
    }

    fn u32_attr(&mut self, kind: u16, v: u32) -> &mut Msg {
        self.attr(kind, &v.to_ne_bytes())
    }

    /// Opens a nested attribute; returns its offset for [`Msg::end`].
    fn begin(&mut self, kind: u16) -> usize {
        self.pad();
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        at
    }

    fn end(&mut self, at: usize) {
        self.pad();
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// Raw bytes inside a nested attribute (the peer's ifinfomsg).
    fn raw(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        self.pad();
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

fn ifinfomsg(family: u8, index: i32, flags: u32, change: u32) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[0] = family;
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m[8..12].copy_from_slice(&flags.to_ne_bytes());
    m[12..16].copy_from_slice(&change.to_ne_bytes());
    m
}

fn ip_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

fn family(a: IpAddr) -> u8 {
    match a {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

/// Turns on forwarding in the calling thread's network namespace (the host's): IPv4 always, IPv6
/// with `v6`. Without it nothing leaves a bridge network but for the host itself: no outbound
/// traffic, no published port reached from another container. The one host setting berth changes,
/// as Docker and netavark do; written only when off (a sysctl write resets per-interface values).
pub fn enable_forwarding(v6: bool) -> Result<(), LinkError> {
    let mut knobs = vec!["/proc/sys/net/ipv4/ip_forward"];
    if v6 {
        knobs.push("/proc/sys/net/ipv6/conf/all/forwarding");
    }
    for knob in knobs {
        match std::fs::read(knob) {
            Ok(v) if v.trim_ascii() == b"1" => continue,
            // No IPv6 in this kernel: nothing to forward.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            _ => {}
        }
        std::fs::write(knob, b"1").map_err(|e| LinkError::Kernel {
            action: format!("turning on forwarding ({knob})"),
            source: e,
        })?;
    }
    Ok(())
}

/// A `NETLINK_ROUTE` socket in the namespace it was opened in.
struct Sock {
    fd: OwnedFd,
    seq: std::cell::Cell<u32>,
}

impl Sock {
    fn open() -> Result<Sock, LinkError> {
        // SAFETY: socket(2) with constant arguments; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(kerr("opening a netlink socket", errno()));
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Sock {
            fd,
            seq: std::cell::Cell::new(1),
        })
    }

    fn send(&self, m: Msg) -> Result<u32, i32> {
        let seq = self.seq.get();
        self.seq.set(seq.wrapping_add(1));
        let bytes = m.finish(seq);
        let mut addr: libc::sockaddr_nl = unsafe_zeroed_nl();
        addr.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: `bytes` and `addr` are valid for the lengths given; the fd is ours.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if n < 0 {
            return Err(errno());
        }
        Ok(seq)
    }

    fn recv(&self, buf: &mut [u8]) -> Result<usize, i32> {
        loop {
            // SAFETY: `buf` is valid for writes of its length; the fd is ours.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = errno();
                if e == libc::EINTR {
                    continue;
                }
                return Err(e);
            }
            return Ok(n as usize);
        }
    }

    /// Sends a request with an ack and waits for it: Ok, or the kernel's errno.
    fn request(&self, m: Msg) -> Result<(), i32> {
        let seq = self.send(m)?;
        let mut buf = vec![0u8; 8192];
        loop {
            let n = self.recv(&mut buf)?;
            for (kind, mseq, body) in messages(&buf[..n]) {
                if mseq != seq {
                    continue;
                }
                if kind == NLMSG_ERROR && body.len() >= 4 {
                    let code = i32::from_ne_bytes(body[0..4].try_into().unwrap());
                    return if code == 0 { Ok(()) } else { Err(-code) };
                }
            }
        }
    }

    /// Sends a dump request and collects the bodies of its answers of type `want`.
    fn dump(&self, m: Msg, want: u16) -> Result<Vec<Vec<u8>>, i32> {
        let seq = self.send(m)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 32768];
        loop {
            let n = self.recv(&mut buf)?;
            for (kind, mseq, body) in messages(&buf[..n]) {
                if mseq != seq {
                    continue;
                }
                match kind {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR if body.len() >= 4 => {
                        let code = i32::from_ne_bytes(body[0..4].try_into().unwrap());
                        if code != 0 {
                            return Err(-code);
                        }
                        return Ok(out);
                    }
                    k if k == want => out.push(body.to_vec()),
                    _ => {}
                }
            }
        }
    }
}

fn unsafe_zeroed_nl() -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain data for which all-zero bytes are a valid value.
    unsafe { std::mem::zeroed() }
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// The messages of one datagram: (type, seq, body after the header).
fn messages(mut b: &[u8]) -> Vec<(u16, u32, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 16 {
        let len = u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize;
        if len < 16 || len > b.len() {
            break;
        }
        let kind = u16::from_ne_bytes(b[4..6].try_into().unwrap());
        let seq = u32::from_ne_bytes(b[8..12].try_into().unwrap());
        out.push((kind, seq, &b[16..len]));
        let next = (len + 3) & !3;
        b = if next >= b.len() { &[] } else { &b[next..] };
    }
    out
}

/// The attributes after a fixed part: (type, data).
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes(b[0..2].try_into().unwrap()) as usize;
        if len < 4 || len > b.len() {
            break;
        }
        let kind = u16::from_ne_bytes(b[2..4].try_into().unwrap()) & !NLA_F_NESTED;
        out.push((kind, &b[4..len]));
        let next = (len + 3) & !3;
        b = if next >= b.len() { &[] } else { &b[next..] };
    }
    out
}

fn parse_ip(fam: u8, d: &[u8]) -> Option<IpAddr> {
    match (fam as i32, d.len()) {
        (libc::AF_INET, 4) => Some(IpAddr::from(<[u8; 4]>::try_from(d).ok()?)),
        (libc::AF_INET6, 16) => Some(IpAddr::from(<[u8; 16]>::try_from(d).ok()?)),
        _ => None,
    }
}

/// The index of interface `name` in the calling thread's network namespace.
fn index_of(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string for the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// Whether an interface named `name` exists in the caller's network namespace.
pub fn exists(name: &str) -> bool {
    index_of(name).is_some()
}

/// rtnetlink on the host's network namespace (the caller's).
pub struct Netlink {
    sock: Sock,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink").finish_non_exhaustive()
    }
}

impl Netlink {
    /// A socket in the caller's network namespace.
    pub fn new() -> Result<Netlink, LinkError> {
        Ok(Netlink {
            sock: Sock::open()?,
        })
    }

    /// The destinations of the host's unicast routes in the main table (the default route
    /// excluded): what a new network's subnet must not overlap.
    pub fn host_routes(&self) -> Result<Vec<IpNet>, LinkError> {
        let mut rt = [0u8; 12];
        rt[0] = libc::AF_UNSPEC as u8;
        let bodies = self
            .sock
            .dump(Msg::new(RTM_GETROUTE, NLM_F_DUMP, &rt), RTM_NEWROUTE)
            .map_err(|e| kerr("listing the host's routes", e))?;
        let mut out = Vec::new();
        for b in bodies {
            if b.len() < 12 {
                continue;
            }
            let (fam, dst_len, mut table, kind) = (b[0], b[1], b[4], b[7]);
            if kind != RTN_UNICAST || dst_len == 0 {
                continue;
            }
            let mut dst = None;
            for (k, d) in attrs(&b[12..]) {
                match k {
                    RTA_DST => dst = parse_ip(fam, d),
                    RTA_TABLE if d.len() == 4 => {
                        table = u32::from_ne_bytes(d.try_into().unwrap()).min(255) as u8
                    }
                    _ => {}
                }
            }
            if table != RT_TABLE_MAIN {
                continue;
            }
            if let Some(Ok(n)) = dst.map(|a| IpNet::new(a, dst_len)) {
                out.push(n.trunc());
            }
        }
        Ok(out)
    }

    /// The host's own addresses.
    pub fn host_addrs(&self) -> Result<Vec<IpAddr>, LinkError> {
        let ifa = [0u8; 8];
        let bodies = self
            .sock
            .dump(Msg::new(RTM_GETADDR, NLM_F_DUMP, &ifa), RTM_NEWADDR)
            .map_err(|e| kerr("listing the host's addresses", e))?;
        let mut out = Vec::new();
        for b in bodies {
            if b.len() < 8 {
                continue;
            }
            let fam = b[0];
            let mut addr = None;
            for (k, d) in attrs(&b[8..]) {
                if k == IFA_LOCAL || (k == IFA_ADDRESS && addr.is_none()) {
                    addr = parse_ip(fam, d);
                }
            }
            out.extend(addr);
        }
        Ok(out)
    }

    /// A bridge named `name` with `addrs`, up; what exists already is kept.
    pub fn ensure_bridge(
        &self,
        name: &str,
        addrs: &[IpNet],
        mtu: Option<u32>,
    ) -> Result<(), LinkError> {
        let mut m = Msg::new(
            RTM_NEWLINK,
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &ifinfomsg(0, 0, IFF_UP, IFF_UP),
        );
        m.str_attr(IFLA_IFNAME, name);
        if let Some(mtu) = mtu {
            m.u32_attr(IFLA_MTU, mtu);
        }
        let li = m.begin(IFLA_LINKINFO);
        m.str_attr(IFLA_INFO_KIND, "bridge");
        m.end(li);
        match self.sock.request(m) {
            Ok(()) => {}
            Err(libc::EEXIST) => {
                // Made by an earlier life of the network, or a racing process: bring it up.
                let index = index_of(name).ok_or_else(|| LinkError::NoSuchLink(name.to_owned()))?;
                let m = Msg::new(
                    RTM_NEWLINK,
                    NLM_F_ACK,
                    &ifinfomsg(0, index as i32, IFF_UP, IFF_UP),
                );
                self.sock
                    .request(m)
                    .map_err(|e| kerr(format!("bringing bridge {name} up"), e))?;
            }
            Err(e) => return Err(kerr(format!("creating bridge {name}"), e)),
        }
        let index = index_of(name).ok_or_else(|| LinkError::NoSuchLink(name.to_owned()))?;
        for a in addrs {
            add_addr(&self.sock, index, a)
                .or_else(|e| if e == libc::EEXIST { Ok(()) } else { Err(e) })
                .map_err(|e| kerr(format!("adding {a} to bridge {name}"), e))?;
        }
        Ok(())
    }

    /// Deletes the bridge `name` (absent: nothing to do).
    pub fn remove_bridge(&self, name: &str) -> Result<(), LinkError> {
        self.delete(name, "bridge")
    }

    fn delete(&self, name: &str, what: &str) -> Result<(), LinkError> {
        let mut m = Msg::new(RTM_DELLINK, NLM_F_ACK, &ifinfomsg(0, 0, 0, 0));
        m.str_attr(IFLA_IFNAME, name);
        match self.sock.request(m) {
            Ok(()) | Err(libc::ENODEV) => Ok(()),
            Err(e) => Err(kerr(format!("deleting {what} {name}"), e)),
        }
    }

    /// Takes a veth out (its host end's name; absent: nothing to do). The peer goes with it.
    pub fn detach(&self, host_name: &str) -> Result<(), LinkError> {
        self.delete(host_name, "veth")
    }

    /// The veth pair of `veth`: the host end on its bridge, the peer created in `netns` under its
    /// final name, both up; then, inside `netns`, the peer's addresses and default routes.
    pub fn attach(&self, netns: BorrowedFd<'_>, veth: &Veth) -> Result<(), LinkError> {
        let bridge =
            index_of(&veth.bridge).ok_or_else(|| LinkError::NoSuchLink(veth.bridge.clone()))?;
        let mut m = Msg::new(
            RTM_NEWLINK,
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &ifinfomsg(0, 0, IFF_UP, IFF_UP),
        );
        m.str_attr(IFLA_IFNAME, &veth.host_name);
        m.u32_attr(IFLA_MASTER, bridge);
        if let Some(mtu) = veth.mtu {
            m.u32_attr(IFLA_MTU, mtu);
        }
        let li = m.begin(IFLA_LINKINFO);
        m.str_attr(IFLA_INFO_KIND, "veth");
        let data = m.begin(IFLA_INFO_DATA);
        let peer = m.begin(VETH_INFO_PEER);
        // Not up yet: a veth end cannot open before its pair is linked (ENOTCONN), which happens
        // after the peer is configured; it is brought up from inside the namespace.
        m.raw(&ifinfomsg(0, 0, 0, 0));
        m.str_attr(IFLA_IFNAME, &veth.ifname);
        m.u32_attr(IFLA_NET_NS_FD, netns.as_raw_fd() as u32);
        if let Some(mac) = veth.mac {
            m.attr(IFLA_ADDRESS, &mac);
        }
        if let Some(mtu) = veth.mtu {
            m.u32_attr(IFLA_MTU, mtu);
        }
        m.end(peer);
        m.end(data);
        m.end(li);
        let created = match self.sock.request(m.clone()) {
            // The name is this endpoint's own: the veth of its previous start, whose namespace the
            // kernel has not finished tearing down (that runs in a workqueue, after the process
            // is gone). Deleted here, the one time a start waits for a veth's deletion.
            Err(libc::EEXIST) => {
                let _ = self.delete(&veth.host_name, "veth");
                self.sock.request(m)
            }
            r => r,
        };
        created.map_err(|e| {
            kerr(
                format!("creating veth {} for {}", veth.host_name, veth.bridge),
                e,
            )
        })?;
        // Hairpin on the bridge port: with br_netfilter, a container's connection to its own
        // published port through the host's address is DNAT'd back out of the port it came in on.
        // Set over netlink (sysfs shows the links of the namespace it was mounted in).
        let hairpin = index_of(&veth.host_name)
            .ok_or(libc::ENODEV)
            .and_then(|index| {
                let mut m = Msg::new(
                    RTM_SETLINK,
                    NLM_F_ACK,
                    &ifinfomsg(libc::AF_BRIDGE as u8, index as i32, 0, 0),
                );
                let pi = m.begin(IFLA_PROTINFO);
                m.attr(IFLA_BRPORT_MODE, &[1]);
                m.end(pi);
                self.sock.request(m)
            });
        if let Err(e) = hairpin {
            let _ = self.detach(&veth.host_name);
            return Err(kerr(
                format!("setting hairpin mode on {}", veth.host_name),
                e,
            ));
        }
        let inside = configure_inside(netns, veth);
        if inside.is_err() {
            // Deleting the host end takes the peer along.
            let _ = self.detach(&veth.host_name);
        }
        inside
    }
}

fn add_addr(sock: &Sock, index: u32, a: &IpNet) -> Result<(), i32> {
    let ip = a.addr();
    let mut ifa = [0u8; 8];
    ifa[0] = family(ip);
    ifa[1] = a.prefix_len();
    // No duplicate address detection for IPv6: the address is ours and usable at once.
    ifa[2] = if ip.is_ipv6() { IFA_F_NODAD } else { 0 };
    ifa[4..8].copy_from_slice(&index.to_ne_bytes());
    let mut m = Msg::new(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &ifa);
    m.attr(IFA_LOCAL, &ip_bytes(ip));
    m.attr(IFA_ADDRESS, &ip_bytes(ip));
    sock.request(m)
}

/// Inside the container's namespace, on a thread that enters it (the caller's own thread never
/// changes namespace): the peer up, its addresses and default routes.
fn configure_inside(netns: BorrowedFd<'_>, veth: &Veth) -> Result<(), LinkError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns(2) on this thread only, with a namespace descriptor we borrow for the
            // call; the thread ends right after, so no other code runs in the namespace.
            if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(kerr("entering the container's network namespace", errno()));
            }
            let sock = Sock::open()?;
            let index =
                index_of(&veth.ifname).ok_or_else(|| LinkError::NoSuchLink(veth.ifname.clone()))?;
            let up = Msg::new(
                RTM_NEWLINK,
                NLM_F_ACK,
                &ifinfomsg(0, index as i32, IFF_UP, IFF_UP),
            );
            sock.request(up)
                .map_err(|e| kerr(format!("bringing {} up", veth.ifname), e))?;
            for a in &veth.addrs {
                add_addr(&sock, index, a)
                    .map_err(|e| kerr(format!("adding {a} to {}", veth.ifname), e))?;
            }
            for gw in &veth.gateways {
                let mut rt = [0u8; 12];
                rt[0] = family(*gw);
                rt[4] = RT_TABLE_MAIN;
                rt[5] = RTPROT_BOOT;
                rt[6] = 0; // RT_SCOPE_UNIVERSE
                rt[7] = RTN_UNICAST;
                let mut m = Msg::new(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &rt);
                m.attr(RTA_GATEWAY, &ip_bytes(*gw));
                m.u32_attr(RTA_OIF, index);
                sock.request(m)
                    .map_err(|e| kerr(format!("adding the default route via {gw}"), e))?;
            }
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| Err(kerr("configuring the container's network", libc::EIO)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_an_interface_and_macs_follow_docker() {
        let n = veth_name("abc", "def");
        assert_eq!(n.len(), 15);
        assert!(n.starts_with("veth"));
        assert_eq!(n, veth_name("abc", "def"));
        assert_ne!(n, veth_name("abd", "def"));
        assert_ne!(veth_name("ab", "cdef"), veth_name("abc", "def"));
        assert_eq!(
            mac_for(Ipv4Addr::new(172, 17, 0, 2)),
            [2, 0x42, 172, 17, 0, 2]
        );
    }

    #[test]
    fn messages_are_laid_out_as_the_kernel_reads_them() {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_ACK, &ifinfomsg(0, 0, IFF_UP, IFF_UP));
        m.str_attr(IFLA_IFNAME, "br0");
        let li = m.begin(IFLA_LINKINFO);
        m.str_attr(IFLA_INFO_KIND, "bridge");
        m.end(li);
        let b = m.finish(7);
        assert_eq!(
            u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize,
            b.len()
        );
        assert_eq!(b.len() % 4, 0);
        let msgs = messages(&b);
        assert_eq!(msgs.len(), 1);
        assert_eq!((msgs[0].0, msgs[0].1), (RTM_NEWLINK, 7));
        let a = attrs(&msgs[0].2[16..]);
        assert_eq!(a[0], (IFLA_IFNAME, &b"br0\0"[..]));
        assert_eq!(a[1].0, IFLA_LINKINFO);
        assert_eq!(attrs(a[1].1), vec![(IFLA_INFO_KIND, &b"bridge\0"[..])]);
    }
}
