//! Docker's list filters (`--filter` of ps and images, the Engine API's `filters` parameter): one
//! [`Filters`] value however it arrived, and what each list makes of it ([`ContainerFilter`],
//! [`ImageFilter`]). Docker's rules: values of one key are OR'ed, different keys AND'ed, and label
//! filters all have to hold.
//!
//! Not for output formatting (the CLI's) nor for resolving names (the engine does that when it lists).

pub(crate) mod container;
mod glob;
pub(crate) mod image;

pub use container::ContainerFilter;
pub use glob::{GlobError, glob_match};
pub use image::ImageFilter;

use std::collections::{BTreeMap, BTreeSet};

/// Why a filter was refused; the texts are Docker's where Docker has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// A CLI filter without `=`.
    #[error("bad format of filter '{0}' (expected name=value)")]
    BadFormat(String),
    /// The API's `filters` parameter is not one of Docker's two JSON shapes.
    #[error("invalid filter JSON {json:?}: {why}")]
    Json {
        /// The text as received.
        json: String,
        /// What is wrong with it.
        why: String,
    },
    /// A key this list does not know.
    #[error("invalid filter '{0}'")]
    InvalidKey(String),
    /// A known key with a value it cannot take.
    #[error("invalid filter '{key}={value}'")]
    InvalidValue {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// A key Docker has but berth has no data for yet.
    #[error("filter '{key}' is not supported by berth yet: {why}")]
    Unsupported {
        /// The key.
        key: String,
        /// What berth lacks.
        why: &'static str,
    },
    /// A key that takes one value was given several.
    #[error("filter '{0}' takes one value")]
    OneValue(String),
}

/// Filter keys and their values, as Docker's `filters.Args`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    fields: BTreeMap<String, BTreeSet<String>>,
}

impl Filters {
    /// No filters: everything matches.
    pub fn new() -> Filters {
        Filters::default()
    }

    /// Adds one value to `key`.
    pub fn add(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Filters {
        self.fields
            .entry(key.into())
            .or_default()
            .insert(value.into());
        self
    }

    /// From the CLI's `--filter key=value` arguments (the value may itself hold `=`, as in
    /// `label=a=b`).
    pub fn from_args<S: AsRef<str>>(args: &[S]) -> Result<Filters, FilterError> {
        let mut f = Filters::new();
        for a in args {
            let a = a.as_ref();
            let (k, v) = a
                .split_once('=')
                .ok_or_else(|| FilterError::BadFormat(a.to_owned()))?;
            let k = k.trim().to_ascii_lowercase();
            if k.is_empty() {
                return Err(FilterError::BadFormat(a.to_owned()));
            }
            f.add(k, v.trim());
        }
        Ok(f)
    }

    /// From a map of keys to their values.
    pub fn from_map<K, V, I>(map: impl IntoIterator<Item = (K, I)>) -> Filters
    where
        K: Into<String>,
        V: Into<String>,
        I: IntoIterator<Item = V>,
    {
        let mut f = Filters::new();
        for (k, vs) in map {
            let k = k.into();
            let set = f.fields.entry(k).or_default();
            set.extend(vs.into_iter().map(Into::into));
        }
        f.fields.retain(|_, v| !v.is_empty());
        f
    }

    /// From the Docker Engine API's `filters` query parameter: `{"label":{"a=b":true}}`, or the
    /// older `{"label":["a=b"]}`; an empty text is no filter. As in Docker, the boolean is not
    /// consulted: a listed value counts.
    pub fn from_json(text: &str) -> Result<Filters, FilterError> {
        if text.trim().is_empty() {
            return Ok(Filters::new());
        }
        let bad = |why: String| FilterError::Json {
            json: text.to_owned(),
            why,
        };
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let obj = v
            .as_object()
            .ok_or_else(|| bad("expected an object of filter keys".into()))?;
        let mut f = Filters::new();
        for (k, vals) in obj {
            match vals {
                serde_json::Value::Object(m) => {
                    for (val, b) in m {
                        if !b.is_boolean() {
                            return Err(bad(format!("value {val:?} of {k:?} is not a boolean")));
                        }
                        f.add(k.clone(), val.clone());
                    }
                }
                serde_json::Value::Array(a) => {
                    for val in a {
                        let s = val
                            .as_str()
                            .ok_or_else(|| bad(format!("a value of {k:?} is not a string")))?;
                        f.add(k.clone(), s);
                    }
                }
                _ => {
                    return Err(bad(format!(
                        "values of {k:?} are neither an object nor a list"
                    )));
                }
            }
        }
        f.fields.retain(|_, v| !v.is_empty());
        Ok(f)
    }

    /// Whether no filter is set.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Whether `key` has any value.
    pub fn contains(&self, key: &str) -> bool {
        self.fields.contains_key(key)
    }

    /// The values of `key` (empty when unset).
    pub fn get(&self, key: &str) -> impl Iterator<Item = &str> {
        self.fields
            .get(key)
            .into_iter()
            .flat_map(|s| s.iter().map(String::as_str))
    }

    /// The keys that are set.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.keys().map(String::as_str)
    }

    /// Refuses a key outside `accepted` (Docker's `Validate`), naming keys of `unsupported` as
    /// known to Docker but not to berth.
    pub(crate) fn validate(
        &self,
        accepted: &[&str],
        unsupported: &[(&str, &'static str)],
    ) -> Result<(), FilterError> {
        for k in self.keys() {
            if let Some((_, why)) = unsupported.iter().find(|(u, _)| *u == k) {
                return Err(FilterError::Unsupported {
                    key: k.to_owned(),
                    why,
                });
            }
            if !accepted.contains(&k) {
                return Err(FilterError::InvalidKey(k.to_owned()));
            }
        }
        Ok(())
    }

    /// The single value of `key`, if set.
    pub(crate) fn one(&self, key: &str) -> Result<Option<&str>, FilterError> {
        let mut it = self.get(key);
        let first = it.next();
        if it.next().is_some() {
            return Err(FilterError::OneValue(key.to_owned()));
        }
        Ok(first)
    }

    /// `true`/`1` or `false`/`0` (Docker's `GetBoolOrDefault`); both at once is refused.
    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, FilterError> {
        let mut out = None;
        for v in self.get(key) {
            let b = match v.to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(FilterError::InvalidValue {
                        key: key.to_owned(),
                        value: v.to_owned(),
                    });
                }
            };
            if out.is_some_and(|o| o != b) {
                return Err(FilterError::OneValue(key.to_owned()));
            }
            out = Some(b);
        }
        Ok(out)
    }
}

/// One `label=` value: `KEY` (the label is set) or `KEY=VALUE` (set to exactly that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LabelMatch {
    key: String,
    value: Option<String>,
}

impl LabelMatch {
    pub(crate) fn parse(s: &str) -> LabelMatch {
        match s.split_once('=') {
            Some((k, v)) => LabelMatch {
                key: k.to_owned(),
                value: Some(v.to_owned()),
            },
            None => LabelMatch {
                key: s.to_owned(),
                value: None,
            },
        }
    }

    /// Whether `lookup` (a label's value by key) satisfies this.
    pub(crate) fn holds<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> bool {
        match (lookup(&self.key), &self.value) {
            (Some(have), Some(want)) => have == want,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// A `name=`/`id=` value: Docker matches it exactly or as an unanchored regular expression; a value
/// that is no valid expression matches only exactly.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    text: String,
    re: Option<regex::Regex>,
}

impl Pattern {
    pub(crate) fn new(text: &str) -> Pattern {
        Pattern {
            text: text.to_owned(),
            re: regex::Regex::new(text).ok(),
        }
    }

    pub(crate) fn matches(&self, s: &str) -> bool {
        self.text == s || self.re.as_ref().is_some_and(|r| r.is_match(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_args_split_at_the_first_equals_sign() {
        let f =
            Filters::from_args(&["label=a=b", "name=web", "name=db", "Status=running"]).unwrap();
        assert_eq!(f.get("label").collect::<Vec<_>>(), ["a=b"]);
        assert_eq!(f.get("name").collect::<Vec<_>>(), ["db", "web"]);
        assert_eq!(
            f.get("status").collect::<Vec<_>>(),
            ["running"],
            "keys are case-insensitive on the command line"
        );
        assert_eq!(f.get("nope").count(), 0);
        assert_eq!(
            Filters::from_args(&["foo"]).unwrap_err().to_string(),
            "bad format of filter 'foo' (expected name=value)"
        );
        assert!(matches!(
            Filters::from_args(&["=x"]),
            Err(FilterError::BadFormat(_))
        ));
    }

    #[test]
    fn api_json_in_both_of_dockers_shapes() {
        let new = Filters::from_json(r#"{"label":{"a=b":true,"c":true},"status":{"exited":true}}"#)
            .unwrap();
        let old = Filters::from_json(r#"{"label":["a=b","c"],"status":["exited"]}"#).unwrap();
        assert_eq!(new, old);
        let mut want = Filters::new();
        want.add("label", "c")
            .add("label", "a=b")
            .add("status", "exited");
        assert_eq!(new, want);
        assert!(Filters::from_json("").unwrap().is_empty());
        assert!(Filters::from_json(r#"{"label":{}}"#).unwrap().is_empty());
        for bad in [
            "[1]",
            "{",
            r#"{"label":"a"}"#,
            r#"{"label":[1]}"#,
            r#"{"label":{"a":"yes"}}"#,
        ] {
            assert!(
                matches!(Filters::from_json(bad), Err(FilterError::Json { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn maps_and_validation() {
        let f = Filters::from_map([("id", vec!["ab"]), ("empty", vec![])]);
        assert!(f.contains("id") && !f.contains("empty"));
        assert_eq!(
            f.validate(&["name"], &[]).unwrap_err().to_string(),
            "invalid filter 'id'"
        );
        assert!(f.validate(&["id"], &[]).is_ok());
        let e = f.validate(&[], &[("id", "no ids")]).unwrap_err();
        assert!(matches!(e, FilterError::Unsupported { .. }), "{e}");
    }

    #[test]
    fn booleans_and_single_values() {
        let f = Filters::from_args(&["dangling=1", "before=a", "before=b"]).unwrap();
        assert_eq!(f.bool("dangling").unwrap(), Some(true));
        assert_eq!(f.bool("other").unwrap(), None);
        assert_eq!(f.one("before"), Err(FilterError::OneValue("before".into())));
        let f = Filters::from_args(&["dangling=maybe"]).unwrap();
        assert_eq!(
            f.bool("dangling").unwrap_err().to_string(),
            "invalid filter 'dangling=maybe'"
        );
        let f = Filters::from_args(&["dangling=true", "dangling=false"]).unwrap();
        assert!(f.bool("dangling").is_err());
    }

    #[test]
    fn labels_and_patterns() {
        let labels = [("a", "b"), ("c", "")];
        let look = |k: &str| labels.iter().find(|(x, _)| *x == k).map(|(_, v)| *v);
        assert!(LabelMatch::parse("a").holds(look));
        assert!(LabelMatch::parse("a=b").holds(look));
        assert!(!LabelMatch::parse("a=c").holds(look));
        assert!(LabelMatch::parse("c=").holds(look));
        assert!(!LabelMatch::parse("d").holds(look));
        assert!(Pattern::new("web").matches("my-web-1"), "unanchored");
        assert!(Pattern::new("^web$").matches("web"));
        assert!(!Pattern::new("^web$").matches("web1"));
        assert!(
            Pattern::new("a(").matches("a("),
            "an invalid expression matches exactly"
        );
        assert!(!Pattern::new("a(").matches("xa(x"));
    }
}
