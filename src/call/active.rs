//! The calls in progress on this node, so that shutdown can wait for them and end the rest.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::sip::CallControl;

#[derive(Default)]
struct Inner {
    calls: Mutex<HashMap<u64, (String, Option<CallControl>)>>,
    next: Mutex<u64>,
    emptied: Notify,
}

/// Registry of calls in progress; cheap to clone.
#[derive(Clone, Default)]
pub struct ActiveCalls {
    inner: Arc<Inner>,
}

/// Membership of one call; dropping it removes the call from the registry.
pub struct ActiveEntry {
    inner: Arc<Inner>,
    id: u64,
}

impl ActiveCalls {
    /// Adds a call that is being set up.
    pub fn enter(&self, call_id: &str) -> ActiveEntry {
        let id = {
            let mut next = self.inner.next.lock();
            *next += 1;
            *next
        };
        self.inner
            .calls
            .lock()
            .insert(id, (call_id.to_owned(), None));
        ActiveEntry {
            inner: Arc::clone(&self.inner),
            id,
        }
    }

    /// Calls in progress.
    pub fn len(&self) -> usize {
        self.inner.calls.lock().len()
    }

    /// True when no call is in progress.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until no call is left or `limit` passed; returns the calls still in progress.
    pub async fn wait_empty(&self, limit: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let emptied = self.inner.emptied.notified();
            let left = self.len();
            if left == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, emptied).await.is_err() {
                return self.len();
            }
        }
    }

    /// Ends every answered call with BYE carrying `reason`; returns how many were ended.
    pub fn hangup_all(&self, reason: &str) -> usize {
        let calls = self.inner.calls.lock();
        let mut ended = 0;
        for (call_id, control) in calls.values() {
            if let Some(control) = control {
                tracing::debug!(%call_id, "ending call for shutdown");
                control.hangup(reason);
                ended += 1;
            }
        }
        ended
    }
}

impl ActiveEntry {
    /// Records that the call was answered and can be ended with `control`.
    pub fn answered(&self, control: CallControl) {
        if let Some(entry) = self.inner.calls.lock().get_mut(&self.id) {
            entry.1 = Some(control);
        }
    }
}

impl Drop for ActiveEntry {
    fn drop(&mut self) {
        let mut calls = self.inner.calls.lock();
        calls.remove(&self.id);
        if calls.is_empty() {
            self.inner.emptied.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn wait_empty_returns_when_the_last_call_leaves() {
        let calls = ActiveCalls::default();
        let first = calls.enter("a");
        let second = calls.enter("b");
        assert_eq!(calls.len(), 2);
        let waiter = {
            let calls = calls.clone();
            tokio::spawn(async move { calls.wait_empty(Duration::from_secs(30)).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(first);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiter.is_finished());
        drop(second);
        assert_eq!(waiter.await.unwrap(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn wait_empty_gives_up_at_the_limit() {
        let calls = ActiveCalls::default();
        let _entry = calls.enter("a");
        let left = calls.wait_empty(Duration::from_secs(5)).await;
        assert_eq!(left, 1);
        // Only answered calls get a BYE.
        assert_eq!(calls.hangup_all("shutdown"), 0);
    }
}
