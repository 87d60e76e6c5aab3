//! Credentials of every type Composer's auth.json knows, and origins computed by Composer's rules.

use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A credential as stored in the backend and sent to the plugin.
///
/// The JSON shape is `{"type": "...", ...fields}`; field names follow auth.json.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Credential {
    /// `http-basic`: a username and password (Magento: public key and private key).
    HttpBasic {
        /// The username; for repo.magento.com, the Marketplace public key.
        username: Secret<String>,
        /// The password; for repo.magento.com, the Marketplace private key.
        password: Secret<String>,
    },
    /// `bearer`: an `Authorization: Bearer` token.
    Bearer {
        /// The token sent after `Bearer `.
        token: Secret<String>,
    },
    /// `github-oauth`: a GitHub token.
    GithubOauth {
        /// The GitHub personal access or OAuth token.
        token: Secret<String>,
    },
    /// `gitlab-oauth`: a GitLab OAuth token.
    GitlabOauth {
        /// The GitLab OAuth access token.
        token: Secret<String>,
    },
    /// `gitlab-token`: a GitLab private token, optionally with a username.
    GitlabToken {
        /// The GitLab personal, project or deploy token.
        token: Secret<String>,
        /// The username some GitLab setups want beside a deploy token; `None` when the token
        /// alone is sent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<Secret<String>>,
    },
    /// `bitbucket-oauth`: a Bitbucket OAuth consumer.
    BitbucketOauth {
        /// The OAuth consumer's key.
        #[serde(rename = "consumer-key")]
        consumer_key: Secret<String>,
        /// The OAuth consumer's secret.
        #[serde(rename = "consumer-secret")]
        consumer_secret: Secret<String>,
    },
    /// `forgejo-token`: a Forgejo username and access token.
    ForgejoToken {
        /// The Forgejo user the token belongs to.
        username: Secret<String>,
        /// The Forgejo access token.
        token: Secret<String>,
    },
}

/// The credential types, without their secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialType {
    /// `http-basic`: a username and password.
    HttpBasic,
    /// `bearer`: an `Authorization: Bearer` token.
    Bearer,
    /// `github-oauth`: a GitHub token.
    GithubOauth,
    /// `gitlab-oauth`: a GitLab OAuth token.
    GitlabOauth,
    /// `gitlab-token`: a GitLab private token, optionally with a username.
    GitlabToken,
    /// `bitbucket-oauth`: a Bitbucket OAuth consumer key and secret.
    BitbucketOauth,
    /// `forgejo-token`: a Forgejo username and access token.
    ForgejoToken,
    /// A type a newer daemon knows and this build does not (wire forward compatibility).
    #[serde(other)]
    Unknown,
}

impl CredentialType {
    /// Every type, in the order auth.json documents them.
    pub const ALL: [CredentialType; 7] = [
        CredentialType::HttpBasic,
        CredentialType::Bearer,
        CredentialType::GithubOauth,
        CredentialType::GitlabOauth,
        CredentialType::GitlabToken,
        CredentialType::BitbucketOauth,
        CredentialType::ForgejoToken,
    ];

    /// The auth.json key, e.g. `http-basic`.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialType::HttpBasic => "http-basic",
            CredentialType::Bearer => "bearer",
            CredentialType::GithubOauth => "github-oauth",
            CredentialType::GitlabOauth => "gitlab-oauth",
            CredentialType::GitlabToken => "gitlab-token",
            CredentialType::BitbucketOauth => "bitbucket-oauth",
            CredentialType::ForgejoToken => "forgejo-token",
            CredentialType::Unknown => "unknown",
        }
    }

    /// Parses an auth.json key; `None` for a type we do not know.
    pub fn parse(s: &str) -> Option<CredentialType> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The secret fields, in the order `add` asks for them (and reads them from stdin).
    pub fn fields(self, with_username: bool) -> &'static [&'static str] {
        match self {
            CredentialType::HttpBasic => &["username", "password"],
            CredentialType::Bearer | CredentialType::GithubOauth | CredentialType::GitlabOauth => {
                &["token"]
            }
            CredentialType::GitlabToken if with_username => &["username", "token"],
            CredentialType::GitlabToken => &["token"],
            CredentialType::BitbucketOauth => &["consumer-key", "consumer-secret"],
            CredentialType::ForgejoToken => &["username", "token"],
            CredentialType::Unknown => &[],
        }
    }
}

impl fmt::Display for CredentialType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a credential was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    /// The type named is not one auth.json knows; holds the name as given.
    #[error("unknown credential type `{0}`; known types: http-basic, bearer, github-oauth, gitlab-oauth, gitlab-token, bitbucket-oauth, forgejo-token")]
    UnknownType(String),
    /// A secret field is empty or blank; holds the field's auth.json name.
    #[error("the {0} field is empty")]
    EmptyField(&'static str),
    /// The wrong number of secret fields for the type (e.g. on `add` from stdin).
    #[error("expected {expected} secret field(s) for {kind}, got {got}")]
    FieldCount {
        /// The type the fields were for.
        kind: CredentialType,
        /// How many fields that type takes.
        expected: usize,
        /// How many were given.
        got: usize,
    },
}

impl Credential {
    /// The type of this credential.
    pub fn kind(&self) -> CredentialType {
        match self {
            Credential::HttpBasic { .. } => CredentialType::HttpBasic,
            Credential::Bearer { .. } => CredentialType::Bearer,
            Credential::GithubOauth { .. } => CredentialType::GithubOauth,
            Credential::GitlabOauth { .. } => CredentialType::GitlabOauth,
            Credential::GitlabToken { .. } => CredentialType::GitlabToken,
            Credential::BitbucketOauth { .. } => CredentialType::BitbucketOauth,
            Credential::ForgejoToken { .. } => CredentialType::ForgejoToken,
        }
    }

    /// Builds a credential from its fields in [`CredentialType::fields`] order.
    pub fn from_fields(
        kind: CredentialType,
        mut fields: Vec<Secret<String>>,
    ) -> Result<Credential, CredentialError> {
        let with_username = kind == CredentialType::GitlabToken && fields.len() == 2;
        let names = kind.fields(with_username);
        if fields.len() != names.len() {
            return Err(CredentialError::FieldCount {
                kind,
                expected: names.len(),
                got: fields.len(),
            });
        }
        let mut next = move || fields.remove(0);
        let cred = match kind {
            CredentialType::HttpBasic => Credential::HttpBasic {
                username: next(),
                password: next(),
            },
            CredentialType::Bearer => Credential::Bearer { token: next() },
            CredentialType::GithubOauth => Credential::GithubOauth { token: next() },
            CredentialType::GitlabOauth => Credential::GitlabOauth { token: next() },
            CredentialType::GitlabToken if with_username => {
                let username = Some(next());
                Credential::GitlabToken {
                    username,
                    token: next(),
                }
            }
            CredentialType::GitlabToken => Credential::GitlabToken {
                token: next(),
                username: None,
            },
            CredentialType::BitbucketOauth => Credential::BitbucketOauth {
                consumer_key: next(),
                consumer_secret: next(),
            },
            CredentialType::ForgejoToken => Credential::ForgejoToken {
                username: next(),
                token: next(),
            },
            CredentialType::Unknown => {
                return Err(CredentialError::UnknownType(kind.as_str().to_owned()))
            }
        };
        cred.validate()?;
        Ok(cred)
    }

    /// The secret fields with their names, in prompt order.
    pub fn fields(&self) -> Vec<(&'static str, &Secret<String>)> {
        match self {
            Credential::HttpBasic { username, password } => {
                vec![("username", username), ("password", password)]
            }
            Credential::Bearer { token }
            | Credential::GithubOauth { token }
            | Credential::GitlabOauth { token } => vec![("token", token)],
            Credential::GitlabToken { token, username } => match username {
                Some(u) => vec![("username", u), ("token", token)],
                None => vec![("token", token)],
            },
            Credential::BitbucketOauth {
                consumer_key,
                consumer_secret,
            } => vec![
                ("consumer-key", consumer_key),
                ("consumer-secret", consumer_secret),
            ],
            Credential::ForgejoToken { username, token } => {
                vec![("username", username), ("token", token)]
            }
        }
    }

    /// Refuses empty fields, which no repository would accept.
    pub fn validate(&self) -> Result<(), CredentialError> {
        for (name, value) in self.fields() {
            if value.is_blank() {
                return Err(CredentialError::EmptyField(name));
            }
        }
        Ok(())
    }
}

/// Where a credential applies, keyed the way Composer keys `auth.json`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Origin(String);

/// Why a string is not an origin.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OriginError {
    /// The origin is the empty string.
    #[error("the origin is empty")]
    Empty,
    /// The origin is longer than the 253 characters DNS allows.
    #[error("the origin is longer than 253 characters")]
    TooLong,
    /// The origin has a scheme, path, query or userinfo, or the host is malformed.
    #[error("an origin is a host with an optional :port, without a scheme or path")]
    NotAHost,
    /// The origin has whitespace, a control character or a non-ASCII character.
    #[error("the origin has a character that cannot be in a host name")]
    BadCharacter,
    /// The port is not a number from 1 to 65535.
    #[error("the port must be a number from 1 to 65535")]
    BadPort,
}

/// The longest host name DNS allows.
const MAX_ORIGIN_LEN: usize = 253;

impl Origin {
    /// `ORIGIN`, or `ORIGIN --project DIR` with DIR shell-quoted where it needs it: the
    /// arguments a user would type to name this credential again.
    pub fn as_typed(&self, project: Option<&str>) -> String {
        let Some(dir) = project else {
            return self.0.clone();
        };
        let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:@,=".contains(c);
        if !dir.is_empty() && dir.chars().all(plain) {
            format!("{} --project {dir}", self.0)
        } else {
            format!("{} --project '{}'", self.0, dir.replace('\'', "'\\''"))
        }
    }

    /// Parses and normalizes `host[:port]`: lowercased, `*.github.com` folded to
    /// `github.com` (but not `codeload.github.com`), `repo.packagist.org` to `packagist.org`.
    pub fn parse(input: &str) -> Result<Origin, OriginError> {
        if input.is_empty() {
            return Err(OriginError::Empty);
        }
        if input.len() > MAX_ORIGIN_LEN {
            return Err(OriginError::TooLong);
        }
        if input.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(OriginError::BadCharacter);
        }
        if input.contains(['/', '\\', '?', '#', '@']) {
            return Err(OriginError::NotAHost);
        }
        let lower = input.to_ascii_lowercase();
        let (host, port) = split_host_port(&lower)?;
        let host_ok = if let Some(v6) = host.strip_prefix('[') {
            v6.strip_suffix(']').is_some_and(|inner| {
                !inner.is_empty()
                    && inner
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
            })
        } else {
            !host.is_empty()
                && !host.starts_with(['.', '-'])
                && !host.ends_with('.')
                && !host.contains("..")
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        };
        if !host_ok {
            return Err(if host.is_ascii() {
                OriginError::NotAHost
            } else {
                OriginError::BadCharacter
            });
        }
        let origin = match port {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        if origin.ends_with(".github.com") && origin != "codeload.github.com" {
            return Ok(Origin("github.com".into()));
        }
        if origin == "repo.packagist.org" {
            return Ok(Origin("packagist.org".into()));
        }
        Ok(Origin(origin))
    }

    /// Computes the origin of a URL (`https://user@host:port/path`) as Composer does.
    pub fn from_url(url: &str) -> Result<Origin, OriginError> {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        Origin::parse(hostport)
    }

    /// The origin as Composer spells it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `s` with the userinfo of every URL or `user:pass@host` in it replaced by `***`, for
/// messages that show what the user typed: that part may be a password.
pub fn redact_userinfo(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('@') {
        return std::borrow::Cow::Borrowed(s);
    }
    let is_sep = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>');
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while !rest.is_empty() {
        let end = rest.find(is_sep).unwrap_or(rest.len());
        let (token, after) = rest.split_at(end);
        let (scheme, tail) = token
            .find("://")
            .map_or(("", token), |i| token.split_at(i + 3));
        let auth_end = tail.find(['/', '?', '#']).unwrap_or(tail.len());
        let (authority, path) = tail.split_at(auth_end);
        match authority.rsplit_once('@') {
            Some((_, host)) => {
                out.push_str(scheme);
                out.push_str("***@");
                out.push_str(host);
                out.push_str(path);
            }
            None => out.push_str(token),
        }
        let sep_len = after.chars().next().map_or(0, char::len_utf8);
        out.push_str(&after[..sep_len]);
        rest = &after[sep_len..];
    }
    std::borrow::Cow::Owned(out)
}

fn split_host_port(s: &str) -> Result<(&str, Option<u16>), OriginError> {
    let (host, port) = if s.starts_with('[') {
        match s.find(']') {
            Some(end) if end + 1 == s.len() => (s, None),
            Some(end) if s.as_bytes()[end + 1] == b':' => (&s[..=end], Some(&s[end + 2..])),
            _ => return Err(OriginError::NotAHost),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.chars().all(|c| c.is_ascii_digit()) => Some(n),
            _ => return Err(OriginError::BadPort),
        },
    };
    Ok((host, port))
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Origin {
    type Error = OriginError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Origin::parse(&s)
    }
}

impl From<Origin> for String {
    fn from(o: Origin) -> String {
        o.0
    }
}

impl std::str::FromStr for Origin {
    type Err = OriginError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Origin::parse(s)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_userinfo_hides_every_userinfo() {
        use super::redact_userinfo as r;
        assert_eq!(r("https://user:pass@host/x"), "https://***@host/x");
        assert_eq!(r("user:pass@host:8080"), "***@host:8080");
        assert_eq!(
            r("cannot reach `git+https://tok@h.example` or 'http://a:b@c/d?e'"),
            "cannot reach `git+https://***@h.example` or 'http://***@c/d?e'"
        );
        assert_eq!(r("repo.magento.com"), "repo.magento.com");
        assert_eq!(r("x: p@ss@h"), "x: ***@h");
    }

    use super::*;

    fn o(s: &str) -> Result<String, OriginError> {
        Origin::parse(s).map(|o| o.0)
    }

    #[test]
    fn origin_rules() {
        assert_eq!(o("repo.magento.com").unwrap(), "repo.magento.com");
        assert_eq!(o("Repo.Magento.COM").unwrap(), "repo.magento.com");
        assert_eq!(o("127.0.0.1:8080").unwrap(), "127.0.0.1:8080");
        assert_eq!(o("api.github.com").unwrap(), "github.com");
        assert_eq!(o("github.com").unwrap(), "github.com");
        assert_eq!(o("codeload.github.com").unwrap(), "codeload.github.com");
        assert_eq!(o("repo.packagist.org").unwrap(), "packagist.org");
        assert_eq!(o("[::1]:8443").unwrap(), "[::1]:8443");
        assert_eq!(
            o("gitlab.example.com:8443").unwrap(),
            "gitlab.example.com:8443"
        );
        // A port keeps a github subdomain from folding, as in Composer.
        assert_eq!(o("api.github.com:8443").unwrap(), "api.github.com:8443");
    }

    #[test]
    fn origin_rejects() {
        assert_eq!(o(""), Err(OriginError::Empty));
        assert_eq!(o(&"a".repeat(254)), Err(OriginError::TooLong));
        assert!(o(&"a".repeat(253)).is_ok());
        assert_eq!(o("repo.magento.com/path"), Err(OriginError::NotAHost));
        assert_eq!(o("../../etc/passwd"), Err(OriginError::NotAHost));
        assert_eq!(o("https://repo.magento.com"), Err(OriginError::NotAHost));
        assert_eq!(o("repo magento.com"), Err(OriginError::BadCharacter));
        assert_eq!(o("repo\u{0}.com"), Err(OriginError::BadCharacter));
        assert_eq!(o("repo.com\r\nX: y"), Err(OriginError::BadCharacter));
        assert_eq!(o("host:0"), Err(OriginError::BadPort));
        assert_eq!(o("host:70000"), Err(OriginError::BadPort));
        assert_eq!(o("host:+80"), Err(OriginError::BadPort));
        assert_eq!(o("user@host"), Err(OriginError::NotAHost));
        assert_eq!(o("ex\u{e4}mple.com"), Err(OriginError::BadCharacter));
        assert_eq!(o(".example.com"), Err(OriginError::NotAHost));
    }

    #[test]
    fn origin_from_url() {
        let f = |u: &str| Origin::from_url(u).map(|o| o.0);
        assert_eq!(
            f("https://repo.magento.com/packages.json").unwrap(),
            "repo.magento.com"
        );
        assert_eq!(
            f("http://127.0.0.1:8080/p2/a/b.json").unwrap(),
            "127.0.0.1:8080"
        );
        assert_eq!(
            f("https://u:p@repo.example.com/").unwrap(),
            "repo.example.com"
        );
        assert_eq!(f("https://api.github.com/repos/x").unwrap(), "github.com");
    }

    #[test]
    fn credential_json_is_pinned() {
        let c =
            Credential::from_fields(CredentialType::HttpBasic, vec!["pub".into(), "priv".into()])
                .unwrap();
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"type":"http-basic","username":"pub","password":"priv"}"#
        );
        let b: Credential = serde_json::from_str(
            r#"{"type":"bitbucket-oauth","consumer-key":"k","consumer-secret":"s"}"#,
        )
        .unwrap();
        assert_eq!(b.kind(), CredentialType::BitbucketOauth);
        let g: Credential = serde_json::from_str(r#"{"type":"gitlab-token","token":"t"}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&g).unwrap(),
            r#"{"type":"gitlab-token","token":"t"}"#
        );
        assert!(serde_json::from_str::<Credential>(r#"{"type":"ftp","token":"t"}"#).is_err());
    }

    #[test]
    fn as_typed_quotes_only_what_needs_it() {
        let o = Origin::parse("repo.magento.com").unwrap();
        assert_eq!(o.as_typed(None), "repo.magento.com");
        assert_eq!(
            o.as_typed(Some("/srv/shop")),
            "repo.magento.com --project /srv/shop"
        );
        assert_eq!(
            o.as_typed(Some("/srv/Bob's shop")),
            "repo.magento.com --project '/srv/Bob'\\''s shop'"
        );
    }

    #[test]
    fn fields_round_trip_and_validate() {
        for kind in CredentialType::ALL {
            let n = kind.fields(false).len();
            let fields = (0..n).map(|i| Secret::from(format!("v{i}"))).collect();
            let c = Credential::from_fields(kind, fields).unwrap();
            assert_eq!(c.kind(), kind);
            assert_eq!(c.fields().len(), n);
        }
        assert_eq!(
            Credential::from_fields(CredentialType::Bearer, vec![" ".into()]),
            Err(CredentialError::EmptyField("token"))
        );
        let gl = Credential::from_fields(CredentialType::GitlabToken, vec!["u".into(), "t".into()]);
        assert!(matches!(
            gl,
            Ok(Credential::GitlabToken {
                username: Some(_),
                ..
            })
        ));
        assert_eq!(CredentialType::parse("nope"), None);
    }
}
