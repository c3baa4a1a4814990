//! berth-dist's integration tests, in one binary (one link instead of one per file): the client
//! against a real berth registry serving in this process.

mod auth;
mod client;
mod common;
mod pull;
mod push;
