//! What the runtime's tests and the `berth-runtime` binary's tests (crates/berth-runtime-cli, which
//! includes this file by path) share: a busybox rootfs in a temp dir, unique container ids, and the
//! check that a container left no cgroup behind.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

pub const APPLETS: &[&str] = &[
    "sh", "true", "false", "cat", "ls", "id", "hostname", "ps", "echo", "sleep", "grep", "unshare",
    "touch", "wc", "test", "stat", "mount", "ip", "tty", "stty", "head", "readlink", "env", "kill",
    "mkdir", "rm",
];

/// A temp dir holding `rootfs/` with busybox and its applet symlinks.
pub struct Rootfs {
    pub dir: tempfile::TempDir,
}

impl Rootfs {
    pub fn new() -> Rootfs {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "etc", "tmp", "root"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        for a in APPLETS {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
        }
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        std::fs::write(root.join("etc/noexec"), "#!/bin/sh\necho hi\n").unwrap();
        Rootfs { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A unique container id for this test process.
pub fn unique_id(tag: &str) -> String {
    format!(
        "t{}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        tag
    )
}

/// Asserts nothing of container `id` is left under the cgroup roots.
pub fn assert_no_cgroup(id: &str) {
    for c in ["memory", "pids", "cpu"] {
        let p = PathBuf::from(format!("/sys/fs/cgroup/{c}/berth/{id}"));
        assert!(!p.exists(), "{p:?} left behind");
    }
}
