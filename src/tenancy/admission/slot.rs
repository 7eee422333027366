//! The guard of one admitted call's slot.

use std::sync::Arc;

use crate::tenancy::model::TenantId;
use crate::tenancy::store::StoreInner;

/// One admitted call's place in its tenant's concurrency limit.
///
/// Release it with [`CallSlot::release`] when the call ends, whatever the path (BYE, CANCEL, a
/// failure response, media timeout). As a safety net, dropping the slot (for example when the
/// call task panics) releases it too. The local count and gauge drop at once. On PostgreSQL a
/// spawned task deletes the lease row; outside a tokio runtime the lease expires after
/// `lease_secs` instead, because the heartbeat stops renewing it.
#[derive(Debug)]
pub struct CallSlot {
    inner: Arc<StoreInner>,
    tenant_id: TenantId,
    tenant_name: String,
    slot_id: i64,
    call_id: String,
    released: bool,
}

impl CallSlot {
    pub(crate) fn new(
        inner: Arc<StoreInner>,
        tenant_id: TenantId,
        tenant_name: &str,
        slot_id: i64,
        call_id: &str,
    ) -> CallSlot {
        CallSlot {
            inner,
            tenant_id,
            tenant_name: tenant_name.to_string(),
            slot_id,
            call_id: call_id.to_string(),
            released: false,
        }
    }

    /// Tenant whose limit the slot counts against.
    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }

    /// Name of that tenant.
    pub fn tenant_name(&self) -> &str {
        &self.tenant_name
    }

    /// SIP Call-ID the slot was admitted for.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Releases the slot and waits until the database has dropped its lease.
    pub async fn release(mut self) {
        self.released = true;
        release_slot(&self.inner, self.tenant_id, self.slot_id, &self.call_id).await;
    }
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        tracing::warn!(
            call_id = %self.call_id,
            tenant = %self.tenant_name,
            "call slot dropped without release; releasing it"
        );
        if !self.inner.ledger.remove(self.tenant_id, self.slot_id) || !self.inner.is_postgres() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let inner = self.inner.clone();
        let (tenant, slot) = (self.tenant_id, self.slot_id);
        let call_id = std::mem::take(&mut self.call_id);
        let task = async move { delete_lease(&inner, tenant, slot, &call_id).await };
        self.inner.ledger.releases.spawn_on(task, &runtime);
    }
}

async fn release_slot(inner: &StoreInner, tenant: TenantId, slot: i64, call_id: &str) {
    if !inner.ledger.remove(tenant, slot) {
        return;
    }
    tracing::debug!(call_id, tenant = %tenant, "call slot released");
    if inner.is_postgres() {
        delete_lease(inner, tenant, slot, call_id).await;
    }
}

async fn delete_lease(inner: &StoreInner, tenant: TenantId, lease: i64, call_id: &str) {
    if let Err(err) = super::postgres::release(inner, tenant, lease).await {
        // The lease expires after lease_secs because the heartbeat no longer renews it.
        tracing::warn!(call_id, tenant = %tenant, error = %err, "lease release failed");
    }
}
