//! The auth layer over HTTP: the guard in front of every request and the `GET /token` endpoint.
//! What a request needs is decided here from its route and method; who may do what, credentials
//! and tokens are [`crate::auth`]'s (see there for the rules).

use axum::extract::{Request, State};
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::AppState;
use super::error::ApiError;
use super::route::Route;
use crate::auth::{Action, Identity, Principal, Refusal};

const API_VERSION_HEADER: &str = "docker-distribution-api-version";

/// What a request needs.
enum Need {
    /// Nothing (`/metrics`, `/token`).
    Open,
    /// Anonymous pull or any authenticated client.
    Entry,
    /// The `/v2/` probe: any authenticated client; anonymous clients only when there are no
    /// users at all.
    Login,
    /// An action on a repository.
    Repo { name: String, action: Action },
}

impl Need {
    fn of(method: &Method, path: &str) -> Need {
        match Route::parse(path) {
            None if path == "/metrics" || path == "/token" => Need::Open,
            None | Some(Err(_)) => Need::Entry,
            Some(Ok(Route::Base)) => Need::Login,
            Some(Ok(route)) => match route.repository() {
                None => Need::Entry,
                Some(name) => Need::Repo {
                    name: name.to_string(),
                    action: action_of(method),
                },
            },
        }
    }
}

/// The action a method needs on a repository route.
fn action_of(method: &Method) -> Action {
    match *method {
        Method::GET | Method::HEAD => Action::Pull,
        Method::DELETE => Action::Delete,
        _ => Action::Push,
    }
}

/// The `WWW-Authenticate` value for a refusal; the default Bearer realm is this server's
/// `/token`, on the host the client used.
fn challenge(state: &AppState, headers: &HeaderMap, need: &Need, error: Option<&str>) -> String {
    let default_realm = || {
        let scheme = if state.config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty() && !h.contains(['"', ' ', '/', '\\']))
            .unwrap_or(&state.config.addr);
        format!("{scheme}://{host}/token")
    };
    let scope = match need {
        Need::Repo { name, action } => Some((name.as_str(), *action)),
        _ => None,
    };
    state.auth.challenge(default_realm, scope, error)
}

/// The middleware in front of every request: identifies the client, refuses what it may not
/// do (before any handler runs), and records the [`Principal`].
pub async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let auth = state.auth.clone();
    let need = Need::of(req.method(), req.uri().path());
    if matches!(need, Need::Open) {
        return next.run(req).await;
    }
    let who = match auth
        .identify(
            basic_credentials(req.headers()),
            bearer_token(req.headers()),
        )
        .await
    {
        Ok(who) => who,
        Err(Refusal::BadCredentials) => {
            let ch = challenge(&state, req.headers(), &need, None);
            return refuse(
                ApiError::unauthorized("invalid username or password"),
                &ch,
                None,
            );
        }
        Err(Refusal::BadToken(e)) => {
            let ch = challenge(&state, req.headers(), &need, Some("invalid_token"));
            return refuse(ApiError::unauthorized(e.to_string()), &ch, None);
        }
    };
    let user = who.user();
    let allowed = match &need {
        Need::Open => true,
        // An anonymous token (empty subject) is no login: it opens only what anonymous may.
        Need::Entry => auth.anonymous_pull() || user.is_some(),
        Need::Login => {
            !auth.has_users()
                || user.is_some()
                || (auth.anonymous_pull() && matches!(who, Identity::Token(_)))
        }
        Need::Repo { name, action } => auth.may(&who, name).contains(*action),
    };
    if !allowed {
        let what = match &need {
            Need::Repo { name, action } => format!("{} on repository {name}", action.as_str()),
            _ => "access to this registry".to_string(),
        };
        let (err, error_param) = match &who {
            Identity::Anonymous => (
                ApiError::unauthorized(format!("authentication required for {what}")),
                None,
            ),
            Identity::User(u) => (ApiError::denied(format!("user {u} may not {what}")), None),
            Identity::Token(_) => (
                ApiError::unauthorized(format!("token does not grant {what}")),
                Some("insufficient_scope"),
            ),
        };
        let ch = (err.status == StatusCode::UNAUTHORIZED)
            .then(|| challenge(&state, req.headers(), &need, error_param));
        return refuse(err, ch.as_deref().unwrap_or(""), user);
    }
    if let Need::Repo {
        action: Action::Push,
        ..
    } = &need
        && *req.method() == Method::POST
        && let Some(from) = mount_source(req.uri())
        && !auth.may(&who, &from).contains(Action::Pull)
    {
        tracing::debug!(from = %from, user = ?user, "mount source not pullable: plain upload instead");
        match without_mount(req.uri()) {
            Some(uri) => *req.uri_mut() = uri,
            // Never let the mount through unchecked.
            None => {
                return refuse(
                    ApiError::denied(format!("may not mount from repository {from}")),
                    "",
                    user,
                );
            }
        }
    }
    req.extensions_mut().insert(Principal(user.clone()));
    let mut resp = next.run(req).await;
    resp.extensions_mut().insert(Principal(user));
    resp
}

/// A refusal response: the spec's error body, the challenge (if any) and the API version.
fn refuse(err: ApiError, challenge: &str, user: Option<String>) -> Response {
    let mut err = err.with_header(
        header::HeaderName::from_static(API_VERSION_HEADER),
        "registry/2.0",
    );
    if !challenge.is_empty() {
        err = err.with_header(header::WWW_AUTHENTICATE, challenge);
    }
    let mut resp = err.into_response();
    resp.extensions_mut().insert(Principal(user));
    resp
}

/// `from` of a mount request (`?mount=…&from=…`), if both are present.
fn mount_source(uri: &Uri) -> Option<String> {
    let pairs = query_pairs(uri.query()?);
    pairs.iter().find(|(k, _)| k == "mount")?;
    pairs.into_iter().find(|(k, _)| k == "from").map(|(_, v)| v)
}

/// The URI with `mount` and `from` removed from its query (other parameters kept verbatim).
fn without_mount(uri: &Uri) -> Option<Uri> {
    let query = uri.query().unwrap_or("");
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| {
            let key = kv.split_once('=').map_or(*kv, |(k, _)| k);
            !kv.is_empty() && !matches!(percent_decode(key).as_str(), "mount" | "from")
        })
        .collect();
    let pq = if kept.is_empty() {
        uri.path().to_string()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(pq).ok()?);
    Uri::from_parts(parts).ok()
}

/// The `GET /token` endpoint (bearer mode): issues a token for the requested scopes, granting
/// what both the request and the rules allow.
pub async fn token(State(state): State<AppState>, req: Request) -> Response {
    let auth = &state.auth;
    if !auth.issues_tokens() {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "UNSUPPORTED",
            "this registry does not issue tokens (no token_secret_file is configured)",
        )
        .into_response();
    }
    let params = query_pairs(req.uri().query().unwrap_or(""));
    if let Some((_, s)) = params.iter().find(|(k, _)| k == "service")
        && s != auth.service()
    {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
            format!(
                "tokens are issued for service {:?}, not {s:?}",
                auth.service()
            ),
        )
        .into_response();
    }
    let user = match auth.basic_user(basic_credentials(req.headers())).await {
        Ok(u) => u,
        Err(_) => {
            return refuse(
                ApiError::unauthorized("invalid username or password"),
                &format!("Basic realm=\"{}\"", auth.service()),
                None,
            );
        }
    };
    let scopes = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split_whitespace());
    let Some(t) = auth.issue_token(user.as_deref(), scopes) else {
        unreachable!("issues_tokens was checked above");
    };
    tracing::debug!(user = ?user, "token issued");
    let body = serde_json::json!({
        "token": t.token,
        "access_token": t.token,
        "expires_in": t.expires_in,
        "issued_at": berth_oci::time::rfc3339_secs(t.issued_at as i64),
    });
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body.to_string(),
    )
        .into_response()
}

/// `Authorization: Basic` user and password.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    // containers/image answers a Basic challenge with `:` when it has no credentials: that is
    // an anonymous client, not a failed login (no htpasswd user has an empty name).
    if u.is_empty() {
        return None;
    }
    Some((u.to_string(), p.to_string()))
}

/// `Authorization: Bearer` token.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// Decoded `key=value` pairs of a query string (`+` is a space).
fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = query_pairs("scope=repository%3Aa%2Fb%3Apull%2Cpush&service=reg+x&bad=%zz&e");
        assert_eq!(q[0], ("scope".into(), "repository:a/b:pull,push".into()));
        assert_eq!(q[1], ("service".into(), "reg x".into()));
        assert_eq!(q[2], ("bad".into(), "%zz".into()));
        assert_eq!(q[3], ("e".into(), String::new()));
        assert_eq!(percent_decode("%4"), "%4");
    }

    #[test]
    fn mount_parameters_are_found_and_stripped() {
        let u: Uri = "/v2/b/blobs/uploads/?mount=sha256%3Aab&from=a%2Fx&other=1"
            .parse()
            .unwrap();
        assert_eq!(mount_source(&u).as_deref(), Some("a/x"));
        let stripped = without_mount(&u).unwrap();
        assert_eq!(stripped.to_string(), "/v2/b/blobs/uploads/?other=1");
        assert_eq!(mount_source(&stripped), None);
        let u: Uri = "/v2/b/blobs/uploads/?from=a&mount=x".parse().unwrap();
        assert_eq!(
            without_mount(&u).unwrap().to_string(),
            "/v2/b/blobs/uploads/"
        );
        let u: Uri = "/v2/b/blobs/uploads/?from=a".parse().unwrap();
        assert_eq!(mount_source(&u), None, "from without mount is no mount");
    }

    #[test]
    fn needs_follow_routes_and_methods() {
        let n = |m: Method, p: &str| match Need::of(&m, p) {
            Need::Open => "open".to_string(),
            Need::Entry => "entry".to_string(),
            Need::Login => "login".to_string(),
            Need::Repo { name, action } => format!("{name}:{}", action.as_str()),
        };
        assert_eq!(n(Method::GET, "/metrics"), "open");
        assert_eq!(n(Method::GET, "/token"), "open");
        assert_eq!(n(Method::GET, "/v2/"), "login");
        assert_eq!(n(Method::GET, "/v2/_catalog"), "entry");
        assert_eq!(n(Method::GET, "/v2/_berth/search"), "entry");
        assert_eq!(n(Method::GET, "/"), "entry");
        assert_eq!(n(Method::GET, "/ui/repo/a"), "entry");
        assert_eq!(n(Method::GET, "/v2/A/manifests/x"), "entry");
        assert_eq!(n(Method::HEAD, "/v2/a/b/blobs/sha256:00"), "a/b:pull");
        assert_eq!(n(Method::GET, "/v2/a/tags/list"), "a:pull");
        assert_eq!(n(Method::POST, "/v2/a/blobs/uploads/"), "a:push");
        assert_eq!(n(Method::PATCH, "/v2/a/blobs/uploads/x"), "a:push");
        assert_eq!(n(Method::PUT, "/v2/a/manifests/t"), "a:push");
        assert_eq!(n(Method::DELETE, "/v2/a/manifests/t"), "a:delete");
        assert_eq!(n(Method::OPTIONS, "/v2/a/manifests/t"), "a:push");
    }

    #[test]
    fn credentials_are_parsed_from_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YWxpY2U6cDpx"),
        );
        assert_eq!(basic_credentials(&h), Some(("alice".into(), "p:q".into())));
        assert_eq!(bearer_token(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic Og=="),
        );
        assert_eq!(basic_credentials(&h), None, "an empty user is anonymous");
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer abc.def.ghi"),
        );
        assert_eq!(bearer_token(&h), Some("abc.def.ghi"));
        assert_eq!(basic_credentials(&h), None);
    }
}
