//! Network records: what `network create` asked for, validated, under the state root
//! (`ROOT/networks/<id>.json`, one file a network, replaced atomically and durably). Creation and
//! removal hold `ROOT/networks/.lock`, so names stay unique and two subnets never overlap.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use berth_fs::Durability;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

/// The option naming a network's bridge interface.
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
/// The option that turns inter-container traffic on the bridge off (`false`).
pub const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";
/// Options accepted and recorded but without effect here (Docker sets them on its default network).
const OPT_KNOWN: &[&str] = &[
    OPT_BRIDGE_NAME,
    OPT_ICC,
    "com.docker.network.bridge.enable_ip_masquerade",
    "com.docker.network.bridge.host_binding_ipv4",
    "com.docker.network.bridge.default_bridge",
    "com.docker.network.driver.mtu",
];

/// What is wrong with a network request, or with the records.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No network by that name or id.
    #[error("network {0} not found")]
    NotFound(String),
    /// An id prefix that several networks share.
    #[error("network {0} is ambiguous ({1} matches)")]
    Ambiguous(String, usize),
    /// The name is taken.
    #[error("network with name {0} already exists")]
    NameInUse(String),
    /// A name that is not [a-zA-Z0-9][a-zA-Z0-9_.-]*, or a reserved one.
    #[error("invalid network name {name:?}: {why}")]
    BadName {
        /// The name.
        name: String,
        /// Why.
        why: &'static str,
    },
    /// Only the bridge driver exists here.
    #[error("plugin \"{0}\" not found: berth networks use the bridge driver")]
    UnknownDriver(String),
    /// An option that is unknown or has a bad value.
    #[error("invalid network option {key}={value:?}: {why}")]
    BadOption {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Why.
        why: &'static str,
    },
    /// A subnet that overlaps another network's or a host route.
    #[error("invalid pool request: pool {subnet} overlaps with {with}")]
    Overlap {
        /// The subnet asked for.
        subnet: IpNet,
        /// What it overlaps ("network NAME (SUBNET)" or "the host route SUBNET").
        with: String,
    },
    /// The gateway is not an address of the subnet's hosts.
    #[error("invalid gateway {gateway}: not a host address of subnet {subnet}")]
    GatewayOutside {
        /// The gateway.
        gateway: IpAddr,
        /// The subnet.
        subnet: IpNet,
    },
    /// The ip-range is not inside the subnet.
    #[error("invalid ip-range {range}: not inside subnet {subnet}")]
    RangeOutside {
        /// The range.
        range: IpNet,
        /// The subnet.
        subnet: IpNet,
    },
    /// A subnet too small for a gateway and one container, or with the wrong family.
    #[error("invalid subnet {subnet}: {why}")]
    BadSubnet {
        /// The subnet.
        subnet: String,
        /// Why.
        why: &'static str,
    },
    /// A subnet spec without a subnet but with a gateway or range.
    #[error("a gateway or ip-range needs a subnet")]
    MissingSubnet,
    /// No free pool left for an automatic subnet.
    #[error("no free subnet left in the default pools (172.17.0.0/16 … 192.168.240.0/20)")]
    PoolsExhausted,
    /// A bridge interface name that another network uses, or that is not a valid interface name.
    #[error("invalid bridge name {name:?}: {why}")]
    BadBridge {
        /// The name.
        name: String,
        /// Why.
        why: &'static str,
    },
    /// Reading or writing the records.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A record that is not valid JSON.
    #[error("reading network record {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ConfigError + use<> {
    let path = path.to_owned();
    move |source| ConfigError::Io {
        action,
        path,
        source,
    }
}

/// One subnet of a network, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    /// The subnet.
    pub subnet: IpNet,
    /// The bridge's address in it.
    pub gateway: IpAddr,
    /// Where container addresses come from (the whole subnet when absent).
    pub ip_range: Option<IpNet>,
}

/// One subnet as asked for: each part may be left to choose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubnetSpec {
    /// `--subnet`.
    pub subnet: Option<IpNet>,
    /// `--gateway`.
    pub gateway: Option<IpAddr>,
    /// `--ip-range`.
    pub ip_range: Option<IpNet>,
}

/// `network create` as asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSpec {
    /// The name.
    pub name: String,
    /// `--driver` (only `bridge`).
    pub driver: Option<String>,
    /// `--subnet`/`--gateway`/`--ip-range`, at most one IPv4 and one IPv6.
    pub subnets: Vec<SubnetSpec>,
    /// `--internal`.
    pub internal: bool,
    /// `--ipv6`.
    pub ipv6: bool,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `-o`.
    pub options: BTreeMap<String, String>,
}

/// A network as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// 64 hex digits.
    pub id: String,
    /// Unique among this root's networks.
    pub name: String,
    /// `bridge`.
    pub driver: String,
    /// The bridge interface.
    pub bridge: String,
    /// IPv4 first, then IPv6.
    pub subnets: Vec<Subnet>,
    /// No traffic beyond the bridge.
    pub internal: bool,
    /// Has an IPv6 subnet.
    pub ipv6: bool,
    /// Traffic between containers of this network allowed.
    pub icc: bool,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `-o`.
    pub options: BTreeMap<String, String>,
    /// RFC 3339.
    pub created: String,
}

impl Network {
    /// Whether this is the default network, `bridge`.
    pub fn is_default(&self) -> bool {
        self.name == DEFAULT_NAME
    }
}

/// The default network's name.
pub const DEFAULT_NAME: &str = "bridge";

/// Docker's default address pools: 172.17–31.0.0/16, then 192.168.0.0/20 … 192.168.240.0/20.
fn default_pools() -> impl Iterator<Item = IpNet> {
    let b16 =
        (17u8..=31).map(|b| IpNet::V4(Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).unwrap()));
    let c20 =
        (0u8..16).map(|i| IpNet::V4(Ipv4Net::new(Ipv4Addr::new(192, 168, i * 16, 0), 20).unwrap()));
    b16.chain(c20)
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Whether `name` is a valid Linux interface name (1–15 bytes, no '/', no whitespace, not . or ..).
fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
}

/// Whether `addr` is a host address of `net` (not the network or, for IPv4, broadcast address).
pub fn is_host_addr(net: &IpNet, addr: IpAddr) -> bool {
    if !net.contains(&addr) || addr == net.network() {
        return false;
    }
    match net {
        IpNet::V4(n) => n.prefix_len() >= 31 || addr != IpAddr::V4(n.broadcast()),
        IpNet::V6(_) => true,
    }
}

/// The first host address of `net` (the default gateway): `.1` of an IPv4 subnet, `::1` of an
/// IPv6 one (ipnet's IPv6 `hosts()` starts at the subnet-router anycast address, which Docker never
/// hands out).
fn first_host(net: &IpNet) -> Option<IpAddr> {
    net.hosts().find(|a| is_host_addr(net, *a))
}

/// The records of one state root.
#[derive(Debug, Clone)]
pub struct Networks {
    dir: PathBuf,
    default_bridge: String,
}

impl Networks {
    /// The records under `state_root/networks` (created if missing). The default network's bridge
    /// is `berth0` for the host's own root (`/var/lib/berth`), and a name derived from the root
    /// otherwise, so that two roots on one host never share a bridge.
    pub fn open(state_root: &Path) -> Result<Networks, ConfigError> {
        let dir = state_root.join("networks");
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let default_bridge = if state_root == Path::new("/var/lib/berth") {
            "berth0".to_owned()
        } else {
            let abs = std::fs::canonicalize(state_root).unwrap_or_else(|_| state_root.to_owned());
            format!(
                "bth{}",
                &hex_digest(abs.as_os_str().as_encoded_bytes())[..8]
            )
        };
        Ok(Networks {
            dir,
            default_bridge,
        })
    }

    fn lock(&self) -> Result<File, ConfigError> {
        berth_fs::lock_exclusive(&self.dir.join(".lock")).map_err(|e| ConfigError::Io {
            action: e.op,
            path: e.path,
            source: e.source,
        })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Every network, sorted by name.
    pub fn list(&self) -> Result<Vec<Network>, ConfigError> {
        let mut out = Vec::new();
        let rd = std::fs::read_dir(&self.dir).map_err(io("reading", &self.dir))?;
        for e in rd.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let path = e.path();
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                // Removed since the listing.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("reading", &path)(e)),
            };
            out.push(
                serde_json::from_slice(&bytes)
                    .map_err(|source| ConfigError::Parse { path, source })?,
            );
        }
        out.sort_by(|a: &Network, b: &Network| a.name.cmp(&b.name));
        Ok(out)
    }

    /// A network by exact name, full id, or unique id prefix.
    pub fn get(&self, name_or_id: &str) -> Result<Network, ConfigError> {
        let all = self.list()?;
        if let Some(n) = all
            .iter()
            .find(|n| n.name == name_or_id || n.id == name_or_id)
        {
            return Ok(n.clone());
        }
        let matching: Vec<&Network> = if name_or_id.is_empty() {
            Vec::new()
        } else {
            all.iter()
                .filter(|n| n.id.starts_with(name_or_id))
                .collect()
        };
        match matching.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(ConfigError::NotFound(name_or_id.to_owned())),
            many => Err(ConfigError::Ambiguous(name_or_id.to_owned(), many.len())),
        }
    }

    /// Removes a network's record (absent: not an error).
    pub fn remove(&self, id: &str) -> Result<(), ConfigError> {
        let _l = self.lock()?;
        let path = self.path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                let _ = berth_fs::sync_dir(&self.dir);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("removing", &path)(e)),
        }
    }

    /// Creates a user-defined network (see [`ConfigError`] for what is refused).
    pub fn create(&self, spec: NetworkSpec, host_routes: &[IpNet]) -> Result<Network, ConfigError> {
        check_name(&spec.name)?;
        if matches!(spec.name.as_str(), DEFAULT_NAME | "host" | "none") {
            return Err(ConfigError::BadName {
                name: spec.name.clone(),
                why: "the name of a predefined network",
            });
        }
        let _l = self.lock()?;
        self.create_locked(spec, host_routes)
    }

    /// The default network `bridge`, created on first use.
    pub fn ensure_default(&self, host_routes: &[IpNet]) -> Result<Network, ConfigError> {
        if let Ok(n) = self.get(DEFAULT_NAME) {
            return Ok(n);
        }
        let _l = self.lock()?;
        if let Ok(n) = self.get(DEFAULT_NAME) {
            return Ok(n);
        }
        let mut options = BTreeMap::new();
        options.insert(OPT_BRIDGE_NAME.to_owned(), self.default_bridge.clone());
        options.insert(
            "com.docker.network.bridge.default_bridge".to_owned(),
            "true".to_owned(),
        );
        self.create_locked(
            NetworkSpec {
                name: DEFAULT_NAME.to_owned(),
                options,
                ..Default::default()
            },
            host_routes,
        )
    }

    fn create_locked(
        &self,
        spec: NetworkSpec,
        host_routes: &[IpNet],
    ) -> Result<Network, ConfigError> {
        let existing = self.list()?;
        if existing.iter().any(|n| n.name == spec.name) {
            return Err(ConfigError::NameInUse(spec.name));
        }
        match spec.driver.as_deref() {
            None | Some("bridge") | Some("") => {}
            Some(other) => return Err(ConfigError::UnknownDriver(other.to_owned())),
        }
        let mut icc = true;
        for (k, v) in &spec.options {
            if !OPT_KNOWN.contains(&k.as_str()) {
                return Err(ConfigError::BadOption {
                    key: k.clone(),
                    value: v.clone(),
                    why: "unknown option",
                });
            }
            if k == OPT_ICC {
                icc = match v.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(ConfigError::BadOption {
                            key: k.clone(),
                            value: v.clone(),
                            why: "expected true or false",
                        });
                    }
                }
            }
        }
        let id = new_id();
        let bridge = match spec.options.get(OPT_BRIDGE_NAME) {
            Some(b) => {
                if !valid_ifname(b) {
                    return Err(ConfigError::BadBridge {
                        name: b.clone(),
                        why: "interface names are 1 to 15 characters without '/', ':' or spaces",
                    });
                }
                b.clone()
            }
            None => format!("br-{}", &id[..12]),
        };
        if existing.iter().any(|n| n.bridge == bridge) {
            return Err(ConfigError::BadBridge {
                name: bridge,
                why: "another network uses it",
            });
        }
        // What the subnets must not overlap: other networks, and the host's routes (but a
        // route of this network's own bridge, left from an earlier life, does not count).
        let taken: Vec<(IpNet, String)> = existing
            .iter()
            .flat_map(|n| {
                n.subnets
                    .iter()
                    .map(move |s| (s.subnet, format!("network {} ({})", n.name, s.subnet)))
            })
            .chain(
                host_routes
                    .iter()
                    .filter(|r| r.prefix_len() > 0)
                    .map(|r| (*r, format!("the host route {r}"))),
            )
            .collect();
        let mut v4: Option<Subnet> = None;
        let mut v6: Option<Subnet> = None;
        for s in &spec.subnets {
            let Some(subnet) = s.subnet else {
                if s.gateway.is_some() || s.ip_range.is_some() {
                    return Err(ConfigError::MissingSubnet);
                }
                continue;
            };
            let subnet = subnet.trunc();
            let rec = checked_subnet(subnet, s.gateway, s.ip_range)?;
            if let Some((_, with)) = taken.iter().find(|(t, _)| overlaps(t, &subnet)) {
                return Err(ConfigError::Overlap {
                    subnet,
                    with: with.clone(),
                });
            }
            let slot = if subnet.addr().is_ipv4() {
                &mut v4
            } else {
                &mut v6
            };
            if slot.is_some() {
                return Err(ConfigError::BadSubnet {
                    subnet: subnet.to_string(),
                    why: "one IPv4 and one IPv6 subnet at most",
                });
            }
            *slot = Some(rec);
        }
        if let (Some(v6), false) = (&v6, spec.ipv6) {
            return Err(ConfigError::BadSubnet {
                subnet: v6.subnet.to_string(),
                why: "an IPv6 subnet needs --ipv6",
            });
        }
        if v4.is_none() {
            let pool = default_pools()
                .find(|p| !taken.iter().any(|(t, _)| overlaps(t, p)))
                .ok_or(ConfigError::PoolsExhausted)?;
            v4 = Some(checked_subnet(pool, None, None)?);
        }
        if spec.ipv6 && v6.is_none() {
            // A unique local /64 from the id: fdXX:XXXX:XXXX:XXXX::/64.
            let b = hex_bytes(&id);
            let seg = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
            let addr = Ipv6Addr::new(0xfd00 | u16::from(b[0]), seg(1), seg(3), seg(5), 0, 0, 0, 0);
            let net = IpNet::V6(Ipv6Net::new(addr, 64).unwrap());
            v6 = Some(checked_subnet(net, None, None)?);
        }
        let subnets: Vec<Subnet> = v4.into_iter().chain(v6).collect();
        let net = Network {
            id,
            name: spec.name,
            driver: "bridge".to_owned(),
            bridge,
            subnets,
            internal: spec.internal,
            ipv6: spec.ipv6,
            icc,
            labels: spec.labels,
            options: spec.options,
            created: berth_oci::time::now_rfc3339(),
        };
        let bytes = serde_json::to_vec_pretty(&net).expect("network serializes");
        berth_fs::write_atomic(&self.path(&net.id), &bytes, Durability::Durable).map_err(|e| {
            ConfigError::Io {
                action: "writing",
                path: self.path(&net.id),
                source: std::io::Error::other(e.to_string()),
            }
        })?;
        Ok(net)
    }
}

fn check_name(name: &str) -> Result<(), ConfigError> {
    let bad = |why| ConfigError::BadName {
        name: name.to_owned(),
        why,
    };
    let mut chars = name.chars();
    match chars.next() {
        None => return Err(bad("a name is needed")),
        Some(c) if !c.is_ascii_alphanumeric() => {
            return Err(bad("names are [a-zA-Z0-9][a-zA-Z0-9_.-]*"));
        }
        _ => {}
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err(bad("names are [a-zA-Z0-9][a-zA-Z0-9_.-]*"));
    }
    if name.len() > 128 {
        return Err(bad("names are at most 128 characters"));
    }
    Ok(())
}

/// A subnet with its gateway (given or the first host) and range checked.
fn checked_subnet(
    subnet: IpNet,
    gateway: Option<IpAddr>,
    ip_range: Option<IpNet>,
) -> Result<Subnet, ConfigError> {
    let max = if subnet.addr().is_ipv4() { 30 } else { 126 };
    if subnet.prefix_len() > max {
        return Err(ConfigError::BadSubnet {
            subnet: subnet.to_string(),
            why: "too small for a gateway and a container",
        });
    }
    let gateway = match gateway {
        Some(g) => {
            if !is_host_addr(&subnet, g) {
                return Err(ConfigError::GatewayOutside { gateway: g, subnet });
            }
            g
        }
        None => first_host(&subnet).expect("a subnet of /30 or larger has hosts"),
    };
    if let Some(r) = ip_range {
        let r = r.trunc();
        if !subnet.contains(&r) {
            return Err(ConfigError::RangeOutside { range: r, subnet });
        }
        return Ok(Subnet {
            subnet,
            gateway,
            ip_range: Some(r),
        });
    }
    Ok(Subnet {
        subnet,
        gateway,
        ip_range: None,
    })
}

/// 64 random hex digits.
fn new_id() -> String {
    let mut b = [0u8; 32];
    let mut filled = 0;
    while filled < b.len() {
        match rustix::rand::getrandom(&mut b[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => {
                // No getrandom: the clock and pid, hashed, are unique enough for an id.
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                return hex_digest(format!("{t}-{}", std::process::id()).as_bytes()).repeat(2)
                    [..64]
                    .to_owned();
            }
        }
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// FNV-1a 64 of `data` in hex (16 digits): a stable short name, not a security digest.
fn hex_digest(data: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    format!("{h:016x}")
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(
        name: &str,
        subnet: Option<&str>,
        gw: Option<&str>,
        range: Option<&str>,
    ) -> NetworkSpec {
        NetworkSpec {
            name: name.into(),
            subnets: vec![SubnetSpec {
                subnet: subnet.map(|s| s.parse().unwrap()),
                gateway: gw.map(|g| g.parse().unwrap()),
                ip_range: range.map(|r| r.parse().unwrap()),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn networks_are_created_listed_found_and_removed() {
        let t = tempfile::tempdir().unwrap();
        let n = Networks::open(t.path()).unwrap();
        let a = n
            .create(spec("alpha", Some("10.1.0.0/24"), None, None), &[])
            .unwrap();
        assert_eq!(a.subnets[0].gateway.to_string(), "10.1.0.1");
        assert_eq!(a.bridge, format!("br-{}", &a.id[..12]));
        assert!(a.icc && !a.internal);
        let d = n.ensure_default(&[]).unwrap();
        assert_eq!(d.subnets[0].subnet.to_string(), "172.17.0.0/16");
        assert!(
            d.bridge.starts_with("bth") && d.bridge.len() == 11,
            "{}",
            d.bridge
        );
        assert_eq!(n.ensure_default(&[]).unwrap().id, d.id, "made once");
        let names: Vec<String> = n.list().unwrap().into_iter().map(|x| x.name).collect();
        assert_eq!(names, ["alpha", "bridge"]);
        assert_eq!(n.get("alpha").unwrap().id, a.id);
        assert_eq!(n.get(&a.id[..6]).unwrap().id, a.id);
        assert!(matches!(n.get("zzz"), Err(ConfigError::NotFound(_))));
        n.remove(&a.id).unwrap();
        assert!(matches!(n.get("alpha"), Err(ConfigError::NotFound(_))));
        n.remove(&a.id).unwrap();
    }

    #[test]
    fn automatic_subnets_avoid_host_routes_and_other_networks() {
        let t = tempfile::tempdir().unwrap();
        let n = Networks::open(t.path()).unwrap();
        let routes: Vec<IpNet> = vec![
            "172.17.0.0/16".parse().unwrap(),
            "0.0.0.0/0".parse().unwrap(),
        ];
        let a = n.create(spec("a", None, None, None), &routes).unwrap();
        assert_eq!(a.subnets[0].subnet.to_string(), "172.18.0.0/16");
        let b = n.create(spec("b", None, None, None), &routes).unwrap();
        assert_eq!(b.subnets[0].subnet.to_string(), "172.19.0.0/16");
        let v6 = n
            .create(
                NetworkSpec {
                    name: "six".into(),
                    ipv6: true,
                    ..Default::default()
                },
                &routes,
            )
            .unwrap();
        assert_eq!(v6.subnets.len(), 2);
        assert!(v6.subnets[1].subnet.addr().is_ipv6());
        assert_eq!(v6.subnets[1].subnet.prefix_len(), 64);
        // Its gateway is ::1 of the /64, as Docker's (never the subnet-router anycast ::0).
        let IpAddr::V6(gw) = v6.subnets[1].gateway else {
            panic!("{:?}", v6.subnets[1].gateway)
        };
        assert_eq!(gw.segments()[7], 1, "{gw}");
        assert_eq!(
            IpNet::new(gw.into(), 64).unwrap().trunc(),
            v6.subnets[1].subnet
        );
    }

    #[test]
    fn bad_requests_name_what_is_wrong_and_write_nothing() {
        let t = tempfile::tempdir().unwrap();
        let n = Networks::open(t.path()).unwrap();
        n.create(spec("first", Some("10.2.0.0/16"), None, None), &[])
            .unwrap();
        let host: Vec<IpNet> = vec!["192.168.50.0/24".parse().unwrap()];
        let cases: Vec<(NetworkSpec, &str)> = vec![
            (
                spec("over", Some("10.2.3.0/24"), None, None),
                "overlaps with network first (10.2.0.0/16)",
            ),
            (
                spec("hostly", Some("192.168.50.128/25"), None, None),
                "overlaps with the host route 192.168.50.0/24",
            ),
            (
                spec("gw", Some("10.3.0.0/24"), Some("10.9.9.9"), None),
                "invalid gateway 10.9.9.9",
            ),
            (
                spec("gwb", Some("10.3.0.0/24"), Some("10.3.0.255"), None),
                "invalid gateway 10.3.0.255",
            ),
            (
                spec("rng", Some("10.3.0.0/24"), None, Some("10.4.0.0/25")),
                "invalid ip-range 10.4.0.0/25",
            ),
            (
                spec("first", Some("10.5.0.0/24"), None, None),
                "network with name first already exists",
            ),
            (spec("-bad", None, None, None), "invalid network name"),
            (spec("host", None, None, None), "predefined"),
            (spec("tiny", Some("10.6.0.0/31"), None, None), "too small"),
            (
                NetworkSpec {
                    name: "drv".into(),
                    driver: Some("overlay".into()),
                    ..Default::default()
                },
                "plugin \"overlay\" not found",
            ),
            (
                NetworkSpec {
                    name: "opt".into(),
                    options: [(OPT_ICC.to_string(), "maybe".to_string())].into(),
                    ..Default::default()
                },
                "expected true or false",
            ),
            (
                NetworkSpec {
                    name: "opt2".into(),
                    options: [("no.such".to_string(), "x".to_string())].into(),
                    ..Default::default()
                },
                "unknown option",
            ),
        ];
        for (s, want) in cases {
            let name = s.name.clone();
            let e = n.create(s, &host).unwrap_err().to_string();
            assert!(e.contains(want), "{name}: {e}");
        }
        assert_eq!(n.list().unwrap().len(), 1);
        let icc = n
            .create(
                NetworkSpec {
                    name: "quiet".into(),
                    options: [(OPT_ICC.to_string(), "false".to_string())].into(),
                    ..Default::default()
                },
                &host,
            )
            .unwrap();
        assert!(!icc.icc);
    }

    #[test]
    fn concurrent_creates_keep_names_unique_and_subnets_apart() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().to_owned();
        let made: Vec<Result<Network, String>> = std::thread::scope(|s| {
            (0..8)
                .map(|i| {
                    let root = root.clone();
                    s.spawn(move || {
                        let n = Networks::open(&root).unwrap();
                        let first = if i % 2 == 0 { "same" } else { "x" };
                        n.create(spec(first, None, None, None), &[])
                            .or_else(|_| n.create(spec(&format!("n{i}"), None, None, None), &[]))
                            .map_err(|e| e.to_string())
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect()
        });
        let ok: Vec<Network> = made.into_iter().map(|r| r.unwrap()).collect();
        let mut subnets: Vec<String> = ok.iter().map(|n| n.subnets[0].subnet.to_string()).collect();
        subnets.sort();
        subnets.dedup();
        assert_eq!(subnets.len(), 8);
        let n = Networks::open(&root).unwrap();
        assert_eq!(
            n.list()
                .unwrap()
                .iter()
                .filter(|x| x.name == "same")
                .count(),
            1
        );
    }
}
