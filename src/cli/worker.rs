//! `rmq worker`: tutorial 2's worker made real — fair dispatch (prefetch), a command per
//! message, ack on success and nack on failure.

use super::Ctx;
use super::args::{QueueArgs, interrupted, parse_secs, stop_signal};
use super::exec;
use crate::client::{ConsumeOptions, Message, Session, Settle, Settler};
use crate::exit::{self, coded};
use clap::{Args, ValueEnum};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Process a queue's messages, one at a time by default.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq worker task_queue                              # tutorial 2: sleep 1 s per '.' in the body\n  rmq worker jobs --exec './process.sh'              # body on stdin, properties in RMQ_* variables\n  rmq worker jobs --exec 'convert - out.png' --concurrency 4 --on-failure reject\n  rmq worker task_queue --count 10                   # stop after 10 messages\n\nThe command sees RMQ_QUEUE, RMQ_EXCHANGE, RMQ_ROUTING_KEY, RMQ_REDELIVERED, RMQ_DELIVERY_TAG,\nRMQ_CORRELATION_ID, RMQ_REPLY_TO, RMQ_MESSAGE_ID, RMQ_CONTENT_TYPE, RMQ_TYPE, RMQ_APP_ID, ...\nand RMQ_HEADER_<NAME> per header (name upper-cased, other characters as _).\nExit status 0 acks the message; anything else nacks it (--on-failure)."
)]
pub(crate) struct WorkerArgs {
    /// Queue to work from.
    queue: String,
    /// Shell command run per message (sh -c), body on stdin; without it, the tutorial's simulated work.
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,
    /// Unacknowledged messages this worker holds (1 = fair dispatch, as in the tutorial).
    #[arg(long, default_value_t = 1, value_name = "N")]
    prefetch: u16,
    /// Messages processed at once (the prefetch is raised to match).
    #[arg(long, default_value_t = 1, value_name = "N")]
    concurrency: u16,
    /// What a failed message becomes: requeued for another try, or rejected (dead-lettered if the queue has a DLX).
    #[arg(long, value_enum, default_value = "requeue")]
    on_failure: OnFailure,
    /// Stop after N messages.
    #[arg(long, short = 'n', value_name = "N")]
    count: Option<u64>,
    /// Simulated work per '.' in the body (without --exec).
    #[arg(long, value_parser = parse_secs, default_value = "1", value_name = "SECS")]
    dot_time: Duration,
    #[command(flatten)]
    queue_args: QueueArgs,
}

/// `--on-failure` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum OnFailure {
    /// Put it back for another try (it comes back marked redelivered).
    Requeue,
    /// Drop it, or dead-letter it when the queue has x-dead-letter-exchange.
    Reject,
}

/// What each job needs, shared by the concurrent jobs.
struct Job {
    /// The command, if any.
    exec: Option<String>,
    /// Queue name for `RMQ_QUEUE`.
    queue: String,
    /// Settle outcome for failures.
    failure: Settle,
    /// Time per '.'.
    dot_time: Duration,
    /// Settles on the subscription's channel.
    settler: Settler,
    /// Printing.
    ctx_out: Arc<crate::output::Output>,
    /// Messages processed, with a live rate (drawn only on a terminal, never with --quiet).
    progress: crate::output::Progress,
}

pub(crate) async fn run(args: WorkerArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let concurrency = args.concurrency.max(1);
    let (spec, mode) = args.queue_args.spec(&args.queue)?;
    let session = Session::connect(&ctx.connect).await?;
    session.prepare_queue(&spec, mode).await?;
    let opts = ConsumeOptions {
        prefetch: args.prefetch.max(concurrency),
        no_ack: false,
        exclusive: false,
    };
    let mut sub = session.subscribe(&args.queue, &opts).await?;
    let job = Arc::new(Job {
        exec: args.exec.clone(),
        queue: args.queue.clone(),
        failure: match args.on_failure {
            OnFailure::Requeue => Settle::Requeue,
            OnFailure::Reject => Settle::Reject,
        },
        dot_time: args.dot_time,
        settler: sub.settler(),
        ctx_out: ctx.out.clone(),
        // Without --exec the tutorial's lines go to stdout: no bar over them on a terminal.
        progress: ctx
            .out
            .progress(args.count, "processed", args.exec.is_none()),
    });
    ctx.out.ready(&format!(
        " [*] Waiting for messages in '{}'. To exit press CTRL+C",
        args.queue
    ));

    let slots = Arc::new(Semaphore::new(usize::from(concurrency)));
    let (errors_tx, mut errors_rx) = tokio::sync::mpsc::unbounded_channel::<anyhow::Error>();
    let mut taken: u64 = 0;
    let work = async {
        loop {
            if args.count.is_some_and(|n| taken >= n) {
                break Ok(());
            }
            let permit = slots.clone().acquire_owned().await?;
            let delivery = tokio::select! {
                d = sub.next() => d?,
                e = errors_rx.recv() => return Err(e.unwrap_or_else(|| anyhow::anyhow!("worker task vanished"))),
            };
            let Some(d) = delivery else {
                break Err(coded(
                    exit::FAILURE,
                    "the broker cancelled the consumer (was the queue deleted?)",
                ));
            };
            taken += 1;
            let job = job.clone();
            let errors = errors_tx.clone();
            tokio::spawn(async move {
                if let Err(e) = job.process(d.tag, d.message).await {
                    let _ = errors.send(e);
                }
                drop(permit);
            });
        }
    };
    let result = tokio::select! {
        r = work => r,
        _ = stop_signal() => Err(interrupted()),
    };
    if result.is_ok() {
        // Let the jobs in flight finish (and settle) before closing the channel.
        let _ = slots.acquire_many(u32::from(concurrency)).await;
        if let Ok(e) = errors_rx.try_recv() {
            return Err(e);
        }
    }
    job.progress.finish();
    // Closing the channel requeues whatever was taken but not settled.
    sub.close().await;
    session.close().await;
    result
}

impl Job {
    async fn process(&self, tag: u64, msg: Message) -> anyhow::Result<()> {
        let text = String::from_utf8_lossy(&msg.body).into_owned();
        let out = &self.ctx_out;
        let outcome = match &self.exec {
            None => {
                out.line(&format!(" [x] Received '{text}'"))?;
                out.flush()?;
                let dots = msg.body.iter().filter(|b| **b == b'.').count();
                tokio::time::sleep(self.dot_time * u32::try_from(dots).unwrap_or(u32::MAX)).await;
                out.line(" [x] Done")?;
                out.flush()?;
                Settle::Ack
            }
            Some(cmd) => {
                out.note(&format!(" [x] Received '{text}'"));
                out.flush()?;
                let r = exec::run(cmd, &self.queue, tag, &msg, false).await?;
                if r.status.success() {
                    out.note(" [x] Done");
                    Settle::Ack
                } else {
                    let what = match self.failure {
                        Settle::Reject => "rejected",
                        _ => "requeued",
                    };
                    out.note(&format!(
                        " [!] `{cmd}` failed ({}): message {what}",
                        r.status
                    ));
                    self.failure
                }
            }
        };
        self.settler.settle(tag, outcome).await?;
        self.progress.inc();
        Ok(())
    }
}
