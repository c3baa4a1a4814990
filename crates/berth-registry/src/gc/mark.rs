//! The mark: what every repository holds (one listing of `repositories/`) and what its manifests
//! reference (each manifest read once per run, cached by digest — content never changes).
//!
//! The listing, not the catalog, is the root: a repository's catalog marker is written last in a
//! manifest PUT, after the manifest link, so a first push in flight has a link but no marker yet.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use futures::StreamExt;

use super::{GcError, StorageContext};
use crate::manifest::Manifest;
use crate::paths;
use crate::storage::Storage;

/// A SHA-256 digest, as 32 bytes (half the memory of the hex string, and hashes faster).
pub(super) type Hex = [u8; 32];

/// How many manifests are read at once.
const READ_CONCURRENCY: usize = 16;

/// Parses a lowercase 64-digit hex string, as every key in the layout holds.
pub(super) fn parse_hex(s: &str) -> Option<Hex> {
    if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// The hex of a `sha256:<hex>` digest; other algorithms are not stored by this registry.
pub(super) fn digest_hex(d: &str) -> Option<Hex> {
    parse_hex(d.strip_prefix("sha256:")?)
}

/// A manifest or blob link of one repository.
#[derive(Debug, Clone, Copy)]
pub(super) struct Link {
    /// Index into [`Snapshot::repos`].
    pub repo: u32,
    /// What it links to.
    pub hex: Hex,
    /// When it was last written.
    pub modified: SystemTime,
}

/// A tag object (its content is read only when untagged manifests are collected).
#[derive(Debug, Clone)]
pub(super) struct TagObject {
    /// Index into [`Snapshot::repos`].
    pub repo: u32,
    /// The tag's key.
    pub key: String,
}

/// Everything under `repositories/` at one moment.
#[derive(Debug, Default)]
pub(super) struct Snapshot {
    /// Repository names, indexed by the `repo` fields.
    pub repos: Vec<String>,
    /// Every manifest link.
    pub manifests: Vec<Link>,
    /// Every blob link, by the blob it links to.
    pub blob_links: HashMap<Hex, Vec<Link>>,
    /// Every tag.
    pub tags: Vec<TagObject>,
}

/// One key under `repositories/`, taken apart and checked against the layout's own builders.
enum RepoKey<'a> {
    Manifest(&'a str, Hex),
    Blob(&'a str, Hex),
    Tag(&'a str),
}

fn classify(key: &str) -> Option<RepoKey<'_>> {
    let prefix = paths::repo("");
    let rest = key.strip_prefix(prefix.as_str())?;
    // The first component starting with `_` ends the repository name (names never have one).
    let mut at = 0;
    for comp in rest.split('/') {
        if comp.starts_with('_') {
            break;
        }
        at += comp.len() + 1;
    }
    if at == 0 || at >= rest.len() {
        return None;
    }
    let name = &rest[..at - 1];
    let (kind, tail) = rest[at..].split_once('/')?;
    match kind {
        "_manifests" => {
            let hex = parse_hex(tail)?;
            (paths::manifest_link(name, tail) == key).then_some(RepoKey::Manifest(name, hex))
        }
        "_blobs" => {
            let hex = parse_hex(tail)?;
            (paths::blob_link(name, tail) == key).then_some(RepoKey::Blob(name, hex))
        }
        "_tags" => (paths::tag(name, tail) == key).then_some(RepoKey::Tag(name)),
        _ => None,
    }
}

impl Snapshot {
    /// Lists every repository's links and tags.
    pub(super) async fn take(storage: &Storage) -> Result<Snapshot, GcError> {
        let root = paths::repo("");
        let objects = storage
            .list(root.trim_end_matches('/'))
            .await
            .during("listing repositories")?;
        let mut snap = Snapshot::default();
        let mut index: HashMap<String, u32> = HashMap::new();
        let mut intern = |repos: &mut Vec<String>, name: &str| -> u32 {
            if let Some(&i) = index.get(name) {
                return i;
            }
            let i = repos.len() as u32;
            repos.push(name.to_string());
            index.insert(name.to_string(), i);
            i
        };
        for o in objects {
            match classify(&o.key) {
                Some(RepoKey::Manifest(name, hex)) => {
                    let repo = intern(&mut snap.repos, name);
                    snap.manifests.push(Link {
                        repo,
                        hex,
                        modified: o.modified,
                    });
                }
                Some(RepoKey::Blob(name, hex)) => {
                    let repo = intern(&mut snap.repos, name);
                    snap.blob_links.entry(hex).or_default().push(Link {
                        repo,
                        hex,
                        modified: o.modified,
                    });
                }
                Some(RepoKey::Tag(name)) => {
                    let repo = intern(&mut snap.repos, name);
                    snap.tags.push(TagObject { repo, key: o.key });
                }
                None => {}
            }
        }
        Ok(snap)
    }

    /// The links to one blob, across repositories.
    pub(super) fn links_to(&self, hex: &Hex) -> &[Link] {
        self.blob_links.get(hex).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The name of a repository index.
    pub(super) fn repo(&self, i: u32) -> &str {
        &self.repos[i as usize]
    }

    /// The (repository, blob) pairs a manifest of that repository references: the blob links
    /// that stay whatever their age.
    pub(super) fn referenced_by_repo(&self, cache: &Cache) -> HashSet<(u32, Hex)> {
        let mut set = HashSet::with_capacity(self.manifests.len() * 4);
        for m in &self.manifests {
            if let Some(r) = cache.get(&m.hex) {
                set.extend(r.refs.iter().map(|h| (m.repo, *h)));
            }
        }
        set
    }

    /// Every blob that must be kept because a manifest link exists: the manifests themselves and
    /// everything they reference (config, layers, child manifests). A subject is not a reference.
    pub(super) fn referenced(&self, cache: &Cache) -> HashSet<Hex> {
        let mut set = HashSet::with_capacity(self.manifests.len() * 4);
        for m in &self.manifests {
            set.insert(m.hex);
            if let Some(r) = cache.get(&m.hex) {
                set.extend(r.refs.iter().copied());
            }
        }
        set
    }
}

/// What one manifest references.
#[derive(Debug, Clone, Default)]
pub(super) struct Refs {
    /// Every digest it needs: config, layers, child manifests.
    pub refs: Vec<Hex>,
    /// The child manifests (indexes), which keep each other alive in a repository.
    pub children: Vec<Hex>,
    /// The manifest it is about (OCI 1.1 `subject`), if any.
    pub subject: Option<Hex>,
}

impl Refs {
    /// Reads a manifest body. One that does not parse as a manifest is scanned for every
    /// `sha256:` digest in its JSON instead: keeping too much is safe, missing a layer is not.
    pub(super) fn of(bytes: &[u8]) -> Refs {
        if let Ok(m) = Manifest::parse(bytes) {
            let refs = m
                .references()
                .filter_map(|d| digest_hex(&d.digest.to_string()))
                .collect();
            let children = m
                .manifests
                .iter()
                .filter_map(|d| digest_hex(&d.digest.to_string()))
                .collect();
            let subject = m
                .subject
                .as_ref()
                .and_then(|d| digest_hex(&d.digest.to_string()));
            return Refs {
                refs,
                children,
                subject,
            };
        }
        let mut found = Vec::new();
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) {
            scan_json(&v, &mut found);
        }
        Refs {
            children: found.clone(),
            refs: found,
            subject: None,
        }
    }
}

fn scan_json(v: &serde_json::Value, out: &mut Vec<Hex>) {
    match v {
        serde_json::Value::String(s) => out.extend(digest_hex(s)),
        serde_json::Value::Array(a) => a.iter().for_each(|x| scan_json(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| scan_json(x, out)),
        _ => {}
    }
}

/// Manifests already read in this run, by digest.
#[derive(Debug, Default)]
pub(super) struct Cache {
    map: HashMap<Hex, Refs>,
}

impl Cache {
    /// What a manifest references, if it was read.
    pub(super) fn get(&self, hex: &Hex) -> Option<&Refs> {
        self.map.get(hex)
    }

    /// Records what a manifest references (tests build graphs without storage).
    #[cfg(test)]
    pub(super) fn insert(&mut self, hex: Hex, refs: Refs) {
        self.map.insert(hex, refs);
    }

    /// Reads the manifests of a snapshot that are not cached yet; returns how many were read.
    /// A manifest whose bytes are missing references nothing (its link is all that is left).
    pub(super) async fn load(
        &mut self,
        storage: &Storage,
        snap: &Snapshot,
    ) -> Result<u64, GcError> {
        let todo: HashSet<Hex> = snap
            .manifests
            .iter()
            .map(|m| m.hex)
            .filter(|h| !self.map.contains_key(h))
            .collect();
        let mut reads = futures::stream::iter(todo)
            .map(|hex| async move {
                let key = paths::blob(&hex::encode(hex));
                (hex, storage.get(&key).await)
            })
            .buffer_unordered(READ_CONCURRENCY);
        let mut n = 0;
        while let Some((hex, r)) = reads.next().await {
            let refs = match r.during("reading a manifest")? {
                Some(bytes) => Refs::of(&bytes),
                None => Refs::default(),
            };
            self.map.insert(hex, refs);
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn keys_are_classified_by_their_first_underscore_component() {
        assert!(matches!(
            classify(&paths::manifest_link("a/b", A)),
            Some(RepoKey::Manifest("a/b", h)) if h == [0xaa; 32]
        ));
        assert!(matches!(
            classify(&paths::blob_link("x", B)),
            Some(RepoKey::Blob("x", h)) if h == [0xbb; 32]
        ));
        assert!(matches!(
            classify(&paths::tag("n/m", "_v1")),
            Some(RepoKey::Tag("n/m"))
        ));
        assert!(classify(&paths::referrer("x", A, B)).is_none());
        assert!(classify(&paths::blob_link("x", "ABC")).is_none());
        assert!(classify("repositories/_blobs/aa").is_none());
        assert!(classify(&paths::blob(A)).is_none());
    }

    #[test]
    fn refs_cover_config_layers_children_but_not_the_subject() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{{"digest":"sha256:{A}","size":1}},"layers":[{{"digest":"sha256:{B}","size":1}}],
            "subject":{{"digest":"sha256:{}","size":1}}}}"#,
            "c".repeat(64)
        );
        let r = Refs::of(m.as_bytes());
        assert_eq!(r.refs, vec![[0xaa; 32], [0xbb; 32]]);
        assert!(r.children.is_empty());
        assert_eq!(r.subject, Some([0xcc; 32]));
        let i =
            format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"sha256:{A}","size":1}}]}}"#);
        let r = Refs::of(i.as_bytes());
        assert_eq!(r.children, vec![[0xaa; 32]]);
    }

    #[test]
    fn an_unparseable_manifest_keeps_every_digest_it_mentions() {
        let odd = format!(r#"{{"schemaVersion":1,"fsLayers":[{{"blobSum":"sha256:{A}"}}]}}"#);
        assert_eq!(Refs::of(odd.as_bytes()).refs, vec![[0xaa; 32]]);
        assert!(Refs::of(b"not json").refs.is_empty());
    }
}
