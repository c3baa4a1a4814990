//! Snapshot unpacking on real files: metadata, hostile layers, whiteouts under a real overlay
//! mount, diff-ID verification, concurrency and crash leftovers. Layers are owned by whoever runs
//! the tests; the tests that need root (other owners, device nodes, trusted xattrs, overlay) are
//! in the e2e tier.

use berth_oci::Digest;
use berth_store::snapshot::{Snapshots, chain_id, decompress};
use std::ffi::CString;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tar::{EntryType, Header};

/// A temp sandbox: `snapshots/` for the store and an empty `outside/` that must stay empty.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("snapshots")).unwrap();
        fs::create_dir(dir.path().join("outside")).unwrap();
        Sandbox { dir }
    }
    fn snaps(&self) -> Snapshots {
        Snapshots::new(self.dir.path().join("snapshots")).without_sync()
    }
    fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }
    /// Nothing appeared outside the snapshot directory, nor next to it.
    fn assert_confined(&self) {
        let outside: Vec<_> = fs::read_dir(self.outside()).unwrap().collect();
        assert!(outside.is_empty(), "written outside: {outside:?}");
        let mut top: Vec<_> = fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        top.sort();
        assert_eq!(top, ["outside", "snapshots"]);
    }
    /// No snapshot and no temp leftovers.
    fn assert_empty(&self) {
        let left: Vec<_> = fs::read_dir(self.dir.path().join("snapshots"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

/// Builds a layer tar. Hostile names go through raw headers, which `tar::Builder` would refuse.
struct Layer {
    b: tar::Builder<Vec<u8>>,
}

fn header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    // Owned by whoever runs the test (root in the e2e tier): only root may give files away.
    h.set_uid(rustix::process::geteuid().as_raw().into());
    h.set_gid(rustix::process::getegid().as_raw().into());
    h.set_mtime(1_600_000_000);
    h
}

impl Layer {
    fn new() -> Layer {
        Layer {
            b: tar::Builder::new(Vec::new()),
        }
    }
    /// Appends an entry with the name and link written byte for byte (at most 100 each).
    fn raw(&mut self, mut h: Header, name: &str, link: &str, data: &[u8]) -> &mut Self {
        let old = h.as_old_mut();
        old.name = [0; 100];
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname = [0; 100];
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }
    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.raw(header(EntryType::Regular, 0o644, 0), name, "", data)
    }
    fn dir(&mut self, name: &str) -> &mut Self {
        self.raw(header(EntryType::Directory, 0o755, 0), name, "", b"")
    }
    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(header(EntryType::Symlink, 0o777, 0), name, target, b"")
    }
    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(header(EntryType::Link, 0o644, 0), name, target, b"")
    }
    fn chardev(&mut self, name: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = header(EntryType::Char, 0o666, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.raw(h, name, "", b"")
    }
    /// A PAX extended header applying to the next entry.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut body = Vec::new();
        for (k, v) in records {
            let rest = 1 + k.len() + 1 + v.len() + 1;
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            body.extend(format!("{len} {k}=").bytes());
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        self.raw(header(EntryType::XHeader, 0o644, 0), "PaxHeader", "", &body)
    }
    fn finish(&mut self) -> (Vec<u8>, Digest) {
        let b = std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()));
        let bytes = b.into_inner().unwrap();
        let d = Digest::of(&bytes);
        (bytes, d)
    }
}

fn unpack(sb: &Sandbox, layer: &mut Layer) -> Result<PathBuf, String> {
    let (bytes, diff) = layer.finish();
    let chain = chain_id(None, &diff);
    sb.snaps()
        .unpack(&chain, &diff, &bytes[..])
        .map_err(|e| e.to_string())?;
    Ok(sb.snaps().fs_path(&chain))
}

#[track_caller]
fn refused(sb: &Sandbox, layer: &mut Layer, expect: &str) {
    let err = unpack(sb, layer).expect_err("a hostile layer was accepted");
    assert!(
        err.contains(expect),
        "error {err:?} does not contain {expect:?}"
    );
    sb.assert_confined();
    sb.assert_empty();
}

fn lmeta(p: &Path) -> fs::Metadata {
    fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn getxattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    match rustix::fs::lgetxattr(p, name, &mut buf) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => None,
    }
}

#[test]
// Root: sets other owners and makes device nodes.
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn normal_layer_all_types_and_metadata() {
    let sb = Sandbox::new();
    let mut l = Layer::new();
    l.raw(header(EntryType::Directory, 0o755, 0), "./", "", b"");
    let mut h = header(EntryType::Directory, 0o750, 0);
    h.set_mtime(1_500_000_000);
    l.raw(h, "./etc/", "", b"");
    let mut h = header(EntryType::Regular, 0o640, 0);
    h.set_uid(1000);
    h.set_gid(1001);
    l.raw(h, "./etc/passwd", "", b"root:x:0:0\n");
    l.dir("bin");
    l.pax(&[
        ("SCHILY.xattr.user.note", b"hi"),
        ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
        ("mtime", b"1600000000.25"),
    ]);
    l.raw(
        header(EntryType::Regular, 0o4755, 0),
        "bin/busybox",
        "",
        b"\x7fELF busybox",
    );
    l.hardlink("bin/ls", "bin/busybox");
    let mut h = header(EntryType::Symlink, 0o777, 0);
    h.set_uid(5);
    h.set_gid(6);
    l.raw(h, "bin/sh", "busybox", b"");
    l.raw(header(EntryType::Directory, 0o1777, 0), "tmp", "", b"");
    l.chardev("dev/null", 1, 3);
    let mut h = header(EntryType::Block, 0o660, 0);
    h.set_device_major(7).unwrap();
    h.set_device_minor(0).unwrap();
    l.raw(h, "dev/loop0", "", b"");
    l.raw(header(EntryType::Fifo, 0o600, 0), "run/fifo", "", b"");
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    l.file("usr/lib/big", &big);

    let (bytes, diff) = l.finish();
    let chain = chain_id(None, &diff);
    let stats = sb.snaps().unpack(&chain, &diff, &bytes[..]).unwrap();
    assert!(!stats.reused);
    assert_eq!(stats.bytes, bytes.len() as u64);
    assert_eq!(stats.entries, 12);
    assert!(sb.snaps().exists(&chain));
    assert_eq!(sb.snaps().list().unwrap(), vec![chain.clone()]);
    let fs_dir = sb.snaps().fs_path(&chain);
    assert_eq!(
        fs_dir,
        sb.dir.path().join("snapshots").join(chain.hex()).join("fs")
    );

    let m = lmeta(&fs_dir.join("etc"));
    assert!(m.is_dir());
    assert_eq!(m.mode() & 0o7777, 0o750);
    assert_eq!(
        m.mtime(),
        1_500_000_000,
        "directory mtime is set after its contents"
    );
    let m = lmeta(&fs_dir.join("etc/passwd"));
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o7777, m.mtime()),
        (1000, 1001, 0o640, 1_600_000_000)
    );
    assert_eq!(
        fs::read(fs_dir.join("etc/passwd")).unwrap(),
        b"root:x:0:0\n"
    );

    let m = lmeta(&fs_dir.join("bin/busybox"));
    assert_eq!(m.mode() & 0o7777, 0o4755, "setuid survives chown");
    assert_eq!(
        (m.mtime(), m.mtime_nsec()),
        (1_600_000_000, 250_000_000),
        "PAX mtime precision"
    );
    assert_eq!(
        getxattr(&fs_dir.join("bin/busybox"), "user.note").as_deref(),
        Some(&b"hi"[..])
    );
    assert_eq!(
        getxattr(&fs_dir.join("bin/busybox"), "trusted.overlay.redirect"),
        None,
        "overlay xattrs are not taken from layers"
    );
    assert_eq!(lmeta(&fs_dir.join("bin/ls")).ino(), m.ino());
    assert_eq!(m.nlink(), 2);

    let m = lmeta(&fs_dir.join("bin/sh"));
    assert!(m.file_type().is_symlink());
    assert_eq!((m.uid(), m.gid()), (5, 6));
    assert_eq!(
        fs::read_link(fs_dir.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );

    assert_eq!(lmeta(&fs_dir.join("tmp")).mode() & 0o7777, 0o1777);
    let m = lmeta(&fs_dir.join("dev/null"));
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), rustix::fs::makedev(1, 3));
    let m = lmeta(&fs_dir.join("dev/loop0"));
    assert!(m.file_type().is_block_device());
    assert_eq!(
        (m.rdev(), m.mode() & 0o7777),
        (rustix::fs::makedev(7, 0), 0o660)
    );
    assert!(lmeta(&fs_dir.join("run/fifo")).file_type().is_fifo());
    assert_eq!(
        lmeta(&fs_dir.join("run")).mode() & 0o7777,
        0o755,
        "implicit parents are 0755"
    );
    assert_eq!(fs::read(fs_dir.join("usr/lib/big")).unwrap(), big);
    sb.assert_confined();
}

#[test]
fn dotdot_is_refused() {
    let sb = Sandbox::new();
    refused(
        &sb,
        Layer::new().dir("etc").file("../../etc/passwd", b"x"),
        "layer entry \"../../etc/passwd\" escapes the rootfs",
    );
    refused(
        &sb,
        Layer::new().file("a/../../passwd", b"x"),
        "\"a/../../passwd\" escapes the rootfs",
    );
    // The same through a PAX path and a GNU long name, which override the header's name.
    refused(
        &sb,
        Layer::new()
            .pax(&[("path", b"../../etc/shadow")])
            .file("harmless", b"x"),
        "layer entry \"../../etc/shadow\" escapes the rootfs",
    );
    let long = format!("{}/{}", "../".repeat(40), "etc/gnu");
    refused(
        &sb,
        Layer::new()
            .raw(
                header(EntryType::GNULongName, 0o644, 0),
                "././@LongLink",
                "",
                long.as_bytes(),
            )
            .file("harmless", b"x"),
        &format!("layer entry {long:?} escapes the rootfs"),
    );
    refused(
        &sb,
        Layer::new()
            .file("f", b"f")
            .pax(&[("linkpath", b"../../../etc/passwd")])
            .hardlink("h", "f"),
        "is a hard link to \"../../../etc/passwd\", outside the rootfs",
    );
}

#[test]
fn absolute_paths_are_confined() {
    let sb = Sandbox::new();
    let abs = format!("{}/pwned", sb.outside().display());
    let fs_dir = unpack(&sb, Layer::new().file(&abs, b"x")).unwrap();
    assert_eq!(
        fs::read(fs_dir.join(abs.trim_start_matches('/'))).unwrap(),
        b"x"
    );
    sb.assert_confined();
}

#[test]
fn symlink_then_write_through() {
    let sb = Sandbox::new();
    let out = sb.outside().display().to_string();
    refused(
        &sb,
        Layer::new().symlink("evil", &out).file("evil/pwned", b"x"),
        "layer entry \"evil/pwned\" has a parent that is a symlink to a missing directory",
    );
    // A relative climb through a symlink lands on the snapshot's own root.
    let fs_dir = unpack(
        &sb,
        Layer::new()
            .symlink("up", "../../../../../../../..")
            .file("up/pwned", b"x"),
    )
    .unwrap();
    assert_eq!(fs::read(fs_dir.join("pwned")).unwrap(), b"x");
    // A symlink as the final component is replaced, never written through.
    let sb = Sandbox::new();
    let target = format!("{out}/target");
    let fs_dir = unpack(
        &sb,
        Layer::new().symlink("link", &target).file("link", b"y"),
    )
    .unwrap();
    assert!(lmeta(&fs_dir.join("link")).is_file());
    sb.assert_confined();
}

#[test]
fn symlink_dir_chain() {
    let sb = Sandbox::new();
    let fs_dir = unpack(
        &sb,
        Layer::new()
            .dir("c")
            .symlink("a", "b")
            .symlink("b", "c/../../../..")
            .file("a/x", b"x")
            .file("a/c/y", b"y"),
    )
    .unwrap();
    assert_eq!(fs::read(fs_dir.join("x")).unwrap(), b"x");
    assert_eq!(fs::read(fs_dir.join("c/y")).unwrap(), b"y");
    sb.assert_confined();
    let sb = Sandbox::new();
    let out = sb.outside().display().to_string();
    refused(
        &sb,
        Layer::new()
            .symlink("l1", "l2")
            .symlink("l2", &out)
            .file("l1/f", b"x"),
        "\"l1/f\" has a parent that is a symlink",
    );
}

#[test]
fn hardlinks_out_are_refused() {
    let sb = Sandbox::new();
    refused(
        &sb,
        Layer::new().hardlink("h", "../../etc/passwd"),
        "layer entry \"h\" is a hard link to \"../../etc/passwd\", outside the rootfs",
    );
    refused(
        &sb,
        Layer::new().hardlink("h", "/etc/passwd"),
        "layer entry \"h\" is a hard link to a missing file",
    );
    refused(
        &sb,
        Layer::new().symlink("d", "/etc").hardlink("h", "d/passwd"),
        "\"h\" is a hard link to a missing file",
    );
    refused(
        &sb,
        Layer::new().dir("d").hardlink("h", "d"),
        "\"h\" is a hard link to a directory",
    );
    refused(
        &sb,
        Layer::new().hardlink("h", "/"),
        "\"h\" is a hard link to a directory",
    );
}

#[test]
fn hardlink_to_symlink_links_the_symlink() {
    let sb = Sandbox::new();
    let fs_dir = unpack(
        &sb,
        Layer::new().symlink("s", "/etc/passwd").hardlink("h", "s"),
    )
    .unwrap();
    let m = lmeta(&fs_dir.join("h"));
    assert!(m.file_type().is_symlink());
    assert_eq!(m.ino(), lmeta(&fs_dir.join("s")).ino());
    assert_ne!(m.ino(), lmeta(Path::new("/etc/passwd")).ino());
    sb.assert_confined();
}

#[test]
fn whiteouts_that_climb_out_are_refused() {
    let sb = Sandbox::new();
    refused(
        &sb,
        Layer::new().file("../.wh.passwd", b""),
        "\"../.wh.passwd\" escapes the rootfs",
    );
    refused(
        &sb,
        Layer::new().dir("a").file("a/.wh..", b""),
        "\"a/.wh..\" is a whiteout of an invalid name",
    );
    refused(
        &sb,
        Layer::new().file(".wh...", b""),
        "\".wh...\" is a whiteout of an invalid name",
    );
    refused(
        &sb,
        Layer::new().file("a/.wh.", b""),
        "\"a/.wh.\" is a whiteout of an invalid name",
    );
}

#[test]
fn device_nodes_escaping_are_refused() {
    let sb = Sandbox::new();
    refused(
        &sb,
        Layer::new().chardev("../../dev/evil", 1, 3),
        "\"../../dev/evil\" escapes the rootfs",
    );
    let out = sb.outside().display().to_string();
    refused(
        &sb,
        Layer::new().symlink("dev", &out).chardev("dev/null", 1, 3),
        "\"dev/null\" has a parent that is a symlink",
    );
}

#[test]
fn very_long_names_are_refused_cleanly() {
    let sb = Sandbox::new();
    let long = "n".repeat(300);
    let mut l = Layer::new();
    let mut h = header(EntryType::Regular, 0o644, 1);
    l.b.append_data(&mut h, &long, &b"x"[..]).unwrap();
    let err = unpack(&sb, &mut l).unwrap_err();
    assert!(
        err.contains(&long) && err.contains("name too long"),
        "{err}"
    );
    sb.assert_confined();
    sb.assert_empty();

    let deep = vec!["d".repeat(200); 25].join("/") + "/f";
    let mut l = Layer::new();
    let mut h = header(EntryType::Regular, 0o644, 1);
    l.b.append_data(&mut h, &deep, &b"x"[..]).unwrap();
    let err = unpack(&sb, &mut l).unwrap_err();
    assert!(err.contains(&deep), "{err}");
    sb.assert_confined();
    sb.assert_empty();
}

#[test]
fn nul_and_unknown_types_are_refused() {
    let sb = Sandbox::new();
    let mut l = Layer::new();
    l.pax(&[("path", b"a\0b")]).file("x", b"");
    let err = unpack(&sb, &mut l).unwrap_err();
    assert!(err.contains("has a NUL byte in its path"), "{err}");
    refused(
        &sb,
        Layer::new().raw(header(EntryType::new(b'Z'), 0o644, 0), "odd", "", b""),
        "\"odd\" has an unsupported type 'Z'",
    );
}

/// Mounts a read-only overlay of `lowers` (topmost first) and unmounts it on drop.
struct Overlay(PathBuf);

impl Overlay {
    fn mount(lowers: &[&Path], at: &Path) -> Overlay {
        let opts = format!(
            "lowerdir={}",
            lowers
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(":")
        );
        let data = CString::new(opts).unwrap();
        rustix::mount::mount(
            "overlay",
            at,
            "overlay",
            rustix::mount::MountFlags::RDONLY,
            data.as_c_str(),
        )
        .unwrap();
        Overlay(at.to_path_buf())
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH).unwrap();
    }
}

#[test]
// Root: mounts overlay.
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn whiteouts_hide_lower_files_in_a_real_overlay() {
    let sb = Sandbox::new();
    let lower = unpack(
        &sb,
        Layer::new()
            .dir("a")
            .file("a/keep", b"k")
            .file("a/gone", b"g")
            .file("top-gone", b"t")
            .dir("o")
            .file("o/lower", b"l"),
    )
    .unwrap();
    let upper = unpack(
        &sb,
        Layer::new()
            .file(".wh.top-gone", b"")
            .file("a/.wh.gone", b"")
            .file("o/.wh..wh..opq", b"")
            .file("o/new", b"n"),
    )
    .unwrap();
    let m = lmeta(&upper.join("top-gone"));
    assert!(m.file_type().is_char_device() && m.rdev() == 0);
    assert!(lmeta(&upper.join("a/gone")).file_type().is_char_device());
    assert_eq!(
        getxattr(&upper.join("o"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!upper.join("o/.wh..wh..opq").exists());

    let mnt = sb.dir.path().join("snapshots").join("mnt");
    fs::create_dir(&mnt).unwrap();
    {
        let _m = Overlay::mount(&[&upper, &lower], &mnt);
        assert_eq!(fs::read(mnt.join("a/keep")).unwrap(), b"k");
        assert!(!mnt.join("a/gone").exists());
        assert!(!mnt.join("top-gone").exists());
        assert!(!mnt.join("o/lower").exists());
        assert_eq!(fs::read(mnt.join("o/new")).unwrap(), b"n");
    }
    fs::remove_dir(&mnt).unwrap();
    sb.assert_confined();
}

#[test]
// Root: makes overlay whiteouts (0:0 device nodes, trusted.overlay.opaque).
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn whiteout_and_real_entry_in_one_layer() {
    let sb = Sandbox::new();
    let fs_dir = unpack(
        &sb,
        Layer::new()
            .file(".wh.f", b"")
            .file("f", b"after")
            .file("g", b"before")
            .file(".wh.g", b"")
            .file(".wh.d", b"")
            .dir("d")
            .dir("e")
            .file(".wh.e", b"")
            .file(".wh.w", b"")
            .file(".wh.w", b""),
    )
    .unwrap();
    assert_eq!(fs::read(fs_dir.join("f")).unwrap(), b"after");
    assert_eq!(fs::read(fs_dir.join("g")).unwrap(), b"before");
    for d in ["d", "e"] {
        assert!(lmeta(&fs_dir.join(d)).is_dir());
        assert_eq!(
            getxattr(&fs_dir.join(d), "trusted.overlay.opaque").as_deref(),
            Some(&b"y"[..]),
            "{d}"
        );
    }
    assert!(lmeta(&fs_dir.join("w")).file_type().is_char_device());
    sb.assert_confined();
}

#[test]
fn replacing_entries_follows_docker() {
    let sb = Sandbox::new();
    let fs_dir = unpack(
        &sb,
        Layer::new()
            .dir("x")
            .file("x/y", b"y")
            .file("x", b"file over dir")
            .file("f", b"f")
            .dir("f")
            .dir("k")
            .file("k/kept", b"kept")
            .raw(header(EntryType::Directory, 0o700, 0), "k", "", b"")
            .file("s", b"s")
            .symlink("s", "target")
            .file("twice", b"one")
            .file("twice", b"two"),
    )
    .unwrap();
    assert_eq!(fs::read(fs_dir.join("x")).unwrap(), b"file over dir");
    assert!(lmeta(&fs_dir.join("f")).is_dir());
    assert_eq!(fs::read(fs_dir.join("k/kept")).unwrap(), b"kept");
    assert_eq!(lmeta(&fs_dir.join("k")).mode() & 0o777, 0o700);
    assert!(lmeta(&fs_dir.join("s")).file_type().is_symlink());
    assert_eq!(fs::read(fs_dir.join("twice")).unwrap(), b"two");
    let snap = fs_dir.parent().unwrap();
    let mut inside: Vec<_> = fs::read_dir(snap)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    inside.sort();
    assert_eq!(inside, ["fs"], "the trash of replaced directories is gone");
    sb.assert_confined();
}

#[test]
fn diff_id_mismatch_leaves_no_snapshot() {
    let sb = Sandbox::new();
    let (bytes, diff) = Layer::new().file("a", b"a").finish();
    let wrong = Digest::of(b"something else");
    let err = sb
        .snaps()
        .unpack(&chain_id(None, &wrong), &wrong, &bytes[..])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("does not match its diff ID") && err.contains(&diff.to_string()),
        "{err}"
    );
    sb.assert_empty();
    // Bytes after the end-of-archive marker are part of the diff ID too.
    let mut padded = bytes.clone();
    padded.extend([0u8; 1024]);
    let err = sb
        .snaps()
        .unpack(&chain_id(None, &diff), &diff, &padded[..])
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not match its diff ID"), "{err}");
    sb.assert_empty();
}

/// Fails after `left` bytes, like a network stream cut off mid-layer.
struct Cut<'a> {
    data: &'a [u8],
    left: usize,
}

impl Read for Cut<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::other("connection reset"));
        }
        let n = buf.len().min(self.left).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        self.left -= n;
        Ok(n)
    }
}

#[test]
fn failed_stream_leaves_nothing() {
    let sb = Sandbox::new();
    let big = vec![7u8; 200_000];
    let (bytes, diff) = Layer::new()
        .file("a", b"a")
        .file("big", &big)
        .file("z", b"z")
        .finish();
    let err = sb
        .snaps()
        .unpack(
            &chain_id(None, &diff),
            &diff,
            Cut {
                data: &bytes,
                left: 100_000,
            },
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("connection reset"), "{err}");
    sb.assert_empty();
}

#[test]
fn concurrent_unpacks_publish_one_snapshot() {
    let sb = Sandbox::new();
    let files: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| (format!("d{}/f{i}", i % 7), vec![i as u8; 1000 + i]))
        .collect();
    let mut l = Layer::new();
    for (n, d) in &files {
        l.file(n, d);
    }
    let (bytes, diff) = l.finish();
    let chain = chain_id(Some(&Digest::of(b"parent")), &diff);
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    Snapshots::new(sb.dir.path().join("snapshots")).unpack(
                        &chain,
                        &diff,
                        &bytes[..],
                    )
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|r| !r.reused).count(), 1);
    assert_eq!(sb.snaps().list().unwrap(), vec![chain.clone()]);
    let names: Vec<_> = fs::read_dir(sb.dir.path().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [chain.hex()], "no temp directories left");
    let fs_dir = sb.snaps().fs_path(&chain);
    for (n, d) in &files {
        assert_eq!(&fs::read(fs_dir.join(n)).unwrap(), d);
    }
    // Unpacking an existing snapshot is a no-op.
    assert!(sb.snaps().unpack(&chain, &diff, &bytes[..]).unwrap().reused);
}

#[test]
fn clean_incomplete_removes_leftovers_but_not_running_unpacks() {
    let sb = Sandbox::new();
    let snaps = sb.snaps();
    let (bytes, diff) = Layer::new().file("a", b"a").finish();
    let chain = chain_id(None, &diff);
    snaps.unpack(&chain, &diff, &bytes[..]).unwrap();
    let dir = sb.dir.path().join("snapshots");
    for leftover in [".tmp-0123456789abcdef", ".del-0000000000000001"] {
        fs::create_dir_all(dir.join(leftover).join("fs/etc")).unwrap();
        fs::write(dir.join(leftover).join("fs/etc/x"), b"x").unwrap();
    }
    let busy = dir.join(".tmp-busy");
    fs::create_dir(&busy).unwrap();
    let lock = fs::File::open(&busy).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();

    snaps.clean_incomplete().unwrap();
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [".tmp-busy".to_string(), chain.hex().to_string()]);

    drop(lock);
    snaps.clean_incomplete().unwrap();
    assert_eq!(snaps.list().unwrap(), vec![chain.clone()]);
    assert!(!busy.exists());

    snaps.remove(&chain).unwrap();
    snaps.remove(&chain).unwrap();
    sb.assert_empty();
}

#[test]
fn compressed_layers_unpack_through_decompress() {
    let sb = Sandbox::new();
    let (bytes, diff) = Layer::new().file("etc/hostname", b"berth\n").finish();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bytes).unwrap();
    let gz = gz.finish().unwrap();
    let zs = zstd::encode_all(&bytes[..], 3).unwrap();
    for (i, blob) in [gz, zs, bytes.clone()].iter().enumerate() {
        let chain = chain_id(Some(&Digest::of(&[i as u8])), &diff);
        sb.snaps()
            .unpack(&chain, &diff, decompress(&blob[..]).unwrap())
            .unwrap();
        assert_eq!(
            fs::read(sb.snaps().fs_path(&chain).join("etc/hostname")).unwrap(),
            b"berth\n"
        );
    }
}

#[test]
// Root: writes into unwritable directories.
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn directory_permissions_preserved_even_when_unwritable() {
    let sb = Sandbox::new();
    let fs_dir = unpack(
        &sb,
        Layer::new()
            .raw(header(EntryType::Directory, 0o500, 0), "ro", "", b"")
            .file("ro/inside", b"i"),
    )
    .unwrap();
    assert_eq!(
        fs::metadata(fs_dir.join("ro"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o500
    );
    assert_eq!(fs::read(fs_dir.join("ro/inside")).unwrap(), b"i");
}

#[test]
// Root: sets owner 0.
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn blank_numeric_fields_read_as_zero_like_go() {
    let sb = Sandbox::new();
    let mut h = header(EntryType::Regular, 0o644, 0);
    h.as_old_mut().uid = [0; 8];
    h.as_old_mut().gid = [b' '; 8];
    let fs_dir = unpack(&sb, Layer::new().raw(h, "f", "", b"x")).unwrap();
    let m = lmeta(&fs_dir.join("f"));
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (0, 0, 0o644));
    let mut h = header(EntryType::Regular, 0o644, 0);
    h.as_old_mut().uid = *b"12x4567\0";
    let err = unpack(&sb, Layer::new().raw(h, "g", "", b"x")).unwrap_err();
    assert!(err.contains("after entry \"g\""), "{err}");
}

#[test]
fn replaced_parent_directory_is_resolved_again() {
    let sb = Sandbox::new();
    let fs_dir = unpack(
        &sb,
        Layer::new()
            .dir("d2")
            .file("d1/f", b"f")
            .symlink("d1", "d2")
            .file("d1/g", b"g")
            .file("d1/h", b"h"),
    )
    .unwrap();
    assert!(lmeta(&fs_dir.join("d1")).file_type().is_symlink());
    assert_eq!(fs::read(fs_dir.join("d2/g")).unwrap(), b"g");
    assert_eq!(fs::read(fs_dir.join("d2/h")).unwrap(), b"h");
    assert!(!fs_dir.join("d2/f").exists());
    sb.assert_confined();
}

#[test]
// Root: sets trusted.* xattrs and makes a device node.
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn xattrs_on_symlinks_and_nodes_are_set_without_following() {
    let sb = Sandbox::new();
    let mut l = Layer::new();
    l.file("target", b"t");
    l.pax(&[("SCHILY.xattr.trusted.berth", b"link")])
        .symlink("link", "target");
    l.pax(&[("SCHILY.xattr.trusted.berth", b"fifo")]);
    l.raw(header(EntryType::Fifo, 0o600, 0), "fifo", "", b"");
    l.pax(&[("SCHILY.xattr.trusted.berth", b"dev")])
        .chardev("null", 1, 3);
    let fs_dir = unpack(&sb, &mut l).unwrap();
    assert_eq!(
        getxattr(&fs_dir.join("link"), "trusted.berth").as_deref(),
        Some(&b"link"[..])
    );
    assert_eq!(
        getxattr(&fs_dir.join("target"), "trusted.berth"),
        None,
        "the symlink was not followed"
    );
    assert_eq!(
        getxattr(&fs_dir.join("fifo"), "trusted.berth").as_deref(),
        Some(&b"fifo"[..])
    );
    assert_eq!(
        getxattr(&fs_dir.join("null"), "trusted.berth").as_deref(),
        Some(&b"dev"[..])
    );
    // Failures other than "unsupported" are errors: user.* xattrs are not allowed on symlinks.
    let mut l = Layer::new();
    l.pax(&[("SCHILY.xattr.user.x", b"1")]).symlink("l", "t");
    let err = unpack(&sb, &mut l).unwrap_err();
    assert!(
        err.contains("setting extended attributes of layer entry \"l\""),
        "{err}"
    );
}

/// With this variable set, the test below is the child: it unpacks its stdin (which the parent
/// never finishes) until it is killed.
const CHILD_ENV: &str = "BERTH_SNAPSHOT_KILL_CHILD";

#[test]
fn kill_9_mid_unpack_leaves_a_usable_state() {
    if let Ok(root) = std::env::var(CHILD_ENV) {
        let diff = Digest::of(b"never reached");
        let _ = Snapshots::new(PathBuf::from(root)).unpack(&diff, &diff, io::stdin().lock());
        std::process::exit(0);
    }
    let sb = Sandbox::new();
    let files: Vec<(String, Vec<u8>)> = (0..50)
        .map(|i| (format!("d/f{i}"), vec![i as u8; 4096]))
        .collect();
    let mut l = Layer::new();
    for (n, d) in &files {
        l.file(n, d);
    }
    let (bytes, diff) = l.finish();
    let dir = sb.dir.path().join("snapshots");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "snapshot::kill_9_mid_unpack_leaves_a_usable_state",
            "--nocapture",
        ])
        .env(CHILD_ENV, &dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bytes[..bytes.len() / 2]).unwrap();
    stdin.flush().unwrap();
    // Wait until the child has written part of the tree, then kill it mid-layer.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let tmp = loop {
        let found = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.join("fs/d/f1").exists());
        if let Some(p) = found {
            break p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the child never started unpacking"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);

    let snaps = sb.snaps();
    assert!(snaps.list().unwrap().is_empty(), "nothing published");
    assert!(tmp.exists(), "the killed unpack left its temp dir");
    snaps.clean_incomplete().unwrap();
    sb.assert_empty();
    let chain = chain_id(None, &diff);
    snaps.unpack(&chain, &diff, &bytes[..]).unwrap();
    for (n, d) in &files {
        assert_eq!(&fs::read(snaps.fs_path(&chain).join(n)).unwrap(), d);
    }
    sb.assert_confined();
}
