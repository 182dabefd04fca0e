//! `rmq list-exchanges`: like `rabbitmqctl list_exchanges`, over the management HTTP API.

use super::Ctx;
use super::listing::{self, Kind, ListArgs};
use clap::Args;

/// List exchanges with chosen columns.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq list-exchanges\n  rmq list-exchanges name type durable auto_delete internal arguments --output json\n\nColumns: name, type, durable, auto_delete, internal, arguments, policy, vhost."
)]
pub(crate) struct ListExchangesArgs {
    /// Columns to show (rabbitmqctl's info items).
    #[arg(value_name = "COLUMN", default_values = ["name", "type"])]
    columns: Vec<String>,
    #[command(flatten)]
    list: ListArgs,
}

const KIND: Kind = Kind {
    path: "exchanges/{vhost}",
    aliases: &[],
    sort: &["name"],
};

pub(crate) async fn run(args: ListExchangesArgs, ctx: &Ctx) -> anyhow::Result<()> {
    listing::run(ctx, &args.list, &KIND, &args.columns).await
}
