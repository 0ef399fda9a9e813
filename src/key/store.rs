//! What a key store implements: [`KeyStore`], answering a [`LookupResult`]
//! at once or through a future.

use std::future::Future;
use std::sync::Arc;

use crate::Answer;
use crate::context::digest::KeyDigest;
use crate::context::record::KeyRecord;
use crate::error::StoreError;

/// What a lookup yields: the record, `None` for an unknown key, or an error.
pub type LookupResult = Result<Option<Arc<KeyRecord>>, StoreError>;

/// Looks key records up by digest.
///
/// A store that can answer at once returns [`Answer::Ready`] (the in-memory
/// store, a cache hit): the layer then decides within `call`, with no
/// allocation. One that must wait returns [`Answer::Pending`] with its
/// future, an associated type so the layer stays generic over it (a store
/// backed by a database can use a boxed future).
///
/// ```
/// use std::future::Ready;
/// use std::sync::Arc;
/// use tollgate::key::store::{KeyStore, LookupResult};
/// use tollgate::key::{KeyDigest, KeyKind, KeyRecord};
/// use tollgate::Answer;
///
/// /// Every key belongs to one project: a toy store.
/// struct Everyone;
///
/// impl KeyStore for Everyone {
///     type Lookup = Ready<LookupResult>;
///     fn lookup(&self, _digest: &KeyDigest) -> Answer<LookupResult, Self::Lookup> {
///         Answer::Ready(Ok(Some(Arc::new(KeyRecord::new("any", "public", KeyKind::Publishable)))))
///     }
/// }
/// ```
pub trait KeyStore: Send + Sync + 'static {
    /// The lookup in progress, for stores that must wait.
    type Lookup: Future<Output = LookupResult> + Send + 'static;

    /// Looks up `digest`.
    fn lookup(&self, digest: &KeyDigest) -> Answer<LookupResult, Self::Lookup>;

    /// A number that changes whenever any record changes (added, changed,
    /// removed), read before a lookup, or `None` (the default) if the store
    /// cannot say.
    ///
    /// A store that answers at once and gives one lets the key check
    /// remember the keys it verified, by a keyed hash of the key as
    /// presented, for as long as the number stays the same: a known key then
    /// costs neither its parse, its digest nor this store's lookup. A
    /// [`lookup`](Self::lookup) begun after the new number was read must
    /// find the change (count it after making it, or while no lookup can
    /// see the record yet), or a key could be answered from before it.
    fn generation(&self) -> Option<u64> {
        None
    }
}

impl<S: KeyStore + ?Sized> KeyStore for Arc<S> {
    type Lookup = S::Lookup;

    fn lookup(&self, digest: &KeyDigest) -> Answer<LookupResult, Self::Lookup> {
        (**self).lookup(digest)
    }

    fn generation(&self) -> Option<u64> {
        (**self).generation()
    }
}
