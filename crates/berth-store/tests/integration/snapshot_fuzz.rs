//! Fuzz-style property: random sequences of tar entries (files, directories, symlinks, hard
//! links, device nodes, whiteouts) with hostile names and link targets never write outside the
//! snapshot, never link to a file outside it, and leave nothing behind when refused.

use berth_oci::Digest;
use berth_store::snapshot::{Snapshots, chain_id};
use proptest::prelude::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use tar::{EntryType, Header};

const COMPONENTS: &[&str] = &[
    "a",
    "b",
    "c",
    "..",
    ".",
    "",
    ".wh.a",
    ".wh.b",
    ".wh..wh..opq",
    ".wh..",
    "sentinel",
];
/// `@OUT` is replaced by the sandbox's absolute `outside` directory.
const TARGETS: &[&str] = &[
    "a",
    "a/b",
    "b/c",
    "..",
    "../..",
    "/",
    "/a",
    "../../outside/sentinel",
    "@OUT",
    "@OUT/sentinel",
    "@OUT/new",
    "b/../../..",
    "c",
];
const KINDS: &[EntryType] = &[
    EntryType::Regular,
    EntryType::Directory,
    EntryType::Symlink,
    EntryType::Link,
    EntryType::Char,
    EntryType::Fifo,
];

#[derive(Debug, Clone)]
struct Op {
    kind: usize,
    absolute: bool,
    path: Vec<usize>,
    target: usize,
}

fn op() -> impl Strategy<Value = Op> {
    (
        0..KINDS.len(),
        any::<bool>(),
        proptest::collection::vec(0..COMPONENTS.len(), 1..5),
        0..TARGETS.len(),
    )
        .prop_map(|(kind, absolute, path, target)| Op {
            kind,
            absolute,
            path,
            target,
        })
}

fn build(ops: &[Op], out: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for op in ops {
        let kind = KINDS[op.kind];
        let mut name = op
            .path
            .iter()
            .map(|i| COMPONENTS[*i])
            .collect::<Vec<_>>()
            .join("/");
        if op.absolute {
            name.insert(0, '/');
        }
        let target = TARGETS[op.target].replace("@OUT", out);
        let data: &[u8] = if kind == EntryType::Regular {
            b"data"
        } else {
            b""
        };
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o755);
        h.set_mtime(1);
        h.set_uid(0);
        h.set_gid(0);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        if matches!(kind, EntryType::Symlink | EntryType::Link) {
            old.linkname[..target.len()].copy_from_slice(target.as_bytes());
        }
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_layers_never_escape(ops in proptest::collection::vec(op(), 1..14)) {
        let sb = tempfile::tempdir().unwrap();
        let outside = sb.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::create_dir(sb.path().join("snapshots")).unwrap();
        let sentinel = outside.join("sentinel");
        fs::write(&sentinel, b"keep").unwrap();
        // The tempdir path is short enough for a 100-byte tar name field.
        let bytes = build(&ops, &outside.display().to_string());
        let diff = Digest::of(&bytes);
        let snaps = Snapshots::new(sb.path().join("snapshots")).without_sync();
        let result = snaps.unpack(&chain_id(None, &diff), &diff, &bytes[..]);

        let listing: Vec<_> = fs::read_dir(&outside).unwrap().map(|e| e.unwrap().file_name()).collect();
        prop_assert_eq!(listing, vec![std::ffi::OsString::from("sentinel")]);
        let m = fs::metadata(&sentinel).unwrap();
        prop_assert_eq!(m.nlink(), 1, "a hard link to a file outside was made");
        prop_assert_eq!(fs::read(&sentinel).unwrap(), b"keep");
        let mut top: Vec<_> = fs::read_dir(sb.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        top.sort();
        prop_assert_eq!(top, vec![std::ffi::OsString::from("outside"), "snapshots".into()]);
        let published: Vec<_> = fs::read_dir(sb.path().join("snapshots")).unwrap().map(|e| e.unwrap().file_name()).collect();
        match result {
            Ok(_) => prop_assert_eq!(published, vec![std::ffi::OsString::from(diff.hex())]),
            Err(e) => {
                prop_assert!(published.is_empty(), "refused layer left {published:?}");
                prop_assert!(e.to_string().contains("entry"), "error does not name an entry: {e}");
            }
        }
    }
}
