//! `WWW-Authenticate` parsing on arbitrary header values (a registry, or anything posing as one,
//! sends them): never panics, and what is picked is one of the parsed challenges.
#![no_main]

use berth_dist::auth::challenge::{parse, pick};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|headers: Vec<&str>| {
    let all = parse(headers.iter().copied());
    if let Some(c) = pick(all.clone()) {
        assert!(all.contains(&c), "picked a challenge that was not parsed: {c:?}");
    }
});
