//! The Git URL parser on arbitrary text: it must accept or refuse, never panic; what it
//! accepts must never be an option-like or `ext::` transport, and must print without the
//! password it may hold.
#![no_main]

use driftless::source::url;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = url::parse(text) {
        let shown = parsed.to_string();
        let debug = format!("{parsed:?}");
        if parsed.has_password() {
            assert_ne!(shown, text, "a password is never printed");
            assert!(!debug.contains(text), "a password is never printed");
        }
        assert!(
            !parsed.host().is_some_and(|h| h.starts_with('-')),
            "option-like host"
        );
        assert!(!parsed.path().starts_with('-'), "option-like path");
        // Parsing what it prints again never panics either.
        let _ = url::parse(&shown);
    }
});
