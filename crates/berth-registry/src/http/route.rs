//! The `/v2/` URL space, parsed once: every handler, the auth guard and the metrics see the same
//! [`Route`]. Repository names contain `/`, so routes are recognised by their suffix.

use crate::http::error::ApiError;
use crate::names;

/// What a request under `/v2/` addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`: the API version check.
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// `/v2/_berth/search`.
    Search,
    /// `/v2/<name>/tags/list`.
    Tags {
        /// Repository.
        name: String,
    },
    /// `/v2/<name>/manifests/<reference>` (a tag or a digest).
    Manifest {
        /// Repository.
        name: String,
        /// Tag or digest, unvalidated.
        reference: String,
    },
    /// `/v2/<name>/blobs/<digest>`.
    Blob {
        /// Repository.
        name: String,
        /// Digest, unvalidated.
        digest: String,
    },
    /// `/v2/<name>/blobs/uploads/` (start an upload).
    UploadStart {
        /// Repository.
        name: String,
    },
    /// `/v2/<name>/blobs/uploads/<id>`.
    Upload {
        /// Repository.
        name: String,
        /// Session id, unvalidated.
        id: String,
    },
    /// `/v2/<name>/referrers/<digest>`.
    Referrers {
        /// Repository.
        name: String,
        /// Subject digest, unvalidated.
        digest: String,
    },
}

impl Route {
    /// Parses a request path (without query). `None` when it is not under `/v2`; an error when
    /// it is, but names an invalid repository or an unknown endpoint.
    pub fn parse(path: &str) -> Option<Result<Route, ApiError>> {
        let rest = path.strip_prefix("/v2")?;
        if rest.is_empty() || rest == "/" {
            return Some(Ok(Route::Base));
        }
        let rest = rest.strip_prefix('/')?;
        Some(Self::parse_rest(rest))
    }

    fn parse_rest(rest: &str) -> Result<Route, ApiError> {
        if rest == "_catalog" {
            return Ok(Route::Catalog);
        }
        if rest == "_berth/search" {
            return Ok(Route::Search);
        }
        let named = |name: &str| -> Result<String, ApiError> {
            names::check_name(name)?;
            Ok(name.to_string())
        };
        if let Some(name) = rest.strip_suffix("/tags/list") {
            return Ok(Route::Tags { name: named(name)? });
        }
        if let Some((name, id)) = split_last(rest, "/blobs/uploads/") {
            let name = named(name)?;
            return Ok(if id.is_empty() {
                Route::UploadStart { name }
            } else {
                Route::Upload {
                    name,
                    id: id.to_string(),
                }
            });
        }
        if let Some(name) = rest.strip_suffix("/blobs/uploads") {
            return Ok(Route::UploadStart { name: named(name)? });
        }
        if let Some((name, r)) = split_last(rest, "/manifests/") {
            return Ok(Route::Manifest {
                name: named(name)?,
                reference: r.to_string(),
            });
        }
        if let Some((name, d)) = split_last(rest, "/blobs/") {
            return Ok(Route::Blob {
                name: named(name)?,
                digest: d.to_string(),
            });
        }
        if let Some((name, d)) = split_last(rest, "/referrers/") {
            return Ok(Route::Referrers {
                name: named(name)?,
                digest: d.to_string(),
            });
        }
        Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "UNSUPPORTED",
            format!("no such endpoint: /v2/{rest}"),
        ))
    }

    /// The repository the route addresses, if any.
    pub fn repository(&self) -> Option<&str> {
        match self {
            Route::Base | Route::Catalog | Route::Search => None,
            Route::Tags { name }
            | Route::Manifest { name, .. }
            | Route::Blob { name, .. }
            | Route::UploadStart { name }
            | Route::Upload { name, .. }
            | Route::Referrers { name, .. } => Some(name),
        }
    }

    /// A short label for metrics and logs (`blob`, `manifest`, …).
    pub fn label(&self) -> &'static str {
        match self {
            Route::Base => "base",
            Route::Catalog => "catalog",
            Route::Search => "search",
            Route::Tags { .. } => "tags",
            Route::Manifest { .. } => "manifest",
            Route::Blob { .. } => "blob",
            Route::UploadStart { .. } | Route::Upload { .. } => "upload",
            Route::Referrers { .. } => "referrers",
        }
    }
}

/// Splits at the last `sep` when what follows contains no `/`.
fn split_last<'a>(s: &'a str, sep: &str) -> Option<(&'a str, &'a str)> {
    let i = s.rfind(sep)?;
    let tail = &s[i + sep.len()..];
    if tail.contains('/') {
        return None;
    }
    Some((&s[..i], tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Route {
        Route::parse(s).unwrap().unwrap()
    }

    #[test]
    fn routes_are_recognised_by_suffix() {
        assert_eq!(p("/v2/"), Route::Base);
        assert_eq!(p("/v2"), Route::Base);
        assert_eq!(p("/v2/_catalog"), Route::Catalog);
        assert_eq!(p("/v2/a/b/tags/list"), Route::Tags { name: "a/b".into() });
        assert_eq!(
            p("/v2/a/blobs/uploads/"),
            Route::UploadStart { name: "a".into() }
        );
        assert_eq!(
            p("/v2/x/blobs/uploads/abc"),
            Route::Upload {
                name: "x".into(),
                id: "abc".into()
            }
        );
        assert_eq!(
            p("/v2/blobs/blobs/sha256:00"),
            Route::Blob {
                name: "blobs".into(),
                digest: "sha256:00".into()
            }
        );
        assert_eq!(
            p("/v2/a/manifests/latest"),
            Route::Manifest {
                name: "a".into(),
                reference: "latest".into()
            }
        );
        assert_eq!(
            p("/v2/a/referrers/sha256:1"),
            Route::Referrers {
                name: "a".into(),
                digest: "sha256:1".into()
            }
        );
        assert!(Route::parse("/").is_none());
        assert!(Route::parse("/v2/../etc/manifests/x").unwrap().is_err());
        assert!(Route::parse("/v2/A/manifests/x").unwrap().is_err());
    }
}
