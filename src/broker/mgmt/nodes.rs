//! `/api/nodes[/{name}]`: the one node, with the resource figures and alarms RabbitMQ
//! reports there (`mem_used`, `mem_limit`, `mem_alarm`, `disk_free`, `disk_free_limit`,
//! `disk_free_alarm`).

use super::error::ApiError;
use super::{Api, listing};
use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::Ordering;

fn node_json(api: &Api) -> Value {
    let alarms = &api.broker.alarms;
    let set = alarms.current();
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let processors = std::thread::available_parallelism().map_or(1, |n| n.get());
    json!({
        "name": api.node(),
        "type": "disc",
        "running": true,
        "os_pid": std::process::id().to_string(),
        "uptime": api.broker.started.elapsed().as_millis() as u64,
        "processors": processors,
        "rates_mode": "basic",
        "mem_used": get(&alarms.mem_used),
        "mem_limit": get(&alarms.mem_limit),
        "mem_alarm": set.memory,
        "mem_calculation_strategy": "rss",
        "disk_free": get(&alarms.disk_free),
        "disk_free_limit": get(&alarms.disk_free_limit),
        "disk_free_alarm": alarms.disk_alarm(),
        // rmq's own: why the store stopped making messages durable (null while healthy).
        "storage_failure": alarms.storage_failure(),
        "sockets_used": api.broker.registry.connections().len(),
    })
}

pub(super) async fn nodes(
    State(api): State<Api>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(listing::respond(vec![node_json(&api)], &q)?))
}

pub(super) async fn node(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if name == api.node() {
        Ok(Json(node_json(&api)))
    } else {
        Err(ApiError::not_found())
    }
}
