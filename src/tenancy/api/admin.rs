//! Admin endpoints: tenants, their numbers and their API keys. Require the admin token.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::ApiState;
use super::auth::Admin;
use super::body::parse_json;
use super::problem::Problem;
use crate::tenancy::{ApiKeyInfo, NewTenant, PhoneNumber, Tenant, TenantPatch, TenantView};

/// Body of `POST /tenants/{tenant}/numbers`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewNumber {
    number: String,
    /// Country calling code that completes a national number; empty accepts E.164 only.
    #[serde(default)]
    country: String,
}

/// Body of `POST /tenants/{tenant}/keys`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct NewKey {
    name: String,
}

fn created(location: String, body: impl serde::Serialize) -> Response {
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(value) = location.parse() {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

async fn find_tenant(state: &ApiState, name: &str) -> Result<Tenant, Problem> {
    state
        .store
        .tenant_by_name(name)
        .await?
        .ok_or_else(|| Problem::not_found("tenant", name))
}

pub(super) async fn list_tenants(
    _: Admin,
    State(state): State<ApiState>,
) -> Result<Json<Vec<TenantView>>, Problem> {
    let tenants = state.store.list_tenants().await?;
    Ok(Json(tenants.iter().map(Tenant::view).collect()))
}

pub(super) async fn create_tenant(
    _: Admin,
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let new: NewTenant = parse_json(&headers, &body)?;
    let tenant = state.store.create_tenant(new).await?;
    Ok(created(
        format!("/v1/tenants/{}", tenant.name),
        tenant.view(),
    ))
}

pub(super) async fn get_tenant(
    _: Admin,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<TenantView>, Problem> {
    Ok(Json(find_tenant(&state, &name).await?.view()))
}

pub(super) async fn patch_tenant(
    _: Admin,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<TenantView>, Problem> {
    let patch: TenantPatch = parse_json(&headers, &body)?;
    Ok(Json(state.store.update_tenant(&name, patch).await?.view()))
}

pub(super) async fn list_numbers(
    _: Admin,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<PhoneNumber>>, Problem> {
    let tenant = find_tenant(&state, &name).await?;
    Ok(Json(state.store.list_numbers(Some(tenant.id)).await?))
}

pub(super) async fn add_number(
    _: Admin,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let new: NewNumber = parse_json(&headers, &body)?;
    let number = state
        .store
        .add_number(&name, &new.number, &new.country)
        .await?;
    let location = format!("/v1/tenants/{name}/numbers/{}", number.number);
    Ok(created(location, number))
}

pub(super) async fn remove_number(
    _: Admin,
    State(state): State<ApiState>,
    Path((name, number)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    state.store.remove_number(Some(&name), &number).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn list_keys(
    _: Admin,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<ApiKeyInfo>>, Problem> {
    Ok(Json(state.store.list_keys(&name).await?))
}

pub(super) async fn create_key(
    _: Admin,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let new: NewKey = if body.is_empty() {
        NewKey::default()
    } else {
        parse_json(&headers, &body)?
    };
    let key = state.store.create_key(&name, &new.name).await?;
    Ok(created(
        format!("/v1/tenants/{name}/keys/{}", key.info.id),
        key,
    ))
}

pub(super) async fn revoke_key(
    _: Admin,
    State(state): State<ApiState>,
    Path((name, key)): Path<(String, String)>,
) -> Result<Json<ApiKeyInfo>, Problem> {
    Ok(Json(state.store.revoke_key(Some(&name), &key).await?))
}
