//! `/api/queues`: list (all, per vhost, one), `PUT` declare, `DELETE` (`if-empty`,
//! `if-unused`), `DELETE .../contents` (purge) and `POST .../get`.

use super::authz::{CallerPermit, access_refused};
use super::error::ApiError;
use super::json::{self, table};
use super::stats::{QUEUE_STATS, message_stats};
use super::{Api, Caller, body_bool, body_json, listing};
use crate::broker::access::{Access, Resource};
use crate::broker::model::args::as_string;
use crate::broker::model::queue::Queue;
use crate::broker::model::topology::{Declared, QueueDeclare, Trusted};
use crate::broker::model::vhost::{VHost, notify_cancelled};
use crate::broker::state::BrokerState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use base64::Engine;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

type Params = Query<HashMap<String, String>>;

/// `x-queue-type`, else `classic`.
fn queue_type(q: &Queue) -> String {
    q.arguments
        .table()
        .inner()
        .get("x-queue-type")
        .and_then(as_string)
        .unwrap_or_else(|| "classic".into())
}

/// One queue as RabbitMQ's management API shows it; `stats: false` leaves out
/// `message_stats` (the costliest part) when the request's `columns` do not ask for it.
pub(crate) fn queue_json(q: &Arc<Queue>, node: &str, stats: bool) -> Value {
    let snap = q.snapshot();
    let exclusive_tag = snap
        .consumers
        .iter()
        .find(|c| c.exclusive)
        .map(|c| c.tag.to_string());
    let sac_tag = if snap.single_active {
        snap.consumers.first().map(|c| c.tag.to_string())
    } else {
        None
    };
    let own = &q.counters.own;
    let applied = snap.applied.as_deref();
    let mut v = json!({
        "arguments": table(&q.arguments.table()),
        "auto_delete": q.auto_delete,
        "consumers": snap.consumers.len(),
        "durable": q.durable,
        "effective_policy_definition": applied.map_or_else(Default::default, |a| a.definition.clone()),
        "exclusive": q.exclusive_owner.is_some(),
        "exclusive_consumer_tag": exclusive_tag,
        "message_bytes": snap.ready_bytes + snap.unacked_bytes,
        "message_bytes_ready": snap.ready_bytes,
        "message_bytes_unacknowledged": snap.unacked_bytes,
        "messages": snap.ready + snap.unacked,
        "messages_ready": snap.ready,
        "messages_unacknowledged": snap.unacked,
        "name": q.name,
        "node": node,
        "operator_policy": applied.and_then(|a| a.operator_name()),
        "policy": applied.and_then(|a| a.policy_name()),
        "single_active_consumer_tag": sac_tag,
        "state": "running",
        "type": queue_type(q),
        "vhost": q.vhost,
    });
    if stats && let Value::Object(m) = &mut v {
        m.insert(
            "message_stats".into(),
            message_stats(&own.totals(), own, &QUEUE_STATS),
        );
    }
    v
}

/// Every queue of `vhosts`, by vhost then name (RabbitMQ's order).
fn list(api: &Api, vhosts: Vec<Arc<VHost>>, q: &HashMap<String, String>) -> Vec<Value> {
    let node = api.node();
    let stats = listing::wants(q, "message_stats");
    let mut out = Vec::new();
    for v in vhosts {
        let mut queues: Vec<_> = v.queue_list();
        queues.sort_by(|a, b| a.name.cmp(&b.name));
        out.extend(queues.iter().map(|q| queue_json(q, &node, stats)));
    }
    out
}

pub(super) async fn list_all(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let items = list(&api, api.scope(&caller, None)?, &q);
    Ok(Json(listing::respond(items, &q)?))
}

pub(super) async fn list_vhost(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path(vhost): Path<String>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let items = list(&api, api.scope(&caller, Some(&vhost))?, &q);
    Ok(Json(listing::respond(items, &q)?))
}

fn find(api: &Api, vhost: &str, name: &str) -> Result<(Arc<VHost>, Arc<Queue>), ApiError> {
    let v = api.vhost(vhost)?;
    let q = v.queue(name).ok_or_else(ApiError::not_found)?;
    Ok((v, q))
}

pub(super) async fn show(
    State(api): State<Api>,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (_, q) = find(&api, &vhost, &name)?;
    let mut v = queue_json(&q, &api.node(), true);
    // Only the one-queue view carries its consumers, as in RabbitMQ.
    if let Value::Object(m) = &mut v {
        m.insert(
            "consumer_details".into(),
            Value::Array(super::conns::queue_consumers(&api, &q)),
        );
    }
    Ok(Json(v))
}

/// A declare's JSON body (`durable`, `auto_delete`, `arguments`) as the topology
/// service's request. RabbitMQ's API refuses `amq.*` names before anything else.
fn queue_request(name: String, body: &Value) -> Result<QueueDeclare, ApiError> {
    let durable = body_bool(body, "durable", false)?;
    let auto_delete = body_bool(body, "auto_delete", false)?;
    let arguments = json::to_table(body.get("arguments").unwrap_or(&Value::Null))
        .map_err(|e| ApiError::bad_request(format!("arguments: {e}")))?;
    if name.starts_with("amq.") {
        return Err(access_refused());
    }
    Ok(QueueDeclare {
        name,
        server_named: false,
        durable,
        exclusive: false,
        auto_delete,
        arguments,
        requester: None,
    })
}

/// 201 for a new object, 204 for an equivalent existing one.
pub(super) fn declared_status<T>(d: &Declared<T>) -> StatusCode {
    if d.created {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    }
}

/// `PUT /api/queues/{vhost}/{name}`: declare (201), or check an existing queue is
/// equivalent (204), as queue.declare would — the same topology operation, with the
/// caller's permissions; nothing changes on error.
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
    let req = queue_request(name, &body_json(&body)?)?;
    let mut permit = CallerPermit::new(&api, &caller, &vhost);
    let declared = permit.run(|p| v.apply_queue(v.plan_queue(p, req)?))?;
    Ok(declared_status(&declared))
}

/// A queue of a definitions import (an administrator's, unchecked as in RabbitMQ).
pub(super) fn import_queue(
    broker: &BrokerState,
    vhost: &str,
    name: String,
    body: &Value,
) -> Result<(), ApiError> {
    let v = broker.vhost(vhost).ok_or_else(ApiError::vhost_not_found)?;
    let req = queue_request(name, body)?;
    v.apply_queue(v.plan_queue(&mut Trusted, req)?)?;
    Ok(())
}

/// `DELETE /api/queues/{vhost}/{name}[?if-empty=true&if-unused=true]`.
pub(super) async fn delete(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path((vhost, name)): Path<(String, String)>,
    Query(params): Params,
) -> Result<StatusCode, ApiError> {
    let (v, _) = find(&api, &vhost, &name)?;
    let flag = |k: &str| params.get(k).is_some_and(|s| s == "true");
    let mut permit = CallerPermit::new(&api, &caller, &vhost);
    let q = permit
        .run(|p| v.plan_queue_delete(p, &name, None, flag("if-unused"), flag("if-empty")))?
        .ok_or_else(ApiError::not_found)?;
    let (_, consumers) = v.apply_queue_delete(&q);
    notify_cancelled(consumers);
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/queues/{vhost}/{name}/contents`: queue.purge.
pub(super) async fn purge(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (v, _) = find(&api, &vhost, &name)?;
    let mut permit = CallerPermit::new(&api, &caller, &vhost);
    permit.run(|p| v.purge(p, &name, None))?;
    Ok(StatusCode::NO_CONTENT)
}

/// What `POST .../get` does with the messages it took.
#[derive(Debug, Clone, Copy, PartialEq)]
enum AckMode {
    /// Put them back (redelivered).
    Requeue,
    /// Take them for good.
    Consume,
    /// Reject without requeue: dead-lettered when the queue says so.
    Reject,
}

/// `POST /api/queues/{vhost}/{name}/get` with `{"count","ackmode","encoding","truncate"}`.
pub(super) async fn get_messages(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (_, q) = find(&api, &vhost, &name)?;
    // Taking messages is basic.get's read.
    CallerPermit::new(&api, &caller, &vhost)
        .run(|p| p.check(Access::Read, Resource::Queue, &name))?;
    let body = body_json(&body)?;
    let count = body
        .get("count")
        .and_then(|c| c.as_u64().or_else(|| c.as_str()?.parse().ok()))
        .ok_or_else(|| ApiError::bad_request("count missing"))?;
    let mode = match body.get("ackmode").and_then(Value::as_str) {
        Some("ack_requeue_true" | "reject_requeue_true") => AckMode::Requeue,
        Some("ack_requeue_false") => AckMode::Consume,
        Some("reject_requeue_false") => AckMode::Reject,
        Some(other) => return Err(ApiError::bad_request(format!("Unknown ackmode: {other}"))),
        None => return Err(ApiError::bad_request("ackmode missing")),
    };
    let base64_only = match body.get("encoding").and_then(Value::as_str) {
        Some("auto") | None => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!("Unknown encoding: {other}")));
        }
    };
    let truncate = body
        .get("truncate")
        .and_then(|t| t.as_u64().or_else(|| t.as_str()?.parse().ok()));
    let mut taken = Vec::new();
    let mut out = Vec::new();
    for _ in 0..count {
        let Some((entry, left)) = q.get(mode != AckMode::Consume) else {
            break;
        };
        let Some(msg) = entry.msg.clone() else { break };
        let mut body = &msg.body[..];
        if let Some(t) = truncate {
            body = &body[..body.len().min(t as usize)];
        }
        let (payload, encoding) = match std::str::from_utf8(body) {
            Ok(s) if !base64_only => (s.to_string(), "string"),
            _ => (
                base64::engine::general_purpose::STANDARD.encode(body),
                "base64",
            ),
        };
        out.push(json!({
            "payload_bytes": msg.body.len(),
            "redelivered": entry.redelivered,
            "exchange": msg.exchange,
            "routing_key": msg.routing_key,
            "message_count": left,
            "properties": json::properties(&msg.properties),
            "payload": payload,
            "payload_encoding": encoding,
        }));
        taken.push(entry);
    }
    // Settled only after all were taken, so a requeued message is not fetched twice.
    match mode {
        AckMode::Requeue => q.requeue(taken),
        AckMode::Reject => q.reject(taken),
        AckMode::Consume => {}
    }
    Ok(Json(Value::Array(out)))
}
