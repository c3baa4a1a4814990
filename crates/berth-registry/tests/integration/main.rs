//! berth-registry's integration tests, in one binary: the distribution API, auth, GC, metrics, search,
//! TLS and the web page against a registry serving in this process, and the check that the domain
//! modules stay free of HTTP. (The storage contract suite has its own runner: tests/storage_contract.rs.)

#[path = "../common/mod.rs"]
mod common;

mod api;
mod auth;
mod gc;
mod layering;
mod search;
mod smoke;
mod tls;
mod web;
