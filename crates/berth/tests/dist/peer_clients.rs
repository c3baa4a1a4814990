//! Real registry clients against `berth registry serve`: `../shared/conformance/registry-clients.sh`
//! drives skopeo, crane and podman through pushes, pulls, tags, copies and deletes, once on local disk
//! and once on an S3 bucket (moto, started by scripts/s3.sh). Its tools are installed by
//! scripts/registry-deps.sh, which scripts/test.sh runs first.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A moto server stopped on drop.
struct Moto(u16);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo_root().join("scripts/s3.sh"))
            .args(["stop", &self.0.to_string()])
            .status();
    }
}

/// Starts the registry and waits for its "listening on" line.
fn serve(args: &[&str]) -> (Killed, u16) {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["registry", "serve", "--addr", &format!("127.0.0.1:{port}")])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("BERTH_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start berth registry serve");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.starts_with("listening on") => break,
            Some(Ok(l)) => seen.push_str(&l),
            _ => panic!("registry did not start: {seen}"),
        }
    }
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Killed(child), port)
}

fn run_clients(port: u16) {
    let script = repo_root().join("../shared/conformance/registry-clients.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .expect("run registry-clients.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    let summary = text
        .lines()
        .find(|l| l.starts_with("registry-clients:"))
        .unwrap_or("no summary line");
    assert_eq!(
        summary,
        "registry-clients: 20 passed, 0 failed, 0 skipped",
        "\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "peers tier: needs podman, skopeo, crane, distribution"
)]
fn skopeo_crane_and_podman_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = serve(&["--storage", dir.path().to_str().unwrap()]);
    run_clients(port);
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "peers tier: needs podman, skopeo, crane, distribution"
)]
fn skopeo_crane_and_podman_on_s3() {
    let s3port = free_port();
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/s3.sh"))
        .args(["start", &s3port.to_string(), "clients"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _moto = Moto(s3port);
    let endpoint = format!("http://127.0.0.1:{s3port}");
    let (_server, port) = serve(&[
        "--storage",
        "s3://clients/registry",
        "--s3-endpoint",
        &endpoint,
    ]);
    run_clients(port);
}
