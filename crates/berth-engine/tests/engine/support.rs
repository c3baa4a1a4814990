//! A temporary state root per test with a busybox image, an engine whose monitor is the
//! `monitor` example, and the check that a test left no mount, cgroup or process behind.

use berth_engine::{CreateOptions, Engine, Prepared};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A state root and a run root of one test, with the engine on them.
pub struct Root {
    /// The engine on [`Root::root`].
    pub engine: Engine,
    root: tempfile::TempDir,
    run_root: tempfile::TempDir,
}

impl Root {
    /// Fresh roots with busybox imported as `bb`.
    pub fn with_busybox() -> Root {
        let base = scratch_dir();
        let root = tempfile::Builder::new()
            .prefix("root-")
            .tempdir_in(&base)
            .expect("temp state root");
        let run_root = tempfile::Builder::new()
            .prefix("run-")
            .tempdir_in(&base)
            .expect("temp run root");
        let engine = Engine::open(root.path(), run_root.path())
            .expect("open engine")
            .with_monitor(monitor_program());
        let r = Root {
            engine,
            root,
            run_root,
        };
        r.import("bb", &[]);
        r
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Imports the busybox rootfs as `name` with Dockerfile `changes`; returns the image id.
    pub fn import(&self, name: &str, changes: &[&str]) -> String {
        let store = berth_store::Store::open(self.root()).expect("open store");
        let tar = std::fs::File::open(busybox_tar()).expect("open busybox tar");
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
        let tar = std::fs::File::open(busybox_tar()).expect("open busybox tar");
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

    /// Mount points under this test's roots.
    fn mounts(&self) -> Vec<String> {
        let roots = [self.root.path(), self.run_root.path()];
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|mp| roots.iter().any(|r| Path::new(mp).starts_with(r)))
            .map(str::to_owned)
            .collect()
    }

    /// Processes whose command line names this test's state root (monitors, cleaners).
    fn processes(&self) -> Vec<String> {
        let root = self.root.path().to_string_lossy().into_owned();
        let me = std::process::id().to_string();
        let mut found = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let pid = e.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
                continue;
            }
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&root) {
                found.push(format!("{pid}: {cmdline}"));
            }
        }
        found
    }

    /// Cgroups of `ids` left in any hierarchy.
    fn cgroups(ids: &[String]) -> Vec<PathBuf> {
        let mut left = Vec::new();
        for h in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            for id in ids {
                let p = h.path().join("berth").join(id);
                if p.exists() {
                    left.push(p);
                }
            }
        }
        left
    }

    /// Asserts that nothing of the containers `ids` (all removed by the test) is left: no mount,
    /// cgroup or process, no directory. Monitors record an exit before they end, so processes
    /// get a moment to go.
    pub fn assert_clean(&self, ids: &[String]) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.processes().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            self.processes(),
            Vec::<String>::new(),
            "processes left behind"
        );
        assert_eq!(self.mounts(), Vec::<String>::new(), "mounts left behind");
        assert_eq!(
            Root::cgroups(ids),
            Vec::<PathBuf>::new(),
            "cgroups left behind"
        );
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

/// Test scratch on the target's disk (overlay upper dirs cannot live on every filesystem).
fn scratch_dir() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("berth-engine-tests");
    std::fs::create_dir_all(&p).expect("create scratch dir");
    p
}

/// The busybox rootfs tarball, made once by `scripts/make-busybox-tar.sh` (busybox-static).
fn busybox_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let tar = scratch_dir().join("busybox.tar");
        if !tar.exists() {
            let script =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-busybox-tar.sh");
            let st = std::process::Command::new("bash")
                .arg(&script)
                .arg(&tar)
                .status()
                .expect("run make-busybox-tar.sh");
            assert!(st.success(), "make-busybox-tar.sh failed");
        }
        tar
    })
}
