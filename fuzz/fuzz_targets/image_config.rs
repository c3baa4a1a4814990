//! The JSON the store parses on load (image configs, manifests, indexes, `docker save`
//! manifests), the `--change` instructions of import, and the engine's option parsers, on
//! arbitrary input: no panics.
#![no_main]

use berth_engine::options;
use berth_store::import::changes;
use berth_store::layout::{self, Index, Manifest};
use libfuzzer_sys::fuzz_target;
use oci_spec::image::ImageConfiguration;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            if let Ok(m) = layout::parse::<Manifest>(rest, "manifest") {
                let again = serde_json::to_vec(&m).expect("serialise manifest");
                let _: Manifest = layout::parse(&again, "manifest").expect("round trip");
            }
            if let Ok(i) = layout::parse::<Index>(rest, "index") {
                let again = serde_json::to_vec(&i).expect("serialise index");
                let _: Index = layout::parse(&again, "index").expect("round trip");
            }
            if let Ok(c) = layout::parse::<ImageConfiguration>(rest, "config") {
                let _ = serde_json::to_vec(&c).expect("serialise config");
            }
            let _ = layout::parse::<Value>(rest, "docker manifest");
        }
        1 => {
            // --change instructions, one per line, applied to a config object.
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            let lines: Vec<String> = text.lines().take(8).map(str::to_owned).collect();
            let mut config = Map::new();
            let _ = changes::apply(&lines, &mut config);
        }
        2 => {
            let Ok(s) = std::str::from_utf8(rest) else {
                return;
            };
            let _ = options::parse_size("--memory", s);
            let _ = options::parse_cpus(s);
            let _ = options::parse_ulimit(s);
            let _ = options::parse_bind(s);
            let _ = options::parse_tmpfs(s);
            let _ = options::parse_userns(Some(s));
            let _ = options::parse_network(Some(s));
            let _ = options::parse_signal(s);
            let opts: Vec<String> = s.split('\n').take(6).map(str::to_owned).collect();
            let _ = options::parse_security(&opts);
        }
        _ => {
            // An env file.
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("env");
            std::fs::write(&path, rest).expect("write env file");
            if let Ok(lines) = options::read_env_file(&path) {
                for l in lines {
                    assert!(!l.is_empty() && !l.starts_with('#'));
                }
            }
        }
    }
});
