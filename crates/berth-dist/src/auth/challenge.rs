//! `WWW-Authenticate` challenges (RFC 7235): `Basic realm="…"`, `Bearer realm="…",service="…",
//! scope="…"`, several in one header or in several headers, quoted strings holding commas.

use std::collections::BTreeMap;

/// How a registry wants clients to authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Authorization: Basic` with the credential on every request.
    Basic {
        /// The realm (only for messages).
        realm: String,
    },
    /// A token from `realm`, sent as `Authorization: Bearer`.
    Bearer {
        /// The token endpoint URL.
        realm: String,
        /// The `service` parameter for token requests.
        service: Option<String>,
        /// The scope the refused request needed, if the registry said.
        scope: Option<String>,
        /// `invalid_token`, `insufficient_scope`, … if the registry said.
        error: Option<String>,
    },
}

/// Parses every challenge of the given header values; unknown schemes are skipped.
pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    let mut out = Vec::new();
    for v in values {
        for (scheme, params) in parse_raw(v) {
            let get = |k: &str| params.get(k).cloned();
            match scheme.to_ascii_lowercase().as_str() {
                "basic" => out.push(Challenge::Basic {
                    realm: get("realm").unwrap_or_default(),
                }),
                "bearer" => {
                    if let Some(realm) = get("realm").filter(|r| !r.is_empty()) {
                        out.push(Challenge::Bearer {
                            realm,
                            service: get("service"),
                            scope: get("scope"),
                            error: get("error"),
                        });
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// The challenge to follow: Bearer before Basic, as Docker does.
pub fn pick(challenges: Vec<Challenge>) -> Option<Challenge> {
    let mut basic = None;
    for c in challenges {
        match c {
            Challenge::Bearer { .. } => return Some(c),
            Challenge::Basic { .. } => basic = basic.or(Some(c)),
        }
    }
    basic
}

/// Splits one header value into (scheme, lower-cased parameter names → values).
fn parse_raw(s: &str) -> Vec<(String, BTreeMap<String, String>)> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t') {
            *i += 1;
        }
    };
    let is_token = |c: u8| !matches!(c, b' ' | b'\t' | b',' | b'=' | b'"');
    while i < b.len() {
        skip_ws(&mut i);
        if i < b.len() && b[i] == b',' {
            i += 1;
            continue;
        }
        // A token: either a new scheme, or a parameter name of the current challenge.
        let start = i;
        while i < b.len() && is_token(b[i]) {
            i += 1;
        }
        if start == i {
            // Stray character (an unmatched quote or `=`): skip it.
            i += 1;
            continue;
        }
        let word = &s[start..i];
        let mut j = i;
        skip_ws(&mut j);
        let is_param = j < b.len() && b[j] == b'=' && !out.is_empty() && {
            // `token68` values end in `=` padding without a following value; a real
            // parameter has a value after `=` (possibly empty quotes).
            let mut k = j + 1;
            while k < b.len() && b[k] == b'=' {
                k += 1;
            }
            k == j + 1
        };
        if !is_param {
            out.push((word.to_owned(), BTreeMap::new()));
            // A token68 after the scheme (`Negotiate abc==`) is ignored.
            skip_ws(&mut i);
            if i < b.len() && is_token(b[i]) {
                let mut k = i;
                while k < b.len() && is_token(b[k]) {
                    k += 1;
                }
                let mut m = k;
                skip_ws(&mut m);
                let next_is_param = m < b.len() && b[m] == b'=' && b.get(m + 1) != Some(&b'=');
                if !next_is_param {
                    i = k;
                    while i < b.len() && b[i] == b'=' {
                        i += 1;
                    }
                }
            }
            continue;
        }
        i = j + 1;
        skip_ws(&mut i);
        let value = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut v = String::new();
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
                v.push(ch);
                i += ch.len_utf8();
            }
            i += 1;
            v
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' && b[i] != b' ' && b[i] != b'\t' {
                i += 1;
            }
            s[vs..i].to_owned()
        };
        if let Some((_, params)) = out.last_mut() {
            params.insert(word.to_ascii_lowercase(), value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
        error: Option<&str>,
    ) -> Challenge {
        Challenge::Bearer {
            realm: realm.into(),
            service: service.map(Into::into),
            scope: scope.map(Into::into),
            error: error.map(Into::into),
        }
    }

    #[test]
    fn docker_hub_bearer() {
        let c = parse([
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        ]);
        assert_eq!(
            c,
            [bearer(
                "https://auth.docker.io/token",
                Some("registry.docker.io"),
                Some("repository:library/busybox:pull"),
                None
            )]
        );
    }

    #[test]
    fn quoted_commas_spaces_case_and_escapes() {
        let c = parse([
            r#"bEaReR  Realm = "http://h:5000/token" , service="a \"b\"",scope="repository:x:pull,push repository:y:pull",error=insufficient_scope"#,
        ]);
        assert_eq!(
            c,
            [bearer(
                "http://h:5000/token",
                Some("a \"b\""),
                Some("repository:x:pull,push repository:y:pull"),
                Some("insufficient_scope")
            )]
        );
    }

    #[test]
    fn several_challenges_in_one_or_many_headers() {
        let one =
            parse([r#"Basic realm="r, with comma", Bearer realm="https://t/token",service="s""#]);
        assert_eq!(
            one,
            [
                Challenge::Basic {
                    realm: "r, with comma".into()
                },
                bearer("https://t/token", Some("s"), None, None)
            ]
        );
        assert_eq!(pick(one.clone()), Some(one[1].clone()));
        let many = parse(["Negotiate abc==", r#"Basic realm="berth-registry""#]);
        assert_eq!(
            many,
            [Challenge::Basic {
                realm: "berth-registry".into()
            }]
        );
        let token68 = parse([r#"Negotiate abc=, Basic realm=x"#]);
        assert_eq!(token68, [Challenge::Basic { realm: "x".into() }]);
        assert_eq!(pick(many.clone()), Some(many[0].clone()));
        assert_eq!(pick(Vec::new()), None);
    }

    #[test]
    fn broken_headers_do_not_panic() {
        for h in [
            "",
            ",,,",
            "Bearer",
            "Bearer realm",
            "Bearer realm=\"unterminated",
            "=\"x\"",
            "Bearer realm=",
            "Basic ünï=\"ç\"",
        ] {
            let _ = parse([h]);
        }
        assert_eq!(parse(["Bearer service=x"]), []);
        assert_eq!(
            parse(["Basic"]),
            [Challenge::Basic {
                realm: String::new()
            }]
        );
    }
}
