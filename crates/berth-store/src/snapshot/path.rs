//! Lexical cleaning of the paths written in layer entries, before anything touches the disk.
//!
//! The result is relative, has no empty, `.` or `..` components and no NUL bytes. `..` is applied
//! lexically (as Docker's `filepath.Clean` does, so `a/../b` is `b`); one that would climb above
//! the root is refused. Symlinks are not considered here: every cleaned path is later resolved
//! with `RESOLVE_IN_ROOT`, which confines them.

/// Why an entry path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathProblem {
    /// A `..` would leave the root.
    Escapes,
    /// The path contains a NUL byte, which no syscall can take.
    Nul,
}

impl PathProblem {
    /// The reason as the predicate of an error message about an entry.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            PathProblem::Escapes => "escapes the rootfs",
            PathProblem::Nul => "has a NUL byte in its path",
        }
    }
}

/// Cleans `raw` into `out` (cleared first; reused between entries to avoid allocations).
/// An empty result means the root itself.
pub(crate) fn clean(raw: &[u8], out: &mut Vec<u8>) -> Result<(), PathProblem> {
    out.clear();
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                if out.is_empty() {
                    return Err(PathProblem::Escapes);
                }
                let cut = out.iter().rposition(|b| *b == b'/').unwrap_or(0);
                out.truncate(cut);
            }
            c => {
                if c.contains(&0) {
                    return Err(PathProblem::Nul);
                }
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    Ok(())
}

/// Splits a cleaned, non-empty path into its parent (possibly empty) and final component.
pub(crate) fn split(clean: &[u8]) -> (&[u8], &[u8]) {
    match clean.iter().rposition(|b| *b == b'/') {
        Some(i) => (&clean[..i], &clean[i + 1..]),
        None => (&[], clean),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(s: &str) -> Result<String, PathProblem> {
        let mut out = Vec::new();
        clean(s.as_bytes(), &mut out).map(|()| String::from_utf8(out).unwrap())
    }

    #[test]
    fn cleans_like_docker() {
        assert_eq!(c("./bin/sh").unwrap(), "bin/sh");
        assert_eq!(c("/etc//passwd/").unwrap(), "etc/passwd");
        assert_eq!(c("a/../b").unwrap(), "b");
        assert_eq!(c("a/b/../../c/./d").unwrap(), "c/d");
        assert_eq!(c("./").unwrap(), "");
        assert_eq!(c("/").unwrap(), "");
        assert_eq!(c("a/..").unwrap(), "");
    }

    #[test]
    fn refuses_climbing_out_and_nul() {
        assert_eq!(c("../etc/passwd"), Err(PathProblem::Escapes));
        assert_eq!(c("a/../../etc"), Err(PathProblem::Escapes));
        assert_eq!(c("/../x"), Err(PathProblem::Escapes));
        assert_eq!(c("a\0b"), Err(PathProblem::Nul));
    }

    #[test]
    fn splits_parent_and_name() {
        assert_eq!(split(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split(b"c"), (&b""[..], &b"c"[..]));
    }

    proptest! {
        #[test]
        fn cleaned_paths_have_only_normal_components(raw in proptest::collection::vec(
            prop_oneof![Just(".."), Just("."), Just(""), Just("a"), Just("b.c"), Just("/")], 0..12)) {
            let raw = raw.join("/");
            let mut out = Vec::new();
            if clean(raw.as_bytes(), &mut out).is_ok() {
                for comp in out.split(|b| *b == b'/') {
                    prop_assert!(out.is_empty() || (!comp.is_empty() && comp != b"." && comp != b".."));
                }
                prop_assert!(!out.starts_with(b"/"));
            }
        }
    }
}
