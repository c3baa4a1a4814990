//! Crash safety end to end: `berth rm -f`, `berth rmi` and `berth system prune -a` killed with
//! SIGKILL at varying moments. After every kill the next commands must work without repair by
//! hand, and at the end nothing of the root is left mounted, in a cgroup or running.

use crate::common::{TestRoot, busybox_tar, scratch_dir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const ITERATIONS: u64 = 20;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs berth and asserts success; returns stdout.
fn ok(t: &TestRoot, args: &[&str]) -> String {
    let out = t.berth().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "berth {args:?} failed: {}",
        stderr(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A delay in `0..max_ms` that differs from one iteration to the next (a fixed permutation, so a
/// failure can be reproduced).
fn delay(i: u64, max_ms: u64) -> Duration {
    Duration::from_millis((i * 37 + 11) % max_ms)
}

/// Spawns `berth args`, lets it run for `after`, and kills it with SIGKILL (if it is still running).
fn kill_after(t: &TestRoot, args: &[&str], after: Duration) {
    let mut child = t
        .berth_std()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits until the container is running (bounded).
fn wait_running(t: &TestRoot, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = ok(t, &["inspect", "--format", "{{.State.Status}}", name]);
        if state.trim() == "running" {
            return;
        }
        assert!(Instant::now() < deadline, "{name} never ran: {state}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// No process of this root is left. A detached cleaner may still be finishing a removal the
/// last command made, so this waits a bounded time for the list to empty.
fn assert_no_processes(t: &TestRoot) {
    crate::common::assert_no_processes_within(t, Duration::from_secs(10));
}

/// Every container id ever created in this root, to check their cgroups at the end (the
/// directories of removed containers are gone, so `TestRoot::leftover_cgroups` can't see them).
fn all_ids(t: &TestRoot) -> Vec<String> {
    ok(t, &["ps", "-aq", "--no-trunc"])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The commands a user runs after a crash: they all work, `rm -f` by name removes what is
/// left, and a container runs and is removed.
/// (The victim may still be running: an `rm -f` killed before its SIGKILL leaves it so.)
fn next_commands_work(t: &TestRoot, name: &str, i: u64) {
    let names = ok(t, &["ps", "-a", "--format", "{{.Names}}"]);
    ok(t, &["images"]);
    if names.lines().any(|n| n == name) {
        ok(t, &["rm", "-f", name]);
    }
    // Nothing is left that the name no longer reaches.
    assert_eq!(ok(t, &["ps", "-aq"]), "", "iteration {i}: after {names:?}");
    assert_eq!(ok(t, &["run", "--rm", "bb", "echo", "alive"]), "alive\n");
    assert_eq!(ok(t, &["ps", "-aq"]), "", "iteration {i}");
}

/// A busybox rootfs tarball with one extra file, so its layer (and snapshot) is not bb's.
fn other_tar(dir: &Path) -> PathBuf {
    let tar = dir.join("other.tar");
    std::fs::copy(busybox_tar(), &tar).unwrap();
    let extra = dir.join("extra");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(extra.join("marker"), "another layer\n").unwrap();
    let st = Command::new("tar")
        .arg("-C")
        .arg(&extra)
        .arg("-rf")
        .arg(&tar)
        .arg("marker")
        .status()
        .unwrap();
    assert!(st.success());
    tar
}

/// The repositories `berth images` lists, sorted and joined by spaces.
fn repos(t: &TestRoot) -> String {
    let mut v: Vec<String> = ok(t, &["images", "--format", "json"])
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["Repository"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    v.sort();
    v.join(" ")
}

/// Everything in the snapshot directory, including what killed unpacks and removals leave
/// (`.tmp-*`, `.del-*`).
fn snapshot_names(t: &TestRoot) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(t.root().join("snapshots"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A cgroup of a container that is gone, in any hierarchy.
fn assert_no_cgroups(ids: &[String]) {
    for id in ids {
        assert_eq!(
            crate::common::cgroup_dirs_for(id),
            Vec::<PathBuf>::new(),
            "cgroup of {id} left behind"
        );
    }
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn kill_9_during_rm_f_of_a_running_container() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let started = Instant::now();
    let mut ids = Vec::new();
    for i in 0..ITERATIONS {
        // The same name every time: a killed removal must not leave it taken, nor free while
        // its old container is still listed.
        let id = ok(&t, &["run", "-d", "--name", "victim", "bb", "sleep", "100"]);
        ids.push(id.trim().to_owned());
        wait_running(&t, "victim");
        kill_after(&t, &["rm", "-f", "victim"], delay(i, 80));
        next_commands_work(&t, "victim", i);
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "too slow at {i}"
        );
    }
    assert_no_cgroups(&ids);
    t.assert_clean();
    assert_no_processes(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn kill_9_during_rmi() {
    let t = TestRoot::new();
    let dir = tempfile::Builder::new()
        .prefix("crash-")
        .tempdir_in(scratch_dir())
        .unwrap();
    let other = other_tar(dir.path());
    t.busybox_image("bb");
    // A stopped container keeps bb in use: no removal may take its snapshot away.
    ok(&t, &["create", "--name", "keeper", "bb", "true"]);
    let bb_snapshots = snapshot_names(&t);
    for i in 0..ITERATIONS {
        ok(&t, &["import", other.to_str().unwrap(), "victim"]);
        kill_after(&t, &["rmi", "victim"], delay(i, 60));
        if repos(&t).contains("victim") {
            ok(&t, &["rmi", "victim"]);
        }
        assert_eq!(repos(&t), "bb");
        // A kill between the metadata update and the deletes leaves the snapshot to the next
        // removal's collection; bb's snapshot is never touched.
        let snaps = snapshot_names(&t);
        assert!(
            bb_snapshots.iter().all(|s| snaps.contains(s)),
            "iteration {i}: {snaps:?}"
        );
        // The image removed by a killed rmi imports and runs again.
        ok(&t, &["import", other.to_str().unwrap(), "again"]);
        assert_eq!(
            ok(&t, &["run", "--rm", "again", "cat", "/marker"]),
            "another layer\n"
        );
        ok(&t, &["rmi", "again"]);
        assert_eq!(snapshot_names(&t), bb_snapshots, "iteration {i}");
        assert_eq!(ok(&t, &["start", "-a", "keeper"]), "");
        let ps = ok(&t, &["ps", "-a", "--format", "{{.Names}}"]);
        assert_eq!(ps, "keeper\n", "iteration {i}");
        assert_eq!(ok(&t, &["run", "--rm", "bb", "echo", "alive"]), "alive\n");
    }
    let ids = all_ids(&t);
    ok(&t, &["rm", "-f", "keeper"]);
    // What killed removals left behind goes with the next prune.
    ok(&t, &["system", "prune", "-a", "-f"]);
    assert_eq!(ok(&t, &["images", "-q"]), "");
    assert_eq!(snapshot_names(&t), Vec::<String>::new());
    assert_no_cgroups(&ids);
    t.assert_clean();
    assert_no_processes(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn kill_9_during_system_prune_all() {
    let t = TestRoot::new();
    let dir = tempfile::Builder::new()
        .prefix("crash-")
        .tempdir_in(scratch_dir())
        .unwrap();
    let other = other_tar(dir.path());
    t.busybox_image("bb");
    ok(&t, &["create", "--name", "keeper", "bb", "true"]);
    let bb_snapshots = snapshot_names(&t);
    for i in 0..ITERATIONS {
        ok(&t, &["import", other.to_str().unwrap(), "victim"]);
        ok(&t, &["import", other.to_str().unwrap()]);
        kill_after(&t, &["system", "prune", "-a", "-f"], delay(i, 130));
        // The image in use survives any kill; the next prune finishes the job.
        assert_eq!(ok(&t, &["start", "-a", "keeper"]), "");
        ok(&t, &["ps", "-a"]);
        ok(&t, &["images"]);
        ok(&t, &["system", "prune", "-a", "-f"]);
        assert_eq!(repos(&t), "bb", "iteration {i}");
        assert_eq!(snapshot_names(&t), bb_snapshots, "iteration {i}");
        assert_eq!(ok(&t, &["run", "--rm", "bb", "echo", "alive"]), "alive\n");
    }
    let ids = all_ids(&t);
    ok(&t, &["rm", "-f", "keeper"]);
    ok(&t, &["system", "prune", "-a", "-f"]);
    assert_eq!(ok(&t, &["images", "-q"]), "");
    // Nothing of a killed prune or removal survives a finished one.
    let left: Vec<String> = std::fs::read_dir(t.root().join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, Vec::<String>::new());
    assert_no_cgroups(&ids);
    t.assert_clean();
    assert_no_processes(&t);
}
