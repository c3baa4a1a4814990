//! Manifests, indexes and configs as they come from a registry: media types, parsing with clear
//! errors, and platform selection from an index.
