//! Container escapes replayed through the runc-compatible binary (`create`/`start`/`run`/`exec` on an OCI
//! bundle, as containerd or podman drive it), judged from the host: a secret host file no container may read,
//! a host directory it must not write into, the binary's identity. The same attacks through `berth` are in
//! crates/berth/tests/escapes.rs; the list with results is docs/security.md.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::rootfs::*;

/// The descriptor numbers an attacker tries.
const FDS: std::ops::RangeInclusive<u32> = 3..=20;

/// [`rt`] bounded by `timeout 30`: a runtime that hangs on an attack fails the test instead.
fn rt_bounded(root: &Path) -> Command {
    let mut c = Command::new("timeout");
    c.arg("30")
        .arg(env!("CARGO_BIN_EXE_berth-runtime"))
        .arg("--root")
        .arg(root)
        .stdin(Stdio::null());
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A secret file on the host with random content, and its directory, where container writes would show.
struct HostSecret {
    dir: tempfile::TempDir,
    content: String,
}

impl HostSecret {
    fn new() -> HostSecret {
        let dir = tempfile::tempdir().unwrap();
        let content = format!("host-secret-{}-{:?}", std::process::id(), Instant::now());
        std::fs::write(dir.path().join("secret"), &content).unwrap();
        HostSecret { dir, content }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("secret")
    }

    /// Reads the secret and writes `written-TAG` next to it, from the working directory upwards.
    fn attack(&self, tag: &str) -> String {
        let up = "../".repeat(32);
        let dir = self
            .dir
            .path()
            .to_string_lossy()
            .trim_start_matches('/')
            .to_owned();
        format!("cat {up}{dir}/secret; echo; echo pwned > {up}{dir}/written-{tag}; true")
    }

    fn assert_untouched(&self, case: &str, all: &str) {
        assert!(
            !all.contains(&self.content),
            "{case}: the container read the host file:\n{all}"
        );
        let written: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .filter(|n| n != "secret")
            .collect();
        assert!(
            written.is_empty(),
            "{case}: the container wrote {written:?} into the host dir"
        );
    }
}

/// `create --bundle B ID` with the container's output into `log` (or nowhere): whether it succeeded.
fn create(root: &Path, b: &Path, id: &str, log: Option<&Path>) -> bool {
    let (out, err) = match log {
        Some(l) => {
            let f = std::fs::File::create(l).unwrap();
            (Stdio::from(f.try_clone().unwrap()), Stdio::from(f))
        }
        None => (Stdio::null(), Stdio::null()),
    };
    rt_bounded(root)
        .args(["create", "--bundle"])
        .arg(b)
        .arg(id)
        .stdout(out)
        .stderr(err)
        .status()
        .unwrap()
        .success()
}

/// Creates and starts container `id` from bundle `b`, its output into `log` (or nowhere).
fn create_and_start(root: &Path, b: &Path, id: &str, log: Option<&Path>) {
    assert!(create(root, b, id, log), "create {id}");
    ok(rt_bounded(root).args(["start", id]));
}

/// Deletes container `id` and checks that its cgroup is gone.
fn remove(root: &Path, id: &str) {
    ok(rt_bounded(root).args(["delete", "--force", id]));
    assert_no_cgroup(id);
}

fn wait_stopped(root: &Path, id: &str) {
    let t = Instant::now();
    loop {
        let st: serde_json::Value =
            serde_json::from_str(&ok(rt_bounded(root).args(["state", id]))).unwrap();
        if st["status"] == "stopped" {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "{id} did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The CVE-2024-21626 attack with process.cwd `/proc/self/fd/N` for every N of [`FDS`]:
/// `launch(root, bundle, id, n)` runs the container the `form` way and returns what it printed, which
/// must not show the secret; the container is then removed (if it still exists) with its cgroup.
fn cwd_attacks(
    r: &Rootfs,
    s: &HostSecret,
    tag: &str,
    form: &str,
    mut launch: impl FnMut(&Path, &Path, &str, u32) -> String,
) {
    let root = r.dir.path().join("state");
    for n in FDS {
        let cwd = format!("/proc/self/fd/{n}");
        let b = bundle(r, &["sh", "-c", &s.attack(&n.to_string())], Some(&cwd));
        let id = unique_id(tag);
        let all = launch(&root, &b, &id, n);
        s.assert_untouched(&format!("{form}, process.cwd {cwd}"), &all);
        let _ = rt_bounded(&root).args(["delete", "--force", &id]).output();
        assert_no_cgroup(&id);
    }
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn cve_2024_21626_process_cwd_through_run() {
    let r = Rootfs::new();
    let s = HostSecret::new();
    cwd_attacks(&r, &s, "cwd", "run", |root, b, id, _| {
        let o = rt_bounded(root)
            .args(["run", "--bundle"])
            .arg(b)
            .arg(id)
            .output()
            .unwrap();
        text(&o)
    });
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn cve_2024_21626_process_cwd_through_create_and_start() {
    let r = Rootfs::new();
    let s = HostSecret::new();
    cwd_attacks(&r, &s, "cwdc", "create+start", |root, b, id, n| {
        let log = r.dir.path().join(format!("out-{n}"));
        if create(root, b, id, Some(&log)) {
            let st = rt_bounded(root).args(["start", id]).output().unwrap();
            if st.status.success() {
                wait_stopped(root, id);
            }
        }
        std::fs::read_to_string(&log).unwrap_or_default()
    });
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn cve_2024_21626_exec_cwd() {
    let r = Rootfs::new();
    let s = HostSecret::new();
    let root = r.dir.path().join("state");
    let b = bundle(&r, &["sleep", "120"], Some("/"));
    let id = unique_id("cwdx");
    create_and_start(&root, &b, &id, None);
    for n in FDS {
        let cwd = format!("/proc/self/fd/{n}");
        let o = rt_bounded(&root)
            .args([
                "exec",
                "--cwd",
                &cwd,
                &id,
                "sh",
                "-c",
                &s.attack(&n.to_string()),
            ])
            .output()
            .unwrap();
        s.assert_untouched(&format!("exec --cwd {cwd}"), &text(&o));
    }
    remove(&root, &id);
}

/// The watcher of crates/berth/tests/cli/escape_helpers, built static into the container's /bin.
fn install_watcher(r: &Rootfs) {
    let src =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../berth/tests/cli/escape_helpers/watch.c");
    let out = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(r.path().join("bin/watch"))
        .arg(src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn cve_2019_5736_exec_child_gives_no_handle_on_the_runtime_binary() {
    let r = Rootfs::new();
    install_watcher(&r);
    let s = HostSecret::new();
    let bin = Path::new(env!("CARGO_BIN_EXE_berth-runtime"));
    let meta = std::fs::metadata(bin).unwrap();
    let before = std::fs::read(bin).unwrap();
    let root = r.dir.path().join("state");
    let secret = s.path().to_string_lossy().into_owned();
    let (dev, ino) = (meta.dev().to_string(), meta.ino().to_string());
    let b = bundle(&r, &["/bin/watch", &dev, &ino, &secret, "15"], Some("/"));
    let id = unique_id("watch");
    let log = r.dir.path().join("watch.log");
    create_and_start(&root, &b, &id, Some(&log));
    let t = Instant::now();
    while !std::fs::read_to_string(&log).unwrap().contains("READY") {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the watcher did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (mut execs, mut failure) = (0, None);
    for _ in 0..200 {
        if t.elapsed() > Duration::from_secs(12) {
            break;
        }
        let o = rt_bounded(&root)
            .args(["exec", &id, "/bin/true"])
            .output()
            .unwrap();
        if o.status.success() {
            execs += 1;
        } else if failure.is_none() {
            failure = Some(String::from_utf8_lossy(&o.stderr).into_owned());
        }
    }
    wait_stopped(&root, &id);
    remove(&root, &id);
    let logs = std::fs::read_to_string(&log).unwrap();
    let host_pid_ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let bad: Vec<&str> = logs
        .lines()
        .filter(|l| {
            l.contains("HOST-EXE")
                || (l.starts_with("WRITE ") && l.ends_with(" opened"))
                || l.starts_with("ATTACH ") && l.contains(" attached HOST-EXE")
                || l.starts_with("SECRET ")
                || (l.starts_with("FD ")
                    && l.split(" -> ").nth(1).is_some_and(|target| {
                        target == host_pid_ns.to_string_lossy()
                            || target.starts_with("/sys/fs/cgroup")
                            || target.starts_with(&*root.to_string_lossy())
                    }))
        })
        .collect();
    assert!(
        bad.is_empty(),
        "the container reached the host:\n{}",
        bad.join("\n")
    );
    assert!(
        execs > 0,
        "no `berth-runtime exec` succeeded: {failure:?}\n{logs}"
    );
    assert!(
        logs.lines()
            .any(|l| l.starts_with("DONE seen=") && l != "DONE seen=0"),
        "the watcher saw none of the {execs} exec'd processes (first failure: {failure:?}):\n{logs}"
    );
    assert!(
        std::fs::read(bin).unwrap() == before,
        "the runtime binary changed"
    );
}
