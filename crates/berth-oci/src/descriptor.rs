//! Content descriptors and platforms: the two shapes every OCI document (manifests, indexes,
//! `index.json`, referrers) is built from. One definition for the store, the registry and the
//! client alike; parsing checks the digest, and unknown fields are ignored as the spec asks.

use crate::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A content descriptor: what a piece of content is, where to find it (by digest) and how big it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the target (empty when a document left it out).
    #[serde(default)]
    pub media_type: String,
    /// Digest of the target.
    pub digest: Digest,
    /// Size of the target in bytes.
    pub size: u64,
    /// The artifact type of an artifact manifest (OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Platform, in index entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    /// A descriptor with no annotations, artifact type or platform.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            artifact_type: None,
            annotations: None,
            platform: None,
        }
    }

    /// The value of an annotation, if present.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// A platform: operating system and CPU architecture in Go's terms (GOOS/GOARCH), with an
/// optional variant (`arm64/v8`, `arm/v7`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (GOARCH).
    #[serde(default)]
    pub architecture: String,
    /// Operating system (GOOS).
    #[serde(default)]
    pub os: String,
    /// Operating system version (Windows images).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// Required operating system features (Windows images).
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    /// Architecture variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A platform string that is not `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {0:?}: expected os/arch[/variant], each part letters, digits or _")]
pub struct PlatformError(pub String);

impl Platform {
    /// `linux` on the given architecture, without a variant.
    pub fn linux(architecture: impl Into<String>) -> Platform {
        Platform {
            architecture: architecture.into(),
            os: "linux".to_owned(),
            ..Platform::default()
        }
    }

    /// The platform this program was built for, in OCI terms (Rust's architecture names mapped to
    /// Go's).
    pub fn host() -> Platform {
        Platform::linux(goarch(std::env::consts::ARCH))
    }
}

/// Go's name (GOARCH) for a Rust target architecture.
pub fn goarch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    /// Parses `os/arch[/variant]` as `--platform` takes it.
    fn from_str(s: &str) -> Result<Platform, PlatformError> {
        let ok =
            |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: (*os).into(),
                architecture: (*arch).into(),
                ..Platform::default()
            }),
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => Ok(Platform {
                os: (*os).into(),
                architecture: (*arch).into(),
                variant: Some((*v).into()),
                ..Platform::default()
            }),
            _ => Err(PlatformError(s.to_owned())),
        }
    }
}

impl fmt::Display for Platform {
    /// `os/arch[/variant]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_round_trips_and_checks_digest() {
        let json = format!(
            r#"{{"mediaType":"x","digest":"{}","size":3}}"#,
            Digest::of(b"abc")
        );
        let d: Descriptor = serde_json::from_str(&json).unwrap();
        assert_eq!(d, Descriptor::new("x", Digest::of(b"abc"), 3));
        assert_eq!(serde_json::to_string(&d).unwrap(), json);
        for bad in [
            r#"{"mediaType":"x","digest":"sha256:zz","size":3}"#,
            r#"{"mediaType":"x","digest":"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad","size":-1}"#,
            r#"{"mediaType":"x","size":3}"#,
        ] {
            assert!(serde_json::from_str::<Descriptor>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn descriptor_keeps_platform_and_annotations() {
        let json = format!(
            r#"{{"mediaType":"m","digest":"{}","size":1,"annotations":{{"k":"v"}},"platform":{{"architecture":"arm64","os":"linux","os.version":"1","variant":"v8"}},"unknown":true}}"#,
            Digest::of(b"x")
        );
        let d: Descriptor = serde_json::from_str(&json).unwrap();
        assert_eq!(d.annotation("k"), Some("v"));
        let p = d.platform.unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert_eq!(p.os_version.as_deref(), Some("1"));
    }

    #[test]
    fn platforms_parse_and_print() {
        let p: Platform = "linux/amd64".parse().unwrap();
        assert_eq!(p, Platform::linux("amd64"));
        assert_eq!(p.to_string(), "linux/amd64");
        let v: Platform = "linux/arm/v7".parse().unwrap();
        assert_eq!(v.variant.as_deref(), Some("v7"));
        assert_eq!(v.to_string(), "linux/arm/v7");
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "linux/amd64/v8/x",
            "linux/am d64",
            "",
        ] {
            let e = bad.parse::<Platform>().unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
        assert_eq!(goarch("x86_64"), "amd64");
        assert_eq!(Platform::host().os, "linux");
    }
}
