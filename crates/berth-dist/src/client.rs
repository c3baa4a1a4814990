//! The HTTP side: one [`Client`] per command, holding per-registry state (scheme, TLS roots, the
//! auth challenge from `GET /v2/`, cached bearer tokens by scope). `pull` and `push` call
//! [`Client::send`] with the scopes a request needs; authentication is handled here.

use crate::auth::AuthStore;
use crate::config::Config;
use crate::error::{Error, Result};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

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
    },
}

/// A registry client, shared by every transfer of one command. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    auth: AuthStore,
    registries: Mutex<HashMap<String, Arc<Registry>>>,
}

/// What is known of one registry host.
struct Registry {
    /// The host asked for (`docker.io`, `127.0.0.1:5000`).
    name: String,
    /// `https://host` or `http://host`.
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// A client with these settings, reading credentials as `config` says.
    pub fn new(config: Config) -> Result<Client> {
        let auth = AuthStore::new(&config);
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                auth,
                registries: Mutex::new(HashMap::new()),
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
    pub async fn send(
        &self,
        registry: &str,
        scopes: &[Scope],
        method: Method,
        target: &str,
        headers: HeaderMap,
        body: Body,
    ) -> Result<reqwest::Response> {
        let reg = self.registry(registry).await?;
        let url = if target.starts_with("http://") || target.starts_with("https://") {
            target.to_owned()
        } else {
            format!("{}{target}", reg.base)
        };
        let req = reg
            .http
            .request(method.clone(), &url)
            .headers(headers)
            .body(to_reqwest_body(&body).await?);
        let resp = req.send().await.map_err(|e| Error::Transfer {
            registry: reg.name.clone(),
            what: format!("{method} {}", path_of(&url)),
            message: chain(&e),
        })?;
        let scope = scopes
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        match resp.status() {
            StatusCode::UNAUTHORIZED => Err(Error::Unauthorized {
                registry: registry.to_owned(),
                scope,
                detail: detail(resp).await,
            }),
            StatusCode::FORBIDDEN => Err(Error::Denied {
                registry: registry.to_owned(),
                scope,
                detail: detail(resp).await,
            }),
            _ => Ok(resp),
        }
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

    async fn registry(&self, name: &str) -> Result<Arc<Registry>> {
        if let Some(r) = self.inner.registries.lock().unwrap().get(name) {
            return Ok(r.clone());
        }
        let host = self.endpoint_host(name);
        let scheme = if crate::config::is_insecure(&self.inner.config, &host) {
            "http"
        } else {
            "https"
        };
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| Error::Unreachable {
                registry: name.to_owned(),
                message: chain(&e),
            })?;
        let reg = Arc::new(Registry {
            name: name.to_owned(),
            base: format!("{scheme}://{host}"),
            http,
        });
        let ping = reg
            .http
            .get(format!("{}/v2/", reg.base))
            .send()
            .await
            .map_err(|e| Error::Unreachable {
                registry: name.to_owned(),
                message: chain(&e),
            })?;
        drop(ping);
        self.inner
            .registries
            .lock()
            .unwrap()
            .insert(name.to_owned(), reg.clone());
        Ok(reg)
    }
}

async fn to_reqwest_body(body: &Body) -> Result<reqwest::Body> {
    Ok(match body {
        Body::Empty => reqwest::Body::from(Bytes::new()),
        Body::Bytes(b) => reqwest::Body::from(b.clone()),
        Body::File { path, offset, len } => {
            use tokio::io::{AsyncReadExt, AsyncSeekExt};
            let mut f = tokio::fs::File::open(path)
                .await
                .map_err(|e| Error::Invalid(format!("opening {}: {e}", path.display())))?;
            f.seek(std::io::SeekFrom::Start(*offset))
                .await
                .map_err(|e| Error::Invalid(format!("seeking {}: {e}", path.display())))?;
            let stream = tokio_util_like_stream(f.take(*len));
            reqwest::Body::wrap_stream(stream)
        }
    })
}

/// Streams an async reader in 256 KiB pieces.
fn tokio_util_like_stream(
    r: impl tokio::io::AsyncRead + Send + Unpin + 'static,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures::stream::unfold(r, |mut r| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 256 * 1024];
        match r.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), r))
            }
            Err(e) => Some((Err(e), r)),
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
