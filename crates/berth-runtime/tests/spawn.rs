//! spawn end to end, as root, in real namespaces on a busybox rootfs.

mod common;

use berth_runtime::{Error, ExitStatus, OverlayRoot};
use common::*;

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn exit_code_propagates() {
    let r = Rootfs::new();
    let id = unique_id("exit");
    let out = run(
        &id,
        &spec(&r.path(), &["sh", "-c", "echo out; echo err >&2; exit 7"]),
        None,
    )
    .unwrap();
    assert_eq!(out.status, ExitStatus::Exited(7));
    assert_eq!(out.status.docker_code(), 7);
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn signal_death_is_signaled() {
    let r = Rootfs::new();
    let id = unique_id("sig");
    // A shell that dies of SIGKILL inside the container; pid 1 reports its status.
    let s = spec(&r.path(), &["sh", "-c", "sh -c 'kill -KILL $$'; echo $?"]);
    let out = run(&id, &s, None).unwrap();
    assert_eq!(out.stdout.trim(), "137", "the inner shell died of SIGKILL");
    // And pid 1 itself dying from a signal sent by the host.
    let id = unique_id("sig1");
    let (stdio, out, _err) = pipes();
    let spec1 = spec(&r.path(), &["sleep", "100"]);
    let mut child = berth_runtime::spawn(berth_runtime::LaunchConfig {
        id: &id,
        spec: &spec1,
        overlay: None,
        stdio,
        seccomp: None,
        die_with_parent: true,
        signals_blocked: false,
    })
    .unwrap();
    child.signal(libc::SIGKILL).unwrap();
    assert_eq!(child.wait().unwrap(), ExitStatus::Signaled(libc::SIGKILL));
    assert_eq!(child.wait().unwrap().docker_code(), 137);
    drop(out);
    cleanup(&id, child);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn exec_not_found_and_permission() {
    let r = Rootfs::new();
    let id = unique_id("nf");
    let e = run(&id, &spec(&r.path(), &["no-such-command"]), None).unwrap_err();
    assert!(
        matches!(&e, Error::ExecNotFound { command } if command == "no-such-command"),
        "{e}"
    );
    assert_eq!(e.exit_code(), 127);
    assert_eq!(
        e.to_string(),
        "exec: \"no-such-command\": executable file not found in $PATH"
    );
    assert_no_cgroup(&id);

    let id = unique_id("nf2");
    let e = run(&id, &spec(&r.path(), &["/bin/nope"]), None).unwrap_err();
    assert_eq!(e.exit_code(), 127, "{e}");

    let id = unique_id("perm");
    let e = run(&id, &spec(&r.path(), &["/etc"]), None).unwrap_err();
    assert!(
        matches!(&e, Error::ExecPermission { command } if command == "/etc"),
        "{e}"
    );
    assert_eq!(e.exit_code(), 126);
    assert_no_cgroup(&id);

    let id = unique_id("perm2");
    let e = run(&id, &spec(&r.path(), &["/etc/noexec"]), None).unwrap_err();
    assert_eq!(e.exit_code(), 126, "{e}");
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn setup_error_names_stage_and_object() {
    let r = Rootfs::new();
    let id = unique_id("bad");
    let mut s = spec(&r.path(), &["true"]);
    let mut m = oci_spec::runtime::Mount::default();
    m.set_destination("/data".into());
    m.set_typ(Some("tmpfs".into()));
    m.set_source(Some("tmpfs".into()));
    m.set_options(Some(vec!["size=bogus".into()]));
    s.mounts_mut().as_mut().unwrap().push(m);
    let e = run(&id, &s, None).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Setup { .. }), "{msg}");
    assert!(msg.contains("tmpfs on /data"), "{msg}");
    assert_eq!(e.exit_code(), 125);
    assert_no_cgroup(&id);
}

const CHECKS: &str = r#"
echo pid=$$
echo host=$(hostname)
ls /proc/1/root >/dev/null && echo root-visible
echo interrupts=$(cat /proc/interrupts | wc -c)
ls -d /proc/timer_list /proc/kcore 2>/dev/null | while read f; do echo masked-$(wc -c < $f); done
grep ' /proc/sys ' /proc/self/mountinfo | cut -d' ' -f6 | cut -c1-2 | sed 's/^/procsys=/'
grep ' /sys ' /proc/self/mountinfo | cut -d' ' -f6 | cut -c1-2 | sed 's/^/sys=/'
echo netdevs=$(grep -c : /proc/net/dev)
echo lo=$(cat /sys/class/net/lo/flags)
grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\t '
echo nofile=$(ulimit -n)
test -c /dev/null && echo devnull=char
test -L /dev/ptmx && echo ptmx=link
echo mounts=$(grep -c . /proc/self/mountinfo)
if unshare -U true 2>/dev/null; then echo userns=allowed; else echo userns=denied; fi
cat /proc/self/cgroup | grep -c ':/$' | sed 's/^/cgroupns-root-lines=/'
"#;

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn isolation_seen_from_inside() {
    let r = Rootfs::new();
    let id = unique_id("iso");
    let before = host_mounts();
    let mut s = spec(&r.path(), &["sh", "-c", CHECKS]);
    s.linux_mut()
        .as_mut()
        .unwrap()
        .set_seccomp(Some(berth_runtime::seccomp::default_profile()));
    let out = run(&id, &s, None).unwrap();
    let o = out.stdout.as_str();
    assert_eq!(out.status, ExitStatus::Exited(0), "{o}\n{}", out.stderr);
    for want in [
        "pid=1\n",
        "host=box\n",
        "root-visible\n",
        "interrupts=0\n",
        "procsys=ro\n",
        "sys=ro\n",
        "netdevs=1\n",
        "lo=0x9\n",
        "CapEff:00000000a80425fb\n",
        "CapBnd:00000000a80425fb\n",
        "NoNewPrivs:1\n",
        "Seccomp:2\n",
        "nofile=1024\n",
        "devnull=char\n",
        "ptmx=link\n",
        "userns=denied\n",
    ] {
        assert!(
            o.contains(want),
            "missing {want:?} in:\n{o}\nstderr:\n{}",
            out.stderr
        );
    }
    assert!(
        o.contains("masked-0\n")
            && !o
                .lines()
                .any(|l| l.starts_with("masked-") && l != "masked-0"),
        "{o}"
    );
    assert_eq!(host_mounts(), before, "no mount visible on the host");
    // Joined every hierarchy before unsharing the cgroup namespace: each line shows the ns root.
    let hierarchies = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .count();
    assert!(
        o.contains(&format!("cgroupns-root-lines={hierarchies}\n")),
        "{o}"
    );
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn rlimits_clamped_and_user_switched() {
    let r = Rootfs::new();
    let id = unique_id("user");
    let mut s = spec(
        &r.path(),
        &[
            "sh",
            "-c",
            "id -u; id -g; id -G; ulimit -Hn; grep CapEff /proc/self/status | tr -d '\\t '; \
             cat /proc/self/oom_score_adj; umask",
        ],
    );
    let p = s.process_mut().as_mut().unwrap();
    p.set_oom_score_adj(Some(500));
    p.set_user(
        oci_spec::runtime::UserBuilder::default()
            .uid(1000u32)
            .gid(1001u32)
            .umask(0o077u32)
            .additional_gids(vec![1002u32])
            .build()
            .unwrap(),
    );
    p.set_rlimits(Some(vec![
        oci_spec::runtime::PosixRlimitBuilder::default()
            .typ(oci_spec::runtime::PosixRlimitType::RlimitNofile)
            .soft(u64::MAX / 2)
            .hard(u64::MAX / 2)
            .build()
            .unwrap(),
    ]));
    let out = run(&id, &s, None).unwrap();
    let host_hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap_or(u64::MAX);
    assert_eq!(
        out.stdout,
        format!("1000\n1001\n1001 1002\n{host_hard}\nCapEff:0000000000000000\n500\n0077\n"),
        "{}",
        out.stderr
    );
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn overlay_root_leaves_lowers_unchanged() {
    let r = Rootfs::new();
    let dir = tempfile::tempdir().unwrap();
    let (mnt, upper, work, lower2) = (
        dir.path().join("mnt"),
        dir.path().join("upper"),
        dir.path().join("work"),
        dir.path().join("lower2"),
    );
    for d in [&mnt, &upper, &work, &lower2] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::create_dir(lower2.join("etc")).unwrap();
    std::fs::write(lower2.join("etc/top"), "from the top layer\n").unwrap();
    let id = unique_id("ovl");
    let before = host_mounts();
    let s = spec(
        &mnt,
        &[
            "sh",
            "-c",
            "cat /etc/top; echo new > /tmp/x; rm /etc/passwd; echo ok",
        ],
    );
    let overlay = OverlayRoot {
        lowers: vec![lower2.clone(), r.path()],
        upper: upper.clone(),
        work,
    };
    let out = run(&id, &s, Some(overlay)).unwrap();
    assert_eq!(out.stdout, "from the top layer\nok\n", "{}", out.stderr);
    assert!(!r.path().join("tmp/x").exists());
    assert!(r.path().join("etc/passwd").exists(), "lower unchanged");
    assert_eq!(
        std::fs::read_to_string(upper.join("tmp/x")).unwrap(),
        "new\n"
    );
    assert_eq!(
        std::fs::read_dir(&mnt).unwrap().count(),
        0,
        "nothing mounted on the host mountpoint"
    );
    assert_eq!(host_mounts(), before);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn pty_is_controlling_terminal_and_console() {
    let r = Rootfs::new();
    let id = unique_id("pty");
    let (master, slave) = berth_runtime::pty::open().unwrap();
    let mut s = spec(
        &r.path(),
        &[
            "sh",
            "-c",
            "test -t 0 && echo tty-yes; stty size; test -c /dev/console && echo console-yes",
        ],
    );
    let p = s.process_mut().as_mut().unwrap();
    p.set_terminal(Some(true));
    // The spec's consoleSize is applied to the pty before the process starts.
    p.set_console_size(Some(
        oci_spec::runtime::BoxBuilder::default()
            .height(33u64)
            .width(99u64)
            .build()
            .unwrap(),
    ));
    let mut child = berth_runtime::spawn(berth_runtime::LaunchConfig {
        id: &id,
        spec: &s,
        overlay: None,
        stdio: berth_runtime::Stdio::Pty(slave),
        seccomp: None,
        die_with_parent: true,
        signals_blocked: false,
    })
    .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match rustix::io::read(&master, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(0));
    let out = String::from_utf8_lossy(&out);
    assert_eq!(out, "tty-yes\r\n33 99\r\nconsole-yes\r\n");
    cleanup(&id, child);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn create_waits_for_start() {
    let r = Rootfs::new();
    let id = unique_id("create");
    let fifo = r.dir.path().join("exec.fifo");
    let s = spec(&r.path(), &["sh", "-c", "echo started"]);
    let (stdio, out, _err) = pipes();
    let mut child = berth_runtime::create(
        berth_runtime::LaunchConfig {
            id: &id,
            spec: &s,
            overlay: None,
            stdio,
            seccomp: None,
            die_with_parent: true,
            signals_blocked: false,
        },
        &fifo,
    )
    .unwrap();
    // Set up, not yet exec'd: nothing on stdout and the process still runs our own binary.
    let mut pfd = [rustix::event::PollFd::new(
        &out,
        rustix::event::PollFlags::IN,
    )];
    let timeout = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    assert_eq!(rustix::event::poll(&mut pfd, Some(&timeout)).unwrap(), 0);
    let exe = std::fs::read_link(format!("/proc/{}/exe", child.pid())).unwrap();
    assert_eq!(exe, std::env::current_exe().unwrap());
    assert!(fifo.exists());
    berth_runtime::start(&fifo).unwrap();
    assert!(!fifo.exists());
    assert_eq!(read_all(out), "started\n");
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(0));
    // Starting again fails: nobody waits on the fifo any more.
    assert!(berth_runtime::start(&fifo).is_err());
    cleanup(&id, child);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn start_right_after_create() {
    let r = Rootfs::new();
    for i in 0..5 {
        let id = unique_id(&format!("cs{i}"));
        let fifo = r.dir.path().join(format!("exec{i}.fifo"));
        let s = spec(&r.path(), &["sh", "-c", "exit 3"]);
        let (stdio, _out, _err) = pipes();
        let mut child = berth_runtime::create(
            berth_runtime::LaunchConfig {
                id: &id,
                spec: &s,
                overlay: None,
                stdio,
                seccomp: None,
                die_with_parent: true,
                signals_blocked: false,
            },
            &fifo,
        )
        .unwrap();
        berth_runtime::start(&fifo).unwrap();
        assert_eq!(child.wait().unwrap(), ExitStatus::Exited(3));
        cleanup(&id, child);
    }
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn shared_root_propagation_does_not_leak_mounts_to_host() {
    let r = Rootfs::new();
    let id = unique_id("rshared");
    let before = host_mounts();
    let mut s = spec(
        &r.path(),
        &["sh", "-c", "grep -c shared: /proc/self/mountinfo"],
    );
    s.linux_mut()
        .as_mut()
        .unwrap()
        .set_rootfs_propagation(Some("rshared".into()));
    let out = run(&id, &s, None).unwrap();
    assert_eq!(out.status, ExitStatus::Exited(0), "{}", out.stderr);
    assert_ne!(out.stdout.trim(), "0", "mounts inside are shared");
    assert_eq!(host_mounts(), before, "nothing propagated to the host");
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> oci_spec::runtime::Mount {
    let mut m = oci_spec::runtime::Mount::default();
    m.set_destination(dest.into());
    m.set_typ(Some(typ.into()));
    m.set_source(Some(source.into()));
    m.set_options(Some(options.iter().map(|s| s.to_string()).collect()));
    m
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn mounts_devices_sysctls_and_masks_applied() {
    let r = Rootfs::new();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("file"), "from host\n").unwrap();
    std::fs::write(host.path().join("single"), "single file\n").unwrap();
    std::fs::create_dir_all(r.path().join("etc/secret-dir")).unwrap();
    std::fs::write(r.path().join("etc/secret-dir/key"), "k").unwrap();
    std::fs::write(r.path().join("etc/secret"), "s").unwrap();
    let id = unique_id("mounts");
    let script = r#"
cat /data/file
if touch /data/new 2>/dev/null; then echo data=rw; else echo data=ro; fi
grep ' /data ' /proc/self/mountinfo | cut -d' ' -f6 | grep -o noatime
cat /etc/single
stat -c 'scratch=%a' /scratch
grep ' /scratch ' /proc/self/mounts | grep -o 'size=[0-9a-z]*'
echo forward=$(cat /proc/sys/net/ipv4/ip_forward)
stat -c 'dev=%t:%T %a %u' /dev/mynull
echo secret-dir=$(ls /etc/secret-dir | wc -l) secret=$(cat /etc/secret | wc -c)
if touch /rootfile 2>/dev/null; then echo root=rw; else echo root=ro; fi
echo cwd=$(pwd)
"#;
    let mut s = spec(&r.path(), &["sh", "-c", script]);
    s.root_mut().as_mut().unwrap().set_readonly(Some(true));
    s.process_mut().as_mut().unwrap().set_cwd("/etc".into());
    let mounts = s.mounts_mut().as_mut().unwrap();
    mounts.push(mount(
        "/data",
        "bind",
        host.path().to_str().unwrap(),
        &["rbind", "ro", "noatime"],
    ));
    mounts.push(mount(
        "/etc/single",
        "bind",
        host.path().join("single").to_str().unwrap(),
        &["bind", "rprivate"],
    ));
    mounts.push(mount(
        "/scratch",
        "tmpfs",
        "tmpfs",
        &["nosuid", "size=1m", "mode=1777"],
    ));
    let linux = s.linux_mut().as_mut().unwrap();
    linux.set_sysctl(Some(
        [("net.ipv4.ip_forward".to_string(), "1".to_string())]
            .into_iter()
            .collect(),
    ));
    let mut masked = linux.masked_paths().clone().unwrap();
    masked.extend(["/etc/secret-dir".to_string(), "/etc/secret".to_string()]);
    linux.set_masked_paths(Some(masked));
    linux.set_devices(Some(vec![
        oci_spec::runtime::LinuxDeviceBuilder::default()
            .path("/dev/mynull")
            .typ(oci_spec::runtime::LinuxDeviceType::C)
            .major(1i64)
            .minor(3i64)
            .file_mode(0o600u32)
            .uid(1000u32)
            .gid(1000u32)
            .build()
            .unwrap(),
    ]));
    let out = run(&id, &s, None).unwrap();
    assert_eq!(
        out.status,
        ExitStatus::Exited(0),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(
        out.stdout,
        "from host\ndata=ro\nnoatime\nsingle file\nscratch=1777\nsize=1024k\nforward=1\ndev=1:3 600 1000\n\
         secret-dir=0 secret=0\nroot=ro\ncwd=/etc\n",
        "{}",
        out.stderr
    );
    assert!(!host.path().join("new").exists());
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn ambient_capabilities_for_non_root() {
    let r = Rootfs::new();
    let id = unique_id("ambient");
    let mut s = spec(
        &r.path(),
        &[
            "sh",
            "-c",
            "grep -E '^Cap(Eff|Amb)' /proc/self/status | tr -d '\\t '",
        ],
    );
    let p = s.process_mut().as_mut().unwrap();
    p.set_user(
        oci_spec::runtime::UserBuilder::default()
            .uid(1000u32)
            .gid(1000u32)
            .build()
            .unwrap(),
    );
    let one: oci_spec::runtime::Capabilities = [oci_spec::runtime::Capability::NetBindService]
        .into_iter()
        .collect();
    let mut caps = p.capabilities().clone().unwrap();
    caps.set_inheritable(Some(one.clone()));
    caps.set_ambient(Some(one));
    p.set_capabilities(Some(caps));
    let out = run(&id, &s, None).unwrap();
    assert_eq!(
        out.stdout, "CapEff:0000000000000400\nCapAmb:0000000000000400\n",
        "{}",
        out.stderr
    );
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn namespace_paths_are_joined() {
    let r = Rootfs::new();
    let id_a = unique_id("ns-a");
    let mut a = spec(&r.path(), &["sleep", "60"]);
    a.set_hostname(Some("alpha".into()));
    let (stdio, _o, _e) = pipes();
    let mut first = berth_runtime::spawn(berth_runtime::LaunchConfig {
        id: &id_a,
        spec: &a,
        overlay: None,
        stdio,
        seccomp: None,
        die_with_parent: true,
        signals_blocked: false,
    })
    .unwrap();
    // B shares A's uts and net namespaces (like docker --net=container:a), so its own hostname is
    // not applied and it sees A's interfaces.
    let id_b = unique_id("ns-b");
    let mut b = spec(
        &r.path(),
        &["sh", "-c", "hostname; readlink /proc/self/ns/net"],
    );
    b.set_hostname(Some("beta".into()));
    let linux = b.linux_mut().as_mut().unwrap();
    let ns = linux
        .namespaces()
        .clone()
        .unwrap()
        .into_iter()
        .map(|mut n| {
            if matches!(
                n.typ(),
                oci_spec::runtime::LinuxNamespaceType::Uts
                    | oci_spec::runtime::LinuxNamespaceType::Network
            ) {
                let name = if n.typ() == oci_spec::runtime::LinuxNamespaceType::Uts {
                    "uts"
                } else {
                    "net"
                };
                n.set_path(Some(format!("/proc/{}/ns/{name}", first.pid()).into()));
            }
            n
        })
        .collect();
    linux.set_namespaces(Some(ns));
    let out = run(&id_b, &b, None).unwrap();
    let a_net = std::fs::read_link(format!("/proc/{}/ns/net", first.pid())).unwrap();
    assert_eq!(
        out.stdout,
        format!("alpha\n{}\n", a_net.display()),
        "{}",
        out.stderr
    );
    first.signal(libc::SIGKILL).unwrap();
    first.wait().unwrap();
    cleanup(&id_a, first);
}

/// The cgroup2 mount of this host (the unified root, or the hybrid one at /sys/fs/cgroup/unified).
fn cgroup2_mount() -> std::path::PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            right
                .starts_with("cgroup2 ")
                .then(|| left.split(' ').nth(4).unwrap().into())
        })
        .expect("a cgroup2 mount")
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn cgroup_v2_child_is_born_in_its_cgroup() {
    use berth_runtime::cgroups::{Cgroup, Hierarchy};
    let r = Rootfs::new();
    let id = unique_id("v2");
    let h = Hierarchy::V2 {
        root: cgroup2_mount(),
    };
    let cg = Cgroup::create_in(&h, &format!("berth/{id}"), None).unwrap();
    let mut s = spec(&r.path(), &["sh", "-c", "grep '^0::' /proc/self/cgroup"]);
    // No cgroup namespace here, so the path is visible as the host sees it.
    let linux = s.linux_mut().as_mut().unwrap();
    let ns = linux
        .namespaces()
        .clone()
        .unwrap()
        .into_iter()
        .filter(|n| n.typ() != oci_spec::runtime::LinuxNamespaceType::Cgroup)
        .collect();
    linux.set_namespaces(Some(ns));
    let (stdio, out, err) = pipes();
    let mut child = berth_runtime::spawn_in(
        berth_runtime::LaunchConfig {
            id: &id,
            spec: &s,
            overlay: None,
            stdio,
            seccomp: None,
            die_with_parent: true,
            signals_blocked: false,
        },
        cg.clone(),
    )
    .unwrap();
    let stdout = read_all(out);
    let stderr = read_all(err);
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(0), "{stderr}");
    assert_eq!(stdout, format!("0::/berth/{id}\n"), "{stderr}");
    child.cgroup().destroy().unwrap();
    assert!(!cg.dirs()[0].exists());
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn attach_hook_runs_in_the_new_network_namespace_before_exec() {
    let r = Rootfs::new();
    let id = unique_id("attach");
    let (stdio, out, _err) = pipes();
    let s = spec(&r.path(), &["cat", "/attached"]);
    let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
    let marker = r.path().join("attached");
    let mut seen = None;
    let mut hook = |pid: i32| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        seen = Some(std::fs::read_link(format!("/proc/{pid}/ns/net"))?);
        // Written after the clone: the program sees it only if it runs after the hook returned.
        std::fs::write(&marker, "attached\n")?;
        Ok(())
    };
    let cfg = berth_runtime::LaunchConfig {
        id: &id,
        spec: &s,
        overlay: None,
        stdio,
        seccomp: None,
        die_with_parent: true,
        signals_blocked: false,
    };
    let mut child = berth_runtime::spawn_attached(cfg, &mut hook).unwrap();
    assert_eq!(read_all(out), "attached\n");
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(0));
    let theirs = seen.expect("the hook ran");
    assert_ne!(
        theirs, ours,
        "the hook saw the container's own network namespace"
    );
    cleanup(&id, child);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn a_failing_attach_hook_kills_the_process_before_exec() {
    let r = Rootfs::new();
    let id = unique_id("attachfail");
    let (stdio, out, _err) = pipes();
    // Were the program run, it would leave this file behind.
    let s = spec(&r.path(), &["touch", "/ran"]);
    let mut hook = |_pid: i32| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Err("no address left on network n1".into())
    };
    let cfg = berth_runtime::LaunchConfig {
        id: &id,
        spec: &s,
        overlay: None,
        stdio,
        seccomp: None,
        die_with_parent: true,
        signals_blocked: false,
    };
    let e = berth_runtime::spawn_attached(cfg, &mut hook).unwrap_err();
    assert!(matches!(e, Error::Attach(_)), "{e:?}");
    assert_eq!(e.to_string(), "no address left on network n1");
    drop(out);
    assert!(!r.path().join("ran").exists(), "the program never ran");
    assert_no_cgroup(&id);
}
