//! `rmq delete-user`: like `rabbitmqctl delete_user`, through the management API's
//! `DELETE /api/users/{name}`.

use super::Ctx;
use super::admin::{Admin, ApiArgs, Change};
use crate::client::{ApiMethod, api_segment};
use clap::Args;

/// Delete a user (with its permissions; its open connections stay until they close).
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  rmq delete-user app\n\nExit: 0 deleted; 1 no such user.")]
pub(crate) struct DeleteUserArgs {
    /// User name.
    name: String,
    #[command(flatten)]
    api: ApiArgs,
}

pub(crate) async fn run(args: DeleteUserArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let admin = Admin::new(ctx, &args.api, None)?;
    let what = format!("cannot delete user '{}'", args.name);
    admin
        .change(
            ApiMethod::Delete,
            &format!("users/{}", api_segment(&args.name)),
            None,
            &Change {
                what: &what,
                missing: "no such user (see `rmq list-users`)",
                hint: "",
            },
        )
        .await?;
    ctx.out.note(&format!("user '{}' deleted", args.name));
    Ok(())
}
