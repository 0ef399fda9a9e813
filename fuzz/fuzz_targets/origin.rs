//! Origin patterns: parsing and matching never panic, and a wildcard never
//! admits an origin that is not `https://` + labels + its domain.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::origin::OriginPattern;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (pattern, origin) = data.split_at(data.len() / 2);
    let (pattern, origin) = (
        String::from_utf8_lossy(pattern),
        String::from_utf8_lossy(origin),
    );
    if let Ok(pattern) = OriginPattern::parse(&pattern) {
        let _ = pattern.matches(&origin);
        let _ = pattern.as_str();
    }
    let wildcard = OriginPattern::parse("https://*.d.example").unwrap();
    if wildcard.matches(&text) {
        let lower = text.to_ascii_lowercase();
        let host = lower
            .strip_prefix("https://")
            .map(|rest| rest.strip_suffix(":443").unwrap_or(rest))
            .and_then(|rest| rest.strip_suffix(".d.example"))
            .unwrap_or_else(|| panic!("{text:?} matched https://*.d.example"));
        assert!(
            !host.is_empty() && host.split('.').all(|label| !label.is_empty()),
            "{text:?}"
        );
    }
});
