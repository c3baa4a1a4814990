//! Hostile input through `berth import`, end to end: tarballs whose entries try to leave the
//! rootfs (`..`, symlinks, hard links, whiteouts, device nodes) are refused with exit code 125
//! and a message naming the entry, change nothing outside the root, and leave the image list,
//! blobs and snapshots as they were; malformed input fails the same way; and a container cannot
//! change the layers of its image.

use crate::common::{TestRoot, busybox_tar, scratch_dir};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

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
    stdout(&out)
}

/// One tar entry, written raw (the point is to write what well-behaved builders refuse).
struct Entry {
    name: String,
    kind: u8,
    data: Vec<u8>,
    link: String,
    mode: u32,
    dev: (u32, u32),
}

fn file(name: &str, data: &[u8]) -> Entry {
    Entry {
        name: name.to_owned(),
        kind: b'0',
        data: data.to_vec(),
        link: String::new(),
        mode: 0o644,
        dev: (0, 0),
    }
}

fn dir(name: &str) -> Entry {
    Entry {
        kind: b'5',
        mode: 0o755,
        ..file(name, b"")
    }
}

fn symlink(name: &str, target: &str) -> Entry {
    Entry {
        kind: b'2',
        link: target.to_owned(),
        mode: 0o777,
        ..file(name, b"")
    }
}

fn hardlink(name: &str, target: &str) -> Entry {
    Entry {
        kind: b'1',
        link: target.to_owned(),
        ..file(name, b"")
    }
}

fn chardev(name: &str, major: u32, minor: u32) -> Entry {
    Entry {
        kind: b'3',
        dev: (major, minor),
        ..file(name, b"")
    }
}

/// Writes `value` as a NUL-terminated octal number filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let s = format!("{value:0width$o}", width = field.len() - 1);
    field[..s.len()].copy_from_slice(s.as_bytes());
    field[s.len()] = 0;
}

/// A ustar archive of `entries`, with its end-of-archive blocks.
fn tarball(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        assert!(
            e.name.len() <= 100 && e.link.len() <= 100,
            "name too long for the test"
        );
        let mut h = [0u8; 512];
        h[..e.name.len()].copy_from_slice(e.name.as_bytes());
        octal(&mut h[100..108], e.mode.into());
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], e.data.len() as u64);
        octal(&mut h[136..148], 1_700_000_000);
        h[156] = e.kind;
        h[157..157 + e.link.len()].copy_from_slice(e.link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        octal(&mut h[329..337], e.dev.0.into());
        octal(&mut h[337..345], e.dev.1.into());
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(&e.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// Files and directories under `dir`, as relative paths, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                todo.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Everything an import could have changed: images, blobs, snapshots, ingest leftovers.
fn store_state(t: &TestRoot) -> (String, Vec<String>) {
    let mut files = tree(&t.root().join("blobs"));
    files.extend(
        tree(&t.root().join("snapshots"))
            .into_iter()
            .filter(|p| !p.contains("/fs/")),
    );
    files.extend(tree(&t.root().join("ingest")));
    (ok(t, &["images", "-q", "--no-trunc"]), files)
}

/// A directory outside the root that hostile entries aim at, holding one sentinel file.
struct Target {
    dir: tempfile::TempDir,
}

impl Target {
    fn new() -> Target {
        // Under /tmp, so paths stay short enough for plain ustar names.
        let dir = tempfile::Builder::new()
            .prefix("hostile-")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::write(dir.path().join("sentinel"), "original\n").unwrap();
        Target { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The target directory as an absolute path string.
    fn abs(&self) -> String {
        self.path().display().to_string()
    }

    /// The target directory reached from inside a rootfs by climbing with `..`.
    fn climb(&self) -> String {
        format!("{}{}", "../".repeat(12), self.abs().trim_start_matches('/'))
    }

    fn assert_untouched(&self, case: &str) {
        let sentinel = self.path().join("sentinel");
        assert_eq!(
            std::fs::read_to_string(&sentinel).unwrap(),
            "original\n",
            "{case}: sentinel changed"
        );
        assert_eq!(
            std::fs::symlink_metadata(&sentinel).unwrap().nlink(),
            1,
            "{case}: sentinel got a hard link"
        );
        assert_eq!(
            tree(self.path()),
            vec!["sentinel".to_owned()],
            "{case}: something was created beside the sentinel"
        );
    }
}

/// Imports `tar` (written to a scratch file) and asserts it fails with 125 and a message that
/// contains every one of `expect`; the store and the target stay as they were.
fn refused(t: &TestRoot, target: &Target, case: &str, tar: &[u8], expect: &[&str]) {
    let before = store_state(t);
    let dir = tempfile::Builder::new()
        .prefix("hostile-")
        .tempdir_in(scratch_dir())
        .unwrap();
    let path = dir.path().join(format!("{case}.tar"));
    std::fs::write(&path, tar).unwrap();
    let out = t
        .berth()
        .args(["import", path.to_str().unwrap(), case])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(125),
        "{case}: {}{err}",
        stdout(&out)
    );
    for e in expect {
        assert!(err.contains(e), "{case}: {e:?} not in {err}");
    }
    target.assert_untouched(case);
    assert_eq!(store_state(t), before, "{case}: the store changed");
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn hostile_tarballs_are_refused_and_change_nothing() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let target = Target::new();
    let shadow = std::fs::symlink_metadata("/etc/shadow").unwrap();

    let climb = format!("{}/sentinel", target.climb());
    refused(
        &t,
        &target,
        "dotdot",
        &tarball(&[file("etc/ok", b"x"), file(&climb, b"pwned\n")]),
        &[&format!("{climb:?} escapes the rootfs")],
    );
    let inner = format!("etc/{}", climb);
    refused(
        &t,
        &target,
        "dotdot-inner",
        &tarball(&[dir("etc"), file(&inner, b"pwned\n")]),
        &[&format!("{inner:?} escapes the rootfs")],
    );

    // A symlink to the target directory, then a write through it.
    refused(
        &t,
        &target,
        "symlink-out",
        &tarball(&[
            symlink("evil", &target.abs()),
            file("evil/sentinel", b"pwned\n"),
        ]),
        &["\"evil/sentinel\" has a parent that is a symlink"],
    );
    // Hard links to host files.
    refused(
        &t,
        &target,
        "hardlink-shadow",
        &tarball(&[hardlink("shadow", "/etc/shadow")]),
        &["\"shadow\" is a hard link to a missing file"],
    );
    refused(
        &t,
        &target,
        "hardlink-climb",
        &tarball(&[hardlink(
            "shadow",
            "../../../../../../../../../../etc/shadow",
        )]),
        &[
            "\"shadow\" is a hard link to \"../../../../../../../../../../etc/shadow\", outside the rootfs",
        ],
    );
    refused(
        &t,
        &target,
        "hardlink-sentinel",
        &tarball(&[symlink("etc", &target.abs()), hardlink("s", "etc/sentinel")]),
        &["\"s\" is a hard link to a missing file"],
    );
    let after = std::fs::symlink_metadata("/etc/shadow").unwrap();
    assert_eq!(
        (after.nlink(), after.ino(), after.mtime()),
        (shadow.nlink(), shadow.ino(), shadow.mtime())
    );

    // Whiteouts that climb out, or name `.` / `..`.
    let wh = format!("{}/.wh.sentinel", target.climb());
    refused(
        &t,
        &target,
        "whiteout-climb",
        &tarball(&[file(&wh, b"")]),
        &[&format!("{wh:?} escapes the rootfs")],
    );
    refused(
        &t,
        &target,
        "whiteout-dotdot",
        &tarball(&[dir("a"), file("a/.wh..", b"")]),
        &["\"a/.wh..\" is a whiteout of an invalid name"],
    );
    refused(
        &t,
        &target,
        "whiteout-through-symlink",
        &tarball(&[symlink("lnk", &target.abs()), file("lnk/.wh.sentinel", b"")]),
        &["\"lnk/.wh.sentinel\""],
    );

    // Device nodes placed outside.
    let node = format!("{}/mem", target.climb());
    refused(
        &t,
        &target,
        "device-climb",
        &tarball(&[chardev(&node, 1, 1)]),
        &[&format!("{node:?} escapes the rootfs")],
    );
    refused(
        &t,
        &target,
        "device-through-symlink",
        &tarball(&[symlink("dev", &target.abs()), chardev("dev/mem", 1, 1)]),
        &["\"dev/mem\" has a parent that is a symlink"],
    );
    t.assert_clean();
}

/// Imports `tar`, which must succeed with its hostile-looking entries confined: the target is
/// untouched and the new snapshot holds the target's path, with "pwned\n" in its sentinel.
fn confined(t: &TestRoot, target: &Target, case: &str, tar: &[u8]) {
    let snapshots = || -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(t.root().join("snapshots"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    let before = snapshots();
    let dir = tempfile::Builder::new()
        .prefix("hostile-")
        .tempdir_in(scratch_dir())
        .unwrap();
    let path = dir.path().join(format!("{case}.tar"));
    std::fs::write(&path, tar).unwrap();
    ok(t, &["import", path.to_str().unwrap(), case]);
    target.assert_untouched(case);
    let new: Vec<PathBuf> = snapshots()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(new.len(), 1, "{case}: {new:?}");
    let inside = new[0]
        .join("fs")
        .join(target.abs().trim_start_matches('/'))
        .join("sentinel");
    assert_eq!(
        std::fs::read_to_string(&inside).unwrap(),
        "pwned\n",
        "{case}"
    );
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn absolute_paths_and_links_to_the_root_stay_inside_the_image() {
    // As in Docker's unpacker, "/x" means "x" under the rootfs, and a symlink to "/" (or one that
    // climbs with "..") resolves to the rootfs itself: writes through them land inside the image.
    let t = TestRoot::new();
    let target = Target::new();
    let abs = format!("{}/sentinel", target.abs());
    confined(&t, &target, "absolute", &tarball(&[file(&abs, b"pwned\n")]));
    confined(
        &t,
        &target,
        "symlink-root",
        &tarball(&[
            symlink("evil", "/"),
            file(&format!("evil{abs}"), b"pwned\n"),
        ]),
    );
    confined(
        &t,
        &target,
        "symlink-climb",
        &tarball(&[
            symlink("up", &"../".repeat(12)),
            file(&format!("up{abs}"), b"pwned\n"),
        ]),
    );
    // Each import made an image of its own.
    assert_eq!(ok(&t, &["images", "-q"]).lines().count(), 3);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn malformed_input_is_refused_with_125() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let target = Target::new();
    let dir = tempfile::Builder::new()
        .prefix("malformed-")
        .tempdir_in(scratch_dir())
        .unwrap();
    let zst = dir.path().join("bb.tar.zst");
    let st = Command::new("zstd")
        .arg("-q")
        .arg("-o")
        .arg(&zst)
        .arg(busybox_tar())
        .status()
        .unwrap();
    assert!(st.success(), "zstd failed");
    let zbytes = std::fs::read(&zst).unwrap();
    let mut random = vec![0u8; 64 * 1024];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in random.iter_mut() {
        // xorshift: incompressible bytes without a dependency.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    for (case, bytes, expect) in [
        ("empty", Vec::new(), "the input is empty"),
        ("random", random, "tarball layer is not a tar stream"),
        (
            "truncated-zstd",
            zbytes[..zbytes.len() / 2].to_vec(),
            "tarball layer is not a tar stream",
        ),
        (
            "truncated-tar",
            std::fs::read(busybox_tar()).unwrap()[..700_000].to_vec(),
            "tarball layer is not a tar stream",
        ),
    ] {
        refused(&t, &target, case, &bytes, &[expect]);
    }
    // The intact zstd tarball imports to the same image content as the plain one.
    ok(&t, &["import", zst.to_str().unwrap(), "zbb"]);
    let layers = |name: &str| {
        let v: serde_json::Value =
            serde_json::from_str(&ok(&t, &["image", "inspect", name])).unwrap();
        v[0]["RootFS"]["Layers"].clone()
    };
    assert_eq!(layers("zbb"), layers("bb"));
}

/// The image's busybox as stored in its snapshot.
fn snapshot_busybox(t: &TestRoot) -> PathBuf {
    let snaps: Vec<PathBuf> = std::fs::read_dir(t.root().join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    snaps[0].join("fs/bin/busybox")
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn a_container_cannot_change_its_image_layers() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let host = std::fs::read(
        ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap(),
    )
    .unwrap();
    let in_snapshot = snapshot_busybox(&t);
    assert_eq!(std::fs::read(&in_snapshot).unwrap(), host);
    // Run a copy, so /bin/busybox itself is not busy, and append to /bin/busybox.
    let out = ok(
        &t,
        &[
            "run",
            "--name",
            "writer",
            "bb",
            "sh",
            "-c",
            "cp /bin/busybox /tmp/busybox && exec /tmp/busybox sh -c \
             'echo tampered >> /bin/busybox && /tmp/busybox tail -c 9 /bin/busybox'",
        ],
    );
    assert_eq!(out, "tampered\n");
    // The next container sees the image's busybox, byte for byte.
    let sum = |data: &[u8]| {
        let out = Command::new("sh")
            .arg("-c")
            .arg("md5sum | cut -d' ' -f1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(data)?;
                c.wait_with_output()
            })
            .unwrap();
        stdout(&out)
    };
    let seen = ok(
        &t,
        &[
            "run",
            "--rm",
            "bb",
            "sh",
            "-c",
            "md5sum /bin/busybox | cut -d' ' -f1",
        ],
    );
    assert_eq!(seen, sum(&host));
    assert_eq!(std::fs::read(&in_snapshot).unwrap(), host);
    ok(&t, &["rm", "writer"]);
    t.assert_clean();
}
