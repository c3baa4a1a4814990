//! berth's nftables table, spoken over netlink: masquerade, isolation between networks, `enable_icc`,
//! internal networks and published ports (DNAT through one map per key shape).
//!
//! Every change is one nf_tables batch (`NFNL_MSG_BATCH_BEGIN` … `END`) on a `NETLINK_NETFILTER`
//! socket, so it applies whole or not at all; nothing here spawns `nft` or `iptables`. The messages
//! are encoded by hand ([`wire`]): berth needs a dozen expressions, and neither a libnftnl binding
//! (a C library to install) nor a general crate (whose sets lack concatenated map keys) pays for
//! itself. The table layout is in docs/design.md, "Networks (berth-net): nftables".
//!
//! One table, `inet berth`. Per-network state is a set of chains named after the bridge and elements of verdict maps keyed
//! by interface name, so a network's rules are removed without looking up rule handles.

mod error;
mod rules;
mod sock;
mod wire;

use std::collections::BTreeSet;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use error::NftError;
use sock::Socket;
use wire::*;

/// The table's name, in both families.
pub const TABLE: &str = "berth";

/// What berth's table holds for one network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetRules {
    /// The network's bridge interface.
    pub bridge: String,
    /// Its subnets (v4 and v6).
    pub subnets: Vec<IpNet>,
    /// `--internal`: no traffic leaves or enters the bridge, no masquerade.
    pub internal: bool,
    /// `enable_icc`: containers of this network may reach each other.
    pub icc: bool,
}

pub use crate::ports::Proto;

/// The IP protocol number of `p`.
fn proto_number(p: Proto) -> u8 {
    match p {
        Proto::Tcp => libc::IPPROTO_TCP as u8,
        Proto::Udp => libc::IPPROTO_UDP as u8,
    }
}

/// One published port: host side → container side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRule {
    /// TCP or UDP.
    pub proto: Proto,
    /// The host address it answers on; `None`: every host address of the container address's family.
    pub host_ip: Option<IpAddr>,
    /// The host port.
    pub host_port: u16,
    /// The container's address.
    pub addr: IpAddr,
    /// The container's port.
    pub port: u16,
    /// The bridge the container is on.
    pub bridge: String,
}

impl PortRule {
    /// `[IP:]PORT/PROTO`, as errors name it.
    fn host_side(&self) -> String {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => format!("[{ip}]:{}/{}", self.host_port, self.proto.as_str()),
            Some(ip) => format!("{ip}:{}/{}", self.host_port, self.proto.as_str()),
            None => format!("{}/{}", self.host_port, self.proto.as_str()),
        }
    }

    /// The map and the element's key and data.
    fn element(&self) -> Result<(&'static str, Vec<u8>, Vec<u8>), NftError> {
        let proto_port = |key: &mut Vec<u8>| {
            key.extend_from_slice(&[proto_number(self.proto), 0, 0, 0]);
            key.extend_from_slice(&self.host_port.to_be_bytes());
            key.extend_from_slice(&[0, 0]);
        };
        let mut key = Vec::new();
        let map = match (self.host_ip, self.addr) {
            (None, IpAddr::V4(_)) => rules::PORTS4,
            (None, IpAddr::V6(_)) => rules::PORTS6,
            (Some(IpAddr::V4(h)), IpAddr::V4(_)) => {
                key.extend_from_slice(&h.octets());
                rules::PORTS4_IP
            }
            (Some(IpAddr::V6(h)), IpAddr::V6(_)) => {
                key.extend_from_slice(&h.octets());
                rules::PORTS6_IP
            }
            (Some(host), container) => {
                return Err(NftError::MixedFamilies {
                    port: format!("{}/{}", self.host_port, self.proto.as_str()),
                    host,
                    container,
                });
            }
        };
        proto_port(&mut key);
        let mut data = match self.addr {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        data.extend_from_slice(&self.port.to_be_bytes());
        data.extend_from_slice(&[0, 0]);
        Ok((map, key, data))
    }
}

/// What a message of a batch does, for the error that names it.
enum What {
    Text(String),
    Port(String),
}

/// One nf_tables transaction under construction.
struct Batch {
    buf: Vec<u8>,
    next_seq: u32,
    whats: Vec<(u32, What)>,
    set_id: u32,
}

impl Batch {
    fn new(first_seq: u32) -> Batch {
        let mut buf = Vec::with_capacity(4096);
        message(
            &mut buf,
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            first_seq,
            0,
            NFNL_SUBSYS_NFTABLES,
            &[],
        );
        Batch {
            buf,
            next_seq: first_seq + 1,
            whats: Vec::new(),
            set_id: 0,
        }
    }

    fn push(&mut self, cmd: u8, family: u8, flags: u16, what: What, attrs: Attrs) {
        let seq = self.next_seq;
        self.next_seq += 1;
        message(
            &mut self.buf,
            nft_type(cmd),
            NLM_F_REQUEST | flags,
            seq,
            family,
            0,
            &attrs.buf,
        );
        self.whats.push((seq, what));
    }

    fn is_empty(&self) -> bool {
        self.whats.is_empty()
    }

    fn finish(mut self) -> (Vec<u8>, Vec<(u32, What)>, u32) {
        let seq = self.next_seq;
        message(
            &mut self.buf,
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            seq,
            0,
            NFNL_SUBSYS_NFTABLES,
            &[],
        );
        (self.buf, self.whats, seq + 1)
    }
}

/// A connection to nf_tables in the calling thread's network namespace.
pub struct Nft {
    sock: Socket,
    seq: AtomicU32,
}

impl Nft {
    /// Opens the netlink socket (no message is sent yet).
    pub fn new() -> Result<Nft, NftError> {
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos() | 1);
        Ok(Nft {
            sock: Socket::open()?,
            seq: AtomicU32::new(start),
        })
    }

    fn batch(&self) -> Batch {
        Batch::new(self.seq.load(Ordering::Relaxed))
    }

    /// Adds (or replaces) one network's rules; creates both tables on first use. Idempotent.
    /// The bridge must exist: its `route_localnet` is turned on, so 127.0.0.1 can be DNAT'd onto it.
    pub fn add_network(&self, r: &NetRules) -> Result<(), NftError> {
        rules::check_bridge(&r.bridge)?;
        if r.subnets.iter().any(|s| matches!(s, IpNet::V4(_))) {
            let path = PathBuf::from(format!(
                "/proc/sys/net/ipv4/conf/{}/route_localnet",
                r.bridge
            ));
            std::fs::write(&path, b"1").map_err(|source| NftError::Sysctl { path, source })?;
        }
        if !r.icc {
            rules::check_br_netfilter(&r.subnets)?;
        }
        let chains = self.chains()?;
        let mut b = self.batch();
        rules::tables(&mut b);
        if chains.contains(&rules::chain_in(&r.bridge)) {
            rules::drop_network_elements(&mut b, &r.bridge);
        }
        rules::network(&mut b, r);
        self.commit(b)
    }

    /// Removes one network's rules; with the last network, both tables. Absent = Ok.
    pub fn remove_network(&self, bridge: &str) -> Result<(), NftError> {
        rules::check_bridge(bridge)?;
        let chains = self.chains()?;
        let mine = rules::chain_in(bridge);
        let others = chains
            .iter()
            .any(|c| c.starts_with(rules::IN_PREFIX) && *c != mine);
        let mut b = self.batch();
        if !others {
            if self.has_table()? {
                rules::delete_table(&mut b, NFPROTO_INET);
            }
        } else if chains.contains(&mine) {
            rules::drop_network_elements(&mut b, bridge);
            rules::drop_network_chains(&mut b, bridge);
        }
        if b.is_empty() {
            return Ok(());
        }
        self.commit(b)
    }

    /// Publishes ports: one map element each, all in one batch. A key already there (whatever its
    /// container) fails the batch with an error naming that host port; nothing is published then.
    pub fn publish(&self, ports: &[PortRule]) -> Result<(), NftError> {
        if ports.is_empty() {
            return Ok(());
        }
        let mut b = self.batch();
        for p in ports {
            let (map, key, data) = p.element()?;
            rules::port_element(&mut b, map, &key, &data, What::Port(p.host_side()));
        }
        self.commit(b)
    }

    /// Withdraws published ports; those not published are skipped.
    pub fn unpublish(&self, ports: &[PortRule]) -> Result<(), NftError> {
        let mut elems = Vec::with_capacity(ports.len());
        for p in ports {
            elems.push((p.host_side(), p.element()?));
        }
        // A missing element fails its DELSETELEM (ENOENT) and so the batch: drop those and retry.
        // Each round drops at least one, so this ends; normally the first round succeeds.
        while !elems.is_empty() {
            let mut b = self.batch();
            for (port, (map, key, _)) in &elems {
                rules::del_port_element(&mut b, map, key, What::Port(port.clone()));
            }
            let first = b.next_seq - elems.len() as u32;
            match self.commit_errors(b)? {
                errs if errs.is_empty() => return Ok(()),
                errs => {
                    if let Some((_, e)) = errs.iter().find(|(_, e)| *e != libc::ENOENT) {
                        let (seq, _) = errs[0];
                        let port = elems
                            .get((seq - first) as usize)
                            .map_or(String::new(), |e| e.0.clone());
                        return Err(NftError::Refused {
                            what: format!("withdrawing published port {port}"),
                            source: io::Error::from_raw_os_error(*e),
                        });
                    }
                    let missing: BTreeSet<usize> =
                        errs.iter().map(|(s, _)| (s - first) as usize).collect();
                    let mut i = 0;
                    elems.retain(|_| {
                        i += 1;
                        !missing.contains(&(i - 1))
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether berth's `inet berth` table exists.
    pub fn has_table(&self) -> Result<bool, NftError> {
        self.has_table_of(NFPROTO_INET)
    }

    fn next_seq(&self) -> u32 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    fn has_table_of(&self, family: u8) -> Result<bool, NftError> {
        let seq = self.next_seq();
        let mut a = Attrs::default();
        a.str(NFTA_TABLE_NAME, TABLE);
        let mut buf = Vec::new();
        message(
            &mut buf,
            nft_type(NFT_MSG_GETTABLE),
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
            family,
            0,
            &a.buf,
        );
        self.sock.send(&buf)?;
        let mut found = false;
        let mut err = 0;
        self.sock.recv_until(|r| {
            if r.seq != seq {
                return false;
            }
            if r.ty == nft_type(NFT_MSG_NEWTABLE) {
                found = true;
                return false;
            }
            if r.ty == NLMSG_ERROR {
                err = -error_code(r.body);
                return true;
            }
            false
        })?;
        match err {
            0 => Ok(found),
            libc::ENOENT => Ok(false),
            e => Err(NftError::Refused {
                what: format!("listing table {TABLE}"),
                source: io::Error::from_raw_os_error(e),
            }),
        }
    }

    /// The names of the chains of `inet berth` (empty when there is no table).
    fn chains(&self) -> Result<BTreeSet<String>, NftError> {
        let seq = self.next_seq();
        let mut a = Attrs::default();
        a.str(NFTA_CHAIN_TABLE, TABLE);
        let mut buf = Vec::new();
        message(
            &mut buf,
            nft_type(NFT_MSG_GETCHAIN),
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            NFPROTO_INET,
            0,
            &a.buf,
        );
        self.sock.send(&buf)?;
        let mut names = BTreeSet::new();
        let mut err = 0;
        self.sock.recv_until(|r| {
            if r.seq != seq {
                return false;
            }
            match r.ty {
                NLMSG_DONE => true,
                NLMSG_ERROR => {
                    err = -error_code(r.body);
                    true
                }
                t if t == nft_type(wire::NFT_MSG_NEWCHAIN) => {
                    let (mut table, mut name) = (String::new(), String::new());
                    for (ty, data) in attrs(r.body) {
                        match ty {
                            NFTA_CHAIN_TABLE => table = attr_str(data),
                            NFTA_CHAIN_NAME => name = attr_str(data),
                            _ => {}
                        }
                    }
                    if table == TABLE && r.body.first() == Some(&NFPROTO_INET) {
                        names.insert(name);
                    }
                    false
                }
                _ => false,
            }
        })?;
        match err {
            0 | libc::ENOENT => Ok(names),
            e => Err(NftError::Refused {
                what: format!("listing the chains of table inet {TABLE}"),
                source: io::Error::from_raw_os_error(e),
            }),
        }
    }

    /// Sends a batch; the first refused message becomes the error.
    fn commit(&self, b: Batch) -> Result<(), NftError> {
        let whats: Vec<(u32, String, bool)> = b
            .whats
            .iter()
            .map(|(s, w)| match w {
                What::Text(t) => (*s, t.clone(), false),
                What::Port(p) => (*s, p.clone(), true),
            })
            .collect();
        let errs = self.commit_errors(b)?;
        let Some(&(seq, errno)) = errs.first() else {
            return Ok(());
        };
        let (what, port) = whats
            .iter()
            .find(|(s, _, _)| *s == seq)
            .map_or((format!("message {seq} of a batch"), false), |(_, t, p)| {
                (t.clone(), *p)
            });
        if port && errno == libc::EEXIST {
            return Err(NftError::PortTaken { port: what });
        }
        let what = if port {
            format!("publishing host port {what}")
        } else {
            what
        };
        Err(NftError::Refused {
            what,
            source: io::Error::from_raw_os_error(errno),
        })
    }

    /// Sends a batch and returns each refused message's (seq, errno), in order. The kernel runs a
    /// batch while `sendto` is in progress; a generation request sent after it is answered after
    /// every error of the batch, so its answer ends the read.
    fn commit_errors(&self, b: Batch) -> Result<Vec<(u32, i32)>, NftError> {
        let (buf, whats, next) = b.finish();
        let first = whats.first().map_or(next, |w| w.0);
        self.seq.store(next, Ordering::Relaxed);
        self.sock.send(&buf)?;
        let gen_seq = self.next_seq();
        let mut g = Vec::new();
        message(
            &mut g,
            nft_type(NFT_MSG_GETGEN),
            NLM_F_REQUEST,
            gen_seq,
            0,
            0,
            &[],
        );
        self.sock.send(&g)?;
        let mut errs = Vec::new();
        self.sock.recv_until(|r| {
            if r.seq == gen_seq {
                return true;
            }
            if r.ty == NLMSG_ERROR && r.seq >= first - 1 && r.seq < next {
                let e = -error_code(r.body);
                if e != 0 {
                    errs.push((r.seq, e));
                }
            }
            false
        })?;
        errs.sort_unstable();
        Ok(errs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn rule(host_ip: Option<IpAddr>, addr: IpAddr) -> PortRule {
        PortRule {
            proto: Proto::Tcp,
            host_ip,
            host_port: 8080,
            addr,
            port: 80,
            bridge: "br0".into(),
        }
    }

    #[test]
    fn element_keys_are_padded_concatenations() {
        let c = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
        let (map, key, data) = rule(None, c).element().unwrap();
        assert_eq!(map, rules::PORTS4);
        assert_eq!(key, [6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(data, [10, 1, 2, 3, 0, 80, 0, 0]);
        let (map, key, _) = rule(Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), c)
            .element()
            .unwrap();
        assert_eq!(map, rules::PORTS4_IP);
        assert_eq!(key, [127, 0, 0, 1, 6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        let (map, key, data) = rule(None, IpAddr::V6(Ipv6Addr::LOCALHOST))
            .element()
            .unwrap();
        assert_eq!((map, key.len(), data.len()), (rules::PORTS6, 8, 20));
    }

    #[test]
    fn mixed_families_are_refused_naming_the_port() {
        let e = rule(
            Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        )
        .element()
        .unwrap_err();
        assert!(e.to_string().contains("port 8080/tcp"), "{e}");
    }

    #[test]
    fn host_side_names() {
        let c = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
        assert_eq!(rule(None, c).host_side(), "8080/tcp");
        assert_eq!(
            rule(Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), c).host_side(),
            "127.0.0.1:8080/tcp"
        );
    }
}
