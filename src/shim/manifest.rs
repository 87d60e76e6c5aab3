//! Edits of COMPOSER_HOME's composer.json: the path repository, the require entry and
//! the allow-plugins grant for the plugin, added and removed without touching other keys.

use serde_json::{Map, Value};

/// Noted in [`Edit::created`] when `allow-plugins` was `false` before.
const WAS_FALSE: &str = "config.allow-plugins=false";

/// What one edit did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Edit {
    /// Whether the document changed.
    pub changed: bool,
    /// Containers that did not exist before (`repositories`, `require`, `config`,
    /// `config.allow-plugins`), and `config.allow-plugins=false` when that was narrowed.
    pub created: Vec<String>,
}

/// Why the document cannot be edited.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// The document, or a member that must be an object, is not one; holds its name.
    #[error("`{0}` is not a JSON object")]
    NotAnObject(&'static str),
    /// `repositories` is neither a list nor an object.
    #[error("`repositories` is neither an array nor an object")]
    BadRepositories,
}

/// The repository entry pointing at the plugin's copy.
pub fn repository(dir: &str) -> Value {
    serde_json::json!({"type": "path", "url": dir, "options": {"symlink": false}})
}

fn is_ours(repo: &Value, dir: &str) -> bool {
    repo.get("type").and_then(Value::as_str) == Some("path")
        && repo.get("url").and_then(Value::as_str) == Some(dir)
}

/// Gets `key` of `doc` as an object, creating it (and noting that) when absent.
fn object<'a>(
    doc: &'a mut Map<String, Value>,
    key: &'static str,
    path: &'static str,
    edit: &mut Edit,
) -> Result<&'a mut Map<String, Value>, ManifestError> {
    if !doc.contains_key(key) {
        doc.insert(key.to_owned(), Value::Object(Map::new()));
        edit.created.push(path.to_owned());
        edit.changed = true;
    }
    doc.get_mut(key)
        .and_then(Value::as_object_mut)
        .ok_or(ManifestError::NotAnObject(path))
}

/// Adds the path repository, `require` and the allow-plugins grant, where missing.
pub fn add(doc: &mut Value, package: &str, dir: &str) -> Result<Edit, ManifestError> {
    let doc = doc
        .as_object_mut()
        .ok_or(ManifestError::NotAnObject("composer.json"))?;
    let mut edit = Edit::default();

    if !doc.contains_key("repositories") {
        doc.insert("repositories".into(), Value::Array(Vec::new()));
        edit.created.push("repositories".into());
    }
    match doc.get_mut("repositories") {
        Some(Value::Array(list)) => {
            if !list.iter().any(|r| is_ours(r, dir)) {
                list.push(repository(dir));
                edit.changed = true;
            }
        }
        Some(Value::Object(map)) => {
            if !map.values().any(|r| is_ours(r, dir)) {
                map.insert(package.to_owned(), repository(dir));
                edit.changed = true;
            }
        }
        _ => return Err(ManifestError::BadRepositories),
    }

    let require = object(doc, "require", "require", &mut edit)?;
    if !require.contains_key(package) {
        require.insert(package.to_owned(), Value::String("*".into()));
        edit.changed = true;
    }

    let config = object(doc, "config", "config", &mut edit)?;
    match config.get("allow-plugins") {
        // `true` already allows every plugin; narrowing it would change the user's policy.
        Some(Value::Bool(true)) => {}
        Some(Value::Object(_)) | None => {
            let allow = object(config, "allow-plugins", "config.allow-plugins", &mut edit)?;
            if allow.get(package) != Some(&Value::Bool(true)) {
                allow.insert(package.to_owned(), Value::Bool(true));
                edit.changed = true;
            }
        }
        // `false` blocks every plugin: narrowed to a list that allows ours only, restored by remove().
        Some(_) => {
            let mut only = Map::new();
            only.insert(package.to_owned(), Value::Bool(true));
            config.insert("allow-plugins".into(), Value::Object(only));
            edit.created.push(WAS_FALSE.to_owned());
            edit.changed = true;
        }
    }
    Ok(edit)
}

/// Removes what [`add`] added; `created` names the containers it created, removed when left empty.
pub fn remove(doc: &mut Value, package: &str, dir: &str, created: &[String]) -> bool {
    let Some(doc) = doc.as_object_mut() else {
        return false;
    };
    let mut changed = false;
    match doc.get_mut("repositories") {
        Some(Value::Array(list)) => {
            let before = list.len();
            list.retain(|r| !is_ours(r, dir));
            changed |= list.len() != before;
        }
        Some(Value::Object(map)) => {
            let before = map.len();
            map.retain(|_, r| !is_ours(r, dir));
            changed |= map.len() != before;
        }
        _ => {}
    }
    if let Some(Value::Object(require)) = doc.get_mut("require") {
        changed |= require.shift_remove(package).is_some();
    }
    if let Some(Value::Object(config)) = doc.get_mut("config") {
        if let Some(Value::Object(allow)) = config.get_mut("allow-plugins") {
            changed |= allow.shift_remove(package).is_some();
        }
        if created.iter().any(|c| c == WAS_FALSE) {
            if let Some(allow) = config
                .get_mut("allow-plugins")
                .filter(|a| a.as_object().is_some_and(Map::is_empty))
            {
                *allow = Value::Bool(false);
                changed = true;
            }
        }
        if created.iter().any(|c| c == "config.allow-plugins") {
            changed |= drop_if_empty(config, "allow-plugins");
        }
    }
    for key in ["repositories", "require", "config"] {
        if created.iter().any(|c| c == key) {
            changed |= drop_if_empty(doc, key);
        }
    }
    changed
}

fn drop_if_empty(map: &mut Map<String, Value>, key: &str) -> bool {
    let empty = match map.get(key) {
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        _ => false,
    };
    if empty {
        map.shift_remove(key);
    }
    empty
}

/// Whether `package` may run as a plugin under this document's `allow-plugins`.
pub fn allowed(doc: &Value, package: &str) -> Option<bool> {
    match doc.pointer("/config/allow-plugins")? {
        Value::Bool(b) => Some(*b),
        Value::Object(map) => match map.get(package) {
            Some(Value::Bool(b)) => Some(*b),
            // Patterns such as "vendor/*" are Composer's; a literal "*" is the common case.
            _ => map.get("*").and_then(Value::as_bool).or(Some(false)),
        },
        _ => None,
    }
}

/// Composer's own layout: four-space indent, unescaped slashes, trailing newline.
pub fn to_pretty(doc: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    serde::Serialize::serialize(doc, &mut ser).expect("a Value always serializes into a Vec");
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PKG: &str = "composer-keyd/composer-plugin";
    const DIR: &str = "/data/composer-keyd/composer-plugin";

    #[test]
    fn add_keeps_other_keys_in_order_and_is_idempotent() {
        let mut doc = json!({
            "zeta": 1,
            "require": {"acme/tool": "^1"},
            "repositories": [{"type": "composer", "url": "https://example.com"}],
            "config": {"allow-plugins": {"acme/plugin": false}, "sort-packages": true},
            "alpha": 2
        });
        let edit = add(&mut doc, PKG, DIR).unwrap();
        assert!(edit.changed);
        assert!(edit.created.is_empty());
        let keys: Vec<_> = doc.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["zeta", "require", "repositories", "config", "alpha"]);
        assert_eq!(doc["repositories"][1], repository(DIR));
        assert_eq!(doc["require"][PKG], "*");
        assert_eq!(doc["config"]["allow-plugins"]["acme/plugin"], false);
        assert_eq!(allowed(&doc, PKG), Some(true));
        let snapshot = doc.clone();
        assert_eq!(add(&mut doc, PKG, DIR).unwrap(), Edit::default());
        assert_eq!(doc, snapshot);
    }

    #[test]
    fn remove_reverses_add_exactly() {
        for original in [
            json!({}),
            json!({"require": {"a/b": "*"}, "config": {"allow-plugins": true}}),
            json!({"repositories": {"packagist.org": false}, "config": {"allow-plugins": {}}}),
            json!({"require": {}, "repositories": []}),
            json!({"config": {"allow-plugins": false, "x": 1}}),
        ] {
            let mut doc = original.clone();
            let edit = add(&mut doc, PKG, DIR).unwrap();
            assert!(edit.changed);
            assert!(remove(&mut doc, PKG, DIR, &edit.created));
            assert_eq!(doc, original, "created {:?}", edit.created);
            assert_eq!(to_pretty(&doc), to_pretty(&original));
        }
    }

    #[test]
    fn allow_plugins_policies() {
        let mut all = json!({"config": {"allow-plugins": true}});
        add(&mut all, PKG, DIR).unwrap();
        assert_eq!(all["config"]["allow-plugins"], true, "`true` is left alone");
        let mut none = json!({"config": {"allow-plugins": false}});
        add(&mut none, PKG, DIR).unwrap();
        assert_eq!(allowed(&none, PKG), Some(true));
        assert_eq!(allowed(&json!({}), PKG), None);
        assert_eq!(
            allowed(&json!({"config": {"allow-plugins": {"*": true}}}), PKG),
            Some(true)
        );
        assert_eq!(
            allowed(&json!({"config": {"allow-plugins": {"x/y": true}}}), PKG),
            Some(false)
        );
    }

    #[test]
    fn refuses_what_it_cannot_edit() {
        assert_eq!(
            add(&mut json!([]), PKG, DIR),
            Err(ManifestError::NotAnObject("composer.json"))
        );
        assert_eq!(
            add(&mut json!({"repositories": 3}), PKG, DIR),
            Err(ManifestError::BadRepositories)
        );
        assert_eq!(
            add(&mut json!({"require": []}), PKG, DIR),
            Err(ManifestError::NotAnObject("require"))
        );
    }

    #[test]
    fn pretty_is_composer_style() {
        let text = String::from_utf8(to_pretty(&json!({"url": "/a/b", "o": {"k": 1}}))).unwrap();
        assert_eq!(
            text,
            "{\n    \"url\": \"/a/b\",\n    \"o\": {\n        \"k\": 1\n    }\n}\n"
        );
    }
}
