//! Arbitrary bytes as a layer, through `Snapshots::unpack` (diff ID checked) and
//! `unpack_base`: never panics, never touches anything outside the snapshot dir.
#![no_main]

use berth_fuzz::Sandbox;
use berth_oci::Digest;
use berth_store::snapshot::{Snapshots, chain_id};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let sb = Sandbox::new();
    let snaps = Snapshots::new(sb.work()).without_sync();
    let diff_id = Digest::of(data);
    let chain = chain_id(Some(&Digest::of(b"parent")), &diff_id);
    let first = snaps.unpack(&chain, &diff_id, data);
    sb.check();
    let base = snaps.unpack_base(data);
    sb.check();
    // The same bytes must be judged the same way both times (an empty stream is refused
    // only where the diff ID is not known in advance).
    if data.is_empty() {
        return;
    }
    assert_eq!(first.is_ok(), base.is_ok(), "{first:?} vs {base:?}");
    let left = snaps.list().expect("list snapshots");
    let expected = if first.is_ok() { 2 } else { 0 };
    assert_eq!(left.len(), expected, "snapshots left: {left:?}");
});
