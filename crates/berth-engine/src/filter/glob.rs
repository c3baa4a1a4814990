//! Go's `path.Match`, which Docker's `reference=` image filter uses: `*` (any run of non-`/`), `?`
//! (one non-`/` character), `[...]` classes with ranges and `^` negation, `\` escapes.

/// A malformed pattern (Go's `path.ErrBadPattern`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syntax error in pattern {0:?}")]
pub struct GlobError(pub String);

/// Whether all of `name` matches `pattern`, with Go's `path.Match` semantics.
pub fn glob_match(pattern: &str, name: &str) -> Result<bool, GlobError> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Validate the whole pattern first: Go reports a bad pattern even when the name fails early.
    validate(&p).map_err(|()| GlobError(pattern.to_owned()))?;
    Ok(match_from(&p, &n))
}

fn validate(p: &[char]) -> Result<(), ()> {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => {
                if i + 1 >= p.len() {
                    return Err(());
                }
                i += 2;
            }
            '[' => {
                let (_, next) = class(p, i, '\0').ok_or(())?;
                i = next;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Matches the class starting at `p[start] == '['` against `c`: (matched, index after `]`).
fn class(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negated = p.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let ch = *p.get(i)?;
        if ch == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        let lo = escaped(p, &mut i)?;
        let hi = if p.get(i) == Some(&'-') {
            i += 1;
            escaped(p, &mut i)?
        } else {
            lo
        };
        if lo <= c && c <= hi {
            matched = true;
        }
    }
    Some((matched != negated, i))
}

/// One class character at `p[*i]`, unescaping `\x`; `]` or `-` in that place is malformed.
fn escaped(p: &[char], i: &mut usize) -> Option<char> {
    let ch = *p.get(*i)?;
    match ch {
        '-' | ']' => None,
        '\\' => {
            let c = *p.get(*i + 1)?;
            *i += 2;
            Some(c)
        }
        c => {
            *i += 1;
            Some(c)
        }
    }
}

fn match_from(p: &[char], n: &[char]) -> bool {
    let (mut pi, mut ni) = (0, 0);
    // Where to resume after the last `*`: its pattern index and the name index it has eaten to.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi + 1, ni));
                    pi += 1;
                    continue;
                }
                '?' if ni < n.len() && n[ni] != '/' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' if ni < n.len() && n[ni] != '/' => {
                    if let Some((true, next)) = class(p, pi, n[ni]) {
                        pi = next;
                        ni += 1;
                        continue;
                    }
                }
                '\\' if ni < n.len() && p.get(pi + 1) == Some(&n[ni]) => {
                    pi += 2;
                    ni += 1;
                    continue;
                }
                c if !matches!(c, '*' | '?' | '[' | '\\') && ni < n.len() && n[ni] == c => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        } else if ni == n.len() {
            return true;
        }
        // Mismatch: let the last `*` eat one more character, unless that would cross a `/`.
        match star {
            Some((sp, sn)) if sn < n.len() && n[sn] != '/' => {
                star = Some((sp, sn + 1));
                pi = sp;
                ni = sn + 1;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_gos_path_match() {
        // Cases from Go's path/match_test.go, written down again.
        let cases: &[(&str, &str, bool)] = &[
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*", "ab/c", false),
            ("a*/b", "abc/b", true),
            ("a*/b", "a/c/b", false),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^b-d]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a?b", "a☺b", true),
            ("a[^a]b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("*x", "xxx", true),
            ("busybox:*", "busybox:latest", true),
            ("*/app", "team/app", true),
            ("*", "team/app", false),
        ];
        for (p, n, want) in cases {
            assert_eq!(glob_match(p, n), Ok(*want), "{p} vs {n}");
        }
    }

    #[test]
    fn malformed_patterns_are_errors() {
        for p in [
            "[", "[^", "[^bc", "a[", "ab[-c]", "ab[c-]", "a\\", "[]a]", "*x[",
        ] {
            assert!(glob_match(p, "x").is_err(), "{p}");
        }
        assert_eq!(
            glob_match("[", "x").unwrap_err().to_string(),
            "syntax error in pattern \"[\""
        );
    }
}
