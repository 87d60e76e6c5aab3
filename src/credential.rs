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
    /// `custom-headers` (Composer 2.9): header lines sent as they are, e.g. `X-Api-Key: ...`.
    CustomHeaders {
        /// Whole `Name: value` lines; the values are what a repository checks, so all are secret.
        headers: Vec<Secret<String>>,
    },
    /// `client-certificate` (Composer 2.9): a TLS client certificate. The paths only say where
    /// the key material is, so they are metadata; the passphrase that unlocks it is the secret.
    ClientCertificate {
        /// The certificate (PEM), possibly with its key, as auth.json's `local_cert`.
        #[serde(rename = "local-cert")]
        local_cert: String,
        /// The private key (PEM) when it is not in `local_cert`.
        #[serde(rename = "local-pk", default, skip_serializing_if = "Option::is_none")]
        local_pk: Option<String>,
        /// The passphrase of an encrypted key; `None` for an unencrypted one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        passphrase: Option<Secret<String>>,
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
    /// `custom-headers`: header lines (Composer 2.9).
    CustomHeaders,
    /// `client-certificate`: a TLS client certificate and its passphrase (Composer 2.9).
    ClientCertificate,
    /// A type a newer daemon knows and this build does not (wire forward compatibility).
    #[serde(other)]
    Unknown,
}

impl CredentialType {
    /// Every type, in the order auth.json documents them.
    pub const ALL: [CredentialType; 9] = [
        CredentialType::HttpBasic,
        CredentialType::Bearer,
        CredentialType::GithubOauth,
        CredentialType::GitlabOauth,
        CredentialType::GitlabToken,
        CredentialType::BitbucketOauth,
        CredentialType::ForgejoToken,
        CredentialType::CustomHeaders,
        CredentialType::ClientCertificate,
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
            CredentialType::CustomHeaders => "custom-headers",
            CredentialType::ClientCertificate => "client-certificate",
            CredentialType::Unknown => "unknown",
        }
    }

    /// Parses an auth.json key; `None` for a type we do not know.
    pub fn parse(s: &str) -> Option<CredentialType> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The secret fields, in the order `add` asks for them (and reads them from stdin).
    /// `custom-headers` takes one or more `header` fields; `client-certificate` an optional
    /// passphrase beside its paths (see [`Credential::client_certificate`]).
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
            CredentialType::CustomHeaders => &["header"],
            CredentialType::ClientCertificate => &["passphrase"],
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
    #[error("unknown credential type `{0}`; known types: http-basic, bearer, github-oauth, gitlab-oauth, gitlab-token, bitbucket-oauth, forgejo-token, custom-headers, client-certificate")]
    UnknownType(String),
    /// A secret field is empty or blank; holds the field's auth.json name.
    #[error("the {0} field is empty")]
    EmptyField(&'static str),
    /// A custom header is not one `Name: value` line; holds its position, counted from 1
    /// (never the line: its value is a secret).
    #[error(
        "custom header {0} is not one `Name: value` line (a token name, a colon, no line breaks)"
    )]
    BadHeader(usize),
    /// A custom-headers credential without any header.
    #[error("custom-headers needs at least one header")]
    NoHeaders,
    /// A client-certificate path is empty or holds a control character; holds the field name.
    #[error("the {0} path is empty or has a control character")]
    BadPath(&'static str),
    /// The type takes more than secret fields (client-certificate's paths).
    #[error("{0} needs more than secret fields; give its paths too")]
    NeedsMetadata(CredentialType),
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
            Credential::CustomHeaders { .. } => CredentialType::CustomHeaders,
            Credential::ClientCertificate { .. } => CredentialType::ClientCertificate,
        }
    }

    /// Builds a credential from its fields in [`CredentialType::fields`] order.
    pub fn from_fields(
        kind: CredentialType,
        mut fields: Vec<Secret<String>>,
    ) -> Result<Credential, CredentialError> {
        match kind {
            CredentialType::CustomHeaders => {
                let cred = Credential::CustomHeaders { headers: fields };
                cred.validate()?;
                return Ok(cred);
            }
            CredentialType::ClientCertificate => return Err(CredentialError::NeedsMetadata(kind)),
            _ => {}
        }
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
            CredentialType::CustomHeaders
            | CredentialType::ClientCertificate
            | CredentialType::Unknown => {
                return Err(CredentialError::UnknownType(kind.as_str().to_owned()))
            }
        };
        cred.validate()?;
        Ok(cred)
    }

    /// A client certificate; `local_pk` and `passphrase` are optional as in auth.json.
    pub fn client_certificate(
        local_cert: String,
        local_pk: Option<String>,
        passphrase: Option<Secret<String>>,
    ) -> Result<Credential, CredentialError> {
        let cred = Credential::ClientCertificate {
            local_cert,
            local_pk,
            passphrase,
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
            Credential::CustomHeaders { headers } => {
                headers.iter().map(|h| ("header", h)).collect()
            }
            Credential::ClientCertificate { passphrase, .. } => {
                passphrase.iter().map(|p| ("passphrase", p)).collect()
            }
        }
    }

    /// Refuses empty fields, which no repository would accept, header lines that could smuggle
    /// a second header or break the request, and paths no TLS library would open.
    pub fn validate(&self) -> Result<(), CredentialError> {
        for (name, value) in self.fields() {
            if value.is_blank() {
                return Err(CredentialError::EmptyField(name));
            }
        }
        match self {
            Credential::CustomHeaders { headers } => {
                if headers.is_empty() {
                    return Err(CredentialError::NoHeaders);
                }
                for (i, h) in headers.iter().enumerate() {
                    if !is_header_line(h.expose()) {
                        return Err(CredentialError::BadHeader(i + 1));
                    }
                }
            }
            Credential::ClientCertificate {
                local_cert,
                local_pk,
                ..
            } => {
                let bad = |p: &str| p.trim().is_empty() || p.chars().any(char::is_control);
                if bad(local_cert) {
                    return Err(CredentialError::BadPath("local-cert"));
                }
                if local_pk.as_deref().is_some_and(bad) {
                    return Err(CredentialError::BadPath("local-pk"));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// `Name: value` with an RFC 9110 token name, no control character but tab in the value: what
/// PHP's stream layer sends as one header line and no more.
fn is_header_line(line: &str) -> bool {
    let Some((name, value)) = line.split_once(':') else {
        return false;
    };
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    !name.is_empty()
        && name.chars().all(tchar)
        && !value.trim().is_empty()
        && value.chars().all(|c| c == '\t' || !c.is_control())
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
mod tests;
