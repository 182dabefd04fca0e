//! `rmq list-policies`: like `rabbitmqctl list_policies`, over the management HTTP API.

use super::Ctx;
use super::admin::{Admin, ApiArgs};
use super::listing::{self, Kind, ListArgs};
use super::set_policy::no_policies_api;
use crate::exit::{self, coded};
use clap::Args;

/// List policies with chosen columns.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq list-policies\n  rmq list-policies name pattern definition --vhost staging --output json\n\nColumns: vhost, name, pattern, apply-to, definition, priority."
)]
pub(crate) struct ListPoliciesArgs {
    /// Columns to show (rabbitmqctl's info items).
    #[arg(value_name = "COLUMN", default_values = ["vhost", "name", "pattern", "apply-to", "definition", "priority"])]
    columns: Vec<String>,
    #[command(flatten)]
    list: ListArgs,
}

const KIND: Kind = Kind {
    path: "policies/{vhost}",
    aliases: &[],
    sort: &["name"],
};

pub(crate) async fn run(args: ListPoliciesArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let err = match listing::run(ctx, &args.list, &KIND, &args.columns).await {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    // A 404 reads "no vhost": say so when the broker has no policies at all instead.
    let api = ApiArgs {
        api_url: args.list.api_url.clone(),
    };
    let admin = Admin::new(ctx, &api, args.list.vhost.as_deref())?;
    match no_policies_api(&admin).await {
        Ok(Some(line)) => Err(coded(
            exit::FAILURE,
            format!("cannot list policies: {line}"),
        )),
        _ => Err(err),
    }
}
