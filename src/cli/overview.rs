//! `rmq overview`: a one-screen summary from `/api/overview` (versions, totals, rates,
//! listeners), from RabbitMQ or `rmq serve` alike.

use super::Ctx;
use crate::client::api_get;
use clap::Args;
use serde_json::{Value, json};

/// Summarise the broker: versions, object and message totals, rates, listeners.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq overview\n  rmq overview --output json | jq .messages_ready\n  rmq overview --api-url http://broker:15672\n\nNeeds the management plugin: rabbitmq-plugins enable rabbitmq_management."
)]
pub(crate) struct OverviewArgs {
    /// Management API base URL (default: the broker URL's host, port ?api_port= of the URL or
    /// 15672, same credentials, checked to serve that broker).
    #[arg(long, env = "RMQ_API_URL", value_name = "URL")]
    api_url: Option<String>,
}

/// The value at a dotted path, null when missing.
fn at(v: &Value, path: &str) -> Value {
    path.split('.')
        .try_fold(v, |v, k| v.get(k))
        .cloned()
        .unwrap_or(Value::Null)
}

pub(crate) async fn run(args: OverviewArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let (api, _) = super::listing::api_config(ctx, args.api_url)?;
    let o = api_get(&api, "overview", None).await?;
    let listeners: Vec<String> = o
        .get("listeners")
        .and_then(Value::as_array)
        .map(|ls| {
            ls.iter()
                .map(|l| {
                    format!(
                        "{} {}:{}",
                        at(l, "protocol").as_str().unwrap_or("?"),
                        at(l, "ip_address").as_str().unwrap_or("?"),
                        at(l, "port")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let fields: Vec<(&str, Value)> = vec![
        ("product", at(&o, "product_name")),
        ("version", at(&o, "product_version")),
        ("management_version", at(&o, "management_version")),
        ("node", at(&o, "node")),
        ("connections", at(&o, "object_totals.connections")),
        ("channels", at(&o, "object_totals.channels")),
        ("exchanges", at(&o, "object_totals.exchanges")),
        ("queues", at(&o, "object_totals.queues")),
        ("consumers", at(&o, "object_totals.consumers")),
        ("messages", at(&o, "queue_totals.messages")),
        ("messages_ready", at(&o, "queue_totals.messages_ready")),
        (
            "messages_unacknowledged",
            at(&o, "queue_totals.messages_unacknowledged"),
        ),
        ("publish_rate", at(&o, "message_stats.publish_details.rate")),
        (
            "deliver_get_rate",
            at(&o, "message_stats.deliver_get_details.rate"),
        ),
        ("ack_rate", at(&o, "message_stats.ack_details.rate")),
        ("listeners", json!(listeners.join(", "))),
    ];
    let columns = vec!["field".to_string(), "value".to_string()];
    let rows: Vec<Vec<Value>> = fields.into_iter().map(|(k, v)| vec![json!(k), v]).collect();
    ctx.out.rows(&columns, &rows)?;
    Ok(())
}
