//! The engine: container operations over the records in ROOT, the image store and the runtime.
//! One file per operation group: `create`, `start` (foreground, detached, monitor), `exec`,
//! `lifecycle` (stop, kill, wait, rm) and `query` (ps, images, inspect, logs).

mod create;
mod exec;
mod lifecycle;
mod network;
mod query;
mod start;

pub use create::Prepared;
pub use exec::ExecOptions;
pub use query::{ContainerSummary, ImageSummary, ListOptions};

use crate::error::{Error, Result};
use crate::options::{SeccompChoice, Security};
use crate::record::{ContainerRecord, State, Status};
use crate::store::Containers;
use berth_runtime::seccomp::Program;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Container operations on one state root.
#[derive(Debug)]
pub struct Engine {
    root: PathBuf,
    run_root: PathBuf,
    containers: Containers,
    timing: Timing,
    monitor: PathBuf,
}

impl Engine {
    /// Opens the engine on ROOT (state) and RUN (runtime state).
    pub fn open(root: &Path, run_root: &Path) -> Result<Engine> {
        Ok(Engine {
            root: root.to_owned(),
            run_root: run_root.to_owned(),
            containers: Containers::open(root)?,
            timing: Timing::from_env(),
            monitor: PathBuf::from("/proc/self/exe"),
        })
    }

    /// Watches detached containers with `program`, started as `PROGRAM --root ROOT --run-root RUN
    /// __monitor ID`; it must call [`Engine::monitor`] for that id. The default is the running
    /// binary itself (`/proc/self/exe`), as `berth` is; a program that embeds the engine without
    /// that entry point (a test binary, say) names one that has it.
    pub fn with_monitor(mut self, program: impl Into<PathBuf>) -> Engine {
        self.monitor = program.into();
        self
    }

    /// The container records.
    pub fn containers(&self) -> &Containers {
        &self.containers
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The runtime state root.
    pub fn run_root(&self) -> &Path {
        &self.run_root
    }

    /// Resolves a name, id or unique id prefix to a full id.
    pub fn resolve(&self, what: &str) -> Result<String> {
        Ok(self.containers.resolve(what)?)
    }

    /// Image ids used by any container, creations in progress included: the store's `rmi` and
    /// prune must keep them.
    pub fn images_in_use(&self) -> Result<std::collections::HashSet<berth_oci::Digest>> {
        Ok(self.containers.image_ids()?)
    }

    /// A container's state, corrected if the process that watched it is gone: a crashed monitor or a
    /// killed CLI never leaves a container "running" (its cgroup is cleaned up, and an `--rm`
    /// container removed).
    pub fn state(&self, id: &str) -> Result<State> {
        let st = self.containers.read_state(id)?;
        if st.status != Status::Running || crate::procs::alive(st.monitor_pid, st.monitor_start) {
            return Ok(st);
        }
        let _lock = self.containers.lock(id)?;
        let mut st = self.containers.read_state(id)?;
        if st.status != Status::Running || crate::procs::alive(st.monitor_pid, st.monitor_start) {
            return Ok(st);
        }
        let rec = self.containers.read_config(id)?;
        if crate::procs::alive(st.pid, st.pid_start) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(st.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = berth_runtime::destroy(id, &cgroups_path(id));
        st.error = format!(
            "the process watching this container (pid {}) is gone; the container was killed",
            st.monitor_pid
        );
        mark_exited(&mut st, 137, false);
        if rec.host_config.auto_remove {
            // `--rm`: the container is gone, as if its watcher had removed it.
            self.remove_now(&rec)?;
            return Err(crate::store::StoreError::NotFound(id.to_owned()).into());
        } else {
            self.containers.write_state(id, &st, true)?;
        }
        Ok(st)
    }

    /// The image store of this root.
    pub(crate) fn image_store(&self) -> Result<berth_store::Store> {
        berth_store::Store::open(&self.root).map_err(|source| Error::OpenStore {
            path: self.root.clone(),
            cause: Box::new(source),
        })
    }

    /// Removes a stopped container's name and directory.
    fn remove_now(&self, rec: &ContainerRecord) -> Result<()> {
        self.discard(rec, None)
    }

    /// Removes a stopped container: its name now, its directory from view now (one rename into
    /// the trash) and from the disk in a detached cleaner, which also closes `mnt_ns` (the hold on
    /// the container's mount namespace) so that nobody waits for the kernel's unmounting.
    fn discard(&self, rec: &ContainerRecord, mnt_ns: Option<std::os::fd::OwnedFd>) -> Result<()> {
        // The directory leaves first: a kill in between leaves a name whose owner is gone (free
        // to take), never a listed container that its name no longer reaches.
        let moved = self.containers.move_to_trash(&rec.id).and_then(|moved| {
            self.containers
                .release_name(rec.short_name(), &rec.id)
                .map(|()| moved)
        });
        match moved {
            Ok(moved) => crate::trash::release(moved, mnt_ns),
            Err(e) => {
                crate::trash::release(None, mnt_ns);
                return Err(e.into());
            }
        }
        crate::userns::release(&self.root, &rec.id)?;
        Ok(())
    }

    /// The seccomp program for a container's security options (None = unconfined). The default
    /// profile follows `caps`, the process's final capability set, as Docker's does: an added
    /// capability opens the syscalls it is for.
    fn seccomp(&self, sec: &Security, caps: &[String]) -> Result<Option<Program>> {
        let cache = self.root.join("cache").join("seccomp");
        match &sec.seccomp {
            SeccompChoice::Unconfined => Ok(None),
            SeccompChoice::Default => {
                let caps: Vec<&str> = caps.iter().map(String::as_str).collect();
                Program::for_capabilities_cached(&cache, &caps)
                    .map(Some)
                    .map_err(|source| Error::Seccomp {
                        what: "default".into(),
                        cause: source,
                    })
            }
            SeccompChoice::File(p) => {
                let text = std::fs::read(p).map_err(|e| Error::SeccompFile {
                    path: p.clone(),
                    why: e.to_string(),
                })?;
                let profile: oci_spec::runtime::LinuxSeccomp = serde_json::from_slice(&text)
                    .map_err(|e| Error::SeccompFile {
                        path: p.clone(),
                        why: e.to_string(),
                    })?;
                Program::cached(&cache, &profile)
                    .map(Some)
                    .map_err(|source| Error::Seccomp {
                        what: p.display().to_string(),
                        cause: source,
                    })
            }
        }
    }
}

/// The cgroup path of a container (as in its spec).
pub fn cgroups_path(id: &str) -> String {
    format!("berth/{id}")
}

/// Records an exit in `st`.
pub(crate) fn mark_exited(st: &mut State, code: i32, oom: bool) {
    st.status = Status::Exited;
    st.running = false;
    st.pid = 0;
    st.pid_start = 0;
    st.exit_code = code;
    st.oom_killed = oom;
    st.finished_at = crate::time::now_rfc3339();
    st.network_settings = Default::default();
}

/// Per-phase timing of a start, printed to stderr when `BERTH_TRACE_TIMING=1`.
#[derive(Debug)]
pub struct Timing {
    enabled: bool,
    start: Instant,
    last: std::cell::Cell<Instant>,
    phases: std::cell::RefCell<Vec<(&'static str, u128)>>,
}

impl Timing {
    fn from_env() -> Timing {
        let now = Instant::now();
        Timing {
            enabled: std::env::var_os("BERTH_TRACE_TIMING").is_some_and(|v| v == "1"),
            start: now,
            last: std::cell::Cell::new(now),
            phases: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// Ends the current phase, naming it.
    pub fn mark(&self, phase: &'static str) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        let us = now.duration_since(self.last.get()).as_micros();
        self.last.set(now);
        self.phases.borrow_mut().push((phase, us));
    }

    /// Prints the phases (µs) and the total.
    pub fn report(&self) {
        if !self.enabled {
            return;
        }
        let mut line = String::from("berth timing (us):");
        for (p, us) in self.phases.borrow().iter() {
            line.push_str(&format!(" {p}={us}"));
        }
        line.push_str(&format!(" total={}", self.start.elapsed().as_micros()));
        eprintln!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{ContainerConfig, HostConfig};

    fn record(id: &str, auto_remove: bool) -> ContainerRecord {
        ContainerRecord {
            id: id.to_owned(),
            created: crate::time::now_rfc3339(),
            path: "sleep".into(),
            args: vec!["100".into()],
            image: format!("sha256:{}", "cd".repeat(32)),
            name: "/crashy".into(),
            config: ContainerConfig::default(),
            host_config: HostConfig {
                auto_remove,
                ..Default::default()
            },
            mounts: vec![],
            networking_config: Default::default(),
        }
    }

    /// A pid that surely is not running: a child we spawned and reaped.
    fn dead_pid() -> i32 {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id() as i32;
        c.wait().unwrap();
        pid
    }

    #[test]
    fn a_dead_monitor_turns_running_into_exited() {
        let t = tempfile::tempdir().unwrap();
        let e = Engine::open(t.path(), &t.path().join("run")).unwrap();
        let id = "ef".repeat(32);
        e.containers.create_dir(&id).unwrap();
        e.containers
            .write_config(&record(&id, false), false)
            .unwrap();
        let mut st = State::created();
        st.status = Status::Running;
        st.running = true;
        st.pid = dead_pid();
        st.monitor_pid = dead_pid();
        e.containers.write_state(&id, &st, false).unwrap();
        let now = e.state(&id).unwrap();
        assert_eq!(now.status, Status::Exited);
        assert_eq!(now.exit_code, 137);
        assert!(now.error.contains("is gone"));
        assert_eq!(
            e.containers.read_state(&id).unwrap().status,
            Status::Exited,
            "the correction is recorded"
        );
        let image: berth_oci::Digest = format!("sha256:{}", "cd".repeat(32)).parse().unwrap();
        assert!(e.images_in_use().unwrap().contains(&image));

        // A live monitor (this test process) is trusted.
        let me = std::process::id() as i32;
        st.monitor_pid = me;
        st.monitor_start = crate::procs::start_time(me).unwrap();
        e.containers.write_state(&id, &st, false).unwrap();
        assert_eq!(e.state(&id).unwrap().status, Status::Running);
    }

    #[test]
    fn a_dead_monitor_of_an_rm_container_removes_it() {
        let t = tempfile::tempdir().unwrap();
        let e = Engine::open(t.path(), &t.path().join("run")).unwrap();
        let id = "ab".repeat(32);
        e.containers.create_dir(&id).unwrap();
        e.containers.reserve_name("crashy", &id).unwrap();
        e.containers
            .write_config(&record(&id, true), false)
            .unwrap();
        let mut st = State::created();
        st.status = Status::Running;
        st.monitor_pid = dead_pid();
        e.containers.write_state(&id, &st, false).unwrap();
        assert!(matches!(
            e.state(&id),
            Err(Error::Store(crate::store::StoreError::NotFound(_)))
        ));
        assert!(!e.containers.dir(&id).exists());
        assert_eq!(e.containers.name_owner("crashy"), None);
    }
}
