//! The one-way order of the crate's modules, checked on its sources: a module may import
//! (`crate::x`, or a `super::` path reaching the crate root) only modules of a lower rank. Test
//! modules (`#[cfg(test)] mod tests`, at the end of a file) and comments are not looked at.
//! `lib.rs` (declarations and re-exports) and the `store` façade may import anything; the façade
//! is the top rank, so no module may import it.

use std::collections::BTreeMap;
use std::path::Path;

/// Every top-level module and its rank, lowest first. A new module must be added here.
const RANKS: &[(&str, u32)] = &[
    ("error", 0),
    ("lock", 1),
    ("fsutil", 1),
    ("hashing", 1),
    ("content", 2),
    ("snapshot", 3),
    ("meta", 4),
    ("layout", 5),
    ("image", 6),
    ("parts", 7),
    ("record", 8),
    ("download", 9),
    ("import", 9),
    ("gc", 9),
    ("archive", 10),
    ("store", 11),
];

fn rank(module: &str) -> Option<u32> {
    RANKS.iter().find(|(m, _)| *m == module).map(|(_, r)| *r)
}

/// The code of a source file without its trailing test module and without comments.
fn code_of(source: &str) -> String {
    let mut out = String::new();
    let mut lines = source.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|n| n.trim_start().starts_with("mod tests"))
        {
            break;
        }
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The first path segment of every `crate::…` path in `code`, including each item of a
/// `crate::{a, b::c}` group.
fn crate_paths(code: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `berth_crate::`, not ours
        }
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        out.push(ident(&group[j..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.push(ident(rest));
        }
    }
    out
}

/// Which module each name re-exported by `lib.rs` comes from (`pub use store::Store;`).
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in code_of(lib).lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let rest = rest.trim_end_matches(';');
        let Some((module, items)) = rest.split_once("::") else {
            continue;
        };
        let items = items.trim_start_matches('{').trim_end_matches('}');
        for item in items.split(',') {
            let name = item.rsplit("::").next().unwrap_or("").trim();
            if !name.is_empty() {
                out.insert(name.to_owned(), module.to_owned());
            }
        }
    }
    out
}

/// Every broken edge among `files` (top-level module, source), given `lib.rs`'s source.
fn violations(lib: &str, files: &[(String, String)]) -> Vec<String> {
    let names = reexports(lib);
    let mut out = Vec::new();
    for (module, source) in files {
        let Some(own) = rank(module) else {
            out.push(format!("module {module} has no rank in RANKS"));
            continue;
        };
        if module == "store" {
            continue;
        }
        for first in crate_paths(&code_of(source)) {
            let target = match names.get(&first) {
                Some(m) => m.clone(),
                None => first.clone(),
            };
            if &target == module {
                continue;
            }
            match rank(&target) {
                None => out.push(format!(
                    "{module} imports crate::{first}, which has no rank"
                )),
                Some(r) if r >= own => out.push(format!(
                    "{module} (rank {own}) imports crate::{first} from {target} (rank {r})"
                )),
                Some(_) => {}
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// `code` with the `super::` chain that reaches the crate root from a file `depth` modules deep
/// (`src/x.rs` and `src/x/mod.rs` are 1, `src/x/y.rs` is 2) written as `crate::`, so a path
/// through `super` is checked like any other.
fn root_paths_as_crate(code: &str, depth: usize) -> String {
    code.replace(&"super::".repeat(depth), "crate::")
}

/// The crate's sources as (top-level module, source), `lib.rs` left out; `super::` paths to the
/// crate root are written as `crate::`.
fn sources(src: &Path) -> Vec<(String, String)> {
    fn walk(dir: &Path, top: Option<&str>, depth: usize, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                walk(&p, Some(top.unwrap_or(&name)), depth + 1, out);
            } else if let Some(stem) = name.strip_suffix(".rs") {
                if top.is_none() && (stem == "lib" || stem == "module_order") {
                    continue;
                }
                let module = top.unwrap_or(stem).to_owned();
                let depth = if stem == "mod" { depth } else { depth + 1 };
                let source = std::fs::read_to_string(&p).unwrap();
                out.push((module, root_paths_as_crate(&source, depth)));
            }
        }
    }
    let mut out = Vec::new();
    walk(src, None, 0, &mut out);
    out
}

#[test]
fn modules_import_only_lower_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let files = sources(&src);
    assert!(
        files.iter().any(|(m, _)| m == "content"),
        "sources not found"
    );
    let broken = violations(&lib, &files);
    assert!(
        broken.is_empty(),
        "the module order is broken:\n{}",
        broken.join("\n")
    );
}

#[test]
fn a_reversed_edge_is_caught() {
    let lib = "pub mod content;\npub use store::Store;\npub use error::{Error, Result};\n";
    let file = |m: &str, s: &str| (m.to_owned(), s.to_owned());
    // One level up from a submodule is its own module, not the crate.
    assert_eq!(
        root_paths_as_crate("use super::Blobs;", 2),
        "use super::Blobs;"
    );
    let fine = [
        file(
            "content",
            "use crate::error::{Error, Result};\nuse crate::{fsutil, hashing::X};\n",
        ),
        file(
            "download",
            "use crate::{content::Partial, Result};\n// crate::store::Store\n",
        ),
        file(
            "snapshot",
            "fn f() {}\n#[cfg(test)]\nmod tests {\n    use crate::Store;\n}\n",
        ),
    ];
    assert_eq!(violations(lib, &fine), Vec::<String>::new());
    let reversed = [
        file("content", "if x.starts_with(crate::download::PREFIX) {}\n"),
        file("meta", "use crate::{error::Error, import::scan};\n"),
        file("gc", "use crate::Store;\n"),
        file("error", "source: crate::snapshot::SnapshotError,\n"),
        file("import", "use crate::gc::tree_size;\n"),
        file("lock", &root_paths_as_crate("use super::meta::Meta;\n", 1)),
        file("layout", &root_paths_as_crate("use super::super::gc;\n", 2)),
        file("newcomer", "\n"),
    ];
    assert_eq!(
        violations(lib, &reversed),
        vec![
            "content (rank 2) imports crate::download from download (rank 9)",
            "error (rank 0) imports crate::snapshot from snapshot (rank 3)",
            "gc (rank 9) imports crate::Store from store (rank 11)",
            "import (rank 9) imports crate::gc from gc (rank 9)",
            "layout (rank 5) imports crate::gc from gc (rank 9)",
            "lock (rank 1) imports crate::meta from meta (rank 4)",
            "meta (rank 4) imports crate::import from import (rank 9)",
            "module newcomer has no rank in RANKS",
        ]
    );
}
