//! Networks as containers use them: the `--network` family of flags at create, joining the
//! networks between the runtime's clone and the exec at start, giving everything back at exit,
//! and the `network` commands (which need to know which containers use a network).

use super::{Engine, Prepared};
use crate::error::{Error, Result, io_err};
use crate::options::{self, CreateOptions, NetworkMode};
use crate::record::{
    ContainerRecord, EndpointConfig, EndpointSettings, NetworkSettings, NetworkingConfig,
    PortBinding, State, Status,
};
use berth_net::config::{Network, NetworkSpec};
use berth_net::hosts::{HostsFile, ResolvConf};
use berth_net::owner::Owner;
use berth_net::ports::{self, PortMapping, Proto};
use berth_net::{Endpoint, EndpointSpec, Net, Published};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// A running container on a network: its id, name and endpoint.
type Member = (String, String, EndpointSettings);

/// What the network flags of `create` put into the record.
#[derive(Debug, Default)]
pub(crate) struct NetRecord {
    pub networking_config: NetworkingConfig,
    pub port_bindings: BTreeMap<String, Vec<PortBinding>>,
    pub exposed_ports: BTreeMap<String, Value>,
    pub links: Vec<String>,
    pub extra_hosts: Vec<String>,
}

/// A started container's networking, to record and to give back at its exit.
#[derive(Debug)]
pub(crate) struct Joined {
    /// The container as berth-net knows it (held by this process).
    pub member: berth_net::Member,
    pub endpoints: Vec<Endpoint>,
    pub published: Vec<Published>,
    /// `--link` environment variables.
    pub env: Vec<String>,
}

impl Engine {
    /// berth-net on this engine's roots; its DNS server is this engine's monitor program.
    pub fn net(&self) -> Net {
        Net::new(&self.root, &self.run_root).with_dns_server(
            &self.monitor,
            vec![
                "--root".into(),
                self.root.to_string_lossy().into_owned(),
                "--run-root".into(),
                self.run_root.to_string_lossy().into_owned(),
                "__dns".into(),
            ],
        )
    }

    /// Validates the network flags of `create` and turns them into record fields.
    pub(crate) fn plan_networking(
        &self,
        opts: &CreateOptions,
        mode: &NetworkMode,
        image_exposed: &[String],
        self_name: &str,
    ) -> Result<NetRecord> {
        let bad = |m: String| Error::NetworkConfig(m);
        let mut rec = NetRecord::default();
        let mut exposed: Vec<(u16, Proto)> = Vec::new();
        for key in image_exposed.iter().chain(&opts.expose) {
            exposed.extend(ports::parse_exposed(key).map_err(berth_net::NetError::from)?);
        }
        let mut mappings = Vec::new();
        for p in &opts.publish {
            mappings.extend(ports::parse_publish(p).map_err(berth_net::NetError::from)?);
        }
        for m in &mappings {
            exposed.push((m.container_port, m.proto));
            rec.port_bindings
                .entry(m.key())
                .or_default()
                .push(PortBinding {
                    host_ip: m.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                    host_port: if m.host_port == 0 {
                        String::new()
                    } else {
                        m.host_port.to_string()
                    },
                });
        }
        for (port, proto) in exposed {
            rec.exposed_ports
                .insert(format!("{port}/{proto}"), json!({}));
        }
        for h in &opts.add_hosts {
            let (name, ip) = options::parse_add_host(h)?;
            rec.extra_hosts.push(format!("{name}:{ip}"));
        }
        for d in &opts.dns {
            d.parse::<IpAddr>()
                .map_err(|_| options::OptionError::Invalid {
                    flag: "--dns",
                    value: d.clone(),
                    why: "not an IP address",
                })?;
        }
        let NetworkMode::Bridge(names) = mode else {
            let flag = [
                ("-p", !opts.publish.is_empty()),
                ("--link", !opts.links.is_empty()),
                ("--ip", opts.ip.is_some()),
                ("--ip6", opts.ip6.is_some()),
                ("--network-alias", !opts.network_aliases.is_empty()),
                ("--mac-address", opts.mac_address.is_some()),
            ]
            .into_iter()
            .find(|(_, given)| *given);
            if let Some((flag, _)) = flag {
                return Err(bad(format!(
                    "conflicting options: {flag} and the network mode {}",
                    mode.as_record()
                )));
            }
            return Ok(rec);
        };
        let net = self.net();
        let mut first: Option<Network> = None;
        for n in names {
            let found = net.get(n)?;
            first.get_or_insert(found);
        }
        let first_net = first.expect("at least one network");
        let ipv4 = opts
            .ip
            .as_deref()
            .map(|s| {
                s.parse::<std::net::Ipv4Addr>()
                    .map_err(|_| options::OptionError::Invalid {
                        flag: "--ip",
                        value: s.to_owned(),
                        why: "not an IPv4 address",
                    })
            })
            .transpose()?;
        let ipv6 = opts
            .ip6
            .as_deref()
            .map(|s| {
                s.parse::<std::net::Ipv6Addr>()
                    .map_err(|_| options::OptionError::Invalid {
                        flag: "--ip6",
                        value: s.to_owned(),
                        why: "not an IPv6 address",
                    })
            })
            .transpose()?;
        if first_net.is_default() {
            if ipv4.is_some() || ipv6.is_some() {
                return Err(bad(
                    "user specified IP address is supported on user defined networks only".into(),
                ));
            }
            if !opts.network_aliases.is_empty() {
                return Err(bad(
                    "network-scoped aliases are only supported for user-defined networks".into(),
                ));
            }
        }
        let mac = opts
            .mac_address
            .as_deref()
            .map(options::parse_mac)
            .transpose()?;
        for (i, n) in names.iter().enumerate() {
            let mut ep = EndpointConfig {
                network: n.clone(),
                ..Default::default()
            };
            if i == 0 {
                ep.aliases = opts.network_aliases.clone();
                ep.ipv4_address = ipv4.map(|a| a.to_string()).unwrap_or_default();
                ep.ipv6_address = ipv6.map(|a| a.to_string()).unwrap_or_default();
                ep.mac_address = mac.map(format_mac).unwrap_or_default();
            }
            rec.networking_config.endpoints_config.push(ep);
        }
        for l in &opts.links {
            let (target, alias) = options::parse_link(l)?;
            let id = self
                .containers
                .resolve(&target)
                .map_err(|_| bad(format!("could not get container for {target}")))?;
            let other = self.containers.read_config(&id)?;
            rec.links
                .push(format!("/{}:/{self_name}/{alias}", other.short_name()));
        }
        Ok(rec)
    }

    /// Joins the container's networks before its process is spawned: leases, `/etc/hosts` and
    /// `/etc/resolv.conf`, published ports. `None` for containers without bridge networks (their
    /// files were written at create). On error nothing is left held.
    pub(crate) fn join_networks(&self, p: &Prepared) -> Result<Option<Joined>> {
        let rec = &p.record;
        let eps = &rec.networking_config.endpoints_config;
        let mode = options::recorded_network_mode(
            &rec.host_config.network_mode,
            &eps.iter().map(|e| e.network.clone()).collect::<Vec<_>>(),
        );
        let NetworkMode::Bridge(_) = mode else {
            return Ok(None);
        };
        let net = self.net();
        let member = berth_net::Member {
            id: rec.id.clone(),
            name: rec.short_name().to_owned(),
            owner: Owner::current(&rec.id),
        };
        let specs = eps.iter().map(endpoint_spec).collect::<Result<Vec<_>>>()?;
        let endpoints = net.join(&member, &specs)?;
        self.timing.mark("net-join");
        let undo = |e: Error| {
            let _ = net.leave(&rec.id, None);
            e
        };
        let mut joined = Joined {
            member,
            endpoints,
            published: Vec::new(),
            env: Vec::new(),
        };
        let links = self.link_targets(rec).map_err(undo)?;
        for (alias, target, ip) in &links {
            joined
                .env
                .extend(link_env(alias, rec.short_name(), target, ip));
        }
        self.write_network_files(rec, &joined.endpoints, &links)
            .map_err(undo)?;
        let mappings = self.mappings(rec).map_err(undo)?;
        joined.published = net
            .publish(&joined.member, &joined.endpoints, &mappings)
            .map_err(|e| undo(e.into()))?;
        self.timing.mark("net-ports");
        Ok(Some(joined))
    }

    /// The veths, from the runtime's hook: the container's network namespace is `/proc/PID/ns/net`.
    pub(crate) fn attach_networks(&self, pid: i32, joined: &Joined) -> Result<()> {
        use std::os::fd::AsFd;
        self.net()
            .attach(netns_of(pid)?.as_fd(), &joined.endpoints, true)?;
        Ok(())
    }

    /// After the process runs: its names in DNS, and what `inspect` shows.
    pub(crate) fn networks_started(
        &self,
        rec: &ContainerRecord,
        joined: &Joined,
        st: &mut State,
    ) -> Result<()> {
        self.net().register(&joined.member, &joined.endpoints)?;
        st.network_settings = settings(rec, joined);
        Ok(())
    }

    /// Gives back what a container held on its networks (its exit, a failed start).
    pub(crate) fn leave_networks(&self, id: &str) {
        if let Err(e) = self.net().leave(id, None) {
            eprintln!("berth: warning: releasing the networks of container {id}: {e}");
        }
    }

    fn mappings(&self, rec: &ContainerRecord) -> Result<Vec<PortMapping>> {
        let mut out = Vec::new();
        for (key, bindings) in &rec.host_config.port_bindings {
            let (port, proto) = split_key(key)?;
            for b in bindings {
                out.push(PortMapping {
                    host_ip: (!b.host_ip.is_empty())
                        .then(|| b.host_ip.parse())
                        .transpose()
                        .map_err(|_| {
                            Error::NetworkConfig(format!("bad host IP {:?}", b.host_ip))
                        })?,
                    host_port: if b.host_port.is_empty() {
                        0
                    } else {
                        b.host_port.parse().map_err(|_| {
                            Error::NetworkConfig(format!("bad host port {:?}", b.host_port))
                        })?
                    },
                    container_port: port,
                    proto,
                });
            }
        }
        if rec.host_config.publish_all_ports {
            for key in rec.config.exposed_ports.keys() {
                if rec.host_config.port_bindings.contains_key(key) {
                    continue;
                }
                let (port, proto) = split_key(key)?;
                out.push(PortMapping {
                    host_ip: None,
                    host_port: 0,
                    container_port: port,
                    proto,
                });
            }
        }
        Ok(out)
    }

    /// `--link` targets: (alias, target record, its address on the default network).
    fn link_targets(
        &self,
        rec: &ContainerRecord,
    ) -> Result<Vec<(String, ContainerRecord, IpAddr)>> {
        let mut out = Vec::new();
        for l in &rec.host_config.links {
            // "/db:/web/alias"
            let (target, rest) = l.split_once(':').unwrap_or((l, l));
            let target = target.trim_start_matches('/');
            let alias = rest.rsplit('/').next().unwrap_or(target).to_owned();
            let id = self.containers.resolve(target).map_err(|_| {
                Error::NetworkConfig(format!("cannot link to {target}: no such container"))
            })?;
            let st = self.state(&id)?;
            let other = self.containers.read_config(&id)?;
            let ip = (st.status == Status::Running)
                .then(|| {
                    st.network_settings
                        .networks
                        .values()
                        .find_map(|e| e.ip_address.parse::<IpAddr>().ok())
                })
                .flatten()
                .ok_or_else(|| {
                    Error::NetworkConfig(format!(
                        "cannot link to a non running container: /{target} AS /{}/{alias}",
                        rec.short_name()
                    ))
                })?;
            out.push((alias, other, ip));
        }
        Ok(out)
    }

    fn write_network_files(
        &self,
        rec: &ContainerRecord,
        endpoints: &[Endpoint],
        links: &[(String, ContainerRecord, IpAddr)],
    ) -> Result<()> {
        let dir = self.containers.dir(&rec.id);
        let gateway = endpoints
            .iter()
            .find_map(|e| e.ipv4().map(|l| l.gateway))
            .or_else(|| {
                endpoints
                    .first()
                    .and_then(|e| e.leases.first())
                    .map(|l| l.gateway)
            });
        let mut extra = Vec::new();
        for h in &rec.host_config.extra_hosts {
            let (name, ip) = h.split_once(':').unwrap_or((h, ""));
            let ip = if ip == "host-gateway" {
                gateway
            } else {
                ip.parse().ok()
            };
            if let Some(ip) = ip {
                extra.push((name.to_owned(), ip));
            }
        }
        for (alias, target, ip) in links {
            let names = if alias == target.short_name() {
                format!("{alias} {}", &target.id[..12])
            } else {
                format!("{alias} {} {}", &target.id[..12], target.short_name())
            };
            extra.push((names, *ip));
        }
        let hosts = HostsFile {
            hostname: rec.config.hostname.clone(),
            domainname: (!rec.config.domainname.is_empty()).then(|| rec.config.domainname.clone()),
            addrs: endpoints
                .first()
                .map(|e| e.leases.iter().map(|l| l.addr).collect())
                .unwrap_or_default(),
            extra,
            ipv6: true,
        };
        let host_resolv =
            ResolvConf::parse(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
        let dns: Vec<IpAddr> = rec
            .host_config
            .dns
            .iter()
            .filter_map(|d| d.parse().ok())
            .collect();
        let user_net = endpoints.iter().find(|e| !e.network.is_default());
        let resolv = match user_net {
            // On user-defined networks the embedded server answers, and forwards the rest to
            // `--dns` or the host's resolvers.
            Some(ep) if dns.is_empty() => ResolvConf {
                nameservers: ep
                    .network
                    .subnets
                    .iter()
                    .map(|s| s.gateway)
                    .take(1)
                    .collect(),
                search: if rec.host_config.dns_search.is_empty() {
                    host_resolv.search.clone()
                } else {
                    rec.host_config.dns_search.clone()
                },
                options: if rec.host_config.dns_options.is_empty() {
                    host_resolv.options.clone()
                } else {
                    rec.host_config.dns_options.clone()
                },
            },
            _ => ResolvConf::for_container(
                &host_resolv,
                &dns,
                &rec.host_config.dns_search,
                &rec.host_config.dns_options,
            ),
        };
        for (name, body) in [("hosts", hosts.render()), ("resolv.conf", resolv.render())] {
            let path = dir.join(name);
            // Often what create wrote (resolv.conf on the default bridge): a file made for
            // nothing costs more than the read.
            if std::fs::read(&path).is_ok_and(|old| old == body.as_bytes()) {
                continue;
            }
            berth_fs::write_atomic(&path, body.as_bytes(), berth_fs::Durability::Volatile)
                .map_err(|e| Error::NetworkConfig(format!("writing {}: {e}", path.display())))?;
        }
        Ok(())
    }

    /// `network create`.
    pub fn network_create(&self, spec: NetworkSpec) -> Result<Network> {
        if matches!(spec.name.as_str(), "bridge" | "host" | "none") {
            return Err(Error::NetworkConfig(format!(
                "operation is not permitted on predefined {} network",
                spec.name
            )));
        }
        Ok(self.net().create(spec)?)
    }

    /// `network ls`: every network, the default one created first if need be.
    pub fn network_list(&self) -> Result<Vec<Network>> {
        let net = self.net();
        net.get("bridge")?;
        Ok(net.list()?)
    }

    /// The running containers on each network: network id → (container id, its endpoint).
    fn network_members(&self) -> Result<BTreeMap<String, Vec<Member>>> {
        let mut out: BTreeMap<String, Vec<Member>> = BTreeMap::new();
        for id in self.containers.ids()? {
            let Ok(st) = self.state(&id) else { continue };
            if st.status != Status::Running {
                continue;
            }
            let Ok(rec) = self.containers.read_config(&id) else {
                continue;
            };
            for ep in st.network_settings.networks.values() {
                out.entry(ep.network_id.clone()).or_default().push((
                    id.clone(),
                    rec.short_name().to_owned(),
                    ep.clone(),
                ));
            }
        }
        Ok(out)
    }

    /// `network inspect`: Docker's JSON.
    pub fn network_inspect(&self, what: &str) -> Result<Value> {
        let n = self.net().get(what)?;
        let members = self.network_members()?;
        Ok(network_json(
            &n,
            members.get(&n.id).map(Vec::as_slice).unwrap_or(&[]),
        ))
    }

    /// Docker's JSON of every network (for `network ls --format`).
    pub fn network_json(&self, n: &Network) -> Result<Value> {
        let members = self.network_members()?;
        Ok(network_json(
            n,
            members.get(&n.id).map(Vec::as_slice).unwrap_or(&[]),
        ))
    }

    /// `network rm`: refused while running containers use it (the error names them).
    pub fn network_remove(&self, what: &str) -> Result<Network> {
        let net = self.net();
        net.sweep()?;
        let n = net.get(what)?;
        if n.is_default() {
            return Err(Error::NetworkConfig(
                "bridge is a pre-defined network and cannot be removed".into(),
            ));
        }
        if let Some(m) = self.network_members()?.get(&n.id).filter(|m| !m.is_empty()) {
            return Err(Error::NetworkInUse {
                network: n.name.clone(),
                containers: m
                    .iter()
                    .map(|(_, name, _)| name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        net.remove(&n)?;
        Ok(n)
    }

    /// `network prune`: removes every user-defined network no running container uses.
    pub fn network_prune(&self) -> Result<Vec<String>> {
        let members = self.network_members()?;
        let net = self.net();
        let mut removed = Vec::new();
        for n in net.list()? {
            if n.is_default() || members.get(&n.id).is_some_and(|m| !m.is_empty()) {
                continue;
            }
            net.remove(&n)?;
            removed.push(n.name);
        }
        Ok(removed)
    }

    /// `network connect`: records the network for the container's next starts and, if it runs,
    /// plugs it in now.
    pub fn network_connect(
        &self,
        network: &str,
        container: &str,
        aliases: &[String],
        ip: Option<&str>,
        ip6: Option<&str>,
    ) -> Result<()> {
        let id = self.resolve(container)?;
        let net = self.net();
        let n = net.get(network)?;
        let _lock = self.containers.lock(&id)?;
        let mut rec = self.containers.read_config(&id)?;
        let name = rec.short_name().to_owned();
        if !rec.host_config.network_mode.is_empty()
            && matches!(
                options::recorded_network_mode(&rec.host_config.network_mode, &[]),
                NetworkMode::Host | NetworkMode::Container(_)
            )
        {
            return Err(Error::NetworkConfig(format!(
                "container {name} shares the network of {}: it cannot be connected to networks",
                rec.host_config.network_mode
            )));
        }
        let eps = &mut rec.networking_config.endpoints_config;
        if eps.iter().any(|e| e.network == n.name || e.network == n.id) {
            return Err(Error::AlreadyConnected {
                container: name,
                network: n.name,
            });
        }
        let ep = EndpointConfig {
            network: n.name.clone(),
            aliases: aliases.to_vec(),
            ipv4_address: ip.unwrap_or_default().to_owned(),
            ipv6_address: ip6.unwrap_or_default().to_owned(),
            mac_address: String::new(),
        };
        let spec = endpoint_spec(&ep)?;
        let mut st = self.state(&id)?;
        if st.status == Status::Running {
            // The lease belongs to the process that holds the container's other leases.
            let owner = Owner {
                id: id.clone(),
                pid: st.monitor_pid,
                start: st.monitor_start,
            };
            let member = berth_net::Member {
                id: id.clone(),
                name: name.clone(),
                owner,
            };
            let mut joined = net.join(&member, std::slice::from_ref(&spec))?;
            let index = st.network_settings.networks.len();
            for e in &mut joined {
                e.ifname = format!("eth{index}");
            }
            let attach = || -> Result<()> {
                use std::os::fd::AsFd;
                net.attach(netns_of(st.pid)?.as_fd(), &joined, false)?;
                net.register(&member, &joined)?;
                Ok(())
            };
            if let Err(e) = attach() {
                let _ = net.leave(&id, Some(&n.id));
                return Err(e);
            }
            for e in &joined {
                st.network_settings
                    .networks
                    .insert(n.name.clone(), endpoint_settings(e, &ep.aliases, &[]));
            }
            self.containers.write_state(&id, &st, true)?;
        }
        if rec.host_config.network_mode == "none" {
            rec.host_config.network_mode = n.name.clone();
        }
        rec.networking_config.endpoints_config.push(ep);
        self.containers.write_config(&rec, true)?;
        Ok(())
    }

    /// `network disconnect`.
    pub fn network_disconnect(&self, network: &str, container: &str, force: bool) -> Result<()> {
        let net = self.net();
        let n = match net.get(network) {
            Ok(n) => n,
            Err(e) if !force => return Err(e.into()),
            Err(_) => return Ok(()),
        };
        let id = self.resolve(container)?;
        let _lock = self.containers.lock(&id)?;
        let mut rec = self.containers.read_config(&id)?;
        let name = rec.short_name().to_owned();
        let before = rec.networking_config.endpoints_config.len();
        rec.networking_config
            .endpoints_config
            .retain(|e| e.network != n.name && e.network != n.id);
        if rec.networking_config.endpoints_config.len() == before {
            return Err(Error::NotConnected {
                container: name,
                network: n.name,
            });
        }
        let mut st = self.state(&id)?;
        if st.status == Status::Running
            && let Some(ep) = st.network_settings.networks.remove(&n.name)
        {
            net.unplug(&ep.endpoint_id)?;
            net.leave(&id, Some(&n.id))?;
            self.containers.write_state(&id, &st, true)?;
        }
        if rec.networking_config.endpoints_config.is_empty() {
            rec.host_config.network_mode = "none".into();
        } else if rec.host_config.network_mode == n.name {
            rec.host_config.network_mode =
                rec.networking_config.endpoints_config[0].network.clone();
        }
        self.containers.write_config(&rec, true)?;
        Ok(())
    }

    /// `port CONTAINER`: the published ports of a running container.
    pub fn ports(&self, container: &str) -> Result<BTreeMap<String, Vec<PortBinding>>> {
        let id = self.resolve(container)?;
        let st = self.state(&id)?;
        if st.status != Status::Running {
            return Ok(BTreeMap::new());
        }
        Ok(st.network_settings.ports)
    }
}

/// The network namespace of process `pid`.
fn netns_of(pid: i32) -> Result<std::fs::File> {
    let path = format!("/proc/{pid}/ns/net");
    std::fs::File::open(&path).map_err(io_err("open", &path))
}

fn split_key(key: &str) -> Result<(u16, Proto)> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let port = port
        .parse()
        .map_err(|_| Error::NetworkConfig(format!("bad port {key:?}")))?;
    let proto = match proto {
        "udp" => Proto::Udp,
        _ => Proto::Tcp,
    };
    Ok((port, proto))
}

fn endpoint_spec(e: &EndpointConfig) -> Result<EndpointSpec> {
    let parse = |s: &str, flag: &'static str| -> Result<Option<IpAddr>> {
        if s.is_empty() {
            return Ok(None);
        }
        s.parse().map(Some).map_err(|_| {
            options::OptionError::Invalid {
                flag,
                value: s.to_owned(),
                why: "not an IP address",
            }
            .into()
        })
    };
    let ipv4 = match parse(&e.ipv4_address, "--ip")? {
        Some(IpAddr::V4(a)) => Some(a),
        _ => None,
    };
    let ipv6 = match parse(&e.ipv6_address, "--ip6")? {
        Some(IpAddr::V6(a)) => Some(a),
        _ => None,
    };
    let mac = (!e.mac_address.is_empty())
        .then(|| options::parse_mac(&e.mac_address))
        .transpose()?;
    Ok(EndpointSpec {
        network: e.network.clone(),
        aliases: e.aliases.clone(),
        ipv4,
        ipv6,
        mac,
    })
}

/// Docker's `aa:bb:cc:dd:ee:ff`.
pub(crate) fn format_mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn endpoint_settings(e: &Endpoint, aliases: &[String], links: &[String]) -> EndpointSettings {
    let v4 = e.ipv4();
    let v6 = e.ipv6();
    EndpointSettings {
        aliases: aliases.to_vec(),
        links: links.to_vec(),
        network_id: e.network.id.clone(),
        endpoint_id: e.host_veth.clone(),
        gateway: v4.map(|l| l.gateway.to_string()).unwrap_or_default(),
        ip_address: v4.map(|l| l.addr.to_string()).unwrap_or_default(),
        ip_prefix_len: v4.map(|l| l.prefix).unwrap_or(0),
        ipv6_gateway: v6.map(|l| l.gateway.to_string()).unwrap_or_default(),
        global_ipv6_address: v6.map(|l| l.addr.to_string()).unwrap_or_default(),
        global_ipv6_prefix_len: v6.map(|l| l.prefix).unwrap_or(0),
        mac_address: format_mac(e.mac),
    }
}

/// `NetworkSettings` of a container that has just joined its networks.
fn settings(rec: &ContainerRecord, joined: &Joined) -> NetworkSettings {
    let mut s = NetworkSettings::default();
    for (i, e) in joined.endpoints.iter().enumerate() {
        let cfg = rec.networking_config.endpoints_config.get(i);
        let links = if e.network.is_default() {
            rec.host_config.links.clone()
        } else {
            Vec::new()
        };
        s.networks.insert(
            e.network.name.clone(),
            endpoint_settings(e, cfg.map(|c| c.aliases.as_slice()).unwrap_or(&[]), &links),
        );
    }
    for p in &joined.published {
        s.ports
            .entry(p.mapping.key())
            .or_default()
            .push(PortBinding {
                host_ip: p
                    .mapping
                    .host_ip
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "0.0.0.0".into()),
                host_port: p.mapping.host_port.to_string(),
            });
    }
    // Exposed but unpublished ports show with no binding, as Docker's `null`.
    for key in rec.config.exposed_ports.keys() {
        s.ports.entry(key.clone()).or_default();
    }
    s
}

/// Docker's link variables for `alias` → `target` at `ip`.
fn link_env(alias: &str, me: &str, target: &ContainerRecord, ip: &IpAddr) -> Vec<String> {
    let prefix: String = alias
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    let mut env = vec![format!("{prefix}_NAME=/{me}/{alias}")];
    let mut ports: Vec<(u16, &str)> = target
        .config
        .exposed_ports
        .keys()
        .filter_map(|k| {
            let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
            Some((p.parse().ok()?, proto))
        })
        .collect();
    ports.sort();
    if let Some((p, proto)) = ports.first() {
        env.push(format!("{prefix}_PORT={proto}://{ip}:{p}"));
    }
    for (p, proto) in &ports {
        let up = proto.to_ascii_uppercase();
        let base = format!("{prefix}_PORT_{p}_{up}");
        env.push(format!("{base}={proto}://{ip}:{p}"));
        env.push(format!("{base}_ADDR={ip}"));
        env.push(format!("{base}_PORT={p}"));
        env.push(format!("{base}_PROTO={proto}"));
    }
    for e in &target.config.env {
        let (k, v) = e.split_once('=').unwrap_or((e, ""));
        if matches!(k, "HOME" | "HOSTNAME" | "PATH") {
            continue;
        }
        env.push(format!("{prefix}_ENV_{k}={v}"));
    }
    env
}

/// Docker's `network inspect` JSON.
fn network_json(n: &Network, members: &[Member]) -> Value {
    let config: Vec<Value> = n
        .subnets
        .iter()
        .map(|s| {
            let mut c = json!({ "Subnet": s.subnet.to_string(), "Gateway": s.gateway.to_string() });
            if let Some(r) = s.ip_range {
                c["IPRange"] = json!(r.to_string());
            }
            c
        })
        .collect();
    let mut containers = serde_json::Map::new();
    for (id, name, ep) in members {
        containers.insert(
            id.clone(),
            json!({
                "Name": name,
                "EndpointID": ep.endpoint_id,
                "MacAddress": ep.mac_address,
                "IPv4Address": if ep.ip_address.is_empty() { String::new() } else { format!("{}/{}", ep.ip_address, ep.ip_prefix_len) },
                "IPv6Address": if ep.global_ipv6_address.is_empty() { String::new() } else { format!("{}/{}", ep.global_ipv6_address, ep.global_ipv6_prefix_len) },
            }),
        );
    }
    let mut opts = n.options.clone();
    opts.entry("com.docker.network.bridge.name".into())
        .or_insert_with(|| n.bridge.clone());
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv6": n.ipv6,
        "IPAM": { "Driver": "default", "Options": {}, "Config": config },
        "Internal": n.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": { "Network": "" },
        "ConfigOnly": false,
        "Containers": containers,
        "Options": opts,
        "Labels": n.labels,
    })
}
