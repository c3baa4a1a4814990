//! Container escapes replayed through the runc-compatible binary (`create`/`start`/`run`/`exec` on an OCI
//! bundle, as containerd or podman drive it), judged from the host: a secret host file no container may read,
//! a host directory it must not write into, the binary's identity. The same attacks through `berth` are in
//! crates/berth/tests/escapes.rs; the list with results is docs/security.md.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use oci_spec::runtime::Spec;

/// The descriptor numbers an attacker tries.
const FDS: std::ops::RangeInclusive<u32> = 3..=20;

fn rt(root: &Path) -> Command {
    let mut c = Command::new("timeout");
    c.arg("30")
        .arg(env!("CARGO_BIN_EXE_berth-runtime"))
        .arg("--root")
        .arg(root)
        .stdin(Stdio::null());
    c
}

fn ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
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

/// A bundle on `r` running `args` in `cwd`.
fn bundle(r: &Rootfs, args: &[&str], cwd: &str) -> PathBuf {
    let b = r.dir.path().to_owned();
    let _ = std::fs::remove_file(b.join("config.json"));
    ok(rt(&b.join("state")).args(["spec", "--bundle"]).arg(&b));
    let mut s = Spec::load(b.join("config.json")).unwrap();
    let p = s.process_mut().as_mut().unwrap();
    p.set_terminal(Some(false));
    p.set_args(Some(args.iter().map(|a| a.to_string()).collect()));
    p.set_cwd(cwd.into());
    let mut root = s.root().clone().unwrap();
    root.set_readonly(Some(false));
    s.set_root(Some(root));
    s.save(b.join("config.json")).unwrap();
    b
}

fn wait_stopped(root: &Path, id: &str) {
    let t = Instant::now();
    loop {
        let st: serde_json::Value =
            serde_json::from_str(&ok(rt(root).args(["state", id]))).unwrap();
        if st["status"] == "stopped" {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "{id} did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn cve_2024_21626_process_cwd_through_run() {
    let r = Rootfs::new();
    let s = HostSecret::new();
    let root = r.dir.path().join("state");
    for n in FDS {
        let cwd = format!("/proc/self/fd/{n}");
        let b = bundle(&r, &["sh", "-c", &s.attack(&n.to_string())], &cwd);
        let id = unique_id("cwd");
        let o = rt(&root)
            .args(["run", "--bundle"])
            .arg(&b)
            .arg(&id)
            .output()
            .unwrap();
        s.assert_untouched(&format!("run, process.cwd {cwd}"), &text(&o));
        let _ = rt(&root).args(["delete", "--force", &id]).output();
        assert_no_cgroup(&id);
    }
}

#[test]
fn cve_2024_21626_process_cwd_through_create_and_start() {
    let r = Rootfs::new();
    let s = HostSecret::new();
    let root = r.dir.path().join("state");
    for n in FDS {
        let cwd = format!("/proc/self/fd/{n}");
        let b = bundle(&r, &["sh", "-c", &s.attack(&n.to_string())], &cwd);
        let id = unique_id("cwdc");
        let log = r.dir.path().join(format!("out-{n}"));
        let f = std::fs::File::create(&log).unwrap();
        let o = rt(&root)
            .args(["create", "--bundle"])
            .arg(&b)
            .arg(&id)
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .status()
            .unwrap();
        if o.success() {
            let st = rt(&root).args(["start", &id]).output().unwrap();
            if st.status.success() {
                wait_stopped(&root, &id);
            }
        }
        let all = std::fs::read_to_string(&log).unwrap_or_default();
        s.assert_untouched(&format!("create+start, process.cwd {cwd}"), &all);
        let _ = rt(&root).args(["delete", "--force", &id]).output();
        assert_no_cgroup(&id);
    }
}

#[test]
fn cve_2024_21626_exec_cwd() {
    let r = Rootfs::new();
    let s = HostSecret::new();
    let root = r.dir.path().join("state");
    let b = bundle(&r, &["sleep", "120"], "/");
    let id = unique_id("cwdx");
    let st = rt(&root)
        .args(["create", "--bundle"])
        .arg(&b)
        .arg(&id)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    ok(rt(&root).args(["start", &id]));
    for n in FDS {
        let cwd = format!("/proc/self/fd/{n}");
        let o = rt(&root)
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
    ok(rt(&root).args(["delete", "--force", &id]));
    assert_no_cgroup(&id);
}

/// The watcher of crates/berth/tests/escape_helpers, built static into the container's /bin.
fn install_watcher(r: &Rootfs) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../berth/tests/escape_helpers/watch.c");
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
    let b = bundle(&r, &["/bin/watch", &dev, &ino, &secret, "15"], "/");
    let id = unique_id("watch");
    let log = r.dir.path().join("watch.log");
    let f = std::fs::File::create(&log).unwrap();
    let st = rt(&root)
        .args(["create", "--bundle"])
        .arg(&b)
        .arg(&id)
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .status()
        .unwrap();
    assert!(st.success());
    ok(rt(&root).args(["start", &id]));
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
        let o = rt(&root).args(["exec", &id, "/bin/true"]).output().unwrap();
        if o.status.success() {
            execs += 1;
        } else if failure.is_none() {
            failure = Some(String::from_utf8_lossy(&o.stderr).into_owned());
        }
    }
    wait_stopped(&root, &id);
    ok(rt(&root).args(["delete", "--force", &id]));
    assert_no_cgroup(&id);
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
