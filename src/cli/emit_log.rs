//! `rmq emit-log`: tutorials 3–5's publishers — declare the exchange, publish, confirm.

use super::Ctx;
use super::args::PropertyArgs;
use super::receive::{default_exchange_type, exchange_spec};
use crate::client::{PublishOptions, Session};
use crate::exit::{self, coded};
use clap::Args;

/// Publish one message to an exchange (declared if missing).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq emit-log 'info: Hello World!'                                   # tutorial 3 (fanout 'logs')\n  rmq emit-log --exchange direct_logs --type direct -k error 'Run. Run. Or it will explode.'   # tutorial 4\n  rmq emit-log --exchange topic_logs --type topic -k kern.critical 'A critical kernel error'     # tutorial 5\n  rmq emit-log --exchange h --type headers -H format=pdf -H type=report 'x'"
)]
pub(crate) struct EmitLogArgs {
    /// The message (words joined with spaces).
    #[arg(value_name = "MESSAGE", default_value = "info: Hello World!")]
    message: Vec<String>,
    /// Exchange to publish to.
    #[arg(long, short = 'x', default_value = "logs", value_name = "NAME")]
    exchange: String,
    /// Exchange type if it must be created (default: fanout; topic with a routing key; headers with -H).
    #[arg(long = "type", short = 't', value_name = "TYPE")]
    kind: Option<String>,
    /// Routing key (severity in tutorial 4, `<facility>.<severity>` in tutorial 5).
    #[arg(long, short = 'k', default_value = "", value_name = "KEY")]
    routing_key: String,
    /// Create the exchange durable if it does not exist.
    #[arg(long)]
    durable: bool,
    /// Fail (exit 1) if no queue is bound to receive it.
    #[arg(long)]
    mandatory: bool,
    #[command(flatten)]
    props: PropertyArgs,
}

pub(crate) async fn run(args: EmitLogArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let props = args.props.properties(None)?;
    let body = args.message.join(" ");
    let kind = args.kind.clone().unwrap_or_else(|| {
        default_exchange_type(!args.routing_key.is_empty(), !args.props.headers.is_empty())
    });
    let session = Session::connect(&ctx.connect).await?;
    let mut spec = exchange_spec(&args.exchange, &kind);
    spec.durable = args.durable;
    session.ensure_exchange(&spec).await?;
    let opts = PublishOptions {
        confirm: true,
        window: 1,
        mandatory: args.mandatory,
        retain: false,
    };
    let mut publisher = session.publisher(opts).await?;
    publisher
        .publish(&args.exchange, &args.routing_key, &props, body.as_bytes())
        .await?;
    let report = publisher.finish().await?;
    session.close().await;
    if !report.returned.is_empty() {
        return Err(coded(
            exit::FAILURE,
            format!(
                "message to exchange '{}' with key '{}' was not routed to any queue (no matching binding)",
                args.exchange, args.routing_key
            ),
        ));
    }
    if args.routing_key.is_empty() {
        ctx.out.note(&format!(" [x] Sent '{body}'"));
    } else {
        ctx.out
            .note(&format!(" [x] Sent '{}':'{body}'", args.routing_key));
    }
    Ok(())
}
