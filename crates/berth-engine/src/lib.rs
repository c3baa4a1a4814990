//! berth-engine: containers as the user sees them — create from an image (store → spec → runtime),
//! start, attach, exec, logs, stop/kill/wait, rm, inspect, ps; the per-container monitor; container
//! state on disk. It does not speak HTTP.
#![deny(missing_docs)]

mod engine;
pub mod error;
pub mod init;
pub mod logs;
pub mod names;
pub mod options;
pub mod procs;
pub mod pump;
pub mod record;
pub mod spec;
pub mod store;
pub mod time;
pub mod trim;
pub mod userdb;

pub use engine::{ContainerSummary, Engine, ExecOptions, Prepared, Timing, cgroups_path};
pub use error::{Error, Result};
pub use options::CreateOptions;
