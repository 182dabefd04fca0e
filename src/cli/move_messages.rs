//! `rmq move`: move a queue's messages to another queue, an exchange, or another broker —
//! at least once: every message is confirmed by the destination (publisher confirms)
//! before it is acknowledged at the source, so a crash of either side loses nothing and
//! may duplicate what was in flight.

use super::Ctx;
use super::signals::{interrupted, stop_signal};
use crate::client::{ConnectOptions, ConsumeOptions, PublishOptions, Publisher, Session, Settle};
use crate::client::{Delivery, Subscription};
use crate::exit::{self, coded};
use crate::output::Progress;
use clap::Args;
use std::time::Duration;

/// How long the consumer may see nothing before the source queue is asked whether it is
/// empty (someone else may have taken what the start-up count promised).
const IDLE: Duration = Duration::from_secs(1);

/// How long messages may wait in the source without reaching us before the move gives up
/// (another consumer is the single active one, say).
const STALLED: Duration = Duration::from_secs(30);

/// Move messages from queue SRC to queue DEST (or an exchange, or another broker).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq move orders.dlq orders                         # replay dead-lettered messages\n  rmq move orders.dlq --to-exchange orders -k retry  # through an exchange, one routing key\n  rmq move jobs jobs --to-url amqp://guest:guest@new-broker:5672/%2F   # migrate a queue\n  rmq move big archive --count 1000\n\nEach message keeps its properties and headers (x-death included) and its body; it is\npublished with publisher confirms (mandatory: an unroutable message stops the move) and\nacknowledged at the source only once confirmed. So nothing is lost if either broker or rmq\ndies, and what was in flight then may arrive twice: the move is at-least-once.\nIt ends after the messages SRC held when it started (or --count of them): messages\npublished meanwhile stay, so a queue that keeps filling does not keep the move running.\nIf others take messages too, it ends when SRC is found empty.\nDEST must exist (a missing queue would make every message unroutable).\nExit: 0 moved; 1 missing queue or exchange, unroutable message; 69 a broker went away\n(run it again: the rest is still in SRC); 130 Ctrl-C (what was confirmed is acked)."
)]
pub(crate) struct MoveArgs {
    /// Queue to take the messages from.
    #[arg(value_name = "SRC")]
    source: String,
    /// Queue to put them in (through the default exchange).
    #[arg(
        value_name = "DEST",
        required_unless_present = "to_exchange",
        conflicts_with = "to_exchange"
    )]
    destination: Option<String>,
    /// Move at most N messages.
    #[arg(long, short = 'n', value_name = "N")]
    count: Option<u64>,
    /// The destination broker (default: the source's).
    #[arg(long, value_name = "URL")]
    to_url: Option<String>,
    /// Publish to this exchange instead of a queue.
    #[arg(long, value_name = "NAME")]
    to_exchange: Option<String>,
    /// Routing key for --to-exchange (default: each message's own).
    #[arg(long, short = 'k', value_name = "KEY", requires = "to_exchange")]
    routing_key: Option<String>,
    /// Messages in flight: the consumer's prefetch and the destination's confirm window.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    prefetch: u16,
}

pub(crate) async fn run(args: MoveArgs, ctx: &Ctx) -> anyhow::Result<()> {
    if args.to_url.is_none() && args.destination.as_deref() == Some(args.source.as_str()) {
        return Err(coded(
            exit::USAGE,
            format!(
                "SRC and DEST are the same queue '{}' (give another DEST, or --to-url for another broker)",
                args.source
            ),
        ));
    }
    let src = Session::connect(&ctx.connect).await?;
    let own_dst = match &args.to_url {
        Some(url) => Some(
            Session::connect(&ConnectOptions {
                url: crate::config::split_urls(url)
                    .next()
                    .unwrap_or(url)
                    .to_string(),
                fallbacks: crate::config::split_urls(url)
                    .skip(1)
                    .map(str::to_string)
                    .collect(),
                ..ctx.connect.clone()
            })
            .await?,
        ),
        None => None,
    };
    let dst = own_dst.as_ref().unwrap_or(&src);
    let result = move_messages(&args, ctx, &src, dst).await;
    if let Some(dst) = own_dst {
        dst.close().await;
    }
    src.close().await;
    result
}

/// Where the messages go, for the closing line: `'q'`, `exchange 'x'`, `... on host:port`.
fn describe_destination(args: &MoveArgs, dst: &Session) -> String {
    let what = match (&args.to_exchange, &args.destination) {
        (Some(x), _) => format!("exchange '{x}'"),
        (None, d) => format!("'{}'", d.as_deref().unwrap_or_default()),
    };
    match &args.to_url {
        Some(_) => {
            let a = &dst.uri().authority;
            format!("{what} on {}:{}", a.host, a.port)
        }
        None => what,
    }
}

async fn move_messages(
    args: &MoveArgs,
    ctx: &Ctx,
    src: &Session,
    dst: &Session,
) -> anyhow::Result<()> {
    let source = &args.source;
    let Some(info) = src.queue_exists(source).await? else {
        return Err(coded(
            exit::FAILURE,
            format!(
                "cannot move from queue '{source}': it does not exist in vhost '{}'",
                src.vhost()
            ),
        ));
    };
    let (exchange, key) = match (&args.to_exchange, &args.destination) {
        (Some(x), _) => {
            if !dst.exchange_exists(x).await? {
                return Err(coded(
                    exit::FAILURE,
                    format!(
                        "cannot move to exchange '{x}': it does not exist in vhost '{}' (declare it first)",
                        dst.vhost()
                    ),
                ));
            }
            (x.clone(), args.routing_key.clone())
        }
        (None, dest) => {
            let dest = dest.clone().unwrap_or_default();
            if dst.queue_exists(&dest).await?.is_none() {
                return Err(coded(
                    exit::FAILURE,
                    format!(
                        "cannot move to queue '{dest}': it does not exist in vhost '{}' (declare it first: rmq declare queue {dest} --durable)",
                        dst.vhost()
                    ),
                ));
            }
            (String::new(), Some(dest))
        }
    };
    let to = describe_destination(args, dst);
    // The end is fixed at the start: a queue that keeps filling must not keep us going.
    let available = u64::from(info.messages);
    let target = args.count.map_or(available, |n| n.min(available));
    if target == 0 {
        ctx.out
            .note(&format!("moved 0 messages from '{source}' to {to}"));
        return Ok(());
    }
    let prefetch = args
        .prefetch
        .min(u16::try_from(target).unwrap_or(u16::MAX))
        .max(1);
    let opts = PublishOptions {
        confirm: true,
        window: usize::from(prefetch),
        mandatory: true,
        retain: false,
    };
    let mut mover = Mover {
        publisher: dst.publisher(opts).await?,
        sub: src
            .subscribe(
                source,
                &ConsumeOptions {
                    prefetch,
                    no_ack: false,
                    exclusive: false,
                },
            )
            .await?,
        progress: ctx.out.progress(Some(target), "moving", false),
        moved: 0,
        pending: 0,
        last_tag: 0,
    };
    let result = mover
        .run(
            src,
            source,
            target,
            usize::from(prefetch / 2).max(1),
            &exchange,
            key.as_deref(),
        )
        .await;
    mover.progress.finish();
    let moved = mover.moved;
    mover.sub.close().await;
    let _ = mover.publisher.finish().await;
    match result {
        Ok(end) => {
            let line = format!("moved {moved} messages from '{source}' to {to}");
            match end {
                End::Done => ctx.out.note(&line),
                End::Empty => ctx.out.note(&format!(
                    "{line} ('{source}' ran empty before the {target} it held at the start: others took the rest)"
                )),
                End::Interrupted => {
                    ctx.out.note(&format!("{line} (interrupted)"));
                    return Err(interrupted());
                }
            }
            Ok(())
        }
        Err(e) => {
            // A broker that went away is 69 whatever lapin reported it as (an ack on a
            // dead connection reads "invalid channel state"); else the cause's own code.
            let (code, lost) = match (src.is_connected(), dst.is_connected()) {
                (false, _) => (
                    exit::UNAVAILABLE,
                    "the connection to the source broker is lost: ",
                ),
                (_, false) => (
                    exit::UNAVAILABLE,
                    "the connection to the destination broker is lost: ",
                ),
                _ => (exit::code(&e), ""),
            };
            Err(coded(
                code,
                format!(
                    "moving from '{source}' to {to} stopped after {moved} of {target} messages: {lost}{e:#}; the rest stay in '{source}'{again} (what was in flight may arrive twice: moves are at-least-once)",
                    again = if lost.is_empty() {
                        ""
                    } else {
                        ": run it again once the broker is back"
                    }
                ),
            ))
        }
    }
}

/// How a move ended without an error.
enum End {
    /// The count fixed at the start was moved.
    Done,
    /// The source ran empty first.
    Empty,
    /// Ctrl-C or SIGTERM (what was published was confirmed and acked first).
    Interrupted,
}

/// A move in progress: deliveries published but not yet confirmed and acked.
struct Mover {
    /// Publishes to the destination with confirms.
    publisher: Publisher,
    /// Consumes the source with a prefetch window.
    sub: Subscription,
    /// The bar, counting acknowledged (so, moved) messages.
    progress: Progress,
    /// Confirmed at the destination and acked at the source.
    moved: u64,
    /// Published, not yet confirmed and acked.
    pending: u64,
    /// The delivery tag of the last one published (acking it with `multiple` acks the batch).
    last_tag: u64,
}

impl Mover {
    async fn run(
        &mut self,
        src: &Session,
        source: &str,
        target: u64,
        batch: usize,
        exchange: &str,
        key: Option<&str>,
    ) -> anyhow::Result<End> {
        let stop = stop_signal();
        tokio::pin!(stop);
        let mut idle_since: Option<tokio::time::Instant> = None;
        while self.moved + self.pending < target {
            // Commit a full batch, or whatever is published once nothing more is waiting:
            // the source holds those messages for us until they are acked.
            if self.pending > 0 && (self.pending >= batch as u64 || !self.sub.ready().await) {
                self.commit().await?;
                continue;
            }
            let next = tokio::select! {
                next = self.sub.next() => next?,
                _ = tokio::time::sleep(IDLE) => {
                    // Nothing came: is the source empty, or is someone else served first?
                    let Some(q) = src.queue_exists(source).await? else {
                        return Err(coded(exit::FAILURE, format!("queue '{source}' was deleted")));
                    };
                    if q.messages == 0 {
                        return Ok(End::Empty);
                    }
                    let since = *idle_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= STALLED {
                        return Err(coded(exit::FAILURE, format!(
                            "{} messages wait in '{source}' but none reached us for {STALLED:?} (does another consumer hold the queue: single active consumer, exclusive?)",
                            q.messages
                        )));
                    }
                    continue;
                }
                _ = &mut stop => {
                    self.commit().await?;
                    return Ok(End::Interrupted);
                }
            };
            idle_since = None;
            let Some(Delivery { message, tag }) = next else {
                self.commit().await?;
                return Err(coded(
                    exit::FAILURE,
                    format!(
                        "the broker cancelled the consumer of '{source}' (was the queue deleted?)"
                    ),
                ));
            };
            let key = key.unwrap_or(&message.routing_key);
            self.publisher
                .publish(exchange, key, &message.properties, &message.body)
                .await?;
            self.pending += 1;
            self.last_tag = tag;
        }
        self.commit().await?;
        Ok(End::Done)
    }

    /// Wait for the destination's confirms of everything published, then ack it all at
    /// the source in one `multiple` ack. A message the destination returned (unroutable)
    /// sends the whole batch back to the source instead, and stops the move.
    async fn commit(&mut self) -> anyhow::Result<()> {
        if self.pending == 0 {
            return Ok(());
        }
        let returned_before = self.publisher.report().returned.len();
        self.publisher.flush().await?;
        if let Some((text, key)) = self.publisher.report().returned.get(returned_before) {
            let (text, key) = (text.clone(), key.clone());
            self.sub
                .settle(self.last_tag, Settle::Requeue, true)
                .await?;
            return Err(coded(
                exit::FAILURE,
                format!(
                    "the destination could not route a message with routing key '{key}' ({text}): no queue is bound for it"
                ),
            ));
        }
        self.sub.settle(self.last_tag, Settle::Ack, true).await?;
        for _ in 0..self.pending {
            self.progress.inc();
        }
        self.moved += self.pending;
        self.pending = 0;
        Ok(())
    }
}
