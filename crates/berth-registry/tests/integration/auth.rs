//! Auth through the real router: basic and bearer modes, access rules, the token endpoint, and
//! that a refused request changes nothing in the storage.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::{Client, Server, digest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use berth_registry::config::Config;
use berth_registry::storage::StorageSpec;
use serde_json::Value;

use berth_testkit::registry::{USERS, rule, write_htpasswd};

/// A configuration over `dir/data` with an htpasswd file of [`USERS`] (bcrypt cost 4, so
/// debug builds stay quick) and these rules: alice pushes `team/*`, bob only pulls, admin does
/// everything.
fn config(dir: &Path) -> Config {
    let htpasswd = dir.join("htpasswd");
    write_htpasswd(&htpasswd, &USERS, true);
    let mut c = Config {
        storage: Some(StorageSpec::new(dir.join("data").to_str().unwrap())),
        ..Config::default()
    };
    c.auth.htpasswd = Some(htpasswd);
    c.auth.access = vec![
        rule("alice", &["team/*"], &["pull", "push"]),
        rule("bob", &["*"], &["pull"]),
        rule("admin", &["*"], &["*"]),
    ];
    c
}

/// Adds a token secret to a configuration.
fn with_tokens(mut c: Config, dir: &Path) -> Config {
    let secret = dir.join("secret");
    if !secret.exists() {
        std::fs::write(&secret, hex::encode(rand::random::<[u8; 32]>())).unwrap();
    }
    c.auth.token_secret_file = Some(secret);
    c
}

async fn serve(c: Config, dir: tempfile::TempDir) -> Server {
    let mut s = Server::with_config(c).await;
    s.dir = Some(dir);
    s
}

/// A client that sends Basic credentials with every request.
fn basic_client(url: &str, user: &str, password: &str) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    headers.insert("authorization", format!("Basic {v}").parse().unwrap());
    let mut c = Client::new(url);
    c.http = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    c
}

/// A client that sends a bearer token with every request.
fn bearer_client(url: &str, token: &str) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    let mut c = Client::new(url);
    c.http = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    c
}

/// Every file under a directory, relative to it.
fn files(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeSet<String>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

async fn error_code(r: reqwest::Response) -> String {
    let v: Value = r.json().await.unwrap();
    v["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Claims of a JWT, without verifying it.
fn claims(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Gets a token; `creds` is (user, password) or none for anonymous.
async fn get_token(url: &str, creds: Option<(&str, &str)>, scopes: &[&str]) -> reqwest::Response {
    let mut q: Vec<(&str, &str)> = vec![("service", "berth-registry")];
    q.extend(scopes.iter().map(|s| ("scope", *s)));
    let mut r = reqwest::Client::new().get(format!("{url}/token")).query(&q);
    if let Some((u, p)) = creds {
        r = r.basic_auth(u, Some(p));
    }
    r.send().await.unwrap()
}

async fn token_for(url: &str, creds: Option<(&str, &str)>, scopes: &[&str]) -> String {
    let r = get_token(url, creds, scopes).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["token"].as_str().unwrap().to_string()
}

/// Asserts that a request was refused for want of credentials (401) or of rights (403).
fn assert_refused(who: &str, r: &reqwest::Response) {
    assert!(
        [401, 403].contains(&r.status().as_u16()),
        "{who}: {}",
        r.status()
    );
}

#[tokio::test]
async fn without_htpasswd_everyone_may_push_and_pull() {
    let s = Server::local().await;
    let c = Client::new(&s.url);
    assert_eq!(c.get("/v2/").await.status(), 200);
    let d = c.push_image("open/repo", "v1", b"layer").await;
    assert_eq!(
        c.get(&format!("/v2/open/repo/manifests/{d}"))
            .await
            .status(),
        200
    );
    // Credentials mean nothing without users, and are not refused.
    let b = basic_client(&s.url, "who", "ever");
    assert_eq!(b.get("/v2/open/repo/tags/list").await.status(), 200);
}

#[tokio::test]
async fn basic_auth_challenges_anonymous_and_refuses_bad_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(config(dir.path()), dir).await;
    let anon = Client::new(&s.url);
    for path in ["/v2/", "/v2/_catalog", "/v2/team/a/tags/list", "/"] {
        let r = anon.get(path).await;
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(
            r.headers()["www-authenticate"],
            "Basic realm=\"berth-registry\""
        );
        assert_eq!(
            r.headers()["docker-distribution-api-version"],
            "registry/2.0"
        );
        assert_eq!(error_code(r).await, "UNAUTHORIZED");
    }
    let wrong = basic_client(&s.url, "alice", "nope");
    assert_eq!(wrong.get("/v2/").await.status(), 401);
    let ghost = basic_client(&s.url, "ghost", "alice-pw");
    assert_eq!(ghost.get("/v2/").await.status(), 401);
    let alice = basic_client(&s.url, "alice", "alice-pw");
    assert_eq!(alice.get("/v2/").await.status(), 200);
    // The metrics and the token endpoint are not behind the guard.
    assert_eq!(anon.get("/metrics").await.status(), 200);
}

#[tokio::test]
async fn rules_decide_per_user_and_repository() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(config(dir.path()), dir).await;
    let alice = basic_client(&s.url, "alice", "alice-pw");
    let bob = basic_client(&s.url, "bob", "bob-pw");
    let admin = basic_client(&s.url, "admin", "admin-pw");
    let d = alice.push_image("team/app", "v1", b"alice's layer").await;
    // Bob may pull anything but push nothing.
    let r = bob.get(&format!("/v2/team/app/manifests/{d}")).await;
    assert_eq!(r.status(), 200);
    let r = bob
        .http
        .post(format!("{}/v2/team/app/blobs/uploads/", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("www-authenticate").is_none());
    assert_eq!(error_code(r).await, "DENIED");
    // Alice may not push outside team/, nor pull there, nor delete in team/.
    let r = alice
        .http
        .post(format!("{}/v2/other/blobs/uploads/", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(alice.get("/v2/other/tags/list").await.status(), 403);
    let r = alice
        .http
        .delete(format!("{}/v2/team/app/manifests/{d}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Admin may delete.
    let r = admin
        .http
        .delete(format!("{}/v2/team/app/manifests/{d}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

#[tokio::test]
async fn anonymous_pull_opens_reads_but_not_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.auth.anonymous_pull = Some(true);
    let s = serve(c, dir).await;
    let alice = basic_client(&s.url, "alice", "alice-pw");
    let d = alice.push_image("team/pub", "v1", b"public layer").await;
    let anon = Client::new(&s.url);
    let r = anon.get("/v2/").await;
    assert_eq!(
        r.status(),
        401,
        "the probe always challenges when there are users"
    );
    assert_eq!(
        r.headers()["www-authenticate"],
        "Basic realm=\"berth-registry\""
    );
    assert_eq!(anon.get("/v2/_catalog").await.status(), 200);
    assert_eq!(anon.get("/").await.status(), 200);
    assert_eq!(
        anon.get(&format!("/v2/team/pub/manifests/{d}"))
            .await
            .status(),
        200
    );
    let r = anon
        .http
        .post(format!("{}/v2/team/pub/blobs/uploads/", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(error_code(r).await, "UNAUTHORIZED");
}

#[tokio::test]
async fn refused_pushes_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut c = config(dir.path());
    c.auth.anonymous_pull = Some(true);
    let s = serve(c, dir).await;
    let alice = basic_client(&s.url, "alice", "alice-pw");
    alice.push_image("team/app", "v1", b"the first layer").await;
    let before = files(&data);
    assert!(!before.is_empty());
    let layer = b"a layer nobody may push".to_vec();
    let d = digest(&layer);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d, "size": layer.len()},
        "layers": []
    })
    .to_string();
    let bob = basic_client(&s.url, "bob", "bob-pw");
    let anon = Client::new(&s.url);
    let wrong = basic_client(&s.url, "alice", "wrong");
    for (who, c) in [
        ("bob", &bob),
        ("anonymous", &anon),
        ("bad password", &wrong),
    ] {
        // A monolithic blob upload, a session start, a manifest PUT and a tag DELETE.
        let r = c
            .http
            .post(format!("{}/v2/team/app/blobs/uploads/?digest={d}", s.url))
            .body(layer.clone())
            .send()
            .await
            .unwrap();
        assert_refused(who, &r);
        let r = c
            .http
            .post(format!("{}/v2/team/app/blobs/uploads/", s.url))
            .send()
            .await
            .unwrap();
        assert_refused(who, &r);
        let r = c
            .http
            .put(format!("{}/v2/team/app/manifests/evil", s.url))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone())
            .send()
            .await
            .unwrap();
        assert_refused(who, &r);
        let r = c
            .http
            .delete(format!("{}/v2/team/app/manifests/v1", s.url))
            .send()
            .await
            .unwrap();
        assert_refused(who, &r);
    }
    assert_eq!(
        files(&data),
        before,
        "a refused request changed the storage"
    );
    assert_eq!(anon.get("/v2/team/app/manifests/v1").await.status(), 200);
}

#[tokio::test]
async fn bearer_challenge_names_realm_service_and_scope() {
    let dir = tempfile::tempdir().unwrap();
    let c = with_tokens(config(dir.path()), dir.path());
    let s = serve(c, dir).await;
    let anon = Client::new(&s.url);
    let r = anon.get("/v2/").await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        format!(
            "Bearer realm=\"{}/token\",service=\"berth-registry\"",
            s.url
        )
        .as_str()
    );
    let r = anon
        .http
        .post(format!("{}/v2/team/x/blobs/uploads/", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        format!(
            "Bearer realm=\"{}/token\",service=\"berth-registry\",scope=\"repository:team/x:pull,push\"",
            s.url
        )
        .as_str()
    );
    // Basic credentials are not accepted on the API in bearer mode.
    let alice = basic_client(&s.url, "alice", "alice-pw");
    assert_eq!(alice.get("/v2/").await.status(), 401);
    // A configured realm is used as is.
    let dir = tempfile::tempdir().unwrap();
    let mut c = with_tokens(config(dir.path()), dir.path());
    c.auth.token_realm = Some("https://auth.example/token".into());
    c.auth.token_service = "reg.example".into();
    let s2 = serve(c, dir).await;
    let r = Client::new(&s2.url).get("/v2/team/x/tags/list").await;
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"https://auth.example/token\",service=\"reg.example\",scope=\"repository:team/x:pull\""
    );
}

#[tokio::test]
async fn tokens_grant_the_intersection_of_request_and_rules() {
    let dir = tempfile::tempdir().unwrap();
    let c = with_tokens(config(dir.path()), dir.path());
    let s = serve(c, dir).await;
    let r = get_token(
        &s.url,
        Some(("alice", "alice-pw")),
        &[
            "repository:team/app:pull,push,delete",
            "repository:other:pull",
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token"], v["access_token"]);
    assert_eq!(v["expires_in"], 300);
    assert!(v["issued_at"].as_str().unwrap().ends_with('Z'));
    let cl = claims(v["token"].as_str().unwrap());
    assert_eq!(cl["sub"], "alice");
    assert_eq!(cl["aud"], "berth-registry");
    assert_eq!(cl["iss"], "berth-registry");
    assert_eq!(
        cl["access"],
        serde_json::json!([{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}])
    );
    assert!(cl["exp"].as_u64().unwrap() > cl["iat"].as_u64().unwrap());
    // Scopes may also come space-separated in one parameter, and bob gets only pull.
    let t = token_for(
        &s.url,
        Some(("bob", "bob-pw")),
        &["repository:a:pull,push repository:b:push"],
    )
    .await;
    assert_eq!(
        claims(&t)["access"],
        serde_json::json!([{"type": "repository", "name": "a", "actions": ["pull"]}])
    );
    // Anonymous tokens carry what anonymous may do: here nothing.
    let t = token_for(&s.url, None, &["repository:team/app:pull"]).await;
    assert_eq!(claims(&t)["sub"], "");
    assert_eq!(claims(&t)["access"], serde_json::json!([]));
    // The catalog scope goes to users (anonymous pull is off here).
    let t = token_for(&s.url, Some(("bob", "bob-pw")), &["registry:catalog:*"]).await;
    assert_eq!(
        claims(&t)["access"],
        serde_json::json!([{"type": "registry", "name": "catalog", "actions": ["*"]}])
    );
    assert_eq!(
        bearer_client(&s.url, &t).get("/v2/_catalog").await.status(),
        200
    );
    let t = token_for(&s.url, None, &["registry:catalog:*"]).await;
    assert_eq!(claims(&t)["access"], serde_json::json!([]));
    // An anonymous token is no login when anonymous pull is off.
    let anon = bearer_client(&s.url, &t);
    assert_eq!(anon.get("/v2/_catalog").await.status(), 401);
    assert_eq!(anon.get("/v2/").await.status(), 401);
    // Bad credentials and another service are refused.
    let r = get_token(&s.url, Some(("alice", "bad")), &["repository:a:pull"]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Basic realm=\"berth-registry\""
    );
    let r = reqwest::get(format!(
        "{}/token?service=other&scope=repository:a:pull",
        s.url
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn bearer_tokens_open_exactly_their_scope() {
    let dir = tempfile::tempdir().unwrap();
    let c = with_tokens(config(dir.path()), dir.path());
    let s = serve(c, dir).await;
    let t = token_for(
        &s.url,
        Some(("alice", "alice-pw")),
        &["repository:team/app:pull,push"],
    )
    .await;
    let alice = bearer_client(&s.url, &t);
    assert_eq!(alice.get("/v2/").await.status(), 200);
    let d = alice
        .push_image("team/app", "v1", b"pushed with a token")
        .await;
    assert_eq!(
        alice
            .get(&format!("/v2/team/app/manifests/{d}"))
            .await
            .status(),
        200
    );
    // Another repository is outside the token: insufficient_scope, and nothing is written.
    let r = alice
        .http
        .post(format!("{}/v2/team/other/blobs/uploads/", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let ch = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(ch.contains("error=\"insufficient_scope\""), "{ch}");
    assert!(
        ch.contains("scope=\"repository:team/other:pull,push\""),
        "{ch}"
    );
    let r = alice
        .http
        .delete(format!("{}/v2/team/app/manifests/{d}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A tampered or foreign token is invalid.
    let mut forged = t.clone();
    forged.pop();
    forged.push(if t.ends_with('A') { 'B' } else { 'A' });
    let r = bearer_client(&s.url, &forged).get("/v2/").await;
    assert_eq!(r.status(), 401);
    let ch = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(ch.contains("error=\"invalid_token\""), "{ch}");
    assert_eq!(error_code(r).await, "UNAUTHORIZED");
}

#[tokio::test]
async fn instances_sharing_a_secret_accept_each_others_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let c1 = with_tokens(config(dir.path()), dir.path());
    let c2 = c1.clone();
    let other_dir = tempfile::tempdir().unwrap();
    let c3 = with_tokens(config(other_dir.path()), other_dir.path());
    let s1 = serve(c1, dir).await;
    let s2 = Server::with_config(c2).await;
    let s3 = serve(c3, other_dir).await;
    let t = token_for(
        &s1.url,
        Some(("alice", "alice-pw")),
        &["repository:team/app:pull,push"],
    )
    .await;
    let d = bearer_client(&s1.url, &t)
        .push_image("team/app", "v1", b"through one instance")
        .await;
    let r = bearer_client(&s2.url, &t)
        .get(&format!("/v2/team/app/manifests/{d}"))
        .await;
    assert_eq!(
        r.status(),
        200,
        "the second instance accepts the first one's token"
    );
    let r = bearer_client(&s3.url, &t).get("/v2/").await;
    assert_eq!(r.status(), 401, "another secret does not");
}

#[tokio::test]
async fn anonymous_pull_works_without_a_token_in_bearer_mode() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = with_tokens(config(dir.path()), dir.path());
    c.auth.anonymous_pull = Some(true);
    let s = serve(c, dir).await;
    let t = token_for(
        &s.url,
        Some(("admin", "admin-pw")),
        &["repository:lib:push"],
    )
    .await;
    let d = bearer_client(&s.url, &t)
        .push_image("lib", "v1", b"lib layer")
        .await;
    let anon = Client::new(&s.url);
    assert_eq!(anon.get("/v2/").await.status(), 401, "the probe challenges");
    assert_eq!(
        anon.get(&format!("/v2/lib/manifests/{d}")).await.status(),
        200
    );
    // What a client does after the challenge: an anonymous token, good for the probe.
    let t = token_for(&s.url, None, &[]).await;
    assert_eq!(bearer_client(&s.url, &t).get("/v2/").await.status(), 200);
    let t = token_for(&s.url, None, &["repository:lib:pull,push"]).await;
    assert_eq!(
        claims(&t)["access"],
        serde_json::json!([{"type": "repository", "name": "lib", "actions": ["pull"]}])
    );
}

#[tokio::test]
async fn mount_from_an_unreadable_repository_becomes_a_plain_upload() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.auth.access = vec![
        rule("alice", &["team/*"], &["pull", "push"]),
        rule("bob", &["bob/*"], &["pull", "push"]),
    ];
    let s = serve(c, dir).await;
    let alice = basic_client(&s.url, "alice", "alice-pw");
    let bob = basic_client(&s.url, "bob", "bob-pw");
    let secret = b"alice's private layer";
    let d = alice.push_blob("team/private", secret).await;
    let r = bob
        .http
        .post(format!(
            "{}/v2/bob/mine/blobs/uploads/?mount={d}&from=team/private",
            s.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "a session, not a mount");
    assert_eq!(
        bob.get(&format!("/v2/bob/mine/blobs/{d}")).await.status(),
        404
    );
    // Alice may read team/private, so her mount into team/copy works.
    let r = alice
        .http
        .post(format!(
            "{}/v2/team/copy/blobs/uploads/?mount={d}&from=team/private",
            s.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        alice
            .get(&format!("/v2/team/copy/blobs/{d}"))
            .await
            .status(),
        200
    );
}

#[test]
fn bad_configurations_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    std::fs::write(dir.path().join("htpasswd"), "alice:$apr1$xyz$abc\n").unwrap();
    let e = berth_registry::auth::Auth::new(&c.auth)
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 1") && e.contains("bcrypt"), "{e}");
    c.auth.htpasswd = None;
    c.auth.access.clear();
    c.auth.anonymous_pull = Some(false);
    let e = berth_registry::auth::Auth::new(&c.auth)
        .unwrap_err()
        .to_string();
    assert!(e.contains("htpasswd"), "{e}");
}

#[tokio::test]
async fn handlers_see_the_principal_in_request_extensions() {
    use axum::Extension;
    use axum::routing::get;
    use berth_registry::auth::Principal;
    use berth_registry::http::auth::guard;
    use tower::ServiceExt as _;

    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.auth.anonymous_pull = Some(true);
    let state = berth_registry::AppState::new(c).unwrap();
    let app = axum::Router::new()
        .route(
            "/v2/{*rest}",
            get(|Extension(p): Extension<Principal>| async move {
                p.0.unwrap_or_else(|| "(anonymous)".into())
            }),
        )
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state);
    let call = |auth: Option<&str>| {
        let mut b = axum::http::Request::get("/v2/team/app/tags/list");
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        let req = b.body(axum::body::Body::empty()).unwrap();
        let app = app.clone();
        async move {
            let resp = app.oneshot(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            let p = resp.extensions().get::<Principal>().cloned();
            let body = axum::body::to_bytes(resp.into_body(), 1 << 10)
                .await
                .unwrap();
            (String::from_utf8(body.to_vec()).unwrap(), p)
        }
    };
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("bob:bob-pw")
    );
    assert_eq!(
        call(Some(&basic)).await,
        ("bob".to_string(), Some(Principal(Some("bob".into()))))
    );
    assert_eq!(
        call(None).await,
        ("(anonymous)".to_string(), Some(Principal(None)))
    );
}

#[tokio::test]
async fn listings_show_only_the_repositories_a_user_may_pull() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.search.poll_ms = 50;
    let s = serve(c, dir).await;
    let admin = basic_client(&s.url, "admin", "admin-pw");
    admin.push_image("team/app", "v1", b"team layer").await;
    admin.push_image("secret/db", "v1", b"secret layer").await;
    let alice = basic_client(&s.url, "alice", "alice-pw");
    let bob = basic_client(&s.url, "bob", "bob-pw");
    // Bob may pull everything: once the index holds both, listings differ only by rights.
    let mut seen = 0;
    for _ in 0..200 {
        let v: Value = bob.get("/v2/_berth/search?q=").await.json().await.unwrap();
        seen = v["total"].as_u64().unwrap();
        if seen == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(seen, 2, "bob's search never showed both repositories");

    let names = |v: &Value, field: &str| -> Vec<String> {
        v[field]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    };
    let cat: Value = alice.get("/v2/_catalog").await.json().await.unwrap();
    assert_eq!(names(&cat, "repositories"), ["team/app"]);
    let cat: Value = bob.get("/v2/_catalog").await.json().await.unwrap();
    assert_eq!(names(&cat, "repositories"), ["secret/db", "team/app"]);

    let found: Value = alice
        .get("/v2/_berth/search?q=v1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found["total"], 1);
    assert_eq!(found["results"][0]["repository"], "team/app");

    let home = alice.get("/").await.text().await.unwrap();
    assert!(
        home.contains("team/app") && !home.contains("secret/db"),
        "{home}"
    );
    let hits = alice.get("/?q=layer").await.text().await.unwrap();
    assert!(!hits.contains("secret/db"), "{hits}");
    let r = alice.get("/ui/r/secret/db").await;
    assert_eq!(r.status(), 404);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Repository secret/db was not found")
    );
    let m = digest(b"secret layer");
    let r = alice.get(&format!("/ui/r/secret/db/m/{m}")).await;
    assert_eq!(r.status(), 404);
    assert_eq!(bob.get("/ui/r/secret/db").await.status(), 200);
    assert_eq!(alice.get("/ui/r/team/app").await.status(), 200);
}
