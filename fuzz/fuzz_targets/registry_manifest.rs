//! What a registry answers to a manifest request, and the config it points at, on arbitrary
//! bytes and content types: parsing, platform choice and diff-ID extraction never panic, and a
//! chosen manifest is one the index lists.
#![no_main]

use berth_dist::manifest::{Document, choose, diff_ids, layer_supported, parse, parse_platform};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], Option<&str>, &str)| {
    let (body, content_type, platform) = input;
    let _ = diff_ids(body, "config");
    match parse(body, content_type, "manifest") {
        Ok(Document::Index(index)) => {
            if let Ok(p) = parse_platform(platform)
                && let Ok(d) = choose(&index, &p, "fuzz")
            {
                assert!(index.manifests.iter().any(|m| m.digest == d.digest));
            }
        }
        Ok(Document::Manifest(m, _)) => {
            for l in &m.layers {
                let _ = layer_supported(l);
            }
        }
        Err(_) => {}
    }
});
