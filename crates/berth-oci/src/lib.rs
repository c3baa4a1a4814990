//! berth-oci: the vocabulary of OCI images shared by every berth crate — digests, media types,
//! image references with Docker's normalisation — plus thin helpers over `oci-spec`.
//!
//! Pure data and parsing: this crate does no I/O.
#![deny(missing_docs)]

pub mod digest;
pub mod media_type;
pub mod reference;

pub use digest::{Digest, DigestError, Digester};
pub use reference::{Reference, ReferenceError, is_valid_tag, looks_like_id};

pub use oci_spec;
