//! The library's error type, and the wire kind each error maps to.

use crate::credential::{CredentialError, OriginError};
use crate::index::IndexError;
use crate::protocol::ErrorKind;
use crate::store::StoreError;

/// Everything the agent can refuse or fail with. Messages never hold a secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no credential stored for {0}")]
    NotFound(String),
    #[error(
        "the credential for {what} is disabled; run `composer-keyd enable {what}` to use it again"
    )]
    Disabled { what: String },
    #[error("composer-keyd is locked: run `composer-keyd unlock`")]
    Locked,
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error("bad origin: {0}")]
    Origin(#[from] OriginError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("no such route: {0}")]
    UnknownRoute(String),
    /// A fault of the daemon or its set-up, not of the request: a task that panicked, a
    /// bad environment setting, a configuration file that could not be written.
    #[error("{0}")]
    Internal(String),
    /// The client did not send its whole request in time; the connection is closed.
    #[error("{0}")]
    TimedOut(String),
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
            Error::Store(StoreError::Corrupt(_)) => ErrorKind::VaultCorrupt,
            Error::Store(StoreError::Invalid(_)) => ErrorKind::BadRequest,
            Error::Store(StoreError::Unavailable { .. } | StoreError::Timeout(_)) => {
                ErrorKind::BackendUnavailable
            }
            Error::Index(_) | Error::Internal(_) => ErrorKind::Internal,
            Error::TooLarge(_) => ErrorKind::TooLarge,
            Error::Forbidden(_) => ErrorKind::Forbidden,
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
    }
}
