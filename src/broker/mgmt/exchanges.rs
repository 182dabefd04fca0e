//! `/api/exchanges`: list (all, per vhost, one), `PUT` declare, `DELETE` (`if-unused`),
//! and `POST .../publish` answering `{"routed": bool}`.

use super::error::ApiError;
use super::json::{self, table};
use super::{Api, Caller, authz, body_bool, body_json, exchange_name, listing};
use crate::broker::access::Access;
use crate::broker::model::args::assert_args_equivalent;
use crate::broker::model::exchange::{Exchange, ExchangeKind};
use crate::broker::model::message::Message;
use crate::broker::model::queue::Enqueued;
use crate::broker::model::vhost::VHost;
use crate::broker::ops::counters::Stat;
use crate::broker::state::BrokerState;
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
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(listing::respond(list(api.scope(None)?), &q)?))
}

pub(super) async fn list_vhost(
    State(api): State<Api>,
    Path(vhost): Path<String>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(listing::respond(list(api.scope(Some(&vhost))?), &q)?))
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

/// `PUT /api/exchanges/{vhost}/{name}` with `{"type","durable","auto_delete","internal","arguments"}`.
pub(super) async fn declare(
    State(api): State<Api>,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    declare_exchange(&api.broker, vhost, name, &body_json(&body)?)
}

/// Declare an exchange from a JSON object (`type`, `durable`, `auto_delete`, `internal`,
/// `arguments`): the API's PUT and a definitions import.
pub(super) fn declare_exchange(
    broker: &BrokerState,
    vhost: String,
    name: String,
    body: &Value,
) -> Result<StatusCode, ApiError> {
    let v = broker.vhost(&vhost).ok_or_else(ApiError::vhost_not_found)?;
    let kind_name = body
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("type missing"))?;
    let kind = ExchangeKind::parse(kind_name)
        .ok_or_else(|| ApiError::bad_request(format!("unknown exchange type '{kind_name}'")))?;
    let durable = body_bool(body, "durable", false)?;
    let auto_delete = body_bool(body, "auto_delete", false)?;
    let internal = body_bool(body, "internal", false)?;
    let arguments = json::to_table(body.get("arguments").unwrap_or(&Value::Null))
        .map_err(|e| ApiError::bad_request(format!("arguments: {e}")))?;
    if name == super::DEFAULT_EXCHANGE || name.starts_with("amq.") {
        return Err(refused());
    }
    let declared = Arc::new(Exchange::new(
        &name,
        kind,
        durable,
        auto_delete,
        internal,
        arguments.clone(),
    ));
    let (x, created) = crate::broker::store::background::blocking(|| v.declare_exchange(declared))?;
    if created {
        return Ok(StatusCode::CREATED);
    }
    let inequivalent = |arg: &str, received: String, current: String| {
        ApiError::bad_request(format!(
            "inequivalent arg '{arg}' for exchange '{name}' in vhost '{vhost}': received '{received}' but current is '{current}'"
        ))
    };
    if x.kind != kind {
        return Err(inequivalent(
            "type",
            kind_name.into(),
            x.kind.as_str().into(),
        ));
    }
    if x.durable != durable {
        return Err(inequivalent(
            "durable",
            durable.to_string(),
            x.durable.to_string(),
        ));
    }
    if x.auto_delete != auto_delete {
        return Err(inequivalent(
            "auto_delete",
            auto_delete.to_string(),
            x.auto_delete.to_string(),
        ));
    }
    if x.internal != internal {
        return Err(inequivalent(
            "internal",
            internal.to_string(),
            x.internal.to_string(),
        ));
    }
    assert_args_equivalent(
        &arguments,
        &x.arguments,
        &["alternate-exchange"],
        "exchange",
        &name,
        &vhost,
    )?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/exchanges/{vhost}/{name}[?if-unused=true]`.
pub(super) async fn delete(
    State(api): State<Api>,
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
    if params.get("if-unused").is_some_and(|s| s == "true") && x.binding_count() > 0 {
        return Err(ApiError::bad_request(format!(
            "exchange '{name}' in vhost '{vhost}' in use"
        )));
    }
    v.delete_exchange(&x.name);
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
    authz::permit_topic(&api, &caller, &vhost, &x, Access::Write, &routing_key)
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
