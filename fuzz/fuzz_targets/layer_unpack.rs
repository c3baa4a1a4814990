//! Structured layer tars with hostile names, links and types, unpacked by
//! `Snapshots::unpack_base` into a sandbox: never panics, never touches anything outside the
//! snapshot dir, leaves only published snapshots behind.
#![no_main]

use berth_fuzz::{Layer, Sandbox};
use berth_store::snapshot::Snapshots;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|layer: Layer| {
    let sb = Sandbox::new();
    let tar = layer.render(&sb.parent_str());
    let snaps = Snapshots::new(sb.work()).without_sync();
    let result = snaps.unpack_base(&tar[..]);
    sb.check();
    let left = snaps.list().expect("list snapshots");
    match result {
        Ok((diff_id, _)) => {
            assert_eq!(diff_id, berth_oci::Digest::of(&tar));
            assert_eq!(left, vec![diff_id.clone()]);
            assert!(snaps.exists(&diff_id));
        }
        Err(_) => assert!(left.is_empty(), "a failed unpack published {left:?}"),
    }
    let names: Vec<_> = std::fs::read_dir(sb.work())
        .expect("list work")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(names.len() == left.len(), "leftovers in the snapshot dir: {names:?}");
});
