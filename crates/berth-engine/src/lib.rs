//! berth-engine: containers as the user sees them — create from an image (store → spec → runtime),
//! start, attach, exec, logs, stop/kill/wait, rm, inspect; listing containers and images with
//! Docker's filters ([`filter`]) and the images containers use; the per-container monitor; container
//! state on disk. It does not speak HTTP.
//!
//! On disk, under the state root: `containers/<id>/` with `config.json` (Docker's Config and
//! HostConfig; its `Image` is the image id the store's prune keeps), `state.json` (Docker's State
//! plus the pids and start times of the container's init and of its watcher), `<id>-json.log`,
//! the overlay's `upper/` and `work/`, the `rootfs/` mountpoint, and `hosts`, `hostname`,
//! `resolv.conf`; `names/<name>` symlinks to the owning id; `userns/<first uid>` claims the host id
//! range of a `--userns auto` container (see [`userns`]); `cache/seccomp/` holds compiled
//! filters. A container is visible once `state.json` exists; state changes take a `flock` of its
//! directory.
//!
//! Processes: a foreground `run` is the container's parent itself; a detached container is
//! watched by `berth __monitor <id>` (this binary, in its own session), which holds its output,
//! writes the log and records the exit. Whoever reads a state whose watcher is gone corrects it.
#![deny(missing_docs)]

mod engine;
pub mod error;
pub mod filter;
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
mod trash;
pub mod trim;
pub mod userdb;
pub mod userns;

pub use engine::{
    ContainerSummary, Engine, ExecOptions, ImageSummary, ListOptions, Prepared, Timing,
    cgroups_path,
};
pub use error::{Error, Result};
pub use options::CreateOptions;
