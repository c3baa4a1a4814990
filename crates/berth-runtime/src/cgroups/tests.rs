//! Real cgroup tests (root): v1 on this host's hierarchies, v2 in /sys/fs/cgroup/unified.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder,
    LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
};

use super::*;

/// A parent path unique to this test, removed (with everything below) on drop.
struct Parent {
    h: Hierarchy,
    name: String,
}

impl Parent {
    fn new(h: Hierarchy) -> Parent {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "berth-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        Parent { h, name }
    }
    fn child(&self, leaf: &str) -> String {
        format!("{}/{leaf}", self.name)
    }
    fn roots(&self) -> Vec<PathBuf> {
        match &self.h {
            Hierarchy::V1 { mounts } => mounts.iter().map(|m| m.root.clone()).collect(),
            Hierarchy::V2 { root } => vec![root.clone()],
        }
    }
}

impl Drop for Parent {
    fn drop(&mut self) {
        for r in self.roots() {
            let dir = r.join(&self.name);
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten() {
                    if e.path().is_dir() {
                        let _ = std::fs::remove_dir(e.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

fn v1() -> Option<Hierarchy> {
    match Hierarchy::detect(Path::new("/sys/fs/cgroup")).ok()? {
        h @ Hierarchy::V1 { .. } => Some(h),
        Hierarchy::V2 { .. } => None,
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
        .trim()
        .to_owned()
}

/// `sleep 30` that moved itself into `cg` between fork and exec, as the runtime's child does.
fn sleeper(cg: &Cgroup) -> Child {
    let join = cg.join_handle().unwrap();
    let mut cmd = Command::new("/bin/busybox");
    cmd.args(["sleep", "30"]);
    // SAFETY: join_self only calls write(2) on pre-opened fds: async-signal-safe.
    unsafe {
        cmd.pre_exec(move || join.join_self().map_err(std::io::Error::from));
    }
    cmd.spawn().unwrap()
}

fn limits() -> LinuxResources {
    LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64 << 20)
                .swap(96 << 20)
                .reservation(32 << 20)
                .build()
                .unwrap(),
        )
        .cpu(
            LinuxCpuBuilder::default()
                .quota(50_000)
                .period(100_000u64)
                .shares(512u64)
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(42).build().unwrap())
        .devices(vec![
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::C)
                .major(1)
                .minor(3)
                .access("rwm")
                .build()
                .unwrap(),
        ])
        .build()
        .unwrap()
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn v1_create_limit_join_kill_destroy() {
    let Some(h) = v1() else { return };
    let parent = Parent::new(h.clone());
    let path = parent.child("c1");
    let cg = Cgroup::create_in(&h, &path, Some(&limits())).unwrap();
    assert_eq!(cg.version(), Version::V1);
    let Cgroup::V1(v) = &cg else {
        panic!("v1 expected")
    };
    let mem = v.dir_of("memory").unwrap();
    assert_eq!(
        read(&mem.join("memory.limit_in_bytes")),
        (64u64 << 20).to_string()
    );
    assert_eq!(
        read(&mem.join("memory.soft_limit_in_bytes")),
        (32u64 << 20).to_string()
    );
    if mem.join("memory.memsw.limit_in_bytes").exists() {
        assert_eq!(
            read(&mem.join("memory.memsw.limit_in_bytes")),
            (96u64 << 20).to_string()
        );
    }
    let cpu = v.dir_of("cpu").unwrap();
    assert_eq!(read(&cpu.join("cpu.shares")), "512");
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read(&v.dir_of("pids").unwrap().join("pids.max")), "42");
    assert_eq!(
        read(&v.dir_of("devices").unwrap().join("devices.list")),
        "c 1:3 rwm"
    );
    let cpuset = v.dir_of("cpuset").unwrap();
    assert!(
        !read(&cpuset.join("cpuset.cpus")).is_empty(),
        "cpuset.cpus copied from the parent"
    );

    let mut child = sleeper(&cg);
    let pid = child.id() as i32;
    assert_eq!(cg.pids().unwrap(), vec![pid]);
    for d in cg.dirs() {
        assert_eq!(
            read(&d.join("cgroup.procs")),
            pid.to_string(),
            "{} lists the child",
            d.display()
        );
    }
    let own = read(Path::new(&format!("/proc/{pid}/cgroup")));
    assert!(
        own.lines().any(
            |l| l.starts_with(|c: char| c.is_ascii_digit()) && l.ends_with(&format!("/{path}"))
        )
    );
    assert!(cg.memory_usage().unwrap().is_some());
    assert!(!cg.oom_killed().unwrap());

    cg.kill_all(libc::SIGKILL).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    assert_eq!(
        read(&v.dir_of("freezer").unwrap().join("freezer.state")),
        "THAWED"
    );
    cg.destroy().unwrap();
    for d in cg.dirs() {
        assert!(!d.exists(), "{} removed", d.display());
    }
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn v1_open_finds_the_same_directories() {
    let Some(h) = v1() else { return };
    let parent = Parent::new(h.clone());
    let path = parent.child("c2");
    let cg = Cgroup::create_in(&h, &path, None).unwrap();
    let again = Cgroup::open_in(&h, &format!("/{path}")).unwrap();
    assert_eq!(cg.dirs(), again.dirs());
    assert_eq!(again.path(), path);
    again.destroy().unwrap();
    assert!(cg.dirs().iter().all(|d| !d.exists()));
    // Killing in and destroying what is already gone is fine (runtime's destroy does both).
    cg.kill_all(libc::SIGKILL).unwrap();
    cg.destroy().unwrap();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn v1_create_and_destroy_are_fast() {
    let Some(h) = v1() else { return };
    let parent = Parent::new(h.clone());
    // Warm up: the parent directories exist from then on, as "berth" does on a used host.
    Cgroup::create_in(&h, &parent.child("warm"), None)
        .unwrap()
        .destroy()
        .unwrap();
    let n = 20;
    let start = Instant::now();
    for i in 0..n {
        let cg = Cgroup::create_in(&h, &parent.child(&format!("f{i}")), None).unwrap();
        cg.destroy().unwrap();
    }
    let each = start.elapsed() / n;
    eprintln!("v1 create+destroy: {each:?} each");
    assert!(each.as_millis() < 20, "create+destroy took {each:?}");
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn v1_failed_limit_leaves_nothing_behind() {
    let Some(h) = v1() else { return };
    let parent = Parent::new(h.clone());
    let path = parent.child("bad");
    let res = LinuxResourcesBuilder::default()
        .cpu(LinuxCpuBuilder::default().cpus("99999").build().unwrap())
        .build()
        .unwrap();
    let err = Cgroup::create_in(&h, &path, Some(&res)).unwrap_err();
    assert!(
        matches!(&err, CgroupError::Write { file, .. } if file.ends_with("cpuset.cpus")),
        "{err}"
    );
    for r in parent.roots() {
        assert!(!r.join(&path).exists());
    }
}

#[test]
fn invalid_paths_are_refused() {
    let h = Hierarchy::V2 {
        root: PathBuf::from("/nonexistent"),
    };
    for p in ["", "/", "a/../b", "a//b", "./a"] {
        assert!(
            matches!(
                Cgroup::create_in(&h, p, None),
                Err(CgroupError::InvalidPath { .. })
            ),
            "{p:?}"
        );
    }
    assert!(Cgroup::open_in(&h, "/").is_ok());
}

fn unified() -> Option<Hierarchy> {
    match Hierarchy::detect(Path::new("/sys/fs/cgroup/unified")).ok()? {
        h @ Hierarchy::V2 { .. } => Some(h),
        Hierarchy::V1 { .. } => None,
    }
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn v2_create_join_kill_destroy_in_unified() {
    let Some(h) = unified() else { return };
    let parent = Parent::new(h.clone());
    let path = parent.child("c");
    let cg = Cgroup::create_in(&h, &path, None).unwrap();
    assert_eq!(cg.version(), Version::V2);
    let mut child = sleeper(&cg);
    let pid = child.id() as i32;
    assert_eq!(cg.pids().unwrap(), vec![pid]);
    assert!(!cg.oom_killed().unwrap());
    // SIGTERM goes through freeze / signal / thaw; SIGKILL through cgroup.kill.
    cg.kill_all(libc::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGTERM)
    );
    let Cgroup::V2(v) = &cg else {
        panic!("v2 expected")
    };
    assert_eq!(read(&v.dir.join("cgroup.freeze")), "0");

    let mut child = sleeper(&cg);
    cg.kill_all(libc::SIGKILL).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    cg.destroy().unwrap();
    assert!(!v.dir.exists());
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn v2_limit_without_controller_fails_cleanly() {
    let Some(h) = unified() else { return };
    let Hierarchy::V2 { root } = &h else {
        unreachable!()
    };
    if read(&root.join("cgroup.controllers")).contains("pids") {
        return; // the controller is there: nothing to fail on
    }
    let parent = Parent::new(h.clone());
    let path = parent.child("c");
    let res = LinuxResourcesBuilder::default()
        .pids(LinuxPidsBuilder::default().limit(5).build().unwrap())
        .build()
        .unwrap();
    let err = Cgroup::create_in(&h, &path, Some(&res)).unwrap_err();
    assert!(
        matches!(&err, CgroupError::Write { file, .. } if file.ends_with("pids.max")),
        "{err}"
    );
    assert!(!root.join(&path).exists());
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn v2_device_rules_are_enforced_by_ebpf() {
    let Some(h) = unified() else { return };
    let parent = Parent::new(h.clone());
    let path = parent.child("dev");
    let res = LinuxResourcesBuilder::default()
        .devices(vec![
            LinuxDeviceCgroupBuilder::default()
                .allow(false)
                .access("rwm")
                .build()
                .unwrap(),
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::C)
                .major(1)
                .minor(3)
                .access("rw")
                .build()
                .unwrap(),
        ])
        .build()
        .unwrap();
    let cg = Cgroup::create_in(&h, &path, Some(&res)).unwrap();
    let join = cg.join_handle().unwrap();
    let script =
        "echo x > /dev/null || exit 1; head -c1 /dev/zero >/dev/null 2>&1 && exit 2; exit 0";
    let mut cmd = Command::new("/bin/busybox");
    cmd.args(["sh", "-c", script]);
    // SAFETY: join_self only calls write(2) on pre-opened fds: async-signal-safe.
    unsafe {
        cmd.pre_exec(move || join.join_self().map_err(std::io::Error::from));
    }
    let status = cmd.status().unwrap();
    assert_eq!(status.code(), Some(0), "/dev/null usable, /dev/zero denied");
    cg.destroy().unwrap();
}
