//! `rmq list-queues`: like `rabbitmqctl list_queues`, over the management HTTP API.

use super::Ctx;
use super::listing::{self, Kind, ListArgs};
use clap::Args;

/// List queues with chosen columns.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq list-queues                                    # name messages\n  rmq list-queues name messages_ready messages_unacknowledged consumers\n  rmq list-queues name durable arguments --output json\n  rmq list-queues --name 'orders.*' --vhost staging --api-url http://broker:15672\n\nColumns are rabbitmqctl's queue info items (the management API's field names): name, vhost,\nmessages, messages_ready, messages_unacknowledged, consumers, durable, auto_delete, exclusive,\narguments, type, state, memory, message_bytes, policy, node, ...\nNeeds the management plugin: rabbitmq-plugins enable rabbitmq_management."
)]
pub(crate) struct ListQueuesArgs {
    /// Columns to show.
    #[arg(value_name = "COLUMN", default_values = ["name", "messages"])]
    columns: Vec<String>,
    #[command(flatten)]
    list: ListArgs,
}

const KIND: Kind = Kind {
    path: "queues/{vhost}",
    aliases: &[],
    sort: &["name"],
};

pub(crate) async fn run(args: ListQueuesArgs, ctx: &Ctx) -> anyhow::Result<()> {
    listing::run(ctx, &args.list, &KIND, &args.columns).await
}
