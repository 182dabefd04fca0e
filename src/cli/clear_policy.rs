//! `rmq clear-policy`: like `rabbitmqctl clear_policy`, through the management API's
//! `DELETE /api/policies/{vhost}/{name}`.

use super::Ctx;
use super::admin::{Admin, Change, VhostArgs};
use super::set_policy::no_policies_api;
use crate::client::{ApiMethod, api_segment};
use clap::Args;

/// Remove a policy.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq clear-policy ttl\n  rmq clear-policy dlx --vhost staging\n\nExit: 0 removed; 1 no such policy in the vhost."
)]
pub(crate) struct ClearPolicyArgs {
    /// Policy name.
    name: String,
    #[command(flatten)]
    at: VhostArgs,
}

pub(crate) async fn run(args: ClearPolicyArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let admin = Admin::in_vhost(ctx, &args.at)?;
    let path = format!(
        "policies/{}/{}",
        admin.vhost_segment(),
        api_segment(&args.name)
    );
    let reply = admin.call(ApiMethod::Delete, &path, None).await?;
    let missing = match reply.status {
        404 => no_policies_api(&admin).await?.unwrap_or_else(|| {
            format!(
                "no policy '{}' in vhost '{}' (see `rmq list-policies`)",
                args.name, admin.vhost
            )
        }),
        _ => String::new(),
    };
    let what = format!(
        "cannot clear policy '{}' in vhost '{}'",
        args.name, admin.vhost
    );
    admin.judge(
        reply,
        &Change {
            what: &what,
            missing: &missing,
            hint: "",
        },
    )?;
    ctx.out.note(&format!(
        "policy '{}' cleared in vhost '{}'",
        args.name, admin.vhost
    ));
    Ok(())
}
