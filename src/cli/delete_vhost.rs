//! `rmq delete-vhost`: like `rabbitmqctl delete_vhost`, through the management API's
//! `DELETE /api/vhosts/{name}`.

use super::Ctx;
use super::admin::{Admin, ApiArgs, Change};
use crate::client::{ApiMethod, api_segment};
use clap::Args;

/// Delete a virtual host with everything in it: queues and their messages, exchanges,
/// bindings, permissions. Its connections are closed.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq delete-vhost staging\n\nExit: 0 deleted; 1 no such vhost."
)]
pub(crate) struct DeleteVhostArgs {
    /// Virtual host name.
    name: String,
    #[command(flatten)]
    api: ApiArgs,
}

pub(crate) async fn run(args: DeleteVhostArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let admin = Admin::new(ctx, &args.api, None)?;
    let what = format!("cannot delete vhost '{}'", args.name);
    admin
        .change(
            ApiMethod::Delete,
            &format!("vhosts/{}", api_segment(&args.name)),
            None,
            &Change {
                what: &what,
                missing: "no such vhost (see `rmq list-vhosts`)",
                hint: "",
            },
        )
        .await?;
    ctx.out.note(&format!("vhost '{}' deleted", args.name));
    Ok(())
}
