//! Registry settings: which registries speak plain HTTP, where Docker Hub names are fetched from,
//! extra CA certificates, credential files, transfer concurrency. Read from a TOML file
//! (`/etc/berth/registries.toml`, or `BERTH_REGISTRIES_CONF`); every field has Docker's default.

use std::path::PathBuf;

/// Registry client settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where `docker.io` names are fetched from instead of Docker Hub (a mirror; local names stay
    /// `docker.io/…`). `None`: Docker Hub itself (`registry-1.docker.io`).
    pub default_registry: Option<String>,
    /// Registries spoken to over plain HTTP (`host[:port]`, or a CIDR like `10.0.0.0/8`).
    /// localhost, 127.0.0.0/8 and ::1 are always insecure, as in Docker.
    pub insecure: Vec<String>,
    /// Per-registry CA certificates: `<certs_dir>/<host[:port]>/*.crt`, as `/etc/docker/certs.d`.
    pub certs_dir: PathBuf,
    /// Where `berth login` writes credentials (Docker's config.json format, mode 0600).
    pub auth_file: PathBuf,
    /// Docker's config directory, read for credentials too (`$DOCKER_CONFIG` or `~/.docker`).
    pub docker_config_dir: Option<PathBuf>,
    /// Layers downloaded at once (Docker: 3).
    pub max_concurrent_downloads: usize,
    /// Blobs uploaded at once (Docker: 5).
    pub max_concurrent_uploads: usize,
    /// Blobs larger than this are uploaded in chunks of this size.
    pub chunk_size: u64,
}

impl Default for Config {
    fn default() -> Config {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Config {
            default_registry: None,
            insecure: Vec::new(),
            certs_dir: PathBuf::from("/etc/berth/certs.d"),
            auth_file: home
                .as_ref()
                .map(|h| h.join(".config/berth/auth.json"))
                .unwrap_or_else(|| PathBuf::from("/root/.config/berth/auth.json")),
            docker_config_dir: std::env::var_os("DOCKER_CONFIG")
                .map(PathBuf::from)
                .or_else(|| home.map(|h| h.join(".docker"))),
            max_concurrent_downloads: 3,
            max_concurrent_uploads: 5,
            chunk_size: 64 << 20,
        }
    }
}

/// Whether `host` (`name[:port]`) is spoken to over plain HTTP.
pub fn is_insecure(config: &Config, host: &str) -> bool {
    let name = host
        .strip_prefix('[')
        .and_then(|h| h.split_once(']').map(|(n, _)| n))
        .unwrap_or_else(|| host.rsplit_once(':').map(|(n, _)| n).unwrap_or(host));
    name == "localhost"
        || name == "::1"
        || name.starts_with("127.")
        || config.insecure.iter().any(|i| i == host || i == name)
}
