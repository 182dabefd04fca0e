//! `/api/topic-permissions[/{vhost}/{user}[/{exchange}]]`, `/api/users/{user}/topic-
//! permissions`, `/api/vhosts/{vhost}/topic-permissions` (administrators only): RabbitMQ
//! 3.10's shapes (`user`, `vhost`, `exchange`, `write`, `read`), codes and errors
//! (rabbit_mgmt_wm_topic_permission[s]). A user "has" topic permissions in a vhost when
//! it has one on any exchange there: that decides 201 or 204 on PUT and 404 on GET and
//! DELETE, as in RabbitMQ.

use super::error::ApiError;
use super::{Api, body_json, listing};
use crate::broker::access::topic::TopicPermission;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;

type Params = Query<HashMap<String, String>>;

fn item(vhost: &str, user: &str, exchange: &str, p: &TopicPermission) -> Value {
    json!({"user": user, "vhost": vhost, "exchange": exchange, "write": p.write, "read": p.read})
}

/// Every topic permission kept by `keep(vhost, user)`, by vhost, user and exchange.
fn items(api: &Api, keep: impl Fn(&str, &str) -> bool) -> Vec<Value> {
    api.broker
        .auth
        .topic_permissions()
        .iter()
        .filter(|(v, u, _, _)| keep(v, u))
        .map(|(v, u, x, p)| item(v, u, x, p))
        .collect()
}

pub(super) async fn list(
    State(api): State<Api>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(listing::respond(items(&api, |_, _| true), &q)?))
}

pub(super) async fn of_user(
    State(api): State<Api>,
    Path(user): Path<String>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    api.broker
        .auth
        .user(&user)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(listing::respond(items(&api, |_, u| u == user), &q)?))
}

pub(super) async fn of_vhost(
    State(api): State<Api>,
    Path(vhost): Path<String>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    api.vhost(&vhost)?;
    Ok(Json(listing::respond(items(&api, |v, _| v == vhost), &q)?))
}

/// The user's topic permissions in the vhost; 404 when the user or vhost does not
/// exist or it has none there.
fn of_user_in(api: &Api, vhost: &str, user: &str) -> Result<Vec<Value>, ApiError> {
    api.vhost(vhost)?;
    api.broker.auth.user(user).ok_or_else(ApiError::not_found)?;
    let found = items(api, |v, u| v == vhost && u == user);
    if found.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(found)
}

pub(super) async fn show(
    State(api): State<Api>,
    Path((vhost, user)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(Value::Array(of_user_in(&api, &vhost, &user)?)))
}

/// `GET .../{exchange}` answers what `GET /{vhost}/{user}` does, as RabbitMQ.
pub(super) async fn show_exchange(
    State(api): State<Api>,
    Path((vhost, user, _exchange)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(Value::Array(of_user_in(&api, &vhost, &user)?)))
}

/// Body: `exchange`, `write`, `read` (all required; the patterns must compile).
pub(super) async fn put(
    State(api): State<Api>,
    Path((vhost, user)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    if api.broker.vhost(&vhost).is_none() || api.broker.auth.user(&user).is_none() {
        return Err(ApiError::bad_request("vhost_or_user_not_found"));
    }
    let body = body_json(&body)?;
    let missing: Vec<String> = ["exchange", "write", "read"]
        .iter()
        .filter(|k| body.get(**k).is_none())
        .map(|k| format!("{{key_missing,{k}}}"))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::bad_request(format!("[{}]", missing.join(","))));
    }
    let field = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad_request(format!("{k} must be a string")))
    };
    let (exchange, write, read) = (field("exchange")?, field("write")?, field("read")?);
    let p = TopicPermission::new(write, read).map_err(|(pattern, e)| {
        // RabbitMQ's answer is its thrown tuple as JSON, PCRE's text as a char list:
        // {"reason": ["invalid_regexp", "(", [[109, 105, ...], 1]]}.
        let chars: Vec<Value> = e.message.bytes().map(Value::from).collect();
        ApiError::bad_request_json(json!(["invalid_regexp", pattern, [chars, e.offset]]))
    })?;
    let created = api
        .broker
        .auth
        .set_topic_permission(&vhost, &user, exchange, p);
    saved(
        &api,
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::NO_CONTENT
        },
    )
}

pub(super) async fn delete(
    State(api): State<Api>,
    Path((vhost, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if !api.broker.auth.clear_topic_permissions(&vhost, &user, None) {
        return Err(ApiError::not_found());
    }
    saved(&api, StatusCode::NO_CONTENT)
}

pub(super) async fn delete_exchange(
    State(api): State<Api>,
    Path((vhost, user, exchange)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    if !api
        .broker
        .auth
        .clear_topic_permissions(&vhost, &user, Some(&exchange))
    {
        return Err(ApiError::not_found());
    }
    saved(&api, StatusCode::NO_CONTENT)
}

fn saved(api: &Api, status: StatusCode) -> Result<StatusCode, ApiError> {
    api.broker.save_access().map_err(|e| {
        ApiError::new(
            500,
            "internal_error",
            format!("cannot save topic permissions: {e}"),
        )
    })?;
    Ok(status)
}
