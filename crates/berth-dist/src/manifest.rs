//! Manifests, indexes and configs as they come from a registry: media types, parsing with clear
//! errors, and platform selection from an index.

use crate::error::{Error, Result};
use berth_oci::Digest;
use berth_oci::media_type as mt;
use berth_store::layout::{Descriptor, Index, Manifest, Platform};

/// The largest manifest or index accepted (as containerd).
pub const MAX_MANIFEST: usize = 4 << 20;
/// The largest image config accepted.
pub const MAX_CONFIG: u64 = 16 << 20;

/// The `Accept` header of a manifest request: OCI and Docker schema 2, images and indexes.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// A parsed manifest document.
#[derive(Debug, Clone)]
pub enum Document {
    /// An OCI index or Docker manifest list.
    Index(Index),
    /// An OCI or Docker schema 2 image manifest, with its media type.
    Manifest(Box<Manifest>, String),
}

/// Parses a manifest response body. `content_type` is the response's `Content-Type` (without
/// parameters); the body's own `mediaType` wins when present. `what` names it in errors.
pub fn parse(body: &[u8], content_type: Option<&str>, what: &str) -> Result<Document> {
    let bad = |message: String| Error::BadManifest {
        what: what.to_owned(),
        message,
    };
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("not JSON: {e}")))?;
    if v.get("schemaVersion").and_then(|x| x.as_u64()) == Some(1) {
        return Err(bad(
            "Docker image manifest schema 1 is not supported (it is deprecated; push the image again with a current tool)".into(),
        ));
    }
    let declared = v
        .get("mediaType")
        .and_then(|x| x.as_str())
        .map(str::to_owned)
        .or_else(|| content_type.map(str::to_owned))
        .filter(|t| !t.is_empty() && t != "application/json" && t != "application/octet-stream");
    let kind = match declared.as_deref() {
        Some(t @ (mt::OCI_INDEX | mt::DOCKER_MANIFEST_LIST)) => t.to_owned(),
        Some(t @ (mt::OCI_MANIFEST | mt::DOCKER_MANIFEST)) => t.to_owned(),
        Some(t) if t.contains("manifest.v1") => {
            return Err(bad(format!(
                "media type {t} (Docker schema 1) is not supported"
            )));
        }
        Some(t) => return Err(bad(format!("unsupported media type {t}"))),
        None if v.get("manifests").is_some() => mt::OCI_INDEX.to_owned(),
        None if v.get("config").is_some() => mt::OCI_MANIFEST.to_owned(),
        None => return Err(bad("neither an image manifest nor an index".into())),
    };
    if kind == mt::OCI_INDEX || kind == mt::DOCKER_MANIFEST_LIST {
        let index: Index =
            serde_json::from_value(v).map_err(|e| bad(format!("malformed index: {e}")))?;
        Ok(Document::Index(index))
    } else {
        let m: Manifest =
            serde_json::from_value(v).map_err(|e| bad(format!("malformed manifest: {e}")))?;
        for l in &m.layers {
            layer_supported(l).map_err(bad)?;
        }
        Ok(Document::Manifest(Box::new(m), kind))
    }
}

/// Whether berth can unpack a layer of this media type; the message says why not.
pub fn layer_supported(layer: &Descriptor) -> std::result::Result<(), String> {
    let t = layer.media_type.as_str();
    match t {
        mt::OCI_LAYER_TAR
        | mt::OCI_LAYER_GZIP
        | mt::OCI_LAYER_ZSTD
        | mt::DOCKER_LAYER_TAR
        | mt::DOCKER_LAYER_GZIP
        | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Ok(()),
        t if t.contains("foreign") || t.contains("nondistributable") => Err(format!(
            "layer {} is a foreign (non-distributable) layer ({t}), which berth does not download",
            layer.digest
        )),
        t => Err(format!(
            "layer {} has unsupported media type {t:?}",
            layer.digest
        )),
    }
}

/// Parses `os/arch[/variant]`.
pub fn parse_platform(s: &str) -> Result<Platform> {
    s.parse()
        .map_err(|e: berth_oci::PlatformError| Error::Invalid(e.to_string()))
}

/// The variant a platform means when it names none (arm64 is v8; others have no default).
fn default_variant(arch: &str) -> Option<&'static str> {
    match arch {
        "arm64" => Some("v8"),
        _ => None,
    }
}

fn matches(offered: &Platform, wanted: &Platform) -> bool {
    if offered.os != wanted.os || offered.architecture != wanted.architecture {
        return false;
    }
    match &wanted.variant {
        // Without a wanted variant, any variant of the architecture will do (the best one is
        // picked below); arm64 prefers v8.
        None => true,
        Some(w) => {
            let o = offered
                .variant
                .as_deref()
                .or(default_variant(&offered.architecture));
            o == Some(w.as_str())
        }
    }
}

/// Picks the image manifest for `wanted` from an index: an exact match (or, without a wanted
/// variant, the entry without a variant or with the architecture's default one) first.
pub fn choose<'a>(index: &'a Index, wanted: &Platform, reference: &str) -> Result<&'a Descriptor> {
    let images = index.manifests.iter().filter(|d| {
        d.media_type.is_empty()
            || d.media_type == mt::OCI_MANIFEST
            || d.media_type == mt::DOCKER_MANIFEST
    });
    let mut best: Option<(&Descriptor, u8)> = None;
    for d in images {
        let Some(p) = &d.platform else { continue };
        if !matches(p, wanted) {
            continue;
        }
        let rank = match (&wanted.variant, p.variant.as_deref()) {
            (Some(_), _) => 0,
            (None, None) => 0,
            (None, Some(v)) if Some(v) == default_variant(&p.architecture) => 0,
            (None, Some(_)) => 1,
        };
        if best.is_none_or(|(_, r)| rank < r) {
            best = Some((d, rank));
        }
    }
    best.map(|(d, _)| d).ok_or_else(|| {
        let mut offered: Vec<String> = index
            .manifests
            .iter()
            .filter_map(|d| d.platform.as_ref().map(Platform::to_string))
            .filter(|p| !p.starts_with("unknown/"))
            .collect();
        offered.dedup();
        Error::NoPlatform {
            reference: reference.to_owned(),
            platform: wanted.to_string(),
            offered: if offered.is_empty() {
                "none".into()
            } else {
                offered.join(", ")
            },
        }
    })
}

/// The diff IDs an image config lists (`rootfs.diff_ids`), bottom first.
pub fn diff_ids(config: &[u8], what: &str) -> Result<Vec<Digest>> {
    #[derive(serde::Deserialize)]
    struct Rootfs {
        #[serde(default)]
        diff_ids: Vec<Digest>,
    }
    #[derive(serde::Deserialize)]
    struct Config {
        rootfs: Rootfs,
    }
    let c: Config = serde_json::from_slice(config).map_err(|e| Error::BadManifest {
        what: what.to_owned(),
        message: format!("malformed image config: {e}"),
    })?;
    Ok(c.rootfs.diff_ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(arch: &str, variant: Option<&str>, n: u8) -> serde_json::Value {
        let mut p = serde_json::json!({"os": "linux", "architecture": arch});
        if let Some(v) = variant {
            p["variant"] = v.into();
        }
        serde_json::json!({"mediaType": mt::OCI_MANIFEST, "digest": Digest::of(&[n]).to_string(), "size": 1, "platform": p})
    }

    fn index(entries: Vec<serde_json::Value>) -> Index {
        let body = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": mt::OCI_INDEX, "manifests": entries}))
        .unwrap();
        match parse(&body, None, "t").unwrap() {
            Document::Index(i) => i,
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn platform_choice() {
        let i = index(vec![
            entry("arm", Some("v7"), 1),
            entry("arm64", Some("v8"), 2),
            entry("amd64", Some("v3"), 5),
            entry("amd64", None, 3),
            entry("arm", Some("v6"), 4),
        ]);
        let pick = |s: &str| choose(&i, &parse_platform(s).unwrap(), "r").map(|d| d.digest.clone());
        assert_eq!(pick("linux/amd64").unwrap(), Digest::of(&[3]));
        assert_eq!(pick("linux/amd64/v3").unwrap(), Digest::of(&[5]));
        assert_eq!(pick("linux/arm64").unwrap(), Digest::of(&[2]));
        assert_eq!(pick("linux/arm64/v8").unwrap(), Digest::of(&[2]));
        assert_eq!(pick("linux/arm/v6").unwrap(), Digest::of(&[4]));
        let err = pick("linux/s390x").unwrap_err().to_string();
        assert!(
            err.contains("linux/amd64, linux/amd64/v3") || err.contains("linux/arm/v7"),
            "{err}"
        );
        assert!(err.contains("no image for platform linux/s390x"), "{err}");
        assert!(parse_platform("linux").is_err());
        assert!(parse_platform("linux//x").is_err());
    }

    #[test]
    fn refuses_schema1_unknown_and_foreign() {
        let s1 = br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        assert!(
            parse(s1, None, "m")
                .unwrap_err()
                .to_string()
                .contains("schema 1")
        );
        let odd = br#"{"schemaVersion":2,"mediaType":"application/x-odd","config":{}}"#;
        assert!(
            parse(odd, None, "m")
                .unwrap_err()
                .to_string()
                .contains("unsupported media type")
        );
        let foreign = serde_json::json!({"schemaVersion": 2, "mediaType": mt::DOCKER_MANIFEST,
            "config": {"mediaType": mt::DOCKER_CONFIG, "digest": Digest::of(b"c").to_string(), "size": 1},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                        "digest": Digest::of(b"l").to_string(), "size": 1}]});
        let err = parse(&serde_json::to_vec(&foreign).unwrap(), None, "m").unwrap_err();
        assert!(err.to_string().contains("foreign"), "{err}");
    }

    #[test]
    fn config_diff_ids() {
        let d = Digest::of(b"x");
        let c = serde_json::to_vec(
            &serde_json::json!({"rootfs": {"type": "layers", "diff_ids": [d.to_string()]}}),
        )
        .unwrap();
        assert_eq!(diff_ids(&c, "c").unwrap(), vec![d]);
        assert!(diff_ids(b"{}", "c").is_err());
    }
}
