//! Names on user-defined networks: the records the engine writes under `RUN/net/dns/` (one JSON file
//! per network: its listen addresses and its records), and the embedded DNS server that answers them.
//! One server process serves every network on the host; it starts on demand ([`ensure_server`]),
//! outlives the command that started it, reloads on record changes (inotify) and exits when no network
//! file is left.

mod answer;
mod records;
mod server;
mod spawn;

pub use records::{Record, Records};
pub use server::{ServeOptions, serve, serve_with};
pub use spawn::ensure_server;

use std::path::PathBuf;

/// What went wrong with DNS records or the server.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A file or directory under the run root could not be used.
    #[error("DNS records: {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A network's record file is not valid JSON of the expected shape.
    #[error("DNS records: {path} is corrupt: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The server could not be started or did not become ready.
    #[error("DNS server: {0}")]
    Server(String),
}

pub(crate) fn io(
    what: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> DnsError {
    let path = path.into();
    move |source| DnsError::Io { what, path, source }
}
