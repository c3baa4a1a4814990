//! exec joins a running container: same pid namespace, hostname, mounts and cgroup.

mod common;

use berth_runtime::{Error, ExitStatus, LaunchConfig};
use common::*;

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn exec_joins_running_container() {
    let r = Rootfs::new();
    let id = unique_id("exec");
    let s = spec(&r.path(), &["sleep", "60"]);
    let (stdio, _out, _err) = pipes();
    let mut first = berth_runtime::spawn(LaunchConfig {
        id: &id,
        spec: &s,
        overlay: None,
        stdio,
        seccomp: None,
        die_with_parent: true,
        signals_blocked: false,
    })
    .unwrap();

    let mut p = s.process().clone().unwrap();
    p.set_args(Some(vec![
        "sh".into(),
        "-c".into(),
        "ps -o pid,comm | grep -w sleep; hostname; echo $$; grep CapEff /proc/self/status | tr -d '\\t '; grep -c pids /proc/self/cgroup".into(),
    ]));
    p.set_cwd("/tmp".into());
    let (stdio, out, err) = pipes();
    let mut ex = berth_runtime::exec(first.pid(), &p, None, None, stdio).unwrap();
    let stdout = read_all(out);
    let stderr = read_all(err);
    assert_eq!(
        ex.wait().unwrap(),
        ExitStatus::Exited(0),
        "{stdout}\n{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["1", "sleep"],
        "{stdout}"
    );
    assert_eq!(lines[1], "box");
    let inner_pid: i32 = lines[2].parse().unwrap();
    assert!(
        inner_pid > 1,
        "exec'd process is in the container's pid namespace: {inner_pid}"
    );
    assert_eq!(lines[3], "CapEff:00000000a80425fb");
    assert!(first.cgroup().pids().unwrap().contains(&first.pid()));

    // A missing command is reported like spawn does.
    p.set_args(Some(vec!["nope".into()]));
    let (stdio, _o, _e) = pipes();
    let e = berth_runtime::exec(first.pid(), &p, None, None, stdio).unwrap_err();
    assert!(matches!(e, Error::ExecNotFound { .. }), "{e}");

    first.signal(libc::SIGKILL).unwrap();
    assert_eq!(first.wait().unwrap(), ExitStatus::Signaled(9));
    cleanup(&id, first);
}
