//! Wire types of the `/v1` HTTP+JSON protocol, shared by the server, the CLI's client and the PHP shim's fixtures.
//!
//! Enums that travel on the wire accept values they do not know (`Unknown`),
//! so an old client survives a newer daemon.

use crate::credential::{Credential, CredentialType, Origin};
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The protocol revision; bumped on any incompatible change. The CLI restarts a daemon that differs.
pub const PROTOCOL: u32 = 1;
/// The package version, reported by `status`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What went wrong, in terms a client can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// No credential for that origin (and project): try the next source.
    NotFound,
    /// The credential exists but is disabled: never released.
    Disabled,
    /// The daemon is locked: run `composer-keyd unlock`.
    Locked,
    /// The keyring or age file did not answer (locked keyring, no Secret Service, time-out).
    BackendUnavailable,
    /// The request is malformed: bad JSON, bad origin, empty field.
    BadRequest,
    /// The credential type is not one Composer knows.
    UnsupportedType,
    /// The request body or headers are over the limit.
    TooLarge,
    /// The peer may not have this (policy, or another uid).
    Forbidden,
    /// No such route, or the method does not fit it.
    UnknownRoute,
    /// The passphrase did not unlock the age file.
    WrongPassphrase,
    /// The age file is damaged; it is left as it is. (`vault-corrupt` before the age file
    /// was named apart from HashiCorp Vault; still read.)
    #[serde(alias = "vault-corrupt")]
    AgeFileCorrupt,
    /// The age file is older than one this daemon has read or written since it started
    /// (copied back with its sidecar); it is left locked. (`vault-rolled-back` before; still read.)
    #[serde(alias = "vault-rolled-back")]
    AgeFileRolledBack,
    /// Refused at once: a wrong passphrase was tried recently; the message says when to retry.
    RetryLater,
    /// Something the client cannot fix; details are in the daemon's log.
    Internal,
    /// A kind this client does not know yet.
    #[serde(other)]
    Unknown,
}

impl ErrorKind {
    /// The HTTP status that carries this kind.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::Disabled => 403,
            ErrorKind::Forbidden => 403,
            ErrorKind::Locked => 423,
            ErrorKind::BackendUnavailable => 503,
            ErrorKind::BadRequest | ErrorKind::UnsupportedType => 400,
            ErrorKind::TooLarge => 413,
            ErrorKind::UnknownRoute => 404,
            ErrorKind::WrongPassphrase => 401,
            ErrorKind::RetryLater => 429,
            ErrorKind::AgeFileRolledBack => 409,
            ErrorKind::AgeFileCorrupt | ErrorKind::Internal | ErrorKind::Unknown => 500,
        }
    }
}

/// `{"error": {"kind": "...", "message": "..."}}`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`]. The message never holds a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// What kind of failure it was; clients branch on this, never on the message.
    pub kind: ErrorKind,
    /// A sentence for the user; never holds a secret.
    pub message: String,
}

/// Which store holds the secrets: the one backend kind of the wire, config.toml,
/// `COMPOSER_KEYD_BACKEND`, the CLI and `migrate`. What each backend is and does (its call
/// time-out, unlocking, opening, migrating) is asked of `store::backend`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum BackendKind {
    /// The OS keyring (Secret Service, Keychain).
    Keyring,
    /// The local age-encrypted file (`age-file`; called `vault` before, which is still read).
    #[serde(alias = "vault")]
    AgeFile,
    /// Process memory only (tests).
    Memory,
    /// A backend this client does not know yet.
    #[serde(other)]
    Unknown,
}

impl BackendKind {
    /// Every kind with a name, in the order `FromStr` and help list them.
    pub const NAMED: [BackendKind; 3] = [
        BackendKind::Keyring,
        BackendKind::AgeFile,
        BackendKind::Memory,
    ];

    /// The age file's name before `age-file`, still accepted on input.
    pub const OLD_AGE_FILE_NAME: &'static str = "vault";

    /// The name on the wire, in config.toml and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Keyring => "keyring",
            BackendKind::AgeFile => "age-file",
            BackendKind::Memory => "memory",
            BackendKind::Unknown => "unknown",
        }
    }

    /// The one-line note for input that used an old name, if `name` is one.
    pub fn old_name_note(name: &str) -> Option<String> {
        (name.trim() == Self::OLD_AGE_FILE_NAME).then(|| {
            format!(
                "\"{}\" is the old name of the age-file backend; use \"age-file\"",
                Self::OLD_AGE_FILE_NAME
            )
        })
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no backend kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a backend: use keyring or age-file")]
pub struct UnknownBackend(pub String);

impl std::str::FromStr for BackendKind {
    type Err = UnknownBackend;

    /// Reads a name `as_str` gives, or the age file's old name `vault`.
    fn from_str(s: &str) -> Result<BackendKind, UnknownBackend> {
        let s = s.trim();
        if s == Self::OLD_AGE_FILE_NAME {
            return Ok(BackendKind::AgeFile);
        }
        Self::NAMED
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownBackend(s.to_owned()))
    }
}

/// `GET /v1/status`. Never touches an unlock timer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The daemon's package version ([`VERSION`]).
    pub version: String,
    /// The daemon's [`PROTOCOL`] revision; the CLI restarts a daemon whose revision differs.
    pub protocol: u32,
    /// Which store holds the secrets now.
    pub backend: BackendKind,
    /// Why this backend was chosen, in a short sentence.
    pub backend_reason: String,
    /// The detail behind the reason (e.g. the keyring probe's D-Bus error), for `doctor -v`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_detail: Option<String>,
    /// Whether the daemon is locked: while true no secret is released until `unlock`.
    pub locked: bool,
    /// Number of credentials in the index.
    pub credentials: usize,
    /// Of those, how many are enabled.
    pub enabled: usize,
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
    /// The daemon's process id.
    pub pid: u32,
    /// Whether the age file exists (so `unlock` and `add` know to create it); absent when
    /// unknown. (`vault_exists` from a daemon before the rename; still read.)
    #[serde(
        default,
        alias = "vault_exists",
        skip_serializing_if = "Option::is_none"
    )]
    pub age_file_exists: Option<bool>,
    /// Seconds until an unlock timer locks the daemon; absent when none will.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_in_secs: Option<u64>,
    /// What the user must know about the unlocked store (the vault: an older copy put back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// One line per team source: answering, or failing and serving its cache within the grace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<String>,
}

/// Non-secret facts about one stored credential (`GET /v1/credentials`, `list`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialInfo {
    /// The `host[:port]` this credential is sent to, keyed as in auth.json.
    pub origin: Origin,
    /// The auth.json type, which decides the secret's shape.
    #[serde(rename = "type")]
    pub kind: CredentialType,
    /// The project directory this credential is bound to; `null` when it applies everywhere.
    pub project: Option<String>,
    /// The user's free-text note from `add --label`; `None` when none was given.
    pub label: Option<String>,
    /// `false` after `disable`: kept, but never released.
    pub enabled: bool,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds of the last `rotate`; `None` when never rotated.
    pub rotated: Option<u64>,
    /// Unix seconds of the last release to a peer; `None` when never released.
    pub last_used: Option<u64>,
    /// Whether `rotate --rollback` has a previous secret to restore.
    pub has_previous: bool,
    /// Each release is confirmed through the daemon's askpass program first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub confirm: bool,
    /// Released only to peers running one of these executables (canonical paths).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_exe: Vec<String>,
    /// Unix seconds when the credential stops working, from `--expires` or learned by
    /// `check` from the forge; `None` when not known. Metadata, never secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// What one confirmation covers (`--confirm=SCOPE`); meaningful with `confirm`.
    #[serde(default, skip_serializing_if = "ConfirmScope::is_each")]
    pub confirm_scope: ConfirmScope,
    /// For `session`: seconds an approval holds (`None`: until `lock`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm_for: Option<u64>,
}

/// What one confirmation covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ConfirmScope {
    /// One release (`--confirm`, `--confirm=each`).
    #[default]
    Each,
    /// Every release to the same executable, until `lock`.
    Program,
    /// Every release to the same executable in the same login session (or process
    /// session), until `lock` or `confirm_for` runs out.
    Session,
    /// A scope this program does not know.
    #[serde(other)]
    Unknown,
}

impl ConfirmScope {
    /// `each`, the scope that remembers nothing.
    pub fn is_each(&self) -> bool {
        *self == ConfirmScope::Each
    }

    /// Its name on the command line and the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfirmScope::Each => "each",
            ConfirmScope::Program => "program",
            ConfirmScope::Session => "session",
            ConfirmScope::Unknown => "unknown",
        }
    }
}

/// `GET /v1/credentials`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialList {
    /// Every stored credential, enabled or not.
    pub credentials: Vec<CredentialInfo>,
}

/// One origin that applies to a project (`GET /v1/origins?project=DIR`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginInfo {
    /// The `host[:port]` the credential is sent to.
    pub origin: Origin,
    /// The auth.json type of the credential.
    #[serde(rename = "type")]
    pub kind: CredentialType,
    /// The project directory it is bound to; `None` when it applies everywhere.
    pub project: Option<String>,
    /// `false` when disabled: the daemon refuses to release it.
    pub enabled: bool,
    /// Unix seconds when it stops working, if known (see [`CredentialInfo::expires`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
}

/// `GET /v1/origins?project=DIR`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginList {
    /// The origins that apply to the project asked about, project-bound and global.
    pub origins: Vec<OriginInfo>,
    /// How many days before an expiry clients warn (config.toml's `expiry_warning_days`),
    /// sent with a list in which some origin has an expiry; `None` without one (there is
    /// nothing to warn about) and from a daemon that does not say: clients use 7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_warning_days: Option<u32>,
    /// Team sources are set up: the plugin then asks for each origin's first lookup of a run
    /// with `fresh=1`, so that team entries are read through. Absent without teams, so that
    /// the local path's lookups stay plain (and on the daemon's fast path).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub teams: bool,
}

/// `GET /v1/credentials/{origin}?project=DIR`: the credential that wins for that project.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialReply {
    /// The origin that was asked for.
    pub origin: Origin,
    /// The project directory of the credential that won; `None` when the global one won.
    pub project: Option<String>,
    /// Shared with the agent's cache, so a cached lookup copies no secret.
    pub credential: Arc<Credential>,
}

/// `PUT /v1/credentials/{origin}?project=DIR`: add, replace or rotate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutCredential {
    /// The secret and its type, to store for that origin and project.
    pub credential: Credential,
    /// A free-text note shown by `list`; `None` keeps what is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Keep the replaced secret for `rotate --rollback`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rotate: bool,
    /// Refuse when a different secret is already stored (import without `--replace`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_clobber: bool,
    /// Set (or clear) confirmation before each release; `None` keeps what is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<bool>,
    /// Set the allowed executables (empty: any); `None` keeps what is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_exe: Option<Vec<String>>,
    /// Set the expiry (Unix seconds; `0` clears it). `None` keeps what is stored while the
    /// secret stays the same; a new secret starts with no expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// Set what one confirmation covers (and, for `session`, `confirm_for` seconds, `0`:
    /// until `lock`); `None` keeps what is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm_scope: Option<(ConfirmScope, u64)>,
}

/// What a `PUT` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PutOutcome {
    /// No credential was stored for that origin and project.
    Created,
    /// A different secret was stored and has been overwritten (not kept for rollback).
    Replaced,
    /// A different secret was stored and has been kept for `rotate --rollback`.
    Rotated,
    /// The same secret was already stored; nothing changed.
    Unchanged,
    /// A different secret is stored and `no_clobber` was set; nothing changed.
    Conflict,
    /// An outcome this client does not know yet.
    #[serde(other)]
    Unknown,
}

/// Reply to `PUT`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutReply {
    /// What the `PUT` did.
    pub outcome: PutOutcome,
    /// The stored credential's facts after the change.
    pub info: CredentialInfo,
}

/// `POST /v1/unlock`. The passphrase is for the vault; the keyring backend needs none.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct UnlockRequest {
    /// The vault's passphrase; `None` for the keyring backend, which needs none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<Secret<String>>,
}

/// `POST /v1/passwd`: changes the vault's passphrase.
#[derive(Debug, Serialize, Deserialize)]
pub struct PasswdRequest {
    /// The vault's current passphrase, checked before anything changes.
    pub passphrase: Secret<String>,
    /// The passphrase the vault is re-encrypted with.
    pub new_passphrase: Secret<String>,
}

/// `POST /v1/migrate`: moves every credential to another backend and makes it the one in use.
#[derive(Debug, Serialize, Deserialize)]
pub struct MigrateRequest {
    /// The backend to move to; it is the one in use after success.
    pub to: BackendKind,
    /// The vault's passphrase, when the vault is the target or must be opened to clean it up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<Secret<String>>,
}

/// Reply to `POST /v1/migrate`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateReply {
    /// The backend the credentials were in.
    pub from: BackendKind,
    /// The backend they are in now.
    pub to: BackendKind,
    /// Secrets copied to the target and read back.
    pub copied: usize,
    /// Secrets removed from the source after the switch.
    pub removed: usize,
    /// Secrets left in the source because they differ from the target's.
    pub kept: usize,
    /// Index entries with no secret in the source.
    pub missing: usize,
    /// Something the user should know (e.g. a source that could not be cleaned up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A reply that only says it worked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Always `true`; failures travel as an [`ErrorBody`] instead.
    pub ok: bool,
}

/// `POST /v1/unlock`'s reply: an `Ack`, plus what the user must know about what was opened.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct UnlockReply {
    /// Always `true`; failures travel as an [`ErrorBody`] instead.
    pub ok: bool,
    /// What the user must know about the unlocked store (the vault: an older copy put back);
    /// `None` when nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    // The same files are read by the PHP shim's tests, so both sides agree byte for byte.
    const STATUS: &str = include_str!("../tests/fixtures/wire/status.json");
    const ORIGINS: &str = include_str!("../tests/fixtures/wire/origins.json");
    const CRED_BASIC: &str = include_str!("../tests/fixtures/wire/credential-http-basic.json");
    const CRED_GITLAB: &str = include_str!("../tests/fixtures/wire/credential-gitlab-token.json");
    const CRED_HEADERS: &str =
        include_str!("../tests/fixtures/wire/credential-custom-headers.json");
    const CRED_CERT: &str =
        include_str!("../tests/fixtures/wire/credential-client-certificate.json");
    const ERROR_LOCKED: &str = include_str!("../tests/fixtures/wire/error-locked.json");

    fn same(value: &impl Serialize, fixture: &str) {
        assert_eq!(serde_json::to_string(value).unwrap(), fixture.trim_end());
    }

    #[test]
    fn status_json_is_pinned() {
        let s = Status {
            version: "0.1.0".into(),
            protocol: 1,
            backend: BackendKind::Keyring,
            backend_reason: "configured".into(),
            backend_detail: None,
            locked: false,
            credentials: 3,
            enabled: 2,
            uptime_secs: 42,
            pid: 1234,
            age_file_exists: None,
            lock_in_secs: None,
            warning: None,
            teams: Vec::new(),
        };
        same(&s, STATUS);
        assert_eq!(serde_json::from_str::<Status>(STATUS).unwrap(), s);
    }

    #[test]
    fn origins_json_is_pinned() {
        let list: OriginList = serde_json::from_str(ORIGINS).unwrap();
        assert_eq!(list.origins.len(), 2);
        assert_eq!(list.origins[0].origin.as_str(), "repo.magento.com");
        assert_eq!(list.origins[1].kind, CredentialType::Bearer);
        same(&list, ORIGINS);
    }

    #[test]
    fn credential_reply_is_pinned() {
        let r: CredentialReply = serde_json::from_str(CRED_BASIC).unwrap();
        assert_eq!(r.credential.kind(), CredentialType::HttpBasic);
        same(&r, CRED_BASIC);
        let g: CredentialReply = serde_json::from_str(CRED_GITLAB).unwrap();
        same(&g, CRED_GITLAB);
        let h: CredentialReply = serde_json::from_str(CRED_HEADERS).unwrap();
        assert_eq!(h.credential.fields().len(), 2);
        same(&h, CRED_HEADERS);
        let c: CredentialReply = serde_json::from_str(CRED_CERT).unwrap();
        assert_eq!(c.credential.kind(), CredentialType::ClientCertificate);
        same(&c, CRED_CERT);
    }

    #[test]
    fn errors_are_pinned_and_unknown_kinds_survive() {
        let e = ErrorBody {
            error: ErrorDetail {
                kind: ErrorKind::Locked,
                message: "composer-keyd is locked: run `composer-keyd unlock`".into(),
            },
        };
        same(&e, ERROR_LOCKED);
        let future: ErrorBody =
            serde_json::from_str(r#"{"error":{"kind":"quota-exceeded","message":"m"}}"#).unwrap();
        assert_eq!(future.error.kind, ErrorKind::Unknown);
        let b: BackendKind = serde_json::from_str(r#""tpm""#).unwrap();
        assert_eq!(b, BackendKind::Unknown);
    }

    #[test]
    fn the_age_file_is_named_age_file_and_read_under_its_old_name_too() {
        let new: BackendKind = serde_json::from_str(r#""age-file""#).unwrap();
        let old: BackendKind = serde_json::from_str(r#""vault""#).unwrap();
        assert_eq!((new, old), (BackendKind::AgeFile, BackendKind::AgeFile));
        assert_eq!(serde_json::to_string(&old).unwrap(), r#""age-file""#);
        for k in BackendKind::NAMED {
            assert_eq!(k.to_string().parse::<BackendKind>(), Ok(k));
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
        assert_eq!("vault".parse::<BackendKind>(), Ok(BackendKind::AgeFile));
        assert!(BackendKind::old_name_note("vault").is_some());
        assert!(BackendKind::old_name_note("age-file").is_none());
        assert!("hashicorp".parse::<BackendKind>().is_err());
        let r: MigrateRequest = serde_json::from_str(r#"{"to":"vault"}"#).unwrap();
        assert_eq!(r.to, BackendKind::AgeFile);
        // The age file's error kinds and status field, sent by their new names, read by both.
        for (new, old, kind) in [
            (
                "age-file-corrupt",
                "vault-corrupt",
                ErrorKind::AgeFileCorrupt,
            ),
            (
                "age-file-rolled-back",
                "vault-rolled-back",
                ErrorKind::AgeFileRolledBack,
            ),
        ] {
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{new}\""));
            for name in [new, old] {
                let k: ErrorKind = serde_json::from_str(&format!("\"{name}\"")).unwrap();
                assert_eq!(k, kind);
            }
        }
        let old: serde_json::Value = serde_json::from_str(STATUS).unwrap();
        let mut old = old.as_object().unwrap().clone();
        old.insert("vault_exists".into(), true.into());
        let s: Status = serde_json::from_value(old.into()).unwrap();
        assert_eq!(s.age_file_exists, Some(true));
        assert!(serde_json::to_string(&s)
            .unwrap()
            .contains(r#""age_file_exists":true"#));
    }

    #[test]
    fn put_defaults() {
        let p: PutCredential =
            serde_json::from_str(r#"{"credential":{"type":"bearer","token":"t"}}"#).unwrap();
        assert!(!p.rotate && !p.no_clobber && p.label.is_none());
        assert!(p.confirm.is_none() && p.allow_exe.is_none());
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"credential":{"type":"bearer","token":"t"}}"#
        );
    }
}
