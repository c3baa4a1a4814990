//! The runc-compatible binary: spec, create, state, start, exec, kill, delete, run.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::rootfs::*;
use oci_spec::runtime::Spec;

fn state(root: &Path, id: &str) -> serde_json::Value {
    serde_json::from_str(&ok(rt(root).args(["state", id]))).unwrap()
}

fn wait_for(mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(5), "timed out");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn create_start_exec_kill_delete() {
    let r = Rootfs::new();
    let b = bundle(&r, &["sh", "-c", "echo hi > /tmp/out; exec sleep 60"], None);
    let root = r.dir.path().join("state");
    let id = unique_id("cli");
    let pid_file = r.dir.path().join("pid");
    let status = rt(&root)
        .args(["create", "--bundle"])
        .arg(&b)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(&id)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let st = state(&root, &id);
    assert_eq!(st["status"], "created");
    let pid = st["pid"].as_i64().unwrap();
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    assert!(!r.path().join("tmp/out").exists(), "not started yet");

    ok(rt(&root).args(["start", &id]));
    assert_eq!(state(&root, &id)["status"], "running");
    wait_for(|| r.path().join("tmp/out").exists());

    let out = ok(rt(&root).args([
        "exec",
        &id,
        "sh",
        "-c",
        "cat /tmp/out; ps -o pid,comm | grep -w sleep",
    ]));
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("hi"));
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["1", "sleep"]
    );

    let e = rt(&root).args(["delete", &id]).output().unwrap();
    assert!(
        !e.status.success(),
        "delete of a running container needs --force"
    );

    let listed = ok(rt(&root).arg("list"));
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("running")),
        "{listed}"
    );
    // An exec'd process lives in the same cgroup: --all reaches it too.
    let mut bg = rt(&root)
        .args(["exec", &id, "sleep", "60"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let cg = berth_runtime::cgroups::Cgroup::open(&format!("/berth/{id}")).unwrap();
    wait_for(|| cg.pids().unwrap().len() == 2);
    ok(rt(&root).args(["kill", "--all", &id, "KILL"]));
    assert_eq!(
        bg.wait().unwrap().code(),
        Some(137),
        "the exec'd sleep died of SIGKILL"
    );
    wait_for(|| state(&root, &id)["status"] == "stopped");
    ok(rt(&root).args(["delete", &id]));
    assert!(!root.join(&id).exists());
    assert!(
        rt(&root)
            .args(["state", &id])
            .output()
            .unwrap()
            .status
            .code()
            != Some(0)
    );
    assert_no_cgroup(&id);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn run_propagates_exit_code_and_cleans_up() {
    let r = Rootfs::new();
    let b = bundle(&r, &["sh", "-c", "exit 3"], None);
    let root = r.dir.path().join("state");
    let id = unique_id("clirun");
    let out = rt(&root)
        .args(["run", "--bundle"])
        .arg(&b)
        .arg(&id)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!root.join(&id).exists());
    assert_no_cgroup(&id);

    let b = bundle(&r, &["no-such-binary"], None);
    let id = unique_id("clirun2");
    let out = rt(&root)
        .args(["run", "--bundle"])
        .arg(&b)
        .arg(&id)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(127),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Receives one fd sent with SCM_RIGHTS on `listener` (what runc's --console-socket callers do).
fn recv_fd(listener: &std::os::unix::net::UnixListener) -> std::os::fd::OwnedFd {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    use std::io::IoSliceMut;
    use std::mem::MaybeUninit;
    let (conn, _) = listener.accept().unwrap();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let mut name = [0u8; 64];
    rustix::net::recvmsg(
        &conn,
        &mut [IoSliceMut::new(&mut name)],
        &mut cmsg,
        RecvFlags::empty(),
    )
    .unwrap();
    for m in cmsg.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = m {
            return fds.next().unwrap();
        }
    }
    panic!("no fd received");
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn terminal_via_console_socket() {
    let r = Rootfs::new();
    let b = bundle(
        &r,
        &[
            "sh",
            "-c",
            "test -t 0 && echo tty-yes; test -c /dev/console && echo console-yes",
        ],
        None,
    );
    let mut s = Spec::load(b.join("config.json")).unwrap();
    s.process_mut().as_mut().unwrap().set_terminal(Some(true));
    s.save(b.join("config.json")).unwrap();
    let root = r.dir.path().join("state");
    let id = unique_id("clitty");
    let sock = r.dir.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let mut run = rt(&root)
        .args(["run", "--bundle"])
        .arg(&b)
        .arg("--console-socket")
        .arg(&sock)
        .arg(&id)
        .spawn()
        .unwrap();
    let master = recv_fd(&listener);
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match rustix::io::read(&master, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    assert!(run.wait().unwrap().success());
    assert_eq!(String::from_utf8_lossy(&out), "tty-yes\r\nconsole-yes\r\n");
    assert_no_cgroup(&id);
}
