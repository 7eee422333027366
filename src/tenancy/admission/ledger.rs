//! The call slots this process holds, by tenant.
//!
//! On SQLite (one node) the ledger is the limit itself: a slot is reserved under its mutex only
//! while the tenant is below its limit, so bursts never overshoot. On PostgreSQL the limit is
//! enforced by lease rows shared by all nodes, and the ledger lists this node's leases for the
//! heartbeat. Either way it feeds the `voicegate_tenant_active_calls` gauge.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};

use parking_lot::Mutex;
use tokio_util::task::TaskTracker;

use crate::tenancy::metrics;
use crate::tenancy::model::TenantId;

/// Slots held by this process.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    tenants: Mutex<HashMap<TenantId, LocalTenant>>,
    next_local_id: AtomicI64,
    /// Releases started by dropped slots, so shutdown and tests can wait for them.
    pub releases: TaskTracker,
}

#[derive(Debug)]
struct LocalTenant {
    name: String,
    slots: HashSet<i64>,
}

impl Ledger {
    /// Reserves a slot for `tenant` when it holds fewer than `limit` (0: no limit). Returns
    /// the slot id and the number of slots held including the new one.
    pub fn try_reserve(&self, tenant: TenantId, name: &str, limit: u32) -> Option<(i64, usize)> {
        let mut tenants = self.tenants.lock();
        let entry = tenants.entry(tenant).or_insert_with(|| LocalTenant {
            name: name.to_string(),
            slots: HashSet::new(),
        });
        if limit > 0 && entry.slots.len() >= limit as usize {
            return None;
        }
        let id = self.next_local_id.fetch_add(1, Ordering::Relaxed) + 1;
        entry.slots.insert(id);
        let active = entry.slots.len();
        set_gauge(name, active);
        Some((id, active))
    }

    /// Records a slot whose limit check already happened elsewhere (a PostgreSQL lease).
    pub fn insert(&self, tenant: TenantId, name: &str, id: i64) -> usize {
        let mut tenants = self.tenants.lock();
        let entry = tenants.entry(tenant).or_insert_with(|| LocalTenant {
            name: name.to_string(),
            slots: HashSet::new(),
        });
        entry.slots.insert(id);
        let active = entry.slots.len();
        set_gauge(name, active);
        active
    }

    /// Removes a slot; returns false when it was not held (already released).
    pub fn remove(&self, tenant: TenantId, id: i64) -> bool {
        let mut tenants = self.tenants.lock();
        let Some(entry) = tenants.get_mut(&tenant) else {
            return false;
        };
        let removed = entry.slots.remove(&id);
        set_gauge(&entry.name, entry.slots.len());
        if entry.slots.is_empty() {
            tenants.remove(&tenant);
        }
        removed
    }

    /// Slots held for `tenant`.
    pub fn active(&self, tenant: TenantId) -> usize {
        self.tenants
            .lock()
            .get(&tenant)
            .map_or(0, |entry| entry.slots.len())
    }

    /// Whether `id` is held for `tenant`.
    pub fn holds(&self, tenant: TenantId, id: i64) -> bool {
        self.tenants
            .lock()
            .get(&tenant)
            .is_some_and(|entry| entry.slots.contains(&id))
    }

    /// Every slot id held, for the lease heartbeat.
    pub fn slot_ids(&self) -> Vec<(TenantId, i64)> {
        let tenants = self.tenants.lock();
        tenants
            .iter()
            .flat_map(|(tenant, entry)| entry.slots.iter().map(move |id| (*tenant, *id)))
            .collect()
    }

    /// Waits for the releases started so far.
    pub async fn settle(&self) {
        self.releases.close();
        self.releases.wait().await;
        self.releases.reopen();
    }
}

fn set_gauge(tenant: &str, active: usize) {
    metrics::ACTIVE_CALLS
        .with_label_values(&[tenant])
        .set(i64::try_from(active).unwrap_or(i64::MAX));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_stops_at_limit() {
        let ledger = Ledger::default();
        let tenant = TenantId(1);
        let first = ledger.try_reserve(tenant, "ledger-limit", 2);
        let second = ledger.try_reserve(tenant, "ledger-limit", 2);
        assert_eq!(first.map(|(_, n)| n), Some(1));
        assert_eq!(second.map(|(_, n)| n), Some(2));
        assert_eq!(ledger.try_reserve(tenant, "ledger-limit", 2), None);
        assert_eq!(ledger.active(tenant), 2);
    }

    #[test]
    fn remove_frees_slot_and_gauge() {
        let ledger = Ledger::default();
        let tenant = TenantId(2);
        let (id, _) = ledger.try_reserve(tenant, "ledger-remove", 1).unwrap();
        assert!(ledger.remove(tenant, id));
        assert!(!ledger.remove(tenant, id), "second release is a no-op");
        assert_eq!(ledger.active(tenant), 0);
        let gauge = metrics::ACTIVE_CALLS
            .with_label_values(&["ledger-remove"])
            .get();
        assert_eq!(gauge, 0);
        assert!(ledger.try_reserve(tenant, "ledger-remove", 1).is_some());
    }

    #[test]
    fn zero_limit_means_unlimited() {
        let ledger = Ledger::default();
        for _ in 0..1_000 {
            assert!(
                ledger
                    .try_reserve(TenantId(3), "ledger-unlimited", 0)
                    .is_some()
            );
        }
        assert_eq!(ledger.active(TenantId(3)), 1_000);
    }

    #[test]
    fn concurrent_reserve_is_exact() {
        let ledger = std::sync::Arc::new(Ledger::default());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let ledger = ledger.clone();
                std::thread::spawn(move || {
                    (0..100)
                        .filter(|_| ledger.try_reserve(TenantId(4), "ledger-race", 37).is_some())
                        .count()
                })
            })
            .collect();
        let admitted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(admitted, 37);
        assert_eq!(ledger.active(TenantId(4)), 37);
    }
}
