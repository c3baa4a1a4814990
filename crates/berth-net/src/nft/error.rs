//! What can go wrong talking to nf_tables.

use std::io;
use std::path::PathBuf;

/// An error of berth's nftables table.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The netfilter netlink socket could not be opened or used.
    #[error("netfilter netlink socket: {what}: {source}")]
    Socket {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The kernel refused one message of a batch (the whole batch was not applied).
    #[error("nftables refused {what}: {source}")]
    Refused {
        /// The message, in nft's words.
        what: String,
        /// The kernel's errno.
        source: io::Error,
    },
    /// A published host port is already an element of berth's port map.
    #[error("host port {port} is already published by another container")]
    PortTaken {
        /// `[IP:]PORT/PROTO`.
        port: String,
    },
    /// A port rule mixes address families (host IPv4, container IPv6 or the reverse).
    #[error(
        "port {port}: host address {host} and container address {container} are of different families"
    )]
    MixedFamilies {
        /// `PORT/PROTO`.
        port: String,
        /// The host address.
        host: std::net::IpAddr,
        /// The container address.
        container: std::net::IpAddr,
    },
    /// A bridge name that cannot be an interface name.
    #[error(
        "bridge name {0:?} is not a valid interface name (1 to 15 bytes, no '/', NUL or whitespace)"
    )]
    BadBridge(String),
    /// enable_icc=false needs bridged traffic to pass the inet forward hook.
    #[error(
        "com.docker.network.bridge.enable_icc=false needs br_netfilter with {sysctl}=1 (modprobe br_netfilter)"
    )]
    IccNeedsBrNetfilter {
        /// The sysctl that is off or absent.
        sysctl: String,
    },
    /// A sysctl berth sets for a bridge could not be written.
    #[error("writing {}: {source}", path.display())]
    Sysctl {
        /// The file under /proc/sys.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}
