//! `rmq bind` / `rmq unbind`: bindings from an exchange to a queue or another exchange.

use super::Ctx;
use super::args::json_object;
use crate::client::{Destination, Session};
use clap::Args;

/// Bind (or unbind) a queue or exchange to an exchange.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq bind logs my_queue                             # fanout: no key needed\n  rmq bind direct_logs errors --key error            # tutorial 4\n  rmq bind topic_logs q1 --key '*.orange.*'          # tutorial 5\n  rmq bind amq.headers q --arguments '{\"x-match\":\"any\",\"format\":\"pdf\"}'\n  rmq bind upstream --to-exchange downstream --key '#'\n  rmq unbind topic_logs q1 --key '*.orange.*'"
)]
pub(crate) struct BindArgs {
    /// The source exchange.
    exchange: String,
    /// The queue to bind.
    #[arg(
        required_unless_present = "to_exchange",
        conflicts_with = "to_exchange"
    )]
    queue: Option<String>,
    /// Bind this exchange instead of a queue (exchange-to-exchange binding).
    #[arg(long, value_name = "NAME")]
    to_exchange: Option<String>,
    /// Routing/binding key.
    #[arg(long, short = 'k', default_value = "", value_name = "KEY")]
    key: String,
    /// Binding arguments as a JSON object (headers exchanges match on them).
    #[arg(long, value_name = "JSON")]
    arguments: Option<String>,
}

pub(crate) async fn run(args: BindArgs, ctx: &Ctx, unbind: bool) -> anyhow::Result<()> {
    let arguments = json_object("--arguments", args.arguments.as_deref())?;
    let dest = match (&args.queue, &args.to_exchange) {
        (_, Some(x)) => Destination::Exchange(x.clone()),
        (Some(q), None) => Destination::Queue(q.clone()),
        (None, None) => Destination::Queue(String::new()),
    };
    let session = Session::connect(&ctx.connect).await?;
    session
        .bind(&args.exchange, &dest, &args.key, &arguments, unbind)
        .await?;
    session.close().await;
    let target = match &dest {
        Destination::Queue(q) => format!("queue '{q}'"),
        Destination::Exchange(x) => format!("exchange '{x}'"),
    };
    let verb = if unbind { "unbound" } else { "bound" };
    ctx.out.note(&format!(
        "{verb} {target} {} exchange '{}' with key '{}'",
        if unbind { "from" } else { "to" },
        args.exchange,
        args.key
    ));
    Ok(())
}
