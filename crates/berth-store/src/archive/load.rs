//! `load`: images from an OCI image-layout tar (nested indexes allowed) or a `docker save` tar.
//!
//! The archive is extracted into a staging directory and everything is verified there first:
//! every blob's digest and size, every manifest's references, every layer's diff ID against its
//! config. Only then are snapshots unpacked, blobs moved into place and the images recorded, in
//! that order, so a bad archive changes nothing and a kill leaves only unreferenced leftovers.

use super::staging::{Staged, Staging, read_small};
use crate::error::{Error, Result};
use crate::image::Image;
use crate::import::scan::{LayerScan, layer_media_type, scan_layer};
use crate::layout::{
    self, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, Descriptor, Index, Manifest,
};
use crate::meta::{ImageRecord, LayerRecord};
use crate::parts::Parts;
use crate::record::{Recorded, record_images};
use crate::snapshot;
use berth_oci::time;
use berth_oci::{Digest, Reference, media_type};
use oci_spec::image::ImageConfiguration;
use serde::Deserialize;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};

/// An image verified in the staging area, ready to publish.
struct Prepared {
    id: Digest,
    config: Staged,
    manifest_bytes: Vec<u8>,
    manifest_digest: Digest,
    manifest_media_type: String,
    /// The manifest is in the archive (else berth made it from `manifest.json`).
    manifest_staged: Option<Staged>,
    layers: Vec<(LayerRecord, Staged)>,
    names: Vec<Reference>,
    created: Option<String>,
}

/// One entry of `docker save`'s manifest.json.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// See [`Store::load`](crate::Store::load).
pub(crate) fn load(parts: &Parts, src: impl Read) -> Result<Vec<Image>> {
    let _lease = parts.lock(false)?;
    let src = snapshot::decompress(src)
        .map_err(|e| Error::BadArchive(format!("reading the archive: {e}")))?;
    let staging = Staging::extract(parts.blobs().ingest_dir(), src)?;
    let mut scans = HashMap::new();
    let prepared = if staging.has("index.json") {
        prepare_oci(&staging, &mut scans)?
    } else if staging.has("manifest.json") {
        prepare_docker(&staging, &mut scans)?
    } else {
        return Err(Error::BadArchive(
            "neither index.json (OCI image layout) nor manifest.json (docker save) found".into(),
        ));
    };
    if prepared.is_empty() {
        return Err(Error::BadArchive("the archive holds no image".into()));
    }

    // Snapshots first; on failure, remove the ones this load made.
    let snaps = parts.snapshots();
    let mut made = Vec::new();
    let unpacked: Result<()> = (|| {
        for p in &prepared {
            for (layer, staged) in &p.layers {
                if snaps.exists(&layer.chain_id) {
                    continue;
                }
                let file = File::open(&staged.path)
                    .map_err(|e| Error::io("open staged layer", &staged.path, e))?;
                let tar = snapshot::decompress(BufReader::with_capacity(256 * 1024, file))
                    .map_err(|e| Error::NotATar(format!("layer {}: {e}", layer.digest)))?;
                let stats =
                    snaps
                        .unpack(&layer.chain_id, &layer.diff_id, tar)
                        .map_err(|source| Error::Unpack {
                            layer: layer.digest.clone(),
                            source,
                        })?;
                // A snapshot a concurrent writer published first is theirs, not ours to undo.
                if !stats.reused {
                    made.push(layer.chain_id.clone());
                }
            }
        }
        Ok(())
    })();
    if let Err(e) = unpacked {
        for c in &made {
            let _ = snaps.remove(c);
        }
        return Err(e);
    }

    // Then blobs, then metadata.
    for p in &prepared {
        parts.blobs().adopt(&p.config.path, &p.id)?;
        for (layer, staged) in &p.layers {
            parts.blobs().adopt(&staged.path, &layer.digest)?;
        }
        match &p.manifest_staged {
            Some(m) => parts.blobs().adopt(&m.path, &p.manifest_digest)?,
            None => {
                parts.blobs().write(&p.manifest_bytes)?;
            }
        }
    }
    parts.blobs().sync()?;
    let added = time::now_rfc3339();
    let recorded: Vec<Recorded> = prepared
        .iter()
        .map(|p| Recorded {
            id: p.id.clone(),
            record: ImageRecord {
                manifest_digest: p.manifest_digest.clone(),
                manifest_media_type: p.manifest_media_type.clone(),
                manifest_size: p.manifest_bytes.len() as u64,
                config_size: p.config.size,
                layers: p.layers.iter().map(|(l, _)| l.clone()).collect(),
                created: p.created.clone(),
                added: added.clone(),
                sources: Vec::new(),
                index_digests: Vec::new(),
            },
            refs: p.names.clone(),
        })
        .collect();
    let state = record_images(parts, &recorded)?;
    let mut out: Vec<Image> = Vec::new();
    for p in &prepared {
        if out.iter().any(|i| i.id == p.id) {
            continue;
        }
        let mut img = parts.image(&state, &p.id)?;
        // Report the names this archive gave, as Docker does.
        img.references = p.names.clone();
        out.push(img);
    }
    Ok(out)
}

/// A name from an index entry's annotations: containerd's full name, or a ref.name that is a
/// whole reference (a bare tag names no repository).
fn name_of(desc: &Descriptor) -> Option<Reference> {
    let a = desc.annotations.as_ref()?;
    if let Some(n) = a.get(ANNOTATION_IMAGE_NAME) {
        return Reference::parse(n).ok();
    }
    let n = a.get(ANNOTATION_REF_NAME)?;
    if n.contains(':') || n.contains('/') {
        Reference::parse(n).ok()
    } else {
        None
    }
}

fn staged_blob<'a>(staging: &'a Staging, desc: &Descriptor, role: &str) -> Result<&'a Staged> {
    let s = staging.blob(&desc.digest).ok_or_else(|| {
        Error::BadArchive(format!(
            "{role} blob {} is named but not in the archive",
            desc.digest
        ))
    })?;
    if s.size != desc.size {
        return Err(Error::SizeMismatch {
            digest: desc.digest.clone(),
            expected: desc.size,
            actual: s.size,
        });
    }
    Ok(s)
}

fn is_index(media: &str, bytes: &[u8]) -> bool {
    match media {
        media_type::OCI_INDEX | media_type::DOCKER_MANIFEST_LIST => true,
        media_type::OCI_MANIFEST | media_type::DOCKER_MANIFEST => false,
        _ => serde_json::from_slice::<serde_json::Value>(bytes)
            .is_ok_and(|v| v.get("manifests").is_some()),
    }
}

/// Collects (manifest descriptor, names) from an index, descending into nested indexes and
/// picking the host platform where an index offers several.
fn walk(
    staging: &Staging,
    index: &Index,
    inherited: &[Reference],
    depth: usize,
    out: &mut Vec<(Descriptor, Vec<Reference>)>,
) -> Result<()> {
    if depth > 8 {
        return Err(Error::BadArchive(
            "image indexes are nested more than 8 deep".into(),
        ));
    }
    let host = layout::host_platform();
    let with_platform = index
        .manifests
        .iter()
        .filter(|d| d.platform.is_some())
        .count();
    let chosen: Vec<&Descriptor> = if with_platform > 1 {
        let m = index
            .manifests
            .iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.os == host.os && p.architecture == host.architecture)
            })
            .ok_or_else(|| {
                Error::BadArchive(format!(
                    "no image for {}/{} in a multi-platform index",
                    host.os, host.architecture
                ))
            })?;
        vec![m]
    } else {
        index.manifests.iter().collect()
    };
    for desc in chosen {
        let mut names = inherited.to_vec();
        if let Some(n) = name_of(desc) {
            names.push(n);
        }
        let staged = staged_blob(staging, desc, "manifest")?;
        let bytes = read_small(staged, &desc.digest.to_string())?;
        if is_index(&desc.media_type, &bytes) {
            let child: Index = layout::parse(&bytes, format!("index {}", desc.digest))?;
            walk(staging, &child, &names, depth + 1, out)?;
        } else if let Some((_, n)) = out.iter_mut().find(|(d, _)| d.digest == desc.digest) {
            n.extend(names);
        } else {
            out.push((desc.clone(), names));
        }
    }
    Ok(())
}

fn prepare_oci(staging: &Staging, scans: &mut HashMap<Digest, LayerScan>) -> Result<Vec<Prepared>> {
    let index: Index = layout::parse(&staging.read("index.json")?, "index.json")?;
    let mut manifests = Vec::new();
    walk(staging, &index, &[], 0, &mut manifests)?;
    // Docker's save puts names in manifest.json too; use them for entries the index leaves unnamed.
    let mut repo_tags: HashMap<Digest, Vec<Reference>> = HashMap::new();
    if staging.has("manifest.json") {
        let entries: Vec<DockerEntry> =
            layout::parse(&staging.read("manifest.json")?, "manifest.json")?;
        for e in entries {
            if let Some(cfg) = staging.get(&e.config) {
                repo_tags
                    .entry(cfg.digest.clone())
                    .or_default()
                    .extend(parse_tags(&e.repo_tags)?);
            }
        }
    }
    let mut out = Vec::new();
    for (desc, mut names) in manifests {
        let staged = staged_blob(staging, &desc, "manifest")?.clone();
        let bytes = read_small(&staged, &desc.digest.to_string())?;
        let manifest: Manifest = layout::parse(&bytes, format!("manifest {}", desc.digest))?;
        let config = staged_blob(staging, &manifest.config, "config")?.clone();
        if names.is_empty() {
            names = repo_tags.get(&config.digest).cloned().unwrap_or_default();
        }
        let mut layers = Vec::new();
        for l in &manifest.layers {
            let s = staged_blob(staging, l, "layer")?.clone();
            if berth_oci::media_type::layer_compression(&l.media_type).is_none() {
                return Err(Error::BadArchive(format!(
                    "layer {} has unsupported media type {:?}",
                    l.digest, l.media_type
                )));
            }
            layers.push((s, Some(l.media_type.clone())));
        }
        let media = if desc.media_type.is_empty() {
            manifest
                .media_type
                .clone()
                .unwrap_or_else(|| media_type::OCI_MANIFEST.to_owned())
        } else {
            desc.media_type.clone()
        };
        out.push(prepare(
            config,
            layers,
            names,
            bytes,
            Some(staged),
            media,
            scans,
        )?);
    }
    Ok(out)
}

fn parse_tags(tags: &Option<Vec<String>>) -> Result<Vec<Reference>> {
    tags.iter()
        .flatten()
        .map(|t| {
            Reference::parse(t).map_err(|e| Error::BadArchive(format!("RepoTags entry {t:?}: {e}")))
        })
        .collect()
}

fn prepare_docker(
    staging: &Staging,
    scans: &mut HashMap<Digest, LayerScan>,
) -> Result<Vec<Prepared>> {
    let entries: Vec<DockerEntry> =
        layout::parse(&staging.read("manifest.json")?, "manifest.json")?;
    let mut out = Vec::new();
    for e in entries {
        let config = staging
            .get(&e.config)
            .ok_or_else(|| {
                Error::BadArchive(format!(
                    "manifest.json names config {} which is not in the archive",
                    e.config
                ))
            })?
            .clone();
        // `docker save` names configs <id>.json: the name must match the content.
        let base = e.config.rsplit('/').next().unwrap_or("");
        if let Ok(named) = Digest::from_hex(base.trim_end_matches(".json"))
            && named != config.digest
        {
            return Err(Error::DigestMismatch {
                expected: named,
                actual: config.digest,
                context: "in archive",
            });
        }
        let mut layers = Vec::new();
        for path in &e.layers {
            let s = staging.get(path).ok_or_else(|| {
                Error::BadArchive(format!(
                    "manifest.json names layer {path} which is not in the archive"
                ))
            })?;
            layers.push((s.clone(), None));
        }
        let names = parse_tags(&e.repo_tags)?;
        out.push(prepare(
            config,
            layers,
            names,
            Vec::new(),
            None,
            media_type::OCI_MANIFEST.to_owned(),
            scans,
        )?);
    }
    Ok(out)
}

/// Verifies a config and its layers (diff IDs), and builds the manifest when the archive has none.
fn prepare(
    config: Staged,
    layers: Vec<(Staged, Option<String>)>,
    names: Vec<Reference>,
    manifest_bytes: Vec<u8>,
    manifest_staged: Option<Staged>,
    manifest_media_type: String,
    scans: &mut HashMap<Digest, LayerScan>,
) -> Result<Prepared> {
    let id = config.digest.clone();
    let cfg_bytes = read_small(&config, &format!("config {id}"))?;
    let parsed: ImageConfiguration = layout::parse(&cfg_bytes, format!("image config {id}"))?;
    let diff_ids = parsed.rootfs().diff_ids();
    if diff_ids.len() != layers.len() {
        return Err(Error::BadArchive(format!(
            "image {id} has {} layers but its config lists {} diff IDs",
            layers.len(),
            diff_ids.len()
        )));
    }
    let mut records = Vec::new();
    let mut parent: Option<Digest> = None;
    for ((staged, declared), diff) in layers.into_iter().zip(diff_ids) {
        let expected: Digest = diff
            .parse()
            .map_err(|e| Error::BadArchive(format!("image {id} config: diff ID {diff:?}: {e}")))?;
        let scan = match scans.get(&staged.digest) {
            Some(s) => s.clone(),
            None => {
                let f = File::open(&staged.path)
                    .map_err(|e| Error::io("open staged layer", &staged.path, e))?;
                let s = scan_layer(f).map_err(|e| match e {
                    Error::NotATar(m) => Error::NotATar(format!("layer {}: {m}", staged.digest)),
                    e => e,
                })?;
                scans.insert(staged.digest.clone(), s.clone());
                s
            }
        };
        if scan.diff_id != expected {
            return Err(Error::DiffIdMismatch {
                layer: staged.digest.clone(),
                expected,
                actual: scan.diff_id,
            });
        }
        let chain_id = snapshot::chain_id(parent.as_ref(), &expected);
        parent = Some(chain_id.clone());
        records.push((
            LayerRecord {
                digest: staged.digest.clone(),
                diff_id: expected,
                chain_id,
                size: staged.size,
                unpacked_size: scan.unpacked_size,
                content_size: scan.content_size,
                media_type: declared
                    .unwrap_or_else(|| layer_media_type(scan.compression).to_owned()),
            },
            staged,
        ));
    }
    let manifest_bytes = if manifest_staged.is_some() {
        manifest_bytes
    } else {
        let m = Manifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.to_owned()),
            config: Descriptor::new(media_type::OCI_CONFIG.to_owned(), id.clone(), config.size),
            layers: records
                .iter()
                .map(|(l, _)| Descriptor::new(l.media_type.clone(), l.digest.clone(), l.size))
                .collect(),
        };
        serde_json::to_vec(&m).expect("manifest serialises")
    };
    let manifest_digest = Digest::of(&manifest_bytes);
    Ok(Prepared {
        id,
        created: parsed.created().clone(),
        config,
        manifest_bytes,
        manifest_digest,
        manifest_media_type,
        manifest_staged,
        layers: records,
        names,
    })
}
