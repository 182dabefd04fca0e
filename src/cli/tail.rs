//! `rmq tail` (alias `tap`): watch what flows through an exchange without taking anything
//! from anyone — a private queue (server-named, exclusive, auto-delete) bound with the
//! given patterns gets its own copy of every matching message, consumed without acks.

use super::Ctx;
use super::args::{EndArgs, MessageOutArgs};
use super::receive::BindingArgs;
use super::resume::Link;
use super::stream::{Plan, consume};
use crate::client::{ConsumeOptions, Session, Settle, api_get, api_segment};
use crate::exit::{self, coded};
use clap::Args;

/// Print the messages flowing through an exchange.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq tail topic_logs                                # every message (binds '#')\n  rmq tail topic_logs -k 'kern.*' -k '*.critical'    # tutorial 5's patterns\n  rmq tail logs --count 10 --timeout 30              # tutorial 3's fanout, ten messages at most\n  rmq tail direct_logs -k error -k warning           # direct exchanges need the keys\n  rmq tail events --match-header tenant=acme         # a headers exchange\n  rmq tap amq.topic --format '{routing_key} {body}' --output raw\n  rmq tail orders -o jsonl > orders.jsonl            # a lossless recording\n\nThe exchange must exist; nothing else is declared but the private queue, which goes\naway with rmq. Every consumer of the exchange's own queues keeps getting its messages.\nWithout -k or --match-header the binding key is '#': everything on a topic, fanout or\nheaders exchange. A direct exchange only routes exact keys: without -k it is refused (exit 2),\nand so is the default exchange, to which nothing can be bound.\nExit: as receive (0, 3 when --count/--timeout ends short, 130 Ctrl-C); 2 as above."
)]
pub(crate) struct TailArgs {
    /// Exchange to watch.
    exchange: String,
    #[command(flatten)]
    bind: BindingArgs,
    #[command(flatten)]
    end: EndArgs,
    #[command(flatten)]
    out: MessageOutArgs,
}

pub(crate) async fn run(args: TailArgs, ctx: &Ctx) -> anyhow::Result<()> {
    // Spec §3.1.3.1: the default exchange cannot be bound; each queue already gets what
    // is published to its own name.
    if args.exchange.is_empty() || args.exchange == "amq.default" {
        return Err(coded(
            exit::USAGE,
            "cannot tail the default exchange: no queue can be bound to it (it delivers to the queue named by the routing key); watch an exchange the publishers use, or `rmq receive QUEUE` to take from the queue itself",
        ));
    }
    let mut sink = args.out.sink(&ctx.out)?;
    let everything = args.bind.binding_keys.is_empty() && args.bind.match_headers.is_empty();
    let bindings = args.bind.bindings(Some("#"))?;
    let session = Session::connect(&ctx.connect).await?;
    // Tapping must not create what it watches: a typo would otherwise tap a new, silent exchange.
    if !session.exchange_exists(&args.exchange).await? {
        return Err(coded(
            exit::FAILURE,
            format!(
                "exchange '{}' does not exist in vhost '{}' (nothing to tail; list them with the management API, or declare it)",
                args.exchange,
                session.vhost()
            ),
        ));
    }
    // '#' is a plain key on a direct exchange: bound with it, tail would wait forever.
    if everything
        && exchange_type(ctx, session.vhost(), &args.exchange)
            .await
            .as_deref()
            == Some("direct")
    {
        session.close().await;
        return Err(coded(
            exit::USAGE,
            format!(
                "exchange '{}' is a direct exchange: it routes exact routing keys only, so there is no 'everything' to tail; give the keys to watch with -k KEY (repeatable)",
                args.exchange
            ),
        ));
    }
    let opts = ConsumeOptions {
        prefetch: 0,
        no_ack: true,
        exclusive: true,
    };
    let keys: Vec<String> = bindings
        .iter()
        .map(|(k, a)| {
            if a.is_empty() {
                format!("'{k}'")
            } else {
                serde_json::Value::Object(a.clone()).to_string()
            }
        })
        .collect();
    let plan = Plan {
        count: args.end.count,
        timeout: args.end.timeout,
        idle_timeout: args.end.idle_timeout,
        settle: Settle::Ack,
        no_ack: true,
        prefetch: 0,
        what: "tailing",
    };
    let ends =
        args.end.count.is_some() || args.end.timeout.is_some() || args.end.idle_timeout.is_some();
    let mut link = Link::from_session(ctx, session, !ends);
    let mut first = true;
    loop {
        let attempt = async {
            let (queue, mut sub) = link
                .session()
                .subscribe_exchange(None, &args.exchange, &bindings, &opts)
                .await?;
            if first {
                ctx.out.ready(&format!(
                    " [*] Waiting for messages from exchange '{}' ({}) in '{queue}'. To exit press CTRL+C",
                    args.exchange,
                    keys.join(", ")
                ));
                first = false;
            } else {
                ctx.out.warn(&format!(
                    "tailing again through a new private queue '{queue}': messages that went through exchange '{}' while disconnected were missed",
                    args.exchange
                ));
            }
            let r = consume(&mut sub, &plan, &mut sink, ctx).await;
            if r.is_ok() || link.session().is_connected() {
                sub.close().await;
            }
            r
        };
        match attempt.await {
            Ok(()) => break,
            Err(e) => link.recover(e).await?,
        }
    }
    link.close().await;
    Ok(())
}

/// The exchange's type: RabbitMQ's predeclared exchanges by name, others from the
/// management API (AMQP has no way to ask). `None` when the API cannot tell (not
/// reachable, another broker's, no permission): tail then binds as asked.
async fn exchange_type(ctx: &Ctx, vhost: &str, name: &str) -> Option<String> {
    match name {
        "amq.direct" => return Some("direct".into()),
        "amq.fanout" => return Some("fanout".into()),
        "amq.topic" | "amq.rabbitmq.trace" => return Some("topic".into()),
        "amq.headers" | "amq.match" => return Some("headers".into()),
        _ => {}
    }
    let (mut api, _) =
        super::listing::api_config(ctx, super::listing::profile_api_url(ctx)).ok()?;
    // A hint, not the job: a silent firewall must not hold tail up for long.
    api.timeout = std::time::Duration::from_secs(3);
    let path = format!("exchanges/{}/{}", api_segment(vhost), api_segment(name));
    let x = api_get(&api, &path, Some(vhost)).await.ok()?;
    x.get("type")?.as_str().map(str::to_string)
}
