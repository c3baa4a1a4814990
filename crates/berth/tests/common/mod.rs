//! Test harness for end-to-end tests of the `berth` binary: a temporary state root per test, the busybox
//! rootfs tarball built once from Debian's busybox-static, and a cleanup check that fails a test which leaves
//! a mount, cgroup or process behind.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::sync::OnceLock;

/// A temporary state root and run root, removed (after killing what runs there) on drop.
pub struct TestRoot {
    /// State root (`--root`).
    pub root: tempfile::TempDir,
    /// Runtime root (`--run-root`).
    pub run_root: tempfile::TempDir,
}

impl TestRoot {
    /// Fresh, empty roots.
    pub fn new() -> TestRoot {
        let base = scratch_dir();
        TestRoot {
            root: tempfile::Builder::new()
                .prefix("root-")
                .tempdir_in(&base)
                .expect("temp state root"),
            run_root: tempfile::Builder::new()
                .prefix("run-")
                .tempdir_in(&base)
                .expect("temp run root"),
        }
    }

    /// The state root's path.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// `berth --root R --run-root RR` ready for more arguments.
    pub fn berth(&self) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::cargo_bin("berth").expect("berth binary");
        c.arg("--root")
            .arg(self.root.path())
            .arg("--run-root")
            .arg(self.run_root.path());
        c.env_remove("BERTH_ROOT").env_remove("BERTH_RUN_ROOT");
        c
    }

    /// The same as [`TestRoot::berth`], as a std command (for spawning and killing).
    pub fn berth_std(&self) -> StdCommand {
        let mut c = StdCommand::new(assert_cmd::cargo::cargo_bin("berth"));
        c.arg("--root")
            .arg(self.root.path())
            .arg("--run-root")
            .arg(self.run_root.path());
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
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let roots = [
            self.root.path().to_string_lossy().into_owned(),
            self.run_root.path().to_string_lossy().into_owned(),
        ];
        mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|mp| roots.iter().any(|r| mp.starts_with(r.as_str())))
            .map(str::to_owned)
            .collect()
    }

    /// Container ids known to this root (`ps -aq --no-trunc` style: directory names).
    pub fn container_ids(&self) -> Vec<String> {
        std::fs::read_dir(self.root.path().join("containers"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Cgroup directories left for this root's containers, in any hierarchy.
    pub fn leftover_cgroups(&self) -> Vec<PathBuf> {
        let mut left = Vec::new();
        for id in self.container_ids() {
            left.extend(cgroup_dirs_for(&id));
        }
        left
    }

    /// Asserts that no container of this root is still running, mounted or holding a cgroup.
    /// Call at the end of tests that ran containers and removed them.
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
}

impl Drop for TestRoot {
    fn drop(&mut self) {
        // Best effort: remove every container this test left, so no process or cgroup outlives the test.
        let ids = self.container_ids();
        if !ids.is_empty() {
            let _ = self.berth_std().arg("rm").arg("-f").args(&ids).output();
        }
        for m in self.leftover_mounts().iter().rev() {
            let _ = StdCommand::new("umount").arg("-l").arg(m).status();
        }
    }
}

/// Cgroup dirs named after container `id` under any `berth` parent in /sys/fs/cgroup.
pub fn cgroup_dirs_for(id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(hier) = std::fs::read_dir("/sys/fs/cgroup") else {
        return found;
    };
    for h in hier.filter_map(|e| e.ok()) {
        let p = h.path().join("berth").join(id);
        if p.exists() {
            found.push(p);
        }
    }
    found
}

/// A directory for test scratch data on a real disk (overlayfs upper dirs cannot live on every fs).
pub fn scratch_dir() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("berth-tests");
    std::fs::create_dir_all(&p).expect("create test scratch dir");
    p
}

/// A busybox rootfs tarball (busybox + applet symlinks, /etc/passwd, /etc/group), built once per test run
/// from Debian's busybox-static (installed by scripts/deps.sh).
pub fn busybox_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let dir = scratch_dir();
        let tar = dir.join("busybox.tar");
        if tar.exists() {
            return tar;
        }
        let work = tempfile::Builder::new()
            .prefix("bb-")
            .tempdir_in(&dir)
            .expect("temp dir");
        let rootfs = work.path().join("rootfs");
        make_busybox_rootfs(&rootfs);
        let tmp = work.path().join("busybox.tar");
        let st = StdCommand::new("tar")
            .arg("--numeric-owner")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tmp)
            .arg(".")
            .status()
            .expect("run tar");
        assert!(st.success(), "tar of busybox rootfs failed");
        std::fs::rename(&tmp, &tar).expect("publish busybox.tar");
        tar
    })
}

/// Writes a minimal busybox root filesystem at `rootfs`.
pub fn make_busybox_rootfs(rootfs: &Path) {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("busybox-static is not installed: run scripts/deps.sh");
    for d in [
        "bin",
        "etc",
        "tmp",
        "proc",
        "sys",
        "dev",
        "root",
        "home/user",
        "var",
    ] {
        std::fs::create_dir_all(rootfs.join(d)).expect("mkdir in rootfs");
    }
    std::fs::copy(&busybox, rootfs.join("bin/busybox")).expect("copy busybox");
    let list = StdCommand::new(&busybox)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
        }
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .expect("write passwd");
    std::fs::write(
        rootfs.join("etc/group"),
        "root:x:0:\nwheel:x:10:user\nuser:x:1000:\nnogroup:x:65534:\n",
    )
    .expect("write group");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(rootfs.join("tmp"), std::fs::Permissions::from_mode(0o1777))
        .expect("chmod tmp");
    let _ = StdCommand::new("chown")
        .arg("-R")
        .arg("1000:1000")
        .arg(rootfs.join("home/user"))
        .status();
}

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
    let root = t.root().to_string_lossy().into_owned();
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(&root) {
            found.push(format!("{name}: {cmd}"));
        }
    }
    found
}

/// Asserts that no process of this root is left once `within` has passed: a detached cleaner may
/// still be finishing a removal the last command made.
pub fn assert_no_processes_within(t: &TestRoot, within: std::time::Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = root_processes(t);
        if left.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "processes left behind: {left:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
