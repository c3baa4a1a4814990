//! Image references (`registry/repository:tag@sha256:…`) with Docker's grammar and normalisation.
//!
//! `busybox` means `docker.io/library/busybox:latest`, exactly as the docker CLI reads it: a first
//! path component that contains `.` or `:`, is `localhost`, or has an uppercase letter names a
//! registry; anything else is a repository on Docker Hub, and single-component Hub names live under
//! `library/`. `Display` always prints the fully qualified form; [`Reference::familiar`] prints the
//! short form Docker shows to users.

use crate::digest::{Digest, DigestError};
use std::fmt;
use std::str::FromStr;

/// Registry used when a reference names none.
const DEFAULT_REGISTRY: &str = "docker.io";
/// Old spelling of Docker Hub, normalised to [`DEFAULT_REGISTRY`].
const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
/// Namespace of Docker Hub's official images.
const OFFICIAL_PREFIX: &str = "library/";
/// Tag implied when neither a tag nor a digest is given.
const DEFAULT_TAG: &str = "latest";
/// Longest fully qualified name (registry and repository, without tag or digest).
const NAME_MAX: usize = 255;
/// Longest tag.
const TAG_MAX: usize = 128;

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The string is empty.
    #[error("invalid reference format: image reference is empty")]
    Empty,
    /// The string, or the Docker Hub repository it names, is a 64-digit hex ID (which Docker
    /// refuses as a repository name: it reads as an image ID).
    #[error("invalid repository name ({reference}), cannot specify 64-byte hexadecimal strings")]
    HexIdentifier {
        /// The input.
        reference: String,
    },
    /// The repository part contains uppercase letters.
    #[error("invalid reference format: repository name ({repository}) must be lowercase")]
    Uppercase {
        /// The input.
        reference: String,
        /// The offending repository path.
        repository: String,
    },
    /// The registry part is not `host[:port]`.
    #[error(
        "invalid reference format: registry {registry:?} in {reference:?} is not a valid host[:port]"
    )]
    InvalidRegistry {
        /// The input.
        reference: String,
        /// The offending registry.
        registry: String,
    },
    /// A path component of the repository breaks the grammar.
    #[error(
        "invalid reference format: repository path component {component:?} in {reference:?} must be lowercase letters and digits, separated by '.', '_', '__' or dashes"
    )]
    InvalidPathComponent {
        /// The input.
        reference: String,
        /// The offending component (may be empty).
        component: String,
    },
    /// The fully qualified name is longer than 255 characters.
    #[error(
        "invalid reference format: repository name {name:?} is {len} characters long, the limit is 255"
    )]
    NameTooLong {
        /// The fully qualified name.
        name: String,
        /// Its length.
        len: usize,
    },
    /// The tag breaks `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    #[error(
        "invalid reference format: tag {tag:?} in {reference:?} must be 1 to 128 of letters, digits, '_', '.', '-', not starting with '.' or '-'"
    )]
    InvalidTag {
        /// The input.
        reference: String,
        /// The offending tag.
        tag: String,
    },
    /// The part after `@` is not a digest.
    #[error("invalid reference format: digest in {reference:?}: {source}")]
    InvalidDigest {
        /// The input.
        reference: String,
        /// Why the digest was rejected.
        source: DigestError,
    },
}

/// A normalised image reference: registry, repository, and a tag and/or a digest.
///
/// Field order gives the derived `Ord`: by registry, then repository, tag, digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises a reference as the docker CLI does (`busybox` → `docker.io/library/busybox:latest`).
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if s.len() == 64 && is_lower_hex(s) {
            return Err(ReferenceError::HexIdentifier {
                reference: s.to_owned(),
            });
        }
        let (name_and_tag, digest) = match s.split_once('@') {
            Some((left, d)) => {
                let digest =
                    d.parse::<Digest>()
                        .map_err(|source| ReferenceError::InvalidDigest {
                            reference: s.to_owned(),
                            source,
                        })?;
                (left, Some(digest))
            }
            None => (s, None),
        };
        let (registry, remainder) = split_registry(name_and_tag);
        // The remainder is path components and maybe a tag; path components never hold ':'.
        let (path, tag) = match remainder.split_once(':') {
            Some((p, t)) => (p, Some(t)),
            None => (remainder, None),
        };
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            // Docker names the repository as normalised, e.g. `library/Busybox`.
            let hub = matches!(
                registry,
                None | Some(DEFAULT_REGISTRY | LEGACY_DEFAULT_REGISTRY)
            );
            let prefix = if hub && !path.contains('/') {
                OFFICIAL_PREFIX
            } else {
                ""
            };
            return Err(ReferenceError::Uppercase {
                reference: s.to_owned(),
                repository: format!("{prefix}{path}"),
            });
        }
        if let Some(reg) = registry
            && !is_registry(reg)
        {
            return Err(ReferenceError::InvalidRegistry {
                reference: s.to_owned(),
                registry: reg.to_owned(),
            });
        }
        for component in path.split('/') {
            if !is_path_component(component) {
                return Err(ReferenceError::InvalidPathComponent {
                    reference: s.to_owned(),
                    component: component.to_owned(),
                });
            }
        }
        if let Some(t) = tag
            && !is_valid_tag(t)
        {
            return Err(ReferenceError::InvalidTag {
                reference: s.to_owned(),
                tag: t.to_owned(),
            });
        }

        let registry = match registry {
            None | Some(LEGACY_DEFAULT_REGISTRY) => DEFAULT_REGISTRY,
            Some(r) => r,
        };
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("{OFFICIAL_PREFIX}{path}")
        } else {
            path.to_owned()
        };
        // `docker.io/library/<64 hex>` would be shown (familiar name) as a bare 64-digit hex
        // string, which reads back as an image ID: refuse it as Docker refuses that string.
        if registry == DEFAULT_REGISTRY
            && repository
                .strip_prefix(OFFICIAL_PREFIX)
                .is_some_and(|p| p.len() == 64 && is_lower_hex(p))
        {
            return Err(ReferenceError::HexIdentifier {
                reference: s.to_owned(),
            });
        }
        let name_len = registry.len() + 1 + repository.len();
        if name_len > NAME_MAX {
            return Err(ReferenceError::NameTooLong {
                name: format!("{registry}/{repository}"),
                len: name_len,
            });
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry: registry.to_owned(),
            repository,
            tag,
            digest,
        })
    }

    /// The registry host (and port), e.g. `docker.io` or `localhost:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path within the registry, e.g. `library/busybox`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag; `Some("latest")` when the parsed string gave neither tag nor digest.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference pins one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The fully qualified name without tag or digest, e.g. `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository with `tag` (a digest, if any, is kept, as Docker's `WithTag` does).
    ///
    /// # Panics
    /// If `tag` is not a valid tag (see [`is_valid_tag`]); use [`Reference::try_with_tag`] for
    /// user input.
    pub fn with_tag(&self, tag: &str) -> Reference {
        match self.try_with_tag(tag) {
            Ok(r) => r,
            Err(e) => panic!("Reference::with_tag called with an invalid tag: {e}"),
        }
    }

    /// The same repository with `tag`, or an error if `tag` breaks the tag grammar.
    pub fn try_with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        if !is_valid_tag(tag) {
            return Err(ReferenceError::InvalidTag {
                reference: format!("{}:{tag}", self.name()),
                tag: tag.to_owned(),
            });
        }
        Ok(Reference {
            tag: Some(tag.to_owned()),
            ..self.clone()
        })
    }

    /// The same repository pinned to `digest`, keeping the tag.
    pub fn with_digest(&self, digest: &Digest) -> Reference {
        Reference {
            digest: Some(digest.clone()),
            ..self.clone()
        }
    }

    /// The same reference without its digest (the tag, if any, is kept).
    pub fn without_digest(&self) -> Reference {
        Reference {
            digest: None,
            ..self.clone()
        }
    }

    /// Docker's short form with tag and digest: `busybox:latest`, `localhost:5000/x:1`.
    pub fn familiar(&self) -> String {
        let mut out = self.familiar_name();
        self.push_tag_and_digest(&mut out);
        out
    }

    /// Docker's short name without tag or digest (`docker images` REPOSITORY column): `busybox`.
    pub fn familiar_name(&self) -> String {
        if self.registry != DEFAULT_REGISTRY {
            return self.name();
        }
        match self.repository.strip_prefix(OFFICIAL_PREFIX) {
            Some(short) if !short.contains('/') => short.to_owned(),
            // Docker would print `a.b/c` for `docker.io/a.b/c`, which reads back as registry
            // `a.b`; keeping the registry makes the short form mean the same image.
            _ if split_registry(&self.repository).0.is_some() => self.name(),
            _ => self.repository.clone(),
        }
    }

    fn push_tag_and_digest(&self, out: &mut String) {
        if let Some(t) = &self.tag {
            out.push(':');
            out.push_str(t);
        }
        if let Some(d) = &self.digest {
            out.push('@');
            out.push_str(&d.to_string());
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.name();
        self.push_tag_and_digest(&mut out);
        f.write_str(&out)
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Reference::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Whether `s` is a hex prefix of an image or container ID, as Docker accepts them: 1 to 64
/// lowercase hex digits, optionally after `sha256:`.
pub fn looks_like_id(s: &str) -> bool {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    !hex.is_empty() && hex.len() <= 64 && is_lower_hex(hex)
}

/// Whether `tag` matches Docker's tag grammar `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= TAG_MAX
        && is_word(b[0])
        && b[1..].iter().all(|&c| is_word(c) || c == b'.' || c == b'-')
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Splits off the registry the way Docker's `splitDockerDomain` decides it.
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

/// `host[:port]`, where host is dot-separated labels or a bracketed IPv6 address.
fn is_registry(s: &str) -> bool {
    let (host_ok, port) = if let Some(inner) = s.strip_prefix('[') {
        let Some((addr, after)) = inner.split_once(']') else {
            return false;
        };
        let addr_ok = !addr.is_empty() && addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        let port = match after {
            "" => None,
            p => match p.strip_prefix(':') {
                Some(port) => Some(port),
                None => return false,
            },
        };
        (addr_ok, port)
    } else {
        let (host, port) = match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        (
            !host.is_empty() && host.split('.').all(is_domain_label),
            port,
        )
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

/// `[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`.
fn is_domain_label(label: &str) -> bool {
    let b = label.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        }
        _ => false,
    }
}

/// Whether `s` is one `/`-separated component of a repository name:
/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`.
pub fn is_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut i = 0;
    loop {
        // A run of lowercase letters and digits.
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        // A separator, which must be followed by another run.
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn parse(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    /// (input, registry, repository, tag, Display, familiar); `@D` stands for `@sha256:<HEX>`.
    type Good = (
        &'static str,
        &'static str,
        &'static str,
        Option<&'static str>,
        &'static str,
        &'static str,
    );

    #[rustfmt::skip]
    const GOOD: &[Good] = &[
        ("busybox", "docker.io", "library/busybox", Some("latest"), "docker.io/library/busybox:latest", "busybox:latest"),
        ("busybox:1.36", "docker.io", "library/busybox", Some("1.36"), "docker.io/library/busybox:1.36", "busybox:1.36"),
        ("library/busybox", "docker.io", "library/busybox", Some("latest"), "docker.io/library/busybox:latest", "busybox:latest"),
        ("docker.io/busybox", "docker.io", "library/busybox", Some("latest"), "docker.io/library/busybox:latest", "busybox:latest"),
        ("index.docker.io/library/busybox:x", "docker.io", "library/busybox", Some("x"), "docker.io/library/busybox:x", "busybox:x"),
        ("index.docker.io/busybox", "docker.io", "library/busybox", Some("latest"), "docker.io/library/busybox:latest", "busybox:latest"),
        ("user/app:v1", "docker.io", "user/app", Some("v1"), "docker.io/user/app:v1", "user/app:v1"),
        ("library/a/b", "docker.io", "library/a/b", Some("latest"), "docker.io/library/a/b:latest", "library/a/b:latest"),
        ("localhost/x", "localhost", "x", Some("latest"), "localhost/x:latest", "localhost/x:latest"),
        ("localhost:5000/x:1", "localhost:5000", "x", Some("1"), "localhost:5000/x:1", "localhost:5000/x:1"),
        ("localhost:5000/a/b:t@D", "localhost:5000", "a/b", Some("t"), "localhost:5000/a/b:t@D", "localhost:5000/a/b:t@D"),
        ("busybox@D", "docker.io", "library/busybox", None, "docker.io/library/busybox@D", "busybox@D"),
        ("localhost:5000", "docker.io", "library/localhost", Some("5000"), "docker.io/library/localhost:5000", "localhost:5000"),
        ("ghcr.io/o/r/s:T_a.g-9", "ghcr.io", "o/r/s", Some("T_a.g-9"), "ghcr.io/o/r/s:T_a.g-9", "ghcr.io/o/r/s:T_a.g-9"),
        ("[::1]:5000/foo", "[::1]:5000", "foo", Some("latest"), "[::1]:5000/foo:latest", "[::1]:5000/foo:latest"),
        ("192.168.1.2:443/a__b.c_d---e", "192.168.1.2:443", "a__b.c_d---e", Some("latest"), "192.168.1.2:443/a__b.c_d---e:latest", "192.168.1.2:443/a__b.c_d---e:latest"),
        ("Registry/foo", "Registry", "foo", Some("latest"), "Registry/foo:latest", "Registry/foo:latest"),
        ("my-reg.example.com/x", "my-reg.example.com", "x", Some("latest"), "my-reg.example.com/x:latest", "my-reg.example.com/x:latest"),
        ("docker.io/a.b/c", "docker.io", "a.b/c", Some("latest"), "docker.io/a.b/c:latest", "docker.io/a.b/c:latest"),
        ("docker.io/localhost/c", "docker.io", "localhost/c", Some("latest"), "docker.io/localhost/c:latest", "docker.io/localhost/c:latest"),
        ("abc", "docker.io", "library/abc", Some("latest"), "docker.io/library/abc:latest", "abc:latest"),
    ];

    #[test]
    fn good_references_normalise_like_docker() {
        let d = format!("sha256:{HEX}");
        let expand = |s: &str| s.replace("@D", &format!("@{d}"));
        for &(input, registry, repository, tag, display, familiar) in GOOD {
            let (input, display, familiar) = (expand(input), expand(display), expand(familiar));
            let r = parse(&input);
            assert_eq!(r.registry(), registry, "{input}");
            assert_eq!(r.repository(), repository, "{input}");
            assert_eq!(r.tag(), tag, "{input}");
            let digest = input.contains('@').then(|| d.clone());
            assert_eq!(r.digest().map(|x| x.to_string()), digest, "{input}");
            assert_eq!(r.to_string(), display, "{input}");
            assert_eq!(r.familiar(), familiar, "{input}");
            assert_eq!(parse(&display), r, "display of {input} re-parses");
            assert_eq!(parse(&familiar), r, "familiar of {input} re-parses");
        }
    }

    #[test]
    fn bad_references_are_rejected_with_the_right_error() {
        use ReferenceError as E;
        let long_tag = "a".repeat(129);
        let long_name = format!("{}/{}", "a".repeat(200), "b".repeat(60));
        type Check = fn(&E) -> bool;
        let bad: Vec<(String, Check)> = vec![
            ("".into(), |e| matches!(e, E::Empty)),
            (HEX.into(), |e| matches!(e, E::HexIdentifier { .. })),
            ("Busybox".into(), |e| matches!(e, E::Uppercase { .. })),
            ("docker.io/Library/busybox".into(), |e| {
                matches!(e, E::Uppercase { .. })
            }),
            ("Registry/Foo".into(), |e| matches!(e, E::Uppercase { .. })),
            ("busybox:".into(), |e| matches!(e, E::InvalidTag { .. })),
            ("busybox:.x".into(), |e| matches!(e, E::InvalidTag { .. })),
            ("busybox:-x".into(), |e| matches!(e, E::InvalidTag { .. })),
            ("busybox:a:b".into(), |e| matches!(e, E::InvalidTag { .. })),
            (format!("busybox:{long_tag}"), |e| {
                matches!(e, E::InvalidTag { .. })
            }),
            ("busybox@".into(), |e| matches!(e, E::InvalidDigest { .. })),
            ("busybox@sha256:abc".into(), |e| {
                matches!(e, E::InvalidDigest { .. })
            }),
            (format!("busybox@md5:{HEX}"), |e| {
                matches!(e, E::InvalidDigest { .. })
            }),
            (format!("busybox@sha256:{HEX}@sha256:{HEX}"), |e| {
                matches!(e, E::InvalidDigest { .. })
            }),
            ("foo:tag/bar".into(), |e| {
                matches!(e, E::InvalidRegistry { .. })
            }),
            ("-reg.io/foo".into(), |e| {
                matches!(e, E::InvalidRegistry { .. })
            }),
            ("reg..io/foo".into(), |e| {
                matches!(e, E::InvalidRegistry { .. })
            }),
            ("reg.io:/foo".into(), |e| {
                matches!(e, E::InvalidRegistry { .. })
            }),
            ("[zz]:5000/foo".into(), |e| {
                matches!(e, E::InvalidRegistry { .. })
            }),
            ("[::1/foo".into(), |e| {
                matches!(e, E::InvalidRegistry { .. })
            }),
            ("/busybox".into(), |e| {
                matches!(e, E::InvalidPathComponent { .. })
            }),
            ("busybox/".into(), |e| {
                matches!(e, E::InvalidPathComponent { .. })
            }),
            ("a//b".into(), |e| {
                matches!(e, E::InvalidPathComponent { .. })
            }),
            ("a/.b".into(), |e| {
                matches!(e, E::InvalidPathComponent { .. })
            }),
            ("a/b.".into(), |e| {
                matches!(e, E::InvalidPathComponent { .. })
            }),
            ("a/b___c".into(), |e| {
                matches!(e, E::InvalidPathComponent { .. })
            }),
            ("a/b..c".into(), |e| {
                matches!(e, E::InvalidPathComponent { .. })
            }),
            ("a/b-".into(), |e| {
                matches!(e, E::InvalidPathComponent { .. })
            }),
            ("a/b c".into(), |e| {
                matches!(e, E::InvalidPathComponent { .. })
            }),
            ("a/b_.c".into(), |e| {
                matches!(e, E::InvalidPathComponent { .. })
            }),
            ("reg.io/".into(), |e| {
                matches!(e, E::InvalidPathComponent { .. })
            }),
            (":tag".into(), |e| {
                matches!(e, E::InvalidPathComponent { .. })
            }),
            ("ünï/x".into(), |e| {
                matches!(e, E::InvalidPathComponent { .. })
            }),
            (long_name, |e| matches!(e, E::NameTooLong { .. })),
        ];
        for (input, ok) in bad {
            match Reference::parse(&input) {
                Ok(r) => panic!("{input:?} should be rejected, parsed as {r}"),
                Err(e) => assert!(ok(&e), "{input:?} rejected with the wrong error: {e:?}"),
            }
        }
    }

    #[test]
    fn uppercase_error_says_lowercase() {
        let e = Reference::parse("Busybox").unwrap_err().to_string();
        assert!(
            e.contains("repository name (library/Busybox) must be lowercase"),
            "{e}"
        );
    }

    #[test]
    fn name_length_limit_counts_the_normalised_name() {
        // docker.io/library/ + 237 = 255 characters: the longest accepted name.
        let ok = "a".repeat(255 - "docker.io/library/".len());
        assert_eq!(parse(&ok).name().len(), 255);
        let too_long = "a".repeat(256 - "docker.io/library/".len());
        assert!(matches!(
            Reference::parse(&too_long),
            Err(ReferenceError::NameTooLong { len: 256, .. })
        ));
        // 128-character tag is the maximum.
        assert!(Reference::parse(&format!("a:{}", "t".repeat(128))).is_ok());
    }

    #[test]
    fn with_tag_and_digest_helpers() {
        let d: Digest = format!("sha256:{HEX}").parse().unwrap();
        let r = parse("busybox");
        let t = r.with_tag("1.36");
        assert_eq!(t.to_string(), "docker.io/library/busybox:1.36");
        let pinned = t.with_digest(&d);
        assert_eq!(pinned.familiar(), format!("busybox:1.36@sha256:{HEX}"));
        assert_eq!(
            pinned.with_tag("2").familiar(),
            format!("busybox:2@sha256:{HEX}")
        );
        assert_eq!(pinned.without_digest(), t);
        assert!(matches!(
            r.try_with_tag("bad tag"),
            Err(ReferenceError::InvalidTag { .. })
        ));
        assert_eq!(pinned.familiar_name(), "busybox");
        assert_eq!(
            parse("localhost:5000/x:1").familiar_name(),
            "localhost:5000/x"
        );
        assert_eq!(parse("user/app").familiar_name(), "user/app");
        assert_eq!(pinned.name(), "docker.io/library/busybox");
    }

    #[test]
    #[should_panic(expected = "invalid tag")]
    fn with_tag_panics_on_an_invalid_tag() {
        let _ = parse("busybox").with_tag(":nope");
    }

    #[test]
    fn serde_uses_the_display_string_and_normalises_on_read() {
        let r = parse("busybox");
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, "\"docker.io/library/busybox:latest\"");
        assert_eq!(serde_json::from_str::<Reference>(&json).unwrap(), r);
        assert_eq!(serde_json::from_str::<Reference>("\"busybox\"").unwrap(), r);
        assert!(serde_json::from_str::<Reference>("\"Busybox\"").is_err());
    }

    #[test]
    fn ordering_and_from_str() {
        let mut v: Vec<Reference> = ["b", "a:2", "a:1", "localhost/a"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        v.sort();
        let shown: Vec<String> = v.iter().map(Reference::familiar).collect();
        assert_eq!(shown, ["a:1", "a:2", "b:latest", "localhost/a:latest"]);
        assert_eq!(format!("{:?}", v[0]), "Reference(docker.io/library/a:1)");
    }

    #[test]
    fn looks_like_id_follows_docker() {
        assert!(looks_like_id("a"));
        assert!(looks_like_id("0123456789ab"));
        assert!(looks_like_id(HEX));
        assert!(looks_like_id(&format!("sha256:{HEX}")));
        assert!(looks_like_id("sha256:abc"));
        assert!(!looks_like_id(""));
        assert!(!looks_like_id("sha256:"));
        assert!(!looks_like_id("busybox"));
        assert!(!looks_like_id("ABC"));
        assert!(!looks_like_id(&format!("{HEX}0")));
        assert!(!looks_like_id("md5:abc"));
    }

    /// Found by fuzzing (`reference_parse`): `<64 hex>:tag` parsed, but its familiar name, the
    /// bare hex string `images` prints, did not parse back (it reads as an image ID).
    #[test]
    fn hex_repository_with_tag_is_refused() {
        for s in [
            format!("{HEX}:aac"),
            format!("docker.io/{HEX}:v1"),
            format!("library/{HEX}"),
            format!("{HEX}@sha256:{HEX}"),
        ] {
            assert!(
                matches!(
                    Reference::parse(&s),
                    Err(ReferenceError::HexIdentifier { .. })
                ),
                "{s}"
            );
        }
        // Not on Docker Hub's official prefix, the hex name is unambiguous.
        let r = Reference::parse(&format!("example.com/{HEX}:v1")).unwrap();
        assert_eq!(
            Reference::parse(&r.familiar_name()).unwrap().name(),
            r.name()
        );
        let r = Reference::parse(&format!("someone/{HEX}")).unwrap();
        assert_eq!(
            Reference::parse(&r.familiar_name()).unwrap().name(),
            r.name()
        );
    }

    #[test]
    fn path_component_grammar() {
        for good in [
            "a",
            "a0",
            "a.b",
            "a_b",
            "a__b",
            "a-b",
            "a---b",
            "a.b_c__d-e",
        ] {
            assert!(is_path_component(good), "{good}");
        }
        for bad in [
            "", "A", "_a", "a_", "a___b", "a..b", "a._b", "-a", "a-", "a/b",
        ] {
            assert!(!is_path_component(bad), "{bad}");
        }
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        fn path_component() -> impl Strategy<Value = String> {
            "[a-z0-9]{1,6}((\\.|_|__|-{1,3})[a-z0-9]{1,6}){0,2}"
        }

        fn registry() -> impl Strategy<Value = Option<String>> {
            prop_oneof![
                Just(None),
                Just(Some("docker.io".to_owned())),
                Just(Some("index.docker.io".to_owned())),
                Just(Some("localhost".to_owned())),
                "[a-z0-9]{1,8}(\\.[a-z0-9]{1,8}){1,2}(:[0-9]{1,5})?".prop_map(Some),
                "[a-zA-Z0-9]{1,8}:[0-9]{1,5}".prop_map(Some),
                Just(Some("[::1]:5000".to_owned())),
            ]
        }

        fn input() -> impl Strategy<Value = String> {
            (
                registry(),
                prop::collection::vec(path_component(), 1..4),
                prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
                prop::option::of("[0-9a-f]{64}"),
            )
                // Without a registry, a first component with '.' or equal to "localhost" would
                // itself be read as a registry, so such inputs mean something else.
                .prop_filter(
                    "first component looks like a registry",
                    |(reg, path, _, _)| {
                        reg.is_some() || !(path[0].contains('.') || path[0] == "localhost")
                    },
                )
                .prop_map(|(reg, path, tag, digest)| {
                    let mut s = String::new();
                    if let Some(r) = reg {
                        s.push_str(&r);
                        s.push('/');
                    }
                    s.push_str(&path.join("/"));
                    if let Some(t) = tag {
                        s.push(':');
                        s.push_str(&t);
                    }
                    if let Some(d) = digest {
                        s.push_str("@sha256:");
                        s.push_str(&d);
                    }
                    s
                })
        }

        proptest! {
            #[test]
            fn display_and_familiar_round_trip(s in input()) {
                let r = Reference::parse(&s).map_err(|e| TestCaseError::fail(format!("{s:?}: {e}")))?;
                prop_assert_eq!(Reference::parse(&r.to_string()).unwrap(), r.clone());
                prop_assert_eq!(Reference::parse(&r.familiar()).unwrap(), r.clone());
                prop_assert_eq!(Reference::parse(&r.familiar_name()).unwrap().name(), r.name());
                prop_assert!(r.tag().is_some() || r.digest().is_some());
            }

            #[test]
            fn any_accepted_string_round_trips(
                s in prop_oneof!["\\PC{0,80}", "[a-zA-Z0-9._:/@\\[\\]-]{0,40}"]
            ) {
                if let Ok(r) = Reference::parse(&s) {
                    prop_assert_eq!(Reference::parse(&r.to_string()).unwrap(), r.clone());
                    prop_assert_eq!(Reference::parse(&r.familiar()).unwrap(), r);
                }
            }
        }
    }
}
