//! `/api/exchanges`: list (all, per vhost, one), `PUT` declare, `DELETE` (`if-unused`),
//! and `POST .../publish` answering `{"routed": bool}`.

use super::authz::CallerPermit;
use super::error::ApiError;
use super::json::{self, table};
use super::queues::declared_status;
use super::{Api, Caller, body_bool, body_json, exchange_name, listing};
use crate::broker::access::{Access, Resource};
use crate::broker::error::AmqpResult;
use crate::broker::model::exchange::{Exchange, ExchangeKind};
use crate::broker::model::message::Message;
use crate::broker::model::queue::Enqueued;
use crate::broker::model::topology::{Declared, ExchangeDeclare, Permit, Trusted, permit_topic};
use crate::broker::model::vhost::VHost;
use crate::broker::ops::counters::Stat;
use crate::broker::state::BrokerState;
use crate::broker::store::background;
use crate::codec::header::encode_header;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use base64::Engine;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

type Params = Query<HashMap<String, String>>;

/// RabbitMQ refuses changes to the default and `amq.*` exchanges from the API this way.
fn refused() -> ApiError {
    ApiError::new(401, "not_authorised", "Access refused.")
}

/// One exchange as RabbitMQ's API shows it: `policy` only when a (user) policy
/// applies; RabbitMQ shows neither operator policies nor an effective definition here.
pub(crate) fn exchange_json(x: &Exchange, vhost: &str) -> Value {
    let mut v = json!({
        "arguments": table(&x.arguments),
        "auto_delete": x.auto_delete,
        "durable": x.durable,
        "internal": x.internal,
        "name": x.name,
        "type": x.kind.as_str(),
        "vhost": vhost,
    });
    if let Some(name) = x
        .applied_policy()
        .and_then(|a| a.policy_name().map(str::to_string))
        && let Value::Object(m) = &mut v
    {
        m.insert("policy".into(), Value::String(name));
    }
    v
}

fn list(vhosts: Vec<Arc<VHost>>) -> Vec<Value> {
    let mut out = Vec::new();
    for v in vhosts {
        let mut xs: Vec<_> = v
            .exchanges
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        xs.sort_by(|a, b| a.name.cmp(&b.name));
        out.extend(xs.iter().map(|x| exchange_json(x, &v.name)));
    }
    out
}

pub(super) async fn list_all(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(listing::respond(list(api.scope(&caller, None)?), &q)?))
}

pub(super) async fn list_vhost(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path(vhost): Path<String>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(listing::respond(
        list(api.scope(&caller, Some(&vhost))?),
        &q,
    )?))
}

pub(super) async fn show(
    State(api): State<Api>,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let v = api.vhost(&vhost)?;
    let x = v
        .exchange(exchange_name(&name))
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(exchange_json(&x, &v.name)))
}

/// Read a declare's body. RabbitMQ's API refuses the default and `amq.*` exchanges
/// before anything else.
fn exchange_request(name: &str, body: &Value) -> Result<ExchangeDeclare, ApiError> {
    let kind = body
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("type missing"))?;
    if ExchangeKind::parse(kind).is_none() {
        return Err(ApiError::bad_request(format!(
            "unknown exchange type '{kind}'"
        )));
    }
    let req = ExchangeDeclare {
        name: name.to_string(),
        kind: kind.to_string(),
        durable: body_bool(body, "durable", false)?,
        auto_delete: body_bool(body, "auto_delete", false)?,
        internal: body_bool(body, "internal", false)?,
        arguments: json::to_table(body.get("arguments").unwrap_or(&Value::Null))
            .map_err(|e| ApiError::bad_request(format!("arguments: {e}")))?,
    };
    if name == super::DEFAULT_EXCHANGE || name.starts_with("amq.") {
        return Err(refused());
    }
    Ok(req)
}

/// exchange.declare through the topology service.
fn apply(v: &VHost, r: ExchangeDeclare, permit: &mut dyn Permit) -> AmqpResult<Declared<Exchange>> {
    let plan = v.plan_exchange(permit, r)?;
    // A durable exchange's definitions record is disk work.
    background::blocking(|| v.apply_exchange(plan))
}

/// `PUT /api/exchanges/{vhost}/{name}`: declare (201), or check an existing exchange is
/// equivalent (204), as exchange.declare would — the same topology operation, with the
/// caller's permissions.
pub(super) async fn declare(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let v = api
        .broker
        .vhost(&vhost)
        .ok_or_else(ApiError::vhost_not_found)?;
    let req = exchange_request(&name, &body_json(&body)?)?;
    let mut permit = CallerPermit::new(&api, &caller, &vhost);
    let declared = permit.run(|p| apply(&v, req, p))?;
    Ok(declared_status(&declared))
}

/// An exchange of a definitions import (an administrator's, unchecked as in RabbitMQ).
pub(super) fn import_exchange(
    broker: &BrokerState,
    vhost: &str,
    name: String,
    body: &Value,
) -> Result<(), ApiError> {
    let v = broker.vhost(vhost).ok_or_else(ApiError::vhost_not_found)?;
    apply(&v, exchange_request(&name, body)?, &mut Trusted)?;
    Ok(())
}

/// `DELETE /api/exchanges/{vhost}/{name}[?if-unused=true]`.
pub(super) async fn delete(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path((vhost, name)): Path<(String, String)>,
    Query(params): Params,
) -> Result<StatusCode, ApiError> {
    let v = api.vhost(&vhost)?;
    let x = v
        .exchange(exchange_name(&name))
        .ok_or_else(ApiError::not_found)?;
    if x.name.is_empty() || x.name.starts_with("amq.") {
        return Err(refused());
    }
    let if_unused = params.get("if-unused").is_some_and(|s| s == "true");
    let mut permit = CallerPermit::new(&api, &caller, &vhost);
    permit.run(|p| v.delete_exchange_checked(p, &x.name, if_unused))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/exchanges/{vhost}/{name}/publish` with
/// `{"properties","routing_key","payload","payload_encoding":"string"|"base64"}`.
pub(super) async fn publish(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let v = api.vhost(&vhost)?;
    let body = body_json(&body)?;
    // Publishing needs write on the exchange, as basic.publish does.
    let mut permit = CallerPermit::new(&api, &caller, &vhost);
    permit.run(|p| p.check(Access::Write, Resource::Exchange, exchange_name(&name)))?;
    let x = v.exchange(exchange_name(&name)).ok_or_else(|| {
        ApiError::bad_request(format!(
            "404 NOT_FOUND - no exchange '{name}' in vhost '{vhost}'"
        ))
    })?;
    if x.internal {
        return Err(ApiError::bad_request(format!(
            "403 ACCESS_REFUSED - cannot publish to internal exchange '{name}' in vhost '{vhost}'"
        )));
    }
    let routing_key = body
        .get("routing_key")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("routing_key missing"))?
        .to_string();
    // A channel error of RabbitMQ's own publishing channel: 400 with code and text.
    permit_topic(&mut permit, Access::Write, &x, &routing_key)
        .map_err(|e| ApiError::bad_request(format!("{} {}", e.code, e.text)))?;
    let payload = body
        .get("payload")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("payload missing"))?;
    let payload = match body.get("payload_encoding").and_then(Value::as_str) {
        Some("string") | None => payload.as_bytes().to_vec(),
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(payload)
            .map_err(|_| ApiError::bad_request("payload is not valid base64"))?,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Unknown payload_encoding: {other}"
            )));
        }
    };
    let properties = json::to_properties(body.get("properties").unwrap_or(&Value::Null))
        .map_err(ApiError::bad_request)?;
    let ttl = properties
        .expiration()
        .as_ref()
        .and_then(|e| e.as_str().parse::<u64>().ok());
    let msg = Arc::new(Message {
        exchange: x.name.clone(),
        routing_key,
        cc: Vec::new(),
        bcc: Vec::new(),
        header: encode_header(payload.len() as u64, &properties),
        properties,
        body: payload.into(),
    });
    let mut routed = false;
    for q in v.route_message(&x, &msg) {
        if q.publish(msg.clone(), ttl) != Enqueued::Gone {
            routed = true;
        }
    }
    v.counters.exchange.add(Stat::Publish, 1);
    if !routed {
        v.counters.exchange.add(Stat::DropUnroutable, 1);
    }
    Ok(Json(json!({ "routed": routed })))
}
