//! An S3-protocol server (moto, started by `scripts/s3.sh`) for the tests that run storage on S3: one
//! server per test binary, started on first use, each test with a bucket of its own. The server is
//! stopped by a watchdog once the test binary's process is gone, however it ended.

use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The test binary's moto server: its port.
struct Server {
    port: u16,
}

fn script() -> std::path::PathBuf {
    crate::repo_root().join("scripts/s3.sh")
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let port = crate::free_port();
        let out = Command::new("bash")
            .arg(script())
            .args(["start", &port.to_string()])
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/s3.sh");
        assert!(
            out.status.success(),
            "scripts/s3.sh start {port} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The watchdog outlives no one: it polls this process and stops moto when it has gone, so a
        // test binary that panicked, aborted or was killed leaves no server behind either.
        let watch = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.3; done; exec bash {script} stop {port}",
            pid = std::process::id(),
            script = script().display(),
        );
        Command::new("setsid")
            .args(["-f", "bash", "-c", &watch])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("start the moto watchdog");
        Server { port }
    })
}

/// A bucket of its own on the test binary's S3 server.
#[derive(Debug)]
pub struct S3 {
    /// The server's port on 127.0.0.1.
    pub port: u16,
    /// The bucket made for this test.
    pub bucket: String,
}

impl S3 {
    /// A new, empty bucket (starting the server if this binary has none yet). Callable from async
    /// tests too: the blocking work runs on a thread of its own.
    pub fn start() -> S3 {
        off_runtime(S3::start_blocking)
    }

    fn start_blocking() -> S3 {
        let port = server().port;
        let bucket = crate::unique("t");
        let url = format!("http://127.0.0.1:{port}/{bucket}");
        // moto checks no signature, so a plain CreateBucket does.
        let r = reqwest::blocking::Client::new()
            .put(&url)
            .header("authorization", MOTO_AUTH)
            .send()
            .unwrap_or_else(|e| panic!("create bucket {url}: {e}"));
        assert!(
            r.status().is_success(),
            "create bucket {url}: {}",
            r.status()
        );
        S3 { port, bucket }
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The keys in the bucket below `prefix` (all of them for `""`), sorted.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        off_runtime(|| self.keys_blocking(prefix))
    }

    fn keys_blocking(&self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        let http = reqwest::blocking::Client::new();
        loop {
            let mut req = http
                .get(format!("{}/{}", self.endpoint(), self.bucket))
                .header("authorization", MOTO_AUTH)
                .query(&[("list-type", "2"), ("prefix", prefix)]);
            if let Some(t) = &token {
                req = req.query(&[("continuation-token", t.as_str())]);
            }
            let r = req.send().expect("ListObjectsV2");
            assert_eq!(r.status(), 200, "list bucket {}", self.bucket);
            let xml = r.text().expect("ListObjectsV2 body");
            keys.extend(xml_values(&xml, "Key"));
            if xml_values(&xml, "IsTruncated").first().map(String::as_str) != Some("true") {
                break;
            }
            token = xml_values(&xml, "NextContinuationToken").into_iter().next();
            assert!(token.is_some(), "a truncated listing without a token");
        }
        keys.sort();
        keys
    }

    /// An object's bytes, or `None` when there is none under `key`.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        off_runtime(|| self.get_blocking(key))
    }

    fn get_blocking(&self, key: &str) -> Option<Vec<u8>> {
        let url = format!("{}/{}/{key}", self.endpoint(), self.bucket);
        let r = reqwest::blocking::Client::new()
            .get(&url)
            .header("authorization", MOTO_AUTH)
            .send()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        if r.status() == 404 {
            return None;
        }
        assert_eq!(r.status(), 200, "GET {url}");
        Some(r.bytes().expect("object body").to_vec())
    }
}

/// Runs `f` on a thread of its own: reqwest's blocking client may not be used, nor dropped, on a
/// tokio runtime's thread, and tests call these helpers from `#[tokio::test]`s too.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join()).unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// moto checks no signature, but serves objects to anonymous requests only when their ACL is public;
/// any `Authorization` header makes a request an authenticated one.
pub const MOTO_AUTH: &str = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, \
                             SignedHeaders=host, Signature=0";

/// The texts of every `<tag>…</tag>` in an S3 XML reply (keys are XML-escaped there).
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(open.as_str())
        .skip(1)
        .filter_map(|s| s.split_once(close.as_str()).map(|(v, _)| v))
        .map(|v| {
            v.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn xml_values_are_unescaped() {
        let x =
            "<R><Key>a&amp;b</Key><Key>c</Key><NextContinuationToken>t</NextContinuationToken></R>";
        assert_eq!(super::xml_values(x, "Key"), ["a&b", "c"]);
        assert_eq!(super::xml_values(x, "NextContinuationToken"), ["t"]);
    }
}
