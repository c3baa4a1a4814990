//! End-to-end tests of the `berth` binary's image and container commands, in one test binary (one
//! link instead of one per file): real containers in each test's own state root, with a check that
//! nothing is left behind.

#[path = "../common/mod.rs"]
mod common;

mod containers;
mod crash;
mod escapes;
mod hardening;
mod hostile;
mod images;
mod killed_writes;
mod network;
mod terminal;
mod userns;
