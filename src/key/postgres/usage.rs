//! Last-used times: marked on every key found, written back in batches.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::Core;
use crate::context::digest::KeyDigest;
use crate::error::StoreError;
use crate::hash::BuildPrehashed;

/// How many sets the marks are spread over, so requests rarely meet on a lock.
const SHARDS: usize = 16;

/// The keys used since the last write, each once.
#[derive(Default)]
pub(super) struct Usage {
    shards: [Mutex<HashSet<KeyDigest, BuildPrehashed>>; SHARDS],
}

impl Usage {
    /// Marks `digest` used.
    pub(super) fn touch(&self, digest: &KeyDigest) {
        let shard = &self.shards[usize::from(digest.as_bytes()[30]) % SHARDS];
        shard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(*digest);
    }

    /// Takes the marks.
    fn take(&self) -> Vec<KeyDigest> {
        self.shards
            .iter()
            .flat_map(|shard| {
                shard
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .drain()
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Puts marks back whose write failed.
    fn restore(&self, digests: &[KeyDigest]) {
        digests.iter().for_each(|digest| self.touch(digest));
    }
}

impl Core {
    /// Writes `last_used_at = now()` for every key marked, in one statement.
    pub(super) async fn write_last_used(&self) -> Result<u64, StoreError> {
        let digests = self.usage.take();
        if digests.is_empty() {
            return Ok(0);
        }
        let written = async {
            let client = self.pool.get().await.map_err(StoreError::new)?;
            let bytes: Vec<&[u8]> = digests.iter().map(|d| d.as_bytes().as_slice()).collect();
            client
                .execute(
                    "UPDATE tollgate_keys SET last_used_at = now() WHERE digest = ANY($1)",
                    &[&bytes],
                )
                .await
                .map_err(StoreError::new)
        }
        .await;
        match written {
            Ok(rows) => {
                self.stats.last_used_writes.fetch_add(1, Ordering::Relaxed);
                self.stats.last_used_keys.fetch_add(rows, Ordering::Relaxed);
                Ok(rows)
            }
            Err(error) => {
                self.usage.restore(&digests);
                Err(error)
            }
        }
    }
}

/// Writes the last-used times every `interval`, and once more when the store
/// is dropped.
pub(super) async fn write_back(
    core: Arc<Core>,
    interval: Duration,
    mut stopped: watch::Receiver<()>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        let stopping = tokio::select! {
            _ = ticks.tick() => false,
            _ = stopped.changed() => true,
        };
        if let Err(error) = core.write_last_used().await {
            #[cfg(feature = "tracing")]
            tracing::warn!(target: "tollgate", %error, "writing last_used_at failed; trying again at the next interval");
            let _ = error;
        }
        if stopping {
            return;
        }
    }
}
