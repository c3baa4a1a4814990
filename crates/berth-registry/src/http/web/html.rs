//! HTML building blocks: escaping, the page frame, and human-readable numbers. Every dynamic
//! string reaches a page through [`esc`] (or [`attr`] for attributes, which is the same escape).

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a value for a quoted attribute (the same rules as [`esc`]; a separate name makes the
/// intent visible where URLs are built).
pub fn attr(s: &str) -> String {
    esc(s)
}

/// `sha256:` and the first 12 hex digits.
pub fn short_digest(d: &str) -> &str {
    let end = d.find(':').map_or(12, |i| i + 13).min(d.len());
    &d[..end]
}

/// A size in bytes for people: `512 B`, `1.5 KiB`, `12.3 MiB`.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// A size cell: human-readable, with the exact byte count on hover.
pub fn size_cell(n: u64) -> String {
    format!(
        "<td class=\"num\" title=\"{n} bytes\">{}</td>",
        esc(&human_size(n))
    )
}

const STYLE: &str = "
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2b45;color:#fff;padding:.7em 1.2em;display:flex;gap:1.2em;align-items:center;flex-wrap:wrap}
header a.brand{color:#fff;font-weight:600;text-decoration:none;font-size:1.1em}
header form{display:flex;flex:1;gap:.4em;min-width:18em}
header input{flex:1;padding:.45em .6em;border:0;border-radius:4px;font-size:1em}
header button{padding:.45em .9em;border:0;border-radius:4px;background:#4f8cf7;color:#fff;font-size:1em}
main{padding:1em 1.2em;max-width:78em}
h1{font-size:1.35em;margin:.2em 0 .6em;word-break:break-all}
h2{font-size:1.1em;margin:1.4em 0 .5em}
table{border-collapse:collapse;background:#fff;width:100%;margin-bottom:1em}
th,td{text-align:left;padding:.35em .6em;border-bottom:1px solid #e3e6ea;vertical-align:top}
th{background:#eef1f5;font-weight:600}
td.num{text-align:right;white-space:nowrap}
code,pre{font-family:ui-monospace,'SFMono-Regular',Menlo,monospace;font-size:.9em}
pre{background:#fff;border:1px solid #e3e6ea;padding:.8em;overflow:auto;max-height:40em}
a{color:#2557b8}
.muted{color:#69707d}
.crumbs{margin-bottom:.4em}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em;background:#fff;padding:.8em;border:1px solid #e3e6ea}
dt{font-weight:600}dd{margin:0;word-break:break-all}
";

/// A whole page: the frame (title, search box holding `q`) around `body`, with a status.
pub fn page(status: StatusCode, title: &str, q: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{title} · berth registry</title><style>{STYLE}</style></head><body>\
<header><a class=\"brand\" href=\"/\">berth registry</a>\
<form method=\"get\" action=\"/\" role=\"search\">\
<input type=\"search\" name=\"q\" value=\"{q}\" aria-label=\"Search\" \
placeholder=\"alpine · tag:3.* · label:maintainer=me · platform:linux/arm64\">\
<button type=\"submit\">Search</button></form></header>\
<main>{body}</main></body></html>\n",
        title = esc(title),
        q = attr(q),
    );
    (status, Html(html)).into_response()
}

/// A 404 page saying what was not found.
pub fn not_found(what: &str) -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Not found",
        "",
        &format!(
            "<h1>Not found</h1><p>{}</p><p><a href=\"/\">All repositories</a></p>",
            esc(what)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(64 << 20), "64.0 MiB");
        assert_eq!(human_size(3 << 30), "3.0 GiB");
    }

    #[test]
    fn digests_shorten() {
        let d = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(short_digest(&d), "sha256:abababababab");
        assert_eq!(short_digest("x"), "x");
    }
}
