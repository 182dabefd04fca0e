//! `/api/connections` (list, one, `DELETE` closes with 320 CONNECTION_FORCED and the
//! `X-Reason` header as the reason), `/api/channels`, `/api/consumers`.

use super::error::ApiError;
use super::json::table;
use super::{Api, Caller, listing};
use crate::broker::amqp::registry::{ChannelEntry, ConnEntry};
use crate::broker::model::queue::Queue;
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

type Params = Query<HashMap<String, String>>;

fn connection_json(c: &ConnEntry, node: &str) -> Value {
    let mut v = json!({
        "auth_mechanism": "PLAIN",
        "channel_max": c.channel_max,
        "channels": c.channels().len(),
        "client_properties": table(&c.client_properties),
        "connected_at": c.connected_at,
        "frame_max": c.frame_max,
        "host": c.local.ip().to_string(),
        "name": c.name,
        "node": node,
        "peer_host": c.peer.ip().to_string(),
        "peer_port": c.peer.port(),
        "port": c.local.port(),
        "protocol": "AMQP 0-9-1",
        "ssl": c.tls,
        "state": c.flow.name(),
        "timeout": c.heartbeat,
        "type": "network",
        "user": c.user,
        "user_who_performed_action": c.user,
        "vhost": c.vhost,
    });
    // RabbitMQ shows a client's `connection_name` property as `user_provided_name`.
    if let Some(name) = c
        .client_properties
        .inner()
        .get("connection_name")
        .and_then(crate::broker::model::args::as_string)
    {
        v["user_provided_name"] = json!(name);
    }
    v
}

fn channel_json(c: &ConnEntry, ch: &ChannelEntry, node: &str) -> Value {
    let (unacked, consumers, global) = {
        let st = ch.shared().lock();
        (st.unacked.len(), st.consumers.len(), st.global_prefetch)
    };
    json!({
        "acks_uncommitted": 0,
        "confirm": ch.confirm(),
        "connection_details": {
            "name": c.name,
            "peer_host": c.peer.ip().to_string(),
            "peer_port": c.peer.port(),
        },
        "consumer_count": consumers,
        "global_prefetch_count": global,
        "messages_unacknowledged": unacked,
        "messages_uncommitted": 0,
        "messages_unconfirmed": 0,
        "name": c.channel_name(ch.shared().id),
        "node": node,
        "number": ch.shared().id,
        "prefetch_count": ch.prefetch(),
        "state": "running",
        "transactional": ch.transactional(),
        "user": c.user,
        "user_who_performed_action": c.user,
        "vhost": c.vhost,
    })
}

pub(super) async fn connections(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let node = api.node();
    let items = api
        .connections(&caller)
        .iter()
        .map(|c| connection_json(c, &node))
        .collect();
    Ok(Json(listing::respond(items, &q)?))
}

fn by_name(api: &Api, caller: &Caller, name: &str) -> Result<Arc<ConnEntry>, ApiError> {
    api.connections(caller)
        .into_iter()
        .find(|c| c.name == name)
        .ok_or_else(ApiError::not_found)
}

pub(super) async fn connection(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(connection_json(
        &*by_name(&api, &caller, &name)?,
        &api.node(),
    )))
}

/// Close a connection as RabbitMQ does: connection.close 320 with the `X-Reason`
/// header's text (default "Closed via management plugin"); 204 at once.
pub(super) async fn close_connection(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let c = by_name(&api, &caller, &name)?;
    let reason = headers
        .get("x-reason")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| "Closed via management plugin".into());
    c.force_close(reason);
    Ok(StatusCode::NO_CONTENT)
}

fn channel_items(api: &Api, conns: &[Arc<ConnEntry>]) -> Vec<Value> {
    let node = api.node();
    conns
        .iter()
        .flat_map(|c| {
            c.channels()
                .iter()
                .map(|ch| channel_json(c, ch, &node))
                .collect::<Vec<_>>()
        })
        .collect()
}

pub(super) async fn channels(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let items = channel_items(&api, &api.connections(&caller));
    Ok(Json(listing::respond(items, &q)?))
}

pub(super) async fn channels_of(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let items = channel_items(&api, &[by_name(&api, &caller, &name)?]);
    Ok(Json(listing::respond(items, &q)?))
}

fn consumers(api: &Api, caller: &Caller, vhost: Option<&str>) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    for v in api.scope(caller, vhost)? {
        let mut queues: Vec<_> = v.queue_list();
        queues.sort_by(|a, b| a.name.cmp(&b.name));
        for q in queues {
            out.extend(queue_consumers(api, &q));
        }
    }
    Ok(out)
}

/// The consumers of one queue as `/api/consumers` items (also a queue's
/// `consumer_details`).
pub(super) fn queue_consumers(api: &Api, q: &Arc<Queue>) -> Vec<Value> {
    let node = api.node();
    let snap = q.snapshot();
    let mut out = Vec::new();
    for (i, c) in snap.consumers.iter().enumerate() {
        let conn = api.broker.registry.get(c.channel.conn.id);
        let (conn_name, peer_host, peer_port, user) = match &conn {
            Some(e) => (
                e.name.clone(),
                e.peer.ip().to_string(),
                e.peer.port(),
                e.user.clone(),
            ),
            None => (String::new(), String::new(), 0, String::new()),
        };
        let active = !snap.single_active || i == 0;
        let arguments = if c.priority != 0 {
            json!({ "x-priority": c.priority })
        } else {
            json!({})
        };
        out.push(json!({
            "arguments": arguments,
            "ack_required": !c.no_ack,
            "active": active,
            "activity_status": match (snap.single_active, active) {
                (false, _) => "up",
                (true, true) => "single_active",
                (true, false) => "waiting",
            },
            "channel_details": {
                "connection_name": conn_name,
                "name": format!("{conn_name} ({})", c.channel.id),
                "node": node,
                "number": c.channel.id,
                "peer_host": peer_host,
                "peer_port": peer_port,
                "user": user,
            },
            "consumer_tag": c.tag.to_string(),
            "exclusive": c.exclusive,
            "prefetch_count": c.credit.prefetch,
            "queue": { "name": q.name, "vhost": q.vhost },
        }));
    }
    out
}

pub(super) async fn consumers_all(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(listing::respond(consumers(&api, &caller, None)?, &q)?))
}

pub(super) async fn consumers_vhost(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path(vhost): Path<String>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(listing::respond(
        consumers(&api, &caller, Some(&vhost))?,
        &q,
    )?))
}
