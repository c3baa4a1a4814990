//! A container in its own user namespace: the parent writes the maps, root inside is an
//! unprivileged uid outside, device nodes fall back to binds from the host.

mod common;

use berth_runtime::ExitStatus;
use common::*;
use oci_spec::runtime::{LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType};

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn user_namespace_maps_root_to_unprivileged_uid() {
    let r = Rootfs::new();
    // The mapped root must be able to reach the rootfs: the temp dir is 0700 by default.
    std::fs::set_permissions(
        r.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let id = unique_id("userns");
    let mut s = spec(
        &r.path(),
        &[
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map | tr -s ' '; echo > /dev/null && echo devnull-ok; stat -c %u /proc/self/root/bin/busybox; hostname",
        ],
    );
    let map = |c: u32, h: u32, n: u32| {
        LinuxIdMappingBuilder::default()
            .container_id(c)
            .host_id(h)
            .size(n)
            .build()
            .unwrap()
    };
    let linux = s.linux_mut().as_mut().unwrap();
    let mut ns = linux.namespaces().clone().unwrap();
    ns.push(
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::User)
            .build()
            .unwrap(),
    );
    linux.set_namespaces(Some(ns));
    linux.set_uid_mappings(Some(vec![map(0, 100_000, 65_536)]));
    linux.set_gid_mappings(Some(vec![map(0, 100_000, 65_536)]));
    let (stdio, out, err) = pipes();
    let mut child = berth_runtime::spawn(berth_runtime::LaunchConfig {
        id: &id,
        spec: &s,
        overlay: None,
        stdio,
        seccomp: None,
        die_with_parent: true,
        signals_blocked: false,
    })
    .unwrap();
    // Seen from the host, the container's root is uid 100000 (spawn returns after execve, and an
    // unreaped process keeps its /proc entry, so this read cannot miss it).
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.pid())).unwrap();
    let stdout = read_all(out);
    let stderr = read_all(err);
    assert_eq!(
        child.wait().unwrap(),
        ExitStatus::Exited(0),
        "{stdout}\n{stderr}"
    );
    assert_eq!(
        stdout, "0\n 0 100000 65536\ndevnull-ok\n65534\nbox\n",
        "{stderr}"
    );
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(uid.split_whitespace().nth(1), Some("100000"), "{uid}");
    cleanup(&id, child);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn exec_joins_the_user_namespace() {
    let r = Rootfs::new();
    std::fs::set_permissions(
        r.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let id = unique_id("userns-exec");
    let mut s = spec(&r.path(), &["sleep", "60"]);
    let map = |c: u32, h: u32, n: u32| {
        LinuxIdMappingBuilder::default()
            .container_id(c)
            .host_id(h)
            .size(n)
            .build()
            .unwrap()
    };
    let linux = s.linux_mut().as_mut().unwrap();
    let mut ns = linux.namespaces().clone().unwrap();
    ns.push(
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::User)
            .build()
            .unwrap(),
    );
    linux.set_namespaces(Some(ns));
    linux.set_uid_mappings(Some(vec![map(0, 200_000, 65_536)]));
    linux.set_gid_mappings(Some(vec![map(0, 200_000, 65_536)]));
    let (stdio, _o, _e) = pipes();
    let mut first = berth_runtime::spawn(berth_runtime::LaunchConfig {
        id: &id,
        spec: &s,
        overlay: None,
        stdio,
        seccomp: None,
        die_with_parent: true,
        signals_blocked: false,
    })
    .unwrap();
    let mut p = s.process().clone().unwrap();
    p.set_args(Some(vec![
        "sh".into(),
        "-c".into(),
        "id -u; cat /proc/self/uid_map | tr -s ' '; hostname".into(),
    ]));
    let (stdio, out, err) = pipes();
    let mut ex = berth_runtime::exec(first.pid(), &p, None, None, stdio).unwrap();
    let host_uid = std::fs::read_to_string(format!("/proc/{}/status", ex.pid())).unwrap();
    let stdout = read_all(out);
    let stderr = read_all(err);
    assert_eq!(ex.wait().unwrap(), ExitStatus::Exited(0), "{stderr}");
    assert_eq!(stdout, "0\n 0 200000 65536\nbox\n", "{stderr}");
    let uid = host_uid.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(uid.split_whitespace().nth(1), Some("200000"), "{uid}");
    first.signal(libc::SIGKILL).unwrap();
    first.wait().unwrap();
    cleanup(&id, first);
}
