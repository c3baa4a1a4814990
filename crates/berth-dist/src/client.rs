//! The HTTP side: one [`Client`] per command, holding per-registry state (scheme, TLS roots, the
//! auth challenge from `GET /v2/`, cached bearer tokens by scope). `pull` and `push` call
//! [`Client::send`] with the scopes a request needs; authentication is handled here.

use crate::auth::challenge::{self, Challenge};
use crate::auth::{AuthStore, Credential};
use crate::config::{Config, is_insecure};
use crate::error::{Error, Result};
use base64::Engine as _;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a request may do in one repository, as a token scope (`repository:NAME:ACTIONS`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    /// Repository path, without the registry (`library/busybox`).
    pub repository: String,
    /// `true`: pull and push; `false`: pull only.
    pub push: bool,
}

impl Scope {
    /// Pull access to `repository`.
    pub fn pull(repository: &str) -> Scope {
        Scope {
            repository: repository.to_owned(),
            push: false,
        }
    }

    /// Pull and push access to `repository`.
    pub fn push(repository: &str) -> Scope {
        Scope {
            repository: repository.to_owned(),
            push: true,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let actions = if self.push { "pull,push" } else { "pull" };
        write!(f, "repository:{}:{actions}", self.repository)
    }
}

/// A request body that can be sent again (after a 401 and a fresh token, or a redirect).
#[derive(Debug, Clone)]
pub enum Body {
    /// No body.
    Empty,
    /// Bytes in memory (manifests, configs).
    Bytes(Bytes),
    /// `len` bytes of a file from `offset` (blobs and chunks of blobs from the store), streamed.
    File {
        /// The file.
        path: PathBuf,
        /// First byte to send.
        offset: u64,
        /// Number of bytes to send.
        len: u64,
        /// Told the bytes of this body sent so far, as they go (upload progress).
        progress: Option<SentBytes>,
    },
}

/// A callback told how many bytes of a [`Body::File`] have been handed to the connection.
#[derive(Clone)]
pub struct SentBytes(pub Arc<dyn Fn(u64) + Send + Sync>);

impl std::fmt::Debug for SentBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SentBytes")
    }
}

/// A registry client, shared by every transfer of one command. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    auth: AuthStore,
    /// Per registry (as named), set up on first use; the async lock makes parallel first
    /// requests wait for one ping instead of each pinging.
    registries: tokio::sync::Mutex<HashMap<String, Arc<Registry>>>,
}

/// A bearer token and when to stop using it.
struct Token {
    value: String,
    expires: Instant,
}

/// What is known of one registry host.
struct Registry {
    /// The host asked for (`docker.io`, `127.0.0.1:5000`).
    name: String,
    /// `https://host` or `http://host`.
    base: String,
    http: reqwest::Client,
    /// The challenge of `GET /v2/` (or of a later 401); `None`: no auth needed so far.
    challenge: Mutex<Option<Challenge>>,
    /// The stored credential, looked up on first need (`Some(None)`: there is none).
    cred: Mutex<Option<Option<Credential>>>,
    /// Bearer tokens by sorted scope set.
    tokens: tokio::sync::Mutex<HashMap<Vec<String>, Token>>,
    /// The client for a token realm on another host.
    realm_http: Mutex<Option<reqwest::Client>>,
}

/// How long a token lives when the endpoint does not say (as Docker).
const DEFAULT_TOKEN_SECS: u64 = 60;

impl Client {
    /// A client with these settings, reading credentials as `config` says.
    pub fn new(config: Config) -> Result<Client> {
        let auth = AuthStore::new(&config);
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                auth,
                registries: tokio::sync::Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The credential store (`berth login` / `logout`).
    pub fn auth(&self) -> &AuthStore {
        &self.inner.auth
    }

    /// The host actually contacted for a reference's registry: `docker.io` becomes the configured
    /// default registry, or `registry-1.docker.io`.
    pub fn endpoint_host(&self, registry: &str) -> String {
        if registry == "docker.io" {
            self.inner
                .config
                .default_registry
                .clone()
                .unwrap_or_else(|| "registry-1.docker.io".to_owned())
        } else {
            registry.to_owned()
        }
    }

    /// Sends a request to `registry` (as named in a reference), authenticated for `scopes`.
    /// `target` is a path starting with `/v2/` (with any query) or an absolute URL (an upload
    /// `Location`). Returns the response whatever its status, except that 401 (after trying the
    /// credentials and tokens available) becomes [`Error::Unauthorized`] and 403 [`Error::Denied`].
    /// Credentials go only to the registry's own host: not to absolute URLs elsewhere, and not
    /// across redirects to another host.
    pub async fn send(
        &self,
        registry: &str,
        scopes: &[Scope],
        method: Method,
        target: &str,
        mut headers: HeaderMap,
        body: Body,
    ) -> Result<reqwest::Response> {
        let reg = self.registry(registry).await?;
        let url = if target.starts_with("http://") || target.starts_with("https://") {
            target.to_owned()
        } else {
            format!("{}{target}", reg.base)
        };
        let own_host = same_origin(&url, &reg.base);
        if let Body::File { len, .. } = &body
            && !headers.contains_key(CONTENT_LENGTH)
        {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(*len));
        }
        let scope_text = scope_list(scopes);
        let mut authz = match (own_host, reg.current_challenge()) {
            (true, Some(ch)) => self.authorization(&reg, &ch, scopes, None, false).await?,
            _ => None,
        };
        let mut retried = false;
        loop {
            let mut req = reg
                .http
                .request(method.clone(), &url)
                .headers(headers.clone())
                .body(to_reqwest_body(&body).await?);
            if let Some(a) = &authz {
                req = req.header(AUTHORIZATION, a.clone());
            }
            let resp = req.send().await.map_err(|e| Error::Transfer {
                registry: reg.name.clone(),
                what: format!("{method} {}", path_of(&url)),
                message: chain(&e),
            })?;
            match resp.status() {
                StatusCode::UNAUTHORIZED if !retried && own_host => {
                    retried = true;
                    // A fresh challenge: a token lacking scope, an expired one, or a registry
                    // that wants auth only here. Get new authorization once and resend.
                    let fresh = challenge::pick(challenge::parse(
                        resp.headers()
                            .get_all(WWW_AUTHENTICATE)
                            .iter()
                            .filter_map(|v| v.to_str().ok()),
                    ));
                    if let Some(ch) = fresh {
                        *reg.challenge.lock().unwrap() = Some(ch.clone());
                        let extra = match &ch {
                            Challenge::Bearer { scope, .. } => scope.clone(),
                            Challenge::Basic { .. } => None,
                        };
                        let next = self
                            .authorization(&reg, &ch, scopes, extra.as_deref(), true)
                            .await?;
                        if next.is_some() && next != authz {
                            drop(resp);
                            authz = next;
                            continue;
                        }
                    }
                    return Err(Error::Unauthorized {
                        registry: registry.to_owned(),
                        scope: scope_text,
                        detail: detail(resp).await,
                    });
                }
                StatusCode::UNAUTHORIZED => {
                    return Err(Error::Unauthorized {
                        registry: registry.to_owned(),
                        scope: scope_text,
                        detail: detail(resp).await,
                    });
                }
                StatusCode::FORBIDDEN => {
                    return Err(Error::Denied {
                        registry: registry.to_owned(),
                        scope: scope_text,
                        detail: detail(resp).await,
                    });
                }
                _ => return Ok(resp),
            }
        }
    }

    /// Checks `cred` against `registry` as `docker login` does: Basic auth on `GET /v2/`, or a
    /// token without scope then `GET /v2/` with it. A registry that wants no auth accepts any
    /// credential. Does not store it; on success this client uses it from then on.
    pub async fn login(&self, registry: &str, cred: &Credential) -> Result<()> {
        let reg = self.registry(registry).await?;
        let url = format!("{}/v2/", reg.base);
        let authz = match reg.current_challenge() {
            None => return Ok(()),
            Some(Challenge::Basic { .. }) => basic_header(cred),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let (token, _) = self
                    .fetch_token(&reg, &realm, service.as_deref(), &[], Some(cred))
                    .await?;
                bearer_header(&token, &reg.name, &realm)?
            }
        };
        let resp = reg
            .http
            .get(&url)
            .header(AUTHORIZATION, authz)
            .send()
            .await
            .map_err(|e| Error::Unreachable {
                registry: registry.to_owned(),
                message: chain(&e),
            })?;
        match resp.status() {
            s if s.is_success() => {
                *reg.cred.lock().unwrap() = Some(Some(cred.clone()));
                reg.tokens.lock().await.clear();
                Ok(())
            }
            StatusCode::UNAUTHORIZED => Err(Error::Unauthorized {
                registry: registry.to_owned(),
                scope: "login".to_owned(),
                detail: detail(resp).await,
            }),
            StatusCode::FORBIDDEN => Err(Error::Denied {
                registry: registry.to_owned(),
                scope: "login".to_owned(),
                detail: detail(resp).await,
            }),
            _ => Err(Client::error_for(registry, "GET /v2/ (login)", resp).await),
        }
    }

    /// The base URL `registry` is spoken to at (`https://host[:port]` or `http://…`), pinging it
    /// first if this client has not yet.
    pub async fn endpoint_url(&self, registry: &str) -> Result<String> {
        Ok(self.registry(registry).await?.base.clone())
    }

    /// The bearer tokens this client holds for `registry`, with the sorted scopes each was asked
    /// for (for tests and diagnostics).
    #[doc(hidden)]
    pub async fn cached_tokens(&self, registry: &str) -> Vec<(Vec<String>, String)> {
        let Some(reg) = self.inner.registries.lock().await.get(registry).cloned() else {
            return Vec::new();
        };
        let tokens = reg.tokens.lock().await;
        let mut out: Vec<_> = tokens
            .iter()
            .map(|(k, t)| (k.clone(), t.value.clone()))
            .collect();
        out.sort();
        out
    }

    /// The error for an unexpected response: the registry's own message when its body has one.
    pub async fn error_for(registry: &str, what: &str, resp: reqwest::Response) -> Error {
        let status = resp.status().as_u16();
        Error::Status {
            registry: registry.to_owned(),
            what: what.to_owned(),
            status,
            detail: detail(resp).await,
        }
    }

    /// The `Authorization` value for a request needing `scopes` under challenge `ch`: the
    /// credential for Basic, a (cached unless `fresh`) token for Bearer; `None` without one.
    async fn authorization(
        &self,
        reg: &Registry,
        ch: &Challenge,
        scopes: &[Scope],
        extra_scope: Option<&str>,
        fresh: bool,
    ) -> Result<Option<HeaderValue>> {
        match ch {
            Challenge::Basic { .. } => Ok(self.credential(reg)?.as_ref().map(basic_header)),
            Challenge::Bearer { realm, service, .. } => {
                let mut key: Vec<String> = scopes.iter().map(Scope::to_string).collect();
                key.sort();
                key.dedup();
                let mut tokens = reg.tokens.lock().await;
                if !fresh && let Some(t) = tokens.get(&key).filter(|t| t.expires > Instant::now()) {
                    return bearer_header(&t.value, &reg.name, realm).map(Some);
                }
                let mut asked = key.clone();
                if let Some(x) = extra_scope.filter(|x| !x.is_empty()) {
                    for s in x.split(' ') {
                        if !asked.iter().any(|a| a == s) {
                            asked.push(s.to_owned());
                        }
                    }
                }
                let cred = self.credential(reg)?;
                let (value, life) = self
                    .fetch_token(reg, realm, service.as_deref(), &asked, cred.as_ref())
                    .await?;
                let header = bearer_header(&value, &reg.name, realm)?;
                // Stop using a token a little before it expires, so it does not lapse in flight.
                let margin = if life > Duration::from_secs(20) {
                    Duration::from_secs(10)
                } else {
                    Duration::ZERO
                };
                tokens.insert(
                    key,
                    Token {
                        value,
                        expires: Instant::now() + life - margin,
                    },
                );
                Ok(Some(header))
            }
        }
    }

    /// The stored credential for a registry, looked up once. A mirror standing in for Docker Hub
    /// (`default_registry`) gets the credential stored for the mirror's own host, never Docker
    /// Hub's: the mirror is another party.
    fn credential(&self, reg: &Registry) -> Result<Option<Credential>> {
        let mut slot = reg.cred.lock().unwrap();
        if let Some(c) = &*slot {
            return Ok(c.clone());
        }
        let c = self.inner.auth.get(&self.endpoint_host(&reg.name))?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Asks the token endpoint for a token for `scopes` (none: just checks `cred`); returns it
    /// and how long it lives.
    async fn fetch_token(
        &self,
        reg: &Registry,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        cred: Option<&Credential>,
    ) -> Result<(String, Duration)> {
        let fail = |message: String| Error::Token {
            registry: reg.name.clone(),
            realm: realm.to_owned(),
            message,
        };
        if !(realm.starts_with("https://") || realm.starts_with("http://")) {
            return Err(fail("the realm is not an http(s) URL".into()));
        }
        let http = if same_origin(realm, &reg.base) {
            reg.http.clone()
        } else {
            self.realm_client(reg, realm)?
        };
        let req = match cred {
            Some(c) if c.is_identity_token() => {
                let mut form: Vec<(&str, &str)> = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &c.secret),
                    ("client_id", "berth"),
                ];
                if let Some(s) = service {
                    form.push(("service", s));
                }
                let joined = scopes.join(" ");
                if !joined.is_empty() {
                    form.push(("scope", &joined));
                }
                // The url crate's form serializer, through a throwaway URL's query.
                let mut encoder = reqwest::Url::parse("http://form.invalid/").expect("valid URL");
                encoder.query_pairs_mut().extend_pairs(&form);
                let body = encoder.query().unwrap_or_default().to_owned();
                http.post(realm)
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body)
            }
            _ => {
                let mut query: Vec<(&str, &str)> = Vec::new();
                if let Some(s) = service {
                    query.push(("service", s));
                }
                if let Some(c) = cred {
                    query.push(("account", &c.username));
                }
                query.extend(scopes.iter().map(|s| ("scope", s.as_str())));
                let mut r = http.get(realm).query(&query);
                if let Some(c) = cred {
                    r = r.basic_auth(&c.username, Some(&c.secret));
                }
                r
            }
        };
        let resp = req.send().await.map_err(|e| fail(chain(&e)))?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::UNAUTHORIZED => {
                return Err(Error::Unauthorized {
                    registry: reg.name.clone(),
                    scope: if scopes.is_empty() {
                        "login".to_owned()
                    } else {
                        scopes.join(" ")
                    },
                    detail: detail(resp).await,
                });
            }
            StatusCode::FORBIDDEN => {
                return Err(Error::Denied {
                    registry: reg.name.clone(),
                    scope: scopes.join(" "),
                    detail: detail(resp).await,
                });
            }
            s => {
                let status = s.as_u16();
                return Err(fail(format!("HTTP {status}{}", detail(resp).await)));
            }
        }
        let body = resp.bytes().await.map_err(|e| fail(chain(&e)))?;
        #[derive(serde::Deserialize)]
        struct Reply {
            #[serde(default)]
            token: String,
            #[serde(default)]
            access_token: String,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let r: Reply = serde_json::from_slice(&body)
            .map_err(|e| fail(format!("the answer is not a token: {e}")))?;
        let token = if r.token.is_empty() {
            r.access_token
        } else {
            r.token
        };
        if token.is_empty() {
            return Err(fail("the answer holds no token".into()));
        }
        let secs = r
            .expires_in
            .filter(|s| *s > 0)
            .unwrap_or(DEFAULT_TOKEN_SECS);
        Ok((token, Duration::from_secs(secs)))
    }

    /// The HTTP client for a token realm on another host than the registry.
    fn realm_client(&self, reg: &Registry, realm: &str) -> Result<reqwest::Client> {
        let mut slot = reg.realm_http.lock().unwrap();
        if let Some(c) = &*slot {
            return Ok(c.clone());
        }
        let host = realm
            .split_once("://")
            .map(|(_, r)| r.split(['/', '?']).next().unwrap_or(r))
            .unwrap_or(realm);
        let verify = !is_insecure(&self.inner.config, host);
        let c = self.http_client(&reg.name, host, verify)?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// A reqwest client for `host`: verifying certificates against the web PKI roots plus
    /// `<certs_dir>/<host>/*.crt`, or (insecure hosts) not verifying.
    fn http_client(&self, registry: &str, host: &str, verify: bool) -> Result<reqwest::Client> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30));
        if verify {
            for ca in extra_roots(&self.inner.config.certs_dir, host, registry)? {
                b = b.add_root_certificate(ca);
            }
        } else {
            // Nothing is verified, so skip loading the web PKI roots (≈ 18 ms in debug builds,
            // most of a client's set-up).
            b = b
                .danger_accept_invalid_certs(true)
                .tls_built_in_root_certs(false);
        }
        b.build().map_err(|e| Error::Unreachable {
            registry: registry.to_owned(),
            message: format!("setting up HTTP: {}", chain(&e)),
        })
    }

    async fn registry(&self, name: &str) -> Result<Arc<Registry>> {
        let mut map = self.inner.registries.lock().await;
        if let Some(r) = map.get(name) {
            return Ok(r.clone());
        }
        let host = self.endpoint_host(name);
        let verify = !is_insecure(&self.inner.config, &host);
        let http = self.http_client(name, &host, verify)?;
        // Secure hosts: https only. Insecure ones: https without verification, then plain
        // http when that fails to connect (as Docker does).
        let (base, ping) = match ping(&http, &format!("https://{host}")).await {
            Ok(resp) => (format!("https://{host}"), resp),
            Err(e) if verify => {
                return Err(Error::Unreachable {
                    registry: name.to_owned(),
                    message: chain(&e),
                });
            }
            Err(_) => {
                let base = format!("http://{host}");
                match ping(&http, &base).await {
                    Ok(resp) => (base, resp),
                    Err(e) => {
                        return Err(Error::Unreachable {
                            registry: name.to_owned(),
                            message: chain(&e),
                        });
                    }
                }
            }
        };
        let challenge = if ping.status() == StatusCode::UNAUTHORIZED {
            challenge::pick(challenge::parse(
                ping.headers()
                    .get_all(WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            ))
        } else {
            None
        };
        drop(ping);
        tracing::debug!(registry = name, %base, ?challenge, "registry set up");
        let reg = Arc::new(Registry {
            name: name.to_owned(),
            base,
            http,
            challenge: Mutex::new(challenge),
            cred: Mutex::new(None),
            tokens: tokio::sync::Mutex::new(HashMap::new()),
            realm_http: Mutex::new(None),
        });
        map.insert(name.to_owned(), reg.clone());
        Ok(reg)
    }
}

impl Registry {
    fn current_challenge(&self) -> Option<Challenge> {
        self.challenge.lock().unwrap().clone()
    }
}

/// `GET {base}/v2/`, consuming the body so the connection is reused.
async fn ping(http: &reqwest::Client, base: &str) -> reqwest::Result<reqwest::Response> {
    http.get(format!("{base}/v2/")).send().await
}

/// Whether `url` is on the same scheme, host and port as `base` (`scheme://host[:port]`).
fn same_origin(url: &str, base: &str) -> bool {
    url.strip_prefix(base)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?']))
}

/// Scopes as they appear in messages.
fn scope_list(scopes: &[Scope]) -> String {
    if scopes.is_empty() {
        return "the registry".to_owned();
    }
    scopes
        .iter()
        .map(Scope::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

fn basic_header(cred: &Credential) -> HeaderValue {
    let raw = format!("{}:{}", cred.username, cred.secret);
    let mut v = HeaderValue::from_str(&format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    ))
    .expect("base64 is a valid header value");
    v.set_sensitive(true);
    v
}

fn bearer_header(token: &str, registry: &str, realm: &str) -> Result<HeaderValue> {
    let mut v = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| Error::Token {
        registry: registry.to_owned(),
        realm: realm.to_owned(),
        message: "the token holds characters not allowed in a header".into(),
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// The CA certificates in `<certs_dir>/<host>/*.crt` (none when the directory is missing).
fn extra_roots(certs_dir: &Path, host: &str, registry: &str) -> Result<Vec<reqwest::Certificate>> {
    let dir = certs_dir.join(host);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Config {
                what: "reading CA certificates in",
                path: dir,
                message: format!("{e} (for {registry})"),
            });
        }
    };
    let mut out = Vec::new();
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .collect();
    paths.sort();
    for p in paths {
        let bad = |message: String| Error::Config {
            what: "reading CA certificate",
            path: p.clone(),
            message,
        };
        let pem = std::fs::read(&p).map_err(|e| bad(e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(chain(&e)))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate in it".into()));
        }
        out.extend(certs);
    }
    Ok(out)
}

async fn to_reqwest_body(body: &Body) -> Result<reqwest::Body> {
    Ok(match body {
        Body::Empty => reqwest::Body::from(Bytes::new()),
        Body::Bytes(b) => reqwest::Body::from(b.clone()),
        Body::File {
            path,
            offset,
            len,
            progress,
        } => {
            use tokio::io::{AsyncReadExt, AsyncSeekExt};
            let mut f = tokio::fs::File::open(path)
                .await
                .map_err(|e| Error::Invalid(format!("opening {}: {e}", path.display())))?;
            f.seek(std::io::SeekFrom::Start(*offset))
                .await
                .map_err(|e| Error::Invalid(format!("seeking {}: {e}", path.display())))?;
            let stream = tokio_util_like_stream(f.take(*len), progress.clone());
            reqwest::Body::wrap_stream(stream)
        }
    })
}

/// Streams an async reader in 256 KiB pieces, telling `progress` the running total.
fn tokio_util_like_stream(
    r: impl tokio::io::AsyncRead + Send + Unpin + 'static,
    progress: Option<SentBytes>,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures::stream::unfold((r, 0u64), move |(mut r, sent)| {
        let progress = progress.clone();
        async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 256 * 1024];
            match r.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    let sent = sent + n as u64;
                    if let Some(p) = &progress {
                        (p.0)(sent);
                    }
                    Some((Ok(Bytes::from(buf)), (r, sent)))
                }
                Err(e) => Some((Err(e), (r, sent))),
            }
        }
    })
}

/// The path (and query) of a URL, for messages.
pub(crate) fn path_of(url: &str) -> &str {
    url.find("://")
        .and_then(|i| url[i + 3..].find('/').map(|j| &url[i + 3 + j..]))
        .unwrap_or(url)
}

/// An error and its sources on one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// The registry's error message from a response body (`{"errors":[{"code","message"}]}`),
/// prefixed with ": ", or empty.
pub(crate) async fn detail(resp: reqwest::Response) -> String {
    let Ok(body) = resp.bytes().await else {
        return String::new();
    };
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Errors>(&body) {
        Ok(e) if !e.errors.is_empty() => {
            let parts: Vec<String> = e
                .errors
                .iter()
                .map(|i| match (i.code.is_empty(), i.message.is_empty()) {
                    (false, false) => format!("{} ({})", i.message, i.code),
                    (true, false) => i.message.clone(),
                    _ => i.code.clone(),
                })
                .collect();
            format!(": {}", parts.join("; "))
        }
        _ => String::new(),
    }
}
