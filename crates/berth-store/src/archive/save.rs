//! `save`: an OCI image-layout tar (oci-layout, index.json, blobs/sha256/…) that also carries
//! Docker's manifest.json, so `berth load`, `docker load` and `podman load` all accept it.

use crate::error::{Error, Result};
use crate::layout::{self, Descriptor, Index, OCI_LAYOUT};
use crate::meta::resolve;
use crate::parts::Parts;
use berth_oci::{Digest, Reference, media_type};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn header(size: u64, mode: u32, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(kind);
    h
}

/// See [`Store::save`](crate::Store::save).
pub(crate) fn save(parts: &Parts, images: &[&str], dst: impl Write) -> Result<()> {
    let _lease = parts.lock(false)?;
    let state = parts.meta().read()?;
    // Image id → names to write (in the order given); an image named by id gets no name.
    let mut order: Vec<Digest> = Vec::new();
    let mut names: BTreeMap<Digest, Vec<Reference>> = BTreeMap::new();
    for n in images {
        let id = resolve(&state, n)?;
        let by_name = Reference::parse(n)
            .ok()
            .filter(|r| state.tags.get(r) == Some(&id));
        if !order.contains(&id) {
            order.push(id.clone());
        }
        let list = names.entry(id).or_default();
        if let Some(r) = by_name
            && !list.contains(&r)
        {
            list.push(r);
        }
    }

    let werr = |e: std::io::Error| Error::Write {
        what: "image archive".into(),
        source: e,
    };
    let mut tar = tar::Builder::new(dst);
    let add_bytes = |tar: &mut tar::Builder<_>, path: &str, bytes: &[u8]| -> Result<()> {
        let mut h = header(bytes.len() as u64, 0o644, tar::EntryType::Regular);
        tar.append_data(&mut h, path, bytes).map_err(werr)
    };
    add_bytes(&mut tar, "oci-layout", OCI_LAYOUT.as_bytes())?;
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut h = header(0, 0o755, tar::EntryType::Directory);
        tar.append_data(&mut h, dir, std::io::empty())
            .map_err(werr)?;
    }

    let mut written: BTreeSet<Digest> = BTreeSet::new();
    let mut index = Vec::new();
    let mut docker = Vec::new();
    for id in &order {
        let rec = &state.images[id];
        let mut blobs = vec![rec.manifest_digest.clone(), id.clone()];
        blobs.extend(rec.layers.iter().map(|l| l.digest.clone()));
        for d in blobs {
            if !written.insert(d.clone()) {
                continue;
            }
            let file = parts.blobs().open(&d)?;
            let size = file
                .metadata()
                .map_err(|e| Error::io("stat blob", parts.blobs().path(&d), e))?
                .len();
            let mut h = header(size, 0o644, tar::EntryType::Regular);
            let path = format!("blobs/sha256/{}", d.hex());
            // The blob must not change length while being copied: `take` guards the header.
            tar.append_data(&mut h, &path, file.take(size))
                .map_err(werr)?;
        }
        let desc = Descriptor::new(
            rec.manifest_media_type.clone(),
            rec.manifest_digest.clone(),
            rec.manifest_size,
        );
        let refs = &names[id];
        index.extend(layout::named_entries(&desc, refs));
        docker.push(DockerEntry {
            config: format!("blobs/sha256/{}", id.hex()),
            repo_tags: if refs.is_empty() {
                None
            } else {
                Some(refs.iter().map(|r| r.familiar()).collect())
            },
            layers: rec
                .layers
                .iter()
                .map(|l| format!("blobs/sha256/{}", l.digest.hex()))
                .collect(),
        });
    }
    let index = Index {
        schema_version: 2,
        media_type: Some(media_type::OCI_INDEX.to_owned()),
        manifests: index,
    };
    add_bytes(
        &mut tar,
        "index.json",
        &serde_json::to_vec(&index).expect("index serialises"),
    )?;
    add_bytes(
        &mut tar,
        "manifest.json",
        &serde_json::to_vec(&docker).expect("manifest.json serialises"),
    )?;
    tar.into_inner().map_err(werr)?.flush().map_err(werr)?;
    Ok(())
}
