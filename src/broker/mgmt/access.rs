//! `/api/users`, `/api/permissions`, `/api/whoami`, and creating and deleting vhosts:
//! RabbitMQ 3.10's shapes, status codes (201 created, 204 changed or deleted) and
//! error bodies. Changes are saved to the data directory at once.

use super::error::ApiError;
use super::{Api, Caller, body_json, listing};
use crate::broker::access::password::PasswordHash;
use crate::broker::access::records::{self, parse_tags, permission_json, user_json};
use crate::broker::access::{Permission, User};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;

type Params = Query<HashMap<String, String>>;

fn saved(api: &Api, status: StatusCode) -> Result<StatusCode, ApiError> {
    api.broker
        .save_access()
        .map_err(|e| ApiError::new(500, "internal_error", format!("cannot save users: {e}")))?;
    Ok(status)
}

fn created_or_updated(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    }
}

pub(super) async fn whoami(Extension(caller): Extension<Caller>) -> Json<Value> {
    Json(json!({ "name": caller.name, "tags": caller.tags }))
}

pub(super) async fn users(
    State(api): State<Api>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let items = api.broker.auth.users().iter().map(user_json).collect();
    Ok(Json(listing::respond(items, &q)?))
}

pub(super) async fn user(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let u = api
        .broker
        .auth
        .user(&name)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(user_json(&u)))
}

/// Body: `password` or `password_hash` (+ `hashing_algorithm`), and `tags` (a list or a
/// comma-separated string). Without either password field a new user has none (it
/// cannot log in with a password) and an existing one keeps its own.
pub(super) async fn put_user(
    State(api): State<Api>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let body = body_json(&body)?;
    let hash = match records::parse_hash(&body).map_err(ApiError::bad_request)? {
        Some(hash) => hash,
        None => api
            .broker
            .auth
            .user(&name)
            .map_or_else(PasswordHash::none, |u| u.hash),
    };
    let tags = parse_tags(body.get("tags")).map_err(ApiError::bad_request)?;
    let created = api.broker.auth.put_user(User { name, hash, tags });
    saved(&api, created_or_updated(created))
}

pub(super) async fn delete_user(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !api.broker.auth.delete_user(&name) {
        return Err(ApiError::not_found());
    }
    saved(&api, StatusCode::NO_CONTENT)
}

fn permissions_where(api: &Api, keep: impl Fn(&str, &str) -> bool) -> Vec<Value> {
    api.broker
        .auth
        .permissions()
        .iter()
        .filter(|(v, u, _)| keep(v, u))
        .map(|(v, u, p)| permission_json(v, u, p))
        .collect()
}

pub(super) async fn permissions(
    State(api): State<Api>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let items = permissions_where(&api, |_, _| true);
    Ok(Json(listing::respond(items, &q)?))
}

pub(super) async fn user_permissions(
    State(api): State<Api>,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    api.broker
        .auth
        .user(&name)
        .ok_or_else(ApiError::not_found)?;
    let items = permissions_where(&api, |_, u| u == name);
    Ok(Json(listing::respond(items, &q)?))
}

pub(super) async fn vhost_permissions(
    State(api): State<Api>,
    Path(vhost): Path<String>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    api.vhost(&vhost)?;
    let items = permissions_where(&api, |v, _| v == vhost);
    Ok(Json(listing::respond(items, &q)?))
}

pub(super) async fn permission(
    State(api): State<Api>,
    Path((vhost, user)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let p = api
        .broker
        .auth
        .permission(&vhost, &user)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(permission_json(&vhost, &user, &p)))
}

/// Body: `configure`, `write`, `read` (regular expressions).
pub(super) async fn put_permission(
    State(api): State<Api>,
    Path((vhost, user)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let body = body_json(&body)?;
    let field = |k: &str| {
        records::str_field(&body, k)
            .map(str::to_string)
            .map_err(|_| ApiError::bad_request(format!("{k} must be a string")))
    };
    let p = Permission::new(&field("configure")?, &field("write")?, &field("read")?)
        .map_err(ApiError::bad_request)?;
    if api.broker.vhost(&vhost).is_none() || api.broker.auth.user(&user).is_none() {
        return Err(ApiError::bad_request("vhost_or_user_not_found"));
    }
    let created = api.broker.auth.set_permission(&vhost, &user, p);
    saved(&api, created_or_updated(created))
}

pub(super) async fn delete_permission(
    State(api): State<Api>,
    Path((vhost, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if !api.broker.auth.clear_permission(&vhost, &user) {
        return Err(ApiError::not_found());
    }
    saved(&api, StatusCode::NO_CONTENT)
}

/// Creating a vhost grants its creator full permissions there, as RabbitMQ's API does.
pub(super) async fn put_vhost(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    if name.is_empty() {
        return Err(ApiError::bad_request("vhost name must not be empty"));
    }
    let created = api.broker.create_vhost(&name);
    if created {
        api.broker
            .auth
            .set_permission(&name, &caller.name, Permission::full());
    }
    saved(&api, created_or_updated(created))
}

pub(super) async fn delete_vhost(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    if !api.broker.delete_vhost(&name) {
        return Err(ApiError::not_found());
    }
    saved(&api, StatusCode::NO_CONTENT)
}

fn limits_items(api: &Api, only: Option<&str>) -> Vec<Value> {
    api.broker
        .vhost_limits()
        .into_iter()
        .filter(|(v, _)| only.is_none_or(|o| o == v))
        .filter_map(|(v, l)| l.map(|l| json!({ "vhost": v, "value": l })))
        .collect()
}

pub(super) async fn vhost_limits(State(api): State<Api>) -> Json<Value> {
    Json(Value::Array(limits_items(&api, None)))
}

pub(super) async fn vhost_limits_of(
    State(api): State<Api>,
    Path(vhost): Path<String>,
) -> Result<Json<Value>, ApiError> {
    api.vhost(&vhost)?;
    Ok(Json(Value::Array(limits_items(&api, Some(&vhost)))))
}

/// `PUT /api/vhost-limits/{vhost}/{name}` with `{"value": N}`: 204, as RabbitMQ.
pub(super) async fn put_vhost_limit(
    State(api): State<Api>,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let v = api.vhost(&vhost)?;
    let body = body_json(&body)?;
    let value = body
        .get("value")
        .and_then(Value::as_i64)
        .ok_or_else(|| ApiError::bad_request("value must be an integer"))?;
    v.limits.set(&name, value).map_err(ApiError::bad_request)?;
    saved(&api, StatusCode::NO_CONTENT)
}

pub(super) async fn delete_vhost_limit(
    State(api): State<Api>,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let v = api.vhost(&vhost)?;
    v.limits.clear(&name).map_err(ApiError::bad_request)?;
    saved(&api, StatusCode::NO_CONTENT)
}
