//! Origins: the `host[:port]` keys Composer files credentials under, computed by its
//! `Url::getOrigin` rules, and the redaction of userinfo in what users typed.

use serde::{Deserialize, Serialize};
use std::fmt;

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
    /// The origin named by one percent-encoded segment of a request's path.
    pub fn from_segment(segment: &str) -> Result<Origin, OriginError> {
        // Without a '%' there is nothing to decode, and a &str is UTF-8 already.
        if !segment.contains('%') {
            return Origin::parse(segment);
        }
        let decoded = percent_encoding::percent_decode_str(segment)
            .decode_utf8()
            // Not UTF-8: nothing a host name may hold either.
            .map_err(|_| OriginError::BadCharacter)?;
        Origin::parse(&decoded)
    }

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
        // Every lookup parses its origin; most are a plain lowercase host name, which the
        // general rules below would accept unchanged. One pass over the bytes finds those.
        if input.bytes().all(is_plain_byte) {
            return match plain_host_ok(input) {
                true => Ok(Origin::folded(input.to_owned())),
                false => Err(OriginError::NotAHost),
            };
        }
        Origin::parse_any(input)
    }

    /// `input` when [`Origin::parse`] would return it unchanged as a plain host name (lower
    /// case, no port, not folded into another); `None` says only that it must be parsed.
    /// The everyday lookup then finds its credential without copying the name.
    pub fn canonical(input: &str) -> Option<&str> {
        let plain = !input.is_empty()
            && input.len() <= MAX_ORIGIN_LEN
            && input.bytes().all(is_plain_byte)
            && plain_host_ok(input);
        (plain && fold(input).is_none()).then_some(input)
    }

    /// [`Origin::parse`] for every input: Unicode, upper case, ports, IPv6 literals.
    pub(super) fn parse_any(input: &str) -> Result<Origin, OriginError> {
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
        Ok(Origin::folded(origin))
    }

    /// `origin` with the hosts Composer treats as one folded together.
    fn folded(origin: String) -> Origin {
        match fold(&origin) {
            Some(host) => Origin(host.into()),
            None => Origin(origin),
        }
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

/// A byte of a plain host name: lowercase letters, digits, `.`, `-` and `_`.
fn is_plain_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
}

/// Whether a host name of plain bytes is one, as [`Origin::parse`] checks any host.
fn plain_host_ok(host: &str) -> bool {
    // `windows`, not `contains("..")`: the substring searcher's set-up outweighs a host name.
    let double_dot = host.as_bytes().windows(2).any(|w| w == b"..");
    !(host.starts_with(['.', '-']) || host.ends_with('.') || double_dot)
}

/// The host Composer files `origin` under when that is another one.
fn fold(origin: &str) -> Option<&'static str> {
    if origin.ends_with(".github.com") && origin != "codeload.github.com" {
        return Some("github.com");
    }
    (origin == "repo.packagist.org").then_some("packagist.org")
}

// Origins hash and compare as their text does, so maps keyed by origin are searched by `&str`.
impl std::borrow::Borrow<str> for Origin {
    fn borrow(&self) -> &str {
        &self.0
    }
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
