//! Tenants: creation, changes, lookup and routing by dialled number.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::{Db, Scope, Store, db_op};
use crate::observability::Private;
use crate::tenancy::error::TenancyError;
use crate::tenancy::model::{
    NewTenant, Tenant, TenantId, TenantLimits, TenantPatch, TenantStatus, validate_plan,
    validate_tenant_name,
};
use crate::tenancy::settings::{ProviderKeys, TenantSettings};

/// Columns of [`TenantRow`]; `tenant_columns!(t)` qualifies them for a query whose tenants
/// table is aliased `t`.
macro_rules! tenant_columns {
    () => {
        "id, name, plan, status, max_concurrent_calls, monthly_call_limit, \
         monthly_minute_limit, settings, provider_keys, created_at, updated_at"
    };
    (t) => {
        "t.id, t.name, t.plan, t.status, t.max_concurrent_calls, t.monthly_call_limit, \
         t.monthly_minute_limit, t.settings, t.provider_keys, t.created_at, t.updated_at"
    };
}
pub(super) use tenant_columns;

/// A `tenants` row.
#[derive(sqlx::FromRow)]
pub(super) struct TenantRow {
    id: i64,
    name: String,
    plan: String,
    status: String,
    max_concurrent_calls: i64,
    monthly_call_limit: i64,
    monthly_minute_limit: i64,
    settings: Json<TenantSettings>,
    provider_keys: Json<BTreeMap<String, String>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TenantRow {
    pub(super) fn into_tenant(self) -> Tenant {
        let status = TenantStatus::parse(&self.status).unwrap_or_else(|| {
            // The CHECK constraint allows only the two values; treat anything else as closed.
            tracing::error!(tenant = %self.name, status = %self.status, "unknown tenant status");
            TenantStatus::Suspended
        });
        let limit = |value: i64| u32::try_from(value).unwrap_or(u32::MAX);
        let provider_keys = ProviderKeys::new(self.provider_keys.0).unwrap_or_else(|err| {
            tracing::error!(tenant = %self.name, error = %err, "stored provider keys ignored");
            ProviderKeys::default()
        });
        Tenant {
            id: TenantId(self.id),
            name: self.name,
            plan: self.plan,
            status,
            limits: TenantLimits {
                max_concurrent_calls: limit(self.max_concurrent_calls),
                monthly_calls: limit(self.monthly_call_limit),
                monthly_minutes: limit(self.monthly_minute_limit),
            },
            settings: self.settings.0,
            provider_keys,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

impl Store {
    /// Creates a tenant after checking every field.
    pub async fn create_tenant(&self, new: NewTenant) -> Result<Tenant, TenancyError> {
        validate_tenant_name(&new.name)?;
        validate_plan(&new.plan)?;
        new.settings.validate()?;
        let keys = ProviderKeys::new(new.provider_keys)?;
        let now = Utc::now();
        let result = db_op!(self.inner, "create_tenant", Scope::Admin, conn, |conn| {
            sqlx::query_as::<_, TenantRow>(concat!(
                "INSERT INTO tenants (name, plan, status, max_concurrent_calls, \
                 monthly_call_limit, monthly_minute_limit, settings, provider_keys, created_at, \
                 updated_at) VALUES ($1, $2, 'active', $3, $4, $5, $6, $7, $8, $8) RETURNING ",
                tenant_columns!()
            ))
            .bind(&new.name)
            .bind(&new.plan)
            .bind(i64::from(new.limits.max_concurrent_calls))
            .bind(i64::from(new.limits.monthly_calls))
            .bind(i64::from(new.limits.monthly_minutes))
            .bind(Json(&new.settings))
            .bind(Json(keys.as_map()))
            .bind(now)
            .fetch_one(&mut *conn)
            .await?
        });
        match result {
            Ok(row) => {
                let tenant = row.into_tenant();
                tracing::info!(tenant = %tenant.name, id = %tenant.id, "tenant created");
                Ok(tenant)
            }
            Err(err) if is_unique_violation(&err) => Err(TenancyError::Conflict(format!(
                "tenant `{}` already exists",
                new.name
            ))),
            Err(err) => Err(err),
        }
    }

    /// Applies a change to the tenant named `name`.
    pub async fn update_tenant(
        &self,
        name: &str,
        patch: TenantPatch,
    ) -> Result<Tenant, TenancyError> {
        if let Some(plan) = &patch.plan {
            validate_plan(plan)?;
        }
        let updated = db_op!(self.inner, "update_tenant", Scope::Admin, tx, |conn| {
            // Touching the row first locks it on PostgreSQL (SQLite's BEGIN IMMEDIATE already
            // excludes other writers), so two concurrent patches cannot lose each other.
            sqlx::query("UPDATE tenants SET updated_at = updated_at WHERE name = $1")
                .bind(name)
                .execute(&mut *conn)
                .await?;
            let current: Option<TenantRow> = sqlx::query_as(concat!(
                "SELECT ",
                tenant_columns!(t),
                " FROM tenants t WHERE t.name = $1"
            ))
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
            let Some(current) = current else {
                return Err(TenancyError::not_found("tenant", name));
            };
            let next = apply_patch(current.into_tenant(), &patch)?;
            let row: TenantRow = sqlx::query_as(concat!(
                "UPDATE tenants SET plan = $2, status = $3, max_concurrent_calls = $4, \
                 monthly_call_limit = $5, monthly_minute_limit = $6, settings = $7, \
                 provider_keys = $8, updated_at = $9 WHERE id = $1 RETURNING ",
                tenant_columns!()
            ))
            .bind(next.id.0)
            .bind(&next.plan)
            .bind(next.status.as_str())
            .bind(i64::from(next.limits.max_concurrent_calls))
            .bind(i64::from(next.limits.monthly_calls))
            .bind(i64::from(next.limits.monthly_minutes))
            .bind(Json(&next.settings))
            .bind(Json(next.provider_keys.as_map()))
            .bind(Utc::now())
            .fetch_one(&mut *conn)
            .await?;
            row.into_tenant()
        })?;
        tracing::info!(tenant = %updated.name, status = updated.status.as_str(), "tenant updated");
        Ok(updated)
    }

    /// Sets a tenant's status (the CLI's suspend and resume).
    pub async fn set_tenant_status(
        &self,
        name: &str,
        status: TenantStatus,
    ) -> Result<Tenant, TenancyError> {
        let patch = TenantPatch {
            status: Some(status),
            ..TenantPatch::default()
        };
        self.update_tenant(name, patch).await
    }

    /// Looks a tenant up by name.
    pub async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, TenancyError> {
        let row: Option<TenantRow> =
            db_op!(self.inner, "tenant_by_name", Scope::Admin, conn, |conn| {
                sqlx::query_as(concat!(
                    "SELECT ",
                    tenant_columns!(t),
                    " FROM tenants t WHERE t.name = $1"
                ))
                .bind(name)
                .fetch_optional(&mut *conn)
                .await?
            })?;
        Ok(row.map(TenantRow::into_tenant))
    }

    /// Looks a tenant up by id, within that tenant's scope.
    pub async fn tenant(&self, id: TenantId) -> Result<Option<Tenant>, TenancyError> {
        let row: Option<TenantRow> =
            db_op!(self.inner, "tenant", Scope::Tenant(id), conn, |conn| {
                sqlx::query_as(concat!(
                    "SELECT ",
                    tenant_columns!(t),
                    " FROM tenants t WHERE t.id = $1"
                ))
                .bind(id.0)
                .fetch_optional(&mut *conn)
                .await?
            })?;
        Ok(row.map(TenantRow::into_tenant))
    }

    /// Lists every tenant, ordered by name.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, TenancyError> {
        let rows: Vec<TenantRow> =
            db_op!(self.inner, "list_tenants", Scope::Admin, conn, |conn| {
                sqlx::query_as(concat!(
                    "SELECT ",
                    tenant_columns!(t),
                    " FROM tenants t ORDER BY t.name"
                ))
                .fetch_all(&mut *conn)
                .await?
            })?;
        Ok(rows.into_iter().map(TenantRow::into_tenant).collect())
    }

    /// Finds the tenant that owns `number` (E.164, from [`super::super::resolve_dialled`]).
    /// When no tenant owns it, or there is no number, returns the `[tenancy] default_tenant`
    /// if that is set and exists; otherwise `None`, which the call layer rejects with 404.
    pub async fn route(&self, number: Option<&str>) -> Result<Option<Tenant>, TenancyError> {
        let default = self.inner.tenancy.default_tenant.as_str();
        let row: Option<TenantRow> = match &self.inner.db {
            // One round trip through voicegate_route, which sets the admin scope itself.
            Db::Postgres(pool) => {
                self.inner
                    .timed("route", async {
                        let row = sqlx::query_as(concat!(
                            "SELECT ",
                            tenant_columns!(),
                            " FROM voicegate_route($1, $2)"
                        ))
                        .bind(number)
                        .bind(default)
                        .fetch_optional(pool)
                        .await?;
                        Ok(row)
                    })
                    .await?
            }
            Db::Sqlite(_) => db_op!(self.inner, "route", Scope::Admin, conn, |conn| {
                let mut owner: Option<TenantRow> = None;
                if let Some(number) = number {
                    owner = sqlx::query_as(concat!(
                        "SELECT ",
                        tenant_columns!(t),
                        " FROM phone_numbers p JOIN tenants t ON t.id = p.tenant_id \
                         WHERE p.number = $1"
                    ))
                    .bind(number)
                    .fetch_optional(&mut *conn)
                    .await?;
                }
                if owner.is_none() && !default.is_empty() {
                    owner = sqlx::query_as(concat!(
                        "SELECT ",
                        tenant_columns!(t),
                        " FROM tenants t WHERE t.name = $1"
                    ))
                    .bind(default)
                    .fetch_optional(&mut *conn)
                    .await?;
                }
                owner
            })?,
        };
        let tenant = row.map(TenantRow::into_tenant);
        tracing::debug!(
            number = %Private(number.unwrap_or_default()),
            tenant = tenant.as_ref().map_or("", |t| t.name.as_str()),
            "dialled number routed"
        );
        Ok(tenant)
    }

    /// Creates the `[tenancy] default_tenant` when it is set and missing.
    pub async fn ensure_default_tenant(&self) -> Result<(), TenancyError> {
        let name = self.inner.tenancy.default_tenant.clone();
        if name.is_empty() || self.tenant_by_name(&name).await?.is_some() {
            return Ok(());
        }
        let new = NewTenant {
            name: name.clone(),
            plan: "default".into(),
            ..NewTenant::default()
        };
        match self.create_tenant(new).await {
            // Another node created it at the same moment.
            Ok(_) | Err(TenancyError::Conflict(_)) => Ok(()),
            Err(err) => Err(err),
        }
    }
}

/// Computes the tenant after `patch`, checking every changed field.
fn apply_patch(mut tenant: Tenant, patch: &TenantPatch) -> Result<Tenant, TenancyError> {
    if let Some(plan) = &patch.plan {
        tenant.plan = plan.clone();
    }
    if let Some(status) = patch.status {
        tenant.status = status;
    }
    if let Some(limits) = patch.limits {
        tenant.limits = limits;
    }
    if let Some(settings_patch) = &patch.settings {
        let mut settings = serde_json::to_value(&tenant.settings)
            .map_err(|err| TenancyError::invalid("settings", err.to_string()))?;
        merge_patch(&mut settings, settings_patch);
        tenant.settings = serde_path_to_error::deserialize(settings).map_err(|err| {
            let path = err.path().to_string();
            let field = if path == "." {
                "settings".to_string()
            } else {
                format!("settings.{path}")
            };
            TenancyError::invalid(field, err.into_inner().to_string())
        })?;
        tenant.settings.validate()?;
    }
    if !patch.provider_keys.is_empty() {
        tenant.provider_keys = tenant.provider_keys.patched(&patch.provider_keys)?;
    }
    Ok(tenant)
}

/// Applies a JSON merge patch (RFC 7396 §2): objects merge key by key, `null` removes a key,
/// anything else replaces the target.
fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    let serde_json::Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = serde_json::Value::Object(serde_json::Map::new());
    }
    let Some(object) = target.as_object_mut() else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            object.remove(key);
        } else {
            merge_patch(
                object.entry(key.clone()).or_insert(serde_json::Value::Null),
                value,
            );
        }
    }
}

pub(super) fn is_unique_violation(err: &TenancyError) -> bool {
    matches!(err, TenancyError::Database(sqlx::Error::Database(db)) if db.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tenant() -> Tenant {
        Tenant {
            id: TenantId(1),
            name: "acme".into(),
            plan: "basic".into(),
            status: TenantStatus::Active,
            limits: TenantLimits::default(),
            settings: TenantSettings {
                greeting: Some("Hi".into()),
                voice: Some("en-us".into()),
                ..TenantSettings::default()
            },
            provider_keys: ProviderKeys::default(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut target = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut target, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(target, json!({"a": "z", "c": {"d": "e"}}));
        let mut scalar = json!({"a": 1});
        merge_patch(&mut scalar, &json!(["x"]));
        assert_eq!(scalar, json!(["x"]));
    }

    #[test]
    fn patch_changes_only_named_settings() {
        let patch = TenantPatch {
            settings: Some(json!({"greeting": "Welcome", "voice": null, "record": true})),
            ..TenantPatch::default()
        };
        let next = apply_patch(tenant(), &patch).unwrap();
        assert_eq!(next.settings.greeting.as_deref(), Some("Welcome"));
        assert_eq!(next.settings.voice, None);
        assert_eq!(next.settings.record, Some(true));
        assert_eq!(next.plan, "basic");
    }

    #[test]
    fn patch_names_bad_setting() {
        let patch = TenantPatch {
            settings: Some(json!({"answer_delay_ms": "soon"})),
            ..TenantPatch::default()
        };
        let err = apply_patch(tenant(), &patch).unwrap_err();
        assert!(
            err.to_string().contains("settings.answer_delay_ms"),
            "{err}"
        );
        let unknown = TenantPatch {
            settings: Some(json!({"colour": "red"})),
            ..TenantPatch::default()
        };
        let err = apply_patch(tenant(), &unknown).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
        let not_object = TenantPatch {
            settings: Some(json!("loud")),
            ..TenantPatch::default()
        };
        let err = apply_patch(tenant(), &not_object).unwrap_err();
        assert!(matches!(err, TenancyError::Invalid { ref field, .. } if field == "settings"));
    }

    #[test]
    fn patch_validates_settings() {
        let patch = TenantPatch {
            settings: Some(json!({"stt": ["nope"]})),
            ..TenantPatch::default()
        };
        let err = apply_patch(tenant(), &patch).unwrap_err();
        assert!(err.to_string().contains("settings.stt"), "{err}");
    }
}
