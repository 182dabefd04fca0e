//! `rmq list-bindings`: like `rabbitmqctl list_bindings`, over the management HTTP API.

use super::Ctx;
use super::listing::{self, Kind, ListArgs};
use clap::Args;

/// List bindings with chosen columns.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq list-bindings\n  rmq list-bindings source_name destination_name routing_key --name orders\n\nColumns: source_name, source_kind, destination_name, destination_kind, routing_key, arguments,\nproperties_key, vhost. --name matches the source exchange."
)]
pub(crate) struct ListBindingsArgs {
    /// Columns to show (rabbitmqctl's info items).
    #[arg(value_name = "COLUMN", default_values = ["source_name", "source_kind", "destination_name", "destination_kind", "routing_key", "arguments"])]
    columns: Vec<String>,
    #[command(flatten)]
    list: ListArgs,
}

const KIND: Kind = Kind {
    path: "bindings/{vhost}",
    aliases: &[
        ("source_name", "source"),
        ("source_kind", "=exchange"),
        ("destination_name", "destination"),
        ("destination_kind", "destination_type"),
    ],
    sort: &[
        "source_name",
        "destination_name",
        "routing_key",
        "properties_key",
    ],
};

pub(crate) async fn run(args: ListBindingsArgs, ctx: &Ctx) -> anyhow::Result<()> {
    listing::run(ctx, &args.list, &KIND, &args.columns).await
}
