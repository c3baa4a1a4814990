//! The registry's configuration: a TOML file (`--config`), with the command line's flags taking
//! precedence. Every section has working defaults, so a bare `--storage DIR` serves.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::storage::StorageSpec;

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("config {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A value is out of range or contradicts another.
    #[error("config: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listen address, e.g. `127.0.0.1:5000`.
    pub addr: String,
    /// Where data lives (required: from the file or `--storage`).
    pub storage: Option<StorageSpec>,
    /// Request size limits.
    pub limits: Limits,
    /// Behaviour choices of the distribution API.
    pub api: ApiConfig,
    /// Authentication and authorisation.
    pub auth: AuthConfig,
    /// TLS; plain HTTP when absent.
    pub tls: Option<TlsConfig>,
    /// Garbage collection.
    pub gc: GcConfig,
    /// The search index.
    pub search: SearchConfig,
    /// Log format: `json` (structured access logs) or `text`.
    pub log_format: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: "127.0.0.1:5000".into(),
            storage: None,
            limits: Limits::default(),
            api: ApiConfig::default(),
            auth: AuthConfig::default(),
            tls: None,
            gc: GcConfig::default(),
            search: SearchConfig::default(),
            log_format: "json".into(),
        }
    }
}

/// Request size limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest manifest accepted, in bytes (default 4 MiB, as distribution).
    pub max_manifest_bytes: u64,
    /// Largest blob accepted, in bytes (default 0 = unlimited).
    pub max_blob_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_manifest_bytes: 4 << 20,
            max_blob_bytes: 0,
        }
    }
}

/// Behaviour choices of the distribution API.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Cross-repository blob mounts (`POST /v2/<name>/blobs/uploads/?mount=<digest>`).
    pub cross_mount: CrossMount,
}

/// When `?mount=` links an existing blob into another repository instead of starting an upload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CrossMount {
    /// Never: every mount request starts a plain upload session (202), so a repository only
    /// ever holds blobs that were uploaded to it (repository isolation).
    Off,
    /// With `from=<repository>` naming a repository the client may pull that holds the blob
    /// (the default, as distribution).
    #[default]
    From,
    /// Also without `from`, when some repository holds the blob and anyone may pull every
    /// repository (anonymous pull), so the mount reveals nothing the client could not read.
    Auto,
}

/// Authentication: who may pull and push what.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Whether anyone may pull without credentials (default true when no htpasswd file is set).
    pub anonymous_pull: Option<bool>,
    /// An htpasswd file of bcrypt hashes; when set, pushes need credentials.
    pub htpasswd: Option<PathBuf>,
    /// A file holding the secret (≥ 32 bytes) that signs bearer tokens. Every instance serving
    /// one storage must use the same secret. When absent, basic auth is used directly.
    pub token_secret_file: Option<PathBuf>,
    /// The realm URL clients are sent to for tokens (default: this server's `/token`).
    pub token_realm: Option<String>,
    /// The service name in tokens (default `berth-registry`).
    pub token_service: String,
    /// How long an issued token lives, in seconds.
    pub token_ttl_secs: u64,
    /// Access rules; a user with no matching rule may only do what anonymous users may.
    pub access: Vec<AccessRule>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            anonymous_pull: None,
            htpasswd: None,
            token_secret_file: None,
            token_realm: None,
            token_service: "berth-registry".into(),
            token_ttl_secs: 300,
            access: Vec::new(),
        }
    }
}

/// One access rule: `user` may do `actions` (`pull`, `push`, `delete`) on repositories matching
/// `repositories` (glob patterns with `*`; `*` alone is every repository).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    /// A user name from the htpasswd file, or `*` for every authenticated user.
    pub user: String,
    /// Repository patterns.
    pub repositories: Vec<String>,
    /// Allowed actions.
    pub actions: Vec<String>,
}

/// TLS certificate and key (PEM files).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// Garbage collection settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcConfig {
    /// Run a collection every this many seconds while serving (0 = never; `berth registry gc`
    /// runs one by hand).
    pub interval_secs: u64,
    /// Blobs and links younger than this are never collected: it covers pushes in flight.
    pub grace_secs: u64,
    /// Upload sessions untouched for this long are abandoned and removed.
    pub upload_ttl_secs: u64,
    /// Also delete manifests that no tag and no index references.
    pub delete_untagged: bool,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            interval_secs: 0,
            grace_secs: 3600,
            upload_ttl_secs: 24 * 3600,
            delete_untagged: false,
        }
    }
}

/// Search index settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// How often each instance reads new change events, in milliseconds.
    pub poll_ms: u64,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig { poll_ms: 1000 }
    }
}

impl Config {
    /// Reads a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
    }

    /// Checks values that TOML cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.storage.is_none() {
            return Err(ConfigError::Invalid(
                "no storage: pass --storage DIR or s3://BUCKET/PREFIX, or set [storage] location"
                    .into(),
            ));
        }
        if !matches!(self.log_format.as_str(), "json" | "text") {
            return Err(ConfigError::Invalid(format!(
                "log_format must be json or text, not {:?}",
                self.log_format
            )));
        }
        if self.search.poll_ms == 0 {
            return Err(ConfigError::Invalid(
                "search.poll_ms must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
