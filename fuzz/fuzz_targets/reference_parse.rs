//! `Reference::parse` on arbitrary strings: never panics; what parses prints back to itself.
#![no_main]

use berth_oci::{Reference, is_valid_tag, looks_like_id};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    let _ = looks_like_id(s);
    let _ = is_valid_tag(s);
    let Ok(r) = Reference::parse(s) else { return };
    let shown = r.to_string();
    let again = Reference::parse(&shown)
        .unwrap_or_else(|e| panic!("{s:?} parsed to {shown:?}, which does not parse: {e}"));
    assert_eq!(again, r, "{s:?} -> {shown:?} -> a different reference");
    // The short forms the CLI prints must name the same image.
    let familiar = r.familiar();
    let back = Reference::parse(&familiar)
        .unwrap_or_else(|e| panic!("{s:?}: familiar form {familiar:?} does not parse: {e}"));
    assert_eq!(back, r, "{s:?}: familiar form {familiar:?} names another image");
    let name = r.familiar_name();
    let back = Reference::parse(&name)
        .unwrap_or_else(|e| panic!("{s:?}: familiar name {name:?} does not parse: {e}"));
    assert_eq!(back.name(), r.name(), "{s:?}: familiar name {name:?} is another repository");
    if let Some(t) = r.tag() {
        assert!(is_valid_tag(t), "{s:?}: tag {t:?} is invalid");
        let _ = r.try_with_tag(t).expect("its own tag is valid");
    }
    let _ = r.without_digest();
});
