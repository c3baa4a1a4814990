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

    /// An image with `refs`, config `labels` and creation second `created`.
    fn image(n: u8, refs: &[&str], labels: &[(&str, &str)], created: u32) -> Image {
        let labels: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Labels": labels},
            "rootfs": {"type": "layers", "diff_ids": []},
        });
        let digest: berth_oci::Digest = format!("sha256:{}", hex::encode([n; 32])).parse().unwrap();
        Image {
            id: digest.clone(),
            manifest_digest: digest,
            references: refs.iter().map(|r| Reference::parse(r).unwrap()).collect(),
            config: serde_json::from_value(config).unwrap(),
            layers: vec![],
            size: 0,
            created: Some(format!("2026-01-01T00:00:{created:02}.000000000Z")),
            added: String::new(),
            sources: vec![],
            index_digests: vec![],
        }
    }

    fn images() -> Vec<Image> {
        vec![
            image(1, &["bb:1", "bb:latest"], &[], 1),
            image(2, &["web:v1"], &[("tier", "web"), ("team", "a")], 2),
            image(3, &[], &[("tier", "web")], 3),
        ]
    }

    /// `(image number, kept references)` for what `args` keeps of [`images`].
    fn keep(args: &[&str], anchors: &ImageAnchors) -> Vec<(u8, Vec<String>)> {
        let f = ImageFilter::from_args(args).unwrap();
        images()
            .iter()
            .filter_map(|img| {
                let refs = f.keep(img, anchors)?;
                let n = img.id.to_string().as_bytes()["sha256:".len() + 1] - b'0';
                Some((n, refs.iter().map(Reference::familiar).collect()))
            })
            .collect()
    }

    fn at(second: u32) -> Option<i128> {
        crate::time::parse_rfc3339(&format!("2026-01-01T00:00:{second:02}.000000000Z"))
    }

    #[test]
    fn images_pass_by_dangling_labels_and_time() {
        let none = ImageAnchors::default();
        let all = keep(&[], &none);
        assert_eq!(all.len(), 3);
        assert_eq!(all[0], (1, vec!["bb:1".to_owned(), "bb:latest".to_owned()]));
        assert_eq!(keep(&["dangling=true"], &none), [(3, vec![])]);
        assert_eq!(
            keep(&["dangling=false"], &none)
                .iter()
                .map(|k| k.0)
                .collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(
            keep(&["label=tier=web"], &none)
                .iter()
                .map(|k| k.0)
                .collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(
            keep(&["label=tier=web", "label=team"], &none)
                .iter()
                .map(|k| k.0)
                .collect::<Vec<_>>(),
            [2]
        );
        let before2 = ImageAnchors {
            before: at(2),
            since: None,
        };
        assert_eq!(keep(&["before=web:v1"], &before2)[0].0, 1);
        assert_eq!(keep(&["before=web:v1"], &before2).len(), 1);
        let since2 = ImageAnchors {
            before: None,
            since: at(2),
        };
        assert_eq!(keep(&["since=web:v1"], &since2), [(3, vec![])]);
    }

    #[test]
    fn reference_filters_keep_only_matching_tags() {
        let none = ImageAnchors::default();
        assert_eq!(
            keep(&["reference=bb:1"], &none),
            [(1, vec!["bb:1".to_owned()])]
        );
        assert_eq!(
            keep(&["reference=bb"], &none),
            [(1, vec!["bb:1".to_owned(), "bb:latest".to_owned()])]
        );
        assert_eq!(
            keep(&["reference=bb:1", "reference=web:*"], &none),
            [(1, vec!["bb:1".to_owned()]), (2, vec!["web:v1".to_owned()])],
            "values of one key are OR'ed; dangling images have no reference to match"
        );
        let positional = ImageFilter::default().with_reference("web").unwrap();
        assert!(positional.keep(&images()[1], &none).is_some());
        assert!(positional.keep(&images()[0], &none).is_none());
        assert!(ImageFilter::default().with_reference("a[").is_err());
    }

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
