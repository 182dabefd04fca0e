//! `rmq list-permissions`: like `rabbitmqctl list_permissions`, over the management HTTP API.

use super::Ctx;
use super::listing::{self, Kind, ListArgs};
use clap::Args;

/// List the users' permissions in a vhost.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq list-permissions\n  rmq list-permissions --vhost staging --output json\n\nColumns: user, configure, write, read, vhost. --name matches the user.\nNeeds a user tagged 'administrator'."
)]
pub(crate) struct ListPermissionsArgs {
    /// Columns to show (rabbitmqctl's info items).
    #[arg(value_name = "COLUMN", default_values = ["user", "configure", "write", "read"])]
    columns: Vec<String>,
    #[command(flatten)]
    list: ListArgs,
}

const KIND: Kind = Kind {
    path: "vhosts/{vhost}/permissions",
    aliases: &[],
    sort: &["user"],
};

pub(crate) async fn run(args: ListPermissionsArgs, ctx: &Ctx) -> anyhow::Result<()> {
    listing::run(ctx, &args.list, &KIND, &args.columns).await
}
