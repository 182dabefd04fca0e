//! `/api/policies[/{vhost}[/{name}]]` and `/api/operator-policies[...]`: RabbitMQ
//! 3.10's shapes (`vhost`, `name`, `pattern`, `apply-to`, `definition`, `priority`),
//! status codes (201 created, 204 changed or deleted, 404) and error bodies.
//!
//! Who may do what, as rabbit_mgmt_wm_policy[s] and rabbit_mgmt_wm_operator_polic{y,ies}:
//! the lists are every management user's, for the vhosts they may see; one user policy
//! (read or change) needs `administrator`, or `policymaker` and a permission in its
//! vhost; operator policies are the administrator's. A change is applied to every
//! matching queue and exchange before the answer, and saved with the access records.

use super::error::ApiError;
use super::{Api, Caller, body_json, listing};
use crate::broker::model::policy::{self, Policy, PolicyKind};
use crate::broker::model::vhost::VHost;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

type Params = Query<HashMap<String, String>>;

/// rabbit_mgmt_format:escape_html_tags, which RabbitMQ applies to user policies'
/// validation errors (not to operator policies').
pub(crate) fn escape_html_tags(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn object_refused() -> ApiError {
    ApiError::new(
        401,
        "not_authorised",
        "User not authorised to access object",
    )
}

/// is_authorized_vhost: administrators, and users with a permission in the vhost (a
/// vhost that does not exist is the handler's 404).
fn may_see_vhost(api: &Api, caller: &Caller, vhost: &str) -> Result<(), ApiError> {
    if caller.is("administrator")
        || api.broker.vhost(vhost).is_none()
        || api.broker.auth.permission(vhost, &caller.name).is_some()
    {
        Ok(())
    } else {
        Err(ApiError::new(
            401,
            "not_authorised",
            "User not authorised to access virtual host",
        ))
    }
}

/// The gate of one policy: is_authorized_policies (user policies) or
/// is_authorized_admin (operator policies).
fn may_change(api: &Api, caller: &Caller, kind: PolicyKind, vhost: &str) -> Result<(), ApiError> {
    match kind {
        PolicyKind::Operator => caller.require_admin(),
        PolicyKind::User => {
            let policymaker = caller.is("policymaker") || caller.is("administrator");
            let in_vhost = api.broker.vhost(vhost).is_none()
                || api.broker.auth.permission(vhost, &caller.name).is_some();
            if caller.is("administrator") || (policymaker && in_vhost) {
                Ok(())
            } else {
                Err(object_refused())
            }
        }
    }
}

/// Policies of `kind` in `vhosts`, by priority, then vhost and name (rabbit_mgmt_util
/// sorting on `priority` over the whole record).
fn list(
    kind: PolicyKind,
    vhosts: &[Arc<VHost>],
    q: &HashMap<String, String>,
) -> Result<Value, ApiError> {
    let mut all: Vec<Arc<Policy>> = vhosts
        .iter()
        .flat_map(|v| v.policies.read().list(kind))
        .collect();
    all.sort_by(|a, b| {
        let (x, y) = (
            a.priority.as_f64().unwrap_or(0.0),
            b.priority.as_f64().unwrap_or(0.0),
        );
        x.total_cmp(&y)
            .then_with(|| a.vhost.cmp(&b.vhost))
            .then_with(|| a.name.cmp(&b.name))
    });
    listing::respond(all.iter().map(|p| p.to_json()).collect(), q)
}

async fn list_all(
    kind: PolicyKind,
    api: Api,
    caller: Caller,
    q: HashMap<String, String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(list(kind, &api.vhosts(&caller), &q)?))
}

async fn list_vhost(
    kind: PolicyKind,
    api: Api,
    caller: Caller,
    vhost: String,
    q: HashMap<String, String>,
) -> Result<Json<Value>, ApiError> {
    may_see_vhost(&api, &caller, &vhost)?;
    Ok(Json(list(kind, &[api.vhost(&vhost)?], &q)?))
}

async fn show(
    kind: PolicyKind,
    api: Api,
    caller: Caller,
    (vhost, name): (String, String),
) -> Result<Json<Value>, ApiError> {
    may_change(&api, &caller, kind, &vhost)?;
    let p = api
        .vhost(&vhost)?
        .policies
        .read()
        .get(kind, &name)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(p.to_json()))
}

/// Body: `pattern`, `definition` (both required), `priority` (0), `apply-to` (`all`).
async fn put(
    kind: PolicyKind,
    api: Api,
    caller: Caller,
    (vhost, name): (String, String),
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    may_change(&api, &caller, kind, &vhost)?;
    let v = api
        .broker
        .vhost(&vhost)
        .ok_or_else(ApiError::vhost_not_found)?;
    let body = body_json(&body)?;
    let missing: Vec<String> = ["pattern", "definition"]
        .iter()
        .filter(|k| body.get(**k).is_none())
        .map(|k| format!("{{key_missing,{k}}}"))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::bad_request(format!("[{}]", missing.join(","))));
    }
    let policy = policy::parse(kind, &vhost, &name, &body).map_err(|text| {
        ApiError::bad_request(match kind {
            PolicyKind::User => escape_html_tags(&text),
            PolicyKind::Operator => text,
        })
    })?;
    let created = v.change_policies(|set| set.put(policy));
    saved(
        &api,
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::NO_CONTENT
        },
    )
}

async fn delete(
    kind: PolicyKind,
    api: Api,
    caller: Caller,
    (vhost, name): (String, String),
) -> Result<StatusCode, ApiError> {
    may_change(&api, &caller, kind, &vhost)?;
    let v = api.vhost(&vhost)?;
    if !v.change_policies(|set| set.remove(kind, &name)) {
        return Err(ApiError::not_found());
    }
    saved(&api, StatusCode::NO_CONTENT)
}

/// Policies live with the access records: saved before the change is answered.
fn saved(api: &Api, status: StatusCode) -> Result<StatusCode, ApiError> {
    api.broker
        .save_access()
        .map_err(|e| ApiError::new(500, "internal_error", format!("cannot save policies: {e}")))?;
    Ok(status)
}

// The routes' handlers, one pair of kinds each.

pub(super) async fn policies(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    list_all(PolicyKind::User, api, caller, q).await
}

pub(super) async fn operator_policies(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    list_all(PolicyKind::Operator, api, caller, q).await
}

pub(super) async fn policies_of(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path(vhost): Path<String>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    list_vhost(PolicyKind::User, api, caller, vhost, q).await
}

pub(super) async fn operator_policies_of(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path(vhost): Path<String>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    list_vhost(PolicyKind::Operator, api, caller, vhost, q).await
}

pub(super) async fn policy(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    show(PolicyKind::User, api, caller, id).await
}

pub(super) async fn operator_policy(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    show(PolicyKind::Operator, api, caller, id).await
}

pub(super) async fn put_policy(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    put(PolicyKind::User, api, caller, id, body).await
}

pub(super) async fn put_operator_policy(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    put(PolicyKind::Operator, api, caller, id, body).await
}

pub(super) async fn delete_policy(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    delete(PolicyKind::User, api, caller, id).await
}

pub(super) async fn delete_operator_policy(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    delete(PolicyKind::Operator, api, caller, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_rabbitmq_escapes() {
        assert_eq!(
            escape_html_tags("[{<<\"a\">>,1}] & more"),
            "[{&lt;&lt;\"a\"&gt;&gt;,1}] &amp; more"
        );
    }
}
