//! Live checks of stored credentials: one authenticated request to the credential's
//! repository (`https://ORIGIN/packages.json`, or the forge's API for token types) and a
//! verdict: ok, rejected, unreachable or unexpected.
//!
//! TLS is rustls with the platform's roots (which honour `SSL_CERT_FILE`/`SSL_CERT_DIR` the
//! way OpenSSL does) plus Composer's `cafile`/`capath`.

use crate::credential::{Credential, Origin};
use crate::secret::Secret;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, pki_types::CertificateDer, pki_types::ServerName};
use zeroize::Zeroizing;

/// The outcome of checking one credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// The server accepted it.
    Ok {
        /// The HTTP status of the reply.
        status: u16,
    },
    /// 401 or 403: the server no longer accepts it.
    Rejected {
        /// The HTTP status of the reply (401 or 403).
        status: u16,
    },
    /// No answer: name resolution, connection, TLS or time-out.
    Unreachable {
        /// What failed, in a sentence.
        reason: String,
    },
    /// An answer that says neither yes nor no (404, 5xx, a redirect).
    Unexpected {
        /// The HTTP status of the reply.
        status: u16,
    },
}

impl Verdict {
    /// True for `ok`.
    pub fn is_ok(&self) -> bool {
        matches!(self, Verdict::Ok { .. })
    }

    /// The verdict's name.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Ok { .. } => "ok",
            Verdict::Rejected { .. } => "rejected",
            Verdict::Unreachable { .. } => "unreachable",
            Verdict::Unexpected { .. } => "unexpected",
        }
    }
}

/// `http` is for tests and plain-HTTP repositories (Composer's `secure-http: false`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// TLS, verified against the platform's roots plus Composer's `cafile`/`capath`.
    Https,
    /// Plain HTTP.
    Http,
}

/// Why checking could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// No CA certificate was found in the platform's roots or Composer's cafile.
    #[error("no trusted CA certificates were found; set SSL_CERT_FILE or Composer's cafile")]
    NoRoots,
    /// rustls refused the TLS set-up; holds its message.
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    /// A `--connect-to` argument is not `ORIGIN=HOST:PORT`; holds it.
    #[error("bad --connect-to `{0}`: expected ORIGIN=HOST:PORT")]
    ConnectTo(String),
}

/// How checks connect.
#[derive(Clone)]
pub struct CheckConfig {
    /// Whether requests use TLS.
    pub scheme: Scheme,
    /// Connect to another address for an origin (as curl's `--connect-to`); the Host header
    /// and the TLS name stay the origin's.
    pub connect_to: HashMap<String, String>,
    /// Bounds the whole request: name resolution, connection, TLS and the reply's head.
    pub timeout: Duration,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl CheckConfig {
    /// A configuration; TLS roots are loaded only for `https`.
    pub fn new(
        scheme: Scheme,
        connect_to: &[String],
        timeout: Duration,
        ca_locations: &[PathBuf],
    ) -> Result<CheckConfig, SetupError> {
        let mut map = HashMap::new();
        for spec in connect_to.iter().flat_map(|s| s.split(',')) {
            let spec = spec.trim();
            if spec.is_empty() {
                continue;
            }
            let (from, to) = spec
                .split_once('=')
                .filter(|(f, t)| !f.is_empty() && t.contains(':'))
                .ok_or_else(|| SetupError::ConnectTo(spec.to_owned()))?;
            let from = Origin::parse(from)
                .map_err(|_| SetupError::ConnectTo(spec.to_owned()))?
                .to_string();
            map.insert(from, to.to_owned());
        }
        let tls = match scheme {
            Scheme::Https => Some(tls_connector(ca_locations)?),
            Scheme::Http => None,
        };
        Ok(CheckConfig {
            scheme,
            connect_to: map,
            timeout,
            tls,
        })
    }
}

fn tls_connector(ca_locations: &[PathBuf]) -> Result<tokio_rustls::TlsConnector, SetupError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    for loc in ca_locations {
        let files: Vec<PathBuf> = if loc.is_dir() {
            std::fs::read_dir(loc)
                .map(|rd| rd.flatten().map(|e| e.path()).collect())
                .unwrap_or_default()
        } else {
            vec![loc.clone()]
        };
        for f in files {
            roots.add_parsable_certificates(pem_certs(&f));
        }
    }
    if roots.is_empty() {
        return Err(SetupError::NoRoots);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

fn pem_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    match CertificateDer::pem_file_iter(path) {
        Ok(it) => it.flatten().collect(),
        Err(_) => Vec::new(),
    }
}

/// The request that tests a credential.
#[derive(Debug)]
pub struct Probe {
    /// `GET`, or `POST` for Bitbucket's token exchange.
    pub method: Method,
    /// The host (with `:port` when the origin has one) the request goes to.
    pub authority: String,
    /// The path requested, chosen per credential type so the answer tells a good credential
    /// from a bad one.
    pub path: &'static str,
    headers: Vec<(HeaderName, Secret<String>)>,
    body: Option<&'static str>,
}

/// What to ask, per type: the repository's packages.json for http-basic and bearer, the
/// forge's "current user" API for tokens, Bitbucket's token endpoint for a consumer.
pub fn probe_for(origin: &Origin, cred: &Credential) -> Probe {
    let o = origin.as_str().to_owned();
    let auth = HeaderName::from_static("authorization");
    let basic = |u: &Secret<String>, p: &Secret<String>| {
        let mut raw = Zeroizing::new(String::with_capacity(
            u.expose().len() + p.expose().len() + 1,
        ));
        raw.push_str(u.expose());
        raw.push(':');
        raw.push_str(p.expose());
        (
            auth.clone(),
            Secret::from(format!("Basic {}", &*base64(raw.as_bytes()))),
        )
    };
    let with = |scheme: &str, t: &Secret<String>| {
        (
            auth.clone(),
            Secret::from(format!("{scheme} {}", t.expose())),
        )
    };
    let get = |authority: String, path, header| Probe {
        method: Method::GET,
        authority,
        path,
        headers: vec![header],
        body: None,
    };
    match cred {
        Credential::HttpBasic { username, password } => {
            get(o, "/packages.json", basic(username, password))
        }
        Credential::Bearer { token } => get(o, "/packages.json", with("Bearer", token)),
        Credential::GithubOauth { token } if o == "github.com" => {
            get("api.github.com".into(), "/user", with("token", token))
        }
        Credential::GithubOauth { token } => get(o, "/api/v3/user", with("token", token)),
        Credential::GitlabOauth { token } => get(o, "/api/v4/user", with("Bearer", token)),
        Credential::GitlabToken {
            token,
            username: Some(u),
        } => get(o, "/api/v4/user", basic(u, token)),
        Credential::GitlabToken {
            token,
            username: None,
        } => get(
            o,
            "/api/v4/user",
            (
                HeaderName::from_static("private-token"),
                Secret::from(token.expose().as_str()),
            ),
        ),
        Credential::ForgejoToken { username, token } => {
            get(o, "/api/v1/user", basic(username, token))
        }
        Credential::BitbucketOauth {
            consumer_key,
            consumer_secret,
        } => Probe {
            method: Method::POST,
            authority: o,
            path: "/site/oauth2/access_token",
            headers: vec![basic(consumer_key, consumer_secret)],
            body: Some("grant_type=client_credentials"),
        },
        // validate() admitted only token names, so none is dropped here.
        Credential::CustomHeaders { headers } => Probe {
            method: Method::GET,
            authority: o,
            path: "/packages.json",
            headers: headers
                .iter()
                .filter_map(|h| {
                    let (name, value) = h.expose().split_once(':')?;
                    let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
                    Some((name, Secret::from(value.trim())))
                })
                .collect(),
            body: None,
        },
        // Never sent: `check` answers for client certificates before probing.
        Credential::ClientCertificate { .. } => Probe {
            method: Method::GET,
            authority: o,
            path: "/packages.json",
            headers: Vec::new(),
            body: None,
        },
    }
}

/// Standard base64 with padding, into memory that is wiped.
fn base64(input: &[u8]) -> Zeroizing<String> {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Zeroizing::new(String::with_capacity(input.len().div_ceil(3) * 4));
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Sends the probe and classifies the reply.
pub async fn check(origin: &Origin, cred: &Credential, cfg: &CheckConfig) -> Verdict {
    check_learning(origin, cred, cfg).await.verdict
}

/// What the forge said about a token's expiry while it was checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learned {
    /// Nothing: not a forge token, not accepted, or the forge did not say.
    Nothing,
    /// It expires then (Unix seconds).
    At(u64),
    /// The forge says it never expires (GitLab's `expires_at: null`).
    Never,
}

/// A verdict and what was learned about the expiry on the way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The verdict.
    pub verdict: Verdict,
    /// The expiry, from GitHub's `GitHub-Authentication-Token-Expiration` response header or
    /// GitLab's `GET /api/v4/personal_access_tokens/self`.
    pub expires: Learned,
}

/// GitHub's response header naming an expiring token's date (`2026-12-31 18:00:00 UTC`).
pub const GITHUB_EXPIRY_HEADER: &str = "github-authentication-token-expiration";

/// GitLab's endpoint describing the token that asks (`expires_at`: a date, or null).
pub const GITLAB_TOKEN_SELF: &str = "/api/v4/personal_access_tokens/self";

/// [`check`], also learning the token's expiry from GitHub and GitLab.
pub async fn check_learning(origin: &Origin, cred: &Credential, cfg: &CheckConfig) -> Checked {
    if let Credential::ClientCertificate { .. } = cred {
        // A probe without the certificate would pass or fail for reasons unrelated to it.
        return Checked {
            verdict: Verdict::Unreachable {
                reason: "composer-keyd check cannot present a client certificate; run composer to test it"
                    .to_owned(),
            },
            expires: Learned::Nothing,
        };
    }
    let probe = probe_for(origin, cred);
    let reply = match tokio::time::timeout(cfg.timeout, send(&probe, cfg)).await {
        Err(_) => Err(format!("no answer within {} s", cfg.timeout.as_secs())),
        Ok(r) => r,
    };
    let reply = match reply {
        Err(reason) => {
            return Checked {
                verdict: Verdict::Unreachable { reason },
                expires: Learned::Nothing,
            }
        }
        Ok(r) => r,
    };
    let status = reply.status;
    let verdict = match status {
        200..=299 => Verdict::Ok { status },
        401 | 403 => Verdict::Rejected { status },
        // Bitbucket answers a bad consumer with 400 invalid_client.
        400 if probe.method == Method::POST => Verdict::Rejected { status },
        _ => Verdict::Unexpected { status },
    };
    let mut expires = Learned::Nothing;
    if verdict.is_ok() {
        match cred {
            Credential::GithubOauth { .. } => {
                if let Some(at) = reply
                    .github_expiry
                    .as_deref()
                    .and_then(crate::expiry::parse_date)
                {
                    expires = Learned::At(at);
                }
            }
            Credential::GitlabToken { .. } | Credential::GitlabOauth { .. } => {
                let ask = Probe {
                    path: GITLAB_TOKEN_SELF,
                    ..probe
                };
                if let Ok(Ok(r)) = tokio::time::timeout(cfg.timeout, send(&ask, cfg)).await {
                    expires = gitlab_expiry(&r);
                }
            }
            _ => {}
        }
    }
    Checked { verdict, expires }
}

/// `expires_at` of GitLab's token self-endpoint: a date, or null for a token that never
/// expires; anything else (an OAuth token's 401, a 404 from an old GitLab) says nothing.
fn gitlab_expiry(r: &Reply) -> Learned {
    if !(200..=299).contains(&r.status) {
        return Learned::Nothing;
    }
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&r.body) else {
        return Learned::Nothing;
    };
    match doc.get("expires_at") {
        Some(serde_json::Value::Null) => Learned::Never,
        Some(serde_json::Value::String(s)) => {
            crate::expiry::parse_date(s).map_or(Learned::Nothing, Learned::At)
        }
        _ => Learned::Nothing,
    }
}

/// The URL a probe asks, for display.
pub fn probe_url(origin: &Origin, cred: &Credential, cfg: &CheckConfig) -> String {
    let p = probe_for(origin, cred);
    let scheme = match cfg.scheme {
        Scheme::Https => "https",
        Scheme::Http => "http",
    };
    format!("{scheme}://{}{}", p.authority, p.path)
}

/// What a probe's reply carries: its status, GitHub's expiry header, and a bounded body.
struct Reply {
    status: u16,
    github_expiry: Option<String>,
    body: Vec<u8>,
}

/// The most of a reply's body read (GitLab's token description is well under 1 KiB).
const MAX_BODY: usize = 64 * 1024;

async fn send(probe: &Probe, cfg: &CheckConfig) -> Result<Reply, String> {
    let (host, port) = split_authority(&probe.authority, cfg.scheme);
    let target = cfg
        .connect_to
        .get(&probe.authority)
        .cloned()
        .unwrap_or_else(|| format!("{host}:{port}"));
    let tcp = TcpStream::connect(target.as_str())
        .await
        .map_err(|e| format!("cannot connect to {target}: {e}"))?;
    match &cfg.tls {
        None => request(tcp, probe).await,
        Some(tls) => {
            let name = ServerName::try_from(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
            )
            .map_err(|e| format!("`{host}` is not a TLS server name: {e}"))?;
            let stream = tls
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {host} failed: {e}"))?;
            request(stream, probe).await
        }
    }
}

fn split_authority(authority: &str, scheme: Scheme) -> (String, u16) {
    let default = match scheme {
        Scheme::Https => 443,
        Scheme::Http => 80,
    };
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => {
            (&authority[..i], authority[i + 1..].parse().ok())
        }
        _ => (authority, None),
    };
    (host.to_owned(), port.unwrap_or(default))
}

async fn request<S>(stream: S, probe: &Probe) -> Result<Reply, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    tokio::spawn(async move {
        // The connection ends with the request; a failure shows in the response instead.
        let _ = conn.await;
    });
    let mut req = Request::builder()
        .method(probe.method.clone())
        .uri(probe.path)
        .header("host", &probe.authority)
        .header(
            "user-agent",
            concat!("composer-keyd/", env!("CARGO_PKG_VERSION")),
        )
        .header("accept", "application/json");
    for (name, value) in &probe.headers {
        let mut v = HeaderValue::from_str(value.expose())
            .map_err(|_| "the credential holds characters an HTTP header cannot".to_owned())?;
        v.set_sensitive(true);
        req = req.header(name, v);
    }
    if probe.body.is_some() {
        req = req.header("content-type", "application/x-www-form-urlencoded");
    }
    let req = req
        .body(Full::new(Bytes::from_static(
            probe.body.unwrap_or_default().as_bytes(),
        )))
        .map_err(|e| format!("building the request failed: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("the request failed: {e}"))?;
    let status = resp.status().as_u16();
    let github_expiry = resp
        .headers()
        .get(GITHUB_EXPIRY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Only GitLab's self-endpoint is read; any other body is left unread.
    let body = if probe.path == GITLAB_TOKEN_SELF {
        use http_body_util::BodyExt;
        match http_body_util::Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes().to_vec(),
            Err(_) => Vec::new(),
        }
    } else {
        Vec::new()
    };
    Ok(Reply {
        status,
        github_expiry,
        body,
    })
}

/// What to do about a verdict that is not ok; `None` for ok.
pub fn advice(origin: &Origin, project: Option<&str>, verdict: &Verdict) -> Option<String> {
    let target = origin.as_typed(project);
    match verdict {
        Verdict::Ok { .. } => None,
        Verdict::Rejected { .. } if origin.as_str() == "repo.magento.com" => Some(format!(
            "The Magento Marketplace no longer accepts this key pair: it may have been disabled, \
             deleted or regenerated on the Marketplace's Access Keys page (My Profile > Access Keys). \
             Copy a current public and private key from that page, then run: composer-keyd rotate {target}"
        )),
        Verdict::Rejected { .. } => Some(format!(
            "The server refused this credential; it may have been revoked or expired. \
             Store a current one with: composer-keyd rotate {target}"
        )),
        Verdict::Unreachable { .. } => Some(
            "Check the network and the host name; for TLS errors, check SSL_CERT_FILE and \
             Composer's cafile setting."
                .to_owned(),
        ),
        Verdict::Unexpected { .. } => Some(
            "The server answered but neither accepted nor refused the credential; \
             try `composer -vvv install` to see what it wants."
                .to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests;
