//! The key parser and checksum never panic, and a key that parses with a
//! required checksum carries the right one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::key::format::{KeyParser, checksum};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let strict = KeyParser::new();
    if let Ok(parsed) = strict.parse(&text) {
        let (body, sum) = text.split_at(text.len() - 6);
        assert_eq!(checksum(body), sum, "{text:?} parsed with a wrong checksum");
        let _ = (parsed.kind(), parsed.env());
    }
    let _ = KeyParser::new().require_checksum(false).parse(&text);
    let _ = checksum(&text);
});
