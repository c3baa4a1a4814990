//! Credentials: `berth login` writes them to a Docker-compatible config file (mode 0600); lookups
//! read it, then Docker's own config, including `credsStore` and `credHelpers`.

pub mod challenge;
mod file;
mod helper;

use crate::config::Config;
use crate::error::Result;
use base64::Engine as _;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The key Docker uses for Docker Hub in `auths` and for credential helpers.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A username and a password (or an identity token, with username `<token>`).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// User name.
    pub username: String,
    /// Password or token.
    pub secret: String,
}

impl Credential {
    /// Whether this is an OAuth identity (refresh) token rather than a password.
    pub fn is_identity_token(&self) -> bool {
        self.username == "<token>"
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({})", self.username)
    }
}

/// Where credentials are read from and written to.
#[derive(Debug, Clone)]
pub struct AuthStore {
    auth_file: PathBuf,
    docker_config_dir: Option<PathBuf>,
    helper_dir: Option<PathBuf>,
}

/// Whether `registry` names Docker Hub.
fn is_docker_hub(registry: &str) -> bool {
    matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com"
    )
}

/// The key under which `registry` is stored (`auths` key and helper server URL).
pub fn server_key(registry: &str) -> String {
    if is_docker_hub(&normalize(registry)) {
        DOCKER_HUB_KEY.to_owned()
    } else {
        normalize(registry)
    }
}

/// An `auths` key or registry name reduced to `host[:port]`, as Docker compares them.
fn normalize(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = k.split('/').next().unwrap_or(k).to_ascii_lowercase();
    if is_docker_hub(&host) {
        "docker.io".to_owned()
    } else {
        host
    }
}

impl AuthStore {
    /// The files `config` names.
    pub fn new(config: &Config) -> AuthStore {
        AuthStore {
            auth_file: config.auth_file.clone(),
            docker_config_dir: config.docker_config_dir.clone(),
            helper_dir: config.helper_dir.clone(),
        }
    }

    /// berth's own credentials file.
    pub fn auth_file(&self) -> &Path {
        &self.auth_file
    }

    /// The credential for `registry` (as named in references, `docker.io` for Docker Hub):
    /// berth's file first, then Docker's `config.json`; in each, the registry's credential helper
    /// (`credHelpers`) or the default store (`credsStore`), then `auths`.
    pub fn get(&self, registry: &str) -> Result<Option<Credential>> {
        let mut files = vec![(self.auth_file.clone(), true)];
        if let Some(d) = &self.docker_config_dir {
            files.push((d.join("config.json"), false));
        }
        for (path, ours) in files {
            let Some(doc) = file::read(&path)? else {
                continue;
            };
            if let Some(h) = helper_for(&doc, registry) {
                match helper::get(self.helper_dir.as_deref(), &h, registry) {
                    Ok(Some(c)) => return Ok(Some(c)),
                    Ok(None) => {}
                    // Docker's config often names a helper of a Docker install that is gone
                    // (`desktop`); that must not stop anonymous pulls. berth's own file is ours
                    // to get right, so its helper's failures are reported.
                    Err(e) if !ours => {
                        tracing::warn!(file = %path.display(), error = %e, "ignoring Docker's credential helper");
                    }
                    Err(e) => return Err(e),
                }
            }
            if let Some(c) = from_auths(&doc, registry, &path)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    /// Saves `cred` for `registry`: through the credential helper berth's file names for it, or
    /// into berth's file (`auths`, other keys kept, atomically, mode 0600). Returns where it went
    /// (the file, or the helper program).
    pub fn store(&self, registry: &str, cred: &Credential) -> Result<PathBuf> {
        let mut doc =
            file::read(&self.auth_file)?.unwrap_or_else(|| Value::Object(Default::default()));
        if let Some(h) = helper_for(&doc, registry) {
            return helper::store(self.helper_dir.as_deref(), &h, registry, cred);
        }
        if !doc.is_object() {
            doc = Value::Object(Default::default());
        }
        let root = doc.as_object_mut().expect("an object");
        let auths = root
            .entry("auths")
            .or_insert_with(|| Value::Object(Default::default()));
        if !auths.is_object() {
            *auths = Value::Object(Default::default());
        }
        let auths = auths.as_object_mut().expect("an object");
        let want = normalize(registry);
        auths.retain(|k, _| normalize(k) != want);
        let entry = if cred.is_identity_token() {
            serde_json::json!({ "identitytoken": cred.secret })
        } else {
            let raw = format!("{}:{}", cred.username, cred.secret);
            serde_json::json!({ "auth": base64::engine::general_purpose::STANDARD.encode(raw) })
        };
        auths.insert(server_key(registry), entry);
        file::write(&self.auth_file, &doc)?;
        Ok(self.auth_file.clone())
    }

    /// Forgets the credential for `registry` in berth's file (or its helper). Returns whether
    /// there was one.
    pub fn erase(&self, registry: &str) -> Result<bool> {
        let Some(mut doc) = file::read(&self.auth_file)? else {
            return Ok(false);
        };
        if let Some(h) = helper_for(&doc, registry) {
            return helper::erase(self.helper_dir.as_deref(), &h, registry);
        }
        let want = normalize(registry);
        let Some(auths) = doc.get_mut("auths").and_then(Value::as_object_mut) else {
            return Ok(false);
        };
        let before = auths.len();
        auths.retain(|k, _| normalize(k) != want);
        if auths.len() == before {
            return Ok(false);
        }
        file::write(&self.auth_file, &doc)?;
        Ok(true)
    }
}

/// The credential helper a config document names for `registry`, if any.
fn helper_for(doc: &Value, registry: &str) -> Option<String> {
    let want = normalize(registry);
    let named = doc
        .get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|m| m.iter().find(|(k, _)| normalize(k) == want))
        .and_then(|(_, v)| v.as_str());
    named
        .or_else(|| doc.get("credsStore").and_then(Value::as_str))
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
}

/// The credential in a config document's `auths` for `registry`.
fn from_auths(doc: &Value, registry: &str, path: &Path) -> Result<Option<Credential>> {
    let want = normalize(registry);
    let Some(auths) = doc.get("auths").and_then(Value::as_object) else {
        return Ok(None);
    };
    // An exact key wins over a spelling that normalises to the same host.
    let key = server_key(registry);
    let entry = auths.get(&key).or_else(|| {
        auths
            .iter()
            .find(|(k, _)| normalize(k) == want)
            .map(|(_, v)| v)
    });
    let Some(entry) = entry else {
        return Ok(None);
    };
    let bad = |message: String| crate::error::Error::Config {
        what: "reading credentials from",
        path: path.to_path_buf(),
        message,
    };
    let s = |k: &str| {
        entry
            .get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    if let Some(tok) = s("identitytoken") {
        return Ok(Some(Credential {
            username: "<token>".to_owned(),
            secret: tok.to_owned(),
        }));
    }
    if let Some(a) = s("auth") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(a.trim())
            .map_err(|e| bad(format!("auths.{key}.auth is not base64: {e}")))?;
        let raw =
            String::from_utf8(raw).map_err(|_| bad(format!("auths.{key}.auth is not UTF-8")))?;
        let (u, p) = raw
            .split_once(':')
            .ok_or_else(|| bad(format!("auths.{key}.auth is not user:password")))?;
        return Ok(Some(Credential {
            username: u.to_owned(),
            secret: p.to_owned(),
        }));
    }
    if let (Some(u), Some(p)) = (s("username"), s("password")) {
        return Ok(Some(Credential {
            username: u.to_owned(),
            secret: p.to_owned(),
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_keys() {
        for r in [
            "docker.io",
            "index.docker.io",
            "registry-1.docker.io",
            DOCKER_HUB_KEY,
        ] {
            assert_eq!(server_key(r), DOCKER_HUB_KEY, "{r}");
        }
        assert_eq!(server_key("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(normalize("https://Reg.lan:5000/v2/"), "reg.lan:5000");
    }
}
