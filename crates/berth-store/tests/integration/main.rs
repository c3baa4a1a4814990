//! berth-store's integration tests, in one binary: snapshots (unpacking hostile and ordinary layers),
//! a property test of the unpacker, and the store's public API.

mod snapshot;
mod snapshot_fuzz;
mod store;
