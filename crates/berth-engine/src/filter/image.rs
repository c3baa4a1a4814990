//! `images --filter`: Docker's image keys over the store's images.

use super::{FilterError, Filters, LabelMatch, glob_match};
use berth_oci::Reference;
use berth_store::Image;

const ACCEPTED: &[&str] = &["dangling", "label", "reference", "before", "since"];

const UNSUPPORTED: &[(&str, &str)] = &[("until", "berth does not parse Go durations yet")];

/// A validated `images` filter. `before` and `since` name images the engine resolves when it lists
/// ([`crate::Engine::list_images`]).
#[derive(Debug, Clone, Default)]
pub struct ImageFilter {
    dangling: Option<bool>,
    labels: Vec<LabelMatch>,
    references: Vec<String>,
    before: Option<String>,
    since: Option<String>,
}

/// Creation times (ns) of the `before=` and `since=` images.
#[derive(Debug, Default)]
pub(crate) struct ImageAnchors {
    pub before: Option<i128>,
    pub since: Option<i128>,
}

impl ImageFilter {
    /// Checks `f` against Docker's image keys and values.
    pub fn new(f: &Filters) -> Result<ImageFilter, FilterError> {
        f.validate(ACCEPTED, UNSUPPORTED)?;
        let references: Vec<String> = f.get("reference").map(str::to_owned).collect();
        for r in &references {
            glob_match(r, "").map_err(|_| FilterError::InvalidValue {
                key: "reference".into(),
                value: r.clone(),
            })?;
        }
        Ok(ImageFilter {
            dangling: f.bool("dangling")?,
            labels: f.get("label").map(LabelMatch::parse).collect(),
            references,
            before: f.one("before")?.map(str::to_owned),
            since: f.one("since")?.map(str::to_owned),
        })
    }

    /// From CLI `key=value` arguments.
    pub fn from_args<S: AsRef<str>>(args: &[S]) -> Result<ImageFilter, FilterError> {
        ImageFilter::new(&Filters::from_args(args)?)
    }

    /// Adds a `reference=` value (the `images REPOSITORY[:TAG]` argument is one, as in Docker's CLI).
    pub fn with_reference(mut self, pattern: &str) -> Result<ImageFilter, FilterError> {
        let mut f = Filters::new();
        f.add("reference", pattern);
        self.references.extend(ImageFilter::new(&f)?.references);
        Ok(self)
    }

    /// The `before=` and `since=` images, for the engine to resolve.
    pub(crate) fn before_since(&self) -> (Option<&str>, Option<&str>) {
        (self.before.as_deref(), self.since.as_deref())
    }

    /// The references of `img` to list, or None if the image is filtered out. With `reference=`
    /// only the matching references are kept, and an image with none is left out.
    pub(crate) fn keep(&self, img: &Image, anchors: &ImageAnchors) -> Option<Vec<Reference>> {
        if let Some(d) = self.dangling
            && img.references.is_empty() != d
        {
            return None;
        }
        let labels = img
            .config
            .config()
            .as_ref()
            .and_then(|c| c.labels().as_ref());
        if !self
            .labels
            .iter()
            .all(|l| l.holds(|k| labels.and_then(|m| m.get(k)).map(String::as_str)))
        {
            return None;
        }
        let created = img.created.as_deref().and_then(crate::time::parse_rfc3339);
        if self.before.is_some()
            && !matches!((created, anchors.before), (Some(c), Some(b)) if c < b)
        {
            return None;
        }
        if self.since.is_some() && !matches!((created, anchors.since), (Some(c), Some(s)) if c > s)
        {
            return None;
        }
        if self.references.is_empty() {
            return Some(img.references.clone());
        }
        let refs: Vec<Reference> = img
            .references
            .iter()
            .filter(|r| self.references.iter().any(|p| reference_matches(p, r)))
            .cloned()
            .collect();
        (!refs.is_empty()).then_some(refs)
    }
}

/// Docker's `reference.FamiliarMatch`: the glob against `name:tag` or against `name`, in their
/// familiar forms. A pattern without glob characters also matches a reference it normalises to
/// (`docker.io/library/busybox` matches `busybox:latest`), as `berth images REPOSITORY` always has.
fn reference_matches(pattern: &str, r: &Reference) -> bool {
    if glob_match(pattern, &r.familiar()).unwrap_or(false)
        || glob_match(pattern, &r.familiar_name()).unwrap_or(false)
    {
        return true;
    }
    if pattern.contains(['*', '?', '[', '\\']) {
        return false;
    }
    let Ok(want) = Reference::parse(pattern) else {
        return false;
    };
    let has_tag = pattern.rsplit('/').next().is_some_and(|l| l.contains(':'));
    want.registry() == r.registry()
        && want.repository() == r.repository()
        && (!has_tag || want.tag() == r.tag())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_match_globs_on_familiar_names() {
        let r = |s: &str| Reference::parse(s).unwrap();
        assert!(reference_matches("busybox", &r("busybox:latest")));
        assert!(reference_matches("busybox:*", &r("busybox:1.36")));
        assert!(reference_matches(
            "busy*",
            &r("docker.io/library/busybox:1")
        ));
        assert!(!reference_matches("busybox:1.*", &r("busybox:latest")));
        assert!(reference_matches("*/app", &r("team/app:v1")));
        assert!(!reference_matches("*", &r("team/app:v1")), "* stops at /");
        assert!(reference_matches(
            "localhost:5000/app",
            &r("localhost:5000/app:v2")
        ));
        assert!(reference_matches(
            "docker.io/library/busybox",
            &r("busybox:latest")
        ));
        assert!(reference_matches(
            "docker.io/library/busybox:latest",
            &r("busybox:latest")
        ));
        assert!(!reference_matches(
            "docker.io/library/busybox:1",
            &r("busybox:latest")
        ));
        assert!(!reference_matches("alpine", &r("busybox:latest")));
    }

    #[test]
    fn bad_image_filters_say_what_docker_says() {
        let err = |a: &[&str]| ImageFilter::from_args(a).unwrap_err().to_string();
        assert_eq!(err(&["dangling=maybe"]), "invalid filter 'dangling=maybe'");
        assert_eq!(err(&["status=running"]), "invalid filter 'status'");
        assert_eq!(err(&["reference=a["]), "invalid filter 'reference=a['");
        assert!(err(&["until=1h"]).contains("not supported"));
        assert!(ImageFilter::from_args(&["dangling=false", "label=a=b", "reference=x"]).is_ok());
    }
}
