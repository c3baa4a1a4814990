//! `Store::load` of arbitrary bytes into a fresh store in a sandbox: never panics, a failure
//! records no image, nothing outside the store changes.
#![no_main]

use berth_fuzz::Sandbox;
use berth_store::Store;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let sb = Sandbox::new();
    let store = Store::open(&sb.work()).expect("open store");
    let result = store.load(data);
    sb.check();
    let images = store.images().expect("list images after load");
    match result {
        Ok(loaded) => assert!(loaded.len() <= images.len()),
        Err(e) => assert!(images.is_empty(), "load failed ({e}) but recorded {images:?}"),
    }
});
