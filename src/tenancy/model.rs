//! Tenants, their limits, numbers and API keys, as the rest of voicegate uses them.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::TenancyError;
use super::settings::{ProviderKeys, TenantSettings};

/// Database id of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(pub i64);

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Whether a tenant's calls are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    /// Calls are admitted within the limits.
    Active,
    /// Calls are rejected with 403 and the tenant's API keys stop working.
    Suspended,
}

impl TenantStatus {
    /// The value stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        }
    }

    /// Parses a stored or typed status.
    pub fn parse(text: &str) -> Option<TenantStatus> {
        match text {
            "active" => Some(TenantStatus::Active),
            "suspended" => Some(TenantStatus::Suspended),
            _ => None,
        }
    }
}

/// Call limits of a tenant; 0 means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantLimits {
    /// Calls that may be up at the same time, across all nodes.
    pub max_concurrent_calls: u32,
    /// Calls admitted per calendar month (UTC).
    pub monthly_calls: u32,
    /// Billed minutes per calendar month (UTC); each call is rounded up to a whole minute.
    pub monthly_minutes: u32,
}

/// A tenant with its settings, as loaded for routing and admission.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    /// Database id.
    pub id: TenantId,
    /// Unique name (`acme`), used in the CLI, API paths, logs and metrics.
    pub name: String,
    /// Free-form plan name for billing.
    pub plan: String,
    /// Active or suspended.
    pub status: TenantStatus,
    /// Call limits.
    pub limits: TenantLimits,
    /// How calls are answered.
    pub settings: TenantSettings,
    /// API keys for cloud providers; never serialised.
    pub provider_keys: ProviderKeys,
    /// When the tenant was created.
    pub created_at: DateTime<Utc>,
    /// When the tenant was last changed.
    pub updated_at: DateTime<Utc>,
}

impl Tenant {
    /// Returns the public view of the tenant, without provider keys.
    pub fn view(&self) -> TenantView {
        TenantView {
            id: self.id,
            name: self.name.clone(),
            plan: self.plan.clone(),
            status: self.status,
            limits: self.limits,
            settings: self.settings.clone(),
            provider_keys_set: self.provider_keys.providers(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A tenant as the admin API and CLI show it: provider keys are reduced to the provider names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantView {
    /// Database id.
    pub id: TenantId,
    /// Unique name.
    pub name: String,
    /// Plan name.
    pub plan: String,
    /// Active or suspended.
    pub status: TenantStatus,
    /// Call limits.
    pub limits: TenantLimits,
    /// Call settings.
    pub settings: TenantSettings,
    /// Providers for which the tenant has set an API key.
    pub provider_keys_set: Vec<String>,
    /// When the tenant was created.
    pub created_at: DateTime<Utc>,
    /// When the tenant was last changed.
    pub updated_at: DateTime<Utc>,
}

/// The fields of a new tenant.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewTenant {
    /// Unique name: 1 to 63 lowercase letters, digits, `-` or `_`, starting with a letter.
    pub name: String,
    /// Plan name.
    pub plan: String,
    /// Call limits.
    pub limits: TenantLimits,
    /// Call settings.
    pub settings: TenantSettings,
    /// Provider API keys by provider name.
    pub provider_keys: BTreeMap<String, String>,
}

/// A change to a tenant; fields left out stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantPatch {
    /// New plan name.
    pub plan: Option<String>,
    /// New status.
    pub status: Option<TenantStatus>,
    /// New limits (replacing all three).
    pub limits: Option<TenantLimits>,
    /// A JSON merge patch (RFC 7396) applied to the settings: `null` removes a field.
    pub settings: Option<serde_json::Value>,
    /// Provider keys to set, or to remove with `null`.
    pub provider_keys: BTreeMap<String, Option<String>>,
}

/// Checks a tenant name; see [`NewTenant::name`].
pub fn validate_tenant_name(name: &str) -> Result<(), TenancyError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !first_ok || !rest_ok || name.len() > 63 {
        return Err(TenancyError::invalid(
            "name",
            format!(
                "`{name}` must be 1 to 63 lowercase letters, digits, `-` or `_`, starting with a letter"
            ),
        ));
    }
    Ok(())
}

/// Checks a plan name.
pub fn validate_plan(plan: &str) -> Result<(), TenancyError> {
    if plan.chars().count() > 100 || plan.chars().any(char::is_control) {
        return Err(TenancyError::invalid(
            "plan",
            "must be at most 100 characters without control characters",
        ));
    }
    Ok(())
}

/// A phone number and the tenant that owns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneNumber {
    /// The number in E.164.
    pub number: String,
    /// Owner.
    pub tenant_id: TenantId,
    /// Owner's name.
    pub tenant: String,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

/// An API key as listed: the secret itself is shown only once, when it is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyInfo {
    /// Database id.
    pub id: i64,
    /// Owner.
    pub tenant_id: TenantId,
    /// Label given at creation.
    pub name: String,
    /// The public start of the key (`vg_1a2b3c4d`), enough to recognise it.
    pub prefix: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last authenticated a request (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A newly created API key with its secret, returned once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatedApiKey {
    /// The stored part.
    #[serde(flatten)]
    pub info: ApiKeyInfo,
    /// The whole key, to send as `Authorization: Bearer <key>`; it cannot be shown again.
    pub key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names_checked() {
        for good in ["a", "acme", "corner-bakery", "shop_2", &"a".repeat(63)] {
            assert!(validate_tenant_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Acme",
            "1shop",
            "-x",
            "a b",
            "ä",
            &"a".repeat(64),
            "a/b",
        ] {
            assert!(validate_tenant_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_round_trip() {
        for status in [TenantStatus::Active, TenantStatus::Suspended] {
            assert_eq!(TenantStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(TenantStatus::parse("deleted"), None);
    }

    #[test]
    fn view_hides_provider_keys() {
        let keys = ProviderKeys::new(BTreeMap::from([(
            "openai".to_string(),
            "sk-live-123".to_string(),
        )]))
        .unwrap();
        let tenant = Tenant {
            id: TenantId(1),
            name: "acme".into(),
            plan: String::new(),
            status: TenantStatus::Active,
            limits: TenantLimits::default(),
            settings: TenantSettings::default(),
            provider_keys: keys,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let json = serde_json::to_string(&tenant.view()).unwrap();
        assert!(!json.contains("sk-live-123"), "{json}");
        assert!(
            json.contains("\"provider_keys_set\":[\"openai\"]"),
            "{json}"
        );
    }
}
