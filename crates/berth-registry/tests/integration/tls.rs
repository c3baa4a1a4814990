//! TLS end to end: `berth_registry::serve` with a certificate signed by a test CA, spoken to by
//! reqwest (rustls) trusting only that CA.

use std::path::Path;
use std::time::Duration;

use crate::common::Client;
use berth_registry::config::{Config, TlsConfig};
use berth_registry::storage::StorageSpec;

/// A CA and a server certificate for localhost and 127.0.0.1 signed by it, in `dir`:
/// `ca.crt`, `server.crt` (chain: server then CA), `server.key`, and `other.key` (a key that is
/// not the certificate's).
fn make_certificates(dir: &Path) {
    let ca = berth_testkit::tls::Ca::new();
    ca.write(dir, &["localhost", "127.0.0.1"]);
    std::fs::write(dir.join("other.key"), ca.server(&["localhost"]).key_pem).unwrap();
}

/// Waits until something accepts connections on the port.
async fn wait_for(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("server on port {port} did not come up");
}

#[tokio::test]
async fn serve_speaks_https_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let port = crate::common::free_port();
    let c = Config {
        addr: format!("127.0.0.1:{port}"),
        storage: Some(StorageSpec::new(dir.path().join("data").to_str().unwrap())),
        tls: Some(TlsConfig {
            cert: dir.path().join("server.crt"),
            key: dir.path().join("server.key"),
        }),
        ..Config::default()
    };
    let server = tokio::spawn(berth_registry::serve(c));
    wait_for(port).await;

    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(dir.path().join("ca.crt")).unwrap()).unwrap();
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .build()
        .unwrap();
    for host in ["localhost", "127.0.0.1"] {
        let r = http
            .get(format!("https://{host}:{port}/v2/"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{host}");
        assert_eq!(r.version(), reqwest::Version::HTTP_11);
    }
    let mut client = Client::new(&format!("https://localhost:{port}"));
    client.http = http.clone();
    let d = client
        .push_image("tls/app", "v1", b"a layer over TLS")
        .await;
    let r = client.get(&format!("/v2/tls/app/manifests/{d}")).await;
    assert_eq!(r.status(), 200);

    // A client that does not trust the CA fails the handshake; plain HTTP gets no answer.
    let untrusting = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    assert!(
        untrusting
            .get(format!("https://localhost:{port}/v2/"))
            .send()
            .await
            .is_err()
    );
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    assert!(
        plain
            .get(format!("http://127.0.0.1:{port}/v2/"))
            .send()
            .await
            .is_err()
    );
    assert!(!server.is_finished(), "the server is still serving");
    server.abort();
}

#[tokio::test]
async fn serve_refuses_to_start_with_a_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let c = Config {
        addr: format!("127.0.0.1:{}", crate::common::free_port()),
        storage: Some(StorageSpec::new(dir.path().join("data").to_str().unwrap())),
        tls: Some(TlsConfig {
            cert: dir.path().join("server.crt"),
            key: dir.path().join("other.key"),
        }),
        ..Config::default()
    };
    let e = berth_registry::serve(c).await.unwrap_err().to_string();
    assert!(e.contains("other.key"), "{e}");
}
