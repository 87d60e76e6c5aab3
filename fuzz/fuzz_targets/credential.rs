//! Fuzzes credential decoding: a credential as JSON (the store's and the wire's form), a `PUT` body, and
//! the auth.json shape (`{"http-basic": {"origin": {...}}, "github-oauth": {"origin": "token"}}`). Whatever
//! decodes round-trips exactly, and its `Debug` form shows no secret.

#![no_main]

use composer_keyd::credential::{Credential, CredentialType, Origin};
use composer_keyd::protocol::PutCredential;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn check(c: &Credential) {
    let json = serde_json::to_vec(c).unwrap();
    let back: Credential = serde_json::from_slice(&json).unwrap();
    assert_eq!(&back, c, "round trip");
    let shown = format!("{c:?}");
    assert_eq!(
        shown.matches("REDACTED").count(),
        c.fields().len(),
        "{shown}"
    );
    // A client certificate's paths are metadata and shown; each header adds one REDACTED.
    let shown_metadata = match c {
        Credential::ClientCertificate {
            local_cert,
            local_pk,
            ..
        } => format!("{local_cert:?}{local_pk:?}").len(),
        _ => 0,
    };
    assert!(
        shown.len() < 120 + 12 * c.fields().len() + shown_metadata,
        "Debug shows more than names: {shown}"
    );
    let _ = c.validate();
}

/// One auth.json entry as a credential: a token string, or an object of fields.
fn from_auth_json(kind: &str, entry: Value) -> Option<Credential> {
    let obj = match entry {
        Value::String(token) => serde_json::json!({ "type": kind, "token": token }),
        Value::Object(mut fields) => {
            fields.insert("type".into(), Value::String(kind.into()));
            Value::Object(fields)
        }
        _ => return None,
    };
    serde_json::from_value(obj).ok()
}

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = serde_json::from_slice::<Credential>(data) {
        check(&c);
    }
    if let Ok(p) = serde_json::from_slice::<PutCredential>(data) {
        check(&p.credential);
        let again: PutCredential =
            serde_json::from_slice(&serde_json::to_vec(&p).unwrap()).unwrap();
        assert_eq!(again, p);
    }
    let Ok(Value::Object(top)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for (kind, entries) in top {
        if CredentialType::parse(&kind).is_none() {
            continue;
        }
        let Value::Object(entries) = entries else {
            continue;
        };
        for (origin, entry) in entries {
            let _ = Origin::parse(&origin);
            if let Some(c) = from_auth_json(&kind, entry) {
                assert_eq!(c.kind().as_str(), kind);
                check(&c);
            }
        }
    }
});
