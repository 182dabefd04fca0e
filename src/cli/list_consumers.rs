//! `rmq list-consumers`: like `rabbitmqctl list_consumers`, over the management HTTP API.

use super::Ctx;
use super::listing::{self, Kind, ListArgs};
use clap::Args;

/// List consumers with chosen columns.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq list-consumers\n  rmq list-consumers queue_name consumer_tag prefetch_count --name orders\n\nColumns: queue_name, channel_pid (the channel name), consumer_tag, ack_required, prefetch_count,\nactive, activity_status, arguments, exclusive. --name matches the queue."
)]
pub(crate) struct ListConsumersArgs {
    /// Columns to show (rabbitmqctl's info items).
    #[arg(value_name = "COLUMN", default_values = ["queue_name", "channel_pid", "consumer_tag", "ack_required", "prefetch_count", "active", "activity_status", "arguments"])]
    columns: Vec<String>,
    #[command(flatten)]
    list: ListArgs,
}

const KIND: Kind = Kind {
    path: "consumers/{vhost}",
    aliases: &[
        ("queue_name", "queue.name"),
        ("channel_pid", "channel_details.name"),
    ],
    sort: &["queue_name", "consumer_tag"],
};

pub(crate) async fn run(args: ListConsumersArgs, ctx: &Ctx) -> anyhow::Result<()> {
    listing::run(ctx, &args.list, &KIND, &args.columns).await
}
