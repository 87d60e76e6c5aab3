//! The vault's two age files: the passphrase-sealed identity, and the credentials JSON sealed to that identity.

use super::{Entries, MAX_LOG_N};
use crate::secret::Secret;
use crate::store::StoreError;
use age::secrecy::{ExposeSecret, SecretString};
use age::x25519;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::str::FromStr;
use zeroize::Zeroizing;

/// The plaintext's format revision written now: 2 carries a generation.
pub(super) const FORMAT: u32 = 2;
/// Format 1: a file sealed with the passphrase itself, before identity.age existed.
const FORMAT_LEGACY: u32 = 1;

/// Why a file did not open.
#[derive(Debug)]
pub(super) enum Damage {
    WrongPassphrase,
    Other(String),
}

/// How a vault.age is sealed, read from its header alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Seal {
    /// With the passphrase (scrypt): the format before identity.age, to upgrade.
    Passphrase,
    /// To the X25519 recipient of identity.age.
    Identity,
}

/// The credentials and the generation a vault.age holds.
pub(super) struct Plain {
    pub generation: u64,
    pub entries: Entries,
}

fn age_error(e: age::DecryptError) -> Damage {
    use age::DecryptError as D;
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
}

/// Tells the two vault formats apart without any key.
pub(super) fn seal_of(bytes: &[u8]) -> Result<Seal, Damage> {
    if bytes.is_empty() {
        return Err(Damage::Other("the file is empty".into()));
    }
    let dec = age::Decryptor::new_buffered(bytes).map_err(age_error)?;
    Ok(if dec.is_scrypt() {
        Seal::Passphrase
    } else {
        Seal::Identity
    })
}

fn seal(plain: &[u8], recipient: &dyn age::Recipient) -> io::Result<Vec<u8>> {
    let enc = age::Encryptor::with_recipients(std::iter::once(recipient))
        .map_err(|e| io::Error::other(format!("age: {e:?}")))?;
    let mut out = Vec::with_capacity(plain.len() + 256);
    let mut w = enc.wrap_output(&mut out)?;
    w.write_all(plain)?;
    w.finish()?;
    Ok(out)
}

/// Encrypts with the passphrase (scrypt at 2^`log_n`), as `age -p` does.
pub(super) fn seal_passphrase(
    plain: &[u8],
    pass: &Secret<String>,
    log_n: u8,
) -> io::Result<Vec<u8>> {
    let mut recipient = age::scrypt::Recipient::new(SecretString::from(pass.expose().clone()));
    recipient.set_work_factor(log_n);
    seal(plain, &recipient)
}

/// Encrypts to an X25519 recipient: no passphrase work, well under a millisecond.
pub(super) fn seal_to(plain: &[u8], recipient: &x25519::Recipient) -> io::Result<Vec<u8>> {
    seal(plain, recipient)
}

fn open_with(bytes: &[u8], identity: &dyn age::Identity) -> Result<Zeroizing<Vec<u8>>, Damage> {
    use age::DecryptError as D;
    if bytes.is_empty() {
        return Err(Damage::Other("the file is empty".into()));
    }
    let dec = age::Decryptor::new_buffered(bytes).map_err(age_error)?;
    let mut reader = match dec.decrypt(std::iter::once(identity)) {
        Ok(r) => r,
        Err(D::DecryptionFailed | D::NoMatchingKeys | D::KeyDecryptionFailed) => {
            return Err(Damage::WrongPassphrase)
        }
        Err(e) => return Err(age_error(e)),
    };
    let mut plain = Zeroizing::new(Vec::new());
    reader
        .read_to_end(&mut plain)
        .map_err(|e| age_error(D::Io(e)))?;
    Ok(plain)
}

/// Decrypts a passphrase-sealed file. `WrongPassphrase` means the passphrase did not match.
pub(super) fn open_passphrase(
    bytes: &[u8],
    pass: &Secret<String>,
) -> Result<Zeroizing<Vec<u8>>, Damage> {
    if seal_of(bytes)? != Seal::Passphrase {
        return Err(Damage::Other(
            "it is encrypted to keys, not to a passphrase".into(),
        ));
    }
    let mut identity = age::scrypt::Identity::new(SecretString::from(pass.expose().clone()));
    identity.set_max_work_factor(MAX_LOG_N);
    open_with(bytes, &identity)
}

/// Decrypts a vault.age sealed to `identity`. A file sealed to another key is damage, not a
/// wrong passphrase: the passphrase already opened identity.age.
pub(super) fn open_identity(
    bytes: &[u8],
    identity: &x25519::Identity,
) -> Result<Zeroizing<Vec<u8>>, Damage> {
    open_with(bytes, identity).map_err(|e| match e {
        Damage::WrongPassphrase => Damage::Other(
            "it is not encrypted to the key in identity.age (were the two files mixed up?)".into(),
        ),
        other => other,
    })
}

/// The identity file's plaintext, in the form `age -i` reads.
pub(super) fn identity_text(identity: &x25519::Identity) -> Zeroizing<Vec<u8>> {
    let key = identity.to_string();
    let mut out = Zeroizing::new(Vec::with_capacity(200));
    out.extend_from_slice(
        b"# composer-keyd vault identity: age -d -i <(age -d identity.age) vault.age\n",
    );
    out.extend_from_slice(format!("# public key: {}\n", identity.to_public()).as_bytes());
    out.extend_from_slice(key.expose_secret().as_bytes());
    out.push(b'\n');
    out
}

/// Reads the identity back from its file's plaintext.
pub(super) fn parse_identity(plain: &[u8]) -> Result<x25519::Identity, Damage> {
    let bad = || Damage::Other("it holds no age X25519 identity".into());
    let text = std::str::from_utf8(plain).map_err(|_| bad())?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .ok_or_else(bad)?;
    // The parser's error names no part of the key, but it is dropped here all the same.
    x25519::Identity::from_str(line).map_err(|_| bad())
}

#[derive(Deserialize)]
struct FileIn<'a> {
    format: u32,
    #[serde(default)]
    generation: u64,
    #[serde(borrow)]
    credentials: BTreeMap<String, BTreeMap<String, &'a RawValue>>,
}

/// Parses the plaintext of either format. Secrets are borrowed from the zeroizing buffer and
/// copied into `Secret`s only. Format 1 had no generation: it counts as 0.
pub(super) fn parse(plain: &[u8]) -> Result<Plain, Damage> {
    // serde_json's messages can quote the input, which is secret: keep only the position.
    let file: FileIn<'_> = serde_json::from_slice(plain).map_err(|e| {
        Damage::Other(format!(
            "its content is not vault JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if file.format != FORMAT && file.format != FORMAT_LEGACY {
        return Err(Damage::Other(format!(
            "format {} is not {FORMAT}; is it from a newer composer-keyd?",
            file.format
        )));
    }
    let entries = file
        .credentials
        .into_iter()
        .map(|(service, accounts)| {
            let accounts = accounts
                .into_iter()
                .map(|(a, raw)| (a, Secret::new(raw.get().as_bytes().to_vec())))
                .collect();
            (service, accounts)
        })
        .collect();
    Ok(Plain {
        generation: file.generation,
        entries,
    })
}

/// Writes the plaintext, one credential per line, each embedded as JSON (not as a string)
/// so that the emergency `age -d` shows it readably.
pub(super) fn serialize(generation: u64, entries: &Entries) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(1024));
    // Keys are plain strings: serializing them cannot fail.
    let key = |s: &str| serde_json::to_vec(s).expect("a string serializes");
    out.extend_from_slice(
        format!("{{\"format\":{FORMAT},\"generation\":{generation},\"credentials\":{{").as_bytes(),
    );
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
