//! Recording images in the metadata: the one place that adds image records and points names at
//! them, for pull (`add_image`), `import` and `load` alike. It runs last, after the images'
//! blobs and snapshots are in place, and rewrites `index.json` under the metadata's lock.

use crate::error::Result;
use crate::layout;
use crate::meta::{ImageRecord, MetaState};
use crate::parts::Parts;
use berth_oci::{Digest, Reference};

/// An image to record: its id (config digest), its record, and the names to point at it.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub id: Digest,
    pub record: ImageRecord,
    pub refs: Vec<Reference>,
}

/// Records `images` in one metadata transaction and returns the new state. An image already
/// recorded keeps its record (its first `added` time among them) and gains the new record's
/// sources and index digests; every name is pointed at its image, moving it from another.
pub(crate) fn record_images(parts: &Parts, images: &[Recorded]) -> Result<MetaState> {
    let root = parts.root().to_path_buf();
    parts.meta().update(
        |s| {
            for img in images {
                let entry = s
                    .images
                    .entry(img.id.clone())
                    .or_insert_with(|| img.record.clone());
                for src in &img.record.sources {
                    if !entry.sources.contains(src) {
                        entry.sources.push(src.clone());
                    }
                }
                for d in &img.record.index_digests {
                    if !entry.index_digests.contains(d) {
                        entry.index_digests.push(d.clone());
                    }
                }
                for r in &img.refs {
                    s.tags.insert(r.clone(), img.id.clone());
                }
            }
            Ok(s.clone())
        },
        |s| layout::write_index(&root, s),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::LayerRecord;

    fn record(source: &str, index: Option<Digest>, added: &str) -> ImageRecord {
        let d = Digest::of(b"layer");
        ImageRecord {
            manifest_digest: Digest::of(b"manifest"),
            manifest_media_type: "m".into(),
            manifest_size: 1,
            config_size: 2,
            layers: vec![LayerRecord {
                digest: d.clone(),
                diff_id: d.clone(),
                chain_id: d,
                size: 3,
                unpacked_size: 4,
                content_size: 4,
                media_type: "l".into(),
            }],
            created: None,
            added: added.into(),
            sources: vec![source.into()],
            index_digests: index.into_iter().collect(),
        }
    }

    #[test]
    fn recording_again_merges_sources_and_moves_names() {
        let t = tempfile::tempdir().unwrap();
        let parts = Parts::open(t.path()).unwrap();
        let (a, b) = (Digest::of(b"config a"), Digest::of(b"config b"));
        let name = Reference::parse("team/app:v1").unwrap();
        let first = Recorded {
            id: a.clone(),
            record: record("h/one", None, "2026-01-01T00:00:00Z"),
            refs: vec![name.clone()],
        };
        record_images(&parts, &[first]).unwrap();
        let again = Recorded {
            id: a.clone(),
            record: record("h/two", Some(Digest::of(b"index")), "2026-02-02T00:00:00Z"),
            refs: Vec::new(),
        };
        let other = Recorded {
            id: b.clone(),
            record: record("h/one", None, "2026-02-02T00:00:00Z"),
            refs: vec![name.clone()],
        };
        let state = record_images(&parts, &[again, other]).unwrap();
        let rec = &state.images[&a];
        assert_eq!(rec.sources, vec!["h/one".to_owned(), "h/two".to_owned()]);
        assert_eq!(rec.index_digests, vec![Digest::of(b"index")]);
        assert_eq!(rec.added, "2026-01-01T00:00:00Z");
        assert_eq!(state.tags[&name], b);
        assert_eq!(parts.meta().read().unwrap(), state);
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(t.path().join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
    }
}
