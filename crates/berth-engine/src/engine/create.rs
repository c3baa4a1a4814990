//! `create`: resolve the image under the store's shared lock, merge its config with the flags,
//! record the container (dir, name, config, state) and generate its runtime spec.

use super::Engine;
use crate::error::{Error, Result, io_err};
use crate::names;
use crate::options::{self, CreateOptions, NetworkMode, Security};
use crate::record::{ContainerConfig, ContainerRecord, HostConfig, MountPoint, State};
use crate::spec::{self, SpecFlags, SpecPaths};
use crate::store::StoreError;
use oci_spec::runtime::Spec;
use std::path::{Path, PathBuf};

/// A created container, ready to start without reading anything back from disk.
#[derive(Debug)]
pub struct Prepared {
    /// The record as written to config.json.
    pub record: ContainerRecord,
    /// The runtime spec.
    pub spec: Spec,
    /// Overlay lower dirs, topmost first.
    pub lowers: Vec<PathBuf>,
    /// Security options.
    pub security: Security,
}

/// Removes a half-created container unless disarmed.
struct Undo<'a> {
    engine: &'a Engine,
    id: String,
    name: Option<String>,
    armed: bool,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if self.armed {
            if let Some(n) = &self.name {
                let _ = self.engine.containers.release_name(n, &self.id);
            }
            let _ = self.engine.containers.remove_dir(&self.id);
        }
    }
}

fn merge_env(base: &[String], overrides: &[String]) -> Vec<String> {
    let key = |e: &str| {
        e.split_once('=')
            .map(|(k, _)| k.to_owned())
            .unwrap_or_else(|| e.to_owned())
    };
    let mut env: Vec<String> = base.to_vec();
    for o in overrides {
        let entry = if o.contains('=') {
            o.clone()
        } else {
            match std::env::var(o) {
                Ok(v) => format!("{o}={v}"),
                Err(_) => continue,
            }
        };
        let k = key(&entry);
        if let Some(slot) = env.iter_mut().find(|e| key(e) == k) {
            *slot = entry;
        } else {
            env.push(entry);
        }
    }
    env
}

const HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// Writes hosts, hostname and resolv.conf into the container dir (bind-mounted over /etc).
fn write_etc_files(dir: &Path, hostname: &str, network: &NetworkMode) -> Result<()> {
    // Bridge networks rewrite hosts and resolv.conf at each start, once the addresses are known.
    let hosts = match network {
        NetworkMode::Host => {
            std::fs::read_to_string("/etc/hosts").unwrap_or_else(|_| HOSTS.to_owned())
        }
        _ => HOSTS.to_owned(),
    };
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    for (name, content) in [
        ("hosts", hosts.as_str()),
        ("hostname", &format!("{hostname}\n")),
        ("resolv.conf", &resolv),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, content).map_err(io_err("write", p.display()))?;
    }
    Ok(())
}

/// The files and directories of the shared init layer: mount points the runtime would otherwise
/// create in each container's overlay (copying `/etc` up into its upper dir to do so).
const INIT_DIRS: [&str; 4] = ["dev", "etc", "proc", "sys"];
const INIT_FILES: [&str; 3] = ["etc/hosts", "etc/hostname", "etc/resolv.conf"];

/// `ROOT/cache/init-layer-v1`, created once: a read-only lower layer above every image, as
/// Docker's per-container init layer but shared (its content depends on nothing). Built under a
/// temp name and renamed into place, so it is complete whenever it exists.
fn init_layer(root: &Path) -> Result<PathBuf> {
    let cache = root.join("cache");
    let dir = cache.join("init-layer-v1");
    if dir.is_dir() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&cache).map_err(io_err("create", cache.display()))?;
    let tmp = cache.join(format!(".init-layer-v1.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let build = || -> std::io::Result<()> {
        std::fs::create_dir(&tmp)?;
        for d in INIT_DIRS {
            std::fs::create_dir(tmp.join(d))?;
        }
        for f in INIT_FILES {
            std::fs::File::create(tmp.join(f))?.sync_all()?;
        }
        for d in INIT_DIRS {
            std::fs::File::open(tmp.join(d))?.sync_all()?;
        }
        std::fs::File::open(&tmp)?.sync_all()
    };
    build().map_err(io_err("create", tmp.display()))?;
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => {
            std::fs::File::open(&cache)
                .and_then(|d| d.sync_all())
                .map_err(io_err("fsync", cache.display()))?;
        }
        // Another command made it first: theirs is as good as ours.
        Err(_) if dir.is_dir() => {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        Err(e) => return Err(io_err("rename into place", dir.display())(e)),
    }
    Ok(dir)
}

impl Engine {
    /// Creates a container from `opts` (`berth create`, and the first half of `berth run`).
    /// `durable` = false skips fsync for containers that die with this command (`run --rm`).
    pub fn create(&self, opts: &CreateOptions, durable: bool) -> Result<Prepared> {
        // Validate every flag before touching the disk.
        let security = options::parse_security(&opts.security_opt)?;
        let network = options::parse_networks(&opts.networks)?;
        let userns = options::parse_userns(opts.userns.as_deref())?;
        let memory = opts
            .memory
            .as_deref()
            .map(|m| options::parse_size("--memory", m))
            .transpose()?
            .unwrap_or(0);
        let nano_cpus = opts
            .cpus
            .as_deref()
            .map(options::parse_cpus)
            .transpose()?
            .unwrap_or(0);
        let ulimits = opts
            .ulimits
            .iter()
            .map(|u| options::parse_ulimit(u))
            .collect::<Result<Vec<_>, _>>()?;
        let pids_limit = match options::pids_limit(opts.pids_limit)? {
            // The default only where the host can enforce it (as Podman does): a v2 host whose
            // root does not offer the pids controller has no pids.max to write. A limit the user
            // asked for is still applied, and fails clearly there.
            Some(_)
                if opts.pids_limit.is_none()
                    && !berth_runtime::cgroups::Hierarchy::host()
                        .is_ok_and(|h| h.has_controller("pids")) =>
            {
                None
            }
            l => l,
        };
        let mut devices = Vec::with_capacity(opts.devices.len());
        for d in &opts.devices {
            let m = options::parse_device(d)?;
            // As Docker: a device missing on the host fails the create, not a later start.
            options::resolve_device(&m)?;
            devices.push(m);
        }
        for r in &opts.device_cgroup_rules {
            options::parse_device_cgroup_rule(r)?;
        }
        let mut mounts = Vec::new();
        for v in &opts.volumes {
            let b = options::parse_bind(v)?;
            if b.idmap && userns == options::UsernsMode::Host {
                return Err(options::OptionError::Invalid {
                    flag: "--volume",
                    value: v.clone(),
                    why: "idmap needs --userns auto",
                }
                .into());
            }
            // Docker creates a missing host directory for a bind mount.
            if std::fs::symlink_metadata(&b.source).is_err() {
                std::fs::create_dir_all(&b.source)
                    .map_err(io_err("create bind source", &b.source))?;
            }
            mounts.push(MountPoint {
                kind: "bind".into(),
                source: b.source,
                destination: b.target,
                mode: match (b.read_only, b.idmap) {
                    (true, true) => "ro,idmap".into(),
                    (true, false) => "ro".into(),
                    (false, true) => "idmap".into(),
                    (false, false) => String::new(),
                },
                rw: !b.read_only,
            });
        }
        let mut tmpfs = std::collections::BTreeMap::new();
        for t in &opts.tmpfs {
            let (target, o) = options::parse_tmpfs(t)?;
            mounts.push(MountPoint {
                kind: "tmpfs".into(),
                source: String::new(),
                destination: target.clone(),
                mode: o.clone(),
                rw: true,
            });
            tmpfs.insert(target, o);
        }
        let mut user_env = Vec::new();
        for f in &opts.env_files {
            user_env.extend(options::read_env_file(f)?);
        }
        user_env.extend(opts.env.iter().cloned());
        if let Some(n) = &opts.name
            && !names::valid_name(n)
        {
            return Err(options::OptionError::Invalid {
                flag: "--name",
                value: n.clone(),
                why: "names are [a-zA-Z0-9][a-zA-Z0-9_.-]+",
            }
            .into());
        }
        let mut labels = std::collections::BTreeMap::new();
        for l in &opts.labels {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            labels.insert(k.to_owned(), v.to_owned());
        }

        // Resolve the image and record the container under the store's shared lock, so a
        // concurrent prune sees the container before it can remove the image.
        let store = self.image_store()?;
        let lock = store.lock_shared().map_err(|source| Error::OpenStore {
            path: self.root.clone(),
            cause: Box::new(source),
        })?;
        let image = store.image(&opts.image).map_err(|source| Error::Image {
            action: "resolving",
            image: opts.image.clone(),
            cause: Box::new(source),
        })?;
        let rootfs = store.rootfs(&image).map_err(|source| Error::Image {
            action: "unpacking",
            image: opts.image.clone(),
            cause: Box::new(source),
        })?;
        self.timing.mark("resolve");

        let icfg = image.config.config().clone().unwrap_or_default();
        let entrypoint: Vec<String> = match &opts.entrypoint {
            Some(e) if e.is_empty() => Vec::new(),
            Some(e) => vec![e.clone()],
            None => icfg.entrypoint().clone().unwrap_or_default(),
        };
        let cmd: Vec<String> = if !opts.cmd.is_empty() {
            opts.cmd.clone()
        } else if opts.entrypoint.is_some() {
            Vec::new() // Docker: --entrypoint resets the image's Cmd
        } else {
            icfg.cmd().clone().unwrap_or_default()
        };
        let mut argv: Vec<String> = entrypoint.iter().chain(cmd.iter()).cloned().collect();
        if argv.is_empty() {
            return Err(Error::Spec {
                id: String::new(),
                cause: spec::SpecError::NoCommand,
            });
        }
        let path = argv.remove(0);
        let image_exposed: Vec<String> = icfg.exposed_ports().clone().unwrap_or_default();

        let id = names::new_id();
        let dir = self.containers.create_dir(&id)?;
        // Held until the state file exists: a name pointing at an unlocked, stateless container
        // was left by a creation that died, and may be taken over.
        let creating = match self.containers.lock(&id) {
            Ok(l) => l,
            Err(e) => {
                let _ = self.containers.remove_dir(&id);
                return Err(e.into());
            }
        };
        let mut undo = Undo {
            engine: self,
            id: id.clone(),
            name: None,
            armed: true,
        };
        let name = match &opts.name {
            Some(n) => {
                let n = n.strip_prefix('/').unwrap_or(n).to_owned();
                self.containers.reserve_name(&n, &id)?;
                n
            }
            None => {
                let mut attempt = 0;
                loop {
                    let n = names::random_name(attempt);
                    match self.containers.reserve_name(&n, &id) {
                        Ok(()) => break n,
                        Err(StoreError::NameInUse { .. }) if attempt < 20 => attempt += 1,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        };
        undo.name = Some(name.clone());
        let net = self.plan_networking(opts, &network, &image_exposed, &name)?;
        let hostname = opts
            .hostname
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| id[..12].to_owned());
        let record = ContainerRecord {
            id: id.clone(),
            created: crate::time::now_rfc3339(),
            path,
            args: argv,
            image: image.id.to_string(),
            name: format!("/{name}"),
            config: ContainerConfig {
                hostname: hostname.clone(),
                user: opts
                    .user
                    .clone()
                    .or_else(|| icfg.user().clone())
                    .unwrap_or_default(),
                attach_stdin: opts.interactive,
                attach_stdout: true,
                attach_stderr: true,
                tty: opts.tty,
                open_stdin: opts.interactive,
                env: merge_env(&icfg.env().clone().unwrap_or_default(), &user_env),
                cmd,
                image: opts.image.clone(),
                working_dir: opts
                    .workdir
                    .clone()
                    .or_else(|| icfg.working_dir().clone())
                    .filter(|w| !w.is_empty())
                    .unwrap_or_else(|| "/".to_owned()),
                entrypoint,
                labels,
                stop_signal: icfg.stop_signal().clone(),
                exposed_ports: net.exposed_ports,
                domainname: opts.domainname.clone().unwrap_or_default(),
            },
            host_config: HostConfig {
                binds: opts.volumes.clone(),
                tmpfs,
                network_mode: network.as_record(),
                auto_remove: opts.auto_remove,
                readonly_rootfs: opts.read_only,
                cap_add: opts.cap_add.clone(),
                cap_drop: opts.cap_drop.clone(),
                security_opt: opts.security_opt.clone(),
                init: opts.init,
                userns_mode: opts.userns.clone().unwrap_or_default(),
                memory,
                nano_cpus,
                pids_limit,
                devices,
                device_cgroup_rules: opts.device_cgroup_rules.clone(),
                ulimits,
                privileged: false,
                log_config: Default::default(),
                port_bindings: net.port_bindings,
                publish_all_ports: opts.publish_all,
                links: net.links,
                extra_hosts: net.extra_hosts,
                dns: opts.dns.clone(),
                dns_search: opts.dns_search.clone(),
                dns_options: opts.dns_options.clone(),
            },
            mounts,
            networking_config: net.networking_config,
        };
        self.containers.write_new_config(&record, durable)?;
        write_etc_files(&dir, &hostname, &network)?;
        self.containers
            .write_state(&id, &State::created(), durable)?;
        drop(creating);
        drop(lock);

        let prepared = self.prepare_spec(record, rootfs.lowers, security)?;
        undo.armed = false;
        self.timing.mark("prepare");
        Ok(prepared)
    }

    /// Resolves the user and generates the spec of a recorded container.
    pub(crate) fn prepare_spec(
        &self,
        record: ContainerRecord,
        lowers: Vec<PathBuf>,
        security: Security,
    ) -> Result<Prepared> {
        let dir = self.containers.dir(&record.id);
        // The init layer sits right above the image (below the container's upper dir), for every
        // start of the container alike.
        let mut lowers = lowers;
        lowers.insert(0, init_layer(&self.root)?);
        let mut layers = Vec::with_capacity(lowers.len() + 1);
        layers.push(dir.join("upper"));
        layers.extend(lowers.iter().cloned());
        let user = crate::userdb::resolve(&record.config.user, &layers)?;
        let network = options::recorded_network_mode(
            &record.host_config.network_mode,
            &record
                .networking_config
                .endpoints_config
                .iter()
                .map(|e| e.network.clone())
                .collect::<Vec<_>>(),
        );
        // `container:NAME`: that container's namespace, while it runs.
        let netns_path = match &network {
            NetworkMode::Container(other) => {
                let id = self.resolve(other)?;
                let st = self.state(&id)?;
                if st.status != crate::record::Status::Running {
                    return Err(Error::NetworkConfig(format!(
                        "cannot join the network of a non running container: {other}"
                    )));
                }
                Some(PathBuf::from(format!("/proc/{}/ns/net", st.pid)))
            }
            _ => None,
        };
        let init = if record.host_config.init {
            Some(
                crate::init::InitFiles::of_this_process()
                    .map_err(io_err("find the files of", "the --init binary"))?
                    .copied_into(&self.root.join("cache"))
                    .map_err(io_err("copy into the state root", "the --init files"))?,
            )
        } else {
            None
        };
        // The container's range is claimed at create and kept across starts (released at rm).
        let userns = match options::parse_userns(Some(&record.host_config.userns_mode))? {
            options::UsernsMode::Host => None,
            options::UsernsMode::Auto => Some(crate::userns::acquire(
                &self.root,
                &record.id,
                &crate::userns::Pool::host(),
                |other| self.containers.dir(other).exists(),
            )?),
        };
        let devices = record
            .host_config
            .devices
            .iter()
            .map(options::resolve_device)
            .collect::<Result<Vec<_>, _>>()?;
        let device_rules = record
            .host_config
            .device_cgroup_rules
            .iter()
            .map(|r| options::parse_device_cgroup_rule(r))
            .collect::<Result<Vec<_>, _>>()?;
        let spec = spec::generate(
            &record,
            &user,
            &SpecPaths {
                rootfs: dir.join("rootfs"),
                container_dir: dir,
            },
            &SpecFlags {
                network,
                netns_path,
                no_new_privileges: security.no_new_privileges,
                init,
                userns,
                devices,
                device_rules,
            },
        )
        .map_err(|source| Error::Spec {
            id: record.id.clone(),
            cause: source,
        })?;
        Ok(Prepared {
            record,
            spec,
            lowers,
            security,
        })
    }

    /// Loads a recorded container for a start: its image's layers (under the store's shared lock)
    /// and a fresh spec.
    pub(crate) fn load_prepared(&self, id: &str) -> Result<Prepared> {
        let record = self.containers.read_config(id)?;
        let security = options::parse_security(&record.host_config.security_opt)?;
        let store = self.image_store()?;
        let lock = store.lock_shared().map_err(|source| Error::OpenStore {
            path: self.root.clone(),
            cause: Box::new(source),
        })?;
        let image = store.image(&record.image).map_err(|source| Error::Image {
            action: "resolving",
            image: record.image.clone(),
            cause: Box::new(source),
        })?;
        let rootfs = store.rootfs(&image).map_err(|source| Error::Image {
            action: "unpacking",
            image: record.image.clone(),
            cause: Box::new(source),
        })?;
        drop(lock);
        self.prepare_spec(record, rootfs.lowers, security)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_by_key_and_takes_bare_keys_from_the_caller() {
        let base = vec!["PATH=/bin".to_owned(), "A=1".to_owned()];
        // SAFETY-free: the variable is read, never set, by this test; PATH exists in every test env.
        let merged = merge_env(
            &base,
            &["A=2".into(), "B=3".into(), "BERTH_SURELY_UNSET_VAR".into()],
        );
        assert_eq!(
            merged,
            vec!["PATH=/bin".to_owned(), "A=2".into(), "B=3".into()]
        );
        let merged = merge_env(&base, &["PATH".into()]);
        assert_eq!(
            merged[0],
            format!("PATH={}", std::env::var("PATH").unwrap())
        );
    }

    #[test]
    fn init_layer_is_made_once_and_holds_the_mount_points() {
        let t = tempfile::tempdir().unwrap();
        let a = init_layer(t.path()).unwrap();
        for f in INIT_FILES {
            let m = std::fs::metadata(a.join(f)).unwrap();
            assert!(m.is_file() && m.len() == 0, "{f}");
        }
        for d in INIT_DIRS {
            assert!(a.join(d).is_dir(), "{d}");
        }
        let marker = a.join("etc/hosts");
        let before = std::fs::metadata(&marker).unwrap().modified().unwrap();
        assert_eq!(init_layer(t.path()).unwrap(), a);
        assert_eq!(
            std::fs::metadata(&marker).unwrap().modified().unwrap(),
            before,
            "reused, not rebuilt"
        );
        let leftovers: Vec<_> = std::fs::read_dir(t.path().join("cache"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("init-layer-v1")]);
    }

    #[test]
    fn etc_files_are_written() {
        let t = tempfile::tempdir().unwrap();
        write_etc_files(t.path(), "box1", &NetworkMode::None).unwrap();
        assert_eq!(
            std::fs::read_to_string(t.path().join("hostname")).unwrap(),
            "box1\n"
        );
        assert!(
            std::fs::read_to_string(t.path().join("hosts"))
                .unwrap()
                .starts_with("127.0.0.1\tlocalhost")
        );
        assert!(t.path().join("resolv.conf").exists());
    }
}
