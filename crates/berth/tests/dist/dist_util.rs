//! Harness for the pull/push end-to-end tests: a berth environment per test (state root, a HOME and
//! a registries.toml of its own, so credentials never touch the machine's), test images built as
//! OCI layouts from busybox, distribution 2.8 (`../shared/conformance/docker-registry.sh`), podman
//! with its own storage, a throttling TCP proxy, and listings of a state root to prove that a
//! failed command left nothing visible.
#![allow(dead_code)]

use crate::common::TestRoot;
use crate::registry_util::{Finished, S3, free_port, repo_root};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How long one berth command may take before the test calls it hung.
pub const LIMIT: Duration = Duration::from_secs(300);

pub use berth_testkit::digest as sha256;

/// One test's berth: a state root, and a HOME whose registries.toml names its own credentials
/// file and Docker config directory.
pub struct Env {
    /// State and run roots.
    pub t: TestRoot,
    /// HOME, the credentials file and registries.toml live here.
    pub home: tempfile::TempDir,
}

impl Env {
    /// A fresh environment.
    pub fn new() -> Env {
        let t = TestRoot::new();
        let home = tempfile::tempdir().expect("temp home");
        let env = Env { t, home };
        std::fs::write(
            env.conf(),
            format!(
                "auth_file = \"{}\"\ndocker_config_dir = \"{}\"\n",
                env.auth_file().display(),
                env.home.path().join("docker").display()
            ),
        )
        .expect("write registries.toml");
        env
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        self.t.root()
    }

    /// Its registries.toml.
    pub fn conf(&self) -> PathBuf {
        self.home.path().join("registries.toml")
    }

    /// Where `berth login` stores credentials.
    pub fn auth_file(&self) -> PathBuf {
        self.home.path().join("auth.json")
    }

    /// `berth --root … --run-root …` with this environment's HOME and registries.toml.
    pub fn cmd(&self) -> Command {
        let mut c = self.t.berth_std();
        c.env("HOME", self.home.path())
            .env("BERTH_REGISTRIES_CONF", self.conf())
            .env_remove("DOCKER_CONFIG")
            .stdin(Stdio::null());
        c
    }

    /// Runs `berth ARGS` to its end.
    pub fn run(&self, args: &[&str]) -> Finished {
        let mut c = self.cmd();
        c.args(args);
        crate::registry_util::run_limited(c, LIMIT)
            .unwrap_or_else(|e| panic!("berth {args:?}: {e:#}"))
    }

    /// Runs `berth ARGS` and asserts it succeeded.
    pub fn ok(&self, args: &[&str]) -> Finished {
        let f = self.run(args);
        assert_eq!(
            f.code,
            Some(0),
            "berth {args:?} failed:\nstdout:\n{}\nstderr:\n{}",
            f.stdout,
            f.stderr
        );
        f
    }

    /// Runs `berth ARGS` and asserts it failed as berth itself does: exit 125 and one
    /// `berth: …` message. Returns the message.
    pub fn fails(&self, args: &[&str]) -> String {
        let f = self.run(args);
        assert_eq!(
            f.code,
            Some(125),
            "berth {args:?} should fail with 125:\nstdout:\n{}\nstderr:\n{}",
            f.stdout,
            f.stderr
        );
        f.stderr
            .lines()
            .find_map(|l| l.strip_prefix("berth: "))
            .unwrap_or_else(|| panic!("no `berth: ` message on stderr:\n{}", f.stderr))
            .to_owned()
    }

    /// Loads an OCI archive and names the image `name`.
    pub fn load(&self, img: &TestImage, name: &str) {
        self.ok(&["load", "-q", "-i", img.archive.to_str().unwrap()]);
        self.ok(&["tag", &img.name, name]);
    }

    /// Image ids (config digests) in the store, by every name they have.
    pub fn images(&self) -> Vec<String> {
        let out = self
            .ok(&["images", "--no-trunc", "--format", "json"])
            .stdout;
        let mut v: Vec<String> = out
            .lines()
            .map(|l| {
                let j: serde_json::Value = serde_json::from_str(l).expect("images json");
                format!("{}:{} {}", j["Repository"], j["Tag"], j["ID"])
            })
            .collect();
        v.sort();
        v
    }

    /// What a user of the store can see: every path under the root with its kind and (for
    /// files) size and digest, leaving out lock files, unfinished downloads (`ingest/`) and the
    /// metadata database's bytes (an open rewrites it); and the image list.
    pub fn listing(&self) -> BTreeMap<String, String> {
        // The image list first: listing opens (and on first use lays out) the store.
        let images = self.images();
        let mut out = BTreeMap::new();
        list_dir(self.root(), self.root(), &mut out);
        for (i, l) in images.into_iter().enumerate() {
            out.insert(format!("<image {i}>"), l);
        }
        out
    }

    /// Asserts that every file under `blobs/sha256/` hashes to its name: nothing partial is
    /// visible.
    pub fn assert_blobs_verified(&self) {
        let dir = self.root().join("blobs/sha256");
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let data = std::fs::read(e.path()).expect("read blob");
            assert_eq!(
                sha256(&data),
                format!("sha256:{name}"),
                "blob {name} in the store does not hash to its name ({} bytes)",
                data.len()
            );
        }
    }
}

fn list_dir(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let name = e.file_name().to_string_lossy().into_owned();
        if rel == "ingest" || name.ends_with(".lock") || name == "lock" {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            out.insert(rel, "dir".into());
            list_dir(root, &p, out);
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&p).unwrap_or_default();
            out.insert(rel, format!("-> {}", target.display()));
        } else if rel == "meta.redb" {
            out.insert(rel, "db".into());
        } else {
            let data = std::fs::read(&p).unwrap_or_default();
            out.insert(rel, format!("{} {}", data.len(), sha256(&data)));
        }
    }
}

/// Lines of two listings that differ.
pub fn listing_diff(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> String {
    let mut s = String::new();
    for (k, v) in b {
        match a.get(k) {
            None => s.push_str(&format!("  added   {k}: {v}\n")),
            Some(x) if x != v => s.push_str(&format!("  changed {k}: {x} -> {v}\n")),
            _ => {}
        }
    }
    for k in a.keys() {
        if !b.contains_key(k) {
            s.push_str(&format!("  removed {k}\n"));
        }
    }
    s
}

/// An OCI image layout (directory and tar archive) built for a test.
pub use berth_testkit::image::OciImage as TestImage;

/// A layer to put in a test image.
pub enum LayerSpec<'a> {
    /// The busybox root filesystem, gzip-compressed.
    Busybox,
    /// Files (path, contents), as an uncompressed tar.
    Files(&'a [(&'a str, &'a [u8])]),
}

/// Builds an image named `name` (a full reference, e.g. `localhost/test/app:1`) with `layers`;
/// its command is `sh`.
pub fn make_image(name: &str, layers: &[LayerSpec]) -> TestImage {
    use berth_testkit::image::{Compression, busybox_layer, layer, oci_image};
    let layers: Vec<_> = layers
        .iter()
        .map(|l| match l {
            LayerSpec::Busybox => busybox_layer(),
            LayerSpec::Files(files) => layer(files, Compression::None),
        })
        .collect();
    oci_image(name, &layers)
}

/// busybox plus a layer holding `/hello.txt` = `hello from LABEL`: two layers, one gzip, one
/// plain.
pub fn busybox_image(name: &str, label: &str) -> TestImage {
    let text = format!("hello from {label}\n");
    make_image(
        name,
        &[
            LayerSpec::Busybox,
            LayerSpec::Files(&[("hello.txt", text.as_bytes())]),
        ],
    )
}

/// Debian's docker-registry (distribution 2.8) on a free port, through
/// `../shared/conformance/docker-registry.sh`; stopped and its data removed on drop.
pub struct Distribution {
    /// Its port.
    pub port: u16,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The S3 server, in s3 mode.
    s3: Option<Arc<S3>>,
}

fn docker_registry_sh() -> PathBuf {
    repo_root().join("../shared/conformance/docker-registry.sh")
}

impl Distribution {
    /// Starts it storing on local disk (`None`) or in a bucket of `s3`.
    pub fn start(s3: Option<Arc<S3>>) -> Distribution {
        let port = free_port();
        let mut cmd = Command::new("bash");
        cmd.arg(docker_registry_sh()).args([
            "start",
            &port.to_string(),
            if s3.is_some() { "s3" } else { "fs" },
        ]);
        if let Some(s) = &s3 {
            cmd.env("S3_PORT", s.port.to_string())
                .env("S3_BUCKET", &s.bucket);
        }
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .expect("run docker-registry.sh");
        let d = Distribution {
            port,
            addr: format!("127.0.0.1:{port}"),
            s3,
        };
        assert!(
            out.status.success(),
            "docker-registry.sh start {port} failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(d.dir().join("log")).unwrap_or_default()
        );
        d
    }

    /// The script's directory for this port (config, log, data).
    pub fn dir(&self) -> PathBuf {
        PathBuf::from(format!("/opt/conformance/registry-{}", self.port))
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(docker_registry_sh())
            .args(["stop", &self.port.to_string()])
            .stdin(Stdio::null())
            .output();
        std::thread::sleep(Duration::from_millis(100));
        let _ = std::fs::remove_dir_all(self.dir());
        let _ = self.s3.take();
    }
}

/// Podman with storage of its own (`--root`, `--runroot` in a temp dir); reset on drop so no
/// overlay mount is left.
pub struct Podman {
    dir: tempfile::TempDir,
    /// The run root: podman wants it shorter than 50 characters, so it lives under /tmp.
    run: tempfile::TempDir,
}

impl Podman {
    /// A fresh, empty podman store.
    pub fn new() -> Podman {
        Podman {
            dir: tempfile::Builder::new()
                .prefix("podman-")
                .tempdir_in(crate::common::scratch_dir())
                .expect("temp dir"),
            run: tempfile::Builder::new()
                .prefix("pr-")
                .tempdir_in("/tmp")
                .expect("temp dir"),
        }
    }

    /// `podman --root … --runroot … ARGS`, output whatever the exit code.
    pub fn run(&self, args: &[&str]) -> Finished {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(self.dir.path().join("root"))
            .arg("--runroot")
            .arg(self.run.path())
            .args(["--storage-driver", "overlay"])
            .args(args)
            .stdin(Stdio::null());
        crate::registry_util::run_limited(c, LIMIT)
            .unwrap_or_else(|e| panic!("podman {args:?}: {e:#}"))
    }

    /// The same, asserting success.
    pub fn ok(&self, args: &[&str]) -> Finished {
        let f = self.run(args);
        assert_eq!(
            f.code,
            Some(0),
            "podman {args:?} failed:\n{}\n{}",
            f.stdout,
            f.stderr
        );
        f
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["system", "reset", "-f"]);
        // Whatever reset left mounted under the temp dirs.
        let prefixes = [
            self.dir.path().to_string_lossy().into_owned(),
            self.run.path().to_string_lossy().into_owned(),
        ];
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut left: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| prefixes.iter().any(|p| m.starts_with(p.as_str())))
            .collect();
        left.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in left {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

/// `skopeo copy` with plain HTTP on the destination; asserts success.
pub fn skopeo_copy(src: &str, dest: &str) {
    let mut c = Command::new("skopeo");
    c.args([
        "copy",
        "--dest-tls-verify=false",
        "--src-tls-verify=false",
        src,
        dest,
    ])
    .stdin(Stdio::null());
    let f = crate::registry_util::run_limited(c, LIMIT).expect("run skopeo");
    assert_eq!(
        f.code,
        Some(0),
        "skopeo copy {src} {dest} failed:\n{}\n{}",
        f.stdout,
        f.stderr
    );
}

/// A TCP proxy on 127.0.0.1 to `upstream`; while `slow` is set, what the upstream sends back
/// goes out at about `bytes_per_sec` per connection.
pub struct Throttle {
    /// `127.0.0.1:PORT` of the proxy.
    pub addr: String,
    /// Whether replies are throttled.
    pub slow: Arc<AtomicBool>,
    /// Bytes sent back to clients so far.
    pub sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Throttle {
    /// Starts forwarding to `upstream`.
    pub fn start(upstream: &str, bytes_per_sec: u64) -> Throttle {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().unwrap().to_string();
        let slow = Arc::new(AtomicBool::new(true));
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_owned();
        let (slow2, sent2, stop2) = (slow.clone(), sent.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                // Requests go up as they come.
                std::thread::spawn(move || pipe(c2, s2, None));
                let limit = (slow2.clone(), sent2.clone(), bytes_per_sec);
                std::thread::spawn(move || pipe(server, client, Some(limit)));
            }
        });
        Throttle {
            addr,
            slow,
            sent,
            stop,
        }
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(&self.addr);
    }
}

fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    limit: Option<(Arc<AtomicBool>, Arc<AtomicU64>, u64)>,
) {
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        if let Some((slow, sent, rate)) = &limit {
            sent.fetch_add(n as u64, Ordering::Relaxed);
            if slow.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs_f64(n as f64 / *rate as f64));
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

/// The JSON events of a `--progress json` run.
pub fn events(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event {l:?}: {e}")))
        .collect()
}

/// The lines of `out` that start with the 12-digit short id of `digest`.
pub fn layer_lines<'a>(out: &'a str, digest: &str) -> Vec<&'a str> {
    let short = &digest.trim_start_matches("sha256:")[..12];
    out.lines().filter(|l| l.starts_with(short)).collect()
}
