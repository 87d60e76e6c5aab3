//! Fuzzes origin parsing: `Origin::parse` and `Origin::from_url` never panic, and every origin they
//! accept is canonical, free of separators, and survives the client's URL encoding to the server.

#![no_main]

use composer_keyd::client::credential_path;
use composer_keyd::credential::Origin;
use libfuzzer_sys::fuzz_target;

fn invariants(o: &Origin) {
    let t = o.as_str();
    assert!(!t.is_empty() && t.len() <= 253, "{t:?}");
    assert!(
        !t.chars()
            .any(|c| c.is_control() || c.is_whitespace() || "/\\?#@".contains(c)),
        "{t:?}"
    );
    assert_eq!(Origin::parse(t).as_ref(), Ok(o), "parsing is idempotent");
    // The CLI's path encoding decodes back to the same origin in one path segment.
    let path = credential_path(t, None, "");
    let seg = path.strip_prefix("/v1/credentials/").unwrap();
    assert!(!seg.contains('/'), "{path}");
    let decoded = percent_encoding::percent_decode_str(seg)
        .decode_utf8()
        .unwrap();
    assert_eq!(decoded, t);
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(o) = Origin::parse(s) {
        invariants(&o);
    }
    if let Ok(o) = Origin::from_url(s) {
        invariants(&o);
    }
});
