//! `rmq list-connections`: like `rabbitmqctl list_connections`, over the management HTTP API.

use super::Ctx;
use super::listing::{self, Kind, ListArgs};
use clap::Args;

/// List client connections with chosen columns.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq list-connections\n  rmq list-connections name user vhost channels client_properties.product --output json\n\nColumns: name, user, vhost, peer_host, peer_port, host, port, state, channels, protocol,\nauth_mechanism, ssl, timeout, frame_max, channel_max, connected_at, client_properties\n(dotted paths reach inside, e.g. client_properties.product)."
)]
pub(crate) struct ListConnectionsArgs {
    /// Columns to show (rabbitmqctl's info items).
    #[arg(value_name = "COLUMN", default_values = ["user", "peer_host", "peer_port", "state"])]
    columns: Vec<String>,
    #[command(flatten)]
    list: ListArgs,
}

const KIND: Kind = Kind {
    path: "connections",
    aliases: &[],
    sort: &["name"],
};

pub(crate) async fn run(args: ListConnectionsArgs, ctx: &Ctx) -> anyhow::Result<()> {
    listing::run(ctx, &args.list, &KIND, &args.columns).await
}
