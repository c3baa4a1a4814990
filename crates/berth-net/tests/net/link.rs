//! Links over netlink, in namespaces the test makes: a thread that unshares its network namespace
//! plays the host, another the container; nothing of the real host is touched.

use berth_net::link::{Netlink, Veth, mac_for};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A thread in a new network namespace that runs jobs sent to it (lo up), until dropped.
struct Ns {
    jobs: Option<mpsc::Sender<Box<dyn FnOnce() + Send>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    fd: OwnedFd,
}

impl Ns {
    fn new() -> Ns {
        let (tx, rx) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let (fd_tx, fd_rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            // SAFETY: unshare(2) of this thread's network namespace only; no pointers involved.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare");
            let fd: OwnedFd = std::fs::File::open("/proc/thread-self/ns/net")
                .unwrap()
                .into();
            fd_tx.send(fd).unwrap();
            for job in rx {
                job();
            }
        });
        let fd = fd_rx.recv().unwrap();
        Ns {
            jobs: Some(tx),
            thread: Some(thread),
            fd,
        }
    }

    /// Runs `f` inside the namespace and returns its result.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        self.jobs
            .as_ref()
            .unwrap()
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .unwrap();
        rx.recv().unwrap()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn a_veth_lands_in_the_namespace_with_its_address_mac_and_route() {
    let host = Ns::new();
    let ctr = Ns::new();
    let ctr_fd = ctr.fd.try_clone().unwrap();
    let gw: IpAddr = "10.77.0.1".parse().unwrap();
    let ip = Ipv4Addr::new(10, 77, 0, 2);
    // The host side: bridge, then the veth into the container's namespace, timed.
    let (elapsed, routes) = host.run(move || {
        let nl = Netlink::new().unwrap();
        nl.ensure_bridge("tbr0", &["10.77.0.1/24".parse().unwrap()], None)
            .unwrap();
        // Idempotent.
        nl.ensure_bridge("tbr0", &["10.77.0.1/24".parse().unwrap()], None)
            .unwrap();
        let t = Instant::now();
        nl.attach(
            ctr_fd.as_fd(),
            &Veth {
                bridge: "tbr0".into(),
                host_name: "vethtest0".into(),
                ifname: "eth0".into(),
                mac: Some(mac_for(ip)),
                addrs: vec!["10.77.0.2/24".parse().unwrap()],
                gateways: vec!["10.77.0.1".parse().unwrap()],
                mtu: None,
            },
        )
        .unwrap();
        let elapsed = t.elapsed();
        (elapsed, nl.host_routes().unwrap())
    });
    eprintln!(
        "attach with the bridge in place: {} µs",
        elapsed.as_micros()
    );
    assert!(
        routes.iter().any(|r| r.to_string() == "10.77.0.0/24"),
        "{routes:?}"
    );
    // Inside: eth0 with its address, and a connection to the gateway works.
    let addrs = ctr.run(|| Netlink::new().unwrap().host_addrs().unwrap());
    assert!(addrs.contains(&IpAddr::V4(ip)), "{addrs:?}");
    let listener = host.run(move || TcpListener::bind(SocketAddr::new(gw, 0)).unwrap());
    let port = listener.local_addr().unwrap().port();
    let got = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        let mut b = [0u8; 5];
        s.read_exact(&mut b).unwrap();
        (peer.ip(), b)
    });
    ctr.run(move || {
        let mut s = TcpStream::connect_timeout(&SocketAddr::new(gw, port), Duration::from_secs(3))
            .expect("the container reaches the gateway");
        s.write_all(b"hello").unwrap();
    });
    let (peer, b) = got.join().unwrap();
    assert_eq!(peer, IpAddr::V4(ip));
    assert_eq!(&b, b"hello");
    // Detach and remove: both ends and the bridge are gone.
    host.run(|| {
        let nl = Netlink::new().unwrap();
        nl.detach("vethtest0").unwrap();
        nl.detach("vethtest0").unwrap();
        nl.remove_bridge("tbr0").unwrap();
        nl.remove_bridge("tbr0").unwrap();
        assert!(
            !nl.host_routes()
                .unwrap()
                .iter()
                .any(|r| r.to_string() == "10.77.0.0/24")
        );
    });
    let addrs = ctr.run(|| Netlink::new().unwrap().host_addrs().unwrap());
    assert!(!addrs.contains(&IpAddr::V4(ip)), "{addrs:?}");
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn a_missing_bridge_is_named_and_nothing_is_created() {
    let host = Ns::new();
    let ctr = Ns::new();
    let fd = ctr.fd.try_clone().unwrap();
    let e = host.run(move || {
        Netlink::new()
            .unwrap()
            .attach(
                fd.as_fd(),
                &Veth {
                    bridge: "nosuchbr".into(),
                    host_name: "vethtest1".into(),
                    ifname: "eth0".into(),
                    mac: None,
                    addrs: vec![],
                    gateways: vec![],
                    mtu: None,
                },
            )
            .unwrap_err()
            .to_string()
    });
    assert_eq!(e, "interface nosuchbr not found");
    let e = host.run(|| {
        Netlink::new()
            .unwrap()
            .ensure_bridge("bad/name", &[], None)
            .unwrap_err()
            .to_string()
    });
    assert!(e.contains("creating bridge bad/name"), "{e}");
}
