//! The server process: a thread per listen address and protocol (UDP, TCP), a shared table of the
//! networks' names swapped on reload, and the main thread watching `RUN/net/dns/` with inotify.
//! Blocking sockets and threads instead of an async runtime: a lookup is one `recvfrom`, a table
//! read and one `sendto`, which is as short as a query path gets.

use super::answer::{self, Outcome, Zone};
use super::records::{self, NetworkFile};
use super::{DnsError, io};
use crate::hosts::ResolvConf;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::fs::inotify;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The host's resolver configuration: its nameservers get the names the server does not know.
    pub resolv_conf: PathBuf,
    /// How long the server stays up once no network file is left (so a quick remove + create of a
    /// network does not stop and restart it).
    pub grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            grace: Duration::from_secs(2),
        }
    }
}

/// What the server publishes in `RUN/net/dns/server.pid` once it has applied the records: its pid
/// and the listen addresses bound and not (yet) bound.
#[derive(Serialize, Deserialize, Debug, Default, PartialEq)]
pub(crate) struct State {
    pub pid: u32,
    pub listening: BTreeSet<IpAddr>,
    pub failed: BTreeSet<IpAddr>,
}

pub(crate) const PID_FILE: &str = "server.pid";
pub(crate) const LOCK_FILE: &str = "server.lock";
const PORT: u16 = 53;
/// How often a listener thread looks at its stop flag.
const TICK: Duration = Duration::from_millis(200);
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

type Zones = Arc<RwLock<HashMap<IpAddr, Arc<Zone>>>>;

struct Shared {
    zones: Zones,
    resolv_conf: PathBuf,
}

/// The server with the default options (`/etc/resolv.conf`, 2 s grace).
pub fn serve(run_root: &Path) -> Result<(), DnsError> {
    serve_with(run_root, &ServeOptions::default())
}

/// The server: returns at once if another holds `RUN/net/dns/server.lock`, else serves until no
/// network file has been left for `opts.grace`.
pub fn serve_with(run_root: &Path, opts: &ServeOptions) -> Result<(), DnsError> {
    let dir = records::dir(run_root);
    std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
    let lock_path = dir.join(LOCK_FILE);
    let lock = berth_fs::open_lock_file(&lock_path).map_err(|e| io(e.op, &lock_path)(e.source))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(()),
        Err(std::fs::TryLockError::Error(e)) => return Err(io("locking", &lock_path)(e)),
    }
    let pid_path = dir.join(PID_FILE);
    // A previous server killed with -9 left its state: not ours, and not ready.
    let _ = std::fs::remove_file(&pid_path);

    let ino = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
        .map_err(|e| io("watching", &dir)(e.into()))?;
    inotify::add_watch(
        &ino,
        &dir,
        inotify::WatchFlags::CLOSE_WRITE
            | inotify::WatchFlags::MOVED_TO
            | inotify::WatchFlags::MOVED_FROM
            | inotify::WatchFlags::DELETE,
    )
    .map_err(|e| io("watching", &dir)(e.into()))?;

    let shared = Arc::new(Shared {
        zones: Arc::default(),
        resolv_conf: opts.resolv_conf.clone(),
    });
    let mut listeners: HashMap<IpAddr, Arc<AtomicBool>> = HashMap::new();
    let mut published = State::default();
    let mut idle_since: Option<Instant> = None;
    let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 4096];
    loop {
        let files = load(&dir);
        let mut zones = HashMap::new();
        for file in &files {
            let zone = Arc::new(Zone::new(file));
            for addr in &file.listen {
                zones.insert(*addr, zone.clone());
            }
        }
        *shared.zones.write().unwrap_or_else(|e| e.into_inner()) = zones.clone();

        listeners.retain(|addr, stop| {
            let keep = zones.contains_key(addr);
            if !keep {
                stop.store(true, Ordering::Relaxed);
            }
            keep
        });
        let mut failed = BTreeSet::new();
        for addr in zones.keys() {
            if listeners.contains_key(addr) {
                continue;
            }
            match listen(*addr, &shared) {
                Ok(stop) => {
                    listeners.insert(*addr, stop);
                }
                // EADDRNOTAVAIL (the bridge has no address yet) or EADDRINUSE (our own previous
                // socket on it still closing): retried below.
                Err(_) => {
                    failed.insert(*addr);
                }
            }
        }
        let state = State {
            pid: std::process::id(),
            listening: listeners.keys().copied().collect(),
            failed,
        };
        if state != published {
            let bytes = serde_json::to_vec(&state).expect("state serialises");
            berth_fs::write_atomic(&pid_path, &bytes, berth_fs::Durability::Volatile).map_err(
                |e| DnsError::Io {
                    what: "writing",
                    path: pid_path.clone(),
                    source: std::io::Error::other(e),
                },
            )?;
            published = state;
        }

        let timeout = if files.is_empty() {
            let since = *idle_since.get_or_insert_with(Instant::now);
            let left = opts.grace.saturating_sub(since.elapsed());
            if left.is_zero() {
                break;
            }
            Some(left)
        } else {
            idle_since = None;
            (!published.failed.is_empty()).then_some(Duration::from_millis(250))
        };
        wait_for_change(&ino, &mut buf, timeout);
    }
    let _ = std::fs::remove_file(&pid_path);
    for stop in listeners.values() {
        stop.store(true, Ordering::Relaxed);
    }
    drop(lock);
    Ok(())
}

/// Every readable network file; a corrupt one is skipped (its writer replaces it whole next time).
fn load(dir: &Path) -> Vec<NetworkFile> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| records::is_network_file(&e.file_name().to_string_lossy()))
        .filter_map(|e| records::read(&e.path()).ok().flatten())
        .collect()
}

/// Sleeps until a network file changes or `timeout` passes.
fn wait_for_change(
    ino: &impl AsFd,
    buf: &mut [std::mem::MaybeUninit<u8>],
    timeout: Option<Duration>,
) {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|l| l.is_zero()) {
            return;
        }
        let ts = left.map(|l| Timespec {
            tv_sec: l.as_secs() as _,
            tv_nsec: l.subsec_nanos() as _,
        });
        let mut fds = [PollFd::new(ino, PollFlags::IN)];
        if poll(&mut fds, ts.as_ref()).unwrap_or(0) == 0 {
            continue;
        }
        let mut changed = false;
        let mut reader = inotify::Reader::new(ino, buf);
        while let Ok(event) = reader.next() {
            if let Some(name) = event.file_name() {
                changed |= records::is_network_file(&name.to_string_lossy());
            }
        }
        if changed {
            return;
        }
    }
}

/// Binds UDP and TCP port 53 on `addr` and starts their threads; the flag stops them.
fn listen(addr: IpAddr, shared: &Arc<Shared>) -> std::io::Result<Arc<AtomicBool>> {
    let udp = UdpSocket::bind((addr, PORT))?;
    let tcp = TcpListener::bind((addr, PORT))?;
    udp.set_read_timeout(Some(TICK))?;
    tcp.set_nonblocking(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let (stop, shared) = (stop.clone(), shared.clone());
        std::thread::spawn(move || serve_udp(addr, udp, &stop, &shared));
    }
    {
        let (stop, shared) = (stop.clone(), shared.clone());
        std::thread::spawn(move || serve_tcp(addr, tcp, &stop, &shared));
    }
    Ok(stop)
}

fn zone_of(shared: &Shared, addr: IpAddr) -> Option<Arc<Zone>> {
    shared
        .zones
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&addr)
        .cloned()
}

/// How long a listener keeps polling for the next query after answering one before it blocks
/// again: a client that asks again at once (a resolver's A then AAAA, a program's lookups in a row)
/// finds the server awake instead of paying a wakeup, which on another CPU costs more than the
/// answer itself. Only while queries keep coming; an idle server sleeps.
const SPIN: Duration = Duration::from_micros(150);

/// The next datagram: first polled without blocking for [`SPIN`] after a reply (`hot`), then
/// waited for with the socket's timeout.
fn next_query(sock: &UdpSocket, buf: &mut [u8], hot: bool) -> Option<(usize, SocketAddr)> {
    if hot {
        let until = Instant::now() + SPIN;
        while Instant::now() < until {
            match rustix::net::recvfrom(sock, &mut *buf, rustix::net::RecvFlags::DONTWAIT) {
                Ok((n, _, Some(from))) => {
                    if let Ok(peer) = SocketAddr::try_from(from) {
                        return Some((n, peer));
                    }
                }
                Ok(_) => {}
                Err(rustix::io::Errno::AGAIN) => std::hint::spin_loop(),
                Err(_) => break,
            }
        }
    }
    sock.recv_from(buf).ok()
}

fn serve_udp(addr: IpAddr, sock: UdpSocket, stop: &AtomicBool, shared: &Arc<Shared>) {
    let mut buf = [0u8; 4096];
    let mut hot = false;
    while !stop.load(Ordering::Relaxed) {
        let Some((n, peer)) = next_query(&sock, &mut buf, hot) else {
            hot = false;
            continue;
        };
        hot = true;
        let Some(zone) = zone_of(shared, addr) else {
            continue;
        };
        match answer::answer(&zone, &buf[..n]) {
            Outcome::Reply(bytes) => {
                let _ = sock.send_to(&bytes, peer);
            }
            Outcome::Forward => {
                let (query, shared) = (buf[..n].to_vec(), shared.clone());
                let Ok(sock) = sock.try_clone() else { continue };
                std::thread::spawn(move || {
                    if let Some(bytes) = forward(&shared, &query, false) {
                        let _ = sock.send_to(&bytes, peer);
                    }
                });
            }
            Outcome::Drop => {}
        }
    }
}

fn serve_tcp(addr: IpAddr, listener: TcpListener, stop: &AtomicBool, shared: &Arc<Shared>) {
    let ts = Timespec {
        tv_sec: 0,
        tv_nsec: TICK.as_nanos() as _,
    };
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(&listener, PollFlags::IN)];
        if poll(&mut fds, Some(&ts)).unwrap_or(0) == 0 {
            continue;
        }
        let Ok((conn, _)) = listener.accept() else {
            continue;
        };
        let shared = shared.clone();
        std::thread::spawn(move || serve_tcp_conn(addr, conn, &shared));
    }
}

fn read_framed(conn: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    conn.read_exact(&mut len).ok()?;
    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
    conn.read_exact(&mut msg).ok()?;
    Some(msg)
}

fn write_framed(conn: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(std::io::Error::other)?;
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(msg);
    conn.write_all(&out)
}

fn serve_tcp_conn(addr: IpAddr, mut conn: TcpStream, shared: &Shared) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    while let Some(query) = read_framed(&mut conn) {
        let Some(zone) = zone_of(shared, addr) else {
            return;
        };
        let bytes = match answer::answer(&zone, &query) {
            Outcome::Reply(bytes) => bytes,
            Outcome::Forward => match forward(shared, &query, true) {
                Some(bytes) => bytes,
                None => return,
            },
            Outcome::Drop => return,
        };
        if write_framed(&mut conn, &bytes).is_err() {
            return;
        }
    }
}

/// Relays `query` to the host's nameservers in order (our own listen addresses skipped) and returns
/// the first reply with the query's id; SERVFAIL when there is none to ask or none answered.
fn forward(shared: &Shared, query: &[u8], tcp: bool) -> Option<Vec<u8>> {
    let text = std::fs::read_to_string(&shared.resolv_conf).unwrap_or_default();
    let ours: Vec<IpAddr> = shared
        .zones
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .keys()
        .copied()
        .collect();
    let upstreams = ResolvConf::parse(&text)
        .nameservers
        .into_iter()
        .filter(|ns| !ours.contains(ns));
    for ns in upstreams.take(3) {
        let upstream = SocketAddr::new(ns, PORT);
        let reply = if tcp {
            ask_tcp(upstream, query)
        } else {
            ask_udp(upstream, query)
        };
        if let Some(reply) =
            reply.filter(|r| r.len() >= 2 && query.len() >= 2 && r[..2] == query[..2])
        {
            return Some(reply);
        }
    }
    answer::servfail(query)
}

fn ask_udp(upstream: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    let local: SocketAddr = if upstream.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(local).ok()?;
    sock.connect(upstream).ok()?;
    sock.set_read_timeout(Some(UPSTREAM_TIMEOUT)).ok()?;
    sock.send(query).ok()?;
    let mut buf = vec![0u8; 65535];
    let n = sock.recv(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

fn ask_tcp(upstream: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    let mut conn = TcpStream::connect_timeout(&upstream, UPSTREAM_TIMEOUT).ok()?;
    conn.set_read_timeout(Some(UPSTREAM_TIMEOUT)).ok()?;
    write_framed(&mut conn, query).ok()?;
    read_framed(&mut conn)
}
