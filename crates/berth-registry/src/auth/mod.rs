//! Authentication and authorisation: who the client is, and whether it may do what it asks.
//!
//! [`guard`] runs in front of every request and decides before any handler runs, so a refused
//! request changes nothing. What a request needs:
//! - `/metrics` and `/token`: nothing (the token endpoint checks credentials itself);
//! - `/v2/`: any authenticated client, and anonymous ones only when there are no users (or,
//!   in bearer mode with anonymous pull, when they hold an anonymous token). Clients
//!   (Docker, containers/image, go-containerregistry) probe `/v2/` first and take the
//!   challenge of its 401 as the way to authenticate for the whole session: a 200 there would
//!   make them never send credentials, so no push could succeed. With anonymous pull on, an
//!   anonymous client still pulls: in bearer mode it fetches an anonymous token, in basic mode it
//!   carries on without credentials (Docker itself refuses to do that; skopeo, podman and crane
//!   do), and its pulls pass;
//! - `/v2/_catalog`, `/v2/_berth/search`, the web pages and unparseable `/v2` paths: anonymous
//!   pull, or any authenticated client; the catalog, search results and pages show only the repositories
//!   the client may pull ([`Auth::may_pull`]), so names, tags and labels of the others stay hidden;
//! - repository routes: `pull` for GET/HEAD, `delete` for DELETE, `push` for every other
//!   method. A cross-repository mount (`POST …/blobs/uploads/?mount=D&from=OTHER`) also needs
//!   `pull` on `OTHER`; without it the guard drops `mount`/`from` from the URL, so the request
//!   becomes a plain upload start (202), as the spec allows when a mount cannot be done.
//!
//! Who may do what:
//! - **No htpasswd file**: there are no users; everyone may pull, push and delete everywhere
//!   (an open registry). `anonymous_pull = false` or `access` rules without an htpasswd file are
//!   configuration errors, since nobody could ever use them. Credentials sent anyway are ignored.
//! - **With htpasswd** (bcrypt entries only): `anonymous_pull` defaults to false. An
//!   authenticated user may do what anonymous clients may, plus the actions of every `access`
//!   rule whose `user` is its name or `*` and one of whose patterns matches the repository.
//!   Patterns are globs where `*` matches any run of characters, `/` included (`team/*` matches
//!   `team/a` and `team/a/b`; `*` matches all). With no `access` rules at all, every user may
//!   pull, push and delete everywhere. Good verifications are cached for 30 s under
//!   (user, sha256(password)), since bcrypt costs tens of milliseconds.
//! - **Basic mode** (no `token_secret_file`): clients send `Authorization: Basic`. Missing
//!   credentials where they are needed and bad credentials anywhere give 401 UNAUTHORIZED with
//!   `WWW-Authenticate: Basic realm="<service>"`; a user lacking the right gets 403 DENIED.
//! - **Bearer mode** (`token_secret_file`, ≥ 32 bytes, trailing whitespace ignored): clients get
//!   tokens from `GET /token?service=…&scope=repository:NAME:pull,push` (Basic credentials, or
//!   none for an anonymous token) and send `Authorization: Bearer`. A token grants the
//!   intersection of what was asked and what the rules allow. Tokens are HS256 JWTs (`iss`
//!   `berth-registry`, `sub` user or empty, `aud` the service, `exp`/`nbf`/`iat` checked with 60 s
//!   leeway, `jti`, `access`), so any instance with the same secret accepts them. A request
//!   without a token may still do what anonymous clients may; otherwise 401 with
//!   `WWW-Authenticate: Bearer realm=…,service=…,scope=…`, plus `error="invalid_token"` for a bad
//!   token or `error="insufficient_scope"` for a good token that lacks the action. Basic
//!   credentials on API requests are ignored in this mode.
//!
//! The user name (or `None`) is put into the request's and the response's extensions as a
//! [`Principal`], for handlers and the access log.

mod access;
mod htpasswd;
mod jwt;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

pub use access::{Action, Actions, glob_match};
pub use jwt::{AccessEntry, Claims, TokenError};

use crate::config::AuthConfig;
use crate::error::ApiError;
use crate::route::Route;
use crate::server::AppState;
use access::Policy;
use htpasswd::Htpasswd;
use jwt::TokenKey;

/// The smallest token secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

const API_VERSION_HEADER: &str = "docker-distribution-api-version";

/// Why auth could not be set up from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The htpasswd file could not be read.
    #[error("reading htpasswd file {path}: {source}")]
    ReadHtpasswd {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A line of the htpasswd file is unusable.
    #[error("htpasswd file {path}, line {line}: {why}")]
    HtpasswdLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
    /// The htpasswd file names no user.
    #[error("htpasswd file {path} has no users")]
    NoHtpasswdUsers {
        /// The file.
        path: PathBuf,
    },
    /// The token secret could not be read.
    #[error("reading token secret {path}: {source}")]
    ReadSecret {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The token secret is too short to sign with.
    #[error("token secret {path} has {len} bytes; at least {MIN_SECRET_BYTES} are needed")]
    SecretTooShort {
        /// The file.
        path: PathBuf,
        /// Its length after trimming trailing whitespace.
        len: usize,
    },
    /// A setting needs users, but no htpasswd file is configured.
    #[error("auth config: {why} needs an htpasswd file (without one there are no users)")]
    NoUsers {
        /// The setting.
        why: &'static str,
    },
    /// An access rule is invalid.
    #[error("auth config: access rule {index}: {why}")]
    Rule {
        /// 1-based position in `access`.
        index: usize,
        /// What is wrong with it.
        why: String,
    },
    /// Tokens would expire at once.
    #[error("auth config: token_ttl_secs must be at least 1")]
    TokenTtl,
}

/// The authenticated user of a request (`None`: anonymous), in request and response extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(pub Option<String>);

/// Who may do what, and how clients prove who they are.
#[derive(Debug)]
pub struct Auth {
    users: Option<Arc<Htpasswd>>,
    policy: Policy,
    tokens: Option<TokenKey>,
    service: String,
    realm: Option<String>,
    ttl: u64,
}

/// Who a request comes from.
enum Identity {
    Anonymous,
    User(String),
    Token(Claims),
}

impl Identity {
    fn user(&self) -> Option<String> {
        match self {
            Identity::Anonymous => None,
            Identity::User(u) => Some(u.clone()),
            Identity::Token(c) => (!c.sub.is_empty()).then(|| c.sub.clone()),
        }
    }
}

/// What a request needs.
enum Need {
    /// Nothing (`/metrics`, `/token`).
    Open,
    /// Anonymous pull or any authenticated client.
    Entry,
    /// The `/v2/` probe: any authenticated client; anonymous clients only when there are no
    /// users at all.
    Login,
    /// An action on a repository.
    Repo { name: String, action: Action },
}

impl Need {
    fn of(method: &Method, path: &str) -> Need {
        match Route::parse(path) {
            None if path == "/metrics" || path == "/token" => Need::Open,
            None | Some(Err(_)) => Need::Entry,
            Some(Ok(Route::Base)) => Need::Login,
            Some(Ok(route)) => match route.repository() {
                None => Need::Entry,
                Some(name) => Need::Repo {
                    name: name.to_string(),
                    action: action_of(method),
                },
            },
        }
    }
}

/// The action a method needs on a repository route.
fn action_of(method: &Method) -> Action {
    match *method {
        Method::GET | Method::HEAD => Action::Pull,
        Method::DELETE => Action::Delete,
        _ => Action::Push,
    }
}

impl Auth {
    /// Sets auth up: reads the htpasswd file and the token secret, checks the rules.
    pub fn new(config: &AuthConfig) -> Result<Auth, AuthError> {
        let users = match &config.htpasswd {
            Some(p) => Some(Arc::new(Htpasswd::load(p)?)),
            None => None,
        };
        let policy = Policy::new(config, users.is_some())?;
        if let Some(u) = &users {
            for name in policy.named_users().filter(|n| !u.contains(n)) {
                tracing::warn!(
                    user = name,
                    "an access rule names a user the htpasswd file lacks"
                );
            }
        }
        let tokens = match &config.token_secret_file {
            Some(path) => {
                let mut secret = std::fs::read(path).map_err(|source| AuthError::ReadSecret {
                    path: path.clone(),
                    source,
                })?;
                while secret.last().is_some_and(|b| b.is_ascii_whitespace()) {
                    secret.pop();
                }
                if secret.len() < MIN_SECRET_BYTES {
                    return Err(AuthError::SecretTooShort {
                        path: path.clone(),
                        len: secret.len(),
                    });
                }
                if config.token_ttl_secs == 0 {
                    return Err(AuthError::TokenTtl);
                }
                Some(TokenKey::new(secret, &config.token_service))
            }
            None => None,
        };
        Ok(Auth {
            users,
            policy,
            tokens,
            service: config.token_service.clone(),
            realm: config.token_realm.clone(),
            ttl: config.token_ttl_secs,
        })
    }

    /// Whether clients without credentials may pull.
    pub fn anonymous_pull(&self) -> bool {
        self.policy.anonymous_pull()
    }

    /// Whether clients authenticate with bearer tokens from `/token` (else with Basic).
    pub fn issues_tokens(&self) -> bool {
        self.tokens.is_some()
    }

    /// Checks Basic credentials; `Ok(None)` when none were sent or there are no users.
    async fn basic_user(&self, headers: &HeaderMap) -> Result<Option<String>, ()> {
        let Some(users) = &self.users else {
            return Ok(None);
        };
        let Some((user, password)) = basic_credentials(headers) else {
            return Ok(None);
        };
        if users.verify(&user, &password).await {
            Ok(Some(user))
        } else {
            Err(())
        }
    }

    /// Works out who sent the request.
    async fn identify(&self, headers: &HeaderMap) -> Result<Identity, Refusal> {
        match &self.tokens {
            None => match self.basic_user(headers).await {
                Ok(Some(u)) => Ok(Identity::User(u)),
                Ok(None) => Ok(Identity::Anonymous),
                Err(()) => Err(Refusal::BadCredentials),
            },
            Some(key) => match bearer_token(headers) {
                None => Ok(Identity::Anonymous),
                Some(t) => key
                    .verify(t, now_secs())
                    .map(Identity::Token)
                    .map_err(Refusal::BadToken),
            },
        }
    }

    /// Whether the request's principal may pull `repository`: listings (the catalog, search and
    /// the web pages) show only such repositories, so a user who may pull some repositories does
    /// not learn the names, tags or labels of the others.
    pub fn may_pull(&self, principal: Option<&Principal>, repository: &str) -> bool {
        let user = principal.and_then(|p| p.0.as_deref());
        self.policy
            .allowed(user, repository)
            .contains(access::Action::Pull)
    }

    /// What `who` may do on `repository`.
    fn may(&self, who: &Identity, repository: &str) -> Actions {
        match who {
            Identity::Anonymous => self.policy.allowed(None, repository),
            Identity::User(u) => self.policy.allowed(Some(u), repository),
            Identity::Token(c) => {
                let mut set = self.policy.allowed(None, repository);
                for e in &c.access {
                    if e.kind == "repository" && e.name == repository {
                        let granted = Actions::parse(e.actions.iter().map(String::as_str))
                            .unwrap_or_default();
                        set = set.union(granted);
                    }
                }
                set
            }
        }
    }

    /// The `WWW-Authenticate` value for a refusal.
    fn challenge(
        &self,
        state: &AppState,
        headers: &HeaderMap,
        need: &Need,
        error: Option<&str>,
    ) -> String {
        if self.tokens.is_none() {
            return format!("Basic realm=\"{}\"", self.service);
        }
        let realm = match &self.realm {
            Some(r) => r.clone(),
            None => {
                let scheme = if state.config.tls.is_some() {
                    "https"
                } else {
                    "http"
                };
                let host = headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .filter(|h| !h.is_empty() && !h.contains(['"', ' ', '/', '\\']))
                    .unwrap_or(&state.config.addr);
                format!("{scheme}://{host}/token")
            }
        };
        let mut c = format!("Bearer realm=\"{realm}\",service=\"{}\"", self.service);
        if let Need::Repo { name, action } = need {
            let actions = match action {
                Action::Pull => "pull",
                Action::Push => "pull,push",
                Action::Delete => "delete",
            };
            c.push_str(&format!(",scope=\"repository:{name}:{actions}\""));
        }
        if let Some(e) = error {
            c.push_str(&format!(",error=\"{e}\""));
        }
        c
    }
}

/// Why a request is refused.
enum Refusal {
    BadCredentials,
    BadToken(TokenError),
}

/// The middleware in front of every request: identifies the client, refuses what it may not
/// do (before any handler runs), and records the [`Principal`].
pub async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let auth = state.auth.clone();
    let need = Need::of(req.method(), req.uri().path());
    if matches!(need, Need::Open) {
        return next.run(req).await;
    }
    let who = match auth.identify(req.headers()).await {
        Ok(who) => who,
        Err(Refusal::BadCredentials) => {
            let ch = auth.challenge(&state, req.headers(), &need, None);
            return refuse(
                ApiError::unauthorized("invalid username or password"),
                &ch,
                None,
            );
        }
        Err(Refusal::BadToken(e)) => {
            let ch = auth.challenge(&state, req.headers(), &need, Some("invalid_token"));
            return refuse(ApiError::unauthorized(e.to_string()), &ch, None);
        }
    };
    let user = who.user();
    let allowed = match &need {
        Need::Open => true,
        // An anonymous token (empty subject) is no login: it opens only what anonymous may.
        Need::Entry => auth.anonymous_pull() || user.is_some(),
        Need::Login => {
            auth.users.is_none()
                || user.is_some()
                || (auth.anonymous_pull() && matches!(who, Identity::Token(_)))
        }
        Need::Repo { name, action } => auth.may(&who, name).contains(*action),
    };
    if !allowed {
        let what = match &need {
            Need::Repo { name, action } => format!("{} on repository {name}", action.as_str()),
            _ => "access to this registry".to_string(),
        };
        let (err, error_param) = match &who {
            Identity::Anonymous => (
                ApiError::unauthorized(format!("authentication required for {what}")),
                None,
            ),
            Identity::User(u) => (ApiError::denied(format!("user {u} may not {what}")), None),
            Identity::Token(_) => (
                ApiError::unauthorized(format!("token does not grant {what}")),
                Some("insufficient_scope"),
            ),
        };
        let ch = (err.status == StatusCode::UNAUTHORIZED)
            .then(|| auth.challenge(&state, req.headers(), &need, error_param));
        return refuse(err, ch.as_deref().unwrap_or(""), user);
    }
    if let Need::Repo {
        action: Action::Push,
        ..
    } = &need
        && *req.method() == Method::POST
        && let Some(from) = mount_source(req.uri())
        && !auth.may(&who, &from).contains(Action::Pull)
    {
        tracing::debug!(from = %from, user = ?user, "mount source not pullable: plain upload instead");
        match without_mount(req.uri()) {
            Some(uri) => *req.uri_mut() = uri,
            // Never let the mount through unchecked.
            None => {
                return refuse(
                    ApiError::denied(format!("may not mount from repository {from}")),
                    "",
                    user,
                );
            }
        }
    }
    req.extensions_mut().insert(Principal(user.clone()));
    let mut resp = next.run(req).await;
    resp.extensions_mut().insert(Principal(user));
    resp
}

/// A refusal response: the spec's error body, the challenge (if any) and the API version.
fn refuse(err: ApiError, challenge: &str, user: Option<String>) -> Response {
    let mut err = err.with_header(
        header::HeaderName::from_static(API_VERSION_HEADER),
        "registry/2.0",
    );
    if !challenge.is_empty() {
        err = err.with_header(header::WWW_AUTHENTICATE, challenge);
    }
    let mut resp = err.into_response();
    resp.extensions_mut().insert(Principal(user));
    resp
}

/// `from` of a mount request (`?mount=…&from=…`), if both are present.
fn mount_source(uri: &Uri) -> Option<String> {
    let pairs = query_pairs(uri.query()?);
    pairs.iter().find(|(k, _)| k == "mount")?;
    pairs.into_iter().find(|(k, _)| k == "from").map(|(_, v)| v)
}

/// The URI with `mount` and `from` removed from its query (other parameters kept verbatim).
fn without_mount(uri: &Uri) -> Option<Uri> {
    let query = uri.query().unwrap_or("");
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| {
            let key = kv.split_once('=').map_or(*kv, |(k, _)| k);
            !kv.is_empty() && !matches!(percent_decode(key).as_str(), "mount" | "from")
        })
        .collect();
    let pq = if kept.is_empty() {
        uri.path().to_string()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(pq).ok()?);
    Uri::from_parts(parts).ok()
}

/// The `GET /token` endpoint (bearer mode): issues a token for the requested scopes, granting
/// what both the request and the rules allow.
pub async fn token(State(state): State<AppState>, req: Request) -> Response {
    let auth = &state.auth;
    let Some(key) = &auth.tokens else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "UNSUPPORTED",
            "this registry does not issue tokens (no token_secret_file is configured)",
        )
        .into_response();
    };
    let params = query_pairs(req.uri().query().unwrap_or(""));
    if let Some((_, s)) = params.iter().find(|(k, _)| k == "service")
        && *s != auth.service
    {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
            format!(
                "tokens are issued for service {:?}, not {s:?}",
                auth.service
            ),
        )
        .into_response();
    }
    let user = match auth.basic_user(req.headers()).await {
        Ok(u) => u,
        Err(()) => {
            return refuse(
                ApiError::unauthorized("invalid username or password"),
                &format!("Basic realm=\"{}\"", auth.service),
                None,
            );
        }
    };
    let mut grants: Vec<AccessEntry> = Vec::new();
    let scopes = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split_whitespace());
    for scope in scopes {
        let Some((kind, name, actions)) = parse_scope(scope) else {
            continue;
        };
        match kind {
            "repository" => {
                if crate::names::check_name(name).is_err() {
                    continue;
                }
                let asked = actions
                    .iter()
                    .filter_map(|a| Actions::parse([*a]).ok())
                    .fold(Actions::NONE, Actions::union);
                let granted = asked.intersect(auth.policy.allowed(user.as_deref(), name));
                if granted.is_empty() {
                    continue;
                }
                match grants
                    .iter_mut()
                    .find(|g| g.kind == "repository" && g.name == name)
                {
                    Some(g) => {
                        let had = Actions::parse(g.actions.iter().map(String::as_str))
                            .unwrap_or_default();
                        g.actions = had.union(granted).names();
                    }
                    None => grants.push(AccessEntry {
                        kind: "repository".into(),
                        name: name.into(),
                        actions: granted.names(),
                    }),
                }
            }
            "registry" if name == "catalog" => {
                let open = auth.anonymous_pull() || user.is_some();
                if open && !grants.iter().any(|g| g.kind == "registry") {
                    grants.push(AccessEntry {
                        kind: "registry".into(),
                        name: "catalog".into(),
                        actions: vec!["*".into()],
                    });
                }
            }
            _ => {}
        }
    }
    let now = now_secs();
    let t = key.sign(user.as_deref().unwrap_or(""), grants, now, auth.ttl);
    tracing::debug!(user = ?user, "token issued");
    let body = serde_json::json!({
        "token": t,
        "access_token": t,
        "expires_in": auth.ttl,
        "issued_at": rfc3339(now),
    });
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body.to_string(),
    )
        .into_response()
}

/// Splits `type[(class)]:name:action,action`.
fn parse_scope(scope: &str) -> Option<(&str, &str, Vec<&str>)> {
    let (kind, rest) = scope.split_once(':')?;
    let kind = kind.split_once('(').map_or(kind, |(k, _)| k);
    let (name, actions) = rest.rsplit_once(':')?;
    if name.is_empty() {
        return None;
    }
    Some((kind, name, actions.split(',').map(str::trim).collect()))
}

/// `Authorization: Basic` user and password.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    // containers/image answers a Basic challenge with `:` when it has no credentials: that is
    // an anonymous client, not a failed login (no htpasswd user has an empty name).
    if u.is_empty() {
        return None;
    }
    Some((u.to_string(), p.to_string()))
}

/// `Authorization: Bearer` token.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// Decoded `key=value` pairs of a query string (`+` is a space).
fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds (days to civil date after Howard Hinnant).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn query_decoding() {
        let q = query_pairs("scope=repository%3Aa%2Fb%3Apull%2Cpush&service=reg+x&bad=%zz&e");
        assert_eq!(q[0], ("scope".into(), "repository:a/b:pull,push".into()));
        assert_eq!(q[1], ("service".into(), "reg x".into()));
        assert_eq!(q[2], ("bad".into(), "%zz".into()));
        assert_eq!(q[3], ("e".into(), String::new()));
        assert_eq!(percent_decode("%4"), "%4");
    }

    #[test]
    fn scopes_parse_with_classes_and_actions() {
        assert_eq!(
            parse_scope("repository:a/b:pull,push"),
            Some(("repository", "a/b", vec!["pull", "push"]))
        );
        assert_eq!(
            parse_scope("repository(plugin):x:pull"),
            Some(("repository", "x", vec!["pull"]))
        );
        assert_eq!(
            parse_scope("registry:catalog:*"),
            Some(("registry", "catalog", vec!["*"]))
        );
        assert_eq!(parse_scope("repository::pull"), None);
        assert_eq!(parse_scope("nonsense"), None);
    }

    #[test]
    fn mount_parameters_are_found_and_stripped() {
        let u: Uri = "/v2/b/blobs/uploads/?mount=sha256%3Aab&from=a%2Fx&other=1"
            .parse()
            .unwrap();
        assert_eq!(mount_source(&u).as_deref(), Some("a/x"));
        let stripped = without_mount(&u).unwrap();
        assert_eq!(stripped.to_string(), "/v2/b/blobs/uploads/?other=1");
        assert_eq!(mount_source(&stripped), None);
        let u: Uri = "/v2/b/blobs/uploads/?from=a&mount=x".parse().unwrap();
        assert_eq!(
            without_mount(&u).unwrap().to_string(),
            "/v2/b/blobs/uploads/"
        );
        let u: Uri = "/v2/b/blobs/uploads/?from=a".parse().unwrap();
        assert_eq!(mount_source(&u), None, "from without mount is no mount");
    }

    #[test]
    fn needs_follow_routes_and_methods() {
        let n = |m: Method, p: &str| match Need::of(&m, p) {
            Need::Open => "open".to_string(),
            Need::Entry => "entry".to_string(),
            Need::Login => "login".to_string(),
            Need::Repo { name, action } => format!("{name}:{}", action.as_str()),
        };
        assert_eq!(n(Method::GET, "/metrics"), "open");
        assert_eq!(n(Method::GET, "/token"), "open");
        assert_eq!(n(Method::GET, "/v2/"), "login");
        assert_eq!(n(Method::GET, "/v2/_catalog"), "entry");
        assert_eq!(n(Method::GET, "/v2/_berth/search"), "entry");
        assert_eq!(n(Method::GET, "/"), "entry");
        assert_eq!(n(Method::GET, "/ui/repo/a"), "entry");
        assert_eq!(n(Method::GET, "/v2/A/manifests/x"), "entry");
        assert_eq!(n(Method::HEAD, "/v2/a/b/blobs/sha256:00"), "a/b:pull");
        assert_eq!(n(Method::GET, "/v2/a/tags/list"), "a:pull");
        assert_eq!(n(Method::POST, "/v2/a/blobs/uploads/"), "a:push");
        assert_eq!(n(Method::PATCH, "/v2/a/blobs/uploads/x"), "a:push");
        assert_eq!(n(Method::PUT, "/v2/a/manifests/t"), "a:push");
        assert_eq!(n(Method::DELETE, "/v2/a/manifests/t"), "a:delete");
        assert_eq!(n(Method::OPTIONS, "/v2/a/manifests/t"), "a:push");
    }

    #[test]
    fn credentials_are_parsed_from_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YWxpY2U6cDpx"),
        );
        assert_eq!(basic_credentials(&h), Some(("alice".into(), "p:q".into())));
        assert_eq!(bearer_token(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic Og=="),
        );
        assert_eq!(basic_credentials(&h), None, "an empty user is anonymous");
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer abc.def.ghi"),
        );
        assert_eq!(bearer_token(&h), Some("abc.def.ghi"));
        assert_eq!(basic_credentials(&h), None);
    }

    #[test]
    fn short_secrets_and_missing_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, format!("{}\n", "x".repeat(31))).unwrap();
        let c = AuthConfig {
            token_secret_file: Some(secret.clone()),
            ..AuthConfig::default()
        };
        let e = Auth::new(&c).unwrap_err().to_string();
        assert!(e.contains("31 bytes") && e.contains("secret"), "{e}");
        std::fs::write(&secret, "x".repeat(32)).unwrap();
        assert!(Auth::new(&c).unwrap().issues_tokens());
        let c = AuthConfig {
            htpasswd: Some(dir.path().join("missing")),
            ..AuthConfig::default()
        };
        let e = Auth::new(&c).unwrap_err().to_string();
        assert!(e.contains("missing"), "{e}");
    }
}
