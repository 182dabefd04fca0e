//! `rmq list-vhosts`: like `rabbitmqctl list_vhosts`, over the management HTTP API.

use super::Ctx;
use super::listing::{self, Kind, ListArgs};
use clap::Args;

/// List virtual hosts with chosen columns.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq list-vhosts\n  rmq list-vhosts name messages tracing --output json\n\nColumns: name, description, tags, tracing, messages, messages_ready, messages_unacknowledged."
)]
pub(crate) struct ListVhostsArgs {
    /// Columns to show (rabbitmqctl's info items).
    #[arg(value_name = "COLUMN", default_values = ["name"])]
    columns: Vec<String>,
    #[command(flatten)]
    list: ListArgs,
}

const KIND: Kind = Kind {
    path: "vhosts",
    aliases: &[],
    sort: &["name"],
};

pub(crate) async fn run(args: ListVhostsArgs, ctx: &Ctx) -> anyhow::Result<()> {
    listing::run(ctx, &args.list, &KIND, &args.columns).await
}
