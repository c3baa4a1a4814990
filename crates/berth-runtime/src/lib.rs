//! berth-runtime: an OCI runtime spec → a running isolated process. Namespaces, rootfs and mounts,
//! `pivot_root`, cgroups v1 and v2, capabilities, seccomp, rlimits, users, no-new-privileges, ptys.
//! It knows nothing about images or registries.
#![deny(missing_docs)]

pub mod cgroups;
pub mod seccomp;
