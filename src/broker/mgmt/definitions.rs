//! `/api/definitions`: export and import in RabbitMQ's definitions format, and the
//! same import for `rmq serve --definitions FILE` at start-up. A RabbitMQ export seeds
//! an `rmq serve` (and the other way round): users, vhosts, permissions, topic
//! permissions, policies,
//! operator policies (`operator_policy` parameters) and vhost limits, then exchanges,
//! queues and bindings, in RabbitMQ's order, so the queues are declared under their
//! policies.

use super::Api;
use super::bindings::{self, import_binding};
use super::error::ApiError;
use super::exchanges::import_exchange;
use super::json::table;
use super::overview::COMPATIBLE_VERSION;
use super::policies::escape_html_tags;
use super::queues::import_queue;
use crate::broker::access::records;
use crate::broker::state::BrokerState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

pub(super) async fn export(State(api): State<Api>) -> Json<Value> {
    let b = &api.broker;
    let mut doc = b.access_doc();
    let (mut queues, mut exchanges, mut bindings) = (Vec::new(), Vec::new(), Vec::new());
    for v in api.all_vhosts() {
        let mut qs = v.queue_list();
        qs.retain(|q| q.exclusive_owner.is_none());
        qs.sort_by(|a, b| a.name.cmp(&b.name));
        queues.extend(qs.iter().map(|q| {
            json!({
                "name": q.name, "vhost": v.name, "durable": q.durable,
                "auto_delete": q.auto_delete, "arguments": table(&q.arguments.table()),
            })
        }));
        let mut xs: Vec<_> = v
            .exchanges
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|x| !x.name.is_empty() && !x.name.starts_with("amq."))
            .cloned()
            .collect();
        xs.sort_by(|a, b| a.name.cmp(&b.name));
        exchanges.extend(xs.iter().map(|x| {
            json!({
                "name": x.name, "vhost": v.name, "type": x.kind.as_str(),
                "durable": x.durable, "auto_delete": x.auto_delete,
                "internal": x.internal, "arguments": table(&x.arguments),
            })
        }));
        bindings.extend(bindings::definitions_of(&v));
    }
    if let Value::Object(m) = &mut doc {
        let version = json!(COMPATIBLE_VERSION);
        m.insert("rabbit_version".into(), version.clone());
        m.insert("rabbitmq_version".into(), version);
        m.insert("product_name".into(), json!("rmq"));
        m.insert("product_version".into(), json!(env!("CARGO_PKG_VERSION")));
        m.insert("global_parameters".into(), json!([]));
        m.insert("queues".into(), Value::Array(queues));
        m.insert("exchanges".into(), Value::Array(exchanges));
        m.insert("bindings".into(), Value::Array(bindings));
    }
    Json(doc)
}

/// `POST /api/definitions`: 204 once everything is applied; 400 with the first problem.
pub(super) async fn import(State(api): State<Api>, body: Bytes) -> Result<StatusCode, ApiError> {
    let doc: Value = serde_json::from_slice(&body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| ApiError::bad_request("failed_to_parse_json"))?;
    // RabbitMQ escapes its import errors for HTML (they quote Erlang's `<<"..">>`).
    let failed = |e: String| ApiError::bad_request(escape_html_tags(&e));
    api.broker.apply_access(&doc).map_err(failed)?;
    import_topology(&api.broker, &doc).map_err(failed)?;
    api.broker
        .save_access()
        .map_err(|e| ApiError::new(500, "internal_error", format!("cannot save users: {e}")))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Exchanges, then queues, then bindings of a definitions document, each declared as
/// the API's PUT/POST would (so redeclaring an existing one must be equivalent).
pub(crate) fn import_topology(broker: &BrokerState, doc: &Value) -> Result<(), String> {
    let list = |key: &str| {
        doc.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let field = |v: &Value, k: &str| records::str_field(v, k).map(str::to_string);
    let fail = |what: String, e: ApiError| format!("{what}: {}", e.reason);
    for x in list("exchanges") {
        let (vhost, name) = (field(&x, "vhost")?, field(&x, "name")?);
        if name.is_empty() || name.starts_with("amq.") {
            continue;
        }
        let what = format!("exchange '{name}' in vhost '{vhost}'");
        import_exchange(broker, &vhost, name, &x).map_err(|e| fail(what, e))?;
    }
    for q in list("queues") {
        let (vhost, name) = (field(&q, "vhost")?, field(&q, "name")?);
        let what = format!("queue '{name}' in vhost '{vhost}'");
        import_queue(broker, &vhost, name, &q).map_err(|e| fail(what, e))?;
    }
    for b in list("bindings") {
        let vhost = field(&b, "vhost")?;
        let source = field(&b, "source")?;
        let dest = field(&b, "destination")?;
        let kind = match field(&b, "destination_type")?.as_str() {
            "queue" => "q",
            "exchange" => "e",
            other => return Err(format!("binding: unknown destination_type '{other}'")),
        };
        let what = format!("binding of '{source}' to '{dest}' in vhost '{vhost}'");
        import_binding(broker, &vhost, &source, kind, &dest, &b).map_err(|e| fail(what, e))?;
    }
    Ok(())
}
