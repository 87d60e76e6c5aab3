//! The library's error type, and the wire kind each error maps to.

use crate::credential::{CredentialError, OriginError};
use crate::index::IndexError;
use crate::protocol::ErrorKind;
use crate::store::StoreError;

/// Everything the agent can refuse or fail with. Messages never hold a secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No credential for the origin (and project) asked for; holds that origin as shown to the
    /// user.
    #[error("no credential stored for {0}")]
    NotFound(String),
    #[error(
        "the credential for {what} is disabled; run `composer-keyd enable {what}` to use it again"
    )]
    /// The credential exists but `disable` turned it off.
    Disabled {
        /// The origin (and project) as shown to the user, for the `enable` hint.
        what: String,
    },
    /// The daemon is locked; nothing is released until `unlock`.
    #[error("composer-keyd is locked: run `composer-keyd unlock`")]
    Locked,
    /// The request is malformed; holds the reason for the client.
    #[error("{0}")]
    BadRequest(String),
    /// The credential in the request was refused.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The origin in the request is not `host[:port]`.
    #[error("bad origin: {0}")]
    Origin(#[from] OriginError),
    /// The keyring or vault failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The credential index could not be read or written.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The request body or headers are over a limit; holds which.
    #[error("{0}")]
    TooLarge(String),
    /// The peer may not have this (policy, or another uid); holds the reason.
    #[error("{0}")]
    Forbidden(String),
    /// No route matches; holds the method and path.
    #[error("no such route: {0}")]
    UnknownRoute(String),
    /// A fault of the daemon or its set-up, not of the request: a task that panicked, a
    /// bad environment setting, a configuration file that could not be written.
    #[error("{0}")]
    Internal(String),
    /// The client did not send its whole request in time; the connection is closed.
    #[error("{0}")]
    TimedOut(String),
    /// A team source could not answer; the message names the team and the path.
    #[error(transparent)]
    Team(#[from] crate::team::TeamError),
}

impl Error {
    /// The kind a client acts on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Disabled { .. } => ErrorKind::Disabled,
            Error::Locked => ErrorKind::Locked,
            Error::BadRequest(_) | Error::Origin(_) | Error::TimedOut(_) => ErrorKind::BadRequest,
            Error::Credential(CredentialError::UnknownType(_)) => ErrorKind::UnsupportedType,
            Error::Credential(_) => ErrorKind::BadRequest,
            Error::Store(StoreError::Locked) => ErrorKind::Locked,
            Error::Store(StoreError::WrongPassphrase) => ErrorKind::WrongPassphrase,
            Error::Store(StoreError::Backoff(_)) => ErrorKind::RetryLater,
            Error::Store(StoreError::RolledBack(_)) => ErrorKind::AgeFileRolledBack,
            Error::Store(StoreError::Corrupt(_)) => ErrorKind::AgeFileCorrupt,
            Error::Store(StoreError::Invalid(_)) => ErrorKind::BadRequest,
            Error::Store(StoreError::Unavailable { .. } | StoreError::Timeout(_)) => {
                ErrorKind::BackendUnavailable
            }
            Error::Index(_) | Error::Internal(_) => ErrorKind::Internal,
            Error::TooLarge(_) => ErrorKind::TooLarge,
            Error::Forbidden(_) => ErrorKind::Forbidden,
            Error::Team(e) => e.kind(),
            Error::UnknownRoute(_) => ErrorKind::UnknownRoute,
        }
    }
}

/// Shorthand for results of the agent.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fault_has_its_true_kind() {
        let internal = Error::Internal("the index writer failed".into());
        assert_eq!(internal.kind(), ErrorKind::Internal);
        assert_eq!(internal.kind().status(), 500);
        assert_eq!(
            Error::BadRequest("bad JSON".into()).kind(),
            ErrorKind::BadRequest
        );
        let busy = Error::Store(StoreError::Timeout("keyring"));
        assert_eq!(busy.kind(), ErrorKind::BackendUnavailable);
        let wait = Error::Store(StoreError::Backoff(std::time::Duration::from_secs(4)));
        assert_eq!(
            (wait.kind(), wait.kind().status()),
            (ErrorKind::RetryLater, 429)
        );
        assert!(wait.to_string().contains("try again in 4 s"), "{wait}");
    }
}
