//! Credentials of every type Composer's auth.json knows, and origins computed by Composer's rules.

use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::fmt;

mod origin;
pub use origin::{redact_userinfo, Origin, OriginError};

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

/// Defines [`CredentialType`] from one list of `Variant => "auth.json name"`: the enum, its
/// wire names, [`CredentialType::ALL`] and [`CredentialType::as_str`] all come from it, so a
/// type cannot be left out of `ALL` (and so be refused by `parse`), nor named two ways. The
/// help of `add --type` and the error for an unknown type are made from `ALL`; the plugin's
/// list is checked against it through `tests/fixtures/encoding.json`.
macro_rules! credential_types {
    ($($(#[doc = $doc:literal])* $variant:ident => $name:literal,)+) => {
        /// The credential types, without their secrets.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum CredentialType {
            $($(#[doc = $doc])* #[serde(rename = $name)] $variant,)+
            /// A type a newer daemon knows and this build does not (wire forward compatibility).
            #[serde(other, rename = "unknown")]
            Unknown,
        }

        impl CredentialType {
            /// Every type, in the order auth.json documents them.
            pub const ALL: [CredentialType; [$($name),+].len()] = [$(CredentialType::$variant),+];

            /// The auth.json key, e.g. `http-basic`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(CredentialType::$variant => $name,)+
                    CredentialType::Unknown => "unknown",
                }
            }
        }
    };
}

credential_types! {
    /// `http-basic`: a username and password.
    HttpBasic => "http-basic",
    /// `bearer`: an `Authorization: Bearer` token.
    Bearer => "bearer",
    /// `github-oauth`: a GitHub token.
    GithubOauth => "github-oauth",
    /// `gitlab-oauth`: a GitLab OAuth token.
    GitlabOauth => "gitlab-oauth",
    /// `gitlab-token`: a GitLab private token, optionally with a username.
    GitlabToken => "gitlab-token",
    /// `bitbucket-oauth`: a Bitbucket OAuth consumer key and secret.
    BitbucketOauth => "bitbucket-oauth",
    /// `forgejo-token`: a Forgejo username and access token.
    ForgejoToken => "forgejo-token",
    /// `custom-headers`: header lines (Composer 2.9).
    CustomHeaders => "custom-headers",
    /// `client-certificate`: a TLS client certificate and its passphrase (Composer 2.9).
    ClientCertificate => "client-certificate",
}

impl CredentialType {
    /// Every type's name, `, `-separated, for help and errors.
    pub fn names() -> String {
        Self::ALL.map(CredentialType::as_str).join(", ")
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
    #[error("unknown credential type `{0}`; known types: {names}", names = CredentialType::names())]
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

#[cfg(test)]
mod tests;
