//! berth-oci: the vocabulary of OCI images shared by every berth crate — digests, media types,
//! descriptors and platforms, image references with Docker's normalisation, RFC 3339 time — plus
//! thin helpers over `oci-spec`.
//!
//! Pure data and parsing: this crate does no I/O.
#![deny(missing_docs)]

pub mod descriptor;
pub mod digest;
pub mod media_type;
pub mod reference;
pub mod time;

pub use descriptor::{Descriptor, Platform, PlatformError};
pub use digest::{Digest, DigestError, Digester};
pub use reference::{Reference, ReferenceError, is_valid_tag, looks_like_id};

pub use oci_spec;
