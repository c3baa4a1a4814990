//! A test's own state root and run root, and the checks that it left no mount, cgroup or process behind.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A temporary state root (`--root`) and run root (`--run-root`) under [`crate::scratch_dir`].
/// Dropping it lazily unmounts whatever is still mounted below either, then removes both directories;
/// a test that wants to *prove* it left nothing calls [`StateRoots::assert_clean`] first.
pub struct StateRoots {
    root: tempfile::TempDir,
    run_root: tempfile::TempDir,
}

impl Default for StateRoots {
    fn default() -> Self {
        Self::new()
    }
}

impl StateRoots {
    /// Fresh, empty roots.
    pub fn new() -> StateRoots {
        let base = crate::scratch_dir();
        let dir = |prefix: &str| {
            tempfile::Builder::new()
                .prefix(prefix)
                .tempdir_in(&base)
                .unwrap_or_else(|e| panic!("temp {prefix} dir in {}: {e}", base.display()))
        };
        StateRoots {
            root: dir("root-"),
            run_root: dir("run-"),
        }
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The run root.
    pub fn run_root(&self) -> &Path {
        self.run_root.path()
    }

    /// Mount points below either root that are still mounted, in mount order.
    pub fn leftover_mounts(&self) -> Vec<String> {
        mounts_below(&[self.root(), self.run_root()])
    }

    /// Container ids this root holds (the names of `ROOT/containers/*`).
    pub fn container_ids(&self) -> Vec<String> {
        std::fs::read_dir(self.root().join("containers"))
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Cgroup directories still there for this root's containers, in any hierarchy.
    pub fn leftover_cgroups(&self) -> Vec<PathBuf> {
        self.container_ids()
            .iter()
            .flat_map(|id| cgroup_dirs_for(id))
            .collect()
    }

    /// Processes other than this one whose command line names this root: monitors, CLIs, cleaners.
    pub fn processes(&self) -> Vec<String> {
        processes_naming(&self.root().to_string_lossy())
    }

    /// Fails the test if a mount or a cgroup of this root is left.
    pub fn assert_clean(&self) {
        assert_eq!(
            self.leftover_mounts(),
            Vec::<String>::new(),
            "mounts left behind"
        );
        assert_eq!(
            self.leftover_cgroups(),
            Vec::<PathBuf>::new(),
            "cgroups left behind"
        );
    }

    /// Fails the test if a process of this root is still there once `within` has passed (a detached
    /// cleaner may still be finishing what the last command started).
    pub fn assert_no_processes_within(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = self.processes();
            if left.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "processes left behind: {left:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for StateRoots {
    fn drop(&mut self) {
        // The roots' networks: bridges, rules and the DNS server live on the host, not in the
        // temporary directories, so they are taken down here (only a root that made one has any).
        if self.root().join("networks").exists() {
            let _ = berth_net::Net::new(self.root(), self.run_root()).remove_all();
        }
        for m in self.leftover_mounts().iter().rev() {
            let _ = rustix::mount::unmount(m.as_str(), rustix::mount::UnmountFlags::DETACH);
        }
    }
}

/// Mount points (from `/proc/self/mountinfo`) at or below any of `dirs`.
pub fn mounts_below(dirs: &[&Path]) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| dirs.iter().any(|d| Path::new(mp).starts_with(d)))
        .map(str::to_owned)
        .collect()
}

/// Cgroup directories named after container `id` under a `berth` parent in any hierarchy of
/// `/sys/fs/cgroup` (v1 controllers, the unified hierarchy, or a pure v2 host's root).
pub fn cgroup_dirs_for(id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let top = Path::new("/sys/fs/cgroup");
    let direct = top.join("berth").join(id);
    if direct.exists() {
        found.push(direct);
    }
    let Ok(hier) = std::fs::read_dir(top) else {
        return found;
    };
    for h in hier.filter_map(Result::ok) {
        let p = h.path().join("berth").join(id);
        if p.exists() {
            found.push(p);
        }
    }
    found
}

/// Processes other than this one whose command line contains `needle`, as `"PID: CMDLINE"`.
pub fn processes_naming(needle: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
                return None;
            }
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains(needle).then(|| format!("{pid}: {cmd}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_roots_are_empty_and_clean() {
        let r = StateRoots::new();
        assert!(r.root().is_dir() && r.run_root().is_dir());
        assert!(r.container_ids().is_empty());
        r.assert_clean();
        assert!(r.processes().is_empty());
    }

    #[test]
    fn a_process_naming_the_root_is_seen() {
        let r = StateRoots::new();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env("X", "1")
            .arg0_with(r.root())
            .spawn()
            .expect("spawn sleep");
        // The new process shows its command line once its exec is through: look for a while.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = r.processes();
        while seen.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            seen = r.processes();
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(seen.len(), 1, "{seen:?}");
        r.assert_no_processes_within(Duration::from_secs(5));
    }

    /// Puts `root` on the child's command line, as berth's own processes carry `--root`.
    trait Arg0With {
        fn arg0_with(&mut self, root: &Path) -> &mut Self;
    }
    impl Arg0With for std::process::Command {
        fn arg0_with(&mut self, root: &Path) -> &mut Self {
            use std::os::unix::process::CommandExt;
            self.arg0(format!("sleep-in-{}", root.display()))
        }
    }
}
