//! The parent's hold on a container's mount namespace (`Child::take_mount_namespace`): the
//! namespace, with the container's mounts, outlives the process until the hold is closed, so the
//! unmounting is not on the path that reports the exit.

mod common;

use std::os::fd::AsRawFd;

use berth_runtime::ExitStatus;
use common::*;

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn mount_namespace_outlives_the_process_while_held() {
    let r = Rootfs::new();
    let id = unique_id("mnthold");
    let (stdio, out, err) = pipes();
    let s = spec(&r.path(), &["true"]);
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
    let ns = child
        .take_mount_namespace()
        .expect("a hold on the mount namespace");
    assert!(child.take_mount_namespace().is_none(), "taken once");
    drop((read_all(out), read_all(err)));
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(0));
    let link = std::fs::read_link(format!("/proc/self/fd/{}", ns.as_raw_fd())).unwrap();
    let ours = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    assert!(link.to_string_lossy().starts_with("mnt:["), "{link:?}");
    assert_ne!(link, ours, "the container's namespace, not ours");
    // The exited container's mounts are still there: its /dev tmpfs with the device nodes made in
    // it, which the rootfs directory itself does not have.
    assert!(!r.path().join("dev/null").exists());
    let o = std::process::Command::new("nsenter")
        .arg(format!(
            "--mount=/proc/{}/fd/{}",
            std::process::id(),
            ns.as_raw_fd()
        ))
        .args(["/bin/busybox", "test", "-c", "/dev/null"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    drop(ns);
    cleanup(&id, child);
}
