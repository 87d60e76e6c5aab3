//! The daemon's backend as one `Store`: the one chosen at start, switched by `migrate`.

use super::backend::Places;
use super::{Call, SecretKey, Store};
use crate::protocol::BackendKind;
use crate::secret::Secret;
use std::sync::{Arc, RwLock};

/// The store in use, why it was chosen, and where backends keep their files (for `status`
/// and `migrate`).
pub struct Switchable {
    current: RwLock<(Arc<dyn Store>, String)>,
    /// `None` for a store that is never switched (tests, tools): `migrate` refuses.
    places: Option<Places>,
    /// The whole story behind the reason (e.g. the D-Bus error of the keyring probe), for
    /// `doctor -v` and the log; the reason itself stays one short sentence.
    detail: RwLock<Option<String>>,
}

impl Switchable {
    /// Wraps the chosen store.
    pub fn new(store: Arc<dyn Store>, reason: String, places: Option<Places>) -> Switchable {
        Switchable {
            current: RwLock::new((store, reason)),
            places,
            detail: RwLock::new(None),
        }
    }

    /// Records the detail behind the reason.
    pub fn with_detail(self, detail: Option<String>) -> Switchable {
        *self.detail.write().unwrap_or_else(|e| e.into_inner()) = detail;
        self
    }

    /// The detail behind the reason, when there is more to say than the reason does.
    pub fn detail(&self) -> Option<String> {
        self.detail
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The store in use now.
    pub fn current(&self) -> Arc<dyn Store> {
        // Writers only swap the pair; a poisoned lock still holds a whole one.
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()).0)
    }

    /// Why the store in use was chosen, in a sentence.
    pub fn reason(&self) -> String {
        // As in `current`.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }

    /// Where backends keep their files, whichever is in use.
    pub fn places(&self) -> Option<&Places> {
        self.places.as_ref()
    }

    /// Whether the age file exists, when there is one to ask about.
    pub fn age_file_exists(&self) -> Option<bool> {
        self.places.as_ref().map(Places::age_file_exists)
    }

    /// Makes `store` the one in use.
    pub fn replace(&self, store: Arc<dyn Store>, reason: String) {
        // As in `current`.
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = (store, reason);
        *self.detail.write().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Each call goes to the store in use when it is made; a call in flight keeps the store it
/// started on.
impl Store for Switchable {
    fn kind(&self) -> BackendKind {
        self.current().kind()
    }

    fn get<'a>(&'a self, key: &'a SecretKey) -> Call<'a, Option<Secret<Vec<u8>>>> {
        let s = self.current();
        Box::pin(async move { s.get(key).await })
    }

    fn set<'a>(&'a self, key: &'a SecretKey, secret: &'a [u8]) -> Call<'a, ()> {
        let s = self.current();
        Box::pin(async move { s.set(key, secret).await })
    }

    fn delete<'a>(&'a self, key: &'a SecretKey) -> Call<'a, ()> {
        let s = self.current();
        Box::pin(async move { s.delete(key).await })
    }

    fn set_many<'a>(&'a self, items: &'a [(SecretKey, Secret<Vec<u8>>)]) -> Call<'a, ()> {
        let s = self.current();
        Box::pin(async move { s.set_many(items).await })
    }

    fn delete_many<'a>(&'a self, keys: &'a [SecretKey]) -> Call<'a, ()> {
        let s = self.current();
        Box::pin(async move { s.delete_many(keys).await })
    }

    fn probe(&self) -> Call<'_, ()> {
        let s = self.current();
        Box::pin(async move { s.probe().await })
    }

    fn unlock<'a>(&'a self, passphrase: Option<&'a Secret<String>>) -> Call<'a, ()> {
        let s = self.current();
        Box::pin(async move { s.unlock(passphrase).await })
    }

    fn lock(&self) {
        self.current().lock()
    }

    fn needs_passphrase(&self) -> bool {
        self.current().needs_passphrase()
    }

    fn warning(&self) -> Option<String> {
        self.current().warning()
    }

    fn change_passphrase<'a>(
        &'a self,
        old: &'a Secret<String>,
        new: &'a Secret<String>,
    ) -> Call<'a, ()> {
        let s = self.current();
        Box::pin(async move { s.change_passphrase(old, new).await })
    }
}
