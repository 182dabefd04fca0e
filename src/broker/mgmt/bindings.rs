//! `/api/bindings`: every binding (including the default exchange's implicit one per
//! queue, as RabbitMQ lists them), per vhost, per queue, per exchange (source or
//! destination), between two objects (`GET`, `POST` creates), and one (`GET`, `DELETE`)
//! by its `properties_key`.

use super::error::ApiError;
use super::json::{self, table};
use super::{Api, Caller, authz, body_json, exchange_name, listing};
use crate::broker::access::Access;
use crate::broker::error::AmqpError;
use crate::broker::model::exchange::{Binding, Dest};
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
use std::sync::Arc;

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
    vhost: Option<&str>,
    keep: impl Fn(&Row) -> bool,
    q: &HashMap<String, String>,
) -> Result<Json<Value>, ApiError> {
    let mut items = Vec::new();
    for v in api.scope(vhost)? {
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
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    answer(&api, None, |_| true, &q)
}

pub(super) async fn list_vhost(
    State(api): State<Api>,
    Path(vhost): Path<String>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    answer(&api, Some(&vhost), |_| true, &q)
}

pub(super) async fn of_queue(
    State(api): State<Api>,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    api.vhost(&vhost)?
        .queue(&name)
        .ok_or_else(ApiError::not_found)?;
    answer(
        &api,
        Some(&vhost),
        |r| r.dest_type == "queue" && r.dest == name,
        &q,
    )
}

pub(super) async fn of_source(
    State(api): State<Api>,
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
        Some(&vhost),
        |r| !r.source.is_empty() && r.source == name,
        &q,
    )
}

pub(super) async fn of_destination(
    State(api): State<Api>,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let name = exchange_name(&name).to_string();
    api.vhost(&vhost)?
        .exchange(&name)
        .ok_or_else(ApiError::not_found)?;
    answer(
        &api,
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
    Path((vhost, source, kind, dest)): Path<(String, String, String, String)>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let dt = dest_type(&kind)?;
    let source = exchange_name(&source).to_string();
    answer(
        &api,
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

/// Both ends of a binding to create or remove: (source, destination).
fn ends(
    v: &VHost,
    source: &str,
    kind: &str,
    dest: &str,
) -> Result<(Arc<crate::broker::model::exchange::Exchange>, Dest), ApiError> {
    let dt = dest_type(kind)?;
    let d = if dt == "queue" {
        Dest::Queue(v.queue_or_404(dest)?)
    } else {
        v.exchange_or_404(dest)?;
        Dest::Exchange(dest.to_string())
    };
    let source = exchange_name(source);
    if source.is_empty() {
        return Err(
            AmqpError::access_refused("operation not permitted on the default exchange").into(),
        );
    }
    Ok((v.exchange_or_404(source)?, d))
}

/// `POST /api/bindings/{vhost}/e/{source}/q|e/{dest}` with `{"routing_key","arguments"}`:
/// 201 and a `Location` relative to the request, as RabbitMQ answers.
pub(super) async fn create(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path((vhost, source, kind, dest)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = body_json(&body)?;
    if let (Some(v), Some(key)) = (api.broker.vhost(&vhost), body.get("routing_key"))
        && let Some(x) = v.exchange(exchange_name(&source))
    {
        permit_topic_binding(&api, &caller, &vhost, &x, key.as_str().unwrap_or_default())?;
    }
    let location = create_binding(&api.broker, &vhost, &source, &kind, &dest, &body)?;
    Ok((StatusCode::CREATED, [(header::LOCATION, location)]).into_response())
}

/// Bind from a JSON object (`routing_key`, `arguments`), `kind` being `q` or `e`: the
/// API's POST and a definitions import. Returns the binding's `Location`.
pub(super) fn create_binding(
    broker: &BrokerState,
    vhost: &str,
    source: &str,
    kind: &str,
    dest: &str,
    body: &Value,
) -> Result<String, ApiError> {
    let v = broker.vhost(vhost).ok_or_else(ApiError::not_found)?;
    let key = match body.get("routing_key") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::bad_request("routing_key must be a string")),
    };
    let args = json::to_table(body.get("arguments").unwrap_or(&Value::Null))
        .map_err(|e| ApiError::bad_request(format!("arguments: {e}")))?;
    let (x, d) = ends(&v, source, kind, dest)?;
    let location = format!(
        "{}/{}",
        quote_plus(dest),
        quote_plus(&properties_key(&key, &args))
    );
    v.bind(
        &x,
        Binding {
            dest: d,
            routing_key: key,
            arguments: args,
        },
    );
    Ok(location)
}

/// The caller's topic read permission on a binding key; refused as RabbitMQ's API
/// refuses it (401 `Access refused.`).
fn permit_topic_binding(
    api: &Api,
    caller: &Caller,
    vhost: &str,
    x: &crate::broker::model::exchange::Exchange,
    key: &str,
) -> Result<(), ApiError> {
    authz::permit_topic(api, caller, vhost, x, Access::Read, key)
        .map_err(|_| ApiError::new(401, "not_authorised", "Access refused."))
}

/// `DELETE /api/bindings/{vhost}/e/{source}/q|e/{dest}/{props}`.
pub(super) async fn delete(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path((vhost, source, kind, dest, props)): Path<(String, String, String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let v = api.vhost(&vhost)?;
    let (x, d) = ends(&v, &source, &kind, &dest).map_err(|_| ApiError::not_found())?;
    let found = x
        .bindings
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|b| {
            let same_dest = match (&b.dest, &d) {
                (Dest::Queue(a), Dest::Queue(c)) => Arc::ptr_eq(a, c),
                (Dest::Exchange(a), Dest::Exchange(c)) => a == c,
                _ => false,
            };
            same_dest && properties_key(&b.routing_key, &b.arguments) == props
        })
        .map(|b| (b.routing_key.clone(), b.arguments.clone()));
    let Some((key, args)) = found else {
        return Err(ApiError::not_found());
    };
    permit_topic_binding(&api, &caller, &vhost, &x, &key)?;
    if v.unbind(&x, &d, &key, &args) && x.auto_delete && x.binding_count() == 0 {
        v.delete_exchange(&x.name);
    }
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
