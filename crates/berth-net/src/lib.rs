//! berth's networks, Docker's model: bridge networks with their own IPAM, a veth per container
//! endpoint created with its peer already in the container's network namespace, berth's own nftables
//! table (masquerade, isolation, published ports as map elements), `/etc/hosts` and
//! `/etc/resolv.conf` for containers, and an embedded DNS server for names on user-defined networks.
//!
//! The crate knows a container only as an owner id, a name, a pid that is alive while it runs, and a
//! network-namespace handle; it knows nothing of images or the engine's records.
//!
//! Layout: records of networks under the state root (`ROOT/networks/`), everything that lives only
//! while containers run (address leases, published ports, DNS records, the DNS server's pid) under
//! the run root (`RUN/net/`), which never needs to outlive a reboot.

pub mod config;
pub mod dns;
pub mod hosts;
pub mod ipam;
pub mod link;
mod net;
pub mod nft;
pub mod owner;
pub mod ports;

pub use net::{Endpoint, EndpointSpec, Member, Net, NetError, Published};
