use super::*;
use crate::credential::CredentialType;

fn cred(kind: CredentialType, fields: &[&str]) -> Credential {
    Credential::from_fields(kind, fields.iter().map(|f| Secret::from(*f)).collect()).unwrap()
}

fn req(text: &str) -> Request {
    Request::parse(text.as_bytes()).unwrap()
}

fn rendered(c: &Credential, r: &Request) -> String {
    answer(c, r).render().unwrap().to_string()
}

#[test]
fn a_bearer_answer_renders_as_authtype() {
    let b = cred(CredentialType::Bearer, &["tok"]);
    assert_eq!(
        rendered(&b, &req("capability[]=authtype\nprotocol=https\nhost=h\n")),
        "capability[]=authtype\nauthtype=Bearer\ncredential=tok\n"
    );
}

#[test]
fn parses_git_request_and_origin() {
    let r = req("protocol=https\nhost=Repo.Example.com:8443\npath=a/b.git\nusername=bob\ncapability[]=authtype\n\nignored=1\n");
    assert_eq!(r.origin().unwrap().as_str(), "repo.example.com:8443");
    assert_eq!(r.path.as_deref(), Some("a/b.git"));
    assert_eq!(r.username.as_ref().unwrap().expose(), "bob");
    assert!(r.has_capability("authtype"));
    assert_eq!(
        req("protocol=https\nhost=api.github.com\n")
            .origin()
            .unwrap()
            .as_str(),
        "github.com"
    );
    assert!(req("protocol=ssh\nhost=example.com\n").origin().is_none());
    assert!(req("protocol=https\n").origin().is_none());
    assert!(req("protocol=https\nhost=a/b\n").origin().is_none());
    assert!(req("protocol=https\r\nhost=example.com\r\n")
        .origin()
        .is_some());
}

#[test]
fn refuses_bad_requests() {
    assert_eq!(
        Request::parse(b"protocol=https\nnonsense\n").unwrap_err(),
        GitCredError::NoEquals(2)
    );
    assert_eq!(
        Request::parse(b"host=a\0b\n").unwrap_err(),
        GitCredError::Nul
    );
    assert_eq!(
        Request::parse(&[b'h', 0xff, b'=']).unwrap_err(),
        GitCredError::NotUtf8
    );
    assert_eq!(
        Request::parse(&vec![b'a'; MAX_REQUEST + 1]).unwrap_err(),
        GitCredError::TooLarge
    );
}

#[test]
fn another_username_in_the_url_gets_nothing() {
    let c = cred(CredentialType::HttpBasic, &["alice", "p"]);
    assert_eq!(
        rendered(&c, &req("protocol=https\nhost=h\nusername=bob\n")),
        ""
    );
    assert_eq!(
        rendered(&c, &req("protocol=https\nhost=h\nusername=alice\n")),
        "username=alice\npassword=p\n"
    );
}

#[test]
fn values_that_would_inject_lines_are_refused() {
    let c = cred(CredentialType::HttpBasic, &["u", "p\nhost=evil"]);
    let err = answer(&c, &req("protocol=https\nhost=h\n"))
        .render()
        .unwrap_err();
    assert_eq!(err, GitCredError::UnsafeValue("password"));
    assert!(!err.to_string().contains("evil"));
}

#[test]
fn helper_config_entries() {
    assert_eq!(
        helper_key("Example.com").unwrap(),
        "credential.https://example.com.helper"
    );
    assert_eq!(
        helper_key("http://127.0.0.1:8080/").unwrap(),
        "credential.http://127.0.0.1:8080.helper"
    );
    assert!(helper_key("ftp://x").is_err());
    assert!(helper_key("a b").is_err());
    assert_eq!(
        helper_value("/opt/it's/composer-keyd", false),
        r"!'/opt/it'\''s/composer-keyd' git-credential"
    );
    assert!(helper_value("/b", true).ends_with(" git-credential --allow-store"));
}

/// What the helper tells git, as the shared fixture spells it (`null`: nothing).
fn as_fixture(a: &Answer) -> serde_json::Value {
    match a {
        Answer::Basic { username, password } => {
            serde_json::json!({"username": username.as_str(), "password": password.as_str()})
        }
        Answer::Bearer { token } => serde_json::json!({"bearer": token.as_str()}),
        Answer::Nothing(_) => serde_json::Value::Null,
    }
}

#[test]
fn every_type_answers_git_as_the_shared_fixture_says() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/encoding.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    // The types are listed once: CredentialType::ALL, which the plugin's list matches too.
    let names: Vec<&str> = CredentialType::ALL.iter().map(|t| t.as_str()).collect();
    let listed: Vec<&str> = doc["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        listed, names,
        "the fixture's types are not CredentialType::ALL"
    );
    let mut covered = Vec::new();
    let plain = req("protocol=https\nhost=h\n");
    let authtype = req("capability[]=authtype\nprotocol=https\nhost=h\n");
    for case in doc["cases"].as_array().unwrap() {
        let c: Credential = serde_json::from_value(case["credential"].clone()).unwrap();
        let kind = c.kind().as_str();
        assert_eq!(CredentialType::parse(kind), Some(c.kind()));
        assert_eq!(as_fixture(&answer(&c, &plain)), case["git"], "{kind}");
        assert_eq!(
            as_fixture(&answer(&c, &authtype)),
            case["git_authtype"],
            "{kind} with authtype"
        );
        if !covered.contains(&kind) {
            covered.push(kind);
        }
    }
    assert_eq!(covered, names, "every type has a case, in order");
}
