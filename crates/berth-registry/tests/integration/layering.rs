//! The one-way layering of the crate: the domain modules (storage, auth rules, search index, GC,
//! metrics registry, manifests, names, paths, events, config) know nothing of HTTP, so a daemon
//! or a CLI can use them without axum; only `src/http/` may speak it. This reads the sources and
//! fails if a domain module's code (comments aside) names an HTTP crate, the HTTP layer or its
//! state.

use std::path::{Path, PathBuf};

/// What no domain module may mention.
const FORBIDDEN: &[&str] = &[
    "axum",
    "hyper",
    "tower",
    "http_body",
    "http::",
    "crate::http",
    "super::http",
    "AppState",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Each line of code in a file that mentions a forbidden name, with the name.
fn offences(text: &str) -> Vec<(usize, &'static str, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for f in FORBIDDEN {
            if code.contains(f) {
                out.push((n + 1, *f, line.trim().to_string()));
            }
        }
    }
    out
}

#[test]
fn domain_modules_do_not_speak_http() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let http = src.join("http");
    let domain: Vec<&PathBuf> = files
        .iter()
        .filter(|p| !p.starts_with(&http) && p.file_name().is_some_and(|n| n != "lib.rs"))
        .collect();
    // The domain is all there: a rename must not empty the check.
    for m in [
        "storage/mod.rs",
        "storage/disk.rs",
        "storage/s3.rs",
        "auth/mod.rs",
        "auth/access.rs",
        "search/mod.rs",
        "gc/mod.rs",
        "metrics.rs",
        "names.rs",
        "paths.rs",
    ] {
        assert!(
            domain.iter().any(|p| p.ends_with(m)),
            "domain module {m} not found"
        );
    }
    let mut bad = Vec::new();
    for p in domain {
        let text = std::fs::read_to_string(p).unwrap();
        for (line, name, code) in offences(&text) {
            bad.push(format!(
                "{}:{line}: mentions {name}: {code}",
                p.strip_prefix(&src).unwrap().display()
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "domain modules must not depend on the HTTP layer:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_check_catches_what_it_forbids() {
    // The rule itself: code is caught, comments are not.
    assert_eq!(offences("use axum::Router;").len(), 1);
    assert_eq!(offences("fn f(s: &crate::http::AppState) {}").len(), 3);
    assert_eq!(offences("let x = 1; // the http layer's AppState").len(), 0);
    assert_eq!(offences("//! answered by `http::search`").len(), 0);
}
