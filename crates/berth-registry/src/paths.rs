//! The storage layout, written down in one place. Every key the registry reads or writes is made
//! here; nothing else formats keys.
//!
//! ```text
//! blobs/sha256/<hex>                               blob bytes, manifests included (content-addressed,
//!                                                  shared by every repository)
//! repositories/<name>/_blobs/<hex>                 link: the repository holds this blob (empty object;
//!                                                  its modification time is when it was last linked)
//! repositories/<name>/_manifests/<hex>             link: the repository holds this manifest; JSON
//!                                                  [`crate::paths::ManifestLink`]
//! repositories/<name>/_tags/<tag>                  the tag: JSON [`crate::paths::TagLink`]
//! repositories/<name>/_referrers/<subject-hex>/<hex>
//!                                                  a manifest whose `subject` is <subject-hex>: JSON
//!                                                  OCI descriptor, as served by the referrers API
//! catalog/<name>/_repo                             the repository exists (for `_catalog`, cheap to list)
//! uploads/<id>/info                                an upload session: JSON [`crate::paths::UploadInfo`]
//! uploads/<id>/chunks/<offset:020>[-<writer>]      the session's data, one object per chunk
//! uploads/<id>/sums/<offset:020>[-<writer>]        that chunk's own sha256 and size (JSON)
//! events/<unix-nanos:020>-<rand>                   a change, for search indexes on every instance: JSON
//!                                                  [`crate::paths::Event`]
//! gc/sweeping/<id>                                 a garbage collector is deleting blobs (a lease; JSON
//!                                                  with its start time)
//! ```
//!
//! Repository names and tags are validated ([`crate::names`]) before they reach this module, so no
//! key can escape its prefix; components starting with `_` can never be part of a repository name.

use serde::{Deserialize, Serialize};

/// The key of a blob's bytes.
pub fn blob(hex: &str) -> String {
    format!("blobs/sha256/{hex}")
}

/// The prefix under which all blobs live.
pub const BLOBS: &str = "blobs/sha256";

/// The prefix of one repository's data.
pub fn repo(name: &str) -> String {
    format!("repositories/{name}")
}

/// The link saying that `name` holds blob `hex`.
pub fn blob_link(name: &str, hex: &str) -> String {
    format!("repositories/{name}/_blobs/{hex}")
}

/// The prefix of a repository's blob links.
pub fn blob_links(name: &str) -> String {
    format!("repositories/{name}/_blobs")
}

/// The link saying that `name` holds manifest `hex`.
pub fn manifest_link(name: &str, hex: &str) -> String {
    format!("repositories/{name}/_manifests/{hex}")
}

/// The prefix of a repository's manifest links.
pub fn manifest_links(name: &str) -> String {
    format!("repositories/{name}/_manifests")
}

/// A tag of a repository.
pub fn tag(name: &str, tag: &str) -> String {
    format!("repositories/{name}/_tags/{tag}")
}

/// The prefix of a repository's tags.
pub fn tags(name: &str) -> String {
    format!("repositories/{name}/_tags")
}

/// The entry saying that manifest `hex` of `name` refers to `subject_hex`.
pub fn referrer(name: &str, subject_hex: &str, hex: &str) -> String {
    format!("repositories/{name}/_referrers/{subject_hex}/{hex}")
}

/// The prefix of the referrers of one subject.
pub fn referrers(name: &str, subject_hex: &str) -> String {
    format!("repositories/{name}/_referrers/{subject_hex}")
}

/// The marker saying that a repository exists.
pub fn catalog_entry(name: &str) -> String {
    format!("catalog/{name}/_repo")
}

/// The prefix of the catalog markers.
pub const CATALOG: &str = "catalog";

/// The repository name in a catalog marker's key, if it is one.
pub fn catalog_name(key: &str) -> Option<&str> {
    key.strip_prefix("catalog/")?.strip_suffix("/_repo")
}

/// An upload session's description.
pub fn upload_info(id: &str) -> String {
    format!("uploads/{id}/info")
}

/// The prefix of an upload session's chunks.
pub fn upload_chunks(id: &str) -> String {
    format!("uploads/{id}/chunks")
}

/// One chunk of an upload session, starting at `offset`.
pub fn upload_chunk(id: &str, offset: u64) -> String {
    format!("uploads/{id}/chunks/{offset:020}")
}

/// The offset a chunk key starts at.
pub fn chunk_offset(key: &str) -> Option<u64> {
    key.rsplit('/').next()?.parse().ok()
}

/// The sidecar recording one chunk's own sha256 and size (JSON), written after the chunk, so a
/// single-chunk upload can be published without re-reading it.
pub fn upload_sum(id: &str, offset: u64) -> String {
    format!("uploads/{id}/sums/{offset:020}")
}

/// One chunk of an upload session as written by one request, starting at `offset`; `writer`
/// (random, one per request) keeps requests racing for the same offset apart, so a chunk's
/// sidecar always describes the very object beside it.
pub fn upload_chunk_by(id: &str, offset: u64, writer: &str) -> String {
    format!("uploads/{id}/chunks/{offset:020}-{writer}")
}

/// The sidecar (the chunk's own sha256 and size, JSON) of the chunk [`upload_chunk_by`] names.
pub fn upload_sum_by(id: &str, offset: u64, writer: &str) -> String {
    format!("uploads/{id}/sums/{offset:020}-{writer}")
}

/// The offset and writer in a chunk key made by [`upload_chunk_by`].
pub fn chunk_part(key: &str) -> Option<(u64, &str)> {
    let (offset, writer) = key.rsplit('/').next()?.split_once('-')?;
    Some((offset.parse().ok()?, writer))
}

/// The prefix of all upload sessions.
pub const UPLOADS: &str = "uploads";

/// The prefix of one upload session.
pub fn upload(id: &str) -> String {
    format!("uploads/{id}")
}

/// The prefix of the change events.
pub const EVENTS: &str = "events";

/// A new event key: sorts by time, unique across instances.
pub fn event(unix_nanos: u128) -> String {
    format!(
        "events/{unix_nanos:020}-{}",
        hex::encode(rand::random::<[u8; 6]>())
    )
}

/// The time (unix nanoseconds) in an event key.
pub fn event_time(key: &str) -> Option<u128> {
    key.strip_prefix("events/")?.split('-').next()?.parse().ok()
}

/// The prefix of the sweep leases of running garbage collectors.
pub const GC_SWEEPING: &str = "gc/sweeping";

/// One garbage collector's sweep lease.
pub fn gc_sweeping(id: &str) -> String {
    format!("gc/sweeping/{id}")
}

/// What a repository's manifest link holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ManifestLink {
    /// The media type the manifest was pushed with (its `Content-Type`).
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
}

/// What a tag holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TagLink {
    /// The manifest digest, `sha256:<hex>`.
    pub digest: String,
}

/// What an upload session's info holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UploadInfo {
    /// The repository it uploads into.
    pub repo: String,
    /// When it started (unix seconds).
    pub started: u64,
}

/// A change to the registry's contents, for search indexes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A manifest was pushed (and maybe tagged).
    ManifestPut {
        /// The repository.
        repo: String,
        /// `sha256:<hex>`.
        digest: String,
        /// The tag it was pushed under, if any.
        tag: Option<String>,
    },
    /// A manifest was deleted (with every tag pointing at it).
    ManifestDeleted {
        /// The repository.
        repo: String,
        /// `sha256:<hex>`.
        digest: String,
    },
    /// A tag was deleted.
    TagDeleted {
        /// The repository.
        repo: String,
        /// The tag.
        tag: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back() {
        assert_eq!(catalog_name(&catalog_entry("a/b-c/d")), Some("a/b-c/d"));
        assert_eq!(chunk_offset(&upload_chunk("x", 1234)), Some(1234));
        assert_eq!(
            chunk_part(&upload_chunk_by("x", 42, "ab")),
            Some((42, "ab"))
        );
        let e = event(42);
        assert_eq!(event_time(&e), Some(42));
        assert!(event(1) < event(2));
    }
}
