//! Reading what the index needs from the storage: one repository's tags and manifests, each
//! manifest's bytes and its image config. Manifests and configs are content-addressed, so what
//! is parsed from them is cached by digest and never read twice.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::Value;

use super::SearchError;
use crate::manifest::{Descriptor, Manifest, OCI_MANIFEST};
use crate::paths::{self, ManifestLink, TagLink};
use crate::storage::{ObjectInfo, Storage};

/// Manifests larger than this are not read by the index (the API refuses far smaller ones).
const MAX_MANIFEST_BYTES: u64 = 8 << 20;
/// Configs larger than this are not parsed for labels and platform.
pub(crate) const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// What one manifest (and its image config) says, parsed once per digest.
#[derive(Debug, Clone, Default)]
pub(crate) struct Parsed {
    /// The `mediaType` in the body, if any.
    pub body_media_type: Option<String>,
    /// Whether it is an index or manifest list.
    pub is_index: bool,
    /// The config descriptor (manifests).
    pub config: Option<Descriptor>,
    /// Layer descriptors (manifests).
    pub layers: Vec<Descriptor>,
    /// Child manifests (indexes).
    pub children: Vec<Descriptor>,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
    /// `os/arch[/variant]` from the image config.
    pub platform: Option<String>,
    /// The config's `created`.
    pub created: Option<String>,
    /// The config's `config.Labels`.
    pub labels: BTreeMap<String, String>,
}

/// Parses a manifest body; `None` when it is not a manifest the registry would accept.
pub(crate) fn parse_manifest(bytes: &[u8]) -> Option<Parsed> {
    let m = Manifest::parse(bytes).ok()?;
    Some(Parsed {
        is_index: m.is_index(),
        body_media_type: m.media_type.clone(),
        config: m.config.clone(),
        layers: m.layers.clone(),
        children: m.manifests.clone(),
        annotations: m.annotations.clone().unwrap_or_default(),
        platform: None,
        created: None,
        labels: BTreeMap::new(),
    })
}

/// Fills platform, creation time and labels from an image config's JSON. Anything that is not
/// an image config (an artifact's empty `{}`, say) simply yields nothing.
pub(crate) fn apply_config(p: &mut Parsed, config: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(config) else {
        return;
    };
    let s = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    if let (Some(os), Some(arch)) = (s("os"), s("architecture")) {
        p.platform = Some(match s("variant") {
            Some(var) => format!("{os}/{arch}/{var}"),
            None => format!("{os}/{arch}"),
        });
    }
    p.created = s("created").map(str::to_string);
    if let Some(labels) = v
        .get("config")
        .and_then(|c| c.get("Labels"))
        .and_then(Value::as_object)
    {
        for (k, val) in labels {
            if let Some(val) = val.as_str() {
                p.labels.insert(k.clone(), val.to_string());
            }
        }
    }
}

/// `os/arch[/variant]` of an index entry's platform, skipping the `unknown/unknown` entries
/// that build attestations use.
pub(crate) fn descriptor_platform(d: &Descriptor) -> Option<String> {
    let p = d.platform.as_ref()?;
    if p.os.is_empty() || p.architecture.is_empty() || p.os == "unknown" {
        return None;
    }
    Some(match &p.variant {
        Some(v) if !v.is_empty() => format!("{}/{}/{v}", p.os, p.architecture),
        _ => format!("{}/{}", p.os, p.architecture),
    })
}

/// The hex part of `sha256:<hex>`.
pub(crate) fn digest_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// The hex of a descriptor's digest (always sha256, the only algorithm berth-oci parses).
pub(crate) fn sha256_hex(d: &berth_oci::Digest) -> Option<&str> {
    Some(d.hex())
}

/// Reads an object only when it exists and is at most `max` bytes.
pub(crate) async fn get_small(
    storage: &Storage,
    key: &str,
    max: u64,
) -> Result<Option<Bytes>, SearchError> {
    let info = storage
        .head(key)
        .await
        .map_err(|source| SearchError::storage("stat", key, source))?;
    match info {
        Some(i) if i.size <= max => storage
            .get(key)
            .await
            .map_err(|source| SearchError::storage("read", key, source)),
        _ => Ok(None),
    }
}

/// Parsed manifests by hex digest, shared by every repository holding them.
#[derive(Default)]
pub(crate) struct ParseCache {
    map: Mutex<HashMap<String, Arc<Parsed>>>,
}

impl ParseCache {
    /// The parsed manifest `hex` (with its config), reading the storage on a miss. `None` when the
    /// manifest bytes are missing or do not parse.
    pub async fn get(
        &self,
        storage: &Storage,
        hex: &str,
    ) -> Result<Option<Arc<Parsed>>, SearchError> {
        if let Some(p) = self.map.lock().expect("parse cache lock").get(hex) {
            return Ok(Some(p.clone()));
        }
        let key = paths::blob(hex);
        let Some(bytes) = get_small(storage, &key, MAX_MANIFEST_BYTES).await? else {
            return Ok(None);
        };
        let Some(mut parsed) = parse_manifest(&bytes) else {
            tracing::debug!(digest = hex, "search: manifest does not parse; not indexed");
            return Ok(None);
        };
        if let Some(chex) = parsed.config.as_ref().and_then(|c| sha256_hex(&c.digest)) {
            let ckey = paths::blob(chex);
            if let Some(cfg) = get_small(storage, &ckey, MAX_CONFIG_BYTES).await? {
                apply_config(&mut parsed, &cfg);
            }
        }
        let parsed = Arc::new(parsed);
        self.map
            .lock()
            .expect("parse cache lock")
            .insert(hex.to_string(), parsed.clone());
        Ok(Some(parsed))
    }

    /// Forgets every digest not in `keep` (after a full rescan).
    pub fn retain(&self, keep: &BTreeSet<String>) {
        self.map
            .lock()
            .expect("parse cache lock")
            .retain(|k, _| keep.contains(k));
    }
}

/// How long after its modification time a listed link counts as settled. Object stores report
/// modification times to the second, so a link rewritten within the same second at the same size
/// (a tag moved to another digest) would look unchanged; a stamp taken once that second (and
/// some clock skew between the store and this host) has passed cannot be confused so.
const SETTLE: Duration = Duration::from_secs(5);

/// What a listing said about a link, to skip rereading links that did not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    modified: SystemTime,
    size: u64,
    /// Whether the link was already older than [`SETTLE`] when listed.
    settled: bool,
}

impl Stamp {
    /// The stamp of a listed object, taken now.
    fn of(info: &ObjectInfo) -> Stamp {
        let age = SystemTime::now()
            .duration_since(info.modified)
            .unwrap_or(Duration::ZERO);
        Stamp {
            modified: info.modified,
            size: info.size,
            settled: age >= SETTLE,
        }
    }

    /// Whether a link read under this stamp is certainly unchanged when listed as `now`.
    fn unchanged(&self, now: &Stamp) -> bool {
        self.settled && self.modified == now.modified && self.size == now.size
    }
}

/// One manifest of a repository as the index shows it.
#[derive(Debug, Clone)]
pub struct ManifestSummary {
    /// `sha256:<hex>`.
    pub digest: String,
    /// The media type it is served with.
    pub media_type: String,
    /// Config plus layers, or the sum of the children's sizes for an index.
    pub size: u64,
    /// `os/arch[/variant]` of the image, or of every child of an index.
    pub platforms: Vec<String>,
    /// The config's `created` (the newest child's for an index).
    pub created: Option<String>,
    /// The config's labels (the children's, merged, for an index).
    pub labels: BTreeMap<String, String>,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
    /// Number of layers (of all children, for an index).
    pub layers: usize,
    /// The config descriptor.
    pub config: Option<Descriptor>,
    /// The layer descriptors.
    pub layer_list: Vec<Descriptor>,
    /// The child manifests of an index.
    pub children: Vec<Descriptor>,
    /// Whether it is an index.
    pub is_index: bool,
    /// Lower-cased digest, platforms, label and annotation keys and values, for substring search.
    pub(crate) haystack: String,
    /// The manifest link's modification time and size when it was read.
    pub(crate) link_stamp: Stamp,
}

/// One repository as the index holds it.
#[derive(Debug, Clone, Default)]
pub struct Repository {
    /// Its name.
    pub name: String,
    /// Tag → manifest digest, for tags whose manifest is present.
    pub tags: BTreeMap<String, String>,
    /// Manifests by digest.
    pub manifests: BTreeMap<String, Arc<ManifestSummary>>,
    /// Total size of the distinct blobs its manifests reference.
    pub size: u64,
    /// Tag link modification time and size when read, to skip unchanged tags on a rescan.
    pub(crate) tag_stamps: BTreeMap<String, (Stamp, String)>,
}

impl Repository {
    /// Digests of manifests no tag points at, sorted.
    pub fn untagged(&self) -> Vec<&Arc<ManifestSummary>> {
        let tagged: BTreeSet<&str> = self.tags.values().map(String::as_str).collect();
        self.manifests
            .values()
            .filter(|m| !tagged.contains(m.digest.as_str()))
            .collect()
    }

    /// The tags pointing at a digest.
    pub fn tags_of(&self, digest: &str) -> Vec<&str> {
        self.tags
            .iter()
            .filter(|(_, d)| d.as_str() == digest)
            .map(|(t, _)| t.as_str())
            .collect()
    }
}

/// Reads one repository from the storage. `prev` (the index's current view) lets unchanged links
/// be skipped. Returns `None` when the repository holds no manifests.
pub(crate) async fn scan_repository(
    storage: &Storage,
    cache: &ParseCache,
    name: &str,
    prev: Option<&Repository>,
) -> Result<Option<Repository>, SearchError> {
    let mprefix = paths::manifest_links(name);
    let links = storage
        .list(&mprefix)
        .await
        .map_err(|source| SearchError::storage("list", &mprefix, source))?;
    let mut raw: Vec<RawManifest> = Vec::new();
    for link in links {
        let Some(hex) = link.key.rsplit('/').next().filter(|h| h.len() == 64) else {
            continue;
        };
        let digest = format!("sha256:{hex}");
        let stamp = Stamp::of(&link);
        let known = prev
            .and_then(|r| r.manifests.get(&digest))
            .filter(|m| m.link_stamp.unchanged(&stamp))
            .map(|m| m.media_type.clone());
        let pushed_type = match known {
            Some(t) => Some(t),
            None => {
                let body = storage
                    .get(&link.key)
                    .await
                    .map_err(|source| SearchError::storage("read", &link.key, source))?;
                let Some(body) = body else {
                    continue; // deleted while listing
                };
                serde_json::from_slice::<ManifestLink>(&body)
                    .ok()
                    .map(|l| l.media_type)
            }
        };
        let Some(parsed) = cache.get(storage, hex).await? else {
            continue;
        };
        let media_type = match (&parsed.body_media_type, pushed_type) {
            (Some(m), _) => m.clone(),
            (None, Some(t)) if !t.is_empty() => t,
            (None, _) if parsed.is_index => crate::manifest::OCI_INDEX.to_string(),
            (None, _) => OCI_MANIFEST.to_string(),
        };
        raw.push((digest, parsed, media_type, stamp));
    }

    let tprefix = paths::tags(name);
    let tag_objs = storage
        .list(&tprefix)
        .await
        .map_err(|source| SearchError::storage("list", &tprefix, source))?;
    let mut tag_stamps = BTreeMap::new();
    for t in tag_objs {
        let Some(tag) = t.key.rsplit('/').next() else {
            continue;
        };
        let known = prev
            .and_then(|r| r.tag_stamps.get(tag))
            .filter(|(s, _)| s.unchanged(&Stamp::of(&t)))
            .map(|(_, d)| d.clone());
        let digest = match known {
            Some(d) => d,
            None => {
                let body = storage
                    .get(&t.key)
                    .await
                    .map_err(|source| SearchError::storage("read", &t.key, source))?;
                let Some(link) = body.and_then(|b| serde_json::from_slice::<TagLink>(&b).ok())
                else {
                    continue;
                };
                link.digest
            }
        };
        tag_stamps.insert(tag.to_string(), (Stamp::of(&t), digest));
    }

    if raw.is_empty() {
        return Ok(None);
    }
    Ok(Some(assemble(name, raw, tag_stamps)))
}

/// A manifest as read from one repository: digest, parsed content, served media type, link stamp.
type RawManifest = (String, Arc<Parsed>, String, Stamp);

/// Builds the repository view: image manifests first, then indexes summed over their children.
fn assemble(
    name: &str,
    raw: Vec<RawManifest>,
    tag_stamps: BTreeMap<String, (Stamp, String)>,
) -> Repository {
    let mut manifests: BTreeMap<String, Arc<ManifestSummary>> = BTreeMap::new();
    let mut blobs: BTreeMap<String, u64> = BTreeMap::new();
    for (digest, p, media_type, stamp) in raw.iter().filter(|r| !r.1.is_index) {
        let size: u64 = p.config.iter().chain(p.layers.iter()).map(|d| d.size).sum();
        for d in p.config.iter().chain(p.layers.iter()) {
            blobs.insert(d.digest.to_string(), d.size);
        }
        let s = ManifestSummary {
            digest: digest.clone(),
            media_type: media_type.clone(),
            size,
            platforms: p.platform.iter().cloned().collect(),
            created: p.created.clone(),
            labels: p.labels.clone(),
            annotations: p.annotations.clone(),
            layers: p.layers.len(),
            config: p.config.clone(),
            layer_list: p.layers.clone(),
            children: Vec::new(),
            is_index: false,
            haystack: String::new(),
            link_stamp: *stamp,
        };
        manifests.insert(digest.clone(), Arc::new(with_haystack(s)));
    }
    let mut indexes = Vec::new();
    for (digest, p, media_type, stamp) in raw.iter().filter(|r| r.1.is_index) {
        let mut s = ManifestSummary {
            digest: digest.clone(),
            media_type: media_type.clone(),
            size: 0,
            platforms: Vec::new(),
            created: None,
            labels: BTreeMap::new(),
            annotations: p.annotations.clone(),
            layers: 0,
            config: None,
            layer_list: Vec::new(),
            children: p.children.clone(),
            is_index: true,
            haystack: String::new(),
            link_stamp: *stamp,
        };
        for c in &p.children {
            if let Some(pl) = descriptor_platform(c)
                && !s.platforms.contains(&pl)
            {
                s.platforms.push(pl);
            }
            match manifests.get(&c.digest.to_string()) {
                Some(child) => {
                    s.size += child.size;
                    s.layers += child.layers;
                    if child.created > s.created {
                        s.created = child.created.clone();
                    }
                    for (k, v) in &child.labels {
                        s.labels.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
                None => s.size += c.size,
            }
        }
        indexes.push(s);
    }
    for s in indexes {
        manifests.insert(s.digest.clone(), Arc::new(with_haystack(s)));
    }
    let tags = tag_stamps
        .iter()
        .filter(|(_, (_, d))| manifests.contains_key(d))
        .map(|(t, (_, d))| (t.clone(), d.clone()))
        .collect();
    Repository {
        name: name.to_string(),
        tags,
        manifests,
        size: blobs.values().sum(),
        tag_stamps,
    }
}

fn with_haystack(mut s: ManifestSummary) -> ManifestSummary {
    let mut h = String::new();
    let mut add = |x: &str| {
        h.push_str(&x.to_lowercase());
        h.push('\n');
    };
    add(&s.digest);
    for p in &s.platforms {
        add(p);
    }
    for (k, v) in s.labels.iter().chain(s.annotations.iter()) {
        add(k);
        add(v);
    }
    s.haystack = h;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_yields_platform_created_and_labels() {
        let mut p = Parsed::default();
        apply_config(
            &mut p,
            br#"{"os":"linux","architecture":"arm","variant":"v7","created":"2026-01-02T03:04:05Z",
                "config":{"Labels":{"a":"b","n":null}}}"#,
        );
        assert_eq!(p.platform.as_deref(), Some("linux/arm/v7"));
        assert_eq!(p.created.as_deref(), Some("2026-01-02T03:04:05Z"));
        assert_eq!(p.labels.len(), 1);
        assert_eq!(p.labels["a"], "b");
    }

    #[test]
    fn non_image_config_yields_nothing() {
        let mut p = Parsed::default();
        apply_config(&mut p, b"{}");
        apply_config(&mut p, b"not json");
        assert!(p.platform.is_none() && p.created.is_none() && p.labels.is_empty());
    }

    #[test]
    fn fresh_links_are_always_reread() {
        let info = |age: u64, size| ObjectInfo {
            key: "k".into(),
            size,
            modified: SystemTime::now() - Duration::from_secs(age),
        };
        let fresh = Stamp::of(&info(0, 10));
        assert!(
            !fresh.unchanged(&fresh),
            "a link younger than SETTLE may change unseen"
        );
        let old = info(60, 10);
        let s = Stamp::of(&old);
        assert!(s.unchanged(&Stamp::of(&old)));
        let mut resized = old.clone();
        resized.size = 11;
        assert!(!s.unchanged(&Stamp::of(&resized)));
        let mut touched = old;
        touched.modified += Duration::from_secs(1);
        assert!(!s.unchanged(&Stamp::of(&touched)));
    }

    #[test]
    fn digest_hex_checks_shape() {
        let h = "a".repeat(64);
        assert_eq!(digest_hex(&format!("sha256:{h}")), Some(h.as_str()));
        assert_eq!(digest_hex("sha256:abc"), None);
        assert_eq!(digest_hex(&format!("sha512:{h}")), None);
    }
}
