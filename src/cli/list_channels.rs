//! `rmq list-channels`: like `rabbitmqctl list_channels`, over the management HTTP API.

use super::Ctx;
use super::listing::{self, Kind, ListArgs};
use clap::Args;

/// List channels with chosen columns.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq list-channels\n  rmq list-channels name connection_details.name number prefetch_count confirm --output json\n\nColumns: pid (the channel's name), name, user, vhost, number, consumer_count,\nmessages_unacknowledged, messages_unconfirmed, prefetch_count, global_prefetch_count,\nconfirm, transactional, state, connection_details (dotted paths reach inside).\n--vhost keeps that vhost's channels; --name matches the channel's name."
)]
pub(crate) struct ListChannelsArgs {
    /// Columns to show (rabbitmqctl's info items).
    #[arg(value_name = "COLUMN", default_values = ["pid", "user", "consumer_count", "messages_unacknowledged"])]
    columns: Vec<String>,
    #[command(flatten)]
    list: ListArgs,
}

const KIND: Kind = Kind {
    path: "channels",
    aliases: &[("pid", "name")],
    sort: &["name"],
};

pub(crate) async fn run(args: ListChannelsArgs, ctx: &Ctx) -> anyhow::Result<()> {
    listing::run(ctx, &args.list, &KIND, &args.columns).await
}
