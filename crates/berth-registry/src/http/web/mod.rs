//! The web pages: server-rendered HTML that works without JavaScript.
//!
//! - `GET /` — a search box; the results of `?q=…`, or else every repository with its tag count
//!   and size.
//! - `GET /ui/r/<name>` — a repository's tags and untagged manifests.
//! - `GET /ui/r/<name>/m/<digest>` — one manifest: media type, layers (or child manifests), the
//!   image config pretty-printed, annotations and labels.
//!
//! Listings come from this instance's search index; a manifest page reads the storage itself, so
//! it is current even before the index has caught up. Every dynamic string is HTML-escaped.

pub mod html;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::Router;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use super::search::{self, Params};
use crate::auth::Principal;
use crate::http::AppState;
use crate::manifest::Descriptor;
use crate::paths;
use crate::search::Position;
use crate::search::scan::{self, ManifestSummary};
use html::{attr, esc, human_size, not_found, page, short_digest, size_cell};

/// The pages' routes: `/` and everything under `/ui/`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/ui", get(ui_root))
        .route("/ui/", get(ui_root))
        .route("/ui/r/{*rest}", get(repo_pages))
        .route("/ui/{*rest}", get(ui_unknown))
}

/// The page of a repository.
fn repo_href(name: &str) -> String {
    format!("/ui/r/{name}")
}

/// The page of a manifest.
fn manifest_href(name: &str, digest: &str) -> String {
    format!("/ui/r/{name}/m/{digest}")
}

/// The request's principal, as the auth guard recorded it.
type Who = Option<Extension<Principal>>;

fn who(w: &Who) -> Option<&Principal> {
    w.as_ref().map(|Extension(p)| p)
}

async fn ui_root(State(state): State<AppState>, w: Who) -> Response {
    repositories(&state, who(&w))
}

async fn ui_unknown(Path(rest): Path<String>) -> Response {
    not_found(&format!("There is no page /ui/{rest}."))
}

async fn home(State(state): State<AppState>, w: Who, RawQuery(raw): RawQuery) -> Response {
    let params = match Params::parse(raw.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Bad search",
                "",
                &format!(
                    "<h1>Bad search</h1><p>{}</p><p class=\"muted\">Terms: words (all must match), \
                     <code>repo:</code>, <code>tag:</code>, <code>digest:</code>, \
                     <code>label:KEY[=VALUE]</code>, <code>annotation:KEY[=VALUE]</code>, \
                     <code>platform:OS/ARCH</code>.</p>",
                    esc(&e.message)
                ),
            );
        }
    };
    if params.q.trim().is_empty() {
        return repositories(&state, who(&w));
    }
    results(&state, &params, who(&w))
}

fn repositories(state: &AppState, who: Option<&Principal>) -> Response {
    let repos = state
        .search
        .repositories(&|repo| state.auth.may_pull(who, repo));
    let mut b = String::from("<h1>Repositories</h1>");
    if repos.is_empty() {
        b.push_str(if state.search.is_ready() {
            "<p class=\"muted\">No repositories yet. Push an image to see it here.</p>"
        } else {
            "<p class=\"muted\">The index is still being built; reload in a moment.</p>"
        });
    } else {
        b.push_str(
            "<table id=\"repositories\"><thead><tr><th>Repository</th><th>Tags</th>\
             <th>Manifests</th><th>Size</th></tr></thead><tbody>",
        );
        for r in &repos {
            let _ = write!(
                b,
                "<tr><td><a href=\"{}\">{}</a></td><td class=\"num\">{}</td><td class=\"num\">{}</td>{}</tr>",
                attr(&repo_href(&r.name)),
                esc(&r.name),
                r.tags,
                r.manifests,
                size_cell(r.size)
            );
        }
        b.push_str("</tbody></table>");
    }
    page(StatusCode::OK, "Repositories", "", &b)
}

fn results(state: &AppState, p: &Params, who: Option<&Principal>) -> Response {
    let visible = |repo: &str| state.auth.may_pull(who, repo);
    let found = state
        .search
        .search(&p.query, p.last.as_ref(), p.n, &visible);
    let mut b = format!(
        "<h1>Search: {}</h1><p class=\"muted\" id=\"total\">{} result{}</p>",
        esc(&p.q),
        found.total,
        if found.total == 1 { "" } else { "s" }
    );
    if !found.hits.is_empty() {
        b.push_str(
            "<table id=\"results\"><thead><tr><th>Repository</th><th>Tag</th><th>Digest</th>\
             <th>Size</th><th>Platforms</th><th>Created</th><th>Layers</th></tr></thead><tbody>",
        );
        for h in &found.hits {
            let tag = match &h.tag {
                Some(t) => esc(t),
                None => "<span class=\"muted\">untagged</span>".to_string(),
            };
            let _ = write!(
                b,
                "<tr><td><a href=\"{}\">{}</a></td><td>{tag}</td>\
                 <td><a href=\"{}\"><code>{}</code></a></td>{}<td>{}</td><td>{}</td>\
                 <td class=\"num\">{}</td></tr>",
                attr(&repo_href(&h.repository)),
                esc(&h.repository),
                attr(&manifest_href(&h.repository, &h.digest)),
                esc(short_digest(&h.digest)),
                size_cell(h.size),
                esc(&h.platforms.join(", ")),
                esc(h.created.as_deref().unwrap_or("")),
                h.layers
            );
        }
        b.push_str("</tbody></table>");
    }
    if let Some(next) = &found.next {
        let _ = write!(
            b,
            "<p><a rel=\"next\" href=\"{}\">Next page</a></p>",
            attr(&next_href(p, next))
        );
    }
    page(StatusCode::OK, &format!("Search: {}", p.q), &p.q, &b)
}

fn next_href(p: &Params, next: &Position) -> String {
    format!(
        "/?q={}&n={}&last={}",
        search::form_encode(&p.q),
        p.n,
        next.encode()
    )
}

async fn repo_pages(State(state): State<AppState>, w: Who, Path(rest): Path<String>) -> Response {
    // A repository the client may not pull does not exist, as far as the pages tell.
    let hidden = |name: &str| {
        (!state.auth.may_pull(who(&w), name))
            .then(|| not_found(&format!("Repository {name} was not found.")))
    };
    if let Some((name, digest)) = rest.rsplit_once("/m/") {
        if let Some(hex) = scan::digest_hex(digest) {
            if let Some(refused) = hidden(name) {
                return refused;
            }
            return manifest_page(&state, name, hex).await;
        }
        if digest.starts_with("sha256:") {
            return not_found(&format!(
                "{digest} is not a valid digest (expected sha256: and 64 hex digits)."
            ));
        }
    }
    if let Some(refused) = hidden(&rest) {
        return refused;
    }
    repository_page(&state, &rest)
}

fn repository_page(state: &AppState, name: &str) -> Response {
    let Some(repo) = state.search.repository(name) else {
        return not_found(&format!("Repository {name} was not found."));
    };
    let mut b = format!(
        "<div class=\"crumbs\"><a href=\"/\">Repositories</a> /</div><h1>{}</h1>\
         <p class=\"muted\">{} tag{}, {} manifest{}, {} in distinct blobs</p>",
        esc(name),
        repo.tags.len(),
        if repo.tags.len() == 1 { "" } else { "s" },
        repo.manifests.len(),
        if repo.manifests.len() == 1 { "" } else { "s" },
        esc(&human_size(repo.size)),
    );
    b.push_str("<h2>Tags</h2>");
    if repo.tags.is_empty() {
        b.push_str("<p class=\"muted\">No tags.</p>");
    } else {
        b.push_str(
            "<table id=\"tags\"><thead><tr><th>Tag</th><th>Digest</th><th>Size</th>\
             <th>Platform</th><th>Created</th><th>Layers</th></tr></thead><tbody>",
        );
        for (tag, digest) in &repo.tags {
            if let Some(m) = repo.manifests.get(digest) {
                let _ = write!(
                    b,
                    "<tr><td>{}</td>{}</tr>",
                    esc(tag),
                    manifest_cells(name, m)
                );
            }
        }
        b.push_str("</tbody></table>");
    }
    let untagged = repo.untagged();
    if !untagged.is_empty() {
        b.push_str(
            "<h2>Untagged manifests</h2><table id=\"untagged\"><thead><tr><th>Digest</th>\
             <th>Size</th><th>Platform</th><th>Created</th><th>Layers</th></tr></thead><tbody>",
        );
        for m in untagged {
            let _ = write!(b, "<tr>{}</tr>", manifest_cells(name, m));
        }
        b.push_str("</tbody></table>");
    }
    page(StatusCode::OK, name, "", &b)
}

fn manifest_cells(name: &str, m: &ManifestSummary) -> String {
    format!(
        "<td><a href=\"{}\"><code>{}</code></a></td>{}<td>{}</td><td>{}</td><td class=\"num\">{}</td>",
        attr(&manifest_href(name, &m.digest)),
        esc(short_digest(&m.digest)),
        size_cell(m.size),
        esc(&m.platforms.join(", ")),
        esc(m.created.as_deref().unwrap_or("")),
        m.layers
    )
}

async fn manifest_page(state: &AppState, name: &str, hex: &str) -> Response {
    let digest = format!("sha256:{hex}");
    if crate::names::check_name(name).is_err() {
        return not_found(&format!("Repository {name} was not found."));
    }
    let missing = || {
        not_found(&format!(
            "Manifest {digest} was not found in repository {name}."
        ))
    };
    let storage = &state.storage;
    let link = match storage.get(&paths::manifest_link(name, hex)).await {
        Ok(Some(l)) => l,
        Ok(None) => return missing(),
        Err(e) => return storage_failure(&e.to_string()),
    };
    let pushed_type = serde_json::from_slice::<paths::ManifestLink>(&link)
        .ok()
        .map(|l| l.media_type);
    let bytes = match scan::get_small(storage, &paths::blob(hex), 8 << 20).await {
        Ok(Some(b)) => b,
        Ok(None) => return missing(),
        Err(e) => return storage_failure(&e.to_string()),
    };
    let Some(parsed) = scan::parse_manifest(&bytes) else {
        return missing();
    };
    let config_json = match parsed
        .config
        .as_ref()
        .and_then(|c| scan::sha256_hex(&c.digest))
    {
        Some(chex) => {
            match scan::get_small(storage, &paths::blob(chex), scan::MAX_CONFIG_BYTES).await {
                Ok(c) => c,
                Err(e) => return storage_failure(&e.to_string()),
            }
        }
        None => None,
    };
    let mut full = parsed.clone();
    if let Some(c) = &config_json {
        scan::apply_config(&mut full, c);
    }
    let repo = state.search.repository(name);
    let summary = repo
        .as_ref()
        .and_then(|r| r.manifests.get(&digest).cloned());
    let tags: Vec<String> = repo
        .as_ref()
        .map(|r| r.tags_of(&digest).into_iter().map(str::to_string).collect())
        .unwrap_or_default();

    let media_type = parsed
        .body_media_type
        .clone()
        .or(pushed_type)
        .unwrap_or_default();
    let size = summary.as_ref().map_or_else(
        || {
            full.config
                .iter()
                .chain(full.layers.iter())
                .chain(full.children.iter())
                .map(|d| d.size)
                .sum()
        },
        |s| s.size,
    );
    let platforms = summary.as_ref().map_or_else(
        || full.platform.iter().cloned().collect::<Vec<_>>(),
        |s| s.platforms.clone(),
    );
    let mut b = format!(
        "<div class=\"crumbs\"><a href=\"/\">Repositories</a> / <a href=\"{}\">{}</a> /</div>\
         <h1><code>{}</code></h1><dl id=\"facts\">\
         <dt>Repository</dt><dd><a href=\"{}\">{}</a></dd>\
         <dt>Tags</dt><dd>{}</dd><dt>Media type</dt><dd><code>{}</code></dd>\
         <dt>Size</dt><dd title=\"{size} bytes\">{}</dd><dt>Platforms</dt><dd>{}</dd>\
         <dt>Created</dt><dd>{}</dd><dt>Manifest size</dt><dd>{}</dd></dl>",
        attr(&repo_href(name)),
        esc(name),
        esc(&digest),
        attr(&repo_href(name)),
        esc(name),
        esc(&tags.join(", ")),
        esc(&media_type),
        esc(&human_size(size)),
        esc(&platforms.join(", ")),
        esc(full.created.as_deref().unwrap_or("")),
        esc(&human_size(bytes.len() as u64)),
    );
    if parsed.is_index {
        b.push_str(&children_table(name, &full.children));
    } else {
        b.push_str(&layers_table(full.config.as_ref(), &full.layers));
    }
    b.push_str(&map_table("Annotations", "annotations", &full.annotations));
    if !parsed.is_index {
        b.push_str(&map_table("Labels", "labels", &full.labels));
    }
    if let Some(c) = &config_json {
        let pretty = serde_json::from_slice::<serde_json::Value>(c)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| String::from_utf8_lossy(c).into_owned());
        let _ = write!(
            b,
            "<h2>Config</h2><pre id=\"config\">{}</pre>",
            esc(&pretty)
        );
    }
    page(
        StatusCode::OK,
        &format!("{name}@{}", short_digest(&digest)),
        "",
        &b,
    )
}

fn layers_table(config: Option<&Descriptor>, layers: &[Descriptor]) -> String {
    let mut b = format!(
        "<h2>Layers ({})</h2><table id=\"layers\"><thead><tr><th>#</th><th>Digest</th>\
         <th>Media type</th><th>Size</th></tr></thead><tbody>",
        layers.len()
    );
    for (i, l) in layers.iter().enumerate() {
        let _ = write!(
            b,
            "<tr><td class=\"num\">{}</td><td><code>{}</code></td><td><code>{}</code></td>{}</tr>",
            i + 1,
            esc(&l.digest.to_string()),
            esc(&l.media_type),
            size_cell(l.size)
        );
    }
    b.push_str("</tbody></table>");
    if let Some(c) = config {
        let _ = write!(
            b,
            "<p class=\"muted\">Config <code>{}</code> ({}, {})</p>",
            esc(&c.digest.to_string()),
            esc(&c.media_type),
            esc(&human_size(c.size))
        );
    }
    b
}

fn children_table(name: &str, children: &[Descriptor]) -> String {
    let mut b = format!(
        "<h2>Manifests ({})</h2><table id=\"children\"><thead><tr><th>Digest</th>\
         <th>Platform</th><th>Media type</th><th>Size</th></tr></thead><tbody>",
        children.len()
    );
    for c in children {
        let _ = write!(
            b,
            "<tr><td><a href=\"{}\"><code>{}</code></a></td><td>{}</td><td><code>{}</code></td>{}</tr>",
            attr(&manifest_href(name, &c.digest.to_string())),
            esc(short_digest(&c.digest.to_string())),
            esc(&scan::descriptor_platform(c).unwrap_or_default()),
            esc(&c.media_type),
            size_cell(c.size)
        );
    }
    b.push_str("</tbody></table>");
    b
}

fn map_table(title: &str, id: &str, map: &BTreeMap<String, String>) -> String {
    if map.is_empty() {
        return format!("<h2>{}</h2><p class=\"muted\">None.</p>", esc(title));
    }
    let mut b = format!(
        "<h2>{}</h2><table id=\"{}\"><thead><tr><th>Key</th><th>Value</th></tr></thead><tbody>",
        esc(title),
        attr(id)
    );
    for (k, v) in map {
        let _ = write!(
            b,
            "<tr><td><code>{}</code></td><td>{}</td></tr>",
            esc(k),
            esc(v)
        );
    }
    b.push_str("</tbody></table>");
    b
}

fn storage_failure(why: &str) -> Response {
    tracing::error!(error = why, "web page: storage failure");
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Storage error",
        "",
        &format!("<h1>Storage error</h1><p>{}</p>", esc(why)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_do_not_conflict() {
        let _ = router();
    }
}
