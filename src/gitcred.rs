//! Git's credential helper protocol (`git help credential`): parsing git's request, and
//! mapping a stored Composer credential to the username/password (or bearer) git needs.
//!
//! Composer runs git with the plain URL first and embeds `user:pass@` only when that
//! fails; a helper that answers git directly keeps the secret out of every argv.

use crate::credential::{Credential, Origin};
use crate::secret::Secret;
use std::fmt::Write as _;
use zeroize::Zeroizing;

/// Git's requests are a few short lines; anything larger is not git.
pub const MAX_REQUEST: usize = 64 << 10;

/// Why git's request or our answer was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GitCredError {
    /// The request is over [`MAX_REQUEST`] bytes.
    #[error("the request is larger than {MAX_REQUEST} bytes")]
    TooLarge,
    /// The request is not valid UTF-8.
    #[error("the request is not UTF-8")]
    NotUtf8,
    /// A line has no `=`; holds its number, counted from 1.
    #[error("line {0} of the request has no `=`")]
    NoEquals(usize),
    /// The request holds a NUL byte.
    #[error("the request has a NUL byte")]
    Nul,
    /// A stored field holds a newline or NUL; holds the field's name.
    #[error("the stored {0} holds a newline or NUL, which git's protocol cannot carry; replace it with `composer-keyd rotate`")]
    UnsafeValue(&'static str),
}

/// What git asks about: one `key=value` line each, up to a blank line or EOF.
#[derive(Debug, Default)]
pub struct Request {
    /// The URL scheme git authenticates for (`https`, `http`); `None` when git did not say.
    pub protocol: Option<String>,
    /// `host` or `host:port`, as git spells it.
    pub host: Option<String>,
    /// The repository path, sent only when git's `credential.useHttpPath` is set.
    pub path: Option<String>,
    /// From the URL, or from an earlier helper; a secret to some users, so boxed.
    pub username: Option<Secret<String>>,
    /// Only present in `store` and `erase`.
    pub password: Option<Secret<String>>,
    /// `capability[]` values git announced (e.g. `authtype`, git 2.46+).
    pub capabilities: Vec<String>,
}

impl Request {
    /// Parses git's request. Unknown keys are ignored, as the protocol asks.
    pub fn parse(input: &[u8]) -> Result<Request, GitCredError> {
        if input.len() > MAX_REQUEST {
            return Err(GitCredError::TooLarge);
        }
        if input.contains(&0) {
            return Err(GitCredError::Nul);
        }
        let text = std::str::from_utf8(input).map_err(|_| GitCredError::NotUtf8)?;
        let mut req = Request::default();
        for (i, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                break;
            }
            let (key, value) = line.split_once('=').ok_or(GitCredError::NoEquals(i + 1))?;
            match key {
                "protocol" => req.protocol = Some(value.to_owned()),
                "host" => req.host = Some(value.to_owned()),
                "path" => req.path = Some(value.to_owned()),
                "username" => req.username = Some(value.into()),
                "password" => req.password = Some(value.into()),
                "capability[]" => req.capabilities.push(value.to_owned()),
                _ => {}
            }
        }
        Ok(req)
    }

    /// The Composer origin this request is for: only http(s), with Composer's host rules.
    pub fn origin(&self) -> Option<Origin> {
        let proto = self.protocol.as_deref()?;
        if !proto.eq_ignore_ascii_case("https") && !proto.eq_ignore_ascii_case("http") {
            return None;
        }
        Origin::parse(self.host.as_deref()?).ok()
    }

    fn has_capability(&self, cap: &str) -> bool {
        self.capabilities.iter().any(|c| c == cap)
    }
}

/// What the helper tells git.
#[derive(Debug)]
pub enum Answer {
    /// HTTP basic: git sends these as `Authorization: Basic`.
    Basic {
        /// The username for Basic auth.
        username: Zeroizing<String>,
        /// The password (or token) for Basic auth.
        password: Zeroizing<String>,
    },
    /// A pre-encoded `Authorization: Bearer`, for a git that announced `authtype`.
    Bearer {
        /// The token git sends after `Bearer `.
        token: Zeroizing<String>,
    },
    /// Nothing: git moves on to its next helper or prompt. The reason is for `-v` only.
    Nothing(&'static str),
}

fn z(s: &Secret<String>) -> Zeroizing<String> {
    Zeroizing::new(s.expose().clone())
}

/// Maps a stored credential to what git needs, with the usernames Composer's own
/// `Util\Git` puts in the URL it would otherwise embed (token types pair a fixed
/// username with the token as the password, which GitHub, GitLab and Forgejo accept).
pub fn answer(cred: &Credential, req: &Request) -> Answer {
    let basic = |username: Zeroizing<String>, password: Zeroizing<String>| {
        match &req.username {
            // The URL names another account: its owner wants that one, not ours.
            Some(u) if !u.is_blank() && u.expose() != username.as_str() => {
                Answer::Nothing("the URL names another username")
            }
            _ => Answer::Basic { username, password },
        }
    };
    let fixed = |name: &str, token: &Secret<String>| Answer::Basic {
        username: Zeroizing::new(name.to_owned()),
        password: z(token),
    };
    match cred {
        Credential::HttpBasic { username, password } => basic(z(username), z(password)),
        Credential::ForgejoToken { username, token } => basic(z(username), z(token)),
        Credential::GithubOauth { token } => fixed("x-oauth-basic", token),
        Credential::GitlabOauth { token } => fixed("oauth2", token),
        Credential::GitlabToken {
            token,
            username: Some(u),
        } => basic(z(u), z(token)),
        Credential::GitlabToken {
            token,
            username: None,
        } => fixed("oauth2", token),
        Credential::Bearer { token } if req.has_capability("authtype") => {
            Answer::Bearer { token: z(token) }
        }
        Credential::Bearer { .. } => {
            Answer::Nothing("a bearer token needs git 2.46 or later (capability authtype)")
        }
        // Composer trades the consumer for an access token over Bitbucket's API first;
        // git cannot use the consumer pair itself.
        Credential::BitbucketOauth { .. } => {
            Answer::Nothing("bitbucket-oauth consumers cannot be handed to git")
        }
        Credential::CustomHeaders { .. } => {
            Answer::Nothing("custom headers cannot be handed to git's credential protocol")
        }
        Credential::ClientCertificate { .. } => {
            Answer::Nothing("client certificates cannot be handed to git's credential protocol")
        }
    }
}

fn checked<'a>(name: &'static str, v: &'a str) -> Result<&'a str, GitCredError> {
    if v.contains(['\n', '\r', '\0']) {
        Err(GitCredError::UnsafeValue(name))
    } else {
        Ok(v)
    }
}

impl Answer {
    /// The lines for git's stdin. Refuses values that would inject protocol lines.
    pub fn render(&self) -> Result<Zeroizing<String>, GitCredError> {
        let mut out = Zeroizing::new(String::new());
        match self {
            Answer::Basic { username, password } => {
                let u = checked("username", username)?;
                let p = checked("password", password)?;
                let _ = write!(out, "username={u}\npassword={p}\n");
            }
            Answer::Bearer { token } => {
                let t = checked("token", token)?;
                let _ = write!(
                    out,
                    "capability[]=authtype\nauthtype=Bearer\ncredential={t}\n"
                );
            }
            Answer::Nothing(_) => {}
        }
        Ok(out)
    }
}

/// The `credential.<url>.helper` key for a host: `HOST` means https, `http://HOST` plain http.
pub fn helper_key(host: &str) -> Result<String, crate::credential::OriginError> {
    let (scheme, rest) = match host.split_once("://") {
        Some((s, r)) if s.eq_ignore_ascii_case("http") => ("http", r),
        Some((s, r)) if s.eq_ignore_ascii_case("https") => ("https", r),
        Some(_) => return Err(crate::credential::OriginError::NotAHost),
        None => ("https", host),
    };
    let origin = Origin::parse(rest.trim_end_matches('/'))?;
    Ok(format!("credential.{scheme}://{origin}.helper"))
}

/// The helper command git runs (`!` = through the shell), with the binary quoted for sh.
pub fn helper_value(exe: &str, allow_store: bool) -> String {
    let store = if allow_store { " --allow-store" } else { "" };
    format!("!{} git-credential{store}", sh_quote(exe))
}

/// Single-quotes `s` for POSIX sh.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub mod stop;

#[cfg(test)]
mod tests;
