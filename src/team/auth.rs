//! A team source's token: the `bao`/`vault` CLI's token file, an approle login or a JWT
//! login; its TTL and renewal (`auth/token/renew-self`). The token lives in a `Secret`
//! (zeroized), and goes nowhere but the `X-Vault-Token` header.

use super::client::Engine;
use super::{AuthMethod, TeamConfig, TeamError};
use crate::secret::Secret;
use hyper::Method;
use serde::Deserialize;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;
use zeroize::Zeroizing;

/// The most bytes read from a token or JWT file.
const MAX_TOKEN_FILE: u64 = 16 * 1024;

/// A token and what the engine said of it.
pub struct Session {
    /// The token.
    pub token: Secret<String>,
    /// Its time to live when last asked; `None` for a token that does not expire (root).
    pub ttl: Option<Duration>,
    /// Whether `renew-self` may extend it.
    pub renewable: bool,
    /// When the TTL was read.
    pub since: Instant,
}

impl Session {
    /// Whether the token is past two thirds of its TTL and can be renewed.
    pub fn needs_renewal(&self) -> bool {
        match self.ttl {
            Some(ttl) if self.renewable => self.since.elapsed() >= ttl * 2 / 3,
            _ => false,
        }
    }

    /// The TTL left now.
    pub fn ttl_left(&self) -> Option<Duration> {
        self.ttl.map(|t| t.saturating_sub(self.since.elapsed()))
    }
}

/// `~/.vault-token`, where `bao login` and `vault login` keep the token.
pub fn token_file() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".vault-token"))
}

/// The origin under which `team login NAME` keeps an approle's role_id (username) and
/// secret_id (password) in the local backend: a name under `.invalid`, which no repository
/// can have.
pub fn approle_origin(team: &str) -> String {
    format!(
        "{}.approle.composer-keyd.invalid",
        team.to_ascii_lowercase().replace('_', "-")
    )
}

/// Reads a small secret file (a token or a JWT), refusing a symlink, trimmed.
pub fn read_secret_file(path: &Path) -> Result<Secret<String>, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut buf = Zeroizing::new(Vec::new());
    file.take(MAX_TOKEN_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if buf.len() as u64 > MAX_TOKEN_FILE {
        return Err(format!("{} is larger than a token", path.display()));
    }
    let text = std::str::from_utf8(&buf)
        .map_err(|_| format!("{} is not text", path.display()))?
        .trim();
    if text.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(Secret::from(text))
}

#[derive(Deserialize)]
struct Lookup {
    data: LookupData,
}

#[derive(Deserialize)]
struct LookupData {
    #[serde(default)]
    ttl: u64,
    #[serde(default)]
    renewable: bool,
}

#[derive(Deserialize)]
struct AuthReply {
    auth: AuthData,
}

#[derive(Deserialize)]
struct AuthData {
    client_token: Secret<String>,
    #[serde(default)]
    lease_duration: u64,
    #[serde(default)]
    renewable: bool,
}

fn ttl(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

fn auth_error(engine: &Engine, status: u16, what: &str) -> TeamError {
    match status {
        403 | 400 => TeamError::Auth {
            team: engine.team().to_owned(),
            reason: format!("{what} refused ({status}): check the token, role and policy"),
        },
        s => TeamError::Unavailable {
            team: engine.team().to_owned(),
            detail: format!("{what} answered {s}"),
        },
    }
}

/// `auth/token/lookup-self`: the token's TTL and renewability.
pub async fn lookup_self(engine: &Engine, token: Secret<String>) -> Result<Session, TeamError> {
    let reply = engine
        .call(Method::GET, "auth/token/lookup-self", Some(&token), None)
        .await?;
    if reply.status == 403 {
        return Err(TeamError::Forbidden {
            team: engine.team().to_owned(),
            action: "look up",
            path: "auth/token/lookup-self".into(),
        });
    }
    if reply.status != 200 {
        return Err(auth_error(engine, reply.status, "the token lookup"));
    }
    let l: Lookup = serde_json::from_slice(&reply.body).map_err(|_| TeamError::Auth {
        team: engine.team().to_owned(),
        reason: "the token lookup's reply is not JSON".into(),
    })?;
    Ok(Session {
        token,
        ttl: ttl(l.data.ttl),
        renewable: l.data.renewable,
        since: Instant::now(),
    })
}

/// `auth/token/renew-self`, in place.
pub async fn renew_self(engine: &Engine, session: &mut Session) -> Result<(), TeamError> {
    let reply = engine
        .call(
            Method::POST,
            "auth/token/renew-self",
            Some(&session.token),
            Some(b"{}"),
        )
        .await?;
    if reply.status != 200 {
        return Err(auth_error(engine, reply.status, "the token renewal"));
    }
    let a: AuthReply = serde_json::from_slice(&reply.body).map_err(|_| TeamError::Auth {
        team: engine.team().to_owned(),
        reason: "the renewal's reply is not JSON".into(),
    })?;
    session.ttl = ttl(a.auth.lease_duration);
    session.renewable = a.auth.renewable;
    session.since = Instant::now();
    Ok(())
}

async fn login(engine: &Engine, path: &str, body: &[u8]) -> Result<Session, TeamError> {
    let reply = engine.call(Method::POST, path, None, Some(body)).await?;
    if reply.status != 200 {
        return Err(auth_error(
            engine,
            reply.status,
            &format!("the login at {path}"),
        ));
    }
    let a: AuthReply = serde_json::from_slice(&reply.body).map_err(|_| TeamError::Auth {
        team: engine.team().to_owned(),
        reason: format!("the login at {path} gave no token"),
    })?;
    Ok(Session {
        token: a.auth.client_token,
        ttl: ttl(a.auth.lease_duration),
        renewable: a.auth.renewable,
        since: Instant::now(),
    })
}

/// The approle's credentials, kept in the local backend.
#[derive(Clone)]
pub struct Approle {
    /// The role_id.
    pub role_id: Secret<String>,
    /// The secret_id.
    pub secret_id: Secret<String>,
}

/// Gets a token as the source's settings say. `approle` is needed for `--auth approle`.
pub async fn session(
    engine: &Engine,
    cfg: &TeamConfig,
    approle: Option<&Approle>,
) -> Result<Session, TeamError> {
    let no = |reason: String| TeamError::Auth {
        team: engine.team().to_owned(),
        reason,
    };
    match cfg.auth {
        AuthMethod::Token => {
            let path = match &cfg.token_file {
                Some(p) => p.clone(),
                None => token_file().ok_or_else(|| no("no HOME, so no ~/.vault-token".into()))?,
            };
            let token =
                read_secret_file(&path).map_err(|e| no(format!("{e}; log in first: bao login")))?;
            lookup_self(engine, token).await
        }
        AuthMethod::Approle => {
            let a = approle.ok_or_else(|| {
                no("no approle role_id and secret_id are stored for this team".into())
            })?;
            let body = crate::secret::to_json_zeroizing(&serde_json::json!({
                "role_id": a.role_id.expose(),
                "secret_id": a.secret_id.expose(),
            }));
            login(engine, "auth/approle/login", &body).await
        }
        AuthMethod::Jwt => {
            let jwt = match (&cfg.jwt_file, &cfg.jwt_env) {
                (Some(f), _) => read_secret_file(f).map_err(no)?,
                (None, Some(var)) => std::env::var(var)
                    .ok()
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| Secret::from(Zeroizing::new(v.trim().to_owned())))
                    .ok_or_else(|| no(format!("the environment variable {var} is not set")))?,
                (None, None) => return Err(no("jwt needs jwt_file or jwt_env".into())),
            };
            let role = cfg.role.as_deref().unwrap_or("composer-keyd");
            let body = crate::secret::to_json_zeroizing(&serde_json::json!({
                "role": role,
                "jwt": jwt.expose(),
            }));
            login(engine, "auth/jwt/login", &body).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t");
        std::fs::write(&p, "s.abc\n").unwrap();
        assert_eq!(read_secret_file(&p).unwrap().expose(), "s.abc");
        std::fs::write(&p, "  \n").unwrap();
        assert!(read_secret_file(&p).is_err());
        std::fs::write(&p, vec![b'a'; MAX_TOKEN_FILE as usize + 1]).unwrap();
        assert!(read_secret_file(&p).is_err());
        let l = d.path().join("l");
        std::os::unix::fs::symlink(&p, &l).unwrap();
        assert!(read_secret_file(&l).is_err(), "a symlink is refused");
    }

    #[test]
    fn renewal_is_due_after_two_thirds() {
        let mut s = Session {
            token: Secret::from("t"),
            ttl: Some(Duration::from_secs(30)),
            renewable: true,
            since: Instant::now(),
        };
        assert!(!s.needs_renewal());
        s.since = Instant::now() - Duration::from_secs(21);
        assert!(s.needs_renewal());
        s.renewable = false;
        assert!(!s.needs_renewal());
    }
}
