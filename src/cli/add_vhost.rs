//! `rmq add-vhost`: like `rabbitmqctl add_vhost`, through the management API's
//! `PUT /api/vhosts/{name}`.

use super::Ctx;
use super::admin::{Admin, ApiArgs, Change};
use crate::client::{ApiMethod, api_segment};
use clap::Args;

/// Create a virtual host (nothing to do if it exists, as with rabbitmqctl).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq add-vhost staging\n  rmq add-vhost staging && rmq set-permissions app '.*' '.*' '.*' --vhost staging\n\nThe user that creates it gets full permissions there (as RabbitMQ's API does).\nExit: 0 created or already there; 1 refused."
)]
pub(crate) struct AddVhostArgs {
    /// Virtual host name.
    name: String,
    #[command(flatten)]
    api: ApiArgs,
}

pub(crate) async fn run(args: AddVhostArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let admin = Admin::new(ctx, &args.api, None)?;
    let what = format!("cannot add vhost '{}'", args.name);
    let status = admin
        .change(
            ApiMethod::Put,
            &format!("vhosts/{}", api_segment(&args.name)),
            None,
            &Change {
                what: &what,
                missing: "the management API has no /api/vhosts (404)",
                hint: "",
            },
        )
        .await?;
    ctx.out.note(&if status == 201 {
        format!("vhost '{}' added", args.name)
    } else {
        format!("vhost '{}' exists already", args.name)
    });
    Ok(())
}
