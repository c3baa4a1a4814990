//! The `berth-runtime` binary driven as containerd or podman drive runc: one test binary, a module
//! per concern. The rootfs harness is the runtime library's own (included by path, not copied).

#[path = "../../../berth-runtime/tests/common/rootfs.rs"]
mod rootfs;

mod escapes;
mod harness;
mod lifecycle;
mod plain;
