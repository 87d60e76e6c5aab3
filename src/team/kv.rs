//! The KV v2 layout of a team source: reading a credential with its version, label and
//! disabled state (custom metadata), writing new versions, the metadata changes of the
//! lifecycle, and the token's capabilities on the prefix (`sys/capabilities-self`).

use super::client::{Engine, Reply};
use super::TeamError;
use crate::credential::{Credential, CredentialType};
use crate::secret::Secret;
use hyper::Method;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// A credential read from a team source.
#[derive(Debug)]
pub struct TeamEntry {
    /// The credential (secrets zeroized on drop).
    pub credential: Credential,
    /// The KV v2 version read.
    pub version: u64,
    /// `label` in the custom metadata.
    pub label: Option<String>,
    /// `disabled = "true"` in the custom metadata.
    pub disabled: bool,
}

#[derive(Deserialize)]
struct Outer<'a> {
    #[serde(borrow)]
    data: Option<Inner<'a>>,
}

#[derive(Deserialize)]
struct Inner<'a> {
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    metadata: Option<Meta>,
}

#[derive(Deserialize)]
struct Meta {
    version: u64,
    #[serde(default)]
    custom_metadata: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct TypePeek {
    #[serde(rename = "type")]
    kind: Option<serde_json::Value>,
}

/// Reads `{mount}/data/{path}` (the current version, or `version`).
pub async fn read(
    engine: &Engine,
    token: &Secret<String>,
    mount: &str,
    path: &str,
    version: Option<u64>,
) -> Result<TeamEntry, TeamError> {
    let mut url = format!("{mount}/data/{path}");
    if let Some(v) = version {
        url.push_str(&format!("?version={v}"));
    }
    let reply = engine.call(Method::GET, &url, Some(token), None).await?;
    answered(engine, &reply, "read", path)?;
    parse(engine.team(), path, &reply.body)
}

/// Turns a 403 into `Forbidden`, a 404 into `NotFound`, anything else not 2xx into
/// `Unavailable`.
fn answered(
    engine: &Engine,
    reply: &Reply,
    action: &'static str,
    path: &str,
) -> Result<(), TeamError> {
    match reply.status {
        200..=299 => Ok(()),
        403 => Err(TeamError::Forbidden {
            team: engine.team().to_owned(),
            action,
            path: path.to_owned(),
        }),
        404 => Err(TeamError::NotFound {
            team: engine.team().to_owned(),
            path: path.to_owned(),
        }),
        s => Err(TeamError::Unavailable {
            team: engine.team().to_owned(),
            detail: format!(
                "{} answered {s} to {action} {path}",
                engine.addrs()[reply.addr]
            ),
        }),
    }
}

/// Parses a KV v2 read reply; no error quotes the data.
pub fn parse(team: &str, path: &str, body: &[u8]) -> Result<TeamEntry, TeamError> {
    let bad = |reason: &str| TeamError::BadData {
        team: team.to_owned(),
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let outer: Outer<'_> =
        serde_json::from_slice(body).map_err(|_| bad("the engine's reply is not KV v2 JSON"))?;
    let inner = outer
        .data
        .ok_or_else(|| bad("the engine's reply has no data"))?;
    let meta = inner
        .metadata
        .ok_or_else(|| bad("the engine's reply has no metadata"))?;
    let raw = match inner.data {
        Some(r) if r.get() != "null" => r,
        // A deleted or destroyed version.
        _ => {
            return Err(TeamError::NotFound {
                team: team.to_owned(),
                path: path.to_owned(),
            })
        }
    };
    let peek: TypePeek =
        serde_json::from_str(raw.get()).map_err(|_| bad("the data is not a JSON object"))?;
    let kind = match peek.kind {
        Some(serde_json::Value::String(s)) => s,
        Some(_) => return Err(bad("`type` is not a string")),
        None => return Err(bad("it has no `type` (e.g. type=http-basic)")),
    };
    let known = CredentialType::parse(&kind).filter(|k| *k != CredentialType::Unknown);
    if known.is_none() {
        return Err(TeamError::UnsupportedType {
            team: team.to_owned(),
            path: path.to_owned(),
            kind: crate::audit::printable(&kind),
        });
    }
    let credential: Credential = serde_json::from_str(raw.get()).map_err(|_| {
        bad(&format!(
            "its fields are not those of a {kind} credential ({})",
            CredentialType::parse(&kind)
                .map(|k| k.fields(true).join(", "))
                .unwrap_or_default()
        ))
    })?;
    credential
        .validate()
        .map_err(|_| bad(&format!("its fields fail the {kind} checks")))?;
    let custom = meta.custom_metadata.unwrap_or_default();
    Ok(TeamEntry {
        credential,
        version: meta.version,
        label: custom.get("label").cloned(),
        disabled: custom.get("disabled").is_some_and(|v| v == "true"),
    })
}

/// Writes a new version of `{mount}/data/{path}`; returns its version.
pub async fn write(
    engine: &Engine,
    token: &Secret<String>,
    mount: &str,
    path: &str,
    credential: &Credential,
) -> Result<u64, TeamError> {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        data: &'a Credential,
    }
    let body = crate::secret::to_json_zeroizing(&Body { data: credential });
    let url = format!("{mount}/data/{path}");
    let reply = engine
        .call(Method::POST, &url, Some(token), Some(&body))
        .await?;
    answered(engine, &reply, "write", &url)?;
    #[derive(Deserialize)]
    struct Written {
        data: Meta,
    }
    serde_json::from_slice::<Written>(&reply.body)
        .map(|w| w.data.version)
        .map_err(|_| TeamError::BadData {
            team: engine.team().to_owned(),
            path: path.to_owned(),
            reason: "the engine's reply to a write has no version".into(),
        })
}

/// The metadata of `{mount}/metadata/{path}`: the current version and the custom metadata.
pub async fn metadata(
    engine: &Engine,
    token: &Secret<String>,
    mount: &str,
    path: &str,
) -> Result<(u64, BTreeMap<String, String>), TeamError> {
    let url = format!("{mount}/metadata/{path}");
    let reply = engine.call(Method::GET, &url, Some(token), None).await?;
    answered(engine, &reply, "read the metadata of", &url)?;
    #[derive(Deserialize)]
    struct M {
        data: MData,
    }
    #[derive(Deserialize)]
    struct MData {
        current_version: u64,
        #[serde(default)]
        custom_metadata: Option<BTreeMap<String, String>>,
    }
    let m: M = serde_json::from_slice(&reply.body).map_err(|_| TeamError::BadData {
        team: engine.team().to_owned(),
        path: path.to_owned(),
        reason: "the metadata reply is not KV v2 JSON".into(),
    })?;
    Ok((
        m.data.current_version,
        m.data.custom_metadata.unwrap_or_default(),
    ))
}

/// The keys under `{mount}/metadata/{path}/` (`LIST`; a key ending in `/` is a folder);
/// empty when there is nothing.
pub async fn list(
    engine: &Engine,
    token: &Secret<String>,
    mount: &str,
    path: &str,
) -> Result<Vec<String>, TeamError> {
    let url = format!("{mount}/metadata/{path}/");
    let method = Method::from_bytes(b"LIST").expect("a valid method");
    let reply = engine.call(method, &url, Some(token), None).await?;
    match answered(engine, &reply, "list", &url) {
        Err(TeamError::NotFound { .. }) => return Ok(Vec::new()),
        other => other?,
    }
    #[derive(Deserialize)]
    struct L {
        data: LData,
    }
    #[derive(Deserialize)]
    struct LData {
        #[serde(default)]
        keys: Vec<String>,
    }
    serde_json::from_slice::<L>(&reply.body)
        .map(|l| l.data.keys)
        .map_err(|_| TeamError::BadData {
            team: engine.team().to_owned(),
            path: path.to_owned(),
            reason: "the list reply is not KV v2 JSON".into(),
        })
}

/// Sets the custom metadata of `{mount}/metadata/{path}` (the whole map).
pub async fn set_metadata(
    engine: &Engine,
    token: &Secret<String>,
    mount: &str,
    path: &str,
    custom: &BTreeMap<String, String>,
) -> Result<(), TeamError> {
    let body = serde_json::to_vec(&serde_json::json!({ "custom_metadata": custom }))
        .expect("a map of strings serializes");
    let url = format!("{mount}/metadata/{path}");
    let reply = engine
        .call(Method::POST, &url, Some(token), Some(&body))
        .await?;
    answered(engine, &reply, "write", &url)
}

/// Deletes `{mount}/metadata/{path}`: every version and the metadata.
pub async fn delete(
    engine: &Engine,
    token: &Secret<String>,
    mount: &str,
    path: &str,
) -> Result<(), TeamError> {
    let url = format!("{mount}/metadata/{path}");
    let reply = engine.call(Method::DELETE, &url, Some(token), None).await?;
    answered(engine, &reply, "delete", &url)
}

/// What the token may do with each path (`sys/capabilities-self`); reads no secret.
pub async fn capabilities(
    engine: &Engine,
    token: &Secret<String>,
    paths: &[String],
) -> Result<BTreeMap<String, Vec<String>>, TeamError> {
    let body = serde_json::to_vec(&serde_json::json!({ "paths": paths }))
        .expect("a list of strings serializes");
    let reply = engine
        .call(
            Method::POST,
            "sys/capabilities-self",
            Some(token),
            Some(&body),
        )
        .await?;
    answered(
        engine,
        &reply,
        "ask the capabilities of",
        "sys/capabilities-self",
    )?;
    #[derive(Deserialize)]
    struct Caps {
        data: BTreeMap<String, serde_json::Value>,
    }
    let caps: Caps = serde_json::from_slice(&reply.body).map_err(|_| TeamError::BadData {
        team: engine.team().to_owned(),
        path: "sys/capabilities-self".into(),
        reason: "the reply is not a capabilities map".into(),
    })?;
    Ok(paths
        .iter()
        .map(|p| {
            let list = caps
                .data
                .get(p)
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            (p.clone(), list)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(data: &str) -> String {
        format!(
            r#"{{"data":{{"data":{data},"metadata":{{"version":3,"custom_metadata":{{"label":"Shop","disabled":"true"}}}}}}}}"#
        )
    }

    #[test]
    fn reads_a_credential_with_its_metadata() {
        let body = reply(r#"{"type":"http-basic","username":"PUB","password":"PRIV"}"#);
        let e = parse("acme", "composer/x", body.as_bytes()).unwrap();
        assert_eq!(e.version, 3);
        assert_eq!(e.label.as_deref(), Some("Shop"));
        assert!(e.disabled);
        assert_eq!(e.credential.kind(), CredentialType::HttpBasic);
    }

    #[test]
    fn bad_data_is_typed_and_never_quoted() {
        for (data, want) in [
            (r#"{"username":"PUB","password":"SECRETX"}"#, "BadData"),
            (r#"{"type":"nope","password":"SECRETX"}"#, "UnsupportedType"),
            (r#"{"type":5,"password":"SECRETX"}"#, "BadData"),
            (r#"{"type":"http-basic","password":"SECRETX"}"#, "BadData"),
            (
                r#"{"type":"http-basic","username":1,"password":"SECRETX"}"#,
                "BadData",
            ),
            (r#""SECRETX""#, "BadData"),
            ("null", "NotFound"),
        ] {
            let e = parse("acme", "composer/x", reply(data).as_bytes()).unwrap_err();
            let text = format!("{e} {e:?}");
            assert!(text.contains(want), "{data}: {text}");
            assert!(!text.contains("SECRETX"), "{data}: {text}");
        }
        for garbage in ["", "<html>", "{\"data\":1}", "{}"] {
            let e = parse("acme", "composer/x", garbage.as_bytes()).unwrap_err();
            assert!(matches!(e, TeamError::BadData { .. }), "{garbage}: {e}");
        }
    }
}
