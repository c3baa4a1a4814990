//! End-to-end tests of `--userns auto` (root required): the container's root is root inside and an
//! unprivileged host range outside, the image's files belong to it through id-mapped layers, its
//! writes land in upper/ owned by the mapped root, and each container gets a range of its own.

use crate::common::{TestRoot, inspect, ok, run, stderr, stdout};
use std::os::unix::fs::MetadataExt;

/// The host uid of a process, from the `Uid:` line of its status (real uid).
fn host_uid(pid: i64) -> u32 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = s.lines().find(|l| l.starts_with("Uid:")).expect("Uid line");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn claims(t: &TestRoot) -> Vec<String> {
    match std::fs::read_dir(t.root().join("userns")) {
        Ok(d) => d
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn userns_auto_root_inside_unprivileged_outside_with_owned_image_and_writes() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    // A host directory owned by host root, bound without :idmap, stays host-owned (nobody inside).
    let vol = tempfile::Builder::new()
        .prefix("vol-")
        .tempdir_in(crate::common::scratch_dir())
        .unwrap();
    std::fs::write(vol.path().join("f"), "x").unwrap();
    let v = format!("{}:/vol", vol.path().display());
    let script = "id -u; id -g; \
        stat -c %u:%g /bin/busybox /etc/passwd /; \
        echo hi > /written && mkdir -p /etc/new && echo ok > /etc/new/f && echo >> /etc/passwd && echo writes-ok; \
        stat -c %u /vol/f; \
        tr -s ' ' < /proc/self/uid_map; \
        grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\\t'; \
        grep CapBnd /proc/self/status | tr -d '\\t'; \
        ls /sys/fs/cgroup > /dev/null && echo cgroup-ok; \
        ls /sys/class/net | grep -q lo && echo sysfs-ok; \
        test -c /dev/pts/ptmx && echo devpts-ok; \
        echo > /dev/null && echo devnull-ok";
    let out = ok(
        &t,
        &[
            "run", "--name", "u1", "--userns", "auto", "-v", &v, "bb", "sh", "-c", script,
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..6],
        &["0", "0", "0:0", "0:0", "0:0", "writes-ok"],
        "{out}"
    );
    assert_eq!(
        lines[6], "65534",
        "an un-idmapped bind shows host root as nobody: {out}"
    );
    let map: Vec<u32> = lines[7]
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(map, vec![0, 100_000, 65_536], "{out}");
    assert_eq!(lines[8], "NoNewPrivs:1", "{out}");
    assert_eq!(lines[9], "Seccomp:2", "{out}");
    assert_eq!(
        lines[10], "CapBnd:00000000a80425fb",
        "default capabilities: {out}"
    );
    assert_eq!(
        &lines[11..],
        &["cgroup-ok", "sysfs-ok", "devpts-ok", "devnull-ok"],
        "{out}"
    );

    // From the host, the container's writes in upper/ belong to the mapped root.
    let id = inspect(&t, "u1")["Id"].as_str().unwrap().to_owned();
    let upper = t.root().join("containers").join(&id).join("upper");
    for p in ["written", "etc/new/f", "etc/passwd", "etc/new", "."] {
        let md = std::fs::symlink_metadata(upper.join(p)).unwrap();
        assert_eq!((md.uid(), md.gid()), (100_000, 100_000), "upper/{p}");
    }
    // The image's layers are untouched: still owned by host root, /etc/passwd unchanged.
    let img: serde_json::Value =
        serde_json::from_str(&ok(&t, &["image", "inspect", "bb"])).expect("image json");
    let lowers = img[0]["GraphDriver"]["Data"]["LowerDir"]
        .as_str()
        .expect("LowerDir")
        .to_owned();
    let lower = std::path::Path::new(lowers.split(':').next().unwrap()).to_owned();
    let md = std::fs::metadata(lower.join("etc/passwd")).unwrap();
    assert_eq!((md.uid(), md.gid()), (0, 0));
    let lower_text = std::fs::read_to_string(lower.join("etc/passwd")).unwrap();
    let upper_text = std::fs::read_to_string(upper.join("etc/passwd")).unwrap();
    assert_eq!(upper_text, format!("{lower_text}\n"));
    assert_eq!(claims(&t).len(), 1);

    // A second start keeps the range.
    let o = ok(&t, &["start", "-a", "u1"]);
    assert!(o.contains("0 100000 65536"), "{o}");
    ok(&t, &["rm", "u1"]);
    assert!(claims(&t).is_empty(), "rm releases the range");
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn userns_auto_ranges_differ_per_container_and_exec_joins() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    ok(
        &t,
        &[
            "run", "-d", "--name", "ua", "--userns", "auto", "bb", "sleep", "60",
        ],
    );
    ok(
        &t,
        &[
            "run", "-d", "--name", "ub", "--userns", "auto", "bb", "sleep", "60",
        ],
    );
    let pa = inspect(&t, "ua")["State"]["Pid"].as_i64().unwrap();
    let pb = inspect(&t, "ub")["State"]["Pid"].as_i64().unwrap();
    let (ua, ub) = (host_uid(pa), host_uid(pb));
    assert_eq!(ua, 100_000);
    assert_eq!(ub, 165_536, "a second container gets the next range");
    let e = ok(
        &t,
        &[
            "exec",
            "ub",
            "sh",
            "-c",
            "id -u; touch /from-exec; stat -c %u /from-exec",
        ],
    );
    assert_eq!(e, "0\n0\n");
    let id = inspect(&t, "ub")["Id"].as_str().unwrap().to_owned();
    let md = std::fs::metadata(
        t.root()
            .join("containers")
            .join(&id)
            .join("upper/from-exec"),
    )
    .unwrap();
    assert_eq!(md.uid(), 165_536);
    // A host container next to them is plain root.
    let o = ok(
        &t,
        &[
            "run",
            "--rm",
            "bb",
            "sh",
            "-c",
            "tr -s ' ' < /proc/self/uid_map",
        ],
    );
    assert_eq!(o.trim(), "0 0 4294967295");
    ok(&t, &["rm", "-f", "ua", "ub"]);
    assert!(claims(&t).is_empty());
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn userns_auto_with_host_network_and_bad_mode_refused() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let o = ok(
        &t,
        &[
            "run",
            "--rm",
            "--userns",
            "auto",
            "--network",
            "host",
            "bb",
            "sh",
            "-c",
            "id -u; ls /sys/class/net | grep -q lo && echo sys-ok; touch /sys/x 2>/dev/null || echo sys-ro",
        ],
    );
    assert_eq!(o, "0\nsys-ok\nsys-ro\n");
    assert!(claims(&t).is_empty(), "--rm releases the range");
    // A non-root user in the namespace: setting its (empty) supplementary groups is allowed.
    let o = ok(
        &t,
        &[
            "run",
            "--rm",
            "--userns",
            "auto",
            "-u",
            "1000:1000",
            "bb",
            "sh",
            "-c",
            "id -u; id -g; touch /tmp/y && echo tmp-ok",
        ],
    );
    assert_eq!(o, "1000\n1000\ntmp-ok\n");

    let o = run(&t, &["run", "--rm", "--userns", "keep-id", "bb", "true"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--userns"), "{}", stderr(&o));
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn idmap_volume_belongs_to_the_container_root_and_needs_userns_auto() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let vol = tempfile::Builder::new()
        .prefix("vol-")
        .tempdir_in(crate::common::scratch_dir())
        .unwrap();
    std::fs::write(vol.path().join("f"), "x").unwrap();
    let v = format!("{}:/vol:idmap", vol.path().display());
    let o = ok(
        &t,
        &[
            "run",
            "--rm",
            "--userns",
            "auto",
            "-v",
            &v,
            "bb",
            "sh",
            "-c",
            "stat -c %u:%g /vol/f; echo y > /vol/g && stat -c %u /vol/g",
        ],
    );
    assert_eq!(o, "0:0\n0\n");
    // Through the mapping, the container's root writes as host root into the volume.
    let md = std::fs::metadata(vol.path().join("g")).unwrap();
    assert_eq!((md.uid(), md.gid()), (0, 0));
    let o = run(&t, &["run", "--rm", "-v", &v, "bb", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("idmap needs --userns auto"),
        "{}",
        stderr(&o)
    );
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn tty_of_a_userns_container_belongs_to_its_user() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    // `script` gives berth a terminal, so `-t` allocates the container's pty.
    let line = format!(
        "{} --root {} --run-root {} run --rm -t --userns auto -u 1000 bb sh -c 'stat -c %u:%g /dev/console; id -u'",
        assert_cmd::cargo::cargo_bin("berth").display(),
        t.root().display(),
        t.run_root().display(),
    );
    let o = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .output()
        .expect("run script");
    let out = stdout(&o).replace('\r', "");
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert_eq!(out, "1000:5\n1000\n");
    t.assert_clean();
}
