//! Removing images and collecting garbage. Deletes go metadata → snapshots → blobs, so a kill
//! leaves unreferenced leftovers for the next collection (an `rmi` that deletes an image, or a
//! `prune`), never an image missing its parts.

use crate::error::{Error, Result};
use crate::fsutil::tree_size;
use crate::layout;
use crate::meta::{MetaState, resolve};
use crate::parts::Parts;
use berth_oci::{Digest, Reference};
use std::collections::{BTreeSet, HashSet};

/// What `prune` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Docker-style lines: "untagged: busybox:latest", "deleted: sha256:…".
    pub deleted: Vec<String>,
    /// Bytes freed (blobs and snapshots).
    pub reclaimed: u64,
}

/// What `system df` shows for images.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Number of images.
    pub images: usize,
    /// Images used by at least one container.
    pub active: usize,
    /// File content bytes of all distinct layers (as Docker counts image size).
    pub size: u64,
    /// Size of the layers no used image needs.
    pub reclaimable: u64,
}

/// Blobs and snapshots the images of a state need.
fn referenced(state: &MetaState) -> (HashSet<Digest>, HashSet<Digest>) {
    let mut blobs = HashSet::new();
    let mut chains = HashSet::new();
    for (id, rec) in &state.images {
        blobs.insert(id.clone());
        blobs.insert(rec.manifest_digest.clone());
        for l in &rec.layers {
            blobs.insert(l.digest.clone());
            chains.insert(l.chain_id.clone());
        }
    }
    (blobs, chains)
}

/// See [`Store::remove_image`](crate::Store::remove_image).
pub(crate) fn remove_image(
    parts: &Parts,
    name_or_id: &str,
    force: bool,
    in_use: &dyn Fn(&Digest) -> bool,
) -> Result<Vec<String>> {
    let _gc = parts.lock(true)?;
    let root = parts.root().to_path_buf();
    let (mut lines, deleted, state) = parts.meta().update(
        |s| {
            let id = resolve(s, name_or_id)?;
            let refs = s.refs_of(&id);
            let tag = Reference::parse(name_or_id)
                .ok()
                .filter(|r| s.tags.get(r) == Some(&id));
            let used = in_use(&id);
            let mut lines = Vec::new();
            let untag = |s: &mut MetaState, r: &Reference, lines: &mut Vec<String>| {
                s.tags.remove(r);
                lines.push(format!("Untagged: {}", r.familiar()));
            };
            let delete = match &tag {
                Some(r) if refs.len() > 1 => {
                    untag(s, r, &mut lines);
                    false
                }
                Some(r) => {
                    if used && !force {
                        return Err(Error::Conflict {
                            action: format!("remove repository reference {name_or_id:?}"),
                            reason: format!(
                                "container is using its referenced image {}",
                                id.short()
                            ),
                        });
                    }
                    untag(s, r, &mut lines);
                    !used
                }
                None => {
                    if refs.len() > 1 && !force {
                        return Err(Error::Conflict {
                            action: format!("delete {}", id.short()),
                            reason: "image is referenced in multiple repositories".into(),
                        });
                    }
                    if used && !force {
                        return Err(Error::Conflict {
                            action: format!("delete {}", id.short()),
                            reason: "image is being used by a container".into(),
                        });
                    }
                    for r in &refs {
                        untag(s, r, &mut lines);
                    }
                    !used
                }
            };
            if delete {
                s.images.remove(&id);
                lines.push(format!("Deleted: {id}"));
            }
            Ok((lines, delete, s.clone()))
        },
        |s| layout::write_index(&root, s),
    )?;
    if deleted {
        let (blobs, chains) = referenced(&state);
        let (snap_lines, _) = collect(parts, &blobs, &chains)?;
        lines.extend(snap_lines.into_iter().map(|d| format!("Deleted: {d}")));
    }
    Ok(lines)
}

/// Removes snapshots and blobs outside the given sets, and what killed writers and removals
/// left (temp and half-deleted snapshots, ingest files); returns removed snapshot chain IDs
/// and bytes freed. Callers hold the exclusive lock, so no live writer owns those leftovers.
fn collect(
    parts: &Parts,
    blobs: &HashSet<Digest>,
    chains: &HashSet<Digest>,
) -> Result<(Vec<Digest>, u64)> {
    let snaps = parts.snapshots();
    let mut freed = 0;
    let mut removed = Vec::new();
    for c in snaps.list().map_err(|source| Error::Snapshot {
        action: "list",
        source,
    })? {
        if !chains.contains(&c) {
            freed += tree_size(&snaps.fs_path(&c));
            snaps.remove(&c).map_err(|source| Error::Snapshot {
                action: "remove",
                source,
            })?;
            removed.push(c);
        }
    }
    for b in parts.blobs().list()? {
        if !blobs.contains(&b) {
            freed += parts.blobs().remove(&b)?;
        }
    }
    snaps.clean_incomplete().map_err(|source| Error::Snapshot {
        action: "clean incomplete",
        source,
    })?;
    parts.blobs().clean_ingest()?;
    Ok((removed, freed))
}

/// See [`Store::prune`](crate::Store::prune).
pub(crate) fn prune(
    parts: &Parts,
    all: bool,
    in_use: &dyn Fn() -> HashSet<Digest>,
) -> Result<PruneReport> {
    let _gc = parts.lock(true)?;
    let used = in_use();
    let root = parts.root().to_path_buf();
    let (lines, state) = parts.meta().update(
        |s| {
            let victims: Vec<Digest> = s
                .images
                .keys()
                .filter(|id| !used.contains(*id) && (all || s.refs_of(id).is_empty()))
                .cloned()
                .collect();
            let mut lines = Vec::new();
            for id in victims {
                for r in s.refs_of(&id) {
                    s.tags.remove(&r);
                    lines.push(format!("untagged: {}", r.familiar()));
                }
                s.images.remove(&id);
                lines.push(format!("deleted: {id}"));
            }
            Ok((lines, s.clone()))
        },
        |s| layout::write_index(&root, s),
    )?;
    let (blobs, chains) = referenced(&state);
    let (_, reclaimed) = collect(parts, &blobs, &chains)?;
    Ok(PruneReport {
        deleted: lines,
        reclaimed,
    })
}

/// See [`Store::disk_usage`](crate::Store::disk_usage).
pub(crate) fn disk_usage(parts: &Parts, in_use: &HashSet<Digest>) -> Result<DiskUsage> {
    let state = parts.meta().read()?;
    let mut all = BTreeSet::new();
    let mut needed = BTreeSet::new();
    let mut size = 0;
    let mut reclaimable = 0;
    for (id, rec) in &state.images {
        for l in &rec.layers {
            if in_use.contains(id) {
                needed.insert(l.chain_id.clone());
            }
        }
    }
    for rec in state.images.values() {
        for l in &rec.layers {
            if all.insert(l.chain_id.clone()) {
                size += l.content_size;
                if !needed.contains(&l.chain_id) {
                    reclaimable += l.content_size;
                }
            }
        }
    }
    Ok(DiskUsage {
        images: state.images.len(),
        active: state
            .images
            .keys()
            .filter(|id| in_use.contains(*id))
            .count(),
        size,
        reclaimable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ImportOptions, Store};

    fn layer(name: &str) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        // Owned by whoever runs the test: unpacking sets owners, and only root may give files away.
        h.set_uid(rustix::process::geteuid().as_raw().into());
        h.set_gid(rustix::process::getegid().as_raw().into());
        h.set_cksum();
        b.append_data(&mut h, name, &b"abc"[..]).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn a_removal_collects_what_killed_writers_and_removals_left() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let opts = ImportOptions::default();
        let keep_ref = Reference::parse("keep").unwrap();
        let keep = store
            .import(&layer("kept")[..], Some(&keep_ref), &opts)
            .unwrap();
        let doomed = store.import(&layer("doomed")[..], None, &opts).unwrap();
        // As a kill -9 leaves them: a half-unpacked and a half-deleted snapshot, an ingest file.
        let snaps = store.snapshots();
        std::fs::create_dir_all(snaps.dir().join(".tmp-00000000000000aa/fs/etc")).unwrap();
        std::fs::create_dir_all(snaps.dir().join(".del-00000000000000bb/fs")).unwrap();
        let ingest = t.path().join("ingest");
        std::fs::write(ingest.join("leftover"), b"partial").unwrap();

        let lines = store
            .remove_image(&doomed.id.to_string(), false, &|_| false)
            .unwrap();
        assert!(
            lines.contains(&format!("Deleted: {}", doomed.id)),
            "{lines:?}"
        );
        let mut left: Vec<String> = std::fs::read_dir(snaps.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec![keep.layers[0].chain_id.hex().to_owned()]);
        assert_eq!(std::fs::read_dir(&ingest).unwrap().count(), 0);
        // The kept image is whole.
        let again = store.image("keep").unwrap();
        for l in &again.layers {
            assert!(store.blobs().read(&l.digest).is_ok());
            assert!(snaps.exists(&l.chain_id));
        }
    }
}
