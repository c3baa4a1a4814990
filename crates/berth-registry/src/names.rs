//! Repository names, tags and digests, validated against the distribution spec's grammar before
//! anything is looked up or stored under them.

use berth_oci::digest::Digest;
use berth_oci::reference::{is_path_component, is_valid_tag};

/// The longest repository name accepted (distribution's limit).
pub const MAX_NAME: usize = 255;

/// A name, tag or digest that does not follow the grammar (the HTTP layer answers it with the
/// spec's `NAME_INVALID`, `TAG_INVALID` or `DIGEST_INVALID`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not a repository name.
    #[error("invalid repository name {0:?}")]
    Name(String),
    /// Not a tag.
    #[error("invalid tag {0:?}")]
    Tag(String),
    /// Not a digest.
    #[error("invalid digest {0:?}")]
    Digest(String),
}

/// Checks a repository name: `/`-separated components of `[a-z0-9]+` joined by `.`, `_`, `__` or
/// runs of `-`.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() || name.len() > MAX_NAME || !name.split('/').all(is_path_component) {
        return Err(NameError::Name(name.to_string()));
    }
    Ok(())
}

/// Checks a tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn check_tag(tag: &str) -> Result<(), NameError> {
    if is_valid_tag(tag) {
        Ok(())
    } else {
        Err(NameError::Tag(tag.to_string()))
    }
}

/// Parses a digest (`sha256:<64 lowercase hex>`), or says why it is not one.
pub fn parse_digest(s: &str) -> Result<Digest, NameError> {
    s.parse::<Digest>()
        .map_err(|_| NameError::Digest(s.to_string()))
}

/// Whether a manifest reference (the last path segment) is a digest rather than a tag.
pub fn is_digest_reference(reference: &str) -> bool {
    reference.contains(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_grammar() {
        for ok in [
            "a",
            "a/b",
            "library/busybox",
            "a.b/c_d/e__f/g-h/i---j",
            "0/9",
        ] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "A", "a/", "/a", "a//b", "a/../b", "..", "a_", "_a", "a___b", "a.-b", "a/_blobs",
            "a b", "a:b",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name(&"a".repeat(256)).is_err());
    }

    #[test]
    fn tags_follow_the_grammar() {
        for ok in ["latest", "v1.0", "_x", "A-b_c.d", &"a".repeat(128)] {
            assert!(check_tag(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", &"a".repeat(129)] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }
}
