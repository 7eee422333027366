//! Phone numbers: assignment to tenants, removal and listing.

use chrono::{DateTime, Utc};

use super::tenants::is_unique_violation;
use super::{Scope, Store, db_op};
use crate::tenancy::error::TenancyError;
use crate::tenancy::model::{PhoneNumber, TenantId};
use crate::tenancy::number::normalize_number;

#[derive(sqlx::FromRow)]
struct NumberRow {
    number: String,
    tenant_id: i64,
    tenant: String,
    created_at: DateTime<Utc>,
}

impl From<NumberRow> for PhoneNumber {
    fn from(row: NumberRow) -> Self {
        PhoneNumber {
            number: row.number,
            tenant_id: TenantId(row.tenant_id),
            tenant: row.tenant,
            created_at: row.created_at,
        }
    }
}

/// Normalises a number typed by an administrator; `country` completes national numbers.
pub fn parse_number(raw: &str, country: &str) -> Result<String, TenancyError> {
    normalize_number(raw, country).ok_or_else(|| {
        let hint = if country.is_empty() {
            "write it in E.164 with + and the country code, or give the country code"
        } else {
            "write it in E.164 with + and the country code"
        };
        TenancyError::invalid("number", format!("`{raw}` is not a phone number; {hint}"))
    })
}

impl Store {
    /// Assigns `raw` (any format [`normalize_number`] accepts, completed with `country`) to the
    /// tenant named `tenant`. Assigning a number the tenant already owns changes nothing;
    /// a number that normalises to one another tenant owns is rejected.
    pub async fn add_number(
        &self,
        tenant: &str,
        raw: &str,
        country: &str,
    ) -> Result<PhoneNumber, TenancyError> {
        let number = parse_number(raw, country)?;
        let result = db_op!(self.inner, "add_number", Scope::Admin, tx, |conn| {
            let owner: Option<(i64,)> = sqlx::query_as("SELECT id FROM tenants WHERE name = $1")
                .bind(tenant)
                .fetch_optional(&mut *conn)
                .await?;
            let Some((tenant_id,)) = owner else {
                return Err(TenancyError::not_found("tenant", tenant));
            };
            let existing: Option<NumberRow> = sqlx::query_as(
                "SELECT p.number, p.tenant_id, t.name AS tenant, p.created_at
                 FROM phone_numbers p JOIN tenants t ON t.id = p.tenant_id WHERE p.number = $1",
            )
            .bind(&number)
            .fetch_optional(&mut *conn)
            .await?;
            match existing {
                Some(row) if row.tenant_id == tenant_id => row,
                Some(row) => {
                    return Err(TenancyError::Conflict(format!(
                        "number {number} already belongs to tenant `{}`",
                        row.tenant
                    )));
                }
                None => {
                    let created_at = Utc::now();
                    sqlx::query(
                        "INSERT INTO phone_numbers (number, tenant_id, created_at)
                         VALUES ($1, $2, $3)",
                    )
                    .bind(&number)
                    .bind(tenant_id)
                    .bind(created_at)
                    .execute(&mut *conn)
                    .await?;
                    NumberRow {
                        number: number.clone(),
                        tenant_id,
                        tenant: tenant.to_string(),
                        created_at,
                    }
                }
            }
        });
        match result {
            Ok(row) => {
                tracing::info!(tenant, number = %row.number, "number assigned");
                Ok(row.into())
            }
            // Two administrators assigned the same number at once; the other one won.
            Err(err) if is_unique_violation(&err) => Err(TenancyError::Conflict(format!(
                "number {number} already belongs to another tenant"
            ))),
            Err(err) => Err(err),
        }
    }

    /// Removes a number. With `tenant`, the number must belong to that tenant, so one tenant's
    /// path cannot remove another's number.
    pub async fn remove_number(
        &self,
        tenant: Option<&str>,
        raw: &str,
    ) -> Result<PhoneNumber, TenancyError> {
        let number = parse_number(raw, "")?;
        let row: NumberRow = db_op!(self.inner, "remove_number", Scope::Admin, tx, |conn| {
            let row: Option<NumberRow> = sqlx::query_as(
                "SELECT p.number, p.tenant_id, t.name AS tenant, p.created_at
                 FROM phone_numbers p JOIN tenants t ON t.id = p.tenant_id WHERE p.number = $1",
            )
            .bind(&number)
            .fetch_optional(&mut *conn)
            .await?;
            let row = match row {
                Some(row) if tenant.is_none_or(|name| name == row.tenant) => row,
                _ => return Err(TenancyError::not_found("number", number.as_str())),
            };
            sqlx::query("DELETE FROM phone_numbers WHERE number = $1")
                .bind(&number)
                .execute(&mut *conn)
                .await?;
            row
        })?;
        tracing::info!(tenant = %row.tenant, number = %row.number, "number removed");
        Ok(row.into())
    }

    /// Numbers of one tenant, or of all tenants when `tenant` is `None`.
    pub async fn list_numbers(
        &self,
        tenant: Option<TenantId>,
    ) -> Result<Vec<PhoneNumber>, TenancyError> {
        let scope = tenant.map_or(Scope::Admin, Scope::Tenant);
        let rows: Vec<NumberRow> = db_op!(self.inner, "list_numbers", scope, conn, |conn| {
            sqlx::query_as(
                "SELECT p.number, p.tenant_id, t.name AS tenant, p.created_at
                 FROM phone_numbers p JOIN tenants t ON t.id = p.tenant_id
                 WHERE $1 IS NULL OR p.tenant_id = $1
                 ORDER BY p.number",
            )
            .bind(tenant.map(|id| id.0))
            .fetch_all(&mut *conn)
            .await?
        })?;
        Ok(rows.into_iter().map(PhoneNumber::from).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_number_names_field() {
        let err = parse_number("reception", "1").unwrap_err();
        assert!(err.to_string().starts_with("invalid number:"), "{err}");
        assert!(err.to_string().contains("reception"), "{err}");
    }

    #[test]
    fn parse_number_uses_country() {
        assert_eq!(parse_number("2025550100", "1").unwrap(), "+12025550100");
        assert_eq!(
            parse_number("+44 20 7946 0000", "").unwrap(),
            "+442079460000"
        );
    }
}
