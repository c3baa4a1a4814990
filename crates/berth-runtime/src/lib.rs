//! berth-runtime: an OCI runtime spec → a running isolated process. Namespaces, rootfs and mounts,
//! `pivot_root`, cgroups v1 and v2, capabilities, seccomp, rlimits, users, no-new-privileges, ptys.
//! It knows nothing about images or registries.
//!
//! The hot path is one `clone3` into all new namespaces; the child walks a plan precomputed in the
//! parent (C strings, flags, masks: no JSON, no allocation) and `execve`s, reporting any failure as a
//! fixed-size record on a close-on-exec pipe, which the parent turns into an [`Error`] naming the
//! stage and the object. On cgroup v2 the child is born in its cgroup (`CLONE_INTO_CGROUP`); on v1
//! it writes its own `tasks` files, which spares the kernel's global threadgroup lock.
//!
//! Callers must be single-threaded when they call [`spawn`], [`create`] or [`exec`].
//!
//! Not provided: OCI hooks, AppArmor/SELinux labels, id-mapped mounts, time namespaces, personality,
//! scheduler and I/O priority settings, Intel RDT.
#![deny(missing_docs)]

mod cgjoin;
pub mod cgroups;
// The child's failure record is returned by value: boxing it would allocate after clone.
#[allow(clippy::result_large_err)]
mod child;
pub mod defaults;
mod error;
pub mod exe;
#[allow(clippy::result_large_err)]
mod exec;
mod handle;
mod plan;
pub mod pty;
pub mod seccomp;
mod spawn;
mod stage;
pub mod state;
mod sys;

pub use error::Error;
pub use exec::exec;
pub use handle::{Child, ExitStatus};
pub use plan::mount::MountOptionError;
pub use plan::{IdmapError, OverlayRoot, PlanError};
pub use spawn::{
    AttachHook, LaunchConfig, Stdio, cgroups_path, create, destroy, plan_only, spawn,
    spawn_attached, spawn_in, start,
};
pub use stage::Stage;
