//! A container's record (image config + flags, already merged) → an OCI runtime spec with Docker's
//! defaults: namespaces, mounts, masked and read-only paths, the 14 default capabilities,
//! no-new-privileges, device rules, resources and rlimits. Pure: no I/O besides reading the host's
//! rlimits, so every rule here is unit-tested.

use crate::options::NetworkMode;
use crate::record::ContainerRecord;
use crate::userdb::ResolvedUser;
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceBuilder,
    LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxIdMappingBuilder, LinuxMemoryBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, Mount,
    MountBuilder, PosixRlimitBuilder, PosixRlimitType, Process, ProcessBuilder, RootBuilder, Spec,
    SpecBuilder, UserBuilder,
};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Errors generating a spec.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// An unknown capability name in --cap-add/--cap-drop.
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    /// An unknown --ulimit resource.
    #[error("unknown ulimit resource {0:?}")]
    UnknownUlimit(String),
    /// The container has no command.
    #[error("no command specified")]
    NoCommand,
    /// oci-spec refused a value.
    #[error("building the OCI spec ({what}): {source}")]
    Build {
        /// Which part.
        what: &'static str,
        /// Cause.
        source: oci_spec::OciSpecError,
    },
}

fn b<T>(what: &'static str, r: Result<T, oci_spec::OciSpecError>) -> Result<T, SpecError> {
    r.map_err(|source| SpecError::Build { what, source })
}

/// Every capability name the kernel knows (for `--cap-add ALL`).
pub const ALL_CAPS: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Default PATH when the image sets none.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn cap_name(s: &str) -> String {
    let up = s.trim().to_ascii_uppercase();
    up.strip_prefix("CAP_").map(str::to_owned).unwrap_or(up)
}

/// Docker's rule: start from the defaults (or ALL), add `--cap-add`, remove `--cap-drop` (ALL drops all).
pub fn capability_set(add: &[String], drop: &[String]) -> Result<Vec<String>, SpecError> {
    let adds: Vec<String> = add.iter().map(|c| cap_name(c)).collect();
    let drops: Vec<String> = drop.iter().map(|c| cap_name(c)).collect();
    for c in adds.iter().chain(drops.iter()) {
        if c != "ALL" && !ALL_CAPS.contains(&c.as_str()) {
            return Err(SpecError::UnknownCapability(c.clone()));
        }
    }
    let mut set: Vec<String> = if drops.iter().any(|c| c == "ALL") {
        Vec::new()
    } else {
        // The runtime's list, the one place Docker's defaults live.
        berth_runtime::defaults::docker_capabilities()
            .iter()
            .map(|c| cap_name(&c.to_string()))
            .collect()
    };
    if adds.iter().any(|c| c == "ALL") {
        set = ALL_CAPS.iter().map(|c| (*c).to_owned()).collect();
    }
    for c in &adds {
        if c != "ALL" && !set.contains(c) {
            set.push(c.clone());
        }
    }
    set.retain(|c| !drops.contains(c) || adds.contains(c));
    Ok(set)
}

/// The bounding capabilities of a spec's process ("SYS_ADMIN"...), sorted: the set its seccomp
/// profile is made for.
pub fn capabilities_of(spec: &Spec) -> Vec<String> {
    let mut caps: Vec<String> = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().as_ref())
        .map(|b| b.iter().map(|c| c.to_string()).collect())
        .unwrap_or_default();
    caps.sort();
    caps
}

fn to_caps(names: &[String]) -> Result<HashSet<Capability>, SpecError> {
    names
        .iter()
        .map(|n| {
            n.parse::<Capability>()
                .map_err(|_| SpecError::UnknownCapability(n.clone()))
        })
        .collect()
}

fn rlimit_type(name: &str) -> Option<(PosixRlimitType, rustix::process::Resource)> {
    use PosixRlimitType as T;
    use rustix::process::Resource as R;
    Some(match name {
        "core" => (T::RlimitCore, R::Core),
        "cpu" => (T::RlimitCpu, R::Cpu),
        "data" => (T::RlimitData, R::Data),
        "fsize" => (T::RlimitFsize, R::Fsize),
        "locks" => (T::RlimitLocks, R::Locks),
        "memlock" => (T::RlimitMemlock, R::Memlock),
        "msgqueue" => (T::RlimitMsgqueue, R::Msgqueue),
        "nice" => (T::RlimitNice, R::Nice),
        "nofile" => (T::RlimitNofile, R::Nofile),
        "nproc" => (T::RlimitNproc, R::Nproc),
        "rss" => (T::RlimitRss, R::Rss),
        "rtprio" => (T::RlimitRtprio, R::Rtprio),
        "rttime" => (T::RlimitRttime, R::Rttime),
        "sigpending" => (T::RlimitSigpending, R::Sigpending),
        "stack" => (T::RlimitStack, R::Stack),
        "as" => (T::RlimitAs, R::As),
        _ => return None,
    })
}

/// Host paths the spec refers to.
#[derive(Debug, Clone)]
pub struct SpecPaths {
    /// The rootfs mountpoint (ROOT/containers/<id>/rootfs).
    pub rootfs: PathBuf,
    /// The container dir holding hosts, hostname and resolv.conf.
    pub container_dir: PathBuf,
}

/// Flags that shape the spec beyond the record.
#[derive(Debug, Clone)]
pub struct SpecFlags {
    /// Network mode.
    pub network: NetworkMode,
    /// For `container:NAME`: that container's network namespace (`/proc/PID/ns/net`).
    pub netns_path: Option<PathBuf>,
    /// no-new-privileges.
    pub no_new_privileges: bool,
    /// `--init`: the files of the init to mount and run as pid 1.
    pub init: Option<crate::init::InitFiles>,
    /// `--userns auto`: the host range container ids 0.. map to (a new user namespace).
    pub userns: Option<crate::userns::IdRange>,
    /// `--device` nodes, looked up on the host.
    pub devices: Vec<crate::options::ResolvedDevice>,
    /// `--device-cgroup-rule` rules (allow rules, after the defaults).
    pub device_rules: Vec<crate::options::DeviceRule>,
}

fn mount(dest: &str, typ: &str, src: &str, opts: &[&str]) -> Result<Mount, SpecError> {
    b(
        "mount",
        MountBuilder::default()
            .destination(dest)
            .typ(typ)
            .source(src)
            .options(opts.iter().map(|o| (*o).to_owned()).collect::<Vec<_>>())
            .build(),
    )
}

fn bind(dest: &str, src: &Path, ro: bool) -> Result<Mount, SpecError> {
    let mut opts = vec!["rbind".to_owned(), "rprivate".to_owned()];
    if ro {
        opts.push("ro".to_owned());
    }
    b(
        "bind mount",
        MountBuilder::default()
            .destination(dest)
            .typ("bind")
            .source(src)
            .options(opts)
            .build(),
    )
}

/// The environment of the container's process: image/user env (already merged, in `rec.config.env`)
/// plus PATH (if unset), HOSTNAME, HOME (from passwd), TERM=xterm with a tty.
pub fn process_env(base: &[String], hostname: &str, home: &str, tty: bool) -> Vec<String> {
    let has = |k: &str| {
        base.iter()
            .any(|e| e.split_once('=').map(|(a, _)| a) == Some(k) || e == k)
    };
    let mut env = Vec::with_capacity(base.len() + 4);
    if !has("PATH") {
        env.push(DEFAULT_PATH.to_owned());
    }
    if !has("HOSTNAME") {
        env.push(format!("HOSTNAME={hostname}"));
    }
    env.extend(base.iter().cloned());
    if tty && !has("TERM") {
        env.push("TERM=xterm".to_owned());
    }
    if !has("HOME") {
        env.push(format!("HOME={home}"));
    }
    env
}

/// Builds the process part (also used by `exec`, with other args, env, cwd and user).
#[allow(clippy::too_many_arguments)]
pub fn process(
    args: Vec<String>,
    env: Vec<String>,
    cwd: &str,
    user: &ResolvedUser,
    tty: bool,
    caps: &[String],
    no_new_privileges: bool,
    ulimits: &[crate::record::Ulimit],
) -> Result<Process, SpecError> {
    if args.is_empty() {
        return Err(SpecError::NoCommand);
    }
    let caps = to_caps(caps)?;
    let capabilities = b(
        "capabilities",
        LinuxCapabilitiesBuilder::default()
            .bounding(caps.clone())
            .effective(caps.clone())
            .permitted(caps)
            .inheritable(HashSet::new())
            .ambient(HashSet::new())
            .build(),
    )?;
    let mut rlimits = Vec::new();
    for u in ulimits {
        let (typ, res) =
            rlimit_type(&u.name).ok_or_else(|| SpecError::UnknownUlimit(u.name.clone()))?;
        // This host cannot raise a hard limit for us: clamp to what we have.
        let host_hard = rustix::process::getrlimit(res).maximum.unwrap_or(u64::MAX);
        let hard = u.hard.min(host_hard);
        let soft = u.soft.min(hard);
        rlimits.push(b(
            "rlimit",
            PosixRlimitBuilder::default()
                .typ(typ)
                .soft(soft)
                .hard(hard)
                .build(),
        )?);
    }
    let mut ub = UserBuilder::default().uid(user.uid).gid(user.gid);
    if !user.additional_gids.is_empty() {
        ub = ub.additional_gids(user.additional_gids.clone());
    }
    let user = b("user", ub.build())?;
    let mut pb = ProcessBuilder::default()
        .terminal(tty)
        .user(user)
        .args(args)
        .env(env)
        .cwd(if cwd.is_empty() { "/" } else { cwd })
        .capabilities(capabilities)
        .no_new_privileges(no_new_privileges);
    if !rlimits.is_empty() {
        pb = pb.rlimits(rlimits);
    }
    b("process", pb.build())
}

/// Generates the runtime spec of a container.
pub fn generate(
    rec: &ContainerRecord,
    user: &ResolvedUser,
    paths: &SpecPaths,
    flags: &SpecFlags,
) -> Result<Spec, SpecError> {
    let cfg = &rec.config;
    let hc = &rec.host_config;
    let mut args = Vec::with_capacity(1 + rec.args.len());
    if !rec.path.is_empty() {
        args.push(rec.path.clone());
    }
    args.extend(rec.args.iter().cloned());
    if let Some(init) = &flags.init
        && !args.is_empty()
    {
        args = init.argv(&args);
    }
    let caps = capability_set(&hc.cap_add, &hc.cap_drop)?;
    let env = process_env(&cfg.env, &cfg.hostname, &user.home, cfg.tty);
    let process = process(
        args,
        env,
        &cfg.working_dir,
        user,
        cfg.tty,
        &caps,
        flags.no_new_privileges,
        &hc.ulimits,
    )?;

    // Docker's defaults, from the runtime (the one place they live).
    let mut mounts = berth_runtime::defaults::mounts();
    for (file, dest) in [
        ("resolv.conf", "/etc/resolv.conf"),
        ("hostname", "/etc/hostname"),
        ("hosts", "/etc/hosts"),
    ] {
        mounts.push(bind(
            dest,
            &paths.container_dir.join(file),
            hc.readonly_rootfs,
        )?);
    }
    if let Some(init) = &flags.init {
        match init.mount_source() {
            // The copy in the state root, as an overlay no remount can make writable. In a user
            // namespace the files are binds (the overlay would have to be mounted by the container's
            // root, which may not traverse the state root): that root is not the files' owner and
            // cannot write them whatever it remounts.
            Some(lowerdir) if flags.userns.is_none() => mounts.push(mount(
                crate::init::INIT_DIR,
                "overlay",
                "overlay",
                &["ro", "nosuid", "nodev", &lowerdir],
            )?),
            _ => {
                for (host, inside) in init.mounts() {
                    mounts.push(bind(&inside, &host, true)?);
                }
            }
        }
    }
    for m in &rec.mounts {
        match m.kind.as_str() {
            "bind" => {
                let mut mnt = bind(&m.destination, Path::new(&m.source), !m.rw)?;
                if flags.userns.is_some() && m.mode.split(',').any(|o| o == "idmap") {
                    let mut opts = mnt.options().clone().unwrap_or_default();
                    opts.push("idmap".into());
                    mnt.set_options(Some(opts));
                }
                mounts.push(mnt);
            }
            _ => {
                let mut opts: Vec<String> = vec!["nosuid".into(), "nodev".into(), "noexec".into()];
                for o in m.mode.split(',').filter(|o| !o.is_empty()) {
                    match o {
                        "exec" => opts.retain(|x| x != "noexec"),
                        "suid" => opts.retain(|x| x != "nosuid"),
                        "dev" => opts.retain(|x| x != "nodev"),
                        other => opts.push(other.to_owned()),
                    }
                }
                let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
                mounts.push(mount(&m.destination, "tmpfs", "tmpfs", &opts)?);
            }
        }
    }

    let mut namespaces = Vec::new();
    let mut ns_types = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ];
    if flags.network.own_namespace() {
        ns_types.push(LinuxNamespaceType::Network);
    }
    ns_types.push(LinuxNamespaceType::Cgroup);
    if flags.userns.is_some() {
        ns_types.push(LinuxNamespaceType::User);
        if !flags.network.own_namespace() {
            // sysfs can only be mounted in a user namespace that owns the network namespace: with
            // the host's network, bind the host's /sys read-only, as runc does.
            if let Some(sys) = mounts
                .iter_mut()
                .find(|m| m.destination() == Path::new("/sys"))
            {
                *sys = bind("/sys", Path::new("/sys"), true)?;
                sys.set_options(Some(
                    ["rbind", "rprivate", "nosuid", "noexec", "nodev", "ro"]
                        .map(str::to_owned)
                        .to_vec(),
                ));
            }
        }
    }
    for t in ns_types {
        namespaces.push(b(
            "namespace",
            LinuxNamespaceBuilder::default().typ(t).build(),
        )?);
    }
    if let (NetworkMode::Container(_), Some(path)) = (&flags.network, &flags.netns_path) {
        namespaces.push(b(
            "namespace",
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path(path.clone())
                .build(),
        )?);
    }

    // Device nodes the runtime creates in /dev, and the cgroup rules that allow exactly them.
    let mut devices = Vec::new();
    for (path, major, minor) in [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ] {
        devices.push(b(
            "device",
            LinuxDeviceBuilder::default()
                .path(path)
                .typ(LinuxDeviceType::C)
                .major(major)
                .minor(minor)
                .file_mode(0o666u32)
                .uid(0u32)
                .gid(0u32)
                .build(),
        )?);
    }
    let kind = |k: char| match k {
        'a' => LinuxDeviceType::A,
        'b' => LinuxDeviceType::B,
        _ => LinuxDeviceType::C,
    };
    let allow = |typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut r = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(typ)
            .access(access);
        if let Some(m) = major {
            r = r.major(m);
        }
        if let Some(m) = minor {
            r = r.minor(m);
        }
        b("device rule", r.build())
    };
    // One list for v1's devices.allow and v2's eBPF program alike; the user's devices and rules come
    // after it, so they can open what it leaves out (the host console, 5:1).
    let mut dev_rules = berth_runtime::defaults::device_rules();
    for d in &flags.devices {
        devices.push(b(
            "device",
            LinuxDeviceBuilder::default()
                .path(d.path.as_str())
                .typ(kind(d.kind))
                .major(d.major)
                .minor(d.minor)
                .file_mode(d.mode)
                .uid(0u32)
                .gid(0u32)
                .build(),
        )?);
        dev_rules.push(allow(
            kind(d.kind),
            Some(d.major),
            Some(d.minor),
            &d.access,
        )?);
    }
    for r in &flags.device_rules {
        dev_rules.push(allow(kind(r.kind), r.major, r.minor, &r.access)?);
    }

    let mut rb = LinuxResourcesBuilder::default().devices(dev_rules);
    if hc.memory > 0 {
        rb = rb.memory(b(
            "memory",
            LinuxMemoryBuilder::default().limit(hc.memory).build(),
        )?);
    }
    if hc.nano_cpus > 0 {
        let period: u64 = 100_000;
        let quota = (hc.nano_cpus as i128 * period as i128 / 1_000_000_000) as i64;
        rb = rb.cpu(b(
            "cpu",
            LinuxCpuBuilder::default()
                .period(period)
                .quota(quota.max(1000))
                .build(),
        )?);
    }
    if let Some(p) = hc.pids_limit.filter(|p| *p > 0) {
        rb = rb.pids(b("pids", LinuxPidsBuilder::default().limit(p).build())?);
    }
    let resources = b("resources", rb.build())?;

    let mut lb = LinuxBuilder::default();
    if let Some(r) = flags.userns {
        let map = |host| {
            b(
                "id mapping",
                LinuxIdMappingBuilder::default()
                    .container_id(0u32)
                    .host_id(host)
                    .size(r.size)
                    .build(),
            )
        };
        lb = lb
            .uid_mappings(vec![map(r.uid)?])
            .gid_mappings(vec![map(r.gid)?]);
    }
    let linux = b(
        "linux",
        lb.namespaces(namespaces)
            .resources(resources)
            .cgroups_path(PathBuf::from(format!("berth/{}", rec.id)))
            .devices(devices)
            .masked_paths(berth_runtime::defaults::masked_paths())
            .readonly_paths(berth_runtime::defaults::readonly_paths())
            .build(),
    )?;
    let root = b(
        "root",
        RootBuilder::default()
            .path(paths.rootfs.clone())
            .readonly(hc.readonly_rootfs)
            .build(),
    )?;
    b(
        "spec",
        SpecBuilder::default()
            .version("1.2.0")
            .root(root)
            .mounts(mounts)
            .process(process)
            .hostname(cfg.hostname.clone())
            .linux(linux)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{ContainerConfig, HostConfig, MountPoint, Ulimit};

    fn record() -> ContainerRecord {
        ContainerRecord {
            id: "ab".repeat(32),
            created: crate::time::now_rfc3339(),
            path: "/bin/sh".into(),
            args: vec!["-c".into(), "true".into()],
            image: format!("sha256:{}", "cd".repeat(32)),
            name: "/x".into(),
            config: ContainerConfig {
                hostname: "abababababab".into(),
                env: vec!["FOO=bar".into()],
                working_dir: "/tmp".into(),
                ..Default::default()
            },
            host_config: HostConfig {
                network_mode: "none".into(),
                ..Default::default()
            },
            mounts: vec![],
            networking_config: Default::default(),
        }
    }

    fn root_user() -> ResolvedUser {
        ResolvedUser {
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            home: "/root".into(),
        }
    }

    fn paths() -> SpecPaths {
        SpecPaths {
            rootfs: "/r/rootfs".into(),
            container_dir: "/r".into(),
        }
    }

    fn flags(network: NetworkMode) -> SpecFlags {
        SpecFlags {
            network,
            netns_path: None,
            no_new_privileges: true,
            init: None,
            userns: None,
            devices: vec![],
            device_rules: vec![],
        }
    }

    #[test]
    fn userns_auto_maps_root_and_binds_sys_with_host_network() {
        let r = crate::userns::IdRange {
            uid: 165_536,
            gid: 231_072,
            size: 65_536,
        };
        for network in [NetworkMode::None, NetworkMode::Host] {
            let f = SpecFlags {
                userns: Some(r),
                ..flags(network.clone())
            };
            let s = generate(&record(), &root_user(), &paths(), &f).unwrap();
            let linux = s.linux().as_ref().unwrap();
            let ns: Vec<_> = linux
                .namespaces()
                .as_ref()
                .unwrap()
                .iter()
                .map(|n| n.typ())
                .collect();
            assert!(ns.contains(&LinuxNamespaceType::User));
            assert!(ns.contains(&LinuxNamespaceType::Cgroup));
            let um = &linux.uid_mappings().as_ref().unwrap()[0];
            let gm = &linux.gid_mappings().as_ref().unwrap()[0];
            assert_eq!(
                (um.container_id(), um.host_id(), um.size()),
                (0, 165_536, 65_536)
            );
            assert_eq!(
                (gm.container_id(), gm.host_id(), gm.size()),
                (0, 231_072, 65_536)
            );
            let sys = s
                .mounts()
                .as_ref()
                .unwrap()
                .iter()
                .find(|m| m.destination() == Path::new("/sys"))
                .unwrap();
            let opts = sys.options().as_ref().unwrap();
            if network == NetworkMode::Host {
                assert_eq!(sys.typ().as_deref(), Some("bind"));
                assert!(opts.contains(&"rbind".to_owned()) && opts.contains(&"ro".to_owned()));
            } else {
                assert_eq!(sys.typ().as_deref(), Some("sysfs"));
            }
        }
        let plain = generate(&record(), &root_user(), &paths(), &flags(NetworkMode::Host)).unwrap();
        let linux = plain.linux().as_ref().unwrap();
        assert!(linux.uid_mappings().is_none());
        assert!(
            !linux
                .namespaces()
                .as_ref()
                .unwrap()
                .iter()
                .any(|n| n.typ() == LinuxNamespaceType::User)
        );
    }

    #[test]
    fn docker_defaults() {
        let s = generate(&record(), &root_user(), &paths(), &flags(NetworkMode::None)).unwrap();
        let p = s.process().as_ref().unwrap();
        assert_eq!(
            p.args().as_ref().unwrap(),
            &vec!["/bin/sh".to_owned(), "-c".into(), "true".into()]
        );
        let env = p.env().as_ref().unwrap();
        assert_eq!(env[0], DEFAULT_PATH);
        assert!(env.contains(&"HOSTNAME=abababababab".to_owned()));
        assert!(env.contains(&"HOME=/root".to_owned()));
        assert!(env.contains(&"FOO=bar".to_owned()));
        assert!(!env.iter().any(|e| e.starts_with("TERM=")));
        assert_eq!(p.cwd(), Path::new("/tmp"));
        assert_eq!(p.no_new_privileges(), Some(true));
        assert_eq!(
            p.capabilities()
                .as_ref()
                .unwrap()
                .bounding()
                .as_ref()
                .unwrap()
                .len(),
            14
        );
        let linux = s.linux().as_ref().unwrap();
        let ns: Vec<_> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.typ())
            .collect();
        assert_eq!(ns.len(), 6);
        assert!(ns.contains(&LinuxNamespaceType::Network));
        assert_eq!(
            linux.cgroups_path().as_ref().unwrap(),
            Path::new(&format!("berth/{}", "ab".repeat(32)))
        );
        assert!(
            linux
                .masked_paths()
                .as_ref()
                .unwrap()
                .contains(&"/proc/kcore".to_owned())
        );
        let dests: Vec<String> = s
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.destination().to_string_lossy().into_owned())
            .collect();
        for d in [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/sys",
            "/sys/fs/cgroup",
            "/etc/hosts",
            "/etc/hostname",
            "/etc/resolv.conf",
        ] {
            assert!(dests.contains(&d.to_owned()), "missing {d}");
        }
        let rules = linux
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .as_ref()
            .unwrap();
        assert!(!rules[0].allow() && rules[0].typ() == Some(LinuxDeviceType::A));
        assert_eq!(s.root().as_ref().unwrap().readonly(), Some(false));
    }

    #[test]
    fn host_network_tty_limits_and_mounts() {
        let mut r = record();
        r.config.tty = true;
        r.host_config.memory = 64 << 20;
        r.host_config.nano_cpus = 500_000_000;
        r.host_config.pids_limit = Some(20);
        r.host_config.readonly_rootfs = true;
        r.host_config.ulimits = vec![Ulimit {
            name: "nofile".into(),
            soft: 1024,
            hard: u64::MAX,
        }];
        r.mounts = vec![
            MountPoint {
                kind: "bind".into(),
                source: "/h".into(),
                destination: "/c".into(),
                mode: "ro".into(),
                rw: false,
            },
            MountPoint {
                kind: "tmpfs".into(),
                source: String::new(),
                destination: "/t".into(),
                mode: "exec,size=1m".into(),
                rw: true,
            },
        ];
        let s = generate(&r, &root_user(), &paths(), &flags(NetworkMode::Host)).unwrap();
        let ns: Vec<_> = s
            .linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.typ())
            .collect();
        assert!(!ns.contains(&LinuxNamespaceType::Network));
        let p = s.process().as_ref().unwrap();
        assert!(p.env().as_ref().unwrap().contains(&"TERM=xterm".to_owned()));
        assert_eq!(p.terminal(), Some(true));
        let rl = &p.rlimits().as_ref().unwrap()[0];
        let host_hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .maximum
            .unwrap_or(u64::MAX);
        assert_eq!(rl.hard(), host_hard);
        assert_eq!(rl.soft(), 1024.min(host_hard));
        let res = s.linux().as_ref().unwrap().resources().as_ref().unwrap();
        assert_eq!(res.memory().as_ref().unwrap().limit(), Some(64 << 20));
        assert_eq!(res.cpu().as_ref().unwrap().quota(), Some(50_000));
        assert_eq!(res.pids().as_ref().unwrap().limit(), 20);
        assert_eq!(s.root().as_ref().unwrap().readonly(), Some(true));
        let ms = s.mounts().as_ref().unwrap();
        let c = ms
            .iter()
            .find(|m| m.destination() == Path::new("/c"))
            .unwrap();
        assert!(c.options().as_ref().unwrap().contains(&"ro".to_owned()));
        let t = ms
            .iter()
            .find(|m| m.destination() == Path::new("/t"))
            .unwrap();
        let topts = t.options().as_ref().unwrap();
        assert!(!topts.contains(&"noexec".to_owned()) && topts.contains(&"size=1m".to_owned()));
    }

    #[test]
    fn capabilities_add_drop_all() {
        let s = |a: &[&str], d: &[&str]| {
            capability_set(
                &a.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
                &d.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(s(&[], &[]).unwrap().len(), 14);
        let v = s(&["cap_sys_admin"], &["NET_RAW"]).unwrap();
        assert!(v.contains(&"SYS_ADMIN".to_owned()) && !v.contains(&"NET_RAW".to_owned()));
        assert_eq!(s(&[], &["ALL"]).unwrap(), Vec::<String>::new());
        assert_eq!(s(&["CHOWN"], &["ALL"]).unwrap(), vec!["CHOWN".to_owned()]);
        assert_eq!(s(&["ALL"], &[]).unwrap().len(), 41);
        assert!(s(&["BOGUS"], &[]).is_err());
        assert!(to_caps(&s(&["ALL"], &[]).unwrap()).is_ok());
    }

    #[test]
    fn init_runs_first_from_dev_and_is_mounted_read_only() {
        let init = crate::init::InitFiles {
            dir: None,
            exe: "/usr/bin/berth".into(),
            loader: Some("/lib64/ld-linux-x86-64.so.2".into()),
            libs: vec!["/lib/x86_64-linux-gnu/libc.so.6".into()],
        };
        let f = SpecFlags {
            init: Some(init),
            ..flags(NetworkMode::None)
        };
        let s = generate(&record(), &root_user(), &paths(), &f).unwrap();
        let args = s.process().as_ref().unwrap().args().as_ref().unwrap();
        assert_eq!(
            args,
            &[
                "/dev/.berth-init/ld-linux-x86-64.so.2",
                "--library-path",
                "/dev/.berth-init",
                "/dev/.berth-init/berth",
                "__init",
                "--",
                "/bin/sh",
                "-c",
                "true",
            ]
            .map(str::to_owned)
            .to_vec()
        );
        let ms = s.mounts().as_ref().unwrap();
        let dev = ms
            .iter()
            .position(|m| m.destination() == Path::new("/dev"))
            .unwrap();
        let exe = ms
            .iter()
            .position(|m| m.destination() == Path::new("/dev/.berth-init/berth"))
            .unwrap();
        assert!(exe > dev, "init files must be mounted after /dev");
        assert!(
            ms[exe]
                .options()
                .as_ref()
                .unwrap()
                .contains(&"ro".to_owned())
        );
        assert_eq!(
            ms[exe].source().as_deref(),
            Some(Path::new("/usr/bin/berth"))
        );
    }

    fn device_rules(s: &Spec) -> Vec<String> {
        s.linux()
            .as_ref()
            .unwrap()
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .as_ref()
            .unwrap()
            .iter()
            .map(berth_runtime::cgroups::plan::device_rule)
            .collect()
    }

    #[test]
    fn default_device_rules_leave_out_the_host_console_and_user_devices_come_after() {
        let s = generate(&record(), &root_user(), &paths(), &flags(NetworkMode::None)).unwrap();
        let rules = device_rules(&s);
        assert_eq!(
            rules,
            berth_runtime::defaults::device_rules()
                .iter()
                .map(berth_runtime::cgroups::plan::device_rule)
                .collect::<Vec<_>>(),
            "the spec's rules are the runtime's default list"
        );
        assert!(!rules.iter().any(|r| r.starts_with("c 5:1 ")), "{rules:?}");
        let f = SpecFlags {
            devices: vec![crate::options::ResolvedDevice {
                path: "/dev/loop-control".into(),
                kind: 'c',
                major: 10,
                minor: 237,
                mode: 0o660,
                access: "rw".into(),
            }],
            device_rules: vec![crate::options::parse_device_cgroup_rule("c 5:1 w").unwrap()],
            ..flags(NetworkMode::None)
        };
        let s = generate(&record(), &root_user(), &paths(), &f).unwrap();
        let rules = device_rules(&s);
        assert_eq!(&rules[rules.len() - 2..], ["c 10:237 rw", "c 5:1 w"]);
        let dev = s
            .linux()
            .as_ref()
            .unwrap()
            .devices()
            .as_ref()
            .unwrap()
            .iter()
            .find(|d| d.path() == Path::new("/dev/loop-control"))
            .expect("the --device node is in the spec");
        assert_eq!(
            (dev.typ(), dev.major(), dev.minor(), dev.file_mode()),
            (LinuxDeviceType::C, 10, 237, Some(0o660))
        );
    }

    #[test]
    fn capabilities_of_is_the_final_set() {
        let mut r = record();
        r.host_config.cap_add = vec!["SYS_ADMIN".into()];
        r.host_config.cap_drop = vec!["CHOWN".into()];
        let s = generate(&r, &root_user(), &paths(), &flags(NetworkMode::None)).unwrap();
        let caps = capabilities_of(&s);
        assert_eq!(caps.len(), 14);
        assert!(caps.contains(&"SYS_ADMIN".to_owned()));
        assert!(!caps.contains(&"CHOWN".to_owned()));
        let names: Vec<&str> = caps.iter().map(String::as_str).collect();
        assert_eq!(
            berth_runtime::seccomp::seccomp_capabilities(&names),
            ["CAP_SYS_ADMIN", "CAP_SYS_CHROOT"]
        );
    }

    #[test]
    fn no_command_is_an_error() {
        let mut r = record();
        r.path.clear();
        r.args.clear();
        assert!(matches!(
            generate(&r, &root_user(), &paths(), &flags(NetworkMode::None)),
            Err(SpecError::NoCommand)
        ));
    }
}
