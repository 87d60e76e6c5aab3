//! The `/v1` routes as typed methods, so no caller builds a URL or a body by hand.

use super::{Client, ClientError};
use crate::credential::Origin;
use crate::protocol::{
    Ack, CredentialInfo, CredentialList, CredentialReply, MigrateReply, MigrateRequest, OriginList,
    PasswdRequest, PutCredential, PutReply, Status, UnlockReply, UnlockRequest,
};
use crate::secret::to_json_zeroizing;
use hyper::Method;
use serde::Serialize;
use zeroize::Zeroizing;

/// A change of one credential's state that takes no body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `POST …/disable`: kept, but released to no one.
    Disable,
    /// `POST …/enable`.
    Enable,
    /// `POST …/rollback`: the secret a rotation replaced comes back.
    Rollback,
    /// `DELETE`: the secret and its index entry are removed.
    Remove,
}

impl Action {
    fn method_and_suffix(self) -> (Method, &'static str) {
        match self {
            Action::Disable => (Method::POST, "/disable"),
            Action::Enable => (Method::POST, "/enable"),
            Action::Rollback => (Method::POST, "/rollback"),
            Action::Remove => (Method::DELETE, ""),
        }
    }
}

/// Serializes a request body into a buffer that is wiped when dropped: bodies carry secrets.
fn body<T: Serialize>(value: &T) -> Option<Zeroizing<Vec<u8>>> {
    Some(to_json_zeroizing(value))
}

impl Client {
    /// `GET /v1/status`. Never extends an unlock timer.
    pub async fn status(&self) -> Result<Status, ClientError> {
        self.call(Method::GET, "/v1/status", None).await
    }

    /// `POST /v1/lock`: the daemon wipes its decrypted secrets.
    pub async fn lock(&self) -> Result<Ack, ClientError> {
        self.call(Method::POST, "/v1/lock", None).await
    }

    /// `POST /v1/unlock`, with the vault's passphrase where the backend needs one.
    pub async fn unlock(&self, req: &UnlockRequest) -> Result<UnlockReply, ClientError> {
        self.call(Method::POST, "/v1/unlock", body(req)).await
    }

    /// `POST /v1/passwd`: a new passphrase for the vault.
    pub async fn passwd(&self, req: &PasswdRequest) -> Result<Ack, ClientError> {
        self.call(Method::POST, "/v1/passwd", body(req)).await
    }

    /// `POST /v1/migrate`: every credential to another backend.
    pub async fn migrate(&self, req: &MigrateRequest) -> Result<MigrateReply, ClientError> {
        self.call(Method::POST, "/v1/migrate", body(req)).await
    }

    /// `POST /v1/grants/reload`: the daemon opens and closes grant sockets to match the registry.
    pub async fn reload_grants(&self) -> Result<Ack, ClientError> {
        self.call(Method::POST, "/v1/grants/reload", None).await
    }

    /// `POST /v1/forwards/reload`: the daemon opens and closes forward doors to match the registry.
    pub async fn reload_forwards(&self) -> Result<Ack, ClientError> {
        self.call(Method::POST, "/v1/forwards/reload", None).await
    }

    /// `GET /v1/credentials`: every credential's metadata, no secret.
    pub async fn credentials(&self) -> Result<CredentialList, ClientError> {
        self.call(Method::GET, "/v1/credentials", None).await
    }

    /// `GET /v1/origins?project=DIR`: the origins that apply to a project.
    pub async fn origins(&self, project: &str) -> Result<OriginList, ClientError> {
        let q: String = form_urlencoded::byte_serialize(project.as_bytes()).collect();
        self.call(Method::GET, &format!("/v1/origins?project={q}"), None)
            .await
    }

    /// `GET /v1/credentials/{origin}?project=DIR`: the credential that wins for a project.
    pub async fn credential(
        &self,
        origin: &Origin,
        project: Option<&str>,
    ) -> Result<CredentialReply, ClientError> {
        let path = credential_path(origin.as_str(), project, "");
        self.call(Method::GET, &path, None).await
    }

    /// The same, with team entries read through past the daemon's cache (`fresh=1`), as a
    /// Composer run's first lookup is: a pair rotated in a team source reaches the run.
    pub async fn credential_fresh(
        &self,
        origin: &Origin,
        project: Option<&str>,
    ) -> Result<CredentialReply, ClientError> {
        let mut path = credential_path(origin.as_str(), project, "");
        path.push_str(match project {
            Some(_) => "&fresh=1",
            None => "?fresh=1",
        });
        self.call(Method::GET, &path, None).await
    }

    /// `PUT /v1/credentials/{origin}?project=DIR`: add, replace or rotate.
    pub async fn put_credential(
        &self,
        origin: &Origin,
        project: Option<&str>,
        req: &PutCredential,
    ) -> Result<PutReply, ClientError> {
        let path = credential_path(origin.as_str(), project, "");
        self.call(Method::PUT, &path, body(req)).await
    }

    /// Disable, enable, roll back or remove one credential.
    pub async fn act(
        &self,
        origin: &Origin,
        project: Option<&str>,
        action: Action,
    ) -> Result<CredentialInfo, ClientError> {
        let (method, suffix) = action.method_and_suffix();
        let path = credential_path(origin.as_str(), project, suffix);
        self.call(method, &path, None).await
    }
}

/// `/v1/credentials/{origin}{suffix}` with an optional `?project=`.
pub fn credential_path(origin: &str, project: Option<&str>, suffix: &str) -> String {
    let mut p = format!(
        "/v1/credentials/{}{suffix}",
        percent_encoding::utf8_percent_encode(origin, percent_encoding::NON_ALPHANUMERIC)
    );
    if let Some(dir) = project {
        p.push_str("?project=");
        p.extend(form_urlencoded::byte_serialize(dir.as_bytes()));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded() {
        assert_eq!(
            credential_path("127.0.0.1:8080", Some("/srv/a b&c"), "/disable"),
            "/v1/credentials/127%2E0%2E0%2E1%3A8080/disable?project=%2Fsrv%2Fa+b%26c"
        );
        assert_eq!(
            credential_path("repo.magento.com", None, ""),
            "/v1/credentials/repo%2Emagento%2Ecom"
        );
    }
}
