//! What berth-dist's tests share beyond berth-testkit: a fresh store, and a client whose credential
//! files live in a test's own directory.

pub use berth_testkit::digest;
pub use berth_testkit::image::{Compression, Layer as TestLayer, layer};
pub use berth_testkit::random_bytes;
pub use berth_testkit::registry::Registry;
use std::path::Path;

/// A fresh store in a temporary directory.
pub fn store() -> (tempfile::TempDir, berth_store::Store) {
    let t = tempfile::tempdir().unwrap();
    let s = berth_store::Store::open(&t.path().join("root")).unwrap();
    (t, s)
}

/// A client whose credential files live in `dir` (never the user's own).
pub fn client(dir: &Path) -> berth_dist::Client {
    let config = berth_dist::Config {
        auth_file: dir.join("auth.json"),
        docker_config_dir: Some(dir.join("docker")),
        certs_dir: dir.join("certs.d"),
        ..berth_dist::Config::default()
    };
    berth_dist::Client::new(config).unwrap()
}
