//! `rmq close-connection`: like `rabbitmqctl close_connection`, through the management
//! API's `DELETE /api/connections/{name}` (the client gets 320 CONNECTION_FORCED with the
//! reason).

use super::Ctx;
use super::admin::{Admin, ApiArgs, Change};
use crate::client::{ApiMethod, api_list, api_request, api_segment};
use crate::exit::{self, coded};
use clap::Args;
use serde_json::Value;

/// Close client connections, by the broker's name for them or the name the client gave.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq close-connection '127.0.0.1:43210 -> 127.0.0.1:5672' --reason 'maintenance'\n  rmq close-connection billing-worker-3        # every connection the client named so\n  rmq list-connections name user_provided_name user   # find the names\n\nNAME is the broker's connection name (`rmq list-connections name`), or the name a client\ngave its connection (its connection_name property, `user_provided_name` in the API): every\nconnection so named is closed. The client sees 320 CONNECTION_FORCED and the reason.\nExit: 0 closed; 1 no connection of that name."
)]
pub(crate) struct CloseConnectionArgs {
    /// Connection name (the broker's, or the client-provided one).
    name: String,
    /// The reason the client is told (default: the broker's, "Closed via management plugin").
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
}

pub(crate) async fn run(args: CloseConnectionArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let admin = Admin::new(ctx, &args.api, None)?;
    let what = format!("cannot close connection '{}'", args.name);
    let close = async |name: &str| {
        let path = format!("connections/{}", api_segment(name));
        api_request(
            &admin.api,
            ApiMethod::Delete,
            &path,
            None,
            args.reason.as_deref(),
        )
        .await
    };
    let reply = close(&args.name).await?;
    if reply.status != 404 {
        let change = Change {
            what: &what,
            missing: "",
            hint: "",
        };
        admin.judge(reply, &change)?;
        ctx.out.note(&format!("closed connection '{}'", args.name));
        return Ok(());
    }
    // Not the broker's name: the client's own, which several connections may share.
    let named: Vec<String> = api_list(
        &admin.api,
        "connections?columns=name,user_provided_name,client_properties.connection_name",
        None,
    )
    .await?
    .into_iter()
    .filter(|c| {
        let given = c
            .get("user_provided_name")
            .or_else(|| c.get("client_properties")?.get("connection_name"));
        given.and_then(Value::as_str) == Some(args.name.as_str())
    })
    .filter_map(|c| c.get("name")?.as_str().map(str::to_string))
    .collect();
    if named.is_empty() {
        return Err(coded(
            exit::FAILURE,
            format!(
                "{what}: no connection has that name (see `rmq list-connections name user_provided_name`)"
            ),
        ));
    }
    let mut closed = 0;
    for name in &named {
        // One that went away meanwhile is closed already.
        let reply = close(name).await?;
        if reply.status != 404 {
            let what = format!("cannot close connection '{name}'");
            let change = Change {
                what: &what,
                missing: "",
                hint: "",
            };
            admin.judge(reply, &change)?;
            closed += 1;
        }
    }
    ctx.out.note(&format!(
        "closed {closed} connection{} named '{}'",
        if closed == 1 { "" } else { "s" },
        args.name
    ));
    Ok(())
}
