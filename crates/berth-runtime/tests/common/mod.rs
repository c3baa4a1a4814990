//! Test harness of the library: a Docker-like spec, run-and-capture helpers, on the rootfs of
//! [`rootfs`] (shared with the binary's tests).
#![allow(dead_code)]

mod rootfs;

pub use rootfs::*;

use std::collections::HashMap;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use berth_runtime::{Child, ExitStatus, LaunchConfig, OverlayRoot, Stdio};
use oci_spec::runtime::{
    Capabilities, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxResourcesBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder,
    RootBuilder, Spec, SpecBuilder, UserBuilder,
};

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
        signals_blocked: false,
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

/// Number of mounts the host sees.
pub fn host_mounts() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count()
}
