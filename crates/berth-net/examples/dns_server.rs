//! The DNS server as its own process, for berth-net's tests (the berth CLI has a hidden command
//! that calls `berth_net::dns::serve` instead): `dns_server RUN_ROOT [RESOLV_CONF [GRACE_MS]]`.

use berth_net::dns::{ServeOptions, serve_with};
use std::path::PathBuf;
use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let run_root = PathBuf::from(
        args.next()
            .expect("usage: dns_server RUN_ROOT [RESOLV_CONF [GRACE_MS]]"),
    );
    let mut opts = ServeOptions::default();
    if let Some(path) = args.next() {
        opts.resolv_conf = PathBuf::from(path);
    }
    if let Some(ms) = args.next() {
        opts.grace = Duration::from_millis(ms.parse().expect("GRACE_MS is a number"));
    }
    if let Err(e) = serve_with(&run_root, &opts) {
        eprintln!("dns_server: {e}");
        std::process::exit(1);
    }
}
