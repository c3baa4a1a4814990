//! What the tests of several berth crates share, so that each is written once: temporary state roots and
//! the checks that a test left nothing behind ([`root`]), busybox root filesystems ([`busybox`]), layer
//! and OCI image builders ([`image`]), a berth registry serving inside the test process ([`registry`]),
//! one moto S3 server per test binary ([`s3`]), a TLS certificate authority ([`tls`]), digests, random
//! bytes and free ports.
//!
//! A dev-dependency only: nothing but tests may depend on it. Helpers panic with a message naming what
//! failed, as a test's own assertion would.

pub mod busybox;
pub mod image;
pub mod registry;
pub mod root;
pub mod s3;
pub mod tls;

use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};

/// `sha256:<hex>` of some bytes.
pub fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// `n` random bytes (incompressible content for big blobs).
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::fill(&mut v[..]);
    v
}

/// A short random lowercase-hex name, `prefix` first (buckets, prefixes, repositories).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(rand::random::<[u8; 6]>()))
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for servers that must be told theirs up front).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// This machine's own non-loopback IPv4 address: what a test serves on to be "another host" (a
/// registry there is not trusted for plain HTTP the way a loopback one is). The source address
/// of the default route, as the kernel picks it for a UDP socket's connect (nothing is sent), so
/// that a bridge another test made is never taken for the host's address; without a default
/// route, the first local address of the kernel's routing table.
pub fn host_ip() -> std::net::Ipv4Addr {
    if let Ok(s) = std::net::UdpSocket::bind("0.0.0.0:0")
        && s.connect("192.0.2.1:9").is_ok()
        && let Ok(std::net::SocketAddr::V4(a)) = s.local_addr()
        && !a.ip().is_loopback()
        && !a.ip().is_unspecified()
    {
        return *a.ip();
    }
    let trie = std::fs::read_to_string("/proc/net/fib_trie").expect("read /proc/net/fib_trie");
    let mut last: Option<std::net::Ipv4Addr> = None;
    for line in trie.lines() {
        let t = line.trim_start();
        if let Some(a) = t.strip_prefix("|-- ").or_else(|| t.strip_prefix("+-- ")) {
            last = a.split(['/', ' ']).next().and_then(|a| a.parse().ok());
        } else if t.starts_with("/32 host LOCAL")
            && let Some(ip) = last.filter(|ip| !ip.is_loopback())
        {
            return ip;
        }
    }
    panic!("this test needs a non-loopback IPv4 address on the machine");
}

/// The /24 network around [`host_ip`], as `a.b.c.0/24`.
pub fn host_net24() -> String {
    let [a, b, c, _] = host_ip().octets();
    format!("{a}.{b}.{c}.0/24")
}

/// The repository's root directory (where `scripts/` lives).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// A directory for test data on the disk that holds the build (`target/tmp/berth-tests`): overlayfs upper
/// directories and large images do not belong on whatever filesystem `$TMPDIR` is.
pub fn scratch_dir() -> PathBuf {
    let p = repo_root().join("target/tmp/berth-tests");
    std::fs::create_dir_all(&p).expect("create the test scratch dir");
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256_of_the_bytes() {
        assert_eq!(
            digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique("b"), unique("b"));
        assert!(unique("b").starts_with('b'));
    }

    #[test]
    fn the_host_ip_is_a_local_address() {
        let ip = host_ip();
        assert!(!ip.is_loopback());
        std::net::TcpListener::bind((ip, 0)).expect("bind the host address");
        assert!(host_net24().ends_with(".0/24"));
    }

    #[test]
    fn free_port_can_be_bound() {
        let p = free_port();
        std::net::TcpListener::bind(("127.0.0.1", p)).expect("bind the free port");
    }
}
