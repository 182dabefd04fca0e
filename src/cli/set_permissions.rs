//! `rmq set-permissions`: like `rabbitmqctl set_permissions`, through the management API's
//! `PUT /api/permissions/{vhost}/{user}`.

use super::Ctx;
use super::admin::{Admin, Change, VhostArgs};
use crate::client::{ApiMethod, api_segment};
use clap::Args;
use serde_json::json;

/// Set a user's permissions in a vhost.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq set-permissions app '.*' '.*' '.*'                 # everything in the URL's vhost\n  rmq set-permissions app '^app\\.' '^app\\.' '.*' --vhost staging\n  rmq set-permissions reader '^$' '^$' '.*'              # consume only\n\nEach of CONF, WRITE and READ is a regular expression over the names of the queues and\nexchanges the user may configure (declare, delete), write (publish, bind to) and read\n(consume, get, purge, bind from); '^$' allows nothing, '.*' everything.\nExit: 0 set; 1 refused (unknown user or vhost, bad regular expression)."
)]
pub(crate) struct SetPermissionsArgs {
    /// User name.
    user: String,
    /// Configure permission (regular expression).
    conf: String,
    /// Write permission (regular expression).
    write: String,
    /// Read permission (regular expression).
    read: String,
    #[command(flatten)]
    at: VhostArgs,
}

pub(crate) async fn run(args: SetPermissionsArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let admin = Admin::in_vhost(ctx, &args.at)?;
    let body = json!({ "configure": args.conf, "write": args.write, "read": args.read });
    let what = format!(
        "cannot set the permissions of '{}' in vhost '{}'",
        args.user, admin.vhost
    );
    let path = format!(
        "permissions/{}/{}",
        admin.vhost_segment(),
        api_segment(&args.user)
    );
    let status = admin
        .change(
            ApiMethod::Put,
            &path,
            Some(&body),
            &Change {
                what: &what,
                missing: "the management API has no /api/permissions (404)",
                hint: " (do the user and the vhost exist? see `rmq list-users`, `rmq list-vhosts`; are the three patterns regular expressions?)",
            },
        )
        .await?;
    ctx.out.note(&format!(
        "permissions of '{}' in vhost '{}' {}: configure '{}', write '{}', read '{}'",
        args.user,
        admin.vhost,
        super::admin::created(status),
        args.conf,
        args.write,
        args.read
    ));
    Ok(())
}
