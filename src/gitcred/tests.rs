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
fn maps_each_type_as_composer_would() {
    let r = req("protocol=https\nhost=h\n");
    assert_eq!(
        rendered(&cred(CredentialType::HttpBasic, &["u", "p"]), &r),
        "username=u\npassword=p\n"
    );
    assert_eq!(
        rendered(&cred(CredentialType::GithubOauth, &["ghp_x"]), &r),
        "username=x-oauth-basic\npassword=ghp_x\n"
    );
    assert_eq!(
        rendered(&cred(CredentialType::GitlabOauth, &["t"]), &r),
        "username=oauth2\npassword=t\n"
    );
    assert_eq!(
        rendered(&cred(CredentialType::GitlabToken, &["t"]), &r),
        "username=oauth2\npassword=t\n"
    );
    assert_eq!(
        rendered(&cred(CredentialType::GitlabToken, &["me", "t"]), &r),
        "username=me\npassword=t\n"
    );
    assert_eq!(
        rendered(&cred(CredentialType::ForgejoToken, &["me", "t"]), &r),
        "username=me\npassword=t\n"
    );
    assert_eq!(
        rendered(&cred(CredentialType::BitbucketOauth, &["k", "s"]), &r),
        ""
    );
}

#[test]
fn bearer_only_with_authtype_capability() {
    let b = cred(CredentialType::Bearer, &["tok"]);
    assert_eq!(rendered(&b, &req("protocol=https\nhost=h\n")), "");
    assert_eq!(
        rendered(&b, &req("capability[]=authtype\nprotocol=https\nhost=h\n")),
        "capability[]=authtype\nauthtype=Bearer\ncredential=tok\n"
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
