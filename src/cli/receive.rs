//! `rmq receive`: consume from a queue (or an exchange, through an exclusive queue) and print.

use super::Ctx;
use super::args::{EndArgs, MessageOutArgs, QueueArgs, parse_headers};
use super::resume::Link;
use super::stream::{Plan, consume};
use crate::client::{ConsumeOptions, ExchangeSpec, Session, Settle, Subscription};
use clap::{Args, ValueEnum};
use serde_json::{Map, Value};

/// Consume messages and print them.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq receive hello                                  # tutorial 1: print until Ctrl-C\n  rmq receive hello --count 1 --timeout 5            # one message, or exit 3 after 5 s\n  rmq receive --exchange logs                        # tutorial 3: a private queue bound to 'logs'\n  rmq receive --exchange direct_logs --type direct -k warning -k error   # tutorial 4\n  rmq receive --exchange topic_logs -k '*.orange.*' -k 'lazy.#'          # tutorial 5\n  rmq receive q --output jsonl > backup.jsonl --idle-timeout 1           # lossless dump\n  rmq receive q --format '{routing_key}\\t{headers.tenant}\\t{body}' --count 10\n  rmq receive q --save-dir dump/ --idle-timeout 1    # then: rmq send q2 --replay-dir dump/\n\nMessages are acknowledged after they are printed (or saved) (--no-ack: on delivery).\nA ready line goes to stderr once consuming: ' [*] Waiting for messages in Q...'.\nExit: 0 done or Ctrl-C-free end; 3 --count not reached before --timeout/--idle-timeout (or nothing at all with only a timeout); 130 Ctrl-C."
)]
pub(crate) struct ReceiveArgs {
    /// Queue to consume from (optional with --exchange: a server-named exclusive queue is used).
    #[arg(required_unless_present = "exchange")]
    queue: Option<String>,
    #[command(flatten)]
    end: EndArgs,
    /// Unacknowledged messages in flight (capped at --count so no extra message is taken).
    #[arg(long, default_value_t = 200, value_name = "N")]
    prefetch: u16,
    /// Let the broker forget each message as soon as it is sent (no acks, no redelivery).
    /// With --count, --timeout or --idle-timeout each message is acked once printed instead:
    /// a no-ack consumer gets no prefetch limit, so what the broker pushed past the end
    /// would be lost; acked, it is requeued.
    #[arg(long)]
    no_ack: bool,
    /// Put each message back in the queue after printing it (nack with requeue).
    #[arg(long, conflicts_with_all = ["reject", "no_ack"])]
    requeue: bool,
    /// Reject each message after printing it: dropped, or dead-lettered if the queue says so.
    #[arg(long, conflicts_with = "no_ack")]
    reject: bool,
    /// Consume from this exchange through a queue bound to it (tutorials 3–5).
    #[arg(long, value_name = "NAME")]
    exchange: Option<String>,
    #[command(flatten)]
    bind: BindingArgs,
    /// Exchange type if it must be created (default: fanout; topic with -k; headers with --match-header).
    #[arg(long = "type", value_name = "TYPE", requires = "exchange")]
    exchange_type: Option<String>,
    #[command(flatten)]
    out: MessageOutArgs,
    #[command(flatten)]
    queue_args: QueueArgs,
}

/// How a private queue is bound to an exchange (`receive --exchange`, `tail`).
#[derive(Debug, Args)]
pub(crate) struct BindingArgs {
    /// Binding key (repeatable; needs an exchange).
    #[arg(
        long = "binding-key",
        short = 'k',
        value_name = "KEY",
        requires = "exchange"
    )]
    pub(crate) binding_keys: Vec<String>,
    /// Headers-exchange binding: a header to match, KEY=VALUE (repeatable; needs an exchange).
    #[arg(long = "match-header", value_name = "KEY=VALUE", requires = "exchange")]
    pub(crate) match_headers: Vec<String>,
    /// Headers-exchange binding: all headers must match, or any.
    #[arg(long = "match", value_enum, default_value = "all")]
    pub(crate) match_mode: MatchMode,
}

/// `--match` values (the `x-match` binding argument).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum MatchMode {
    /// Every --match-header must match.
    All,
    /// One --match-header is enough.
    Any,
}

pub(crate) async fn run(args: ReceiveArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let mut sink = args.out.sink(&ctx.out)?;
    let bindings = args.bind.bindings(None)?;
    let prefetch = match args.end.count {
        Some(n) => args
            .prefetch
            .min(u16::try_from(n).unwrap_or(u16::MAX))
            .max(1),
        None => args.prefetch,
    };
    // A no-ack consumer ignores basic.qos (RabbitMQ pushes the whole queue): when the
    // command ends before the queue does, emulate no-ack with prompt acks instead.
    let ends_early =
        args.end.count.is_some() || args.end.timeout.is_some() || args.end.idle_timeout.is_some();
    let no_ack = args.no_ack && !ends_early;
    let opts = ConsumeOptions {
        prefetch,
        no_ack,
        exclusive: false,
    };
    // A receive with an end is a bounded step of a script: a lost connection ends it (69).
    let mut link = Link::open(ctx, !ends_early).await?;
    let plan = Plan {
        count: args.end.count,
        timeout: args.end.timeout,
        idle_timeout: args.end.idle_timeout,
        settle: if args.requeue {
            Settle::Requeue
        } else if args.reject {
            Settle::Reject
        } else {
            Settle::Ack
        },
        no_ack,
        prefetch,
        what: "receiving",
    };
    let mut said_ready = false;
    loop {
        let attempt = async {
            let mut sub = subscribe(&args, link.session(), &bindings, &opts).await?;
            if !said_ready {
                ctx.out.ready(&format!(
                    " [*] Waiting for messages in '{}'. To exit press CTRL+C",
                    sub.queue()
                ));
                said_ready = true;
            } else if args.queue.is_none() {
                ctx.out.warn(&format!(
                    "consuming again through a new private queue '{}': messages that went through exchange '{}' while disconnected were missed",
                    sub.queue(),
                    args.exchange.as_deref().unwrap_or_default()
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

/// Declare what the command uses and start consuming (again, after a reconnect).
async fn subscribe(
    args: &ReceiveArgs,
    session: &Session,
    bindings: &[(String, Map<String, Value>)],
    opts: &ConsumeOptions,
) -> anyhow::Result<Subscription> {
    Ok(match &args.exchange {
        Some(x) => {
            let kind = args.exchange_type.clone().unwrap_or_else(|| {
                default_exchange_type(
                    !args.bind.binding_keys.is_empty(),
                    !args.bind.match_headers.is_empty(),
                )
            });
            session.ensure_exchange(&exchange_spec(x, &kind)).await?;
            let (_, sub) = session
                .subscribe_exchange(args.queue.as_deref(), x, bindings, opts)
                .await?;
            sub
        }
        None => {
            let queue = args.queue.clone().unwrap_or_default();
            let (spec, mode) = args.queue_args.spec(&queue)?;
            session.prepare_queue(&spec, mode).await?;
            session.subscribe(&queue, opts).await?
        }
    })
}

/// The tutorials' default exchange types, guessed from the bindings asked for. Topic routes
/// keys without wildcards exactly like direct, so it is the safe guess when keys are given.
pub(crate) fn default_exchange_type(keys: bool, headers: bool) -> String {
    if headers {
        "headers"
    } else if keys {
        "topic"
    } else {
        "fanout"
    }
    .to_string()
}

pub(crate) fn exchange_spec(name: &str, kind: &str) -> ExchangeSpec {
    ExchangeSpec {
        name: name.to_string(),
        kind: kind.to_string(),
        durable: false,
        auto_delete: false,
        internal: false,
        arguments: Map::new(),
    }
}

impl BindingArgs {
    /// The `(key, arguments)` bindings asked for; `default_key` when none is.
    pub(crate) fn bindings(
        &self,
        default_key: Option<&str>,
    ) -> anyhow::Result<Vec<(String, Map<String, Value>)>> {
        let mut out: Vec<(String, Map<String, Value>)> = self
            .binding_keys
            .iter()
            .map(|k| (k.clone(), Map::new()))
            .collect();
        if let Some(mut headers) = parse_headers(&self.match_headers)? {
            let mode = match self.match_mode {
                MatchMode::All => "all",
                MatchMode::Any => "any",
            };
            headers.insert("x-match".into(), Value::String(mode.into()));
            out.push((String::new(), headers));
        }
        if out.is_empty() {
            out.push((default_key.unwrap_or_default().to_string(), Map::new()));
        }
        Ok(out)
    }
}
