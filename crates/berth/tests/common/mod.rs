//! Test harness for end-to-end tests of the `berth` binary: a temporary state root per test, the busybox
//! rootfs tarball built once from Debian's busybox-static, and a cleanup check that fails a test which leaves
//! a mount, cgroup or process behind.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

/// A temporary state root and run root (berth-testkit's), with the `berth` binary pointed at them;
/// on drop, what a test left running is removed first.
pub struct TestRoot {
    roots: berth_testkit::root::StateRoots,
}

impl TestRoot {
    /// Fresh, empty roots.
    pub fn new() -> TestRoot {
        TestRoot {
            roots: berth_testkit::root::StateRoots::new(),
        }
    }

    /// The state root's path.
    pub fn root(&self) -> &Path {
        self.roots.root()
    }

    /// The run root's path.
    pub fn run_root(&self) -> &Path {
        self.roots.run_root()
    }

    /// `berth --root R --run-root RR` ready for more arguments.
    pub fn berth(&self) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::cargo_bin("berth").expect("berth binary");
        c.arg("--root")
            .arg(self.root())
            .arg("--run-root")
            .arg(self.run_root());
        c.env_remove("BERTH_ROOT").env_remove("BERTH_RUN_ROOT");
        c
    }

    /// The same as [`TestRoot::berth`], as a std command (for spawning and killing).
    pub fn berth_std(&self) -> StdCommand {
        let mut c = StdCommand::new(assert_cmd::cargo::cargo_bin("berth"));
        c.arg("--root")
            .arg(self.root())
            .arg("--run-root")
            .arg(self.run_root());
        c.env_remove("BERTH_ROOT").env_remove("BERTH_RUN_ROOT");
        c
    }

    /// Imports the busybox rootfs as image `name` and returns the image id printed by import.
    pub fn busybox_image(&self, name: &str) -> String {
        let out = self
            .berth()
            .arg("import")
            .arg(busybox_tar())
            .arg(name)
            .output()
            .expect("run berth import");
        assert!(
            out.status.success(),
            "berth import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Mount points under this test's roots that are still mounted.
    pub fn leftover_mounts(&self) -> Vec<String> {
        self.roots.leftover_mounts()
    }

    /// Container ids known to this root.
    pub fn container_ids(&self) -> Vec<String> {
        self.roots.container_ids()
    }

    /// Cgroup directories left for this root's containers, in any hierarchy.
    pub fn leftover_cgroups(&self) -> Vec<PathBuf> {
        self.roots.leftover_cgroups()
    }

    /// Asserts that no container of this root is still mounted or holding a cgroup.
    /// Call at the end of tests that ran containers and removed them.
    pub fn assert_clean(&self) {
        self.roots.assert_clean()
    }
}

impl Drop for TestRoot {
    fn drop(&mut self) {
        // Best effort: remove every container this test left, so no process or cgroup outlives the
        // test (the roots unmount what is still mounted when they drop next).
        let ids = self.container_ids();
        if !ids.is_empty() {
            let _ = self.berth_std().arg("rm").arg("-f").args(&ids).output();
        }
    }
}

#[allow(unused_imports)]
pub use berth_testkit::busybox::{tar as busybox_tar, write_rootfs as make_busybox_rootfs};
#[allow(unused_imports)]
pub use berth_testkit::root::cgroup_dirs_for;
pub use berth_testkit::scratch_dir;

/// A command's standard output as text.
pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A command's standard error as text.
pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `berth ARGS` on this root and returns its output, whatever the exit code.
pub fn run(t: &TestRoot, args: &[&str]) -> std::process::Output {
    t.berth().args(args).output().expect("run berth")
}

/// Runs `berth ARGS`, asserts success and returns standard output.
pub fn ok(t: &TestRoot, args: &[&str]) -> String {
    let o = run(t, args);
    assert!(
        o.status.success(),
        "berth {args:?} failed ({:?}): {}",
        o.status.code(),
        stderr(&o)
    );
    stdout(&o)
}

/// `berth inspect C`'s first object.
pub fn inspect(t: &TestRoot, c: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&ok(t, &["inspect", c])).expect("inspect json");
    v[0].clone()
}

/// The arguments of `berth run --rm FLAGS bb sh -c SCRIPT` (`bb`: the busybox image the tests import).
pub fn sh_args<'a>(flags: &[&'a str], script: &'a str) -> Vec<&'a str> {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["bb", "sh", "-c", script]);
    args
}

/// Runs `berth run --rm FLAGS bb sh -c SCRIPT` and returns its output, whatever the exit code.
pub fn run_sh(t: &TestRoot, flags: &[&str], script: &str) -> std::process::Output {
    run(t, &sh_args(flags, script))
}

/// Runs `berth run --rm FLAGS bb sh -c SCRIPT`, asserts success and returns standard output.
pub fn ok_sh(t: &TestRoot, flags: &[&str], script: &str) -> String {
    ok(t, &sh_args(flags, script))
}

/// Processes (other than this test) with this root on their command line: monitors, CLIs,
/// cleaners.
pub fn root_processes(t: &TestRoot) -> Vec<String> {
    t.roots.processes()
}

/// Asserts that no process of this root is left once `within` has passed: a detached cleaner may
/// still be finishing a removal the last command made.
pub fn assert_no_processes_within(t: &TestRoot, within: std::time::Duration) {
    t.roots.assert_no_processes_within(within)
}
