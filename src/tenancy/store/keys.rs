//! Tenant API keys: `vg_<prefix>_<secret>`, stored as the prefix (for lookup) and the
//! SHA-256 of the whole key, so a database leak reveals no usable key.

use chrono::{DateTime, Duration, Utc};
use rand::RngExt;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::tenants::{TenantRow, is_unique_violation, tenant_columns};
use super::{Scope, Store, db_op};
use crate::tenancy::error::TenancyError;
use crate::tenancy::model::{ApiKeyInfo, CreatedApiKey, Tenant, TenantId};

/// Hex characters of the lookup prefix (48 bits, so collisions are rare and retried).
const PREFIX_HEX: usize = 12;
/// Alphanumeric characters of the secret (about 190 bits).
const SECRET_CHARS: usize = 32;
/// `last_used_at` is written at most this often per key.
const LAST_USED_RESOLUTION: Duration = Duration::seconds(60);

/// A request's verified API key.
#[derive(Debug, Clone)]
pub struct AuthenticatedKey {
    /// Database id of the key.
    pub key_id: i64,
    /// The key's tenant.
    pub tenant: Tenant,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: i64,
    tenant_id: i64,
    name: String,
    prefix: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<KeyRow> for ApiKeyInfo {
    fn from(row: KeyRow) -> Self {
        ApiKeyInfo {
            id: row.id,
            tenant_id: TenantId(row.tenant_id),
            name: row.name,
            prefix: row.prefix,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
        }
    }
}

/// The columns of `api_keys` that authentication needs.
#[derive(sqlx::FromRow)]
struct KeySecretRow {
    id: i64,
    tenant_id: i64,
    hash: String,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
}

fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Splits `vg_<prefix>_<secret>` into its stored prefix (`vg_<prefix>`), or `None` when the
/// text does not have the shape of a key.
fn key_prefix(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("vg_")?;
    let (prefix, secret) = rest.split_once('_')?;
    let prefix_ok = prefix.len() == PREFIX_HEX && prefix.bytes().all(|b| b.is_ascii_hexdigit());
    let secret_ok =
        secret.len() == SECRET_CHARS && secret.bytes().all(|b| b.is_ascii_alphanumeric());
    (prefix_ok && secret_ok).then(|| &key[..3 + PREFIX_HEX])
}

fn generate_key() -> String {
    let prefix = hex::encode(rand::random::<[u8; PREFIX_HEX / 2]>());
    let secret: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(SECRET_CHARS)
        .map(char::from)
        .collect();
    format!("vg_{prefix}_{secret}")
}

impl Store {
    /// Creates an API key for the tenant named `tenant`. The returned key is the only copy.
    pub async fn create_key(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<CreatedApiKey, TenancyError> {
        if name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(TenancyError::invalid(
                "name",
                "must be at most 100 characters without control characters",
            ));
        }
        for _ in 0..3 {
            let key = generate_key();
            match self.insert_key(tenant, name, &key).await {
                Ok(info) => {
                    tracing::info!(tenant, prefix = %info.prefix, "API key created");
                    return Ok(CreatedApiKey { info, key });
                }
                Err(err) if is_unique_violation(&err) => continue,
                Err(err) => return Err(err),
            }
        }
        Err(TenancyError::Conflict(
            "could not find an unused key prefix; try again".into(),
        ))
    }

    async fn insert_key(
        &self,
        tenant: &str,
        name: &str,
        key: &str,
    ) -> Result<ApiKeyInfo, TenancyError> {
        let prefix = key_prefix(key).unwrap_or_default();
        let hash = hash_key(key);
        let row: KeyRow = db_op!(self.inner, "create_key", Scope::Admin, tx, |conn| {
            let owner: Option<(i64,)> = sqlx::query_as("SELECT id FROM tenants WHERE name = $1")
                .bind(tenant)
                .fetch_optional(&mut *conn)
                .await?;
            let Some((tenant_id,)) = owner else {
                return Err(TenancyError::not_found("tenant", tenant));
            };
            sqlx::query_as(
                "INSERT INTO api_keys (tenant_id, name, prefix, hash, created_at)
                 VALUES ($1, $2, $3, $4, $5)
                 RETURNING id, tenant_id, name, prefix, created_at, last_used_at, revoked_at",
            )
            .bind(tenant_id)
            .bind(name)
            .bind(prefix)
            .bind(&hash)
            .bind(Utc::now())
            .fetch_one(&mut *conn)
            .await?
        })?;
        Ok(row.into())
    }

    /// Keys of the tenant named `tenant`, newest first, without secrets.
    pub async fn list_keys(&self, tenant: &str) -> Result<Vec<ApiKeyInfo>, TenancyError> {
        let rows: Option<Vec<KeyRow>> =
            db_op!(self.inner, "list_keys", Scope::Admin, conn, |conn| {
                let owner: Option<(i64,)> =
                    sqlx::query_as("SELECT id FROM tenants WHERE name = $1")
                        .bind(tenant)
                        .fetch_optional(&mut *conn)
                        .await?;
                match owner {
                None => None,
                Some((tenant_id,)) => Some(
                    sqlx::query_as(
                        "SELECT id, tenant_id, name, prefix, created_at, last_used_at, revoked_at
                         FROM api_keys WHERE tenant_id = $1 ORDER BY id DESC",
                    )
                    .bind(tenant_id)
                    .fetch_all(&mut *conn)
                    .await?,
                ),
            }
            })?;
        let rows = rows.ok_or_else(|| TenancyError::not_found("tenant", tenant))?;
        Ok(rows.into_iter().map(ApiKeyInfo::from).collect())
    }

    /// Revokes a key given by id or prefix (`vg_1a2b3c4d5e6f`). With `tenant`, the key must
    /// belong to that tenant. Revoking a revoked key keeps its first revocation time.
    pub async fn revoke_key(
        &self,
        tenant: Option<&str>,
        id_or_prefix: &str,
    ) -> Result<ApiKeyInfo, TenancyError> {
        let id: i64 = id_or_prefix.parse().unwrap_or(-1);
        let row: Option<KeyRow> = db_op!(self.inner, "revoke_key", Scope::Admin, tx, |conn| {
            sqlx::query_as(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, $3)
                 WHERE (id = $1 OR prefix = $2)
                   AND ($4 IS NULL OR tenant_id = (SELECT id FROM tenants WHERE name = $4))
                 RETURNING id, tenant_id, name, prefix, created_at, last_used_at, revoked_at",
            )
            .bind(id)
            .bind(id_or_prefix)
            .bind(Utc::now())
            .bind(tenant)
            .fetch_optional(&mut *conn)
            .await?
        })?;
        let info: ApiKeyInfo = row
            .ok_or_else(|| TenancyError::not_found("key", id_or_prefix))?
            .into();
        tracing::info!(prefix = %info.prefix, "API key revoked");
        Ok(info)
    }

    /// Verifies a bearer key: returns its tenant when the key exists, is not revoked and its
    /// hash matches. The comparison takes the same time whatever the secret.
    pub async fn authenticate(&self, key: &str) -> Result<Option<AuthenticatedKey>, TenancyError> {
        let Some(prefix) = key_prefix(key) else {
            return Ok(None);
        };
        let found: Option<(KeySecretRow, TenantRow)> =
            db_op!(self.inner, "authenticate", Scope::Admin, conn, |conn| {
                let key_row: Option<KeySecretRow> = sqlx::query_as(
                    "SELECT id, tenant_id, hash, revoked_at, last_used_at
                     FROM api_keys WHERE prefix = $1",
                )
                .bind(prefix)
                .fetch_optional(&mut *conn)
                .await?;
                match key_row {
                    None => None,
                    Some(key_row) => {
                        let tenant: TenantRow = sqlx::query_as(concat!(
                            "SELECT ",
                            tenant_columns!(t),
                            " FROM tenants t WHERE t.id = $1"
                        ))
                        .bind(key_row.tenant_id)
                        .fetch_one(&mut *conn)
                        .await?;
                        Some((key_row, tenant))
                    }
                }
            })?;
        let Some((key_row, tenant)) = found else {
            return Ok(None);
        };
        let KeySecretRow {
            id: key_id,
            hash: stored_hash,
            revoked_at,
            last_used_at,
            ..
        } = key_row;
        let matches: bool = hash_key(key)
            .as_bytes()
            .ct_eq(stored_hash.as_bytes())
            .into();
        if !matches || revoked_at.is_some() {
            return Ok(None);
        }
        let now = Utc::now();
        if last_used_at.is_none_or(|at| now - at >= LAST_USED_RESOLUTION) {
            self.touch_key(key_id, now).await;
        }
        Ok(Some(AuthenticatedKey {
            key_id,
            tenant: tenant.into_tenant(),
        }))
    }

    async fn touch_key(&self, key_id: i64, now: DateTime<Utc>) {
        let result = db_op!(self.inner, "touch_key", Scope::Admin, conn, |conn| {
            sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
                .bind(key_id)
                .bind(now)
                .execute(&mut *conn)
                .await?;
        });
        if let Err(err) = result {
            tracing::debug!(key_id, error = %err, "last use of API key not recorded");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_lookup_prefix() {
        let key = generate_key();
        let prefix = key_prefix(&key).unwrap();
        assert_eq!(prefix.len(), 15);
        assert!(key.starts_with(prefix));
        assert_eq!(key.len(), 3 + PREFIX_HEX + 1 + SECRET_CHARS);
    }

    #[test]
    fn keys_are_random() {
        assert_ne!(generate_key(), generate_key());
    }

    #[test]
    fn malformed_keys_have_no_prefix() {
        let good = generate_key();
        let bad = [
            "",
            "vg_",
            "vg_abc_def",
            "xx_0123456789ab_0123456789abcdef0123456789abcdef",
            "vg_0123456789ag_0123456789abcdef0123456789abcdef",
            "vg_0123456789ab_0123456789abcdef0123456789abcde!",
            &good[..good.len() - 1],
            &format!("{good}x"),
        ];
        for key in bad {
            assert_eq!(key_prefix(key), None, "{key}");
        }
    }

    #[test]
    fn hash_is_hex_sha256() {
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
