//! End-to-end tests of `berth registry serve`, `pull`, `push` and `login`, in one test binary: the
//! registry process on disk and on S3 (one moto per binary), hostile and crashing clients, and the
//! real peers (podman, skopeo, crane, distribution).

#[path = "../common/mod.rs"]
mod common;
mod dist_util;
mod registry_util;

mod dist_auth;
mod dist_errors;
mod dist_peers;
mod dist_resume;
mod dist_roundtrip;
mod dist_tls;
mod peer_clients;
mod registry_cli;
mod registry_crash;
mod registry_hostile;
mod registry_instances;
