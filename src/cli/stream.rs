//! The consuming loop shared by `receive` and `tail`: print or save each message, settle
//! it after it reached stdout (or disk), and end on `--count`, `--timeout`,
//! `--idle-timeout`, a cancelled consumer or Ctrl-C — with the exit code scripts expect.

use super::Ctx;
use super::signals::{interrupted, stop_signal};
use crate::client::{Delivery, Settle, Subscription};
use crate::exit::{self, coded};
use crate::output::{MessageFormat, SaveDir};
use std::time::Duration;
use tokio::time::Instant;

/// Where each message goes.
pub(crate) enum Sink {
    /// Printed on stdout.
    Print(MessageFormat),
    /// Saved as files (`--save-dir`).
    Save(SaveDir),
}

impl Sink {
    fn put(&mut self, d: &Delivery, ctx: &Ctx) -> anyhow::Result<()> {
        match self {
            Sink::Print(format) => ctx.out.message(&d.message, d.tag, format)?,
            Sink::Save(dir) => dir.save(&d.message).map_err(|e| {
                coded(
                    exit::FAILURE,
                    format!("cannot save a message in '{}': {e}", dir.dir().display()),
                )
            })?,
        }
        Ok(())
    }
}

/// How the loop settles and when it ends.
pub(crate) struct Plan {
    /// Stop after this many messages.
    pub(crate) count: Option<u64>,
    /// Give up after this long overall.
    pub(crate) timeout: Option<Duration>,
    /// Give up after this long without a message.
    pub(crate) idle_timeout: Option<Duration>,
    /// What to do with a message once printed.
    pub(crate) settle: Settle,
    /// Consuming without acks: nothing to settle.
    pub(crate) no_ack: bool,
    /// The prefetch in force; settling in batches of half of it keeps deliveries flowing.
    pub(crate) prefetch: u16,
    /// Label of the progress bar.
    pub(crate) what: &'static str,
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

/// Consume until the plan says stop; the error carries the exit code.
pub(crate) async fn consume(
    sub: &mut Subscription,
    plan: &Plan,
    sink: &mut Sink,
    ctx: &Ctx,
) -> anyhow::Result<()> {
    let stdout_used = matches!(sink, Sink::Print(_));
    let progress = ctx.out.progress(plan.count, plan.what, stdout_used);
    let mut acks = Acks {
        last: None,
        n: 0,
        batch: u64::from(plan.prefetch / 2).max(1),
        how: plan.settle,
        off: plan.no_ack,
    };
    let deadline = plan.timeout.map(|t| Instant::now() + t);
    let mut received: u64 = 0;
    let far = Duration::from_secs(86400 * 365);
    let end = loop {
        if plan.count.is_some_and(|n| received >= n) {
            break End::Count;
        }
        // Settle what was printed before waiting: the broker should not hold them for us.
        if acks.n > 0 && !sub.ready().await {
            acks.flush(sub, ctx).await?;
        }
        let idle = plan.idle_timeout.unwrap_or(far);
        tokio::select! {
            next = sub.next() => match next? {
                None => break End::Cancelled,
                Some(d) => {
                    received += 1;
                    sink.put(&d, ctx)?;
                    progress.inc();
                    acks.push(d.tag);
                    if acks.n >= acks.batch {
                        acks.flush(sub, ctx).await?;
                    }
                }
            },
            _ = sleep_until(deadline, far) => break End::Timeout,
            _ = tokio::time::sleep(idle) => break End::Idle,
            _ = stop_signal() => break End::Interrupted,
        }
    };
    acks.flush(sub, ctx).await?;
    progress.finish();
    if let Sink::Save(dir) = sink {
        ctx.out.note(&format!(
            " [x] Saved {received} messages in '{}'",
            dir.dir().display()
        ));
    }

    match end {
        End::Count => Ok(()),
        End::Interrupted => Err(interrupted()),
        End::Cancelled if plan.count.is_none() => Err(coded(
            exit::FAILURE,
            "the broker cancelled the consumer (was the queue deleted?)",
        )),
        End::Cancelled | End::Timeout | End::Idle => match plan.count {
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
