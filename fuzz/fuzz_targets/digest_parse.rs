//! `Digest` parsing on arbitrary strings: never panics; what parses prints back to itself.
#![no_main]

use berth_oci::Digest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    if let Ok(d) = s.parse::<Digest>() {
        assert_eq!(d.to_string(), s, "a digest must be in canonical form to parse");
        assert_eq!(d.algorithm(), "sha256");
        assert_eq!(d.hex().len(), 64);
        let _ = d.short();
        let json = serde_json::to_string(&d).expect("serialise");
        let back: Digest = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, d);
    }
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    if let Ok(d) = Digest::from_hex(hex) {
        assert_eq!(d.hex(), hex);
    }
});
