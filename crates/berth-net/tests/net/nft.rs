//! berth's nftables table with real traffic. Every test builds its own world of named network
//! namespaces: a "host" (where the library runs, with a bridge per network), "containers" on veths
//! into those bridges, and an "outside" namespace on the host's uplink. The real host's ruleset is
//! never touched (each test checks it is unchanged). The test uses `ip`/`nft` to set up and
//! inspect; the library itself only speaks netlink.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth_net::nft::{NetRules, Nft, NftError, PortRule, Proto};

const HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const OUTSIDE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A named network namespace, deleted on drop.
struct Ns(String);

impl Ns {
    fn new(tag: &str) -> Ns {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "bnft-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        run(&["ip", "netns", "add", &name]);
        let ns = Ns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }
    fn ip(&self, args: &[&str]) -> String {
        let mut a = vec!["ip", "-n", &self.0];
        a.extend_from_slice(args);
        run(&a)
    }
    fn nft(&self, args: &[&str]) -> String {
        let mut a = vec!["ip", "netns", "exec", &self.0, "nft"];
        a.extend_from_slice(args);
        run(&a)
    }
    /// Runs `f` on a thread inside this namespace.
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                let fd = std::fs::File::open(format!("/run/netns/{}", self.0)).expect("open netns");
                // SAFETY: setns on this thread only, with a namespace fd that stays open across the call.
                let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("thread in netns")
        })
    }
    /// A TCP server in this namespace that answers each connection with the peer address it saw.
    fn echo_peer(&self, port: u16) {
        let l = self.run(|| TcpListener::bind(("0.0.0.0", port)).expect("bind"));
        std::thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                let peer = c
                    .peer_addr()
                    .map(|p| p.ip().to_string())
                    .unwrap_or_default();
                let _ = c.write_all(peer.as_bytes());
            }
        });
    }
    /// A UDP server in this namespace that answers each datagram with the peer address it saw.
    fn udp_echo_peer(&self, port: u16) {
        let sock = self.run(|| UdpSocket::bind(("0.0.0.0", port)).expect("bind udp"));
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while let Ok((_, from)) = sock.recv_from(&mut buf) {
                let _ = sock.send_to(from.ip().to_string().as_bytes(), from);
            }
        });
    }
    /// One datagram from this namespace; the peer address the server saw, or None.
    fn ask_udp(&self, addr: impl Into<IpAddr>, port: u16) -> Option<String> {
        let to = SocketAddr::new(addr.into(), port);
        self.run(|| {
            let s = UdpSocket::bind(("0.0.0.0", 0)).ok()?;
            s.set_read_timeout(Some(Duration::from_millis(700))).ok()?;
            s.send_to(b"?", to).ok()?;
            let mut buf = [0u8; 64];
            let (n, _) = s.recv_from(&mut buf).ok()?;
            Some(String::from_utf8_lossy(&buf[..n]).into_owned())
        })
    }
    /// Connects from this namespace; the peer address the server saw, or None.
    fn ask(&self, addr: impl Into<IpAddr>, port: u16) -> Option<String> {
        let to = SocketAddr::new(addr.into(), port);
        self.run(|| {
            let mut c = TcpStream::connect_timeout(&to, Duration::from_millis(700)).ok()?;
            c.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            let mut s = String::new();
            c.read_to_string(&mut s).ok()?;
            Some(s)
        })
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// The host namespace with an uplink to an "outside" namespace, and the real host's ruleset at start.
struct World {
    host: Ns,
    outside: Ns,
    ruleset: String,
}

impl World {
    fn new() -> World {
        let ruleset = run(&["nft", "list", "ruleset"]);
        let host = Ns::new("host");
        let outside = Ns::new("out");
        host.ip(&[
            "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", &outside.0,
        ]);
        host.ip(&["addr", "add", &format!("{HOST}/24"), "dev", "up0"]);
        host.ip(&["link", "set", "up0", "up"]);
        outside.ip(&["addr", "add", &format!("{OUTSIDE}/24"), "dev", "eth0"]);
        outside.ip(&["link", "set", "eth0", "up"]);
        outside.ip(&["route", "add", "10.0.0.0/8", "via", &HOST.to_string()]);
        host.run(|| std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").expect("ip_forward"));
        World {
            host,
            outside,
            ruleset,
        }
    }
    /// A bridge `name` with gateway `.1` of 10.X.0.0/24.
    fn bridge(&self, name: &str, x: u8) {
        self.host.ip(&["link", "add", name, "type", "bridge"]);
        self.host
            .ip(&["addr", "add", &format!("10.{x}.0.1/24"), "dev", name]);
        self.host.ip(&["link", "set", name, "up"]);
    }
    /// A container namespace on bridge `br` with address 10.X.0.N.
    fn container(&self, br: &str, x: u8, n: u8) -> Ns {
        let c = Ns::new(&format!("c{x}{n}"));
        let veth = format!("v{x}x{n}");
        self.host.ip(&[
            "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &c.0,
        ]);
        self.host.ip(&["link", "set", &veth, "master", br, "up"]);
        // As berth's link code sets it: br_netfilter turns DNAT onto the same bridge into bridging,
        // so a container reaching its own published port needs its frame sent back out its port.
        self.host.ip(&[
            "link",
            "set",
            &veth,
            "type",
            "bridge_slave",
            "hairpin",
            "on",
        ]);
        c.ip(&["addr", "add", &format!("10.{x}.0.{n}/24"), "dev", "eth0"]);
        c.ip(&["link", "set", "eth0", "up"]);
        c.ip(&["route", "add", "default", "via", &format!("10.{x}.0.1")]);
        c
    }
    fn nft(&self) -> Nft {
        self.host.run(|| Nft::new().expect("nft socket"))
    }
    fn tables(&self) -> String {
        self.host.nft(&["-j", "list", "tables"])
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert_eq!(
                run(&["nft", "list", "ruleset"]),
                self.ruleset,
                "the real host's ruleset changed"
            );
        }
    }
}

fn net(bridge: &str, x: u8, internal: bool, icc: bool) -> NetRules {
    NetRules {
        bridge: bridge.into(),
        subnets: vec![format!("10.{x}.0.0/24").parse().unwrap()],
        internal,
        icc,
    }
}

fn port(host_ip: Option<IpAddr>, host_port: u16, addr: Ipv4Addr, port: u16) -> PortRule {
    PortRule {
        proto: Proto::Tcp,
        host_ip,
        host_port,
        addr: addr.into(),
        port,
        bridge: "br0".into(),
    }
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn published_ports_answer_on_host_addresses_loopback_and_hairpin() {
    let w = World::new();
    w.bridge("br0", 88);
    let c1 = w.container("br0", 88, 2);
    let c2 = w.container("br0", 88, 3);
    c1.echo_peer(80);
    let nft = w.nft();
    w.host
        .run(|| nft.add_network(&net("br0", 88, false, true)))
        .expect("add_network");
    assert!(nft.has_table().unwrap());
    assert_eq!(w.outside.ask(HOST, 8080), None, "nothing published yet");

    let p = port(None, 8080, v4("10.88.0.2"), 80);
    let t = Instant::now();
    nft.publish(std::slice::from_ref(&p)).expect("publish");
    println!("one publish batch: {} µs", t.elapsed().as_micros());

    // From outside, through prerouting: the listener sees the real client.
    assert_eq!(
        w.outside.ask(HOST, 8080).as_deref(),
        Some(OUTSIDE.to_string().as_str())
    );
    // From the host itself, through output, to its own address and to 127.0.0.1.
    assert!(w.host.ask(HOST, 8080).is_some(), "host → own address");
    assert!(
        w.host.ask(Ipv4Addr::LOCALHOST, 8080).is_some(),
        "host → 127.0.0.1"
    );
    // Hairpin: containers on the bridge through the host's address, masqueraded to the gateway.
    assert_eq!(
        c2.ask(HOST, 8080).as_deref(),
        Some("10.88.0.1"),
        "hairpin from a neighbour"
    );
    assert_eq!(
        c1.ask(HOST, 8080).as_deref(),
        Some("10.88.0.1"),
        "hairpin onto itself"
    );

    // The same key again: refused, naming the port; nothing changed.
    let e = nft
        .publish(&[port(None, 8080, v4("10.88.0.3"), 80)])
        .unwrap_err();
    assert!(matches!(e, NftError::PortTaken { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "host port 8080/tcp is already published by another container"
    );
    // A batch with a free port and a taken one publishes neither.
    let free = port(None, 8081, v4("10.88.0.2"), 80);
    assert!(nft.publish(&[free.clone(), p.clone()]).is_err());
    assert_eq!(
        w.outside.ask(HOST, 8081),
        None,
        "a failed batch left nothing behind"
    );

    // A port on one host address only.
    let lo = port(Some(Ipv4Addr::LOCALHOST.into()), 9090, v4("10.88.0.2"), 80);
    nft.publish(std::slice::from_ref(&lo))
        .expect("publish 127.0.0.1:9090");
    assert!(
        w.host.ask(Ipv4Addr::LOCALHOST, 9090).is_some(),
        "127.0.0.1:9090"
    );
    assert_eq!(
        w.outside.ask(HOST, 9090),
        None,
        "9090 answers on 127.0.0.1 only"
    );
    let e = nft.publish(std::slice::from_ref(&lo)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "host port 127.0.0.1:9090/tcp is already published by another container"
    );

    // UDP: its own key space (the same number over TCP stays free), answered from outside and
    // on 127.0.0.1.
    c1.udp_echo_peer(53);
    let udp = PortRule {
        proto: Proto::Udp,
        ..port(None, 5353, v4("10.88.0.2"), 53)
    };
    assert_eq!(w.outside.ask_udp(HOST, 5353), None, "nothing on udp yet");
    nft.publish(std::slice::from_ref(&udp))
        .expect("publish udp");
    assert_eq!(
        w.outside.ask_udp(HOST, 5353).as_deref(),
        Some(OUTSIDE.to_string().as_str())
    );
    assert!(
        w.host.ask_udp(Ipv4Addr::LOCALHOST, 5353).is_some(),
        "udp on 127.0.0.1"
    );
    assert_eq!(
        w.outside.ask(HOST, 5353),
        None,
        "5353/tcp was not published"
    );
    nft.unpublish(std::slice::from_ref(&udp))
        .expect("unpublish udp");
    assert_eq!(w.outside.ask_udp(HOST, 5353), None, "udp withdrawn");

    // Withdrawn: gone; withdrawing again (and something never published) is fine.
    nft.unpublish(&[p.clone(), lo.clone()]).expect("unpublish");
    assert_eq!(w.outside.ask(HOST, 8080), None);
    assert_eq!(w.host.ask(Ipv4Addr::LOCALHOST, 9090), None);
    nft.unpublish(&[p.clone(), free]).expect("unpublish again");
    // The key is free again.
    nft.publish(std::slice::from_ref(&p))
        .expect("publish again");
    assert!(w.outside.ask(HOST, 8080).is_some());

    nft.remove_network("br0").expect("remove");
    assert!(!w.tables().contains("berth"), "{}", w.tables());
    assert!(!nft.has_table().unwrap());
    nft.remove_network("br0").expect("remove twice");
    nft.unpublish(&[p]).expect("unpublish without a table");
    drop((c1, c2));
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn masquerade_isolation_icc_and_internal() {
    let w = World::new();
    w.bridge("br0", 90);
    w.bridge("br1", 91);
    w.bridge("br2", 92);
    let a1 = w.container("br0", 90, 2);
    let a2 = w.container("br0", 90, 3);
    let b1 = w.container("br1", 91, 2);
    let i1 = w.container("br2", 92, 2);
    for c in [&a1, &a2, &b1, &i1] {
        c.echo_peer(80);
    }
    w.outside.echo_peer(7000);
    // Without berth's rules everything is routed or bridged: the drops below are the table's.
    assert_eq!(a1.ask(v4("10.90.0.3"), 80).as_deref(), Some("10.90.0.2"));
    assert_eq!(a1.ask(v4("10.91.0.2"), 80).as_deref(), Some("10.90.0.2"));
    assert_eq!(i1.ask(v4("10.91.0.2"), 80).as_deref(), Some("10.92.0.2"));
    assert_eq!(
        b1.ask(OUTSIDE, 7000).as_deref(),
        Some("10.91.0.2"),
        "no masquerade yet"
    );

    let nft = w.nft();
    // add_network writes the bridge's route_localnet: it runs in the host namespace.
    w.host.run(|| {
        nft.add_network(&net("br0", 90, false, false)).expect("br0");
        nft.add_network(&net("br1", 91, false, true)).expect("br1");
        nft.add_network(&net("br2", 92, true, true)).expect("br2");
        nft.add_network(&net("br1", 91, false, true))
            .expect("br1 again (idempotent)");
    });

    // Outbound is masqueraded to the host's uplink address.
    assert_eq!(
        b1.ask(OUTSIDE, 7000).as_deref(),
        Some(HOST.to_string().as_str())
    );
    assert_eq!(
        a1.ask(OUTSIDE, 7000).as_deref(),
        Some(HOST.to_string().as_str())
    );
    // Internal: nothing out, nothing in.
    assert_eq!(
        i1.ask(OUTSIDE, 7000),
        None,
        "internal network reached outside"
    );
    assert_eq!(
        b1.ask(v4("10.92.0.2"), 80),
        None,
        "reached into an internal network"
    );
    // Isolation between networks, both ways.
    assert_eq!(a1.ask(v4("10.91.0.2"), 80), None, "br0 → br1");
    assert_eq!(b1.ask(v4("10.90.0.2"), 80), None, "br1 → br0");
    // icc off: no container to container on br0 …
    assert_eq!(a1.ask(v4("10.90.0.3"), 80), None, "icc=false bridged");
    // … except through a published port (hairpin), and from another network through it too.
    nft.publish(&[port(None, 8080, v4("10.90.0.3"), 80)])
        .expect("publish");
    assert_eq!(
        a1.ask(HOST, 8080).as_deref(),
        Some("10.90.0.1"),
        "icc=false hairpin"
    );
    assert!(
        b1.ask(HOST, 8080).is_some(),
        "published port from another network"
    );
    // icc on for br1: a second container there reaches the first.
    let b2 = w.container("br1", 91, 3);
    assert_eq!(b2.ask(v4("10.91.0.2"), 80).as_deref(), Some("10.91.0.3"));

    // Removing one network leaves the others' rules; the last one takes the tables.
    nft.remove_network("br1").expect("remove br1");
    let chains = w.host.nft(&["list", "table", "inet", "berth"]);
    assert!(
        !chains.contains("in_br1") && chains.contains("in_br0"),
        "{chains}"
    );
    assert_eq!(a1.ask(v4("10.90.0.3"), 80), None, "br0 keeps icc=false");
    assert_eq!(i1.ask(OUTSIDE, 7000), None, "br2 stays internal");
    nft.remove_network("br1").expect("remove br1 twice");
    nft.remove_network("br0").expect("remove br0");
    nft.remove_network("br2").expect("remove br2");
    let tables = w.tables();
    assert!(!tables.contains("berth"), "{tables}");
    // And the world is back to plain routing.
    assert_eq!(a1.ask(v4("10.90.0.3"), 80).as_deref(), Some("10.90.0.2"));
    drop((a1, a2, b1, b2, i1));
}
