//! [`Net`]: the one entry point the engine uses. It ties the records, the address leases, the
//! links, berth's nftables table and the DNS records together per container start and stop, and
//! sweeps what a killed process left behind.
//!
//! Per network, the bridge and its rules are made once (at `network create`, or at the first start
//! after a reboot: a marker under the run root says they are up) and kept for the life of the
//! network. Per container start: leases, one veth per network, one nftables batch when ports are
//! published, and a DNS record on user-defined networks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Network, NetworkSpec, Networks};
use crate::dns::{self, DnsError, Record, Records};
use crate::ipam::{Ipam, IpamError, Lease};
use crate::link::{self, LinkError, Netlink, Veth};
use crate::nft::{NetRules, Nft, NftError, PortRule};
use crate::owner::Owner;
use crate::ports::{self, PortError, PortMapping};

/// Errors of network operations, each naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A network record.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An address lease.
    #[error(transparent)]
    Ipam(#[from] IpamError),
    /// A link, address or route.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// berth's nftables table.
    #[error(transparent)]
    Nft(#[from] NftError),
    /// A published port.
    #[error(transparent)]
    Port(#[from] PortError),
    /// Names.
    #[error(transparent)]
    Dns(#[from] DnsError),
    /// A file under the run root.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A container as berth-net knows it.
#[derive(Debug, Clone)]
pub struct Member {
    /// The container id (64 hex); its first 12 characters resolve as a name too.
    pub id: String,
    /// Its name (without the leading '/').
    pub name: String,
    /// The process whose life bounds what the container holds.
    pub owner: Owner,
}

/// What a container asks of one network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSpec {
    /// The network's name or id.
    pub network: String,
    /// `--network-alias`: further names on this network.
    pub aliases: Vec<String>,
    /// `--ip`.
    pub ipv4: Option<Ipv4Addr>,
    /// `--ip6`.
    pub ipv6: Option<Ipv6Addr>,
    /// `--mac-address`.
    pub mac: Option<[u8; 6]>,
}

/// A container's place on one network while it runs.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The network.
    pub network: Network,
    /// Its addresses (one per subnet).
    pub leases: Vec<Lease>,
    /// The MAC address of its interface.
    pub mac: [u8; 6],
    /// The interface name inside the container (eth0, eth1, …).
    pub ifname: String,
    /// The host end of its veth.
    pub host_veth: String,
    /// Its names besides the container's name and short id.
    pub aliases: Vec<String>,
}

impl Endpoint {
    /// The IPv4 lease, if the network has a v4 subnet.
    pub fn ipv4(&self) -> Option<&Lease> {
        self.leases.iter().find(|l| l.addr.is_ipv4())
    }

    /// The IPv6 lease, if any.
    pub fn ipv6(&self) -> Option<&Lease> {
        self.leases.iter().find(|l| l.addr.is_ipv6())
    }
}

/// A published port as it was set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// What the user asked for, with the host port chosen.
    pub mapping: PortMapping,
    /// The rule in berth's table.
    pub rule: PortRule,
}

/// What a container published, kept under the run root so that its stop, or the sweep after its
/// process was killed, can take it back.
#[derive(Debug, Serialize, Deserialize)]
struct PortsFile {
    owner: Owner,
    ports: Vec<Published>,
}

/// The networks of one host: records under the state root, everything else under the run root.
#[derive(Debug, Clone)]
pub struct Net {
    state: PathBuf,
    run: PathBuf,
    dns_exe: Option<(PathBuf, Vec<String>)>,
}

impl Net {
    /// Networks recorded under `state_root`, running state under `run_root`.
    pub fn new(state_root: &Path, run_root: &Path) -> Net {
        Net {
            state: state_root.to_owned(),
            run: run_root.to_owned(),
            dns_exe: None,
        }
    }

    /// The program (and its arguments) that runs the DNS server ([`dns::serve`]) when a container
    /// joins a user-defined network; without it, names are recorded but no server is started.
    pub fn with_dns_server(mut self, exe: impl Into<PathBuf>, args: Vec<String>) -> Net {
        self.dns_exe = Some((exe.into(), args));
        self
    }

    /// The run root's network directory.
    pub fn run_dir(&self) -> PathBuf {
        self.run.join("net")
    }

    fn networks(&self) -> Result<Networks, NetError> {
        Ok(Networks::open(&self.state)?)
    }

    fn ipam(&self) -> Result<Ipam, NetError> {
        Ok(Ipam::open(&self.run)?)
    }

    fn records(&self) -> Result<Records, NetError> {
        Ok(Records::open(&self.run)?)
    }

    fn up_marker(&self, id: &str) -> PathBuf {
        self.run_dir().join("up").join(id)
    }

    fn ports_file(&self, owner_id: &str) -> PathBuf {
        self.run_dir()
            .join("ports")
            .join(format!("{owner_id}.json"))
    }

    /// Creates a network, its bridge and its rules.
    pub fn create(&self, spec: NetworkSpec) -> Result<Network, NetError> {
        let _host = host_lock()?;
        let nl = Netlink::new()?;
        let routes = nl.host_routes()?;
        let net = self.networks()?.create(spec, &routes)?;
        if let Err(e) = self.bring_up_locked(&net, &nl) {
            let _ = self.teardown(&net);
            return Err(e);
        }
        Ok(net)
    }

    /// Every network, the default one included once it exists.
    pub fn list(&self) -> Result<Vec<Network>, NetError> {
        Ok(self.networks()?.list()?)
    }

    /// A network by name, id or unique id prefix; `bridge` is the default network, made on first use.
    pub fn get(&self, name_or_id: &str) -> Result<Network, NetError> {
        let networks = self.networks()?;
        if name_or_id == "bridge" {
            if let Ok(n) = networks.get("bridge") {
                return Ok(n);
            }
            let _host = host_lock()?;
            let nl = Netlink::new()?;
            let routes = nl.host_routes()?;
            let net = networks.ensure_default(&routes)?;
            // Up before the lock goes: its route is what the next root's choice avoids.
            self.bring_up_locked(&net, &nl)?;
            return Ok(net);
        }
        Ok(networks.get(name_or_id)?)
    }

    /// Removes a network no container uses (the caller checks that): its rules, bridge, leases,
    /// names and record. The last network's removal removes berth's table.
    pub fn remove(&self, net: &Network) -> Result<(), NetError> {
        // Under the host lock: the last network's removal takes berth's table, which another
        // root may be bringing a network up in.
        let _host = host_lock()?;
        self.teardown(net)?;
        self.networks()?.remove(&net.id)?;
        Ok(())
    }

    /// Removes every network of this state root (the default one too) and stops the DNS server
    /// of this run root: what a host's teardown, or a test's, does once its containers are gone.
    pub fn remove_all(&self) -> Result<(), NetError> {
        for n in self.list()? {
            self.remove(&n)?;
        }
        let pid_file = self.run_dir().join("dns").join("server.pid");
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        Ok(())
    }

    fn teardown(&self, net: &Network) -> Result<(), NetError> {
        let _ = std::fs::remove_file(self.up_marker(&net.id));
        Nft::new()?.remove_network(&net.bridge)?;
        Netlink::new()?.remove_bridge(&net.bridge)?;
        self.ipam()?.remove_network(&net.id)?;
        self.records()?.remove_network(&net.id)?;
        Ok(())
    }

    /// The marker alone is not enough: someone may have deleted the bridge since (one ioctl).
    fn is_up(&self, net: &Network) -> bool {
        self.up_marker(&net.id).exists() && link::exists(&net.bridge)
    }

    /// The bridge and rules of `net`, made once per boot (the marker lives under the run root).
    /// The slow path takes the host lock (see [`Net::remove`]).
    fn bring_up(&self, net: &Network, nl: &Netlink) -> Result<(), NetError> {
        if self.is_up(net) {
            return Ok(());
        }
        let _host = host_lock()?;
        self.bring_up_locked(net, nl)
    }

    /// [`Net::bring_up`] for a caller that holds the host lock.
    fn bring_up_locked(&self, net: &Network, nl: &Netlink) -> Result<(), NetError> {
        let marker = self.up_marker(&net.id);
        if self.is_up(net) {
            return Ok(());
        }
        let addrs: Vec<ipnet::IpNet> = net
            .subnets
            .iter()
            .filter_map(|s| ipnet::IpNet::new(s.gateway, s.subnet.prefix_len()).ok())
            .collect();
        nl.ensure_bridge(&net.bridge, &addrs, None)?;
        link::enable_forwarding(addrs.iter().any(|a| a.addr().is_ipv6()))?;
        Nft::new()?.add_network(&NetRules {
            bridge: net.bridge.clone(),
            subnets: net.subnets.iter().map(|s| s.subnet).collect(),
            internal: net.internal,
            icc: net.icc,
        })?;
        let dir = marker.parent().expect("marker has a parent");
        std::fs::create_dir_all(dir).map_err(|source| NetError::Io {
            action: "creating",
            path: dir.to_owned(),
            source,
        })?;
        std::fs::write(&marker, b"").map_err(|source| NetError::Io {
            action: "writing",
            path: marker.clone(),
            source,
        })
    }

    /// Leases an address on each network of `specs` for `who`, bringing the networks up where
    /// needed. All or nothing: on failure, what was leased is released.
    pub fn join(&self, who: &Member, specs: &[EndpointSpec]) -> Result<Vec<Endpoint>, NetError> {
        self.sweep()?;
        let nl = Netlink::new()?;
        let ipam = self.ipam()?;
        let mut out: Vec<Endpoint> = Vec::with_capacity(specs.len());
        let result = (|| {
            for (i, spec) in specs.iter().enumerate() {
                let net = self.get(&spec.network)?;
                self.bring_up(&net, &nl)?;
                let want: Vec<IpAddr> = spec
                    .ipv4
                    .map(IpAddr::V4)
                    .into_iter()
                    .chain(spec.ipv6.map(IpAddr::V6))
                    .collect();
                let leases = ipam.allocate(&net, &who.owner, &want)?;
                let mac = spec.mac.unwrap_or_else(|| {
                    match leases.iter().find_map(|l| match l.addr {
                        IpAddr::V4(a) => Some(a),
                        IpAddr::V6(_) => None,
                    }) {
                        Some(a) => link::mac_for(a),
                        None => random_mac(),
                    }
                });
                out.push(Endpoint {
                    host_veth: link::veth_name(&who.id, &net.id),
                    ifname: format!("eth{i}"),
                    network: net,
                    leases,
                    mac,
                    aliases: spec.aliases.clone(),
                });
            }
            Ok(())
        })();
        if let Err(e) = result {
            for ep in &out {
                let _ = ipam.release(&ep.network.id, &who.id);
            }
            return Err(e);
        }
        Ok(out)
    }

    /// Plugs `endpoints` into the namespace `netns`: a veth each; with `default_route`, the
    /// default route through the first network that is not internal (a container connected to
    /// one more network keeps the route it has).
    pub fn attach(
        &self,
        netns: BorrowedFd<'_>,
        endpoints: &[Endpoint],
        default_route: bool,
    ) -> Result<(), NetError> {
        let nl = Netlink::new()?;
        let route_via = endpoints
            .iter()
            .position(|e| !e.network.internal)
            .filter(|_| default_route);
        for (i, ep) in endpoints.iter().enumerate() {
            let gateways = if Some(i) == route_via {
                ep.leases.iter().map(|l| l.gateway).collect()
            } else {
                Vec::new()
            };
            nl.attach(
                netns,
                &Veth {
                    bridge: ep.network.bridge.clone(),
                    host_name: ep.host_veth.clone(),
                    ifname: ep.ifname.clone(),
                    mac: Some(ep.mac),
                    addrs: ep.leases.iter().map(Lease::cidr).collect(),
                    gateways,
                    mtu: None,
                },
            )?;
        }
        Ok(())
    }

    /// Takes `endpoint`'s veth out of a running container (`network disconnect`).
    pub fn unplug(&self, endpoint_host_veth: &str) -> Result<(), NetError> {
        Ok(Netlink::new()?.detach(endpoint_host_veth)?)
    }

    /// Publishes `mappings` onto the first endpoint that is not on an internal network, in one
    /// batch. A host port something else holds, or another container publishes, is an error
    /// naming it, and nothing is published.
    pub fn publish(
        &self,
        who: &Member,
        endpoints: &[Endpoint],
        mappings: &[PortMapping],
    ) -> Result<Vec<Published>, NetError> {
        if mappings.is_empty() {
            return Ok(Vec::new());
        }
        let Some(ep) = endpoints.iter().find(|e| !e.network.internal) else {
            return Ok(Vec::new());
        };
        // Published ports hold no socket (DNAT), so the kernel cannot tell a bind that another
        // container has the port: the ports files can, under their lock.
        let _lock = self.ports_lock()?;
        let mut taken: Vec<PortMapping> = self.published_by_others(&who.id);
        let mut out = Vec::with_capacity(mappings.len());
        for m in mappings {
            let mut m = m.clone();
            let container_addr = match m.host_ip {
                Some(IpAddr::V6(_)) => ep.ipv6().map(|l| l.addr),
                _ => ep.ipv4().map(|l| l.addr),
            };
            let Some(addr) = container_addr else { continue };
            if m.host_port == 0 {
                // The kernel's pick knows sockets only: pick again past another container's port.
                let mut tries = 0;
                loop {
                    m.host_port = ports::pick_free(m.host_ip, m.container_port, m.proto)?;
                    tries += 1;
                    if !overlaps(&taken, &m) || tries == 32 {
                        break;
                    }
                }
            } else {
                ports::check_free(m.host_ip, m.host_port, m.proto)?;
            }
            if overlaps(&taken, &m) {
                return Err(PortError::InUse {
                    addr: m.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                    port: m.host_port,
                    proto: m.proto,
                }
                .into());
            }
            taken.push(m.clone());
            out.push(Published {
                rule: PortRule {
                    proto: m.proto,
                    host_ip: m.host_ip,
                    host_port: m.host_port,
                    addr,
                    port: m.container_port,
                    bridge: ep.network.bridge.clone(),
                },
                mapping: m,
            });
        }
        // Recorded first: a kill between the batch and the record would otherwise leave rules no
        // sweep knows of.
        self.write_ports(&PortsFile {
            owner: who.owner.clone(),
            ports: out.clone(),
        })?;
        let rules: Vec<PortRule> = out.iter().map(|p| p.rule.clone()).collect();
        if let Err(e) = Nft::new()?.publish(&rules) {
            let _ = std::fs::remove_file(self.ports_file(&who.id));
            return Err(e.into());
        }
        Ok(out)
    }

    /// The lock under which ports are checked and published.
    fn ports_lock(&self) -> Result<std::fs::File, NetError> {
        let dir = self.run_dir().join("ports");
        std::fs::create_dir_all(&dir).map_err(|source| NetError::Io {
            action: "creating",
            path: dir.clone(),
            source,
        })?;
        berth_fs::lock_exclusive(&dir.join(".lock")).map_err(|e| NetError::Io {
            action: e.op,
            path: e.path,
            source: e.source,
        })
    }

    /// What the live owners other than `owner_id` publish.
    fn published_by_others(&self, owner_id: &str) -> Vec<PortMapping> {
        let Ok(entries) = std::fs::read_dir(self.run_dir().join("ports")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                !n.starts_with('.') && n.ends_with(".json") && n != format!("{owner_id}.json")
            })
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice::<PortsFile>(&b).ok())
            .filter(|f| f.owner.is_alive())
            .flat_map(|f| f.ports.into_iter().map(|p| p.mapping))
            .collect()
    }

    fn write_ports(&self, f: &PortsFile) -> Result<(), NetError> {
        let path = self.ports_file(&f.owner.id);
        let dir = path.parent().expect("ports file has a parent");
        std::fs::create_dir_all(dir).map_err(|source| NetError::Io {
            action: "creating",
            path: dir.to_owned(),
            source,
        })?;
        let body = serde_json::to_vec(f).expect("ports serialize");
        berth_fs::write_atomic(&path, &body, berth_fs::Durability::Volatile).map_err(|e| {
            NetError::Io {
                action: "writing",
                path: e.path,
                source: e.source,
            }
        })
    }

    /// What `owner_id` publishes now.
    pub fn published(&self, owner_id: &str) -> Vec<Published> {
        std::fs::read(self.ports_file(owner_id))
            .ok()
            .and_then(|b| serde_json::from_slice::<PortsFile>(&b).ok())
            .map(|f| f.ports)
            .unwrap_or_default()
    }

    /// Records `who`'s names on each user-defined network of `endpoints` and makes sure the DNS
    /// server answers for them.
    pub fn register(&self, who: &Member, endpoints: &[Endpoint]) -> Result<(), NetError> {
        let records = self.records()?;
        let mut any = false;
        for ep in endpoints.iter().filter(|e| !e.network.is_default()) {
            let mut names = vec![who.name.clone(), who.id[..12.min(who.id.len())].to_owned()];
            names.extend(ep.aliases.iter().cloned());
            let listen: Vec<IpAddr> = ep.network.subnets.iter().map(|s| s.gateway).collect();
            records.set(
                &ep.network.id,
                &listen,
                Record {
                    names,
                    addrs: ep.leases.iter().map(|l| l.addr).collect(),
                    owner: who.owner.clone(),
                },
            )?;
            any = true;
        }
        if any && let Some((exe, args)) = &self.dns_exe {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            dns::ensure_server(&self.run, exe, &args)?;
        }
        Ok(())
    }

    /// Gives back everything `owner_id` holds: published ports, names, and its leases (on one
    /// network, or on all when `network_id` is `None`).
    pub fn leave(&self, owner_id: &str, network_id: Option<&str>) -> Result<(), NetError> {
        let ipam = self.ipam()?;
        let records = self.records()?;
        let released = match network_id {
            Some(n) => ipam.release(n, owner_id)?,
            None => ipam.release_all(owner_id)?,
        };
        for l in &released {
            records.remove(&l.network, owner_id)?;
        }
        if network_id.is_none() {
            self.unpublish(owner_id)?;
        }
        Ok(())
    }

    fn unpublish(&self, owner_id: &str) -> Result<(), NetError> {
        let path = self.ports_file(owner_id);
        let ports = self.published(owner_id);
        if !ports.is_empty() {
            let rules: Vec<PortRule> = ports.into_iter().map(|p| p.rule).collect();
            Nft::new()?.unpublish(&rules)?;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(NetError::Io {
                action: "removing",
                path,
                source,
            }),
        }
    }

    /// Reclaims what dead owners hold: their leases, names and published ports. Every command
    /// that hands something out runs it first, so a `kill -9` anywhere leaves nothing behind once
    /// the next command has run.
    pub fn sweep(&self) -> Result<(), NetError> {
        let records = self.records()?;
        for l in self.ipam()?.reclaim()? {
            records.remove(&l.network, &l.owner.id)?;
        }
        let dir = self.run_dir().join("ports");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            // `.OWNER.json.tmp-PID-…`: a writer killed before its rename (removed once its pid is
            // gone, whether or not the file it was replacing exists).
            if let Some(target) = name.strip_prefix('.').and_then(|n| n.split_once(".tmp-")) {
                let _ = berth_fs::remove_orphaned_temps(&dir.join(target.0));
                continue;
            }
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let Some(f) = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<PortsFile>(&b).ok())
            else {
                continue;
            };
            if !f.owner.is_alive() {
                self.unpublish(&f.owner.id)?;
            }
        }
        Ok(())
    }
}

/// The host-wide lock under which a subnet is chosen and its bridge brought up, so that two
/// state roots (or two first uses of the default network) never pick the same subnet: the choice
/// avoids the host's routes, and the bridge's route exists before the lock is released.
fn host_lock() -> Result<std::fs::File, NetError> {
    berth_fs::lock_exclusive(Path::new("/run/berth-net.lock")).map_err(|e| NetError::Io {
        action: e.op,
        path: e.path,
        source: e.source,
    })
}

/// Whether `m`'s host side collides with one of `taken`: the same protocol and port, on the same
/// address or where either is every address (as a listener's bind would collide).
fn overlaps(taken: &[PortMapping], m: &PortMapping) -> bool {
    taken.iter().any(|t| {
        t.proto == m.proto
            && t.host_port == m.host_port
            && (t.host_ip.is_none() || m.host_ip.is_none() || t.host_ip == m.host_ip)
    })
}

/// A locally administered unicast MAC for an endpoint without an IPv4 address.
fn random_mac() -> [u8; 6] {
    let mut m = [0u8; 6];
    let _ = rustix::rand::getrandom(&mut m, rustix::rand::GetRandomFlags::empty());
    m[0] = (m[0] & 0xfe) | 0x02;
    m
}
