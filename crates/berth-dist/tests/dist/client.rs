//! The client's transport and credential store: plain HTTP for insecure registries (by default
//! and by CIDR), TLS with a CA from `certs_dir`, no credentials across a redirect to another
//! host, and credentials in files and credential helpers.

use crate::common::Registry;
use berth_dist::auth::{AuthStore, Credential, DOCKER_HUB_KEY};
use berth_dist::client::{Body, Scope};
use berth_dist::{Client, Config, Error};
use berth_registry::config::{Config as RegistryConfig, TlsConfig};
use berth_registry::storage::StorageSpec;
use http::{HeaderMap, Method};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

fn config(dir: &Path) -> Config {
    Config {
        auth_file: dir.join("auth.json"),
        docker_config_dir: Some(dir.join("docker")),
        certs_dir: dir.join("certs.d"),
        helper_dir: Some(dir.join("bin")),
        ..Config::default()
    }
}

fn cred(u: &str, p: &str) -> Credential {
    Credential {
        username: u.into(),
        secret: p.into(),
    }
}

async fn get_v2(c: &Client, host: &str) -> Result<reqwest::Response, Error> {
    c.send(
        host,
        &[Scope::pull("x/y")],
        Method::GET,
        "/v2/",
        HeaderMap::new(),
        Body::Empty,
    )
    .await
}

/// A free port on `ip`.
fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `berth_registry::serve` on `ip:port` and waits until it accepts connections.
async fn serve(
    ip: &str,
    port: u16,
    dir: &Path,
    tls: Option<TlsConfig>,
) -> tokio::task::JoinHandle<()> {
    let c = RegistryConfig {
        addr: format!("{ip}:{port}"),
        storage: Some(StorageSpec::new(dir.join("data").to_str().unwrap())),
        tls,
        ..RegistryConfig::default()
    };
    let h = tokio::spawn(async move {
        berth_registry::serve(c).await.unwrap();
    });
    for _ in 0..200 {
        if tokio::net::TcpStream::connect((ip, port)).await.is_ok() {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("registry on {ip}:{port} did not come up");
}

#[tokio::test]
async fn loopback_registries_are_spoken_to_over_plain_http_quickly() {
    let reg = Registry::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Warm up once (first TLS setup in the process), then time a fresh client.
    let c = Client::new(config(dir.path())).unwrap();
    assert_eq!(c.endpoint_url(&reg.host).await.unwrap(), reg.url());
    let t = Instant::now();
    let c = Client::new(config(dir.path())).unwrap();
    let r = get_v2(&c, &reg.host).await.unwrap();
    let took = t.elapsed();
    assert_eq!(r.status(), 200);
    eprintln!("set-up, ping and first request: {took:?}");
    assert!(
        took < Duration::from_millis(50),
        "set-up and first request took {took:?}"
    );
    let localhost = reg.host.replace("127.0.0.1", "localhost");
    assert_eq!(
        c.endpoint_url(&localhost).await.unwrap(),
        format!("http://{localhost}")
    );
}

#[tokio::test]
async fn other_hosts_use_http_only_when_listed_as_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let ip = berth_testkit::host_ip().to_string();
    let port = free_port(&ip);
    let server = serve(&ip, port, dir.path(), None).await;
    let host = format!("{ip}:{port}");

    let secure = Client::new(config(dir.path())).unwrap();
    let e = get_v2(&secure, &host).await.unwrap_err();
    assert!(matches!(e, Error::Unreachable { .. }), "{e}");

    for listed in [host.clone(), berth_testkit::host_net24(), ip.clone()] {
        let c = Client::new(Config {
            insecure: vec![listed.clone()],
            ..config(dir.path())
        })
        .unwrap();
        assert_eq!(get_v2(&c, &host).await.unwrap().status(), 200, "{listed}");
        assert_eq!(
            c.endpoint_url(&host).await.unwrap(),
            format!("http://{host}")
        );
    }
    server.abort();
}

#[tokio::test]
async fn tls_registry_trusted_through_certs_dir() {
    let dir = tempfile::tempdir().unwrap();
    let ip = berth_testkit::host_ip().to_string();
    berth_testkit::tls::Ca::new().write(dir.path(), &[&ip]);
    let port = free_port(&ip);
    let tls = TlsConfig {
        cert: dir.path().join("server.crt"),
        key: dir.path().join("server.key"),
    };
    let server = serve(&ip, port, dir.path(), Some(tls)).await;
    let host = format!("{ip}:{port}");

    // Without the CA: the handshake fails and the error says so.
    let c = Client::new(config(dir.path())).unwrap();
    let e = get_v2(&c, &host).await.unwrap_err();
    assert!(matches!(e, Error::Unreachable { .. }), "{e}");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");

    // With the CA in <certs_dir>/<host:port>/: https.
    let certs = dir.path().join("certs.d").join(&host);
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(dir.path().join("ca.crt"), certs.join("ca.crt")).unwrap();
    let c = Client::new(config(dir.path())).unwrap();
    assert_eq!(get_v2(&c, &host).await.unwrap().status(), 200);
    assert_eq!(
        c.endpoint_url(&host).await.unwrap(),
        format!("https://{host}")
    );

    // Listed as insecure and without the CA: TLS without verification, still https.
    std::fs::remove_dir_all(&certs).unwrap();
    let c = Client::new(Config {
        insecure: vec![host.clone()],
        ..config(dir.path())
    })
    .unwrap();
    assert_eq!(get_v2(&c, &host).await.unwrap().status(), 200);
    assert_eq!(
        c.endpoint_url(&host).await.unwrap(),
        format!("https://{host}")
    );

    // A broken certificate file is a configuration error naming it.
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("bad.crt"), "not a certificate").unwrap();
    let c = Client::new(config(dir.path())).unwrap();
    let e = get_v2(&c, &host).await.unwrap_err();
    assert!(e.to_string().contains("bad.crt"), "{e}");
    server.abort();
}

#[tokio::test]
async fn unreachable_registry_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port("127.0.0.1");
    let c = Client::new(config(dir.path())).unwrap();
    let e = get_v2(&c, &format!("127.0.0.1:{port}")).await.unwrap_err();
    assert!(matches!(e, Error::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains(&port.to_string()), "{e}");
}

#[tokio::test]
async fn credentials_are_not_sent_across_a_redirect_to_another_host() {
    use axum::http::{HeaderMap as AxHeaders, StatusCode, header};
    use axum::response::IntoResponse;
    use std::sync::{Arc, Mutex};

    // The target of the redirect records what it was sent.
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let seen2 = seen.clone();
    let blob = axum::Router::new().route(
        "/blob",
        axum::routing::get(move |h: AxHeaders| {
            let seen = seen2.clone();
            async move {
                seen.lock().unwrap().push(
                    h.get(header::AUTHORIZATION)
                        .map(|v| v.to_str().unwrap().to_owned()),
                );
                "blob bytes"
            }
        }),
    );
    // Another port is another origin: reqwest compares host and port.
    let blob_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let blob_addr = blob_listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(blob_listener, blob).await.unwrap() });

    // The registry wants Basic auth and redirects blob reads to the other host.
    let target = format!("http://{blob_addr}/blob");
    let registry = axum::Router::new()
        .route(
            "/v2/",
            axum::routing::get(|h: AxHeaders| async move {
                if h.contains_key(header::AUTHORIZATION) {
                    StatusCode::OK.into_response()
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        [(header::WWW_AUTHENTICATE, "Basic realm=\"test\"")],
                    )
                        .into_response()
                }
            }),
        )
        .route(
            "/v2/r/blobs/d",
            axum::routing::get(move |h: AxHeaders| {
                let target = target.clone();
                async move {
                    assert!(
                        h.contains_key(header::AUTHORIZATION),
                        "the registry gets the credential"
                    );
                    (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, target)]).into_response()
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, registry).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let c = Client::new(config(dir.path())).unwrap();
    c.auth().store(&host, &cred("u", "p")).unwrap();
    let r = c
        .send(
            &host,
            &[Scope::pull("r")],
            Method::GET,
            "/v2/r/blobs/d",
            HeaderMap::new(),
            Body::Empty,
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "blob bytes");
    // An absolute URL on another host gets no credential either.
    let r = c
        .send(
            &host,
            &[Scope::pull("r")],
            Method::GET,
            &format!("http://{blob_addr}/blob"),
            HeaderMap::new(),
            Body::Empty,
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(*seen.lock().unwrap(), [None, None]);
}

#[test]
fn store_writes_a_private_docker_format_file_keeping_other_keys() {
    let dir = tempfile::tempdir().unwrap();
    let c = Config {
        auth_file: dir.path().join("new/sub/auth.json"),
        ..config(dir.path())
    };
    let s = AuthStore::new(&c);
    assert_eq!(s.get("reg.lan:5000").unwrap(), None);
    let at = s
        .store("reg.lan:5000", &cred("alice", "pw:with:colons"))
        .unwrap();
    assert_eq!(at, c.auth_file);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&c.auth_file), 0o600);
    assert_eq!(mode(&dir.path().join("new/sub")), 0o700);
    assert_eq!(
        s.get("reg.lan:5000").unwrap(),
        Some(cred("alice", "pw:with:colons"))
    );

    // Other keys and entries survive a store; the same registry's entry is replaced.
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&c.auth_file).unwrap()).unwrap();
    doc["HttpHeaders"] = serde_json::json!({"X-Meta": "1"});
    doc["auths"]["other.lan"] = serde_json::json!({"auth": "b3RoZXI6cHc="});
    std::fs::write(&c.auth_file, serde_json::to_vec(&doc).unwrap()).unwrap();
    s.store("https://reg.lan:5000", &cred("alice", "new"))
        .unwrap();
    s.store("docker.io", &cred("hub", "hubpw")).unwrap();
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&c.auth_file).unwrap()).unwrap();
    assert_eq!(doc["HttpHeaders"]["X-Meta"], "1");
    let keys: Vec<&String> = doc["auths"].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(doc["auths"][DOCKER_HUB_KEY]["auth"].is_string());
    assert_eq!(s.get("reg.lan:5000").unwrap(), Some(cred("alice", "new")));
    assert_eq!(s.get("other.lan").unwrap(), Some(cred("other", "pw")));
    for hub in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
        assert_eq!(s.get(hub).unwrap(), Some(cred("hub", "hubpw")), "{hub}");
    }
    assert_eq!(mode(&c.auth_file), 0o600);
    // No temporary files are left behind.
    assert_eq!(
        std::fs::read_dir(dir.path().join("new/sub"))
            .unwrap()
            .count(),
        1
    );

    assert!(s.erase("reg.lan:5000").unwrap());
    assert!(!s.erase("reg.lan:5000").unwrap());
    assert_eq!(s.get("reg.lan:5000").unwrap(), None);
    assert_eq!(s.get("other.lan").unwrap(), Some(cred("other", "pw")));

    // A corrupt file is an error naming it, not silently nothing.
    std::fs::write(&c.auth_file, "{not json").unwrap();
    let e = s.get("other.lan").unwrap_err().to_string();
    assert!(e.contains("auth.json"), "{e}");
}

#[test]
fn docker_config_is_read_after_berths_file() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    std::fs::create_dir_all(dir.path().join("docker")).unwrap();
    std::fs::write(
        dir.path().join("docker/config.json"),
        serde_json::to_vec(&serde_json::json!({
            "auths": {
                "https://index.docker.io/v1/": {"auth": "ZG9jazpodWI="},
                "both.lan": {"auth": "ZG9jazpvbGQ="},
                "plain.lan": {"username": "pu", "password": "pp"},
                "oauth.lan": {"identitytoken": "refresh-me"},
                "empty.lan": {}
            }
        }))
        .unwrap(),
    )
    .unwrap();
    let s = AuthStore::new(&c);
    s.store("both.lan", &cred("berth", "new")).unwrap();
    assert_eq!(s.get("docker.io").unwrap(), Some(cred("dock", "hub")));
    assert_eq!(s.get("both.lan").unwrap(), Some(cred("berth", "new")));
    assert_eq!(s.get("plain.lan").unwrap(), Some(cred("pu", "pp")));
    let oauth = s.get("oauth.lan").unwrap().unwrap();
    assert!(oauth.is_identity_token());
    assert_eq!(oauth.secret, "refresh-me");
    assert_eq!(s.get("empty.lan").unwrap(), None);
    assert_eq!(s.get("none.lan").unwrap(), None);
}

/// A real credential helper: keeps `server\tuser\tsecret` lines in `store.txt` next to itself.
fn install_helper(bin: &Path, name: &str) {
    std::fs::create_dir_all(bin).unwrap();
    let path = bin.join(format!("docker-credential-{name}"));
    let script = r#"#!/bin/sh
db="$(dirname "$0")/store.txt"
touch "$db"
case "$1" in
get)
    read -r server
    line=$(grep "^$server	" "$db" | tail -n 1)
    if [ -z "$line" ]; then echo "credentials not found in native keychain"; exit 1; fi
    user=$(printf '%s' "$line" | cut -f 2)
    secret=$(printf '%s' "$line" | cut -f 3)
    printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}\n' "$server" "$user" "$secret"
    ;;
store)
    json=$(cat)
    server=$(printf '%s' "$json" | sed 's/.*"ServerURL":"\([^"]*\)".*/\1/')
    user=$(printf '%s' "$json" | sed 's/.*"Username":"\([^"]*\)".*/\1/')
    secret=$(printf '%s' "$json" | sed 's/.*"Secret":"\([^"]*\)".*/\1/')
    grep -v "^$server	" "$db" > "$db.new"; mv "$db.new" "$db"
    printf '%s\t%s\t%s\n' "$server" "$user" "$secret" >> "$db"
    ;;
erase)
    read -r server
    if ! grep -q "^$server	" "$db"; then echo "credentials not found in native keychain"; exit 1; fi
    grep -v "^$server	" "$db" > "$db.new"; mv "$db.new" "$db"
    ;;
*) echo "unknown action $1" >&2; exit 2 ;;
esac
"#;
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn credential_helpers_get_store_and_erase() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    let bin = c.helper_dir.clone().unwrap();
    install_helper(&bin, "filestore");
    // berth's file names the default store: store, get and erase go through the helper.
    std::fs::write(&c.auth_file, r#"{"credsStore": "filestore"}"#).unwrap();
    let s = AuthStore::new(&c);
    assert_eq!(s.get("reg.lan").unwrap(), None);
    let at = s.store("reg.lan", &cred("hu", "hs")).unwrap();
    assert_eq!(at, bin.join("docker-credential-filestore"));
    s.store("docker.io", &cred("hubu", "hubs")).unwrap();
    let db = std::fs::read_to_string(bin.join("store.txt")).unwrap();
    assert!(db.contains("reg.lan\thu\ths"), "{db}");
    assert!(
        db.contains(&format!("{DOCKER_HUB_KEY}\thubu\thubs")),
        "{db}"
    );
    assert_eq!(s.get("reg.lan").unwrap(), Some(cred("hu", "hs")));
    assert_eq!(
        s.get("index.docker.io").unwrap(),
        Some(cred("hubu", "hubs"))
    );
    // The file itself holds no secret.
    let text = std::fs::read_to_string(&c.auth_file).unwrap();
    assert!(!text.contains("hs") && !text.contains("auths"), "{text}");
    assert!(s.erase("reg.lan").unwrap());
    assert!(!s.erase("reg.lan").unwrap());
    assert_eq!(s.get("reg.lan").unwrap(), None);

    // Docker's config names a helper for one registry only.
    install_helper(&bin, "other");
    std::fs::write(&c.auth_file, "{}").unwrap();
    std::fs::create_dir_all(dir.path().join("docker")).unwrap();
    std::fs::write(
        dir.path().join("docker/config.json"),
        r#"{"credHelpers": {"special.lan": "other"}, "auths": {"plain.lan": {"auth": "YTpi"}}}"#,
    )
    .unwrap();
    std::fs::write(bin.join("store.txt"), "special.lan\tsu\tss\n").unwrap();
    assert_eq!(s.get("special.lan").unwrap(), Some(cred("su", "ss")));
    assert_eq!(s.get("plain.lan").unwrap(), Some(cred("a", "b")));

    // A missing helper named by Docker's config is skipped (Docker Desktop's `desktop` on a
    // machine without it); one named by berth's own file is an error naming it.
    std::fs::write(
        dir.path().join("docker/config.json"),
        r#"{"credsStore": "desktop", "auths": {"plain.lan": {"auth": "YTpi"}}}"#,
    )
    .unwrap();
    assert_eq!(s.get("plain.lan").unwrap(), Some(cred("a", "b")));
    assert_eq!(s.get("reg.lan").unwrap(), None);
    // A helper that is missing or fails is an error naming it.
    std::fs::write(&c.auth_file, r#"{"credsStore": "absent"}"#).unwrap();
    let e = s.get("reg.lan").unwrap_err().to_string();
    assert!(e.contains("docker-credential-absent"), "{e}");
    std::fs::write(&c.auth_file, r#"{"credsStore": "filestore"}"#).unwrap();
    std::fs::remove_file(bin.join("store.txt")).unwrap();
    std::fs::create_dir(bin.join("store.txt")).unwrap();
    let e = s.store("reg.lan", &cred("x", "y")).unwrap_err();
    assert!(matches!(e, Error::CredentialHelper { .. }), "{e}");
}

#[tokio::test]
async fn credentials_from_a_helper_reach_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!("carol:{}\n", bcrypt::hash("carol-pw", 4).unwrap()),
    )
    .unwrap();
    let reg = Registry::start_with(|c| c.auth.htpasswd = Some(htpasswd)).await;
    let c = config(dir.path());
    install_helper(c.helper_dir.as_ref().unwrap(), "filestore");
    std::fs::write(&c.auth_file, r#"{"credsStore": "filestore"}"#).unwrap();
    AuthStore::new(&c)
        .store(&reg.host, &cred("carol", "carol-pw"))
        .unwrap();
    let client = Client::new(c).unwrap();
    assert_eq!(get_v2(&client, &reg.host).await.unwrap().status(), 200);
}
