//! A state root per test (berth-testkit's) with a busybox image, an engine whose monitor is the
//! `monitor` example, and the check that a test left no mount, cgroup, process or directory behind.

use berth_engine::{CreateOptions, Engine, Prepared};
use berth_testkit::root::{StateRoots, cgroup_dirs_for};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A state root and a run root of one test, with the engine on them.
pub struct Root {
    /// The engine on [`Root::root`].
    pub engine: Engine,
    roots: StateRoots,
}

impl Root {
    /// Fresh roots with busybox imported as `bb`.
    pub fn with_busybox() -> Root {
        let roots = StateRoots::new();
        let engine = Engine::open(roots.root(), roots.run_root())
            .expect("open engine")
            .with_monitor(monitor_program());
        let r = Root { engine, roots };
        r.import("bb", &[]);
        r
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        self.roots.root()
    }

    /// Imports the busybox rootfs as `name` with Dockerfile `changes`; returns the image id.
    pub fn import(&self, name: &str, changes: &[&str]) -> String {
        let store = berth_store::Store::open(self.root()).expect("open store");
        let tar = std::fs::File::open(berth_testkit::busybox::tar()).expect("open busybox tar");
        let reference = berth_oci::Reference::parse(name).expect("reference");
        let opts = berth_store::ImportOptions {
            changes: changes.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        };
        store
            .import(tar, Some(&reference), &opts)
            .expect("import busybox")
            .id
            .to_string()
    }

    /// Imports the busybox rootfs untagged, with Dockerfile `changes`; returns the image id.
    pub fn import_untagged(&self, changes: &[&str]) -> String {
        let store = berth_store::Store::open(self.root()).expect("open store");
        let tar = std::fs::File::open(berth_testkit::busybox::tar()).expect("open busybox tar");
        let opts = berth_store::ImportOptions {
            changes: changes.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        };
        store
            .import(tar, None, &opts)
            .expect("import busybox")
            .id
            .to_string()
    }

    /// Creates a container from `bb` named `name` running `cmd`, with `labels` (`K=V`).
    pub fn create(&self, name: &str, cmd: &[&str], labels: &[&str]) -> Prepared {
        let opts = CreateOptions {
            image: "bb".into(),
            cmd: cmd.iter().map(|c| c.to_string()).collect(),
            name: Some(name.into()),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            ..Default::default()
        };
        self.engine.create(&opts, false).expect("create container")
    }

    /// Asserts that nothing of the containers `ids` (all removed by the test) is left: no mount,
    /// cgroup, process (monitors record an exit before they end, so they get a moment) or
    /// directory.
    pub fn assert_clean(&self, ids: &[String]) {
        self.roots.assert_clean();
        let cgroups: Vec<PathBuf> = ids.iter().flat_map(|id| cgroup_dirs_for(id)).collect();
        assert_eq!(cgroups, Vec::<PathBuf>::new(), "cgroups left behind");
        self.roots
            .assert_no_processes_within(Duration::from_secs(5));
        for id in ids {
            assert!(
                !self.root().join("containers").join(id).exists(),
                "container directory {id} left behind"
            );
        }
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        // Best effort, so that a failed test does not leave running containers for the next.
        if let Ok(list) = self.engine.list(true) {
            for c in list {
                let _ = self.engine.remove(&c.record.id, true);
            }
        }
    }
}

/// The `monitor` example, which cargo builds with the tests: `target/<profile>/examples/monitor`.
fn monitor_program() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let p = profile_dir.join("examples").join("monitor");
    assert!(p.exists(), "{} not built", p.display());
    p
}
