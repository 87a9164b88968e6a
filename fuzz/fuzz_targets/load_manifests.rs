//! The manifest loader on arbitrary bytes: YAML (multi-document, aliases, deep nesting) and
//! JSON, as `driftless apply` and the agent read files. It must return manifests or a
//! `LoadError`, never panic, hang or exhaust memory.
#![no_main]

use std::path::Path;

use driftless::render::{LoadOptions, parse_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the parser, as the file extension does.
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    let name = if kind % 2 == 0 {
        "fuzz.yaml"
    } else {
        "fuzz.json"
    };
    let opts = LoadOptions::default();
    if let Ok(manifests) = parse_bytes(Path::new(name), bytes, &opts) {
        assert!(manifests.len() <= opts.max_objects);
        for m in &manifests {
            assert!(m.object.is_object(), "every manifest is a mapping");
        }
    }
});
