//! End-to-end tests of the container commands on real containers (root required): run output and
//! exit codes, flags visible inside, isolation, limits, the detached lifecycle, concurrency and
//! cleanup.

use crate::common::{TestRoot, inspect, ok, run, stderr, stdout};

fn state_file(t: &TestRoot, id: &str) -> serde_json::Value {
    let p = t.root().join("containers").join(id).join("state.json");
    serde_json::from_str(&std::fs::read_to_string(p).expect("state.json")).expect("state json")
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn run_prints_output_and_returns_the_process_exit_code() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let o = run(&t, &["run", "--rm", "bb", "echo", "hello", "-n"]);
    assert_eq!(
        (o.status.code(), stdout(&o).as_str()),
        (Some(0), "hello -n\n"),
        "{}",
        stderr(&o)
    );
    let o = run(
        &t,
        &[
            "run",
            "--rm",
            "bb",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
    );
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");
    assert!(
        t.container_ids().is_empty(),
        "--rm left {:?}",
        t.container_ids()
    );
    t.assert_clean();
    assert_no_processes(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn an_unknown_flag_is_named_as_one_not_taken_for_the_image() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    for (args, flag) in [
        (
            &["run", "--rm", "--no-such-flag", "8080:80", "bb", "true"][..],
            "--no-such-flag",
        ),
        (&["create", "--bogus", "bb", "true"], "--bogus"),
        (&["exec", "--bogus", "somecontainer", "true"], "--bogus"),
    ] {
        let o = run(&t, args);
        assert_eq!(o.status.code(), Some(125), "{args:?}");
        let err = stderr(&o);
        assert!(
            err.contains(&format!("unexpected argument '{flag}'")) && !err.contains("reference"),
            "{args:?}: {err}"
        );
    }
    // After the image, hyphens belong to the command.
    assert_eq!(ok(&t, &["run", "--rm", "bb", "echo", "-n", "-x"]), "-x");
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn missing_and_non_executable_commands_exit_127_and_126() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let o = run(&t, &["run", "--rm", "bb", "no-such-command"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no-such-command") && stderr(&o).contains("not found"),
        "{}",
        stderr(&o)
    );
    let o = run(&t, &["run", "--rm", "bb", "/etc"]);
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
    assert!(stderr(&o).contains("permission denied"), "{}", stderr(&o));
    // Detached: the monitor reports the failure through its pipe.
    let o = run(&t, &["run", "-d", "--rm", "bb", "no-such-command"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(stderr(&o).contains("no-such-command"), "{}", stderr(&o));
    // berth's own errors are 125.
    let o = run(&t, &["run", "--rm", "no-such-image"]);
    assert_eq!(o.status.code(), Some(125));
    let o = run(&t, &["run", "--rm", "--memory", "lots", "bb", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("--memory"), "{}", stderr(&o));
    assert!(t.container_ids().is_empty(), "{:?}", t.container_ids());
    t.assert_clean();
    assert_no_processes(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn flags_are_visible_inside() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let envfile = t.root().join("env.list");
    std::fs::write(&envfile, "# comment\nB=from-file\nA=overridden\n").unwrap();
    let out = ok(
        &t,
        &[
            "run",
            "--rm",
            "-e",
            "A=1",
            "--env-file",
            envfile.to_str().unwrap(),
            "-w",
            "/tmp",
            "-u",
            "user",
            "--hostname",
            "box",
            "bb",
            "sh",
            "-c",
            "echo $A $B; pwd; id -u; id -g; id -G; hostname; cat /etc/hostname; echo $HOME; echo $HOSTNAME",
        ],
    );
    assert_eq!(
        out,
        "1 from-file\n/tmp\n1000\n1000\n1000 10\nbox\nbox\n/home/user\nbox\n"
    );
    let out = ok(
        &t,
        &[
            "run",
            "--rm",
            "-u",
            "1234:5",
            "bb",
            "sh",
            "-c",
            "id -u; id -g; echo $HOME",
        ],
    );
    assert_eq!(out, "1234\n5\n/\n");
    let out = ok(
        &t,
        &[
            "run",
            "--rm",
            "--entrypoint",
            "/bin/echo",
            "bb",
            "via",
            "entrypoint",
        ],
    );
    assert_eq!(out, "via entrypoint\n");
    let o = run(&t, &["run", "--rm", "-u", "ghost", "bb", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("unable to find user ghost"),
        "{}",
        stderr(&o)
    );
    t.assert_clean();
    assert_no_processes(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn volumes_tmpfs_and_read_only_root() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let host = tempfile::tempdir_in(crate::common::scratch_dir()).unwrap();
    std::fs::write(host.path().join("file"), "from host\n").unwrap();
    let ro = format!("{}:/data:ro", host.path().display());
    let rw = format!("{}:/data", host.path().display());
    let o = run(
        &t,
        &[
            "run",
            "--rm",
            "-v",
            &ro,
            "bb",
            "sh",
            "-c",
            "cat /data/file; echo x > /data/new",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "from host\n");
    assert!(!host.path().join("new").exists());
    ok(
        &t,
        &[
            "run",
            "--rm",
            "-v",
            &rw,
            "bb",
            "sh",
            "-c",
            "echo y > /data/new",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("new")).unwrap(),
        "y\n"
    );
    let fresh = host.path().join("made/by/run");
    let v = format!("{}:/fresh", fresh.display());
    ok(&t, &["run", "--rm", "-v", &v, "bb", "touch", "/fresh/x"]);
    assert!(
        fresh.join("x").exists(),
        "missing bind source is created, as Docker does"
    );
    let out = ok(
        &t,
        &[
            "run",
            "--rm",
            "--read-only",
            "--tmpfs",
            "/scratch",
            "bb",
            "sh",
            "-c",
            "echo ok > /scratch/f && cat /scratch/f; grep ' /scratch ' /proc/mounts | cut -d' ' -f3; touch /rootfile 2>/dev/null && echo writable || echo read-only",
        ],
    );
    assert_eq!(out, "ok\ntmpfs\nread-only\n");
    t.assert_clean();
    assert_no_processes(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn isolation_seen_from_inside() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let script = "echo pid=$$; ls /sys/class/net | tr '\\n' ' '; echo; grep -E '^(CapBnd|CapEff|NoNewPrivs|Seccomp):' /proc/self/status; \
                  unshare -U true 2>/dev/null; echo unshare=$?; echo kcore=$(cat /proc/kcore | wc -c); \
                  echo x > /proc/sysrq-trigger 2>/dev/null; echo sysrq=$?";
    let out = ok(&t, &["run", "--rm", "bb", "sh", "-c", script]);
    let expect = [
        "pid=1",
        // Its own links only: the default network's veth and lo, none of the host's.
        "eth0 lo ",
        "CapBnd:\t00000000a80425fb",
        "CapEff:\t00000000a80425fb",
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
        "kcore=0",
    ];
    for e in expect {
        assert!(
            out.lines()
                .any(|l| l == e || l.starts_with(e) && e.ends_with(' ')),
            "missing {e:?} in:\n{out}"
        );
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("unshare=") && l != "unshare=0"),
        "unshare -U succeeded:\n{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("sysrq=") && l != "sysrq=0"),
        "/proc/sysrq-trigger writable:\n{out}"
    );
    let out = ok(
        &t,
        &[
            "run",
            "--rm",
            "--cap-drop",
            "ALL",
            "--cap-add",
            "chown",
            "--security-opt",
            "no-new-privileges=false",
            "--security-opt",
            "seccomp=unconfined",
            "bb",
            "sh",
            "-c",
            "grep -E '^(CapBnd|NoNewPrivs|Seccomp):' /proc/self/status",
        ],
    );
    assert_eq!(
        out,
        "CapBnd:\t0000000000000001\nNoNewPrivs:\t0\nSeccomp:\t0\n"
    );
    // Regression: without no_new_privs the default seccomp filter must still be installed (the
    // kernel accepts it only while the process holds CAP_SYS_ADMIN, so before the capabilities drop).
    let out = ok(
        &t,
        &[
            "run",
            "--rm",
            "--security-opt",
            "no-new-privileges=false",
            "bb",
            "sh",
            "-c",
            "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; unshare -U true || echo userns-denied",
        ],
    );
    assert_eq!(out, "NoNewPrivs:\t0\nSeccomp:\t2\nuserns-denied\n");
    let out = ok(
        &t,
        &[
            "run",
            "--rm",
            "--network",
            "host",
            "bb",
            "sh",
            "-c",
            "ls /sys/class/net | wc -l",
        ],
    );
    assert!(out.trim().parse::<u32>().unwrap() >= 1);
    t.assert_clean();
    assert_no_processes(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn writes_do_not_touch_the_image() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    ok(
        &t,
        &[
            "run",
            "--name",
            "writer",
            "bb",
            "sh",
            "-c",
            "head -1 /etc/passwd; echo hacked > /etc/passwd; rm -f /bin/ls",
        ],
    );
    let out = ok(
        &t,
        &[
            "run",
            "--rm",
            "bb",
            "sh",
            "-c",
            "head -1 /etc/passwd; ls /bin/ls",
        ],
    );
    assert_eq!(out, "root:x:0:0:root:/root:/bin/sh\n/bin/ls\n");
    // The first container keeps its own changes across a restart.
    assert_eq!(ok(&t, &["start", "-a", "writer"]), "hacked\n");
    ok(&t, &["rm", "writer"]);
    t.assert_clean();
    assert_no_processes(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn memory_limit_oom_kills_with_137() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let o = run(
        &t,
        &[
            "run",
            "--name",
            "hog",
            "--memory",
            "16m",
            "bb",
            "sh",
            "-c",
            "x=$(head -c 64m /dev/zero | tr '\\0' a); echo ${#x}",
        ],
    );
    assert_eq!(o.status.code(), Some(137), "{}", stderr(&o));
    let v = inspect(&t, "hog");
    assert_eq!(v["State"]["OOMKilled"], true, "{v}");
    assert_eq!(v["State"]["ExitCode"], 137);
    assert_eq!(v["HostConfig"]["Memory"], 16 << 20);
    ok(&t, &["rm", "hog"]);
    t.assert_clean();
    assert_no_processes(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn pids_limit_and_ulimits_apply() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let o = run(
        &t,
        &[
            "run",
            "--rm",
            "--pids-limit",
            "4",
            "bb",
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait",
        ],
    );
    assert!(
        stderr(&o).contains("fork"),
        "no fork failure under --pids-limit 4: {}",
        stderr(&o)
    );
    let out = ok(
        &t,
        &[
            "run",
            "--rm",
            "--ulimit",
            "nofile=1024:2048",
            "bb",
            "sh",
            "-c",
            "ulimit -n; ulimit -Hn",
        ],
    );
    assert_eq!(out, "1024\n2048\n");
    let out = ok(
        &t,
        &[
            "run",
            "--rm",
            "--cpus",
            "0.5",
            "bb",
            "cat",
            "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
        ],
    );
    assert_eq!(out, "50000\n");
    t.assert_clean();
    assert_no_processes(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn detached_lifecycle() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let id = ok(
        &t,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "bb",
            "sh",
            "-c",
            "echo hello; echo oops >&2; trap 'exit 143' TERM; while :; do sleep 0.1; done",
        ],
    )
    .trim()
    .to_owned();
    assert_eq!(id.len(), 64, "{id}");
    let ps = ok(&t, &["ps"]);
    let mut lines = ps.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("CONTAINER ID   IMAGE   COMMAND"),
        "{ps}"
    );
    let row = lines.next().expect("a row");
    assert!(
        row.starts_with(&id[..12]) && row.contains("Up ") && row.ends_with("web"),
        "{ps}"
    );
    assert_eq!(ok(&t, &["ps", "-q"]), format!("{}\n", &id[..12]));
    let j: serde_json::Value =
        serde_json::from_str(ok(&t, &["ps", "--format", "json"]).lines().next().unwrap()).unwrap();
    assert_eq!(
        (j["Names"].as_str(), j["State"].as_str()),
        (Some("web"), Some("running"))
    );

    // Logs: Docker's JSON lines on disk, split by stream.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = std::fs::read_to_string(
        t.root()
            .join("containers")
            .join(&id)
            .join(format!("{id}-json.log")),
    )
    .unwrap();
    let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(first["log"], "hello\n");
    assert_eq!(first["stream"], "stdout");
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    let o = run(&t, &["logs", "web"]);
    assert_eq!(
        (stdout(&o).as_str(), stderr(&o).as_str()),
        ("hello\n", "oops\n")
    );

    // exec joins the container.
    assert_eq!(
        ok(&t, &["exec", "web", "hostname"]),
        format!("{}\n", &id[..12])
    );
    assert_eq!(
        ok(
            &t,
            &[
                "exec",
                "web",
                "sh",
                "-c",
                "grep -c sleep /proc/1/cmdline >/dev/null; cat /proc/1/comm"
            ]
        ),
        "sh\n"
    );
    let o = run(&t, &["exec", "web", "sh", "-c", "exit 5"]);
    assert_eq!(o.status.code(), Some(5));
    let o = run(&t, &["exec", "web", "nope"]);
    assert_eq!(o.status.code(), Some(127));
    assert_eq!(
        ok(
            &t,
            &[
                "exec",
                "-u",
                "user",
                "-e",
                "X=1",
                "-w",
                "/tmp",
                "web",
                "sh",
                "-c",
                "id -u; echo $X; pwd"
            ]
        ),
        "1000\n1\n/tmp\n"
    );

    // stop → 143 (its TERM trap), wait prints it, inspect shows it.
    assert_eq!(ok(&t, &["stop", "web"]), "web\n");
    assert_eq!(ok(&t, &["wait", "web"]), "143\n");
    let v = inspect(&t, &id[..6]);
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 143);
    assert_eq!(v["Name"], "/web");
    assert!(ok(&t, &["ps", "-a"]).contains("Exited (143)"));
    assert_eq!(ok(&t, &["ps"]).lines().count(), 1);
    let o = run(&t, &["stop", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(ok(&t, &["rm", "web"]), "web\n");
    assert_eq!(ok(&t, &["ps", "-aq"]), "");
    t.assert_clean();
    assert_no_processes(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn kill_9_is_137_and_rm_f_removes_running_containers() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    ok(&t, &["run", "-d", "--name", "kk", "bb", "sleep", "100"]);
    ok(&t, &["kill", "-s", "KILL", "kk"]);
    assert_eq!(ok(&t, &["wait", "kk"]), "137\n");
    let o = run(&t, &["kill", "kk"]);
    assert_ne!(
        o.status.code(),
        Some(0),
        "kill of a stopped container succeeded"
    );
    ok(&t, &["start", "kk"]);
    let o = run(&t, &["rm", "kk"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("running"), "{}", stderr(&o));
    ok(&t, &["rm", "-f", "kk"]);
    assert!(t.container_ids().is_empty());
    t.assert_clean();
    assert_no_processes(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn monitor_is_small_and_its_death_does_not_leave_a_running_container() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let id = ok(&t, &["run", "-d", "bb", "sleep", "100"])
        .trim()
        .to_owned();
    // Steady state: the monitor sheds its start-up pages after a quiet second.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let st = state_file(&t, &id);
    let monitor = st["MonitorPid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{monitor}/status")).unwrap();
    let kb = |field: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(field))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
    };
    // What each container costs on its own is the monitor's private (anonymous) memory; the
    // binary's file pages are page cache shared by every monitor. The unoptimised test build's
    // code is several times the release build's (1.4 MiB VmRSS in all, docs/benchmarks.md), and
    // as a position-independent executable its relocated pointer tables are private pages too
    // (1.9 MiB here, 0.9 MiB in release), so the bounds here are looser than the 4 MiB target the
    // release build is held to.
    let (anon, rss) = (kb("RssAnon:"), kb("VmRSS:"));
    assert!(anon <= 3072, "monitor private memory {anon} kB > 3 MiB");
    assert!(rss <= 8192, "monitor RSS {rss} kB > 8 MiB");
    // Kill the monitor: the container dies with it and is reported exited, its cgroup removed.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let v = inspect(&t, &id);
    assert_eq!(v["State"]["Status"], "exited", "{v}");
    assert_eq!(v["State"]["Running"], false);
    assert!(
        crate::common::cgroup_dirs_for(&id).is_empty(),
        "cgroup left: {:?}",
        crate::common::cgroup_dirs_for(&id)
    );
    ok(&t, &["rm", &id]);
    t.assert_clean();
    assert_no_processes(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn create_then_start_attached_and_detached() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let id = ok(&t, &["create", "--name", "c1", "bb", "echo", "hi"])
        .trim()
        .to_owned();
    assert!(ok(&t, &["ps", "-a"]).contains("Created"));
    assert_eq!(inspect(&t, "c1")["State"]["Status"], "created");
    assert_eq!(ok(&t, &["start", "-a", "c1"]), "hi\n");
    assert_eq!(ok(&t, &["start", "c1"]), "c1\n");
    assert_eq!(ok(&t, &["wait", &id[..10]]), "0\n");
    assert_eq!(ok(&t, &["logs", "--tail", "1", "c1"]), "hi\n");
    assert_eq!(ok(&t, &["logs", "c1"]), "hi\nhi\n");
    assert_eq!(
        ok(
            &t,
            &[
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.ExitCode}} {{.Name}}",
                "c1"
            ]
        ),
        "exited 0 /c1\n"
    );
    assert_eq!(
        ok(&t, &["ps", "-a", "--format", "{{.Names}}: {{.State}}"]),
        "c1: exited\n"
    );
    let table = ok(
        &t,
        &["ps", "-a", "--format", "table {{.Names}}\\t{{.Status}}"],
    );
    assert!(
        table.starts_with("NAMES   STATUS\nc1      Exited (0) "),
        "{table}"
    );
    let short = format!("{}\n", &id[..12]);
    assert_eq!(ok(&t, &["ps", "-q", "-f", "status=exited"]), short);
    assert_eq!(
        ok(&t, &["ps", "-aq", "-f", "name=c", "-f", "ancestor=bb"]),
        short
    );
    assert_eq!(ok(&t, &["ps", "-aq", "-f", "status=running"]), "");
    assert_eq!(
        ok(
            &t,
            &["ps", "-aq", "-f", "status=running", "-f", "status=exited"]
        ),
        short
    );
    assert_eq!(ok(&t, &["ps", "-lq"]), short);
    assert_eq!(run(&t, &["ps", "-f", "bogus=1"]).status.code(), Some(125));
    let o = run(&t, &["create", "--name", "c1", "bb", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("already in use"), "{}", stderr(&o));
    ok(&t, &["rm", "c1"]);
    t.assert_clean();
    assert_no_processes(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn tty_and_stdin() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let out = ok(
        &t,
        &[
            "run",
            "--rm",
            "-t",
            "bb",
            "sh",
            "-c",
            "test -t 0 && test -t 1 && echo tty; echo $TERM",
        ],
    );
    assert_eq!(out.replace('\r', ""), "tty\nxterm\n");
    let out = t
        .berth()
        .args(["run", "--rm", "-i", "bb", "sh", "-c", "tr a-z A-Z"])
        .write_stdin("hello\n")
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "HELLO\n", "{}", stderr(&out));
    let out = t
        .berth()
        .args(["run", "--rm", "bb", "cat"])
        .write_stdin("ignored\n")
        .output()
        .unwrap();
    assert_eq!(
        stdout(&out),
        "",
        "stdin must not reach a container without -i"
    );
    t.assert_clean();
    assert_no_processes(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn follow_logs_until_exit() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    ok(
        &t,
        &[
            "run",
            "-d",
            "--name",
            "follow",
            "bb",
            "sh",
            "-c",
            "for i in 1 2 3; do echo $i; sleep 0.2; done",
        ],
    );
    assert_eq!(ok(&t, &["logs", "-f", "follow"]), "1\n2\n3\n");
    ok(&t, &["rm", "follow"]);
    t.assert_clean();
    assert_no_processes(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn concurrent_runs_on_one_root() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let handles: Vec<_> = (0..10)
        .map(|i| {
            let mut c = t.berth_std();
            c.args(["run", "--rm", "bb", "sh", "-c", &format!("echo {i}")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let o = h.wait_with_output().unwrap();
        assert!(o.status.success(), "run {i}: {}", stderr(&o));
        assert_eq!(stdout(&o), format!("{i}\n"));
    }
    assert!(t.container_ids().is_empty(), "{:?}", t.container_ids());
    t.assert_clean();
    assert_no_processes(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn concurrent_create_and_rm_of_named_containers() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    // Eight creators race for one name: exactly one wins.
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let mut c = t.berth_std();
            c.args(["create", "--name", "same", "bb", "true"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let wins = handles
        .into_iter()
        .map(|h| h.wait_with_output().unwrap())
        .filter(|o| o.status.success())
        .count();
    assert_eq!(wins, 1);
    // Create and remove distinct names concurrently.
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let mut c = t.berth_std();
            let name = format!("n{i}");
            c.args(["create", "--name", &name, "bb", "true"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    for h in handles {
        assert!(h.wait_with_output().unwrap().status.success());
    }
    let mut names: Vec<String> = (0..6).map(|i| format!("n{i}")).collect();
    names.push("same".into());
    let handles: Vec<_> = names
        .iter()
        .map(|n| {
            let mut c = t.berth_std();
            c.args(["rm", n.as_str()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    for h in handles {
        let o = h.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(ok(&t, &["ps", "-aq"]), "");
    assert!(
        std::fs::read_dir(t.root().join("names"))
            .unwrap()
            .next()
            .is_none(),
        "names left behind"
    );
    t.assert_clean();
    assert_no_processes(&t);
}

/// `berth …` as a shell command line for `script`, which gives it a real terminal.
fn shell_line(t: &TestRoot, args: &str) -> String {
    format!(
        "{} --root {} --run-root {} {args}",
        assert_cmd::cargo::cargo_bin("berth").display(),
        t.root().display(),
        t.run_root().display()
    )
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn interactive_tty_has_the_terminal_size_and_takes_input() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let line = format!(
        "stty cols 100 rows 30; {}",
        shell_line(&t, "run --rm -it bb stty size")
    );
    let o = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .output()
        .expect("run script");
    assert!(
        stdout(&o).contains("30 100"),
        "{:?} {}",
        stdout(&o),
        stderr(&o)
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &shell_line(&t, "run --rm -it bb sh"), "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run script");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo $((6*7))\nexit 4\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        stdout(&o).lines().any(|l| l.trim_end() == "42"),
        "{}",
        stdout(&o)
    );
    assert_eq!(o.status.code(), Some(4));
    t.assert_clean();
    assert_no_processes(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn image_config_gives_defaults_and_the_stop_signal() {
    let t = TestRoot::new();
    let tar = crate::common::busybox_tar();
    let o = t
        .berth()
        .args([
            "import",
            "-c",
            "ENV FOO=bar",
            "-c",
            "WORKDIR /tmp",
            "-c",
            "USER user",
            "-c",
            "STOPSIGNAL SIGUSR1",
        ])
        .args([
            "-c",
            r#"CMD ["sh", "-c", "echo $FOO $(pwd) $(id -u) $HOME"]"#,
        ])
        .arg(tar)
        .arg("cfg")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        ok(&t, &["run", "--rm", "cfg"]),
        "bar /tmp 1000 /home/user\n"
    );
    assert_eq!(
        ok(
            &t,
            &[
                "run",
                "--rm",
                "-u",
                "root",
                "-w",
                "/",
                "-e",
                "FOO=baz",
                "cfg",
                "sh",
                "-c",
                "echo $FOO $(pwd) $(id -u)"
            ]
        ),
        "baz / 0\n"
    );
    let o = t
        .berth()
        .args([
            "import",
            "-c",
            r#"ENTRYPOINT ["/bin/echo", "ep"]"#,
            "-c",
            r#"CMD ["default"]"#,
        ])
        .arg(tar)
        .arg("ep")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(ok(&t, &["run", "--rm", "ep"]), "ep default\n");
    assert_eq!(ok(&t, &["run", "--rm", "ep", "given"]), "ep given\n");
    assert_eq!(
        ok(
            &t,
            &["run", "--rm", "--entrypoint", "", "ep", "echo", "plain"]
        ),
        "plain\n"
    );

    // `stop` sends the image's STOPSIGNAL first.
    ok(
        &t,
        &[
            "run",
            "-d",
            "--name",
            "usr1",
            "cfg",
            "sh",
            "-c",
            "trap 'exit 42' USR1; while :; do sleep 0.1; done",
        ],
    );
    ok(&t, &["stop", "usr1"]);
    assert_eq!(ok(&t, &["wait", "usr1"]), "42\n");
    ok(&t, &["rm", "usr1"]);
    t.assert_clean();
    assert_no_processes(&t);
}

fn wait_running(t: &TestRoot, name: &str) {
    for _ in 0..200 {
        let o = run(t, &["inspect", name]);
        if o.status.success() && stdout(&o).contains("\"Running\": true") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("{name} never ran");
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn foreground_run_forwards_signals() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let child = t
        .berth_std()
        .args([
            "run",
            "--rm",
            "--name",
            "fgsig",
            "bb",
            "sh",
            "-c",
            "trap 'echo got; exit 7' TERM; echo ready; while :; do sleep 0.1; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_running(&t, "fgsig");
    std::thread::sleep(std::time::Duration::from_millis(200));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(stdout(&o), "ready\ngot\n");
    assert!(t.container_ids().is_empty());
    t.assert_clean();
    assert_no_processes(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn a_killed_cli_does_not_leave_a_running_container() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let mut child = t
        .berth_std()
        .args(["run", "--name", "orphan", "bb", "sleep", "100"])
        .spawn()
        .unwrap();
    wait_running(&t, "orphan");
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let v = inspect(&t, "orphan");
    assert_eq!(v["State"]["Status"], "exited", "{v}");
    assert_eq!(v["State"]["ExitCode"], 137);
    assert!(ok(&t, &["ps", "-a"]).contains("Exited (137)"));
    let id = v["Id"].as_str().unwrap().to_owned();
    assert!(crate::common::cgroup_dirs_for(&id).is_empty());
    ok(&t, &["rm", "orphan"]);
    t.assert_clean();
    assert_no_processes(&t);
}

/// No process still runs with this root on its command line (monitors, CLIs). The detached cleaner
/// that deletes a removed container's directory may still be finishing: it gets a few seconds.
fn assert_no_processes(t: &TestRoot) {
    crate::common::assert_no_processes_within(t, std::time::Duration::from_secs(5));
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn pty_follows_terminal_resizes() {
    use rustix::pty::OpenptFlags;
    use std::os::unix::process::CommandExt;
    let t = TestRoot::new();
    t.busybox_image("bb");
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
            .unwrap();
    rustix::pty::grantpt(&master).unwrap();
    rustix::pty::unlockpt(&master).unwrap();
    let name = rustix::pty::ptsname(&master, Vec::new()).unwrap();
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    let size = |rows: u16, cols: u16| rustix::termios::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(&master, size(30, 100)).unwrap();
    let mut cmd = t.berth_std();
    cmd.args([
        "run",
        "--rm",
        "-it",
        "bb",
        "sh",
        "-c",
        "stty size; sleep 1; stty size",
    ])
    .stdin(slave.try_clone().unwrap())
    .stdout(slave.try_clone().unwrap())
    .stderr(slave);
    // SAFETY: setsid and TIOCSCTTY are async-signal-safe; fd 0 is the pty slave in the child.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let mut resized = false;
    let start = std::time::Instant::now();
    loop {
        let mut fds = [rustix::event::PollFd::new(
            &master,
            rustix::event::PollFlags::IN,
        )];
        let timeout = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        // A signal handler of another test in this binary may interrupt the poll or the read.
        let n = match rustix::event::poll(&mut fds, Some(&timeout)) {
            Err(rustix::io::Errno::INTR) => 0,
            r => r.unwrap(),
        };
        if n > 0 {
            match rustix::io::read(&master, &mut buf) {
                Err(rustix::io::Errno::INTR) => {}
                Ok(0) | Err(_) => break,
                Ok(k) => out.extend_from_slice(&buf[..k]),
            }
        }
        if !resized && String::from_utf8_lossy(&out).contains("30 100") {
            rustix::termios::tcsetwinsize(&master, size(40, 120)).unwrap();
            resized = true;
        }
        if child.try_wait().unwrap().is_some() && n == 0 {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "timed out: {}",
            String::from_utf8_lossy(&out)
        );
    }
    assert!(child.wait().unwrap().success());
    let text = String::from_utf8_lossy(&out).replace('\r', "");
    assert!(
        text.contains("30 100\n") && text.contains("40 120\n"),
        "{text:?}"
    );
    t.assert_clean();
    assert_no_processes(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn init_is_pid_1_forwards_signals_and_passes_exit_codes() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let o = run(
        &t,
        &[
            "run",
            "--rm",
            "--init",
            "bb",
            "sh",
            "-c",
            "echo $$; cat /proc/1/comm; exit 5",
        ],
    );
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert_eq!(stdout(&o), "2\nberth-init\n");
    let o = run(&t, &["run", "--rm", "--init", "bb", "no-such-command"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(stderr(&o).contains("no-such-command"), "{}", stderr(&o));
    // A plain process (no TERM handler) dies of the forwarded SIGTERM: 143, without the 10 s wait.
    ok(
        &t,
        &[
            "run",
            "-d",
            "--init",
            "--read-only",
            "-u",
            "user",
            "--name",
            "initd",
            "bb",
            "sleep",
            "100",
        ],
    );
    let start = std::time::Instant::now();
    ok(&t, &["stop", "initd"]);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(5),
        "stop waited for the timeout"
    );
    assert_eq!(ok(&t, &["wait", "initd"]), "143\n");
    assert_eq!(inspect(&t, "initd")["HostConfig"]["Init"], true);
    ok(&t, &["rm", "initd"]);
    t.assert_clean();
    assert_no_processes(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn concurrent_starts_of_one_container_all_succeed_once() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    ok(&t, &["create", "--name", "racer", "bb", "sleep", "100"]);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let mut c = t.berth_std();
            c.args(["start", "racer"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    for h in handles {
        let o = h.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(ok(&t, &["ps", "-q"]).lines().count(), 1);
    // One container process, one monitor.
    // A losing monitor reports success (the container runs) and then exits: give it a moment.
    let root = t.root().to_string_lossy().into_owned();
    let count_monitors = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(&root) && c.contains("__monitor"))
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut monitors = count_monitors();
    while monitors > 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        monitors = count_monitors();
    }
    assert_eq!(monitors, 1);
    ok(&t, &["rm", "-f", "racer"]);
    t.assert_clean();
    assert_no_processes(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn kill_9_at_any_moment_leaves_a_usable_state() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    for i in 0..12u64 {
        let args: &[&str] = if i % 2 == 0 {
            &["create", "--name", "crash", "bb", "true"]
        } else {
            &["run", "--rm", "--name", "crash", "bb", "sleep", "5"]
        };
        let mut c = t.berth_std();
        c.args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = c.spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(3 * i));
        let _ = child.kill();
        let _ = child.wait();
        // Whatever the moment, the next commands work and nothing is left running.
        let ps = ok(&t, &["ps", "-a", "--format", "{{.Names}} {{.State}}"]);
        assert!(!ps.contains("running"), "iteration {i}: {ps}");
        if ps.contains("crash") {
            ok(&t, &["rm", "-f", "crash"]);
        }
    }
    // The name is free again: a killed creation does not keep it.
    ok(&t, &["create", "--name", "crash", "bb", "true"]);
    ok(&t, &["rm", "crash"]);
    for id in t.container_ids() {
        assert!(crate::common::cgroup_dirs_for(&id).is_empty());
    }
    t.assert_clean();
    assert_no_processes(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn start_attach_interactive_forwards_stdin() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    ok(
        &t,
        &["create", "--name", "catter", "bb", "tr", "a-z", "A-Z"],
    );
    let o = t
        .berth()
        .args(["start", "-a", "-i", "catter"])
        .write_stdin("shout\n")
        .output()
        .unwrap();
    assert_eq!(
        (o.status.code(), stdout(&o).as_str()),
        (Some(0), "SHOUT\n"),
        "{}",
        stderr(&o)
    );
    ok(&t, &["rm", "catter"]);
    t.assert_clean();
    assert_no_processes(&t);
}
