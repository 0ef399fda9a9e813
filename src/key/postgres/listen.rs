//! The listener: one connection of its own that `LISTEN`s on the channel
//! the trigger notifies, and drops the cache entries of the keys changed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::{AsyncMessage, NoTls};

use super::{CHANNEL, Core, Source};
use crate::context::digest::KeyDigest;
use crate::error::StoreError;
use crate::key::cache::CachedKeyStore;

/// The first wait before connecting again; it doubles up to the maximum.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// Listens until the store is dropped. The first attempt's outcome goes to
/// `ready` (a failure there ends the listener: the store is not made);
/// after a lost connection it connects again with back-off, then drops the
/// whole cache, since changes may have been missed meanwhile.
pub(super) async fn listen(
    cache: CachedKeyStore<Source>,
    core: Arc<Core>,
    mut config: tokio_postgres::Config,
    reconnect_max: Duration,
    mut stopped: watch::Receiver<()>,
    ready: oneshot::Sender<Result<(), StoreError>>,
) {
    config.connect_timeout(reconnect_max.max(Duration::from_secs(1)));
    let mut ready = Some(ready);
    let mut backoff = FIRST_BACKOFF;
    loop {
        let attempt = tokio::select! {
            attempt = subscribe(&config) => attempt,
            _ = stopped.changed() => return,
        };
        match attempt {
            Ok((client, mut notes)) => {
                if ready.is_none() {
                    cache.clear();
                    core.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    #[cfg(feature = "tracing")]
                    tracing::warn!(target: "tollgate", "key listener connected again: the key cache was dropped, changes may have been missed");
                }
                core.stats.listening.store(true, Ordering::Release);
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Ok(()));
                }
                backoff = FIRST_BACKOFF;
                loop {
                    let note = tokio::select! {
                        note = notes.recv() => note,
                        _ = stopped.changed() => return,
                    };
                    let Some(payload) = note else { break };
                    core.stats.notifications.fetch_add(1, Ordering::Relaxed);
                    match KeyDigest::from_hex(&payload) {
                        Ok(digest) => cache.invalidate(&digest),
                        // `*` (a truncate), or anything else: forget all.
                        Err(_) => cache.clear(),
                    }
                }
                core.stats.listening.store(false, Ordering::Release);
                drop(client);
                #[cfg(feature = "tracing")]
                tracing::warn!(target: "tollgate", "key listener lost its connection; connecting again");
            }
            Err(error) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(error));
                    return;
                }
                #[cfg(feature = "tracing")]
                tracing::warn!(target: "tollgate", %error, retry_in = ?backoff, "key listener cannot connect");
                let _ = error;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stopped.changed() => return,
        }
        backoff = (backoff * 2).min(reconnect_max);
    }
}

/// A connection listening on [`CHANNEL`], and its notifications' payloads
/// (the receiver ends when the connection does).
async fn subscribe(
    config: &tokio_postgres::Config,
) -> Result<(tokio_postgres::Client, mpsc::UnboundedReceiver<String>), StoreError> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(StoreError::new)?;
    let (notes, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(note))) => {
                    if notes.send(note.payload().to_owned()).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(StoreError::new)?;
    Ok((client, received))
}
