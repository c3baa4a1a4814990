//! Address leases per network under the run root (`RUN/net/ipam/<network-id>/leases.json`, one
//! file a network, replaced by rename under the network's `flock`; no fsync: leases never need to
//! outlive a reboot, and the processes holding them do not either). A lease names its owner; one
//! whose owner is dead is taken back by the next allocation, or by [`Ipam::reclaim`].

use std::collections::HashSet;
use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use berth_fs::Durability;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::config::{Network, Subnet, is_host_addr};
use crate::owner::Owner;

/// Why an address could not be had.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// The address asked for is held by a running container.
    #[error("address {addr} is already in use on network {network}")]
    Taken {
        /// The address.
        addr: IpAddr,
        /// The network's name.
        network: String,
    },
    /// The address asked for is not one the network gives out.
    #[error("address {addr} is not in the range {range} of network {network}")]
    OutOfRange {
        /// The address.
        addr: IpAddr,
        /// Where addresses come from.
        range: IpNet,
        /// The network's name.
        network: String,
    },
    /// The address asked for is the network's gateway, network or broadcast address.
    #[error("address {addr} is reserved on network {network} (gateway, network or broadcast)")]
    Reserved {
        /// The address.
        addr: IpAddr,
        /// The network's name.
        network: String,
    },
    /// Every address of the range is held.
    #[error("no available addresses on network {network} ({range})")]
    Exhausted {
        /// The network's name.
        network: String,
        /// The range.
        range: IpNet,
    },
    /// The owner already has an address on this network.
    #[error("container {owner} is already connected to network {network}")]
    AlreadyConnected {
        /// The owner's id.
        owner: String,
        /// The network's name.
        network: String,
    },
    /// Reading or writing the leases.
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

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> IpamError + use<> {
    let path = path.to_owned();
    move |source| IpamError::Io {
        action,
        path,
        source,
    }
}

/// One address held on one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The network's id.
    pub network: String,
    /// The address.
    pub addr: IpAddr,
    /// The subnet's prefix length.
    pub prefix: u8,
    /// The subnet's gateway.
    pub gateway: IpAddr,
    /// Who holds it.
    pub owner: Owner,
}

impl Lease {
    /// The address with its prefix (for the interface).
    pub fn cidr(&self) -> IpNet {
        IpNet::new(self.addr, self.prefix).expect("a lease's prefix fits its family")
    }
}

/// The leases of every network of one run root.
#[derive(Debug, Clone)]
pub struct Ipam {
    dir: PathBuf,
}

/// A network's leases, read under its lock and written back before it is released.
struct Locked {
    _lock: File,
    path: PathBuf,
    leases: Vec<Lease>,
}

impl Locked {
    fn save(&self) -> Result<(), IpamError> {
        let bytes = serde_json::to_vec(&self.leases).expect("leases serialize");
        berth_fs::write_atomic(&self.path, &bytes, Durability::Volatile)
            .map_err(|e| io("writing", &self.path)(std::io::Error::other(e.to_string())))
    }
}

impl Ipam {
    /// The leases under `run_root/net/ipam`.
    pub fn open(run_root: &Path) -> Result<Ipam, IpamError> {
        let dir = run_root.join("net").join("ipam");
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        Ok(Ipam { dir })
    }

    fn lock(&self, network_id: &str) -> Result<Locked, IpamError> {
        let dir = self.dir.join(network_id);
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let lock = berth_fs::lock_exclusive(&dir.join(".lock")).map_err(|e| IpamError::Io {
            action: e.op,
            path: e.path,
            source: e.source,
        })?;
        let path = dir.join("leases.json");
        let leases = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io("reading", &path)(e)),
        };
        Ok(Locked {
            _lock: lock,
            path,
            leases,
        })
    }

    fn network_ids(&self) -> Vec<String> {
        std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One lease per subnet of `net` for `owner` (see [`IpamError`] for what is refused). `want`
    /// holds static addresses, at most one per family.
    pub fn allocate(
        &self,
        net: &Network,
        owner: &Owner,
        want: &[IpAddr],
    ) -> Result<Vec<Lease>, IpamError> {
        let mut l = self.lock(&net.id)?;
        // A dead holder's address is free again.
        l.leases.retain(|x| x.owner.is_alive());
        if l.leases.iter().any(|x| x.owner.id == owner.id) {
            return Err(IpamError::AlreadyConnected {
                owner: owner.id.clone(),
                network: net.name.clone(),
            });
        }
        let mut out = Vec::new();
        for s in &net.subnets {
            let wanted = want
                .iter()
                .find(|a| a.is_ipv4() == s.subnet.addr().is_ipv4());
            let taken: HashSet<IpAddr> = l.leases.iter().map(|x| x.addr).collect();
            let addr = match wanted {
                Some(a) => check_static(net, s, *a, &taken)?,
                None => lowest_free(net, s, &taken)?,
            };
            let lease = Lease {
                network: net.id.clone(),
                addr,
                prefix: s.subnet.prefix_len(),
                gateway: s.gateway,
                owner: owner.clone(),
            };
            l.leases.push(lease.clone());
            out.push(lease);
        }
        l.save()?;
        Ok(out)
    }

    /// Gives back `owner_id`'s leases on one network; returns them.
    pub fn release(&self, network_id: &str, owner_id: &str) -> Result<Vec<Lease>, IpamError> {
        if !self.dir.join(network_id).is_dir() {
            return Ok(Vec::new());
        }
        let mut l = self.lock(network_id)?;
        let (gone, kept): (Vec<Lease>, Vec<Lease>) =
            l.leases.drain(..).partition(|x| x.owner.id == owner_id);
        l.leases = kept;
        if !gone.is_empty() {
            l.save()?;
        }
        Ok(gone)
    }

    /// Gives back `owner_id`'s leases on every network.
    pub fn release_all(&self, owner_id: &str) -> Result<Vec<Lease>, IpamError> {
        let mut out = Vec::new();
        for id in self.network_ids() {
            out.extend(self.release(&id, owner_id)?);
        }
        Ok(out)
    }

    /// Hands `owner_id`'s leases to another holding process.
    pub fn adopt(&self, owner_id: &str, holder: &Owner) -> Result<(), IpamError> {
        for id in self.network_ids() {
            let mut l = self.lock(&id)?;
            let mut changed = false;
            for x in l.leases.iter_mut().filter(|x| x.owner.id == owner_id) {
                x.owner = holder.clone();
                changed = true;
            }
            if changed {
                l.save()?;
            }
        }
        Ok(())
    }

    /// The live leases of one network.
    pub fn leases(&self, network_id: &str) -> Result<Vec<Lease>, IpamError> {
        if !self.dir.join(network_id).is_dir() {
            return Ok(Vec::new());
        }
        let l = self.lock(network_id)?;
        Ok(l.leases
            .into_iter()
            .filter(|x| x.owner.is_alive())
            .collect())
    }

    /// The live leases of one owner.
    pub fn of_owner(&self, owner_id: &str) -> Result<Vec<Lease>, IpamError> {
        let mut out = Vec::new();
        for id in self.network_ids() {
            out.extend(
                self.leases(&id)?
                    .into_iter()
                    .filter(|x| x.owner.id == owner_id),
            );
        }
        Ok(out)
    }

    /// Removes every lease whose owner is dead; returns them.
    pub fn reclaim(&self) -> Result<Vec<Lease>, IpamError> {
        let mut out = Vec::new();
        for id in self.network_ids() {
            let mut l = self.lock(&id)?;
            let (dead, live): (Vec<Lease>, Vec<Lease>) =
                l.leases.drain(..).partition(|x| !x.owner.is_alive());
            l.leases = live;
            if !dead.is_empty() {
                l.save()?;
                out.extend(dead);
            }
        }
        Ok(out)
    }

    /// Forgets a removed network's leases.
    pub fn remove_network(&self, network_id: &str) -> Result<(), IpamError> {
        let dir = self.dir.join(network_id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("removing", &dir)(e)),
        }
    }
}

/// Where a subnet's container addresses come from.
fn range_of(s: &Subnet) -> IpNet {
    s.ip_range.unwrap_or(s.subnet)
}

fn check_static(
    net: &Network,
    s: &Subnet,
    a: IpAddr,
    taken: &HashSet<IpAddr>,
) -> Result<IpAddr, IpamError> {
    let range = range_of(s);
    if !range.contains(&a) {
        return Err(IpamError::OutOfRange {
            addr: a,
            range,
            network: net.name.clone(),
        });
    }
    if a == s.gateway || !is_host_addr(&s.subnet, a) {
        return Err(IpamError::Reserved {
            addr: a,
            network: net.name.clone(),
        });
    }
    if taken.contains(&a) {
        return Err(IpamError::Taken {
            addr: a,
            network: net.name.clone(),
        });
    }
    Ok(a)
}

fn lowest_free(net: &Network, s: &Subnet, taken: &HashSet<IpAddr>) -> Result<IpAddr, IpamError> {
    let range = range_of(s);
    range
        .hosts()
        .find(|a| *a != s.gateway && is_host_addr(&s.subnet, *a) && !taken.contains(a))
        .ok_or_else(|| IpamError::Exhausted {
            network: net.name.clone(),
            range,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NetworkSpec, Networks, SubnetSpec};

    fn net(root: &Path, name: &str, subnet: &str, range: Option<&str>) -> Network {
        Networks::open(root)
            .unwrap()
            .create(
                NetworkSpec {
                    name: name.into(),
                    subnets: vec![SubnetSpec {
                        subnet: Some(subnet.parse().unwrap()),
                        gateway: None,
                        ip_range: range.map(|r| r.parse().unwrap()),
                    }],
                    ..Default::default()
                },
                &[],
            )
            .unwrap()
    }

    fn me(id: &str) -> Owner {
        Owner::current(id)
    }

    #[test]
    fn lowest_free_address_after_the_gateway_and_release() {
        let t = tempfile::tempdir().unwrap();
        let n = net(t.path(), "a", "10.0.0.0/29", None);
        let ipam = Ipam::open(&t.path().join("run")).unwrap();
        let a = ipam.allocate(&n, &me("c1"), &[]).unwrap();
        assert_eq!(a[0].addr.to_string(), "10.0.0.2");
        assert_eq!(a[0].cidr().to_string(), "10.0.0.2/29");
        assert_eq!(a[0].gateway.to_string(), "10.0.0.1");
        let b = ipam.allocate(&n, &me("c2"), &[]).unwrap();
        assert_eq!(b[0].addr.to_string(), "10.0.0.3");
        assert!(matches!(
            ipam.allocate(&n, &me("c1"), &[]),
            Err(IpamError::AlreadyConnected { .. })
        ));
        for i in 3..=6 {
            ipam.allocate(&n, &me(&format!("c{i}")), &[])
                .unwrap_or_else(|e| {
                    assert!(i == 6, "{e}");
                    assert!(e.to_string().contains("no available addresses"), "{e}");
                    vec![]
                });
        }
        assert_eq!(ipam.release(&n.id, "c1").unwrap().len(), 1);
        assert_eq!(
            ipam.allocate(&n, &me("c9"), &[]).unwrap()[0]
                .addr
                .to_string(),
            "10.0.0.2"
        );
        assert_eq!(ipam.leases(&n.id).unwrap().len(), 5);
        assert_eq!(ipam.release_all("c2").unwrap().len(), 1);
        assert!(ipam.of_owner("c2").unwrap().is_empty());
    }

    #[test]
    fn static_addresses_are_checked() {
        let t = tempfile::tempdir().unwrap();
        let n = net(t.path(), "a", "10.0.1.0/24", Some("10.0.1.128/25"));
        let ipam = Ipam::open(&t.path().join("run")).unwrap();
        let ip = |s: &str| vec![s.parse::<IpAddr>().unwrap()];
        assert_eq!(
            ipam.allocate(&n, &me("x"), &[]).unwrap()[0]
                .addr
                .to_string(),
            "10.0.1.129"
        );
        let e = ipam.allocate(&n, &me("y"), &ip("10.0.1.5")).unwrap_err();
        assert!(matches!(e, IpamError::OutOfRange { .. }), "{e}");
        assert!(e.to_string().contains("10.0.1.5"));
        let e = ipam.allocate(&n, &me("y"), &ip("10.0.1.255")).unwrap_err();
        assert!(matches!(e, IpamError::Reserved { .. }), "{e}");
        let e = ipam.allocate(&n, &me("y"), &ip("10.0.1.129")).unwrap_err();
        assert!(matches!(e, IpamError::Taken { .. }), "{e}");
        assert_eq!(
            ipam.allocate(&n, &me("y"), &ip("10.0.1.200")).unwrap()[0]
                .addr
                .to_string(),
            "10.0.1.200"
        );
    }

    #[test]
    fn a_dead_owners_lease_is_reclaimed() {
        let t = tempfile::tempdir().unwrap();
        let n = net(t.path(), "a", "10.0.2.0/30", None);
        let ipam = Ipam::open(&t.path().join("run")).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        let dead = Owner::of_pid("gone", child.id() as i32).unwrap();
        assert_eq!(
            ipam.allocate(&n, &dead, &[]).unwrap()[0].addr.to_string(),
            "10.0.2.2"
        );
        // A /30 has one address for containers: taken while the holder lives.
        assert!(ipam.allocate(&n, &me("next"), &[]).is_err());
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            ipam.allocate(&n, &me("next"), &[]).unwrap()[0]
                .addr
                .to_string(),
            "10.0.2.2"
        );
        ipam.release(&n.id, "next").unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = Owner::of_pid("gone2", child.id() as i32).unwrap();
        child.wait().unwrap();
        ipam.allocate(&n, &me("live"), &[]).unwrap();
        ipam.release(&n.id, "live").unwrap();
        // adopt hands a lease to another process; reclaim returns the dead one's.
        ipam.allocate(&n, &me("moving"), &[]).unwrap();
        ipam.adopt("moving", &dead).unwrap();
        let back = ipam.reclaim().unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].owner.id, "gone2");
        ipam.remove_network(&n.id).unwrap();
        assert!(ipam.leases(&n.id).unwrap().is_empty());
    }

    #[test]
    fn fifty_concurrent_allocations_never_share_an_address() {
        let t = tempfile::tempdir().unwrap();
        let n = net(t.path(), "a", "10.0.3.0/24", None);
        let run = t.path().join("run");
        let addrs: Vec<IpAddr> = std::thread::scope(|s| {
            (0..50)
                .map(|i| {
                    let (n, run) = (&n, &run);
                    s.spawn(move || {
                        Ipam::open(run)
                            .unwrap()
                            .allocate(n, &me(&format!("t{i}")), &[])
                            .unwrap()[0]
                            .addr
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect()
        });
        let distinct: HashSet<IpAddr> = addrs.iter().copied().collect();
        assert_eq!(distinct.len(), 50);
    }
}
