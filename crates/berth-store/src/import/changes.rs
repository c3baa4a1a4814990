//! `--change` instructions for import (the Dockerfile subset `docker import -c` accepts), applied
//! to the JSON of an image config's `config` object.

use crate::error::{Error, Result};
use serde_json::{Map, Value, json};

/// Applies each instruction in order to `config` (the `config` object of an image config).
pub fn apply(changes: &[String], config: &mut Map<String, Value>) -> Result<()> {
    for change in changes {
        apply_one(change, config)?;
    }
    Ok(())
}

fn apply_one(change: &str, config: &mut Map<String, Value>) -> Result<()> {
    let bad = |why: &str| Error::BadChange(change.to_owned(), why.to_owned());
    let trimmed = change.trim();
    let (word, rest) = match trimmed.split_once(char::is_whitespace) {
        Some((w, r)) => (w, r.trim()),
        None => (trimmed, ""),
    };
    let keyword = word.to_ascii_uppercase();
    if rest.is_empty() && keyword != "CMD" && keyword != "ENTRYPOINT" {
        return Err(bad(&format!("{keyword} requires an argument")));
    }
    match keyword.as_str() {
        "CMD" => {
            config.insert("Cmd".into(), command(rest).map_err(|e| bad(&e))?);
        }
        "ENTRYPOINT" => {
            config.insert("Entrypoint".into(), command(rest).map_err(|e| bad(&e))?);
        }
        "ENV" => {
            let pairs = key_values(rest, true).map_err(|e| bad(&e))?;
            let env = config.entry("Env").or_insert_with(|| json!([]));
            let list = env.as_array_mut().ok_or_else(|| bad("Env is not a list"))?;
            for (k, v) in pairs {
                let prefix = format!("{k}=");
                list.retain(|e| !e.as_str().is_some_and(|s| s.starts_with(&prefix)));
                list.push(Value::String(format!("{k}={v}")));
            }
        }
        "LABEL" => {
            let pairs = key_values(rest, false).map_err(|e| bad(&e))?;
            let labels = config.entry("Labels").or_insert_with(|| json!({}));
            let map = labels
                .as_object_mut()
                .ok_or_else(|| bad("Labels is not a map"))?;
            for (k, v) in pairs {
                map.insert(k, Value::String(v));
            }
        }
        "EXPOSE" => {
            let ports = config.entry("ExposedPorts").or_insert_with(|| json!({}));
            let map = ports
                .as_object_mut()
                .ok_or_else(|| bad("ExposedPorts is not a map"))?;
            for p in words(rest).map_err(|e| bad(&e))? {
                let (num, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                let valid_num = num.split('-').all(|n| n.parse::<u16>().is_ok());
                if !valid_num || !matches!(proto, "tcp" | "udp" | "sctp") {
                    return Err(bad(&format!("invalid port {p:?}")));
                }
                map.insert(format!("{num}/{proto}"), json!({}));
            }
        }
        "VOLUME" => {
            let list = match serde_json::from_str::<Vec<String>>(rest) {
                Ok(v) => v,
                Err(_) => words(rest).map_err(|e| bad(&e))?,
            };
            let vols = config.entry("Volumes").or_insert_with(|| json!({}));
            let map = vols
                .as_object_mut()
                .ok_or_else(|| bad("Volumes is not a map"))?;
            for v in list {
                map.insert(v, json!({}));
            }
        }
        "USER" => {
            config.insert("User".into(), Value::String(rest.to_owned()));
        }
        "WORKDIR" => {
            if !rest.starts_with('/') {
                return Err(bad("WORKDIR must be an absolute path"));
            }
            config.insert("WorkingDir".into(), Value::String(rest.to_owned()));
        }
        "STOPSIGNAL" => {
            config.insert("StopSignal".into(), Value::String(rest.to_owned()));
        }
        other => {
            return Err(bad(&format!(
                "{other} is not supported (use CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME or WORKDIR)"
            )));
        }
    }
    Ok(())
}

/// Exec form (`["sh", "-c", "x"]`) or shell form (`echo hi` → `["/bin/sh", "-c", "echo hi"]`).
fn command(rest: &str) -> std::result::Result<Value, String> {
    if rest.is_empty() {
        return Ok(Value::Null);
    }
    if rest.starts_with('[') {
        return match serde_json::from_str::<Vec<String>>(rest) {
            Ok(v) => Ok(json!(v)),
            Err(e) => Err(format!("exec form is not a JSON array of strings: {e}")),
        };
    }
    Ok(json!(["/bin/sh", "-c", rest]))
}

/// `K=V K2="v 2"` pairs; with `legacy`, also `K some value` (one pair, the rest of the line).
fn key_values(rest: &str, legacy: bool) -> std::result::Result<Vec<(String, String)>, String> {
    let first = rest.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        if !legacy {
            return Err("expected KEY=VALUE".into());
        }
        let (k, v) = rest
            .split_once(char::is_whitespace)
            .ok_or("expected KEY VALUE or KEY=VALUE")?;
        return Ok(vec![(k.to_owned(), v.trim().to_owned())]);
    }
    let mut out = Vec::new();
    for w in words(rest)? {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| format!("{w:?} is not KEY=VALUE"))?;
        if k.is_empty() {
            return Err(format!("{w:?} has an empty key"));
        }
        out.push((k.to_owned(), v.to_owned()));
    }
    Ok(out)
}

/// Splits on whitespace, honouring single quotes, double quotes and backslash escapes.
fn words(s: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"') | None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(changes: &[&str]) -> Result<Value> {
        let mut m = Map::new();
        apply(
            &changes.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            &mut m,
        )?;
        Ok(Value::Object(m))
    }

    #[test]
    fn docker_import_changes() {
        let v = applied(&[
            r#"CMD ["sh"]"#,
            "ENTRYPOINT echo hi",
            "ENV A=1 B=\"two words\"",
            "ENV A 3",
            "WORKDIR /srv",
            "USER 1000:1000",
            "LABEL a=b c='d e'",
            "EXPOSE 80 53/udp",
            "VOLUME /data",
            "stopsignal SIGTERM",
        ])
        .unwrap();
        assert_eq!(
            v,
            json!({
                "Cmd": ["sh"],
                "Entrypoint": ["/bin/sh", "-c", "echo hi"],
                "Env": ["B=two words", "A=3"],
                "WorkingDir": "/srv",
                "User": "1000:1000",
                "Labels": {"a": "b", "c": "d e"},
                "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
                "Volumes": {"/data": {}},
                "StopSignal": "SIGTERM",
            })
        );
    }

    #[test]
    fn bad_changes_are_refused() {
        for c in [
            "RUN echo",
            "WORKDIR rel",
            "EXPOSE http",
            "CMD [sh",
            "LABEL x",
            "ENV",
            "ENV A=\"x",
        ] {
            assert!(
                matches!(applied(&[c]), Err(Error::BadChange(..))),
                "{c} accepted"
            );
        }
    }
}

#[cfg(test)]
mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Untrusted text from the command line: never a panic, only Ok or BadChange.
        #[test]
        fn any_change_text_is_handled(text in ".{0,80}") {
            let mut m = Map::new();
            let r = apply(&[text], &mut m);
            prop_assert!(r.is_ok() || matches!(r, Err(Error::BadChange(..))));
        }

        #[test]
        fn quoted_words_round_trip(ws in proptest::collection::vec("[a-z =]{1,8}", 1..5)) {
            let line = ws.iter().map(|w| format!("\"{w}\"")).collect::<Vec<_>>().join(" ");
            prop_assert_eq!(words(&line).unwrap(), ws);
        }
    }
}
