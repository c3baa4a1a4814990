//! Test harness: a busybox rootfs in a temp dir, a Docker-like spec, run-and-capture helpers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use berth_runtime::{Child, ExitStatus, LaunchConfig, OverlayRoot, Stdio};
use oci_spec::runtime::{
    Capabilities, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxResourcesBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder,
    RootBuilder, Spec, SpecBuilder, UserBuilder,
};

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

/// Docker's default spec for `args` on `root`.
pub fn spec(root: &Path, args: &[&str]) -> Spec {
    let ns = |t| LinuxNamespaceBuilder::default().typ(t).build().unwrap();
    let caps: Capabilities = berth_runtime::defaults::docker_capabilities()
        .into_iter()
        .collect();
    let process = ProcessBuilder::default()
        .args(args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .env(vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            "HOME=/root".into(),
        ])
        .cwd("/")
        .user(UserBuilder::default().uid(0u32).gid(0u32).build().unwrap())
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(caps.clone())
                .effective(caps.clone())
                .permitted(caps)
                .inheritable(Capabilities::new())
                .ambient(Capabilities::new())
                .build()
                .unwrap(),
        )
        .rlimits(vec![
            PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitNofile)
                .soft(1024u64)
                .hard(1024u64)
                .build()
                .unwrap(),
        ])
        .no_new_privileges(true)
        .build()
        .unwrap();
    SpecBuilder::default()
        .root(
            RootBuilder::default()
                .path(root)
                .readonly(false)
                .build()
                .unwrap(),
        )
        .process(process)
        .hostname("box")
        .mounts(berth_runtime::defaults::mounts())
        .linux(
            LinuxBuilder::default()
                .namespaces(vec![
                    ns(LinuxNamespaceType::Mount),
                    ns(LinuxNamespaceType::Pid),
                    ns(LinuxNamespaceType::Network),
                    ns(LinuxNamespaceType::Ipc),
                    ns(LinuxNamespaceType::Uts),
                    ns(LinuxNamespaceType::Cgroup),
                ])
                .masked_paths(berth_runtime::defaults::masked_paths())
                .readonly_paths(berth_runtime::defaults::readonly_paths())
                .sysctl(HashMap::new())
                .resources(
                    LinuxResourcesBuilder::default()
                        .devices(berth_runtime::defaults::device_rules())
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

/// Pipes for stdout/stderr; stdin is /dev/null.
pub fn pipes() -> (Stdio, OwnedFd, OwnedFd) {
    let (out_r, out_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let (err_r, err_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    (
        Stdio::Fds {
            stdin: null.into(),
            stdout: out_w,
            stderr: err_w,
        },
        out_r,
        err_r,
    )
}

pub fn read_all(fd: OwnedFd) -> String {
    let mut s = String::new();
    std::fs::File::from(fd).read_to_string(&mut s).unwrap();
    s
}

/// Output of a finished container.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Spawns, waits, collects output, destroys the cgroup and checks it is gone.
pub fn run(
    id: &str,
    spec: &Spec,
    overlay: Option<OverlayRoot>,
) -> Result<Output, berth_runtime::Error> {
    let (stdio, out, err) = pipes();
    let mut child = berth_runtime::spawn(LaunchConfig {
        id,
        spec,
        overlay,
        stdio,
        seccomp: None,
        die_with_parent: true,
    })?;
    let stdout = read_all(out);
    let stderr = read_all(err);
    let status = child.wait()?;
    cleanup(id, child);
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Destroys the container's cgroup and asserts nothing is left under the cgroup roots.
pub fn cleanup(id: &str, child: Child) {
    drop(child);
    berth_runtime::destroy(id, "").unwrap();
    assert_no_cgroup(id);
}

pub fn assert_no_cgroup(id: &str) {
    for c in ["memory", "pids", "cpu"] {
        let p = PathBuf::from(format!("/sys/fs/cgroup/{c}/berth/{id}"));
        assert!(!p.exists(), "{p:?} left behind");
    }
}

/// Number of mounts the host sees.
pub fn host_mounts() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count()
}

/// The runc-compatible binary with `--root ROOT` and stdin on /dev/null, ready for more arguments.
pub fn rt(root: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_berth-runtime"));
    c.arg("--root").arg(root).stdin(std::process::Stdio::null());
    c
}

/// Runs `c`, asserts success and returns standard output.
pub fn ok(c: &mut std::process::Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A bundle in `r`'s directory from `berth-runtime spec`, running `args` (in `cwd` if given) without a
/// terminal on a writable root; the runtime's state root is `state/` next to it.
pub fn bundle(r: &Rootfs, args: &[&str], cwd: Option<&str>) -> PathBuf {
    let b = r.dir.path().to_owned();
    let _ = std::fs::remove_file(b.join("config.json"));
    ok(rt(&b.join("state")).args(["spec", "--bundle"]).arg(&b));
    let mut s = Spec::load(b.join("config.json")).unwrap();
    assert_eq!(s.root().as_ref().unwrap().path(), Path::new("rootfs"));
    let p = s.process_mut().as_mut().unwrap();
    p.set_terminal(Some(false));
    p.set_args(Some(args.iter().map(|a| a.to_string()).collect()));
    if let Some(cwd) = cwd {
        p.set_cwd(cwd.into());
    }
    let mut root = s.root().clone().unwrap();
    root.set_readonly(Some(false));
    s.set_root(Some(root));
    s.save(b.join("config.json")).unwrap();
    b
}
