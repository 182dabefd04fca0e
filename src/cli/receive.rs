//! `rmq receive`: consume from a queue (or an exchange, through an exclusive queue) and print.

use super::Ctx;
use super::args::{QueueArgs, interrupted, parse_headers, parse_secs, stop_signal};
use crate::client::{ConsumeOptions, ExchangeSpec, Session, Settle, Subscription};
use crate::exit::{self, coded};
use clap::{Args, ValueEnum};
use serde_json::{Map, Value};
use std::time::Duration;
use tokio::time::Instant;

/// Consume messages and print them.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq receive hello                                  # tutorial 1: print until Ctrl-C\n  rmq receive hello --count 1 --timeout 5            # one message, or exit 3 after 5 s\n  rmq receive --exchange logs                        # tutorial 3: a private queue bound to 'logs'\n  rmq receive --exchange direct_logs --type direct -k warning -k error   # tutorial 4\n  rmq receive --exchange topic_logs -k '*.orange.*' -k 'lazy.#'          # tutorial 5\n  rmq receive q --output jsonl > backup.jsonl --idle-timeout 1           # lossless dump\n\nMessages are acknowledged after they are printed (--no-ack: on delivery).\nA ready line goes to stderr once consuming: ' [*] Waiting for messages in Q...'.\nExit: 0 done or Ctrl-C-free end; 3 --count not reached before --timeout/--idle-timeout (or nothing at all with only a timeout); 130 Ctrl-C."
)]
pub(crate) struct ReceiveArgs {
    /// Queue to consume from (optional with --exchange: a server-named exclusive queue is used).
    #[arg(required_unless_present = "exchange")]
    queue: Option<String>,
    /// Stop after N messages.
    #[arg(long, short = 'n', value_name = "N")]
    count: Option<u64>,
    /// Give up after this many seconds overall.
    #[arg(long, value_parser = parse_secs, value_name = "SECS")]
    timeout: Option<Duration>,
    /// Give up after this many seconds without a message.
    #[arg(long, value_parser = parse_secs, value_name = "SECS")]
    idle_timeout: Option<Duration>,
    /// Unacknowledged messages in flight (capped at --count so no extra message is taken).
    #[arg(long, default_value_t = 200, value_name = "N")]
    prefetch: u16,
    /// Let the broker forget each message as soon as it is sent (no acks, no redelivery).
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
    /// Binding key (repeatable; needs --exchange).
    #[arg(
        long = "binding-key",
        short = 'k',
        value_name = "KEY",
        requires = "exchange"
    )]
    binding_keys: Vec<String>,
    /// Headers-exchange binding: a header to match, KEY=VALUE (repeatable; needs --exchange).
    #[arg(long = "match-header", value_name = "KEY=VALUE", requires = "exchange")]
    match_headers: Vec<String>,
    /// Headers-exchange binding: all headers must match, or any.
    #[arg(long = "match", value_enum, default_value = "all")]
    match_mode: MatchMode,
    /// Exchange type if it must be created (default: fanout; topic with -k; headers with --match-header).
    #[arg(long = "type", value_name = "TYPE", requires = "exchange")]
    exchange_type: Option<String>,
    #[command(flatten)]
    queue_args: QueueArgs,
}

/// `--match` values (the `x-match` binding argument).
#[derive(Debug, Clone, Copy, ValueEnum)]
enum MatchMode {
    /// Every --match-header must match.
    All,
    /// One --match-header is enough.
    Any,
}

/// Why the loop ended.
enum End {
    /// --count reached.
    Count,
    /// --timeout passed.
    Timeout,
    /// --idle-timeout passed without a message.
    Idle,
    /// The broker cancelled the consumer (queue deleted).
    Cancelled,
    /// Ctrl-C or SIGTERM.
    Interrupted,
}

pub(crate) async fn run(args: ReceiveArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let format = ctx
        .out
        .message_format()
        .map_err(|e| coded(exit::USAGE, e))?;
    let bindings = bindings(&args)?;
    let prefetch = match args.count {
        Some(n) => args
            .prefetch
            .min(u16::try_from(n).unwrap_or(u16::MAX))
            .max(1),
        None => args.prefetch,
    };
    let opts = ConsumeOptions {
        prefetch,
        no_ack: args.no_ack,
        exclusive: false,
    };
    let session = Session::connect(&ctx.connect).await?;
    let mut sub = match &args.exchange {
        Some(x) => {
            let kind = args.exchange_type.clone().unwrap_or_else(|| {
                default_exchange_type(
                    !args.binding_keys.is_empty(),
                    !args.match_headers.is_empty(),
                )
            });
            session.ensure_exchange(&exchange_spec(x, &kind)).await?;
            let (_, sub) = session
                .subscribe_exchange(args.queue.as_deref(), x, &bindings, &opts)
                .await?;
            sub
        }
        None => {
            let queue = args.queue.clone().unwrap_or_default();
            let (spec, mode) = args.queue_args.spec(&queue)?;
            session.prepare_queue(&spec, mode).await?;
            session.subscribe(&queue, &opts).await?
        }
    };
    ctx.out.ready(&format!(
        " [*] Waiting for messages in '{}'. To exit press CTRL+C",
        sub.queue()
    ));

    let settle = if args.requeue {
        Settle::Requeue
    } else if args.reject {
        Settle::Reject
    } else {
        Settle::Ack
    };
    let progress = ctx
        .out
        .progress(args.count.filter(|n| *n >= 1000), "receiving", true);
    let mut acks = Acks {
        last: None,
        n: 0,
        batch: u64::from(prefetch / 2).max(1),
        how: settle,
        off: args.no_ack,
    };
    let deadline = args.timeout.map(|t| Instant::now() + t);
    let mut received: u64 = 0;
    let far = Duration::from_secs(86400 * 365);
    let end = loop {
        if args.count.is_some_and(|n| received >= n) {
            break End::Count;
        }
        // Settle what was printed before waiting: the broker should not hold them for us.
        if acks.n > 0 && !sub.ready().await {
            acks.flush(&sub, ctx).await?;
        }
        let idle = args.idle_timeout.unwrap_or(far);
        tokio::select! {
            next = sub.next() => match next? {
                None => break End::Cancelled,
                Some(d) => {
                    received += 1;
                    ctx.out.message(&d.message, format)?;
                    progress.inc();
                    acks.push(d.tag);
                    if acks.n >= acks.batch {
                        acks.flush(&sub, ctx).await?;
                    }
                }
            },
            _ = sleep_until(deadline, far) => break End::Timeout,
            _ = tokio::time::sleep(idle) => break End::Idle,
            _ = stop_signal() => break End::Interrupted,
        }
    };
    acks.flush(&sub, ctx).await?;
    progress.finish();
    sub.close().await;
    session.close().await;

    match end {
        End::Count => Ok(()),
        End::Interrupted => Err(interrupted()),
        End::Cancelled if args.count.is_none() => Err(coded(
            exit::FAILURE,
            "the broker cancelled the consumer (was the queue deleted?)",
        )),
        End::Cancelled | End::Timeout | End::Idle => match args.count {
            Some(n) => Err(coded(
                exit::INCOMPLETE,
                format!("received {received} of {n} messages before {}", why(&end)),
            )),
            None if received == 0 => Err(coded(
                exit::INCOMPLETE,
                format!("no message received before {}", why(&end)),
            )),
            None => Ok(()),
        },
    }
}

fn why(end: &End) -> &'static str {
    match end {
        End::Timeout => "the timeout",
        End::Idle => "the idle timeout",
        _ => "the consumer was cancelled",
    }
}

async fn sleep_until(deadline: Option<Instant>, far: Duration) {
    tokio::time::sleep_until(deadline.unwrap_or_else(|| Instant::now() + far)).await;
}

/// Deliveries printed but not yet settled; settled together (`multiple`) to save round trips.
struct Acks {
    /// Highest tag printed and not yet settled.
    last: Option<u64>,
    /// How many are waiting.
    n: u64,
    /// Settle once this many wait.
    batch: u64,
    /// Ack, requeue or reject.
    how: Settle,
    /// `--no-ack`: nothing to settle.
    off: bool,
}

impl Acks {
    fn push(&mut self, tag: u64) {
        if !self.off {
            self.last = Some(tag);
            self.n += 1;
        }
    }

    /// Make sure the printed messages reached stdout, then settle them ("ack after print").
    async fn flush(&mut self, sub: &Subscription, ctx: &Ctx) -> anyhow::Result<()> {
        ctx.out.flush()?;
        if let Some(tag) = self.last.take() {
            sub.settle(tag, self.how, true).await?;
        }
        self.n = 0;
        Ok(())
    }
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

fn bindings(args: &ReceiveArgs) -> anyhow::Result<Vec<(String, Map<String, Value>)>> {
    let mut out: Vec<(String, Map<String, Value>)> = args
        .binding_keys
        .iter()
        .map(|k| (k.clone(), Map::new()))
        .collect();
    if let Some(mut headers) = parse_headers(&args.match_headers)? {
        let mode = match args.match_mode {
            MatchMode::All => "all",
            MatchMode::Any => "any",
        };
        headers.insert("x-match".into(), Value::String(mode.into()));
        out.push((String::new(), headers));
    }
    if out.is_empty() {
        out.push((String::new(), Map::new()));
    }
    Ok(out)
}
