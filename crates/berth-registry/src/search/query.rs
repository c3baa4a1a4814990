//! The query language and the pagination cursor.
//!
//! A query is whitespace-separated terms that must ALL match, case-insensitively. A plain term
//! matches as a substring of the repository, the tag, the digest, a platform, or a label or
//! annotation key or value. Qualified terms narrow one field:
//!
//! | term | matches |
//! |---|---|
//! | `repo:NAME` | the repository name, whole (`*` is a wildcard: `repo:library/*`) |
//! | `tag:TAG` | the tag, whole (`*` is a wildcard; untagged manifests never match) |
//! | `digest:PREFIX` | digests starting with PREFIX (`sha256:` may be left out) |
//! | `label:KEY` / `label:KEY=VALUE` | a label with that key (and value) |
//! | `annotation:KEY` / `annotation:KEY=VALUE` | an annotation with that key (and value) |
//! | `platform:OS/ARCH[/VARIANT]` | a platform, whole; `platform:ARCH` or `platform:OS` also work |
//!
//! A word with a colon that is not one of these qualifiers (`sha256:ab12`) is a plain term.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::scan::ManifestSummary;

/// Why a query or cursor was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A qualifier was given with nothing after the colon.
    #[error("search term {0:?} has an empty value")]
    EmptyQualifier(String),
    /// A `platform:` value with too many parts.
    #[error("search term {0:?}: a platform is OS/ARCH or OS/ARCH/VARIANT")]
    BadPlatform(String),
    /// The `last` cursor was not one this registry hands out.
    #[error("pagination cursor {0:?} is not valid")]
    BadCursor(String),
}

/// One term of a query, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// A substring of any searchable field.
    Text(String),
    /// The repository name (glob).
    Repo(String),
    /// The tag (glob).
    Tag(String),
    /// A digest prefix, with `sha256:`.
    Digest(String),
    /// A label key and maybe its value.
    Label(String, Option<String>),
    /// An annotation key and maybe its value.
    Annotation(String, Option<String>),
    /// A platform or part of one.
    Platform(String),
}

/// A parsed query: every term must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// The terms.
    pub terms: Vec<Term>,
}

impl Query {
    /// Parses the query language described in this module's documentation.
    pub fn parse(q: &str) -> Result<Query, QueryError> {
        let mut terms = Vec::new();
        for word in q.split_whitespace() {
            let lower = word.to_lowercase();
            let term = match lower.split_once(':') {
                Some((qual, value)) => {
                    let known = matches!(
                        qual,
                        "repo" | "tag" | "digest" | "label" | "annotation" | "platform"
                    );
                    if known && value.is_empty() {
                        return Err(QueryError::EmptyQualifier(word.to_string()));
                    }
                    let kv = |v: &str| match v.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(v.to_string())),
                        None => (v.to_string(), None),
                    };
                    match qual {
                        "repo" => Term::Repo(value.to_string()),
                        "tag" => Term::Tag(value.to_string()),
                        "digest" if value.contains(':') => Term::Digest(value.to_string()),
                        "digest" => Term::Digest(format!("sha256:{value}")),
                        "label" => {
                            let (k, v) = kv(value);
                            Term::Label(k, v)
                        }
                        "annotation" => {
                            let (k, v) = kv(value);
                            Term::Annotation(k, v)
                        }
                        "platform" => {
                            if value.split('/').count() > 3 || value.split('/').any(str::is_empty) {
                                return Err(QueryError::BadPlatform(word.to_string()));
                            }
                            Term::Platform(value.to_string())
                        }
                        _ => Term::Text(lower.clone()),
                    }
                }
                None => Term::Text(lower),
            };
            terms.push(term);
        }
        Ok(Query { terms })
    }

    /// Whether a manifest, seen under a repository and maybe a tag, matches every term.
    pub fn matches(&self, repo: &str, tag: Option<&str>, m: &ManifestSummary) -> bool {
        let tag_lower = tag.map(str::to_lowercase);
        let tag_lower = tag_lower.as_deref();
        self.terms.iter().all(|t| match t {
            Term::Text(s) => {
                repo.to_lowercase().contains(s.as_str())
                    || tag_lower.is_some_and(|t| t.contains(s.as_str()))
                    || m.haystack.contains(s.as_str())
            }
            Term::Repo(g) => glob(g, &repo.to_lowercase()),
            Term::Tag(g) => tag_lower.is_some_and(|t| glob(g, t)),
            Term::Digest(p) => m.digest.starts_with(p.as_str()),
            Term::Label(k, v) => kv_match(&m.labels, k, v.as_deref()),
            Term::Annotation(k, v) => kv_match(&m.annotations, k, v.as_deref()),
            Term::Platform(p) => m.platforms.iter().any(|pl| {
                let pl = pl.to_lowercase();
                if p.contains('/') {
                    pl == *p || (p.matches('/').count() == 1 && pl.starts_with(&format!("{p}/")))
                } else {
                    pl.split('/').take(2).any(|part| part == p)
                }
            }),
        })
    }
}

fn kv_match(
    map: &std::collections::BTreeMap<String, String>,
    key: &str,
    value: Option<&str>,
) -> bool {
    map.iter()
        .any(|(k, v)| k.to_lowercase() == key && value.is_none_or(|want| v.to_lowercase() == want))
}

/// Whole-string match where `*` matches any run of characters.
fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) || s.len() < first.len() + last.len() || !s.ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// Where a result sits in the order of all results: repository, then tagged entries by tag,
/// then untagged manifests by digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// Repository name.
    pub repo: String,
    /// `false` for a tag, `true` for an untagged manifest (which sort after tags).
    pub untagged: bool,
    /// The tag or the digest.
    pub key: String,
}

impl Position {
    /// The opaque cursor clients pass back as `last`.
    pub fn encode(&self) -> String {
        let kind = if self.untagged { 'd' } else { 't' };
        URL_SAFE_NO_PAD.encode(format!("{}\n{kind}{}", self.repo, self.key))
    }

    /// Reads a cursor back.
    pub fn decode(cursor: &str) -> Result<Position, QueryError> {
        let bad = || QueryError::BadCursor(cursor.to_string());
        let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
        let text = String::from_utf8(raw).map_err(|_| bad())?;
        let (repo, rest) = text.split_once('\n').ok_or_else(bad)?;
        let untagged = match rest.chars().next() {
            Some('t') => false,
            Some('d') => true,
            _ => return Err(bad()),
        };
        Ok(Position {
            repo: repo.to_string(),
            untagged,
            key: rest[1..].to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualifiers_and_plain_terms() {
        let q = Query::parse(
            "  Alpine repo:lib/*  tag:3.* label:Maint=Me sha256:ab digest:cd platform:linux/arm64 ",
        )
        .unwrap();
        assert_eq!(
            q.terms,
            vec![
                Term::Text("alpine".into()),
                Term::Repo("lib/*".into()),
                Term::Tag("3.*".into()),
                Term::Label("maint".into(), Some("me".into())),
                Term::Text("sha256:ab".into()),
                Term::Digest("sha256:cd".into()),
                Term::Platform("linux/arm64".into()),
            ]
        );
        assert_eq!(Query::parse("").unwrap().terms, vec![]);
    }

    #[test]
    fn bad_terms_are_refused() {
        assert!(matches!(
            Query::parse("repo:"),
            Err(QueryError::EmptyQualifier(_))
        ));
        assert!(matches!(
            Query::parse("platform:a/b/c/d"),
            Err(QueryError::BadPlatform(_))
        ));
        assert!(matches!(
            Query::parse("platform:linux//"),
            Err(QueryError::BadPlatform(_))
        ));
    }

    #[test]
    fn globs_match_whole_strings() {
        assert!(glob("a*c", "abc"));
        assert!(glob("a*c", "ac"));
        assert!(!glob("a*c", "abcd"));
        assert!(glob("*", ""));
        assert!(glob("lib/*", "lib/alpine"));
        assert!(!glob("lib", "lib/alpine"));
        assert!(glob("*a*b*", "xxaxxbxx"));
        assert!(!glob("*b*a*", "ab"));
        assert!(!glob("aa*aa", "aaa"));
    }

    #[test]
    fn cursors_round_trip_and_bad_ones_fail() {
        let p = Position {
            repo: "a/b".into(),
            untagged: true,
            key: "sha256:00".into(),
        };
        assert_eq!(Position::decode(&p.encode()).unwrap(), p);
        assert!(Position::decode("!!").is_err());
        assert!(Position::decode(&URL_SAFE_NO_PAD.encode("no-newline")).is_err());
        assert!(Position::decode(&URL_SAFE_NO_PAD.encode("a\nxkey")).is_err());
    }
}
