//! `rmq list-users`: like `rabbitmqctl list_users`, over the management HTTP API.

use super::Ctx;
use super::admin::ApiArgs;
use super::listing::{self, Kind, ListArgs};
use clap::Args;

/// List users with chosen columns.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq list-users\n  rmq list-users user tags hashing_algorithm --output json\n\nColumns: user (the name), tags, hashing_algorithm, password_hash, limits.\nNeeds a user tagged 'administrator'."
)]
pub(crate) struct ListUsersArgs {
    /// Columns to show (rabbitmqctl's info items).
    #[arg(value_name = "COLUMN", default_values = ["user", "tags"])]
    columns: Vec<String>,
    /// Only users whose name matches: a glob (`*`, `?`) or, without wildcards, a substring.
    #[arg(long, value_name = "PATTERN")]
    name: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
}

const KIND: Kind = Kind {
    path: "users",
    aliases: &[("user", "name")],
    sort: &["user"],
};

pub(crate) async fn run(args: ListUsersArgs, ctx: &Ctx) -> anyhow::Result<()> {
    // Users belong to no vhost: no --vhost here.
    let list = ListArgs {
        vhost: None,
        name: args.name,
        api_url: args.api.api_url,
    };
    listing::run(ctx, &list, &KIND, &args.columns).await
}
