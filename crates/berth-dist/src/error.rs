//! The crate's error: each variant says what was being done to what, so the binary can print it
//! as it is.

use berth_oci::Digest;

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong talking to a registry or storing what came from it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The registry could not be reached at all (DNS, connect, TLS handshake).
    #[error("registry {registry} is unreachable: {message}")]
    Unreachable {
        /// Registry host.
        registry: String,
        /// What failed, with its causes.
        message: String,
    },
    /// A transfer broke off or timed out after the connection was made.
    #[error("{what} from {registry}: {message}")]
    Transfer {
        /// Registry host.
        registry: String,
        /// What was being transferred.
        what: String,
        /// What failed, with its causes.
        message: String,
    },
    /// 401: no or wrong credentials.
    #[error(
        "{registry}: authentication required for {scope} (run `berth login {registry}`){detail}"
    )]
    Unauthorized {
        /// Registry host.
        registry: String,
        /// The scope asked for, e.g. `repository:team/app:pull`.
        scope: String,
        /// The registry's message, if any, prefixed with ": ".
        detail: String,
    },
    /// The token endpoint named by a registry's challenge failed or answered nonsense.
    #[error("getting a token for {registry} from {realm}: {message}")]
    Token {
        /// Registry host.
        registry: String,
        /// The token endpoint URL.
        realm: String,
        /// What failed.
        message: String,
    },
    /// 403: credentials were accepted but do not allow this.
    #[error("{registry}: access to {scope} denied{detail}")]
    Denied {
        /// Registry host.
        registry: String,
        /// The scope asked for.
        scope: String,
        /// The registry's message, if any, prefixed with ": ".
        detail: String,
    },
    /// The reference names nothing on the registry (missing repository, tag or digest).
    #[error("{reference}: not found{detail}")]
    NotFound {
        /// The reference or blob asked for.
        reference: String,
        /// The registry's message, if any, prefixed with ": ".
        detail: String,
    },
    /// The registry answered something unexpected.
    #[error("{registry}: {what} failed with HTTP {status}{detail}")]
    Status {
        /// Registry host.
        registry: String,
        /// The request, e.g. `HEAD /v2/x/blobs/sha256:…`.
        what: String,
        /// The HTTP status code.
        status: u16,
        /// The registry's message, if any, prefixed with ": ".
        detail: String,
    },
    /// Content did not hash to the digest that named it.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was checked (`layer sha256:… from host/repo`).
        what: String,
        /// The digest asked for.
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
    },
    /// A manifest, index or config that cannot be used.
    #[error("{what}: {message}")]
    BadManifest {
        /// Which document (`manifest of host/repo:tag`).
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// An index with no image for the wanted platform.
    #[error("{reference}: no image for platform {platform} (the index offers {offered})")]
    NoPlatform {
        /// The reference pulled.
        reference: String,
        /// The platform asked for (`linux/amd64`).
        platform: String,
        /// The platforms the index lists.
        offered: String,
    },
    /// A bad reference, platform, or option value given by the user.
    #[error("{0}")]
    Invalid(String),
    /// The registry configuration or a credentials file could not be read or written.
    #[error("{what} {path}: {message}")]
    Config {
        /// What was being done (`reading registry config`).
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// What failed.
        message: String,
    },
    /// A credential helper failed.
    #[error("credential helper docker-credential-{helper} {action} for {registry}: {message}")]
    CredentialHelper {
        /// Helper name (`pass`, `secretservice`, …).
        helper: String,
        /// `get`, `store` or `erase`.
        action: &'static str,
        /// The registry.
        registry: String,
        /// What failed.
        message: String,
    },
    /// The local store refused or failed.
    #[error(transparent)]
    Store(#[from] berth_store::Error),
}
