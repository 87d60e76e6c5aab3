//! The vault file's format: age with one scrypt recipient around JSON that embeds each credential as it is.

use super::{Entries, FORMAT, MAX_LOG_N};
use crate::secret::Secret;
use crate::store::StoreError;
use age::secrecy::SecretString;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use zeroize::Zeroizing;

/// Why a vault did not open.
pub(super) enum Damage {
    WrongPassphrase,
    Other(String),
}

fn secret_string(pass: &Secret<String>) -> SecretString {
    SecretString::from(pass.expose().clone())
}

pub(super) fn encrypt(plain: &[u8], pass: &Secret<String>, log_n: u8) -> io::Result<Vec<u8>> {
    let mut recipient = age::scrypt::Recipient::new(secret_string(pass));
    recipient.set_work_factor(log_n);
    let enc = age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
        .map_err(|e| io::Error::other(format!("age: {e:?}")))?;
    let mut out = Vec::with_capacity(plain.len() + 256);
    let mut w = enc.wrap_output(&mut out)?;
    w.write_all(plain)?;
    w.finish()?;
    Ok(out)
}

pub(super) fn decrypt(bytes: &[u8], pass: &Secret<String>) -> Result<Zeroizing<Vec<u8>>, Damage> {
    use age::DecryptError as D;
    let other = |e: D| {
        Damage::Other(match e {
            D::InvalidHeader => "its age header is damaged or truncated".into(),
            D::InvalidMac => "its age header fails its check: the file was altered".into(),
            D::UnknownFormat => "it is not an age file this version reads".into(),
            D::ExcessiveWork { required, .. } => {
                format!("it asks for scrypt work 2^{required}, above the limit of 2^{MAX_LOG_N}")
            }
            D::Io(e) => format!("it is truncated or altered ({})", e.kind()),
            _ => "it does not decrypt".into(),
        })
    };
    if bytes.is_empty() {
        return Err(Damage::Other("the file is empty".into()));
    }
    let dec = age::Decryptor::new_buffered(bytes).map_err(other)?;
    if !dec.is_scrypt() {
        return Err(Damage::Other(
            "it is encrypted to keys, not to a passphrase".into(),
        ));
    }
    let mut identity = age::scrypt::Identity::new(secret_string(pass));
    identity.set_max_work_factor(MAX_LOG_N);
    let mut reader = match dec.decrypt(std::iter::once(&identity as &dyn age::Identity)) {
        Ok(r) => r,
        Err(D::DecryptionFailed | D::NoMatchingKeys | D::KeyDecryptionFailed) => {
            return Err(Damage::WrongPassphrase)
        }
        Err(e) => return Err(other(e)),
    };
    let mut plain = Zeroizing::new(Vec::new());
    reader
        .read_to_end(&mut plain)
        .map_err(|e| other(D::Io(e)))?;
    Ok(plain)
}

#[derive(Deserialize)]
struct FileIn<'a> {
    format: u32,
    #[serde(borrow)]
    credentials: BTreeMap<String, BTreeMap<String, &'a RawValue>>,
}

/// Parses the plaintext. Secrets are borrowed from the zeroizing buffer and copied into `Secret`s only.
pub(super) fn parse(plain: &[u8]) -> Result<Entries, Damage> {
    // serde_json's messages can quote the input, which is secret: keep only the position.
    let file: FileIn<'_> = serde_json::from_slice(plain).map_err(|e| {
        Damage::Other(format!(
            "its content is not vault JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if file.format != FORMAT {
        return Err(Damage::Other(format!(
            "format {} is not {FORMAT}; is it from a newer composer-keyd?",
            file.format
        )));
    }
    Ok(file
        .credentials
        .into_iter()
        .map(|(service, accounts)| {
            let accounts = accounts
                .into_iter()
                .map(|(a, raw)| (a, Secret::new(raw.get().as_bytes().to_vec())))
                .collect();
            (service, accounts)
        })
        .collect())
}

/// Writes the plaintext, one credential per line, each embedded as JSON (not as a string)
/// so that `age -d` shows it readably.
pub(super) fn serialize(entries: &Entries) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(1024));
    // Keys are plain strings: serializing them cannot fail.
    let key = |s: &str| serde_json::to_vec(s).expect("a string serializes");
    out.extend_from_slice(format!("{{\"format\":{FORMAT},\"credentials\":{{").as_bytes());
    for (i, (service, accounts)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"\n");
        out.extend_from_slice(&key(service));
        out.extend_from_slice(b":{");
        for (j, (account, secret)) in accounts.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"\n  ");
            out.extend_from_slice(&key(account));
            out.push(b':');
            out.extend_from_slice(secret.expose());
        }
        out.extend_from_slice(b"}");
    }
    out.extend_from_slice(b"}}\n");
    out
}

/// Only JSON is embedded, so the file always parses back.
pub(super) fn check_json(bytes: &[u8]) -> Result<(), StoreError> {
    serde_json::from_slice::<&RawValue>(bytes)
        .map(drop)
        .map_err(|_| StoreError::Invalid("the vault stores JSON values only".into()))
}
