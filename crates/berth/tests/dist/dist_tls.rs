//! Which registries berth speaks plain HTTP to: a registry on this machine's non-loopback address is
//! secure by default (HTTPS, so a plain-HTTP server is refused), reachable with `--tls-verify=false`
//! or `--insecure` for one command, or for every command once registries.toml lists it; and a named
//! registries.toml that is missing or wrong is an error, not silently the defaults.

use crate::dist_util::{Env, busybox_image};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

/// This machine's first non-loopback IPv4 address.
fn host_ip() -> String {
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .expect("run hostname -I");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .expect("this test needs a non-loopback IPv4 address on the machine")
        .to_owned()
}

/// `berth registry serve` on `ip`, port chosen by the kernel; killed on drop.
struct Served {
    child: std::process::Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Served {
    fn start(ip: &str) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let mut child = crate::registry_util::berth()
            .args([
                "registry",
                "serve",
                "--addr",
                &format!("{ip}:0"),
                "--storage",
            ])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth registry serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Log lines come first: take the sender only for the address line.
                if let Some(a) = line.trim().strip_prefix("listening on ")
                    && let Some(t) = tx.take()
                {
                    let _ = t.send(a.trim().to_owned());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(e) => {
                // Not yet owned by a `Served`, so nothing else would stop it.
                let _ = child.kill();
                let _ = child.wait();
                panic!("the registry did not print its address: {e}");
            }
        };
        Served {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn plain_http_only_where_allowed() {
    let reg = Served::start(&host_ip());
    let img = busybox_image("localhost/test/tls:1", "tls");
    let name = format!("{}/team/app:1", reg.addr);

    let env = Env::new();
    env.load(&img, &name);
    let msg = env.fails(&["push", &name]);
    assert!(msg.contains(&reg.addr), "{msg}");
    env.ok(&["push", "--tls-verify=false", &name]);

    let env2 = Env::new();
    let before = env2.listing();
    let msg = env2.fails(&["pull", &name]);
    assert!(msg.contains(&reg.addr), "{msg}");
    assert_eq!(crate::dist_util::listing_diff(&before, &env2.listing()), "");
    env2.ok(&["pull", "--insecure", &name]);

    // Listed in registries.toml: every command may use plain HTTP there.
    let env3 = Env::new();
    let mut conf = std::fs::read_to_string(env3.conf()).unwrap();
    conf.push_str(&format!("insecure = [\"{}\"]\n", reg.addr));
    std::fs::write(env3.conf(), conf).unwrap();
    env3.ok(&["pull", &name]);
    assert_eq!(
        env3.ok(&["run", "--rm", &name, "cat", "/hello.txt"]).stdout,
        "hello from tls\n"
    );
    env3.t.assert_clean();

    // The global flag wins over the environment; a named file that is missing or wrong is an error.
    let missing = env3.home.path().join("nope.toml");
    let msg = env3.fails(&[
        "--registries-conf",
        missing.to_str().unwrap(),
        "pull",
        &name,
    ]);
    assert!(msg.contains("nope.toml"), "{msg}");
    let bad = env3.home.path().join("bad.toml");
    std::fs::write(&bad, "max_concurrent_downloads = 0\n").unwrap();
    let msg = env3.fails(&["--registries-conf", bad.to_str().unwrap(), "pull", &name]);
    assert!(
        msg.contains("bad.toml") && msg.contains("max_concurrent_downloads"),
        "{msg}"
    );
}
