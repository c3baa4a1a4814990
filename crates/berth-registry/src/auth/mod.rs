//! Authentication and authorisation: who the client is, and whether it may do what it asks.
//!
//! This module holds the rules and the credentials (no HTTP): the HTTP layer's guard
//! (`http::auth`) runs in front of every request and asks it before any handler runs, so a
//! refused request changes nothing. What a request needs:
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

pub use access::{Action, Actions, glob_match};
pub use jwt::{AccessEntry, Claims, TokenError};

use crate::config::AuthConfig;
use access::Policy;
use htpasswd::Htpasswd;
use jwt::TokenKey;

/// The smallest token secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

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
#[derive(Debug)]
pub enum Identity {
    /// No credentials.
    Anonymous,
    /// A user who sent a good password.
    User(String),
    /// A good bearer token (its subject may be empty: an anonymous token).
    Token(Claims),
}

impl Identity {
    /// The user name, if any (`None` for anonymous clients and anonymous tokens).
    pub fn user(&self) -> Option<String> {
        match self {
            Identity::Anonymous => None,
            Identity::User(u) => Some(u.clone()),
            Identity::Token(c) => (!c.sub.is_empty()).then(|| c.sub.clone()),
        }
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

    /// Whether there are users (an htpasswd file); without, the registry is open.
    pub fn has_users(&self) -> bool {
        self.users.is_some()
    }

    /// The service name tokens are issued for (and Basic challenges name).
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Checks Basic credentials; `Ok(None)` when none were sent or there are no users.
    pub async fn basic_user(
        &self,
        credentials: Option<(String, String)>,
    ) -> Result<Option<String>, Refusal> {
        let Some(users) = &self.users else {
            return Ok(None);
        };
        let Some((user, password)) = credentials else {
            return Ok(None);
        };
        if users.verify(&user, &password).await {
            Ok(Some(user))
        } else {
            Err(Refusal::BadCredentials)
        }
    }

    /// Works out who sent a request from its Basic credentials and bearer token (whichever the
    /// mode uses; the other is ignored).
    pub async fn identify(
        &self,
        basic: Option<(String, String)>,
        bearer: Option<&str>,
    ) -> Result<Identity, Refusal> {
        match &self.tokens {
            None => match self.basic_user(basic).await? {
                Some(u) => Ok(Identity::User(u)),
                None => Ok(Identity::Anonymous),
            },
            Some(key) => match bearer {
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
    pub fn may(&self, who: &Identity, repository: &str) -> Actions {
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

    /// The `WWW-Authenticate` value for a refusal: Basic with the service as realm, or Bearer
    /// with the configured realm (else `default_realm`), the service, the scope a repository
    /// action needs and the token error, if any.
    pub fn challenge(
        &self,
        default_realm: impl FnOnce() -> String,
        scope: Option<(&str, Action)>,
        error: Option<&str>,
    ) -> String {
        if self.tokens.is_none() {
            return format!("Basic realm=\"{}\"", self.service);
        }
        let realm = match &self.realm {
            Some(r) => r.clone(),
            None => default_realm(),
        };
        let mut c = format!("Bearer realm=\"{realm}\",service=\"{}\"", self.service);
        if let Some((name, action)) = scope {
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

    /// Issues a token for `user` (`None`: anonymous) granting, of the requested `scopes`
    /// (`type[(class)]:name:action,…`), what the rules allow; `None` in Basic mode.
    pub fn issue_token<'a>(
        &self,
        user: Option<&str>,
        scopes: impl IntoIterator<Item = &'a str>,
    ) -> Option<IssuedToken> {
        let key = self.tokens.as_ref()?;
        let mut grants: Vec<AccessEntry> = Vec::new();
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
                    let granted = asked.intersect(self.policy.allowed(user, name));
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
                    let open = self.anonymous_pull() || user.is_some();
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
        Some(IssuedToken {
            token: key.sign(user.unwrap_or(""), grants, now, self.ttl),
            issued_at: now,
            expires_in: self.ttl,
        })
    }
}

/// A signed token and its lifetime.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The JWT.
    pub token: String,
    /// When it was issued, in Unix seconds.
    pub issued_at: u64,
    /// How long it is valid, in seconds.
    pub expires_in: u64,
}

/// Why a client's credentials are refused.
#[derive(Debug)]
pub enum Refusal {
    /// A wrong user name or password.
    BadCredentials,
    /// A bad or expired token.
    BadToken(TokenError),
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

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

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
