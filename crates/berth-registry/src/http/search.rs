//! `GET /v2/_berth/search?q=…&n=…&last=…`: the search index ([`crate::search`]) as JSON, and the
//! query-string parameters the API and the web pages share.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use super::error::ApiError;
use crate::search::{DEFAULT_PAGE, Hit, MAX_PAGE, Position, Query, QueryError};

/// Parameters of a search request, from its query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// The raw `q`.
    pub q: String,
    /// The parsed query.
    pub query: Query,
    /// Page size.
    pub n: usize,
    /// Position to continue after.
    pub last: Option<Position>,
}

impl Params {
    /// Reads `q`, `n` and `last` from a raw query string; other parameters are ignored.
    pub fn parse(raw: Option<&str>) -> Result<Params, ApiError> {
        let mut q = String::new();
        let mut n = None;
        let mut last = None;
        for (k, v) in form_pairs(raw.unwrap_or(""))? {
            match k.as_str() {
                "q" => q = v,
                "n" => n = Some(v),
                "last" => last = Some(v),
                _ => {}
            }
        }
        let n = match n.as_deref() {
            None | Some("") => DEFAULT_PAGE,
            Some(s) => match s.parse::<usize>() {
                Ok(n) => n.min(MAX_PAGE),
                Err(_) => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "PAGINATION_NUMBER_INVALID",
                        format!("n must be a number from 0 to {MAX_PAGE}, not {s:?}"),
                    )
                    .with_detail(serde_json::json!({ "n": s })));
                }
            },
        };
        let query = Query::parse(&q).map_err(query_error)?;
        let last = match last.as_deref() {
            None | Some("") => None,
            Some(c) => Some(Position::decode(c).map_err(query_error)?),
        };
        Ok(Params { q, query, n, last })
    }
}

fn query_error(e: QueryError) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "UNSUPPORTED", e.to_string())
}

/// Splits an `application/x-www-form-urlencoded` string into decoded pairs.
pub fn form_pairs(raw: &str) -> Result<Vec<(String, String)>, ApiError> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((form_decode(k)?, form_decode(v)?))
        })
        .collect()
}

fn form_decode(s: &str) -> Result<String, ApiError> {
    let bad = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
            format!("query string component {s:?} is not valid percent-encoded UTF-8"),
        )
    };
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let h = b.get(i + 1..i + 3).ok_or_else(bad)?;
                let h = std::str::from_utf8(h).map_err(|_| bad())?;
                out.push(u8::from_str_radix(h, 16).map_err(|_| bad())?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// Percent-encodes a query-string component.
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The JSON body of a search answer.
#[derive(Serialize)]
struct Body<'a> {
    query: &'a str,
    results: &'a [Hit],
    total: usize,
}

/// `GET /v2/_berth/search?q=…&n=…&last=…`: `query` is the raw query string.
pub async fn handle(
    state: &AppState,
    query: Option<&str>,
    principal: Option<&crate::auth::Principal>,
) -> Response {
    let p = match Params::parse(query) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let visible = |repo: &str| state.auth.may_pull(principal, repo);
    let page = state
        .search
        .search(&p.query, p.last.as_ref(), p.n, &visible);
    let body = serde_json::to_string(&Body {
        query: &p.q,
        results: &page.hits,
        total: page.total,
    })
    .expect("search results serialise");
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if let Some(next) = page.next {
        let link = format!(
            "</v2/_berth/search?q={}&n={}&last={}>; rel=\"next\"",
            form_encode(&p.q),
            p.n,
            next.encode()
        );
        if let Ok(v) = header::HeaderValue::from_str(&link) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_strings_decode_and_encode() {
        let pairs = form_pairs("q=a+b%3Cc%3E&n=3&x&last=").unwrap();
        assert_eq!(
            pairs,
            vec![
                ("q".into(), "a b<c>".into()),
                ("n".into(), "3".into()),
                ("x".into(), "".into()),
                ("last".into(), "".into()),
            ]
        );
        assert!(form_pairs("q=%zz").is_err());
        assert!(form_pairs("q=%ff").is_err());
        assert!(form_pairs("q=%4").is_err());
        let s = "repo:a/b label:x=<y> é";
        let enc = form_encode(s);
        assert_eq!(form_pairs(&format!("q={enc}")).unwrap()[0].1, s);
    }

    #[test]
    fn params_validate_n_and_last() {
        let p = Params::parse(Some("q=x&n=5000")).unwrap();
        assert_eq!(p.n, MAX_PAGE);
        assert_eq!(Params::parse(None).unwrap().n, DEFAULT_PAGE);
        let e = Params::parse(Some("n=-1")).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.code, "PAGINATION_NUMBER_INVALID");
        let e = Params::parse(Some("last=%21")).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e = Params::parse(Some("q=repo:")).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}
