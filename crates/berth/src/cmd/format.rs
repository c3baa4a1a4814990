//! `--format` for every command that lists things: Docker's `json`, `table [TEMPLATE]`, or a Go template.
//! The subset of Go templates that `--format` needs: `{{.A.B}}`, `{{json .A}}`, `{{json .}}`, literal
//! text, and Docker's `\t`/`\n` escapes; `table` output aligned on tabs; and the fixed tables
//! (`images`, `system df`).

use serde_json::Value;

/// Turns the two-character escapes `\t` and `\n` into a tab and a newline, as Docker does.
pub fn unescape(t: &str) -> String {
    t.replace("\\t", "\t").replace("\\n", "\n")
}

enum Part<'a> {
    Text(&'a str),
    Field { json: bool, path: Vec<&'a str> },
}

fn parse(t: &str) -> anyhow::Result<Vec<Part<'_>>> {
    let mut parts = Vec::new();
    let mut rest = t;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            parts.push(Part::Text(&rest[..open]));
        }
        let close = rest[open..]
            .find("}}")
            .ok_or_else(|| anyhow::anyhow!("template: unclosed action in {t:?}"))?;
        let action = rest[open + 2..open + close].trim();
        let (json, expr) = match action.strip_prefix("json") {
            Some(e) if e.starts_with(char::is_whitespace) => (true, e.trim()),
            _ => (false, action),
        };
        let path = expr
            .strip_prefix('.')
            .ok_or_else(|| anyhow::anyhow!("template: unsupported action {{{{{action}}}}}"))?;
        let path = if path.is_empty() {
            Vec::new()
        } else {
            path.split('.').collect()
        };
        parts.push(Part::Field { json, path });
        rest = &rest[open + close + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest));
    }
    Ok(parts)
}

/// Renders `t` against `v`.
pub fn render(t: &str, v: &Value) -> anyhow::Result<String> {
    let mut out = String::new();
    for p in parse(t)? {
        match p {
            Part::Text(s) => out.push_str(s),
            Part::Field { json, path } => {
                let mut cur = v;
                for key in &path {
                    cur = cur
                        .get(key)
                        .ok_or_else(|| anyhow::anyhow!("template: can't evaluate field {key}"))?;
                }
                match (json, cur) {
                    (true, x) => out.push_str(&x.to_string()),
                    (false, Value::String(s)) => out.push_str(s),
                    (false, Value::Null) => out.push_str("<no value>"),
                    (false, x) => out.push_str(&x.to_string()),
                }
            }
        }
    }
    Ok(out)
}

/// The header line of a `table` template: each field replaced by its column title.
pub fn header(t: &str, title: impl Fn(&str) -> String) -> anyhow::Result<String> {
    let mut out = String::new();
    for p in parse(t)? {
        match p {
            Part::Text(s) => out.push_str(s),
            Part::Field { path, .. } => out.push_str(&title(&path.join("."))),
        }
    }
    Ok(out)
}

/// Aligns tab-separated cells into columns three spaces apart (Docker's tabwriter look).
pub fn align(lines: &[String]) -> Vec<String> {
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<usize> = Vec::new();
    for r in &rows {
        for (i, cell) in r.iter().enumerate() {
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|r| {
            let mut line = String::new();
            for (i, cell) in r.iter().enumerate() {
                line.push_str(cell);
                if i + 1 < r.len() {
                    line.push_str(&" ".repeat(widths[i] - cell.chars().count() + 3));
                }
            }
            line.trim_end().to_owned()
        })
        .collect()
}

/// Writes `rows` as `format` asks: `json` (one object a line), `table` (the command's default
/// `table_template`), `table TEMPLATE` (a header of `title`s, then aligned rows), or a bare template
/// (one rendered line a row).
pub fn write_rows(
    out: &mut impl std::io::Write,
    format: &str,
    table_template: &str,
    rows: &[Value],
    title: impl Fn(&str) -> String,
) -> anyhow::Result<()> {
    if format == "json" || format == "{{json .}}" {
        for v in rows {
            writeln!(out, "{v}")?;
        }
        return Ok(());
    }
    let (table, tmpl) = if format == "table" {
        (true, table_template)
    } else if let Some(t) = format.strip_prefix("table") {
        (true, t.trim_start())
    } else {
        (false, format)
    };
    let tmpl = unescape(tmpl);
    let mut lines = Vec::new();
    if table {
        lines.push(header(&tmpl, title)?);
    }
    for v in rows {
        lines.push(render(&tmpl, v)?);
    }
    let text = if table { align(&lines) } else { lines };
    for l in text {
        writeln!(out, "{l}")?;
    }
    Ok(())
}

/// Writes columns the way Docker's tabwriter does (minimum width 10, padding 3).
pub fn write_table<const N: usize>(
    out: &mut impl std::io::Write,
    rows: &[[String; N]],
) -> std::io::Result<()> {
    let mut widths = [0usize; N];
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            widths[i] = widths[i].max((cell.chars().count() + 3).max(10));
        }
    }
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < N {
                line.push_str(&" ".repeat(widths[i] - cell.chars().count()));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_fields_json_and_tables() {
        let v = serde_json::json!({"ID": "abc", "Names": "web", "State": {"Status": "running", "Pid": 7}, "N": null});
        assert_eq!(
            render("{{.Names}} {{ .State.Status }}/{{.State.Pid}}", &v).unwrap(),
            "web running/7"
        );
        assert_eq!(
            render("{{json .State}}", &v).unwrap(),
            r#"{"Pid":7,"Status":"running"}"#
        );
        assert_eq!(render("{{.N}}", &v).unwrap(), "<no value>");
        assert!(render("{{.Nope}}", &v).is_err());
        assert!(render("{{range .}}", &v).is_err());
        let t = unescape(r"{{.ID}}\t{{.Names}}");
        let lines = vec![
            header(&t, |f| match f {
                "ID" => "CONTAINER ID".to_owned(),
                other => other.to_ascii_uppercase(),
            })
            .unwrap(),
            render(&t, &v).unwrap(),
        ];
        assert_eq!(
            align(&lines),
            vec![
                "CONTAINER ID   NAMES".to_owned(),
                "abc            web".to_owned()
            ]
        );
    }
}
