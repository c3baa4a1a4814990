//! Harness for the registry's end-to-end tests: `berth registry serve` processes (killed on drop),
//! a moto S3 server per test (through `scripts/s3.sh`), a blocking distribution-API client, a raw
//! HTTP/1.1 client for requests `reqwest` would normalise, and snapshots of the storage's objects
//! (on disk, or listed straight from moto) to prove that a refused request changed nothing.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};

pub use berth_testkit::image::{OCI_INDEX, OCI_MANIFEST};
pub use berth_testkit::s3::S3;
pub use berth_testkit::{digest, free_port, random_bytes, repo_root};

/// Where a test's registries keep their data.
pub enum Store {
    /// A temporary directory.
    Local(tempfile::TempDir),
    /// A prefix of a moto bucket.
    S3 {
        /// The server (shared by every store on it).
        s3: Arc<S3>,
        /// The prefix inside the bucket, without slashes around it.
        prefix: String,
    },
}

impl Store {
    /// A fresh temporary directory.
    pub fn local() -> Store {
        Store::Local(tempfile::tempdir().expect("temp dir"))
    }

    /// A prefix of a moto bucket.
    pub fn s3(s3: &Arc<S3>, prefix: &str) -> Store {
        Store::S3 {
            s3: s3.clone(),
            prefix: prefix.trim_matches('/').to_string(),
        }
    }

    /// The directory, for a local store.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Store::Local(d) => Some(d.path()),
            Store::S3 { .. } => None,
        }
    }

    /// The `--storage` (and `--s3-endpoint`) arguments naming this store.
    pub fn args(&self) -> Vec<String> {
        match self {
            Store::Local(d) => vec!["--storage".into(), d.path().display().to_string()],
            Store::S3 { s3, prefix } => vec![
                "--storage".into(),
                format!("s3://{}/{prefix}", s3.bucket),
                "--s3-endpoint".into(),
                s3.endpoint(),
            ],
        }
    }

    /// Every object's key (relative to the storage root) and bytes.
    pub fn objects(&self) -> Result<Vec<(String, Vec<u8>)>> {
        match self {
            Store::Local(d) => {
                let mut out = Vec::new();
                walk(d.path(), d.path(), &mut out)?;
                out.sort();
                Ok(out)
            }
            Store::S3 { s3, prefix } => {
                let mut out = Vec::new();
                for key in s3.keys(&format!("{prefix}/")) {
                    // Deleted between the listing and now: not there.
                    let Some(body) = s3.get(&key) else { continue };
                    let rel = key
                        .strip_prefix(&format!("{prefix}/"))
                        .unwrap_or(&key)
                        .to_string();
                    out.push((rel, body));
                }
                out.sort();
                Ok(out)
            }
        }
    }

    /// A snapshot of the storage: key → (size, digest), leaving out `.tmp/` and `events/`, and
    /// `uploads/` unless `with_uploads`.
    pub fn snapshot(&self, with_uploads: bool) -> BTreeMap<String, (usize, String)> {
        self.objects()
            .expect("list storage objects")
            .into_iter()
            .filter(|(k, _)| {
                !k.starts_with(".tmp/")
                    && !k.starts_with("events/")
                    && (with_uploads || !k.starts_with("uploads/"))
            })
            .map(|(k, v)| (k, (v.len(), digest(&v))))
            .collect()
    }

    /// Checks that every object under `blobs/sha256/` has the digest its name says.
    pub fn check_blobs(&self) -> Result<usize> {
        let mut n = 0;
        for (key, data) in self.objects()? {
            let Some(hex) = key.strip_prefix("blobs/sha256/") else {
                continue;
            };
            ensure!(
                digest(&data) == format!("sha256:{hex}"),
                "{key} holds {} bytes whose digest is {}: a partial or corrupt blob is visible",
                data.len(),
                digest(&data)
            );
            n += 1;
        }
        Ok(n)
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("read dir {}", dir.display()))? {
        let e = e?;
        let p = e.path();
        let t = e.file_type()?;
        if t.is_dir() {
            walk(root, &p, out)?;
        } else if t.is_file() {
            let rel = p.strip_prefix(root)?.to_string_lossy().into_owned();
            let data = std::fs::read(&p).with_context(|| format!("read {}", p.display()))?;
            out.push((rel, data));
        }
    }
    Ok(())
}

/// What differs between two snapshots, one line per key; empty when equal.
pub fn snapshot_diff(
    before: &BTreeMap<String, (usize, String)>,
    after: &BTreeMap<String, (usize, String)>,
) -> String {
    let mut out = String::new();
    for (k, v) in after {
        match before.get(k) {
            None => out.push_str(&format!("  added   {k} ({} bytes)\n", v.0)),
            Some(b) if b != v => out.push_str(&format!("  changed {k}\n")),
            Some(_) => {}
        }
    }
    for k in before.keys() {
        if !after.contains_key(k) {
            out.push_str(&format!("  removed {k}\n"));
        }
    }
    out
}

/// A running `berth registry serve`; SIGKILLed and reaped on drop.
pub struct Registry {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    log: Arc<Mutex<String>>,
}

impl Registry {
    /// Starts `berth registry serve` on a free port of 127.0.0.1 over a store, with extra flags;
    /// returns once it prints `listening on ADDR`.
    pub fn start(store: &Store, extra: &[&str]) -> Registry {
        let mut cmd = serve_command(store, extra);
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth registry serve");
        let stderr = child.stderr.take().expect("stderr piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.trim().strip_prefix("listening on ")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr.trim().to_string());
                }
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let mut reg = Registry {
            child: Some(child),
            addr: String::new(),
            base: String::new(),
            log,
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => {
                reg.base = format!("http://{addr}");
                reg.addr = addr;
                reg
            }
            Err(_) => {
                reg.kill9();
                panic!(
                    "berth registry serve did not print `listening on ADDR`; its stderr:\n{}",
                    reg.log()
                );
            }
        }
    }

    /// Everything it wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGKILLs it and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The `berth registry serve` command over a store (port 0: the kernel picks one), with the
/// environment moto needs.
pub fn serve_command(store: &Store, extra: &[&str]) -> Command {
    let mut cmd = berth();
    cmd.args(["registry", "serve", "--addr", "127.0.0.1:0"])
        .args(store.args())
        .args(extra);
    cmd
}

/// A `berth` command with S3 credentials for moto in its environment and no inherited stdin.
pub fn berth() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null());
    cmd
}

/// The output of a command that must end within `limit` (it is SIGKILLed and reported otherwise).
pub struct Finished {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

/// Runs a command to its end, killing it after `limit`.
pub fn run_limited(mut cmd: Command, limit: Duration) -> Result<Finished> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawn")?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = t_err.join().unwrap_or_default();
            bail!("still running after {limit:?} (killed); stderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Finished {
        code: status.code(),
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    })
}

/// The path and query of a Location header (absolute or not), so it can be sent to any instance.
pub fn location_path(loc: &str) -> String {
    if let Some(rest) = loc
        .strip_prefix("http://")
        .or_else(|| loc.strip_prefix("https://"))
    {
        match rest.find('/') {
            Some(i) => rest[i..].to_string(),
            None => "/".into(),
        }
    } else {
        loc.to_string()
    }
}

/// Appends a query parameter to a path that may already have a query.
pub fn with_query(path: &str, kv: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{kv}")
}

/// The `code` of every error in a spec error body.
pub fn error_codes(body: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    v["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["code"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A blocking client of the distribution API.
#[derive(Clone)]
pub struct Api {
    /// The HTTP client.
    pub http: reqwest::blocking::Client,
}

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers (lower-case names).
    pub headers: reqwest::header::HeaderMap,
    /// Body.
    pub body: Vec<u8>,
}

impl Reply {
    /// A header's value as text, if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// The spec error codes in the body.
    pub fn codes(&self) -> Vec<String> {
        error_codes(&self.body)
    }

    /// Status and body, for assertion messages.
    pub fn show(&self) -> String {
        format!(
            "{} {}",
            self.status,
            String::from_utf8_lossy(&self.body[..self.body.len().min(600)])
        )
    }
}

/// An image as pushed: its manifest digest and every blob it references with its bytes.
#[derive(Debug, Clone)]
pub struct Image {
    /// Repository.
    pub repo: String,
    /// Tag.
    pub tag: String,
    /// `sha256:…` of the manifest.
    pub digest: String,
    /// The manifest bytes.
    pub manifest: Vec<u8>,
    /// (digest, bytes) of the config and every layer.
    pub blobs: Vec<(String, Vec<u8>)>,
}

impl Default for Api {
    fn default() -> Self {
        Api::new()
    }
}

impl Api {
    /// A client with generous timeouts and no redirects to surprise anybody.
    pub fn new() -> Api {
        Api {
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .redirect(reqwest::redirect::Policy::limited(3))
                .build()
                .expect("http client"),
        }
    }

    /// Sends a request and reads the whole reply.
    pub fn send(&self, req: reqwest::blocking::RequestBuilder) -> Result<Reply> {
        let r = req.send()?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes()?.to_vec();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// A request to `base` + `path`.
    pub fn req(&self, method: &str, base: &str, path: &str) -> reqwest::blocking::RequestBuilder {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        self.http.request(m, format!("{base}{path}"))
    }

    /// POST an upload on `base`; returns the session's path (from Location).
    pub fn start_upload(&self, base: &str, repo: &str) -> Result<String> {
        let r = self.send(self.req("POST", base, &format!("/v2/{repo}/blobs/uploads/")))?;
        ensure!(r.status == 202, "POST upload on {base}: {}", r.show());
        let loc = r
            .header("location")
            .ok_or_else(|| anyhow!("POST upload on {base}: no Location"))?;
        Ok(location_path(&loc))
    }

    /// PATCHes one chunk at `offset` to the session at `path` on `base`; returns the new
    /// session path (Location) and checks the Range the server reports.
    pub fn patch(&self, base: &str, path: &str, offset: u64, data: &[u8]) -> Result<String> {
        let end = offset + data.len() as u64 - 1;
        let r = self.send(
            self.req("PATCH", base, path)
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("{offset}-{end}"))
                .body(data.to_vec()),
        )?;
        ensure!(
            r.status == 202,
            "PATCH {offset}-{end} on {base}: {}",
            r.show()
        );
        let range = r.header("range").unwrap_or_default();
        ensure!(
            range == format!("0-{end}"),
            "PATCH {offset}-{end} on {base}: Range {range:?}, expected 0-{end}"
        );
        let loc = r
            .header("location")
            .ok_or_else(|| anyhow!("PATCH on {base}: no Location"))?;
        Ok(location_path(&loc))
    }

    /// Closes the session at `path` on `base` with `?digest=` and an optional last chunk.
    pub fn finish(&self, base: &str, path: &str, d: &str, last: &[u8]) -> Result<()> {
        let r = self.send(
            self.req("PUT", base, &with_query(path, &format!("digest={d}")))
                .header("content-type", "application/octet-stream")
                .body(last.to_vec()),
        )?;
        ensure!(r.status == 201, "PUT ?digest={d} on {base}: {}", r.show());
        let got = r.header("docker-content-digest");
        ensure!(
            got.as_deref() == Some(d),
            "PUT ?digest={d} on {base}: Docker-Content-Digest {got:?}"
        );
        Ok(())
    }

    /// The current offset of an upload session (from GET status: 204 with `Range: 0-END`).
    pub fn upload_offset(&self, base: &str, path: &str) -> Result<u64> {
        let r = self.send(self.req("GET", base, path))?;
        ensure!(r.status == 204, "GET upload status on {base}: {}", r.show());
        let range = r
            .header("range")
            .ok_or_else(|| anyhow!("GET upload status: no Range"))?;
        parse_range_end(&range)
            .map(|end| end + 1)
            .ok_or_else(|| anyhow!("GET upload status: bad Range {range:?}"))
    }

    /// Whether repository `repo` on `base` serves blob `d`.
    pub fn blob_exists(&self, base: &str, repo: &str, d: &str) -> Result<bool> {
        let r = self.send(self.req("HEAD", base, &format!("/v2/{repo}/blobs/{d}")))?;
        match r.status {
            200 => Ok(true),
            404 => Ok(false),
            s => bail!("HEAD blob {d} on {base}: {s}"),
        }
    }

    /// Pushes a blob: HEAD first (skipping it if present), then POST on `a`, one PATCH on `b`,
    /// PUT ?digest= on `a` — so every step of one upload lands on a different instance than the
    /// one before.
    pub fn push_blob_across(&self, a: &str, b: &str, repo: &str, data: &[u8]) -> Result<String> {
        let d = digest(data);
        if self.blob_exists(b, repo, &d)? {
            return Ok(d);
        }
        let path = self.start_upload(a, repo)?;
        let path = self.patch(b, &path, 0, data)?;
        self.finish(a, &path, &d, &[])?;
        Ok(d)
    }

    /// Pushes a blob monolithically on one instance (POST, then PUT with the body).
    pub fn push_blob(&self, base: &str, repo: &str, data: &[u8]) -> Result<String> {
        let d = digest(data);
        let path = self.start_upload(base, repo)?;
        self.finish(base, &path, &d, data)?;
        Ok(d)
    }

    /// PUTs a manifest; returns the reply.
    pub fn put_manifest(
        &self,
        base: &str,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Result<Reply> {
        self.send(
            self.req("PUT", base, &format!("/v2/{repo}/manifests/{reference}"))
                .header("content-type", media_type)
                .body(body.to_vec()),
        )
    }

    /// Pushes an image of a config and the given layers: blobs across `a`/`b` as
    /// [`Api::push_blob_across`], the manifest on `b`.
    pub fn push_image_across(
        &self,
        a: &str,
        b: &str,
        repo: &str,
        tag: &str,
        layers: &[Vec<u8>],
    ) -> Result<Image> {
        let (config, manifest) = image_json(repo, tag, layers);
        let mut blobs = Vec::new();
        for l in layers {
            let d = self
                .push_blob_across(a, b, repo, l)
                .with_context(|| format!("{repo}:{tag} layer"))?;
            blobs.push((d, l.clone()));
        }
        let cd = self
            .push_blob_across(a, b, repo, &config)
            .with_context(|| format!("{repo}:{tag} config"))?;
        blobs.push((cd, config));
        let r = self.put_manifest(b, repo, tag, OCI_MANIFEST, &manifest)?;
        let d = digest(&manifest);
        ensure!(
            r.status == 201,
            "PUT manifest {repo}:{tag} on {b}: {}",
            r.show()
        );
        let got = r.header("docker-content-digest");
        ensure!(
            got.as_deref() == Some(d.as_str()),
            "PUT manifest {repo}:{tag}: Docker-Content-Digest {got:?}, expected {d}"
        );
        Ok(Image {
            repo: repo.into(),
            tag: tag.into(),
            digest: d,
            manifest,
            blobs,
        })
    }

    /// Pushes an image entirely through one instance.
    pub fn push_image(
        &self,
        base: &str,
        repo: &str,
        tag: &str,
        layers: &[Vec<u8>],
    ) -> Result<Image> {
        self.push_image_across(base, base, repo, tag, layers)
    }

    /// Pulls an image by tag and by digest from `base`: manifest bytes, digest header and
    /// Content-Type, then every blob, each checked against its digest and size.
    pub fn pull_and_verify(&self, base: &str, img: &Image) -> Result<()> {
        for reference in [img.tag.as_str(), img.digest.as_str()] {
            let r = self.send(
                self.req(
                    "GET",
                    base,
                    &format!("/v2/{}/manifests/{reference}", img.repo),
                )
                .header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}")),
            )?;
            ensure!(
                r.status == 200,
                "GET manifest {}:{reference} on {base}: {}",
                img.repo,
                r.show()
            );
            ensure!(
                r.body == img.manifest,
                "GET manifest {}:{reference} on {base}: other bytes",
                img.repo
            );
            let got = r.header("docker-content-digest");
            ensure!(
                got.as_deref() == Some(img.digest.as_str()),
                "GET manifest {}:{reference}: Docker-Content-Digest {got:?}",
                img.repo
            );
            let ct = r.header("content-type");
            ensure!(
                ct.as_deref() == Some(OCI_MANIFEST),
                "GET manifest {}:{reference}: Content-Type {ct:?}",
                img.repo
            );
        }
        for (d, data) in &img.blobs {
            let r = self.send(self.req("GET", base, &format!("/v2/{}/blobs/{d}", img.repo)))?;
            ensure!(
                r.status == 200,
                "GET blob {d} of {} on {base}: {}",
                img.repo,
                r.show()
            );
            ensure!(
                digest(&r.body) == *d && r.body.len() == data.len(),
                "GET blob {d} of {} on {base}: {} bytes with digest {}",
                img.repo,
                r.body.len(),
                digest(&r.body)
            );
        }
        Ok(())
    }

    /// Every page of a paginated list (`_catalog` or tags), following `Link: <…>; rel="next"`;
    /// returns the values of `field`.
    pub fn list_all(&self, base: &str, first: &str, field: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut next = Some(first.to_string());
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            ensure!(pages < 1000, "more than 1000 pages from {first}");
            let r = self.send(self.req("GET", base, &path))?;
            ensure!(r.status == 200, "GET {path} on {base}: {}", r.show());
            let v: serde_json::Value = serde_json::from_slice(&r.body)
                .with_context(|| format!("GET {path}: body is not JSON"))?;
            if let Some(a) = v[field].as_array() {
                out.extend(a.iter().filter_map(|x| x.as_str().map(str::to_string)));
            }
            if let Some(link) = r.header("link") {
                let start = link.find('<').map(|i| i + 1);
                let end = link.find('>');
                if let (Some(s), Some(e)) = (start, end)
                    && link.contains("rel=\"next\"")
                {
                    next = Some(location_path(&link[s..e]));
                }
            }
        }
        Ok(out)
    }
}

/// The `END` of a `0-END` (or `bytes=0-END`) Range header; `None` when it is not of that shape.
/// (An empty session's Range is ambiguous in the spec, so tests only ask about sessions holding
/// data.)
pub fn parse_range_end(range: &str) -> Option<u64> {
    let r = range.trim().trim_start_matches("bytes=");
    let (start, end) = r.split_once('-')?;
    if start != "0" {
        return None;
    }
    end.parse::<u64>().ok()
}

/// The config and manifest JSON of an image with the given layers.
pub fn image_json(repo: &str, tag: &str, layers: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
    let diff_ids: Vec<String> = layers.iter().map(|l| digest(l)).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": {"Labels": {"org.test.ref": format!("{repo}:{tag}")}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("config json");
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest(&config),
            "size": config.len(),
        },
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": digest(l),
            "size": l.len(),
        })).collect::<Vec<_>>(),
    }))
    .expect("manifest json");
    (config, manifest)
}

/// A request body fed through a channel, so a test controls when bytes leave (and can kill the
/// server while the body is still streaming).
pub struct SlowBody {
    rx: mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
    sent: Arc<std::sync::atomic::AtomicU64>,
}

/// The feeding end of a [`SlowBody`].
pub struct Feeder {
    tx: Option<mpsc::SyncSender<Vec<u8>>>,
    /// Bytes the HTTP client has taken from the body so far.
    pub taken: Arc<std::sync::atomic::AtomicU64>,
}

impl Feeder {
    /// Queues bytes; false if the body was dropped (the request ended).
    pub fn feed(&self, data: &[u8]) -> bool {
        match &self.tx {
            Some(tx) => tx.send(data.to_vec()).is_ok(),
            None => false,
        }
    }

    /// Waits until the client has taken at least `n` bytes from the body.
    pub fn wait_taken(&self, n: u64, limit: Duration) -> Result<()> {
        let start = Instant::now();
        while self.taken.load(std::sync::atomic::Ordering::SeqCst) < n {
            ensure!(
                start.elapsed() < limit,
                "the client took only {} of {n} body bytes",
                self.taken.load(std::sync::atomic::Ordering::SeqCst)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Ends the body (early, if not everything was fed).
    pub fn close(&mut self) {
        self.tx = None;
    }
}

/// A body and its feeder.
pub fn slow_body() -> (SlowBody, Feeder) {
    let (tx, rx) = mpsc::sync_channel(4);
    let taken = Arc::new(std::sync::atomic::AtomicU64::new(0));
    (
        SlowBody {
            rx,
            buf: Vec::new(),
            pos: 0,
            sent: taken.clone(),
        },
        Feeder {
            tx: Some(tx),
            taken,
        },
    )
}

impl Read for SlowBody {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(b) => {
                    self.buf = b;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        self.sent
            .fetch_add(n as u64, std::sync::atomic::Ordering::SeqCst);
        Ok(n)
    }
}

/// A response read off a raw socket.
#[derive(Debug, Default)]
pub struct RawReply {
    /// Status code, 0 when the server closed without answering.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

impl RawReply {
    /// The spec error codes in the body.
    pub fn codes(&self) -> Vec<String> {
        error_codes(&self.body)
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Status and body, for assertion messages.
    pub fn show(&self) -> String {
        format!(
            "{} {}",
            self.status,
            String::from_utf8_lossy(&self.body[..self.body.len().min(600)])
        )
    }
}

/// Sends one HTTP/1.1 request exactly as given (the path is not normalised), with
/// `Connection: close`: `headers` are extra header lines, `body` is written as is. Write errors
/// (the server may answer and close early) are tolerated.
pub fn raw(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<RawReply> {
    raw_request(addr, method, path, headers, body, false)
}

/// Like [`raw`], then half-closes the connection: with a `Content-Length` larger than `body`, the
/// server sees the body end early (as when a client dies). The server usually drops such a
/// connection without answering (status 0).
pub fn raw_truncated(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<RawReply> {
    raw_request(addr, method, path, headers, body, true)
}

/// `data` in HTTP/1.1 chunked transfer coding, 64 KiB a chunk.
pub fn chunked(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    for c in data.chunks(64 << 10) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn raw_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
    half_close: bool,
) -> Result<RawReply> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.set_write_timeout(Some(Duration::from_secs(20)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    // Write on another thread while this one reads: a server may answer (and close) before the
    // body is all sent, and the answer must be read before a reset can discard it.
    let mut w = s.try_clone().context("clone socket")?;
    let body = body.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = w
            .write_all(head.as_bytes())
            .and_then(|_| w.write_all(&body))
            .and_then(|_| w.flush());
        if half_close {
            let _ = w.shutdown(Shutdown::Write);
        }
    });
    let mut resp = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => resp.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e).context("read response"),
        }
    }
    let _ = s.shutdown(Shutdown::Both);
    let _ = writer.join();
    parse_raw(&resp)
}

fn parse_raw(resp: &[u8]) -> Result<RawReply> {
    if resp.is_empty() {
        return Ok(RawReply::default());
    }
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("no end of headers in {:?}", String::from_utf8_lossy(resp)))?;
    let head = String::from_utf8_lossy(&resp[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let raw_body = &resp[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(raw_body)?
    } else {
        raw_body.to_vec()
    };
    Ok(RawReply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&b[..i]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        b = &b[i + 2..];
        if size == 0 || b.len() < size {
            out.extend_from_slice(&b[..size.min(b.len())]);
            break;
        }
        out.extend_from_slice(&b[..size]);
        b = b.get(size + 2..).unwrap_or_default();
    }
    Ok(out)
}
