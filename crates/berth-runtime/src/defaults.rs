//! Docker's defaults for a container: capabilities, masked and read-only paths, mounts, and the
//! default spec built from them. The engine uses these to build a spec; tests use them to check
//! what a container sees.

use std::path::PathBuf;

use oci_spec::runtime::{
    Capabilities, Capability, LinuxCapabilities, LinuxDeviceCgroup, LinuxDeviceType, Mount, Spec,
};

/// Docker's 14 default capabilities (CapEff 0x00000000a80425fb).
pub fn docker_capabilities() -> Vec<Capability> {
    use Capability as C;
    vec![
        C::Chown,
        C::DacOverride,
        C::Fsetid,
        C::Fowner,
        C::Mknod,
        C::NetRaw,
        C::Setgid,
        C::Setuid,
        C::Setfcap,
        C::Setpcap,
        C::NetBindService,
        C::SysChroot,
        C::Kill,
        C::AuditWrite,
    ]
}

/// Docker's default masked paths (a bind of /dev/null over files, an empty read-only tmpfs over dirs).
pub fn masked_paths() -> Vec<String> {
    [
        "/proc/asound",
        "/proc/acpi",
        "/proc/interrupts",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
    ]
    .map(String::from)
    .to_vec()
}

/// Docker's default read-only paths.
pub fn readonly_paths() -> Vec<String> {
    [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ]
    .map(String::from)
    .to_vec()
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(dest));
    m.set_typ(Some(typ.to_owned()));
    m.set_source(Some(PathBuf::from(source)));
    m.set_options(Some(options.iter().map(|s| s.to_string()).collect()));
    m
}

/// Docker's default mounts, in order: proc, /dev tmpfs, devpts, shm, mqueue, sysfs (ro), cgroup (ro).
pub fn mounts() -> Vec<Mount> {
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
        ),
    ]
}

/// The default device cgroup rules, the one list behind v1's devices.allow and v2's eBPF program:
/// deny everything, allow `mknod` of any node, and read/write on null, zero, full, random, urandom,
/// tty, ptmx, the pty slaves and tun. Docker also allows c 5:1, the host's console, which a container
/// with CAP_MKNOD (a default) could then create and open; berth leaves it out. The console of a `-t`
/// container is a bind of its pty slave (136:N) and needs no rule of its own.
pub fn device_rules() -> Vec<LinuxDeviceCgroup> {
    let rule = |allow: bool,
                typ: LinuxDeviceType,
                major: Option<i64>,
                minor: Option<i64>,
                access: &str| {
        let mut d = LinuxDeviceCgroup::default();
        d.set_allow(allow);
        d.set_typ(Some(typ));
        d.set_major(major);
        d.set_minor(minor);
        d.set_access(Some(access.to_owned()));
        d
    };
    use LinuxDeviceType::{A, B, C};
    vec![
        rule(false, A, None, None, "rwm"),
        rule(true, C, None, None, "m"),
        rule(true, B, None, None, "m"),
        rule(true, C, Some(1), Some(3), "rwm"),
        rule(true, C, Some(1), Some(5), "rwm"),
        rule(true, C, Some(1), Some(7), "rwm"),
        rule(true, C, Some(1), Some(8), "rwm"),
        rule(true, C, Some(1), Some(9), "rwm"),
        rule(true, C, Some(5), Some(0), "rwm"),
        rule(true, C, Some(5), Some(2), "rwm"),
        rule(true, C, Some(136), None, "rwm"),
        rule(true, C, Some(10), Some(200), "rwm"),
    ]
}

/// runc's `spec` default (a `rootfs` bundle, a terminal), with Docker's mounts, capabilities,
/// masked and read-only paths and device rules: what `berth-runtime spec` writes.
pub fn spec() -> Spec {
    let mut spec = Spec::default();
    spec.set_hostname(Some("berth".into()));
    spec.set_mounts(Some(mounts()));
    if let Some(p) = spec.process_mut() {
        p.set_terminal(Some(true));
        let caps: Capabilities = docker_capabilities().into_iter().collect();
        let mut c = LinuxCapabilities::default();
        c.set_bounding(Some(caps.clone()));
        c.set_effective(Some(caps.clone()));
        c.set_permitted(Some(caps));
        c.set_inheritable(None);
        c.set_ambient(None);
        p.set_capabilities(Some(c));
    }
    if let Some(l) = spec.linux_mut() {
        l.set_masked_paths(Some(masked_paths()));
        l.set_readonly_paths(Some(readonly_paths()));
        if let Some(r) = l.resources_mut() {
            r.set_devices(Some(device_rules()));
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_spec_carries_dockers_defaults() {
        let s = spec();
        assert_eq!(
            s.root().as_ref().unwrap().path(),
            std::path::Path::new("rootfs")
        );
        let p = s.process().as_ref().unwrap();
        assert_eq!(p.terminal(), Some(true));
        let caps = p.capabilities().as_ref().unwrap();
        assert_eq!(
            caps.bounding().as_ref().unwrap().len(),
            docker_capabilities().len()
        );
        assert!(caps.ambient().is_none() && caps.inheritable().is_none());
        assert_eq!(s.mounts().as_ref().unwrap(), &mounts());
        let l = s.linux().as_ref().unwrap();
        assert_eq!(l.masked_paths().as_ref().unwrap(), &masked_paths());
        assert_eq!(l.readonly_paths().as_ref().unwrap(), &readonly_paths());
        assert_eq!(
            l.resources().as_ref().unwrap().devices().as_ref().unwrap(),
            &device_rules()
        );
    }

    #[test]
    fn device_rules_deny_the_host_console_and_allow_the_ptys() {
        let rules = device_rules();
        assert!(!rules[0].allow() && rules[0].typ() == Some(LinuxDeviceType::A));
        let allows = |major: i64, minor: i64| {
            rules.iter().any(|r| {
                r.allow()
                    && r.typ() == Some(LinuxDeviceType::C)
                    && r.major().is_none_or(|m| m == major)
                    && r.minor().is_none_or(|m| m == minor)
                    && r.access().as_deref().is_some_and(|a| a.contains('r'))
            })
        };
        assert!(!allows(5, 1), "the host console must stay closed");
        for (major, minor) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 2),
            (136, 4),
            (10, 200),
        ] {
            assert!(allows(major, minor), "{major}:{minor}");
        }
        assert!(!allows(4, 0) && !allows(10, 237));
    }
}
