//! [`Answer`]: what a check or a store answers, now or later.

/// An answer at once, or through a future.
///
/// A store that can answer without waiting (in memory, or from a cache)
/// returns [`Answer::Ready`]: the check then decides within `call`, with no
/// extra future state, no clone of the inner service and no allocation. A
/// store that must wait (a database, Redis) returns [`Answer::Pending`].
/// Checks answer the same way ([`Step`](crate::check::Step)).
#[derive(Debug)]
pub enum Answer<T, F> {
    /// Decided now.
    Ready(T),
    /// To be decided by this future (or pending state).
    Pending(F),
}
