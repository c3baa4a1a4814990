//! Names to image ids, the way Docker resolves them.

use super::MetaState;
use crate::error::{Error, Result};
use berth_oci::{Digest, Reference};

/// Resolves a name to an image id the way Docker does: `sha256:`-prefixed ids first, then a
/// reference, then a unique id prefix.
pub(crate) fn resolve(state: &MetaState, name: &str) -> Result<Digest> {
    if let Some(hex) = name.strip_prefix("sha256:") {
        return resolve_prefix(state, name, hex);
    }
    if let Ok(r) = Reference::parse(name) {
        let found = match r.digest() {
            Some(d) => state
                .images
                .iter()
                .find(|(id, rec)| {
                    *id == d || &rec.manifest_digest == d || rec.index_digests.contains(d)
                })
                .map(|(id, _)| id.clone()),
            None => state.tags.get(&r).cloned(),
        };
        if let Some(id) = found {
            return Ok(id);
        }
    }
    if berth_oci::looks_like_id(name) {
        return resolve_prefix(state, name, name);
    }
    Err(Error::ImageNotFound(name.to_owned()))
}

fn resolve_prefix(state: &MetaState, name: &str, hex: &str) -> Result<Digest> {
    if hex.is_empty() || !berth_oci::looks_like_id(hex) {
        return Err(Error::ImageNotFound(name.to_owned()));
    }
    let mut hits = state.images.keys().filter(|id| id.hex().starts_with(hex));
    match (hits.next(), hits.next()) {
        (Some(id), None) => Ok(id.clone()),
        (Some(_), Some(_)) => Err(Error::AmbiguousId(name.to_owned())),
        _ => Err(Error::ImageNotFound(name.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::ImageRecord;

    fn state_with(ids: &[&str]) -> MetaState {
        let mut s = MetaState::default();
        for hex in ids {
            let id = Digest::from_hex(&hex.repeat(64 / hex.len())).unwrap();
            let rec = ImageRecord {
                manifest_digest: Digest::of(hex.as_bytes()),
                manifest_media_type: String::new(),
                manifest_size: 0,
                config_size: 0,
                layers: Vec::new(),
                created: None,
                added: String::new(),
                sources: Vec::new(),
                index_digests: Vec::new(),
            };
            s.images.insert(id, rec);
        }
        s
    }

    #[test]
    fn resolve_follows_dockers_order() {
        let mut s = state_with(&["ab", "ac", "ff"]);
        let ab = Digest::from_hex(&"ab".repeat(32)).unwrap();
        let ff = Digest::from_hex(&"f".repeat(64)).unwrap();
        // A tag named like a hex prefix wins over the prefix.
        s.tags.insert(Reference::parse("ff").unwrap(), ab.clone());
        assert_eq!(resolve(&s, "ff").unwrap(), ab);
        assert_eq!(resolve(&s, "sha256:ff").unwrap(), ff);
        assert_eq!(resolve(&s, "fff").unwrap(), ff);
        assert!(matches!(resolve(&s, "a"), Err(Error::AmbiguousId(_))));
        assert_eq!(resolve(&s, "aba").unwrap(), ab);
        assert!(matches!(
            resolve(&s, "sha256:"),
            Err(Error::ImageNotFound(_))
        ));
        assert!(matches!(
            resolve(&s, "nothing"),
            Err(Error::ImageNotFound(_))
        ));
        // name@digest: by manifest digest.
        let by_manifest = format!("busybox@{}", Digest::of(b"ac"));
        let ac = Digest::from_hex(&"ac".repeat(32)).unwrap();
        assert_eq!(resolve(&s, &by_manifest).unwrap(), ac);
    }
}
