//! Image references (placeholder until the reference parser lands).
