//! End-to-end tests of berth's hardening defaults on real containers (root required): the default
//! pids limit, the host console denied by the device rules, and seccomp that follows the
//! capabilities a container is given.

use crate::common::{TestRoot, inspect, ok, ok_sh, run_sh, stderr, stdout};
use std::path::{Path, PathBuf};

/// The container's `pids.max` as the host sees it (the v1 pids hierarchy, or v2 with pids enabled).
fn host_pids_max(id: &str) -> String {
    let dir = crate::common::cgroup_dirs_for(id)
        .into_iter()
        .find(|d| d.join("pids.max").exists())
        .unwrap_or_else(|| panic!("no cgroup with pids.max for {id}"));
    std::fs::read_to_string(dir.join("pids.max"))
        .expect("read pids.max")
        .trim()
        .to_owned()
}

/// Starts `bb sleep 60` detached with `flags`, returns (id, inspect's PidsLimit, host pids.max), and
/// removes the container.
fn pids_of(t: &TestRoot, flags: &[&str]) -> (serde_json::Value, String) {
    let mut args = vec!["run", "-d"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["bb", "sleep", "60"]);
    let id = ok(t, &args).trim().to_owned();
    let limit = inspect(t, &id)["HostConfig"]["PidsLimit"].clone();
    let max = host_pids_max(&id);
    ok(t, &["rm", "-f", &id]);
    (limit, max)
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn default_pids_limit_is_2048_in_inspect_and_the_cgroup_and_can_be_lifted() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    assert_eq!(pids_of(&t, &[]), (serde_json::json!(2048), "2048".into()));
    assert_eq!(
        pids_of(&t, &["--pids-limit", "100"]),
        (serde_json::json!(100), "100".into())
    );
    // Docker: -1 and 0 both mean unlimited (no limit recorded).
    for unlimited in ["-1", "0"] {
        assert_eq!(
            pids_of(&t, &["--pids-limit", unlimited]),
            (serde_json::Value::Null, "max".into()),
            "--pids-limit {unlimited}"
        );
    }
    // A created (never started) container shows the default too.
    ok(&t, &["create", "--name", "cc", "bb", "true"]);
    assert_eq!(inspect(&t, "cc")["HostConfig"]["PidsLimit"], 2048);
    ok(&t, &["rm", "cc"]);
    t.assert_clean();
}

/// A shell starts up to 2100 background sleeps (and dies at its first failed fork); then, with
/// builtins only (at the limit nothing more can fork), pid 1 prints how many tasks its cgroup holds.
const FORK_LOOP: &str = "sh -c 'i=0; while [ $i -lt 2100 ]; do sleep 30 & i=$((i+1)); done'; \
                         f=/sys/fs/cgroup/pids/pids.current; [ -e $f ] || f=/sys/fs/cgroup/pids.current; \
                         read n <$f; echo $n";

/// Runs [`FORK_LOOP`] with `flags`: the task count pid 1 printed, and the output.
fn fork_loop(t: &TestRoot, flags: &[&str]) -> (u64, std::process::Output) {
    let o = run_sh(t, flags, FORK_LOOP);
    let n: u64 = stdout(&o).trim().parse().unwrap_or_else(|_| {
        panic!("no task count: {:?} {}", stdout(&o), stderr(&o));
    });
    (n, o)
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn a_fork_loop_stops_at_the_default_limit_but_not_when_unlimited() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let (n, o) = fork_loop(&t, &[]);
    assert!(n <= 2048, "{n} tasks under the default limit");
    assert!(
        stderr(&o).contains("fork"),
        "no fork failure under the default limit: {}",
        &stderr(&o)[..stderr(&o).len().min(500)]
    );
    let (n, o) = fork_loop(&t, &["--pids-limit", "-1"]);
    assert!(
        n > 2100,
        "only {n} tasks with --pids-limit -1: {}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("fork"), "{}", stderr(&o));
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn the_host_console_is_denied_but_the_tty_console_works_and_flags_override() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    // MKNOD is a default capability: adding it changes nothing, creating the node still works and
    // opening it (for reading or writing) is refused by the device cgroup.
    for flags in [&[][..], &["--cap-add", "MKNOD"][..]] {
        let o = run_sh(
            &t,
            flags,
            "mknod /tmp/c c 5 1 && echo made && (exec 3</tmp/c) && echo read-open; \
             (exec 4>/tmp/c) && echo write-open; true",
        );
        assert_eq!(stdout(&o), "made\n", "{flags:?}: {}", stderr(&o));
        assert_eq!(
            stderr(&o).matches("Operation not permitted").count(),
            2,
            "{flags:?}: {}",
            stderr(&o)
        );
    }
    // The user's rule still opens it (write only: reading would take the host console's input).
    let out = ok_sh(
        &t,
        &["--device-cgroup-rule", "c 5:1 w"],
        "mknod /tmp/c c 5 1 && (exec 4>/tmp/c) && echo write-open",
    );
    assert_eq!(out, "write-open\n");
    // --device creates the node and allows it; without it the same node is refused.
    let script = "ls -l /dev/loop-control | cut -c1; (exec 3</dev/loop-control) && echo opened";
    let out = ok_sh(&t, &["--device", "/dev/loop-control"], script);
    assert_eq!(out, "c\nopened\n");
    let o = run_sh(
        &t,
        &[],
        "mknod /tmp/l c 10 237 && (exec 3</tmp/l) && echo opened",
    );
    assert!(
        !stdout(&o).contains("opened") && stderr(&o).contains("Operation not permitted"),
        "{} {}",
        stdout(&o),
        stderr(&o)
    );
    // With -t, /dev/console is the container's pty slave (char 136:N), usable as before.
    let out = ok_sh(
        &t,
        &["-t"],
        "stat -c %t /dev/console; echo via-console >/dev/console",
    );
    assert_eq!(out.replace('\r', ""), "88\nvia-console\n");
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn sys_admin_lets_mount_through_seccomp() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let script = "mkdir -p /mnt && mount -t tmpfs none /mnt && grep -c ' /mnt tmpfs' /proc/mounts";
    let out = ok_sh(&t, &["--cap-add", "SYS_ADMIN"], script);
    assert_eq!(out, "1\n");
    let o = run_sh(&t, &[], script);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("Operation not permitted") || stderr(&o).contains("permission denied"),
        "{}",
        stderr(&o)
    );
    t.assert_clean();
}

/// Compiles a static helper that calls open_by_handle_at(2) with a made-up handle and prints the
/// errno: EPERM (1) from seccomp or a missing capability, another errno from the kernel's handle
/// decoding once both let it through.
fn open_by_handle_helper(dir: &Path) -> PathBuf {
    let src = dir.join("obh.c");
    std::fs::write(
        &src,
        r#"#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
int main(void) {
    char buf[sizeof(struct file_handle) + 8];
    struct file_handle *fh = (struct file_handle *)buf;
    memset(buf, 0, sizeof buf);
    fh->handle_bytes = 8;
    fh->handle_type = 1;
    int m = open("/", O_RDONLY | O_DIRECTORY);
    int fd = open_by_handle_at(m, fh, O_RDONLY);
    printf("errno=%d\n", fd < 0 ? errno : 0);
    return 0;
}
"#,
    )
    .expect("write helper source");
    let exe = dir.join("obh");
    let st = std::process::Command::new("gcc")
        .arg("-static")
        .arg("-O")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("run gcc");
    assert!(st.success(), "gcc -static of the helper failed");
    exe
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn dac_read_search_lets_open_by_handle_at_through_seccomp() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let dir = tempfile::Builder::new()
        .prefix("obh-")
        .tempdir_in(crate::common::scratch_dir())
        .expect("helper dir");
    open_by_handle_helper(dir.path());
    let vol = format!("{}:/h:ro", dir.path().display());
    // `berth run --rm FLAGS -v HELPER:/h:ro bb /h/obh`'s output.
    let obh = |flags: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["-v", &vol, "bb", "/h/obh"]);
        ok(&t, &args)
    };
    let plain = obh(&[]);
    assert_eq!(plain, "errno=1\n");
    let added = obh(&["--cap-add", "DAC_READ_SEARCH"]);
    assert!(
        added.starts_with("errno=") && added != "errno=1\n",
        "open_by_handle_at still refused with DAC_READ_SEARCH: {added}"
    );
    // The kernel gives the same answer with no seccomp at all: the filter no longer stands between.
    let unconfined = obh(&[
        "--cap-add",
        "DAC_READ_SEARCH",
        "--security-opt",
        "seccomp=unconfined",
    ]);
    assert_eq!(added, unconfined);
    t.assert_clean();
}
