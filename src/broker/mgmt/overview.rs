//! `/api/overview`, `/api/vhosts[/{vhost}]`.

use super::error::ApiError;
use super::stats::{broker_totals, message_stats, vhost_totals};
use super::{Api, Caller, listing};
use crate::broker::model::vhost::VHost;
use crate::broker::ops::counters::ALL;
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;

type Params = Query<HashMap<String, String>>;

/// The management API level `rmq serve` answers like (tools feature-detect on it).
pub(crate) const COMPATIBLE_VERSION: &str = "3.10.8";

/// (ready, unacked, consumers, queues) summed over `v`'s queues.
fn queue_sums(v: &VHost) -> (u64, u64, u64, u64) {
    let queues: Vec<_> = v.queue_list();
    let mut s = (0, 0, 0, queues.len() as u64);
    for q in queues {
        let snap = q.snapshot();
        s.0 += snap.ready;
        s.1 += snap.unacked;
        s.2 += snap.consumers.len() as u64;
    }
    s
}

pub(super) async fn overview(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
) -> Json<Value> {
    let node = api.node();
    let (mut ready, mut unacked, mut consumers, mut queues, mut exchanges) = (0, 0, 0, 0, 0);
    for v in api.vhosts(&caller) {
        let s = queue_sums(&v);
        ready += s.0;
        unacked += s.1;
        consumers += s.2;
        queues += s.3;
        exchanges += v.exchanges.read().unwrap_or_else(|e| e.into_inner()).len();
    }
    let conns = api.broker.registry.connections();
    let channels: usize = conns.iter().map(|c| c.channels().len()).sum();
    let totals = broker_totals(&api.broker);
    Json(json!({
        "management_version": COMPATIBLE_VERSION,
        "rates_mode": "basic",
        "product_name": "rmq",
        "product_version": env!("CARGO_PKG_VERSION"),
        "rabbitmq_version": COMPATIBLE_VERSION,
        "cluster_name": node,
        "node": node,
        "uptime": api.broker.started.elapsed().as_millis() as u64,
        "exchange_types": [
            {"name": "direct", "description": "AMQP direct exchange, as per the AMQP specification", "enabled": true},
            {"name": "fanout", "description": "AMQP fanout exchange, as per the AMQP specification", "enabled": true},
            {"name": "headers", "description": "AMQP headers exchange, as per the AMQP specification", "enabled": true},
            {"name": "topic", "description": "AMQP topic exchange, as per the AMQP specification", "enabled": true},
        ],
        "message_stats": message_stats(&totals, &api.broker.counters, &ALL),
        "queue_totals": {
            "messages": ready + unacked,
            "messages_ready": ready,
            "messages_unacknowledged": unacked,
        },
        "object_totals": {
            "channels": channels,
            "connections": conns.len(),
            "consumers": consumers,
            "exchanges": exchanges,
            "queues": queues,
        },
        "statistics_db_event_queue": 0,
        // Static settings RabbitMQ reports; tools read them to decide what to show.
        "disable_stats": false,
        "enable_queue_totals": false,
        "release_series_support_status": "supported",
        "sample_retention_policies": {
            "global": [600, 3600, 28800, 86400],
            "basic": [600, 3600],
            "detailed": [600],
        },
        "contexts": [{
            "node": node,
            "description": "RabbitMQ Management",
            "path": "/",
            "cowboy_opts": "[]",
            "ip": api.http_addr.ip().to_string(),
            "port": api.http_addr.port().to_string(),
            "ssl_opts": [],
        }],
        "listeners": listeners(&api, &node),
    }))
}

/// RabbitMQ's listener list: `amqp`, `amqp/ssl` when TLS is on, and the API itself.
fn listeners(api: &Api, node: &str) -> Value {
    let entry = |protocol: &str, addr: SocketAddr| json!({"node": node, "protocol": protocol, "ip_address": addr.ip().to_string(), "port": addr.port(), "socket_opts": socket_opts()});
    let mut list = vec![entry("amqp", api.amqp.amqp)];
    if let Some(addr) = api.amqp.amqps {
        list.push(entry("amqp/ssl", addr));
    }
    list.push(entry(
        if api.https { "https" } else { "http" },
        api.http_addr,
    ));
    Value::Array(list)
}

/// The listener socket options, in RabbitMQ's shape (what rmq's sockets use).
fn socket_opts() -> Value {
    json!({ "backlog": 1024, "nodelay": true, "linger": [true, 0], "exit_on_close": false })
}

fn vhost_json(api: &Api, v: &VHost) -> Value {
    let (ready, unacked, _, _) = queue_sums(v);
    let node = api.node();
    json!({
        "cluster_state": { node: "running" },
        "default_queue_type": "undefined",
        "description": "",
        "message_stats": message_stats(&vhost_totals(v), &v.counters.sampled, &ALL),
        "messages": ready + unacked,
        "messages_ready": ready,
        "messages_unacknowledged": unacked,
        "metadata": { "description": "", "tags": [] },
        "name": v.name,
        "tags": [],
        "tracing": false,
    })
}

pub(super) async fn vhosts(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let items = api
        .vhosts(&caller)
        .iter()
        .map(|v| vhost_json(&api, v))
        .collect();
    Ok(Json(listing::respond(items, &q)?))
}

pub(super) async fn vhost(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(vhost_json(&api, &*api.vhost(&name)?)))
}
