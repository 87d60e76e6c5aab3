//! HTTP to a team engine: its addresses in order, skipping one that is down, sealed or on
//! standby, within one deadline; https verified by the system roots or the source's CA file,
//! plain http on loopback only; replies bounded in size and kept in zeroizing buffers.

use super::{TeamConfig, TeamError};
use crate::secret::Secret;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::HeaderValue;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::rustls::{self, pki_types::CertificateDer, pki_types::ServerName};
use zeroize::Zeroizing;

/// The largest reply read from the engine; a KV secret holding one credential is far smaller.
pub const MAX_REPLY: usize = 64 * 1024;
/// The longest a connection attempt to one address may take, so a black-holed address leaves
/// time for the next one.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(400);

/// One address of an engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// `https` or `http`.
    pub tls: bool,
    /// The host as written (a name, an IPv4 address, or `[v6]`).
    pub host: String,
    /// The port.
    pub port: u16,
}

impl Address {
    /// Parses `https://HOST[:PORT]` or, on loopback, `http://HOST[:PORT]`.
    pub fn parse(url: &str) -> Result<Address, String> {
        let shown = crate::audit::printable(url);
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("{shown}: an address starts with https://"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
            return Err(format!("{shown}: give only the scheme, host and port"));
        }
        let (host, port) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains(']') => {
                let port = rest[i + 1..]
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("{shown}: the port is not a number"))?;
                (&rest[..i], port)
            }
            _ => (rest, if tls { 443 } else { 80 }),
        };
        if host.is_empty() {
            return Err(format!("{shown}: no host"));
        }
        let addr = Address {
            tls,
            host: host.to_owned(),
            port,
        };
        if !tls && !addr.is_loopback() {
            return Err(format!(
                "{shown}: plain http is allowed on loopback only; use https"
            ));
        }
        Ok(addr)
    }

    fn bare_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    /// Whether the host is a loopback address (or `localhost`).
    pub fn is_loopback(&self) -> bool {
        let h = self.bare_host();
        h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// An engine's reply with a status the caller interprets (2xx, 4xx).
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body, wiped when dropped.
    pub body: Zeroizing<Vec<u8>>,
    /// Which address answered.
    pub addr: usize,
}

/// A team source's engine: its addresses, TLS roots and deadline.
pub struct Engine {
    team: String,
    addrs: Vec<Address>,
    tls: Option<tokio_rustls::TlsConnector>,
    timeout: Duration,
}

/// Why one address did not give an answer worth returning.
enum Skip {
    Down(String),
    /// The reply is over [`MAX_REPLY`]: an answer, and a wrong one.
    TooLarge,
}

impl Engine {
    /// An engine for a source's settings; loads TLS roots when an address is https.
    pub fn new(team: &str, cfg: &TeamConfig) -> Result<Engine, TeamError> {
        let bad = |reason: String| TeamError::Config {
            team: team.to_owned(),
            reason,
        };
        let addrs = cfg
            .addr
            .iter()
            .map(|a| Address::parse(a))
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        let tls = if addrs.iter().any(|a| a.tls) {
            Some(tls_connector(cfg.ca_cert.as_deref()).map_err(bad)?)
        } else {
            None
        };
        Ok(Engine {
            team: team.to_owned(),
            addrs,
            tls,
            timeout: cfg.timeout(),
        })
    }

    /// The team's name.
    pub fn team(&self) -> &str {
        &self.team
    }

    /// The addresses, in the order they are tried.
    pub fn addrs(&self) -> &[Address] {
        &self.addrs
    }

    /// `GET /v1/{path}` on address `i` alone, with no token (`sys/health`): its status, or
    /// why it did not answer.
    pub async fn probe(&self, i: usize, path: &str) -> Result<Reply, String> {
        let addr = &self.addrs[i];
        let deadline = Instant::now() + self.timeout;
        match tokio::time::timeout(
            self.timeout,
            self.once(addr, Method::GET, path, None, None, deadline),
        )
        .await
        {
            Ok(Ok(r)) => Ok(Reply { addr: i, ..r }),
            Ok(Err(Skip::Down(why))) => Err(why),
            Ok(Err(Skip::TooLarge)) => Err(format!("a reply over {MAX_REPLY} bytes")),
            Err(_) => Err("no answer in time".into()),
        }
    }

    /// `METHOD /v1/{path}` on the first address that answers as an active, unsealed node,
    /// all within the source's deadline. A 403 or 404 is an answer (the token and the data
    /// are the same on every node); a 5xx, 429, redirect, refused connection, TLS failure or
    /// time-out moves on to the next address.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&Secret<String>>,
        body: Option<&[u8]>,
    ) -> Result<Reply, TeamError> {
        let deadline = Instant::now() + self.timeout;
        let mut reasons = Vec::new();
        for (i, addr) in self.addrs.iter().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                reasons.push(format!("{addr}: not tried, out of time"));
                continue;
            }
            let attempt = self.once(addr, method.clone(), path, token, body, deadline);
            match tokio::time::timeout(left, attempt).await {
                Ok(Ok(r)) if should_skip(r.status) => {
                    reasons.push(format!("{addr}: answered {}", r.status));
                }
                Ok(Ok(r)) => {
                    return Ok(Reply {
                        status: r.status,
                        body: r.body,
                        addr: i,
                    })
                }
                Ok(Err(Skip::Down(why))) => reasons.push(format!("{addr}: {why}")),
                Ok(Err(Skip::TooLarge)) => {
                    return Err(TeamError::BadData {
                        team: self.team.clone(),
                        path: path.split('?').next().unwrap_or(path).to_owned(),
                        reason: format!("the engine's reply is over {MAX_REPLY} bytes"),
                    })
                }
                Err(_) => reasons.push(format!("{addr}: no answer in time")),
            }
        }
        Err(TeamError::Unavailable {
            team: self.team.clone(),
            detail: reasons.join("; "),
        })
    }

    /// One request to one address; the whole reply is read (up to [`MAX_REPLY`]).
    async fn once(
        &self,
        addr: &Address,
        method: Method,
        path: &str,
        token: Option<&Secret<String>>,
        body: Option<&[u8]>,
        deadline: Instant,
    ) -> Result<Reply, Skip> {
        let connect_for = deadline
            .saturating_duration_since(Instant::now())
            .min(CONNECT_TIMEOUT);
        let tcp = tokio::time::timeout(connect_for, TcpStream::connect(addr.authority()))
            .await
            .map_err(|_| Skip::Down("no connection in time".into()))?
            .map_err(|e| Skip::Down(format!("cannot connect: {e}")))?;
        let req = build(addr, method, path, token, body)?;
        match (&self.tls, addr.tls) {
            (Some(tls), true) => {
                let name = ServerName::try_from(addr.bare_host().to_owned())
                    .map_err(|e| Skip::Down(format!("not a TLS server name: {e}")))?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| Skip::Down(format!("TLS failed: {e}")))?;
                send(stream, req).await
            }
            _ => send(tcp, req).await,
        }
    }
}

/// Statuses that mean "this node cannot serve now, ask another": sealed or uninitialised
/// (503), standby or performance standby without forwarding (429, 472, 473), a redirect to
/// the active node, or a node that lost its leader (500, 502).
fn should_skip(status: u16) -> bool {
    matches!(status, 300..=399 | 429 | 472 | 473 | 500..=599)
}

fn build(
    addr: &Address,
    method: Method,
    path: &str,
    token: Option<&Secret<String>>,
    body: Option<&[u8]>,
) -> Result<Request<Full<Bytes>>, Skip> {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("/v1/{path}"))
        .header("host", addr.authority())
        .header(
            "user-agent",
            concat!("composer-keyd/", env!("CARGO_PKG_VERSION")),
        )
        .header("x-vault-request", "true");
    if let Some(t) = token {
        let mut v = HeaderValue::from_str(t.expose())
            .map_err(|_| Skip::Down("the token holds characters a header cannot".into()))?;
        v.set_sensitive(true);
        req = req.header("x-vault-token", v);
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Bytes::copy_from_slice(b)
        }
        None => Bytes::new(),
    };
    req.body(Full::new(body))
        .map_err(|e| Skip::Down(format!("cannot build the request: {e}")))
}

async fn send<S>(stream: S, req: Request<Full<Bytes>>) -> Result<Reply, Skip>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Skip::Down(format!("HTTP handshake failed: {e}")))?;
    let conn = tokio::spawn(async move {
        // Ends with the request; a failure shows in the response.
        let _ = conn.await;
    });
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| Skip::Down(format!("no HTTP reply: {e}")))?;
        let status = resp.status().as_u16();
        let mut body = Zeroizing::new(Vec::new());
        let mut limited = Limited::new(resp.into_body(), MAX_REPLY);
        while let Some(frame) = limited.frame().await {
            let frame = frame.map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    Skip::TooLarge
                } else {
                    Skip::Down(format!("the reply broke off: {e}"))
                }
            })?;
            if let Ok(mut data) = frame.into_data() {
                body.extend_from_slice(&data);
                wipe_bytes(&mut data);
            }
        }
        Ok(Reply {
            status,
            body,
            addr: 0,
        })
    }
    .await;
    conn.abort();
    result
}

/// Wipes a received chunk when this is its only owner (hyper's read buffer is its own).
fn wipe_bytes(b: &mut Bytes) {
    if let Ok(mut owned) = std::mem::take(b).try_into_mut() {
        zeroize::Zeroize::zeroize(&mut owned[..]);
    }
}

fn tls_connector(ca: Option<&std::path::Path>) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = ca {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?
            .flatten()
            .collect();
        if certs.is_empty() {
            return Err(format!("{} holds no PEM certificate", path.display()));
        }
        roots.add_parsable_certificates(certs);
    }
    if roots.is_empty() {
        return Err("no trusted CA certificates: install ca-certificates or give --ca-cert".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let a = Address::parse("https://bao.example.org:8200/").unwrap();
        assert_eq!(
            (a.tls, a.host.as_str(), a.port),
            (true, "bao.example.org", 8200)
        );
        assert_eq!(Address::parse("https://bao.example.org").unwrap().port, 443);
        assert!(Address::parse("http://127.0.0.1:8200").is_ok());
        assert!(Address::parse("http://[::1]:8200").is_ok());
        assert!(Address::parse("http://localhost:8200").is_ok());
        for bad in [
            "http://bao.example.org:8200",
            "http://10.0.0.1",
            "ftp://x",
            "https://",
            "https://h:0",
            "https://h:x",
            "https://u@h",
            "https://h/v1",
            "bao.example.org",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn what_is_skipped() {
        for s in [503, 500, 502, 429, 472, 473, 307] {
            assert!(should_skip(s), "{s}");
        }
        for s in [200, 204, 400, 403, 404] {
            assert!(!should_skip(s), "{s}");
        }
    }
}
