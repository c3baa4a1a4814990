//! Networks end to end (root, real bridges, veths and nftables): published ports on 127.0.0.1 and
//! the host's own address, names and aliases on user networks, links, isolation, outbound traffic,
//! concurrent starts, kills in the middle, and bad input. Traffic goes only to 127.0.0.1, this
//! host's own address, or the test's own containers.

use crate::common::{TestRoot, inspect, ok, run, stderr, stdout};
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Whether an interface of that name exists on the host.
fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// The ports (veth host ends) on a bridge.
fn bridge_ports(bridge: &str) -> Vec<String> {
    std::fs::read_dir(
        std::path::Path::new("/sys/class/net")
            .join(bridge)
            .join("brif"),
    )
    .map(|rd| {
        rd.filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    })
    .unwrap_or_default()
}

/// After a test's containers are gone: no veth is left on its bridges; once its root is dropped,
/// the bridges are gone too (checked by [`assert_links_gone`]). berth never waits for a veth's
/// deletion: the kernel takes a container's veth away with its namespace, in a workqueue, a moment
/// after the process is gone; so this waits for that (bounded).
fn assert_no_ports(t: &TestRoot) -> Vec<String> {
    let bs = bridges(t);
    let deadline = Instant::now() + Duration::from_secs(10);
    for b in &bs {
        while !bridge_ports(b).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(bridge_ports(b), Vec::<String>::new(), "veths left on {b}");
    }
    bs
}

fn assert_links_gone(bridges: &[String]) {
    for b in bridges {
        assert!(!link_exists(b), "bridge {b} was left on the host");
    }
}

/// The bridges of this root's networks.
fn bridges(t: &TestRoot) -> Vec<String> {
    let out = ok(t, &["network", "ls", "-q", "--no-trunc"]);
    out.lines()
        .map(|id| {
            let v: serde_json::Value =
                serde_json::from_str(&ok(t, &["network", "inspect", id])).unwrap();
            v[0]["Options"]["com.docker.network.bridge.name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn ip_of(t: &TestRoot, c: &str, net: &str) -> String {
    inspect(t, c)["NetworkSettings"]["Networks"][net]["IPAddress"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// An HTTP GET over a plain TCP connection; the body, or the error.
fn http_get(addr: &str) -> std::io::Result<String> {
    let sa: std::net::SocketAddr = addr.parse().unwrap();
    let mut s = TcpStream::connect_timeout(&sa, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    write!(s, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

/// Retries `http_get` while the server in the container starts.
fn http_get_soon(addr: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match http_get(addr) {
            Ok(b) if b.contains("200") => return b,
            r if Instant::now() > deadline => panic!("GET {addr}: {r:?}"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

// Debian's busybox `wget -T` dies of a NULL write (SIGSEGV), so the tests bound a wget that must
// fail with busybox `timeout` instead, under `sh` and not as its last command: busybox `timeout`
// execs the command in its own place, `sh -c` execs a lone last command, and as the container's
// pid 1 wget would ignore the SIGTERM.
const HTTPD: &str =
    "mkdir -p /www && echo hello-from-httpd > /www/index.html && exec httpd -f -p 80 -h /www";

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn a_published_port_answers_on_loopback_the_host_address_and_from_another_container() {
    let bs = {
        let t = TestRoot::new();
        t.busybox_image("bb");
        let id = ok(
            &t,
            &[
                "run", "-d", "--name", "web", "-p", "80", "bb", "sh", "-c", HTTPD,
            ],
        );
        let id = id.trim();
        let port_line = ok(&t, &["port", "web", "80"]);
        let port: u16 = port_line
            .trim()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(port > 0, "{port_line}");
        assert_eq!(
            ok(&t, &["port", "web"]).trim(),
            format!("80/tcp -> 0.0.0.0:{port}")
        );
        let ps = ok(&t, &["ps", "--format", "{{.Ports}}"]);
        assert_eq!(ps.trim(), format!("0.0.0.0:{port}->80/tcp"));
        let v = inspect(&t, id);
        assert_eq!(
            v["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"],
            port.to_string()
        );
        assert!(http_get_soon(&format!("127.0.0.1:{port}")).contains("hello-from-httpd"));
        let host = berth_testkit::host_ip();
        assert!(http_get_soon(&format!("{host}:{port}")).contains("hello-from-httpd"));
        // Hairpin: another container through the host's address.
        let body = ok(
            &t,
            &[
                "run",
                "--rm",
                "bb",
                "wget",
                "-q",
                "-O",
                "-",
                &format!("http://{host}:{port}/"),
            ],
        );
        assert_eq!(body, "hello-from-httpd\n");
        // And the container itself, through its own published port (hairpin on its bridge port).
        let own = ok(
            &t,
            &[
                "exec",
                "web",
                "wget",
                "-q",
                "-O",
                "-",
                &format!("http://{host}:{port}/"),
            ],
        );
        assert_eq!(own, "hello-from-httpd\n");
        assert_eq!(
            ok(&t, &["ps", "-q", "--filter", "network=bridge"])
                .lines()
                .count(),
            1
        );
        // Stopping releases the port: nothing answers it any more.
        ok(&t, &["stop", "-t", "1", "web"]);
        assert!(http_get(&format!("127.0.0.1:{port}")).is_err());
        assert_eq!(ok(&t, &["port", "web"]), "");
        ok(&t, &["rm", "web"]);
        t.assert_clean();
        assert_no_ports(&t)
    };
    assert_links_gone(&bs);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn a_host_port_already_taken_is_named_and_nothing_is_left_half_set_up() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let held = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let o = run(
        &t,
        &[
            "run",
            "-d",
            "--name",
            "px",
            "-p",
            &format!("{port}:80"),
            "bb",
            "sleep",
            "100",
        ],
    );
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("{port}/tcp")),
        "the error names the port: {}",
        stderr(&o)
    );
    assert_eq!(inspect(&t, "px")["State"]["Running"], false);
    ok(&t, &["rm", "-f", "px"]);
    drop(held);
    ok(
        &t,
        &["run", "--rm", "-p", &format!("{port}:80"), "bb", "true"],
    );
    // Published by another container, on one address: every address overlaps it (no socket holds
    // a published port, so this is berth's own check), and so does that same address.
    ok(
        &t,
        &[
            "run",
            "-d",
            "--name",
            "lo-only",
            "-p",
            &format!("127.0.0.1:{port}:80"),
            "bb",
            "sleep",
            "100",
        ],
    );
    for spec in [format!("{port}:80"), format!("127.0.0.1:{port}:81")] {
        let o = run(&t, &["run", "--rm", "-p", &spec, "bb", "true"]);
        assert_eq!(o.status.code(), Some(125), "-p {spec}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("{port}/tcp")),
            "the error names the port: {}",
            stderr(&o)
        );
    }
    // Another protocol, or another port, is no overlap.
    ok(
        &t,
        &["run", "--rm", "-p", &format!("{port}:80/udp"), "bb", "true"],
    );
    ok(&t, &["rm", "-f", "lo-only"]);
    ok(
        &t,
        &["run", "--rm", "-p", &format!("{port}:80"), "bb", "true"],
    );
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn ipv6_networks_and_dns_flags() {
    let bs = {
        let t = TestRoot::new();
        t.busybox_image("bb");
        ok(
            &t,
            &[
                "network",
                "create",
                "--ipv6",
                "--subnet",
                "10.231.7.0/24",
                "--subnet",
                "fd00:b17:7::/64",
                "six",
            ],
        );
        let v: serde_json::Value =
            serde_json::from_str(&ok(&t, &["network", "inspect", "six"])).unwrap();
        assert_eq!(v[0]["EnableIPv6"], true, "{v}");
        ok(
            &t,
            &[
                "run",
                "-d",
                "--name",
                "web6",
                "--network",
                "six",
                "bb",
                "sh",
                "-c",
                HTTPD,
            ],
        );
        let ep = &inspect(&t, "web6")["NetworkSettings"]["Networks"]["six"];
        let v6: std::net::Ipv6Addr = ep["GlobalIPv6Address"].as_str().unwrap().parse().unwrap();
        assert!(v6.to_string().starts_with("fd00:b17:7::"), "{ep}");
        assert_eq!(ep["GlobalIPv6PrefixLen"], 64, "{ep}");
        assert_eq!(ep["IPv6Gateway"], "fd00:b17:7::1", "{ep}");
        // Another container reaches it over IPv6, by address and (AAAA) by name.
        let script = format!(
            "ip -6 addr show dev eth0 | grep -q fd00:b17:7:: || exit 2; \
             ip -6 route | grep -q 'default via fd00:b17:7::1' || exit 3; \
             for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - 'http://[{v6}]/' && break; sleep 0.2; done; \
             nslookup -type=AAAA web6 | grep -q '{v6}' || exit 4"
        );
        let out = ok(
            &t,
            &["run", "--rm", "--network", "six", "bb", "sh", "-c", &script],
        );
        assert_eq!(out, "hello-from-httpd\n");
        ok(&t, &["rm", "-f", "web6"]);

        // --dns, --dns-search and --dns-option make the default network's resolv.conf.
        let out = ok(
            &t,
            &[
                "run",
                "--rm",
                "--dns",
                "192.0.2.53",
                "--dns-search",
                "example.test",
                "--dns-option",
                "ndots:2",
                "bb",
                "cat",
                "/etc/resolv.conf",
            ],
        );
        assert!(out.contains("nameserver 192.0.2.53"), "{out}");
        assert!(out.contains("search example.test"), "{out}");
        assert!(out.contains("options ndots:2"), "{out}");
        assert_eq!(out.matches("nameserver").count(), 1, "{out}");
        let bs = assert_no_ports(&t);
        t.assert_clean();
        bs
    };
    assert_links_gone(&bs);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn containers_on_a_user_network_resolve_each_other_by_name_alias_and_short_id() {
    let bs = {
        let t = TestRoot::new();
        t.busybox_image("bb");
        ok(&t, &["network", "create", "appnet"]);
        let db = ok(
            &t,
            &[
                "run",
                "-d",
                "--name",
                "db",
                "--network",
                "appnet",
                "--network-alias",
                "database",
                "bb",
                "sleep",
                "100",
            ],
        );
        let db = db.trim().to_owned();
        let ip = ip_of(&t, "db", "appnet");
        assert!(ip.parse::<IpAddr>().is_ok(), "{ip}");
        for name in ["db", "database", &db[..12]] {
            let out = ok(
                &t,
                &["run", "--rm", "--network", "appnet", "bb", "nslookup", name],
            );
            assert!(out.contains(&ip), "{name} → {out}");
        }
        // /etc/resolv.conf points at the network's server; /etc/hosts holds the own address.
        let out = ok(
            &t,
            &[
                "run",
                "--rm",
                "--network",
                "appnet",
                "--hostname",
                "me",
                "bb",
                "cat",
                "/etc/resolv.conf",
                "/etc/hosts",
            ],
        );
        let gw = inspect(&t, "db")["NetworkSettings"]["Networks"]["appnet"]["Gateway"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(out.contains(&format!("nameserver {gw}")), "{out}");
        assert!(out.lines().any(|l| l.ends_with("\tme")), "{out}");
        // A restart with another address resolves to the new one.
        ok(&t, &["stop", "-t", "1", "db"]);
        let filler = ok(
            &t,
            &["run", "-d", "--network", "appnet", "bb", "sleep", "100"],
        );
        ok(&t, &["start", "db"]);
        let ip2 = ip_of(&t, "db", "appnet");
        assert_ne!(ip, ip2, "the restart took another address");
        let t0 = Instant::now();
        let out = ok(
            &t,
            &["run", "--rm", "--network", "appnet", "bb", "nslookup", "db"],
        );
        assert!(out.contains(&ip2), "{out}");
        assert!(t0.elapsed() < Duration::from_secs(5));
        // In use: the error names the containers, and nothing changes.
        let o = run(&t, &["network", "rm", "appnet"]);
        assert_ne!(o.status.code(), Some(0));
        assert!(stderr(&o).contains("db"), "{}", stderr(&o));
        ok(&t, &["rm", "-f", "db", filler.trim()]);
        ok(&t, &["network", "rm", "appnet"]);
        t.assert_clean();
        assert_no_ports(&t)
    };
    assert_links_gone(&bs);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn links_add_hosts_entries_and_dockers_variables() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    ok(
        &t,
        &[
            "run",
            "-d",
            "--name",
            "mongo",
            "--expose",
            "27017",
            "-e",
            "MONGO_VERSION=7",
            "bb",
            "sleep",
            "100",
        ],
    );
    let ip = ip_of(&t, "mongo", "bridge");
    let out = ok(
        &t,
        &[
            "run",
            "--rm",
            "--name",
            "strider",
            "--link",
            "mongo:db",
            "bb",
            "sh",
            "-c",
            "env; cat /etc/hosts",
        ],
    );
    for want in [
        format!("DB_PORT_27017_TCP_ADDR={ip}"),
        "DB_PORT_27017_TCP_PORT=27017".into(),
        "DB_PORT_27017_TCP_PROTO=tcp".into(),
        format!("DB_PORT_27017_TCP=tcp://{ip}:27017"),
        format!("DB_PORT=tcp://{ip}:27017"),
        "DB_NAME=/strider/db".into(),
        "DB_ENV_MONGO_VERSION=7".into(),
    ] {
        assert!(out.lines().any(|l| l == want), "{want} missing in\n{out}");
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with(&format!("{ip}\t")) && l.split_whitespace().any(|w| w == "db")),
        "{out}"
    );
    let o = run(&t, &["run", "--rm", "--link", "nosuch:db", "bb", "true"]);
    assert_eq!(o.status.code(), Some(125));
    ok(&t, &["rm", "-f", "mongo"]);
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn networks_are_isolated_and_icc_off_isolates_within_one() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    ok(&t, &["network", "create", "a"]);
    ok(&t, &["network", "create", "b"]);
    ok(
        &t,
        &[
            "network",
            "create",
            "-o",
            "com.docker.network.bridge.enable_icc=false",
            "quiet",
        ],
    );
    ok(
        &t,
        &[
            "run",
            "-d",
            "--name",
            "srv",
            "--network",
            "a",
            "bb",
            "sh",
            "-c",
            HTTPD,
        ],
    );
    ok(
        &t,
        &[
            "run",
            "-d",
            "--name",
            "qsrv",
            "--network",
            "quiet",
            "bb",
            "sh",
            "-c",
            HTTPD,
        ],
    );
    let srv = ip_of(&t, "srv", "a");
    let qsrv = ip_of(&t, "qsrv", "quiet");
    let get = |net: &str, ip: &str| {
        let script = format!("timeout 3 wget -q -O - http://{ip}/ || exit 1");
        run(
            &t,
            &["run", "--rm", "--network", net, "bb", "sh", "-c", &script],
        )
    };
    // Same network: reachable (retrying while httpd starts).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = get("a", &srv);
        if o.status.success() {
            assert_eq!(stdout(&o), "hello-from-httpd\n");
            break;
        }
        assert!(Instant::now() < deadline, "{}", stderr(&o));
    }
    assert!(!get("b", &srv).status.success(), "b reached a");
    assert!(
        !get("bridge", &srv).status.success(),
        "the default network reached a"
    );
    assert!(
        !get("quiet", &qsrv).status.success(),
        "icc=false let a neighbour in"
    );
    ok(&t, &["rm", "-f", "srv", "qsrv"]);
    for n in ["a", "b", "quiet"] {
        ok(&t, &["network", "rm", n]);
    }
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn containers_reach_the_host_and_internal_networks_do_not() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let host = berth_testkit::host_ip();
    let l = TcpListener::bind((host, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        // Answers one connection: the container's.
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 8\r\n\r\nfromhost");
    });
    let url = format!("http://{host}:{port}/");
    let out = ok(&t, &["run", "--rm", "bb", "wget", "-q", "-O", "-", &url]);
    assert_eq!(out, "fromhost");
    server.join().unwrap();
    ok(&t, &["network", "create", "--internal", "sealed"]);
    let o = run(
        &t,
        &[
            "run",
            "--rm",
            "--network",
            "sealed",
            "bb",
            "sh",
            "-c",
            &format!("timeout 3 wget -q -O - {url} || exit 1"),
        ],
    );
    assert!(
        !o.status.success(),
        "an internal network reached the host: {}",
        stdout(&o)
    );
    let routes = ok(
        &t,
        &["run", "--rm", "--network", "sealed", "bb", "ip", "route"],
    );
    assert!(!routes.contains("default"), "{routes}");
    ok(&t, &["network", "rm", "sealed"]);
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn fifty_concurrent_starts_get_fifty_addresses() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    ok(
        &t,
        &["network", "create", "--subnet", "10.213.0.0/24", "many"],
    );
    let ids: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..50)
            .map(|_| {
                s.spawn(|| {
                    ok(
                        &t,
                        &["run", "-d", "--network", "many", "bb", "sleep", "100"],
                    )
                    .trim()
                    .to_owned()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ips: Vec<String> = ids.iter().map(|id| ip_of(&t, id, "many")).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 50, "{ips:?}");
    let mut args = vec!["rm", "-f"];
    args.extend(ids.iter().map(String::as_str));
    ok(&t, &args);
    ok(&t, &["network", "rm", "many"]);
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn a_kill_9_during_start_or_rm_leaves_nothing_once_the_next_command_ran() {
    let bs = {
        let t = TestRoot::new();
        t.busybox_image("bb");
        ok(
            &t,
            &["network", "create", "--subnet", "10.214.0.0/29", "tiny"],
        );
        let port = berth_testkit::free_port();
        // Foreground runs killed at several points of their start.
        for delay_ms in [0u64, 5, 15, 40, 120] {
            let mut c = t
                .berth_std()
                .args([
                    "run",
                    "--rm",
                    "--network",
                    "tiny",
                    "-p",
                    &format!("{port}:80"),
                    "bb",
                    "sleep",
                    "100",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(delay_ms));
            let _ = c.kill();
            let _ = c.wait();
        }
        // A /29 has 5 addresses for containers: with the dead starts' addresses reclaimed, five
        // more starts fit, and the port is free again.
        let mut ids = Vec::new();
        for i in 0..5 {
            let mut args = vec!["run", "-d", "--network", "tiny"];
            let p = format!("{port}:80");
            if i == 0 {
                args.extend(["-p", p.as_str()]);
            }
            args.extend(["bb", "sleep", "100"]);
            ids.push(ok(&t, &args).trim().to_owned());
        }
        // A kill during rm.
        let mut c = t.berth_std().args(["rm", "-f", &ids[0]]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(10));
        let _ = c.kill();
        let _ = c.wait();
        let mut args = vec!["rm", "-f"];
        args.extend(ids.iter().map(String::as_str));
        let _ = run(&t, &args);
        // A foreground run killed after its create but before its start leaves a created
        // container (as a killed `docker run` client does): it holds nothing of the network.
        let left = ok(&t, &["ps", "-aq", "--filter", "status=created"]);
        for id in left.lines() {
            ok(&t, &["rm", id]);
        }
        ok(&t, &["network", "rm", "tiny"]);
        // A create killed before its state file existed leaves a directory no command lists (the
        // store sweeps it once it is 10 s old); what is listed is gone.
        assert_eq!(ok(&t, &["ps", "-aq"]), "");
        t.assert_clean();
        assert_no_ports(&t)
    };
    assert_links_gone(&bs);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn bad_network_input_is_a_clear_error_and_changes_nothing() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    ok(
        &t,
        &["network", "create", "--subnet", "10.215.0.0/24", "first"],
    );
    let listing = ok(&t, &["network", "ls"]);
    for (args, says) in [
        (
            &["network", "create", "--subnet", "10.215.0.128/25", "over"][..],
            "first",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.216.0.0/24",
                "--gateway",
                "10.9.9.9",
                "gw",
            ],
            "10.9.9.9",
        ),
        (&["network", "create", "first"], "first"),
        (
            &["network", "create", "--subnet", "nonsense", "x"],
            "nonsense",
        ),
        (
            &[
                "run",
                "--rm",
                "--network",
                "first",
                "--ip",
                "10.99.0.5",
                "bb",
                "true",
            ],
            "10.99.0.5",
        ),
        (
            &["run", "--rm", "--network", "nosuch", "bb", "true"],
            "nosuch",
        ),
        (&["run", "--rm", "-p", "99999:80", "bb", "true"], "99999"),
    ] {
        let o = run(&t, args);
        assert_eq!(o.status.code(), Some(125), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
    assert_eq!(ok(&t, &["network", "ls"]), listing);
    // A taken static address, and connecting twice.
    ok(
        &t,
        &[
            "run",
            "-d",
            "--name",
            "one",
            "--network",
            "first",
            "--ip",
            "10.215.0.9",
            "bb",
            "sleep",
            "100",
        ],
    );
    let o = run(
        &t,
        &[
            "run",
            "--rm",
            "--network",
            "first",
            "--ip",
            "10.215.0.9",
            "bb",
            "true",
        ],
    );
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("10.215.0.9"), "{}", stderr(&o));
    let o = run(&t, &["network", "connect", "first", "one"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("already"), "{}", stderr(&o));
    // connect/disconnect on a running container.
    ok(&t, &["network", "create", "second"]);
    ok(
        &t,
        &["network", "connect", "--alias", "uno", "second", "one"],
    );
    let links = ok(&t, &["exec", "one", "ip", "-o", "addr"]);
    assert!(links.contains("eth1"), "{links}");
    ok(&t, &["network", "disconnect", "second", "one"]);
    let links = ok(&t, &["exec", "one", "ip", "-o", "link"]);
    assert!(!links.contains("eth1"), "{links}");
    ok(&t, &["rm", "-f", "one"]);
    ok(&t, &["network", "rm", "first", "second"]);
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn network_ls_inspect_and_prune_print_dockers_shapes() {
    let t = TestRoot::new();
    ok(
        &t,
        &[
            "network",
            "create",
            "--label",
            "team=a",
            "--subnet",
            "10.217.0.0/24",
            "--gateway",
            "10.217.0.254",
            "lab",
        ],
    );
    let ls = ok(&t, &["network", "ls"]);
    let mut lines = ls.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]);
    let names: Vec<&str> = lines
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(names, ["bridge", "lab"]);
    assert_eq!(
        ok(
            &t,
            &[
                "network",
                "ls",
                "--filter",
                "label=team=a",
                "--format",
                "{{.Name}}"
            ]
        ),
        "lab\n"
    );
    assert_eq!(
        ok(
            &t,
            &[
                "network",
                "ls",
                "-f",
                "type=builtin",
                "--format",
                "{{.Name}}"
            ]
        ),
        "bridge\n"
    );
    let v: serde_json::Value =
        serde_json::from_str(&ok(&t, &["network", "inspect", "lab"])).unwrap();
    assert_eq!(v[0]["Name"], "lab");
    assert_eq!(v[0]["Driver"], "bridge");
    assert_eq!(v[0]["IPAM"]["Config"][0]["Subnet"], "10.217.0.0/24");
    assert_eq!(v[0]["IPAM"]["Config"][0]["Gateway"], "10.217.0.254");
    assert_eq!(v[0]["Labels"]["team"], "a");
    assert_eq!(
        ok(&t, &["network", "inspect", "-f", "{{.Name}}", "bridge"]),
        "bridge\n"
    );
    assert_eq!(
        ok(&t, &["network", "prune", "-f"]),
        "Deleted Networks:\nlab\n"
    );
    assert_eq!(bridges(&t).len(), 1);
    let o = run(&t, &["network", "rm", "bridge"]);
    assert_ne!(o.status.code(), Some(0));
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn publish_all_ranges_mac_host_gateway_and_a_shared_namespace() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    // -P publishes every exposed port on a port of the kernel's choosing; a range maps one to one.
    let a = berth_testkit::free_port();
    let range = format!("127.0.0.1:{a}-{}:8000-8001", a + 1);
    ok(
        &t,
        &[
            "run",
            "-d",
            "--name",
            "many",
            "--expose",
            "7000",
            "-P",
            "-p",
            &range,
            "--mac-address",
            "02:42:0a:de:ad:01",
            "--add-host",
            "gw:host-gateway",
            "bb",
            "sleep",
            "100",
        ],
    );
    let ports = ok(&t, &["port", "many"]);
    assert!(
        ports.lines().any(|l| l.starts_with("7000/tcp -> 0.0.0.0:")),
        "{ports}"
    );
    assert!(
        ports.contains(&format!("8000/tcp -> 127.0.0.1:{a}")),
        "{ports}"
    );
    assert!(
        ports.contains(&format!("8001/tcp -> 127.0.0.1:{}", a + 1)),
        "{ports}"
    );
    let v = inspect(&t, "many");
    let net = &v["NetworkSettings"]["Networks"]["bridge"];
    assert_eq!(net["MacAddress"], "02:42:0a:de:ad:01");
    let inside = ok(
        &t,
        &[
            "exec",
            "many",
            "cat",
            "/sys/class/net/eth0/address",
            "/etc/hosts",
        ],
    );
    assert!(inside.starts_with("02:42:0a:de:ad:01\n"), "{inside}");
    let gw = net["Gateway"].as_str().unwrap();
    assert!(inside.lines().any(|l| l == format!("{gw}\tgw")), "{inside}");
    // container:NAME shares the namespace: the same eth0 and address.
    let addr = net["IPAddress"].as_str().unwrap().to_owned();
    let shared = ok(
        &t,
        &[
            "run",
            "--rm",
            "--network",
            "container:many",
            "bb",
            "ip",
            "-o",
            "-4",
            "addr",
            "show",
            "eth0",
        ],
    );
    assert!(shared.contains(&addr), "{shared}");
    ok(&t, &["rm", "-f", "many"]);
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn a_bridge_deleted_behind_berths_back_is_made_again_at_the_next_start() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    ok(&t, &["run", "--rm", "bb", "true"]);
    let bs = bridges(&t);
    assert_eq!(bs.len(), 1);
    let nl = berth_net::link::Netlink::new().unwrap();
    nl.remove_bridge(&bs[0]).unwrap();
    assert!(!link_exists(&bs[0]));
    let out = ok(
        &t,
        &[
            "run", "--rm", "bb", "ip", "-o", "-4", "addr", "show", "eth0",
        ],
    );
    assert!(out.contains("eth0"), "{out}");
    assert!(link_exists(&bs[0]));
}
