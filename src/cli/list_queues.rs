//! `rmq list-queues`: like `rabbitmqctl list_queues`, over the management HTTP API.

use super::Ctx;
use crate::client::{ApiConfig, list_queues, parse_url};
use clap::Args;
use serde_json::Value;

/// List queues with chosen columns.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq list-queues                                    # name messages\n  rmq list-queues name messages_ready messages_unacknowledged consumers\n  rmq list-queues name durable arguments --output json\n  rmq list-queues --vhost staging --api-url http://broker:15672\n\nColumns are rabbitmqctl's queue info items (the management API's field names): name, vhost,\nmessages, messages_ready, messages_unacknowledged, consumers, durable, auto_delete, exclusive,\narguments, type, state, memory, message_bytes, policy, node, ...\nNeeds the management plugin: rabbitmq-plugins enable rabbitmq_management."
)]
pub(crate) struct ListQueuesArgs {
    /// Columns to show.
    #[arg(value_name = "COLUMN", default_values = ["name", "messages"])]
    columns: Vec<String>,
    /// Virtual host (default: the URL's).
    #[arg(long, short = 'p', value_name = "VHOST")]
    vhost: Option<String>,
    /// Management API base URL (default: the broker URL's host, port 15672, same credentials).
    #[arg(long, env = "RMQ_API_URL", value_name = "URL")]
    api_url: Option<String>,
}

pub(crate) async fn run(args: ListQueuesArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let uri = parse_url(&ctx.connect.url)?;
    let vhost = args.vhost.clone().unwrap_or_else(|| uri.vhost.clone());
    let api_url = args
        .api_url
        .clone()
        .or_else(|| ctx.settings.api_url.as_ref().map(|s| s.value.clone()));
    let api = ApiConfig::from_amqp(&uri, api_url);
    let mut queues = list_queues(&api, &vhost).await?;
    queues.sort_by(|a, b| {
        let name = |o: &serde_json::Map<String, Value>| {
            o.get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        name(a).cmp(&name(b))
    });
    let rows: Vec<Vec<Value>> = queues
        .iter()
        .map(|q| {
            args.columns
                .iter()
                .map(|c| q.get(c).cloned().unwrap_or(Value::Null))
                .collect()
        })
        .collect();
    ctx.out.rows(&args.columns, &rows)?;
    Ok(())
}
