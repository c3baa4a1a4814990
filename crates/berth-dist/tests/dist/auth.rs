//! Authentication against the real berth registry in this process: Basic mode, bearer tokens
//! with per-repository rules, anonymous pull, the token cache, and `login`.

use crate::common::{Registry, digest};
use base64::Engine as _;
use berth_dist::auth::Credential;
use berth_dist::client::{Body, Scope};
use berth_dist::{Client, Error};
use berth_registry::config::Config as RegistryConfig;
use http::{HeaderMap, Method};
use std::path::Path;

use berth_testkit::registry::{USERS, rule, write_htpasswd};

/// Auth settings in `dir`: alice pushes `team/*`, bob pulls `team/app` only, admin does all;
/// bearer tokens when `tokens`.
fn auth(dir: &Path, tokens: bool, anonymous_pull: bool) -> impl FnOnce(&mut RegistryConfig) {
    let htpasswd = dir.join("htpasswd");
    write_htpasswd(&htpasswd, &USERS, false);
    let secret = dir.join("secret");
    std::fs::write(&secret, hex::encode(rand::random::<[u8; 32]>())).unwrap();
    move |c: &mut RegistryConfig| {
        c.auth.htpasswd = Some(htpasswd);
        c.auth.access = vec![
            rule("alice", &["team/*"], &["pull", "push"]),
            rule("bob", &["team/app"], &["pull"]),
            rule("admin", &["*"], &["*"]),
        ];
        if tokens {
            c.auth.token_secret_file = Some(secret);
        }
        if anonymous_pull {
            c.auth.anonymous_pull = Some(true);
        }
    }
}

/// A client with its own (empty) credential files, logged in as `user` when given.
fn client_as(dir: &Path, host: &str, user: Option<&str>) -> Client {
    match user {
        Some(u) => client_with(dir, host, u, USERS.iter().find(|(n, _)| *n == u).unwrap().1),
        None => crate::common::client(dir),
    }
}

/// A client holding the credential `user`/`password` for `host`, right or wrong.
fn client_with(dir: &Path, host: &str, user: &str, password: &str) -> Client {
    let c = crate::common::client(dir);
    let cred = Credential {
        username: user.into(),
        secret: password.into(),
    };
    c.auth().store(host, &cred).unwrap();
    c
}

/// Uploads a blob with a monolithic POST + PUT through `send`.
async fn push_blob(c: &Client, host: &str, repo: &str, data: &[u8]) -> Result<String, Error> {
    let scopes = [Scope::push(repo)];
    let r = c
        .send(
            host,
            &scopes,
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/"),
            HeaderMap::new(),
            Body::Empty,
        )
        .await?;
    assert_eq!(r.status(), 202, "start upload");
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let d = digest(data);
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = c
        .send(
            host,
            &scopes,
            Method::PUT,
            &format!("{loc}{sep}digest={d}"),
            HeaderMap::new(),
            Body::Bytes(data.to_vec().into()),
        )
        .await?;
    assert_eq!(r.status(), 201, "finish upload");
    Ok(d)
}

/// Pushes a one-layer image as `repo:tag` through `send`.
async fn push_image(c: &Client, host: &str, repo: &str, tag: &str) -> Result<String, Error> {
    let layer = format!("layer of {repo}").into_bytes();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let cd = push_blob(c, host, repo, config).await?;
    let ld = push_blob(c, host, repo, &layer).await?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": layer.len()}],
    }))
    .unwrap();
    let mut h = HeaderMap::new();
    h.insert(
        "content-type",
        "application/vnd.oci.image.manifest.v1+json"
            .parse()
            .unwrap(),
    );
    let r = c
        .send(
            host,
            &[Scope::push(repo)],
            Method::PUT,
            &format!("/v2/{repo}/manifests/{tag}"),
            h,
            Body::Bytes(manifest.clone().into()),
        )
        .await?;
    assert_eq!(r.status(), 201, "put manifest");
    Ok(digest(&manifest))
}

/// The tags of `repo`, through `send` with pull scope.
async fn tags(c: &Client, host: &str, repo: &str) -> Result<Vec<String>, Error> {
    let r = c
        .send(
            host,
            &[Scope::pull(repo)],
            Method::GET,
            &format!("/v2/{repo}/tags/list"),
            HeaderMap::new(),
            Body::Empty,
        )
        .await?;
    assert_eq!(r.status(), 200, "tags of {repo}");
    let v: serde_json::Value = r.json().await.unwrap();
    Ok(v["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect())
}

/// Token requests the registry has answered so far, from its Prometheus counters.
async fn token_requests(reg: &Registry) -> u64 {
    let text = reqwest::get(format!("{}/metrics", reg.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("berth_registry_requests_total{route=\"token\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

/// The `access` claim of a JWT: (repository, sorted actions) pairs, sorted.
fn access(token: &str) -> Vec<(String, Vec<String>)> {
    let part = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap();
    let mut out: Vec<(String, Vec<String>)> = claims["access"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let mut acts: Vec<String> = a["actions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_owned())
                .collect();
            acts.sort();
            (a["name"].as_str().unwrap().to_owned(), acts)
        })
        .collect();
    out.sort();
    out
}

fn refused(e: &Error) -> bool {
    matches!(e, Error::Unauthorized { .. } | Error::Denied { .. })
}

#[tokio::test]
async fn basic_mode_right_wrong_and_no_password() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start_with(auth(dir.path(), false, false)).await;
    let host = reg.host.clone();

    let admin = client_as(&dir.path().join("admin"), &host, Some("admin"));
    push_image(&admin, &host, "team/app", "v1").await.unwrap();
    assert_eq!(tags(&admin, &host, "team/app").await.unwrap(), ["v1"]);

    let wrong = client_with(&dir.path().join("wrong"), &host, "admin", "nope");
    let e = tags(&wrong, &host, "team/app").await.unwrap_err();
    assert!(matches!(e, Error::Unauthorized { .. }), "{e}");
    assert!(e.to_string().contains("berth login"), "{e}");

    let anon = client_as(&dir.path().join("anon"), &host, None);
    let e = tags(&anon, &host, "team/app").await.unwrap_err();
    assert!(matches!(e, Error::Unauthorized { .. }), "{e}");

    // bob may pull team/app but not push there: Basic mode answers 403.
    let bob = client_as(&dir.path().join("bob"), &host, Some("bob"));
    assert_eq!(tags(&bob, &host, "team/app").await.unwrap(), ["v1"]);
    let e = push_image(&bob, &host, "team/app", "v2").await.unwrap_err();
    assert!(matches!(e, Error::Denied { .. }), "{e}");
}

#[tokio::test]
async fn bearer_mode_follows_per_repository_rules() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start_with(auth(dir.path(), true, false)).await;
    let host = reg.host.clone();

    let alice = client_as(&dir.path().join("alice"), &host, Some("alice"));
    push_image(&alice, &host, "team/app", "v1").await.unwrap();
    assert_eq!(tags(&alice, &host, "team/app").await.unwrap(), ["v1"]);
    let e = push_image(&alice, &host, "other/app", "v1")
        .await
        .unwrap_err();
    assert!(refused(&e), "{e}");

    let bob = client_as(&dir.path().join("bob"), &host, Some("bob"));
    assert_eq!(tags(&bob, &host, "team/app").await.unwrap(), ["v1"]);
    let e = push_image(&bob, &host, "team/app", "v2").await.unwrap_err();
    assert!(refused(&e), "{e}");
    let e = tags(&bob, &host, "team/other").await.unwrap_err();
    assert!(refused(&e), "{e}");
    // Nothing of bob's attempt became visible.
    assert_eq!(tags(&alice, &host, "team/app").await.unwrap(), ["v1"]);

    let anon = client_as(&dir.path().join("anon"), &host, None);
    let e = tags(&anon, &host, "team/app").await.unwrap_err();
    assert!(refused(&e), "{e}");

    let wrong = client_with(&dir.path().join("wrong"), &host, "alice", "bad");
    let e = tags(&wrong, &host, "team/app").await.unwrap_err();
    assert!(matches!(e, Error::Unauthorized { .. }), "{e}");
}

#[tokio::test]
async fn tokens_hold_exactly_the_scopes_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start_with(auth(dir.path(), true, false)).await;
    let host = reg.host.clone();
    let alice = client_as(&dir.path().join("alice"), &host, Some("alice"));
    push_image(&alice, &host, "team/base", "v1").await.unwrap();

    // One request with two scopes, as a cross-repository mount needs.
    let scopes = [Scope::push("team/app"), Scope::pull("team/base")];
    let r = alice
        .send(
            &host,
            &scopes,
            Method::GET,
            "/v2/team/base/tags/list",
            HeaderMap::new(),
            Body::Empty,
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tokens = alice.cached_tokens(&host).await;
    let (_, two) = tokens
        .iter()
        .find(|(k, _)| k.len() == 2)
        .expect("a token for the two scopes");
    assert_eq!(
        tokens.iter().find(|(k, _)| k.len() == 2).unwrap().0,
        ["repository:team/app:pull,push", "repository:team/base:pull"]
    );
    assert_eq!(
        access(two),
        [
            (
                "team/app".to_owned(),
                vec!["pull".to_owned(), "push".to_owned()]
            ),
            ("team/base".to_owned(), vec!["pull".to_owned()]),
        ]
    );
    // The push token of the image upload names only team/base.
    let (_, push) = tokens
        .iter()
        .find(|(k, _)| k == &["repository:team/base:pull,push"])
        .expect("the push token");
    assert_eq!(
        access(push),
        [(
            "team/base".to_owned(),
            vec!["pull".to_owned(), "push".to_owned()]
        )]
    );
}

#[tokio::test]
async fn tokens_are_cached_per_scope_set() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start_with(auth(dir.path(), true, false)).await;
    let host = reg.host.clone();
    let admin = client_as(&dir.path().join("admin"), &host, Some("admin"));
    push_image(&admin, &host, "team/app", "v1").await.unwrap();

    let c = client_as(&dir.path().join("alice"), &host, Some("alice"));
    let before = token_requests(&reg).await;
    for _ in 0..5 {
        tags(&c, &host, "team/app").await.unwrap();
    }
    assert_eq!(
        token_requests(&reg).await - before,
        1,
        "one token for five pulls"
    );
    // The same scopes in another order share the token; another scope set gets its own.
    let order = [
        [Scope::pull("team/app"), Scope::pull("team/x")],
        [Scope::pull("team/x"), Scope::pull("team/app")],
    ];
    for scopes in &order {
        let r = c
            .send(
                &host,
                scopes,
                Method::GET,
                "/v2/team/app/tags/list",
                HeaderMap::new(),
                Body::Empty,
            )
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(token_requests(&reg).await - before, 2);
    // A new client starts afresh.
    let c2 = client_as(&dir.path().join("alice2"), &host, Some("alice"));
    tags(&c2, &host, "team/app").await.unwrap();
    assert_eq!(token_requests(&reg).await - before, 3);
}

#[tokio::test]
async fn anonymous_pull_when_the_registry_allows_it() {
    for tokens in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::start_with(auth(dir.path(), tokens, true)).await;
        let host = reg.host.clone();
        let admin = client_as(&dir.path().join("admin"), &host, Some("admin"));
        push_image(&admin, &host, "team/app", "v1").await.unwrap();

        let anon = client_as(&dir.path().join("anon"), &host, None);
        assert_eq!(
            tags(&anon, &host, "team/app").await.unwrap(),
            ["v1"],
            "tokens: {tokens}"
        );
        let e = push_image(&anon, &host, "team/app", "v2")
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::Unauthorized { .. }),
            "tokens {tokens}: {e}"
        );
    }
}

#[tokio::test]
async fn login_checks_the_password_in_both_modes() {
    for tokens in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::start_with(auth(dir.path(), tokens, false)).await;
        let host = reg.host.clone();
        let c = crate::common::client(dir.path());
        let good = Credential {
            username: "bob".into(),
            secret: "bob-pw".into(),
        };
        let bad = Credential {
            username: "bob".into(),
            secret: "bob-pw2".into(),
        };
        let e = c.login(&host, &bad).await.unwrap_err();
        assert!(
            matches!(e, Error::Unauthorized { .. }),
            "tokens {tokens}: {e}"
        );
        c.login(&host, &good).await.unwrap();
        // Login stores nothing, but the client uses the credential from then on.
        assert_eq!(c.auth().get(&host).unwrap(), None);
        let e = tags(&c, &host, "team/other").await.unwrap_err();
        assert!(refused(&e), "{e}");
        let empty = c
            .send(
                &host,
                &[Scope::pull("team/app")],
                Method::GET,
                "/v2/team/app/tags/list",
                HeaderMap::new(),
                Body::Empty,
            )
            .await
            .unwrap();
        assert_eq!(empty.status(), 404, "bob may look, the repository is empty");
    }
    // A registry without auth accepts any login.
    let dir = tempfile::tempdir().unwrap();
    let open = Registry::start().await;
    let c = crate::common::client(dir.path());
    c.login(
        &open.host,
        &Credential {
            username: "x".into(),
            secret: "y".into(),
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn parallel_first_requests_share_one_ping_and_one_token() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start_with(auth(dir.path(), true, false)).await;
    let host = reg.host.clone();
    let admin = client_as(&dir.path().join("admin"), &host, Some("admin"));
    push_image(&admin, &host, "team/app", "v1").await.unwrap();

    let before = token_requests(&reg).await;
    let c = client_as(&dir.path().join("alice"), &host, Some("alice"));
    let all = futures::future::join_all((0..8).map(|_| tags(&c, &host, "team/app"))).await;
    for t in all {
        assert_eq!(t.unwrap(), ["v1"]);
    }
    assert_eq!(token_requests(&reg).await - before, 1);
}

#[tokio::test]
async fn token_endpoint_failures_are_clear_errors() {
    // A realm nobody listens on, and a realm that answers something that is not a token.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut tweak = Some(auth(dir.path(), true, false));
    let dead = Registry::start_with(|c| {
        tweak.take().unwrap()(c);
        c.auth.token_realm = Some(format!("http://{closed}/token"));
    })
    .await;
    let c = client_as(&dir.path().join("a"), &dead.host, Some("alice"));
    let e = tags(&c, &dead.host, "team/app").await.unwrap_err();
    eprintln!("{e}");
    assert!(matches!(e, Error::Token { .. }), "{e}");
    assert!(e.to_string().contains(&closed.to_string()), "{e}");

    // The realm answers 200 with plain text: the first registry's metrics page.
    let dir2 = tempfile::tempdir().unwrap();
    let mut tweak = Some(auth(dir2.path(), true, false));
    let metrics = format!("{}/metrics", dead.url());
    let odd = Registry::start_with(|c| {
        tweak.take().unwrap()(c);
        c.auth.token_realm = Some(metrics);
    })
    .await;
    let c = client_as(&dir2.path().join("a"), &odd.host, Some("alice"));
    let e = tags(&c, &odd.host, "team/app").await.unwrap_err();
    eprintln!("{e}");
    assert!(matches!(e, Error::Token { .. }), "{e}");
    assert!(e.to_string().contains("not a token"), "{e}");
}

#[tokio::test]
async fn a_mirror_for_docker_hub_gets_its_own_credential_never_docker_hubs() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start_with(auth(dir.path(), false, false)).await;
    let host = reg.host.clone();
    let admin = client_as(&dir.path().join("admin"), &host, Some("admin"));
    push_image(&admin, &host, "library/busybox", "latest")
        .await
        .unwrap();
    let mirrored = |name: &str| {
        let d = dir.path().join(name);
        let base = crate::common::client(&d).config().clone();
        berth_dist::Client::new(berth_dist::Config {
            default_registry: Some(host.clone()),
            ..base
        })
        .unwrap()
    };
    let cred = |user: &str, pw: &str| Credential {
        username: user.into(),
        secret: pw.into(),
    };

    // Docker Hub's password is not sent to the mirror.
    let hub_only = mirrored("hub-only");
    hub_only
        .auth()
        .store("docker.io", &cred("admin", "admin-pw"))
        .unwrap();
    let e = tags(&hub_only, "docker.io", "library/busybox")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unauthorized { .. }), "{e}");

    // The credential stored for the mirror's host is.
    let own = mirrored("own");
    own.auth().store(&host, &cred("admin", "admin-pw")).unwrap();
    assert_eq!(
        tags(&own, "docker.io", "library/busybox").await.unwrap(),
        ["latest"]
    );
}
