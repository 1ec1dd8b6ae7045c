//! Retention: deletes old history in the background, in memory first, then in the store, and
//! then the rows of rooms left with no messages (their ids stay taken, see
//! [`Store::prune_empty_rooms`]).

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::Store;

/// What to keep: at most `max_per_room` messages per room (0 = no limit), none older than
/// `max_age` (if set).
#[derive(Debug, Clone, Copy)]
pub struct RetentionPolicy {
    pub max_per_room: u64,
    pub max_age: Option<Duration>,
    pub interval: Duration,
}

/// Runs retention passes every `policy.interval` until `stop` changes; `None` when nothing is
/// limited. `trim_memory(max_per_room, older_than_ms)` prunes live rooms' rings first, so no join
/// shows a message the store has just deleted.
pub fn spawn_retention(
    store: Store,
    policy: RetentionPolicy,
    trim_memory: impl Fn(u64, Option<i64>) + Send + 'static,
    mut stop: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    if policy.max_per_room == 0 && policy.max_age.is_none() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(policy.interval);
        // Rooms only become empty when messages are deleted: look for them then (and once at
        // start, for what an earlier run left).
        let mut look_for_empty_rooms = true;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => return,
            }
            let cutoff = policy.max_age.map(|age| {
                let age_ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
                crate::protocol::now_ms().saturating_sub(age_ms)
            });
            trim_memory(policy.max_per_room, cutoff);
            match store.prune(policy.max_per_room, cutoff).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(rows = n, "retention pruned history");
                    look_for_empty_rooms = true;
                }
                Err(e) => tracing::warn!(error = %e, "retention pass failed"),
            }
            if look_for_empty_rooms {
                match store.prune_empty_rooms().await {
                    Ok(n) => {
                        look_for_empty_rooms = false;
                        if n > 0 {
                            tracing::info!(rooms = n, "retention removed rooms left empty");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "pruning empty rooms failed"),
                }
            }
        }
    }))
}
