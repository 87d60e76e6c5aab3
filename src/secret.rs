//! `Secret<T>`: the one box every secret lives in, zeroized on drop and redacted in `Debug`.

mod locked;

pub use locked::{
    arena_state, freed_since_last_take, in_arena, in_locked_arena, ArenaState, LockedAlloc,
    ARENA_BYTES,
};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use zeroize::{Zeroize, Zeroizing};

/// A value that must never be printed, logged or left in freed memory.
///
/// There is no `Display`; `Debug` prints `REDACTED`; [`Secret::expose`] is the
/// single place where the value leaves its box, so a `grep expose` finds every
/// use of a secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T: Zeroize>(T);

impl<T: Zeroize> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// Borrows the secret value. Callers must not copy it into unzeroized memory.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("REDACTED")
    }
}

impl From<&str> for Secret<String> {
    fn from(s: &str) -> Self {
        Secret(s.to_owned())
    }
}

impl From<String> for Secret<String> {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<Zeroizing<String>> for Secret<String> {
    fn from(mut s: Zeroizing<String>) -> Self {
        // Moving the String out leaves an empty one behind, so nothing is copied.
        Secret(std::mem::take(&mut *s))
    }
}

impl Secret<String> {
    /// True when the secret is empty or only white space.
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }

    /// The length in characters, which is not secret for our uses (key-length warnings).
    pub fn char_len(&self) -> usize {
        self.0.chars().count()
    }
}

impl<T: Zeroize + Serialize> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Zeroize + Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Secret)
    }
}

/// Serializes a value that holds secrets to JSON in a buffer that is zeroized on drop.
pub fn to_json_zeroizing<T: Serialize>(value: &T) -> Zeroizing<Vec<u8>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(256));
    // Writing to a Vec cannot fail, and our types have only string keys.
    serde_json::to_writer(&mut *buf, value).expect("serializing to a Vec never fails");
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::from("hunter2");
        assert_eq!(format!("{s:?}"), "REDACTED");
        assert_eq!(format!("{:?}", Some(&s)), "Some(REDACTED)");
    }

    #[test]
    fn serde_is_transparent() {
        let s: Secret<String> = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(s.expose(), "abc");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"abc\"");
    }
}
