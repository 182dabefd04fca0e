//! `/api/bindings`: every binding (including the default exchange's implicit one per
//! queue, as RabbitMQ lists them), per vhost, per queue, per exchange (source or
//! destination), between two objects (`GET`, `POST` creates), and one (`GET`, `DELETE`)
//! by its `properties_key`.

use super::authz::CallerPermit;
use super::error::ApiError;
use super::json::{self, table};
use super::{Api, Caller, body_json, exchange_name, listing};
use crate::broker::model::exchange::Dest;
use crate::broker::model::topology::{BindingSpec, Trusted};
use crate::broker::model::vhost::VHost;
use crate::broker::state::BrokerState;
use amq_protocol::types::FieldTable;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

type Params = Query<HashMap<String, String>>;

/// One binding, flattened.
#[derive(Debug)]
struct Row {
    source: String,
    dest: String,
    /// "queue" or "exchange".
    dest_type: &'static str,
    key: String,
    args: FieldTable,
}

/// rabbit_http_util:quote_plus: keep `[A-Za-z0-9._~-]`, space as `+`, the rest `%XX`.
pub(crate) fn quote_plus(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'~' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// RabbitMQ's `properties_key`: `~` for an empty key without arguments, the quoted key
/// otherwise, plus `~` and a digest of the arguments when there are any (the digest is
/// our own; clients only echo it back).
fn properties_key(key: &str, args: &FieldTable) -> String {
    if args.inner().is_empty() {
        if key.is_empty() {
            "~".into()
        } else {
            quote_plus(key)
        }
    } else {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        crate::broker::store::definitions::encode_args(args).hash(&mut h);
        let digest =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.finish().to_be_bytes());
        format!("{}~{digest}", quote_plus(key))
    }
}

impl Row {
    fn to_json(&self, vhost: &str) -> Value {
        json!({
            "source": self.source,
            "vhost": vhost,
            "destination": self.dest,
            "destination_type": self.dest_type,
            "routing_key": self.key,
            "arguments": table(&self.args),
            "properties_key": properties_key(&self.key, &self.args),
        })
    }
}

/// Every binding of a vhost: the default exchange's first (by queue name), then the
/// others by source exchange in binding order.
fn rows(v: &VHost) -> Vec<Row> {
    let mut queues: Vec<String> = v
        .queues
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .keys()
        .cloned()
        .collect();
    queues.sort();
    let mut out: Vec<Row> = queues
        .into_iter()
        .map(|q| Row {
            source: String::new(),
            dest: q.clone(),
            dest_type: "queue",
            key: q,
            args: FieldTable::default(),
        })
        .collect();
    let mut exchanges: Vec<_> = v
        .exchanges
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect();
    exchanges.sort_by(|a, b| a.name.cmp(&b.name));
    for x in exchanges {
        for b in x.bindings.read().unwrap_or_else(|e| e.into_inner()).iter() {
            let (dest, dest_type) = match &b.dest {
                Dest::Queue(q) => (q.name.clone(), "queue"),
                Dest::Exchange(e) => (e.clone(), "exchange"),
            };
            out.push(Row {
                source: x.name.clone(),
                dest,
                dest_type,
                key: b.routing_key.clone(),
                args: b.arguments.clone(),
            });
        }
    }
    out
}

fn answer(
    api: &Api,
    caller: &Caller,
    vhost: Option<&str>,
    keep: impl Fn(&Row) -> bool,
    q: &HashMap<String, String>,
) -> Result<Json<Value>, ApiError> {
    let mut items = Vec::new();
    for v in api.scope(caller, vhost)? {
        items.extend(
            rows(&v)
                .iter()
                .filter(|r| keep(r))
                .map(|r| r.to_json(&v.name)),
        );
    }
    Ok(Json(listing::respond(items, q)?))
}

pub(super) async fn list_all(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    answer(&api, &caller, None, |_| true, &q)
}

pub(super) async fn list_vhost(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path(vhost): Path<String>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    answer(&api, &caller, Some(&vhost), |_| true, &q)
}

pub(super) async fn of_queue(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    api.vhost(&vhost)?
        .queue(&name)
        .ok_or_else(ApiError::not_found)?;
    answer(
        &api,
        &caller,
        Some(&vhost),
        |r| r.dest_type == "queue" && r.dest == name,
        &q,
    )
}

pub(super) async fn of_source(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let name = exchange_name(&name).to_string();
    api.vhost(&vhost)?
        .exchange(&name)
        .ok_or_else(ApiError::not_found)?;
    // The default exchange's implicit bindings are not listed as its own (RabbitMQ).
    answer(
        &api,
        &caller,
        Some(&vhost),
        |r| !r.source.is_empty() && r.source == name,
        &q,
    )
}

pub(super) async fn of_destination(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let name = exchange_name(&name).to_string();
    api.vhost(&vhost)?
        .exchange(&name)
        .ok_or_else(ApiError::not_found)?;
    answer(
        &api,
        &caller,
        Some(&vhost),
        |r| r.dest_type == "exchange" && r.dest == name,
        &q,
    )
}

/// The destination a `q`/`e` path segment names.
fn dest_type(kind: &str) -> Result<&'static str, ApiError> {
    match kind {
        "q" => Ok("queue"),
        "e" => Ok("exchange"),
        _ => Err(ApiError::not_found()),
    }
}

pub(super) async fn between(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path((vhost, source, kind, dest)): Path<(String, String, String, String)>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let dt = dest_type(&kind)?;
    let source = exchange_name(&source).to_string();
    answer(
        &api,
        &caller,
        Some(&vhost),
        |r| r.source == source && r.dest_type == dt && r.dest == dest,
        &q,
    )
}

pub(super) async fn show(
    State(api): State<Api>,
    Path((vhost, source, kind, dest, props)): Path<(String, String, String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let dt = dest_type(&kind)?;
    let source = exchange_name(&source).to_string();
    let v = api.vhost(&vhost)?;
    rows(&v)
        .iter()
        .find(|r| {
            r.source == source
                && r.dest_type == dt
                && r.dest == dest
                && properties_key(&r.key, &r.args) == props
        })
        .map(|r| Json(r.to_json(&v.name)))
        .ok_or_else(ApiError::not_found)
}

/// A binding named by the API's path and a body's `routing_key` and `arguments`, as the
/// topology service's request; `kind` is `q` or `e`.
fn binding_spec(
    source: &str,
    kind: &str,
    dest: &str,
    key: String,
    arguments: FieldTable,
) -> Result<BindingSpec, ApiError> {
    Ok(BindingSpec {
        source: exchange_name(source).to_string(),
        to_queue: dest_type(kind)? == "queue",
        destination: dest.to_string(),
        key,
        arguments,
        requester: None,
    })
}

/// A body's `routing_key` (default empty) and `arguments`.
fn key_and_arguments(body: &Value) -> Result<(String, FieldTable), ApiError> {
    let key = match body.get("routing_key") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::bad_request("routing_key must be a string")),
    };
    let args = json::to_table(body.get("arguments").unwrap_or(&Value::Null))
        .map_err(|e| ApiError::bad_request(format!("arguments: {e}")))?;
    Ok((key, args))
}

/// `POST /api/bindings/{vhost}/e/{source}/q|e/{dest}` with `{"routing_key","arguments"}`:
/// 201 and a `Location` relative to the request, as RabbitMQ answers.
pub(super) async fn create(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path((vhost, source, kind, dest)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let v = api.vhost(&vhost)?;
    let (key, args) = key_and_arguments(&body_json(&body)?)?;
    let location = location(&dest, &key, &args);
    let spec = binding_spec(&source, &kind, &dest, key, args)?;
    let mut permit = CallerPermit::new(&api, &caller, &vhost);
    permit.run(|p| {
        let plan = v.plan_bind(p, spec)?;
        v.apply_bind(plan);
        Ok(())
    })?;
    Ok((StatusCode::CREATED, [(header::LOCATION, location)]).into_response())
}

/// A new binding's `Location`, relative to the request.
fn location(dest: &str, key: &str, args: &FieldTable) -> String {
    format!(
        "{}/{}",
        quote_plus(dest),
        quote_plus(&properties_key(key, args))
    )
}

/// A binding of a definitions import (an administrator's, unchecked as in RabbitMQ).
pub(super) fn import_binding(
    broker: &BrokerState,
    vhost: &str,
    source: &str,
    kind: &str,
    dest: &str,
    body: &Value,
) -> Result<(), ApiError> {
    let v = broker.vhost(vhost).ok_or_else(ApiError::not_found)?;
    let (key, args) = key_and_arguments(body)?;
    let plan = v.plan_bind(&mut Trusted, binding_spec(source, kind, dest, key, args)?)?;
    v.apply_bind(plan);
    Ok(())
}

/// `DELETE /api/bindings/{vhost}/e/{source}/q|e/{dest}/{props}`.
pub(super) async fn delete(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path((vhost, source, kind, dest, props)): Path<(String, String, String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let v = api.vhost(&vhost)?;
    let dt = dest_type(&kind)?;
    let source_name = exchange_name(&source).to_string();
    let found = rows(&v)
        .into_iter()
        .find(|r| {
            !r.source.is_empty()
                && r.source == source_name
                && r.dest_type == dt
                && r.dest == dest
                && properties_key(&r.key, &r.args) == props
        })
        .ok_or_else(ApiError::not_found)?;
    let spec = binding_spec(&source, &kind, &dest, found.key, found.args)?;
    let mut permit = CallerPermit::new(&api, &caller, &vhost);
    permit.run(|p| v.unbind_checked(p, spec))?;
    Ok(StatusCode::NO_CONTENT)
}

/// A vhost's bindings as a definitions export lists them (the default exchange's
/// implicit ones and those of exclusive queues left out).
pub(super) fn definitions_of(v: &VHost) -> Vec<Value> {
    let exclusive = |name: &str| v.queue(name).is_some_and(|q| q.exclusive_owner.is_some());
    rows(v)
        .into_iter()
        .filter(|r| !(r.source.is_empty() || r.dest_type == "queue" && exclusive(&r.dest)))
        .map(|r| {
            json!({
                "source": r.source,
                "vhost": v.name,
                "destination": r.dest,
                "destination_type": r.dest_type,
                "routing_key": r.key,
                "arguments": table(&r.args),
            })
        })
        .collect()
}
