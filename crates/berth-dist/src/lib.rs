//! berth-dist: the registry client. It resolves references, authenticates (anonymous, basic, and
//! the bearer-token challenge flow), pulls images into `berth-store` with parallel, resumable,
//! verified downloads, and pushes images from it sending only the blobs the registry lacks.
//!
//! It is not a registry (that is `berth-registry`), renders no progress bars (it emits
//! [`events::Event`]s; the `berth` binary draws them), and writes the store only through
//! `berth-store`'s API.
#![deny(missing_docs)]

pub mod auth;
pub mod client;
pub mod config;
mod error;
pub mod events;
pub mod manifest;
pub mod pull;
pub mod push;

pub use client::Client;
pub use config::Config;
pub use error::{Error, Result};
pub use events::{Event, EventSink, LayerStatus};
pub use pull::{PullOptions, Pulled, pull};
pub use push::{PushOptions, Pushed, push};
