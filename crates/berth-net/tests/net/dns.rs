//! DNS records (plain tier) and the server (e2e tier: it binds port 53, inside a network namespace
//! the test makes, so nothing on the host is touched).

use berth_net::dns::{Record, Records, ensure_server};
use berth_net::owner::Owner;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, RecordType};
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn rec(names: &[&str], addr: &str, owner: Owner) -> Record {
    Record {
        names: names.iter().map(|s| s.to_string()).collect(),
        addrs: vec![addr.parse().unwrap()],
        owner,
    }
}

fn file(run: &Path, id: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("net/dns").join(format!("{id}.json"))).unwrap())
        .unwrap()
}

#[test]
fn records_replace_the_owners_entry_remove_it_and_the_network() {
    let tmp = tempfile::tempdir().unwrap();
    let recs = Records::open(tmp.path()).unwrap();
    let listen: Vec<IpAddr> = vec!["10.9.0.1".parse().unwrap()];
    recs.set(
        "n1",
        &listen,
        rec(&["web"], "10.9.0.2", Owner::current("c1")),
    )
    .unwrap();
    recs.set(
        "n1",
        &listen,
        rec(&["db"], "10.9.0.3", Owner::current("c2")),
    )
    .unwrap();
    recs.set(
        "n1",
        &listen,
        rec(&["web", "www"], "10.9.0.4", Owner::current("c1")),
    )
    .unwrap();
    let f = file(tmp.path(), "n1");
    assert_eq!(f["listen"], serde_json::json!(["10.9.0.1"]));
    let records = f["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[1]["names"], serde_json::json!(["web", "www"]));
    assert_eq!(records[1]["addrs"], serde_json::json!(["10.9.0.4"]));
    recs.remove("n1", "c1").unwrap();
    recs.remove("n1", "absent").unwrap();
    assert_eq!(
        file(tmp.path(), "n1")["records"].as_array().unwrap().len(),
        1
    );
    recs.remove_network("n1").unwrap();
    recs.remove_network("n1").unwrap();
    assert!(!tmp.path().join("net/dns/n1.json").exists());
    // No temp file left behind by the atomic writes.
    let left: Vec<_> = std::fs::read_dir(tmp.path().join("net/dns"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("records.lock")],
        "{left:?}"
    );
}

fn sh(args: &[&str]) {
    let st = std::process::Command::new(args[0])
        .args(&args[1..])
        .status()
        .unwrap();
    assert!(st.success(), "{args:?}");
}

fn query(sock: &UdpSocket, server: (Ipv4Addr, u16), name: &str, qtype: RecordType) -> Message {
    let mut msg = Message::query();
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    sock.send_to(&msg.to_vec().unwrap(), server).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.recv(&mut buf).unwrap();
        let reply = Message::from_vec(&buf[..n]).unwrap();
        if reply.id == msg.id {
            return reply;
        }
    }
}

fn a_addrs(m: &Message) -> Vec<Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(A(a)) => Some(*a),
            _ => None,
        })
        .collect()
}

fn server_exe() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/dns_server");
    assert!(
        path.exists(),
        "{} missing: run the tests with cargo test -p berth-net (it builds examples)",
        path.display()
    );
    path
}

/// The "host resolver" of the forwarding test: answers every A query with 192.0.2.7.
fn upstream(addr: Ipv4Addr) -> std::thread::JoinHandle<()> {
    let sock = UdpSocket::bind((addr, 53)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, peer)) = sock.recv_from(&mut buf) {
            let req = Message::from_vec(&buf[..n]).unwrap();
            if req.queries[0].name().to_ascii() == "stop." {
                return;
            }
            let mut reply = Message::response(req.id, req.op_code);
            reply.queries = req.queries.clone();
            reply.add_answer(hickory_proto::rr::Record::from_rdata(
                req.queries[0].name().clone(),
                60,
                RData::A(A(Ipv4Addr::new(192, 0, 2, 7))),
            ));
            sock.send_to(&reply.to_vec().unwrap(), peer).unwrap();
        }
    })
}

fn alive(pid: i32) -> bool {
    Owner::of_pid("s", pid).is_some_and(|o| o.is_alive())
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn server_answers_names_forwards_others_reloads_fast_and_exits_when_idle() {
    // SAFETY: unshare on this test's own thread; the namespace dies with the thread and its children.
    assert_eq!(
        unsafe { libc::unshare(libc::CLONE_NEWNET) },
        0,
        "unshare: {}",
        std::io::Error::last_os_error()
    );
    // The server is orphaned by design; as subreaper this test reaps it instead of leaving a zombie
    // to an init that may not reap.
    // SAFETY: a process attribute set by prctl, no memory involved.
    assert_eq!(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) }, 0);
    sh(&["ip", "link", "set", "lo", "up"]);
    sh(&["ip", "addr", "add", "10.53.0.1/32", "dev", "lo"]);
    sh(&["ip", "addr", "add", "10.53.0.2/32", "dev", "lo"]);
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let resolv = tmp.path().join("resolv.conf");
    // Our own listen address is skipped when forwarding.
    std::fs::write(&resolv, "nameserver 10.53.0.1\nnameserver 10.53.0.2\n").unwrap();
    let up = upstream(Ipv4Addr::new(10, 53, 0, 2));

    let gw: Vec<IpAddr> = vec!["10.53.0.1".parse().unwrap()];
    let recs = Records::open(&run).unwrap();
    recs.set(
        "n1",
        &gw,
        rec(
            &["web", "www", "0123456789ab"],
            "10.53.1.5",
            Owner::current("c1"),
        ),
    )
    .unwrap();
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let dead_owner = Owner::of_pid("c2", dead.id() as i32).unwrap();
    dead.wait().unwrap();
    recs.set("n1", &gw, rec(&["ghost"], "10.53.1.9", dead_owner))
        .unwrap();

    let run_s = run.to_str().unwrap();
    ensure_server(
        &run,
        &server_exe(),
        &[run_s, resolv.to_str().unwrap(), "300"],
    )
    .unwrap();
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("net/dns/server.pid")).unwrap()).unwrap();
    let pid = state["pid"].as_i64().unwrap() as i32;
    // A second call finds it running and starts nothing.
    ensure_server(
        &run,
        &server_exe(),
        &[run_s, resolv.to_str().unwrap(), "300"],
    )
    .unwrap();

    let sock = UdpSocket::bind("10.53.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let srv = (Ipv4Addr::new(10, 53, 0, 1), 53);
    let m = query(&sock, srv, "WeB.", RecordType::A);
    assert_eq!(a_addrs(&m), vec![Ipv4Addr::new(10, 53, 1, 5)]);
    assert!(m.authoritative);
    assert_eq!(
        a_addrs(&query(&sock, srv, "0123456789ab.", RecordType::A)),
        vec![Ipv4Addr::new(10, 53, 1, 5)]
    );
    let m = query(&sock, srv, "web.", RecordType::AAAA);
    assert_eq!(
        (m.response_code, m.answers.len()),
        (ResponseCode::NoError, 0)
    );
    // A dead owner's name is not answered: it goes to the host resolver.
    assert_eq!(
        a_addrs(&query(&sock, srv, "ghost.", RecordType::A)),
        vec![Ipv4Addr::new(192, 0, 2, 7)]
    );
    assert_eq!(
        a_addrs(&query(&sock, srv, "outside.test.", RecordType::A)),
        vec![Ipv4Addr::new(192, 0, 2, 7)]
    );

    // Over TCP too (a client retries there after a truncated UDP answer).
    {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(srv).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut msg = Message::query();
        msg.add_query(Query::query(
            Name::from_ascii("www.").unwrap(),
            RecordType::A,
        ));
        let bytes = msg.to_vec().unwrap();
        conn.write_all(&(bytes.len() as u16).to_be_bytes()).unwrap();
        conn.write_all(&bytes).unwrap();
        let mut len = [0u8; 2];
        conn.read_exact(&mut len).unwrap();
        let mut reply = vec![0u8; u16::from_be_bytes(len) as usize];
        conn.read_exact(&mut reply).unwrap();
        let reply = Message::from_vec(&reply).unwrap();
        assert_eq!(reply.id, msg.id);
        assert_eq!(a_addrs(&reply), vec![Ipv4Addr::new(10, 53, 1, 5)]);
    }

    // Lookup time, one query round trip from a client.
    let mut times: Vec<Duration> = (0..500)
        .map(|_| {
            let t = Instant::now();
            let m = query(&sock, srv, "web.", RecordType::A);
            let d = t.elapsed();
            assert_eq!(m.answers.len(), 1);
            d
        })
        .collect();
    times.sort();
    println!(
        "DNS lookup by name: median {} µs over {} queries",
        times[times.len() / 2].as_micros(),
        times.len()
    );

    // A new address is answered within 100 ms of the record change.
    let t = Instant::now();
    recs.set("n1", &gw, rec(&["web"], "10.53.1.6", Owner::current("c1")))
        .unwrap();
    while a_addrs(&query(&sock, srv, "web.", RecordType::A)) != vec![Ipv4Addr::new(10, 53, 1, 6)] {
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "not reloaded within 100 ms"
        );
    }
    println!("reload seen after {} µs", t.elapsed().as_micros());

    // No upstream left: SERVFAIL, quickly.
    std::fs::write(&resolv, "nameserver 10.53.0.1\n").unwrap();
    let t = Instant::now();
    assert_eq!(
        query(&sock, srv, "outside.test.", RecordType::A).response_code,
        ResponseCode::ServFail
    );
    assert!(t.elapsed() < Duration::from_millis(100));

    // The last network gone: the server exits after its grace.
    recs.remove_network("n1").unwrap();
    let t = Instant::now();
    let mut exited = false;
    while !exited && t.elapsed() < Duration::from_secs(3) {
        // SAFETY: reaps the server, reparented to this test process (subreaper), without blocking.
        exited = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) } == pid;
        std::thread::sleep(Duration::from_millis(10));
    }
    if !exited {
        // SAFETY: kill and reap the server this test started.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    assert!(
        exited,
        "server still running 3 s after the last network went"
    );
    assert!(!alive(pid));
    assert!(!run.join("net/dns/server.pid").exists());
    let stop = UdpSocket::bind("10.53.0.1:0").unwrap();
    let mut msg = Message::query();
    msg.add_query(Query::query(
        Name::from_ascii("stop.").unwrap(),
        RecordType::A,
    ));
    stop.send_to(&msg.to_vec().unwrap(), "10.53.0.2:53")
        .unwrap();
    up.join().unwrap();
}
