//! `rmq worker`: tutorial 2's worker made real — fair dispatch (prefetch), a command per
//! message, ack on success and nack on failure.

use super::Ctx;
use super::args::{QueueArgs, parse_secs};
use super::exec;
use super::resume::Link;
use super::signals::{interrupted, stop_signal};
use crate::client::{ConsumeOptions, Message, Settle, Settler};
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
    /// Printing.
    ctx_out: Arc<crate::output::Output>,
    /// Messages processed, with a live rate (drawn only on a terminal, never with --quiet).
    progress: crate::output::Progress,
}

/// A job's failure, with the connection it belonged to: after a reconnect, the old
/// connection's failures are history, not a reason to stop.
type JobError = (u64, anyhow::Error);

pub(crate) async fn run(args: WorkerArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let concurrency = args.concurrency.max(1);
    let (spec, mode) = args.queue_args.spec(&args.queue)?;
    let mut link = Link::open(ctx, true).await?;
    let opts = ConsumeOptions {
        prefetch: args.prefetch.max(concurrency),
        no_ack: false,
        exclusive: false,
    };
    let job = Arc::new(Job {
        exec: args.exec.clone(),
        queue: args.queue.clone(),
        failure: match args.on_failure {
            OnFailure::Requeue => Settle::Requeue,
            OnFailure::Reject => Settle::Reject,
        },
        dot_time: args.dot_time,
        ctx_out: ctx.out.clone(),
        // Without --exec the tutorial's lines go to stdout: no bar over them on a terminal.
        progress: ctx
            .out
            .progress(args.count, "processed", args.exec.is_none()),
    });
    let slots = Arc::new(Semaphore::new(usize::from(concurrency)));
    let (errors_tx, mut errors_rx) = tokio::sync::mpsc::unbounded_channel::<JobError>();
    let mut taken: u64 = 0;
    let mut ready_said = false;
    let mut last_sub = None;
    let result = loop {
        let generation = link.reconnects;
        let session = link.session();
        let attempt = async {
            session.prepare_queue(&spec, mode).await?;
            let mut sub = session.subscribe(&args.queue, &opts).await?;
            if !ready_said {
                ctx.out.ready(&format!(
                    " [*] Waiting for messages in '{}'. To exit press CTRL+C",
                    args.queue
                ));
                ready_said = true;
            }
            let settler = sub.settler();
            let r = loop {
                if args.count.is_some_and(|n| taken >= n) {
                    break Ok(());
                }
                let permit = slots.clone().acquire_owned().await?;
                let delivery = tokio::select! {
                    d = sub.next() => match d {
                        Ok(d) => d,
                        Err(e) => break Err(e),
                    },
                    e = next_error(&mut errors_rx, generation) => break Err(e),
                };
                let Some(d) = delivery else {
                    break Err(coded(
                        exit::FAILURE,
                        "the broker cancelled the consumer (was the queue deleted?)",
                    ));
                };
                taken += 1;
                let (job, errors, settler) = (job.clone(), errors_tx.clone(), settler.clone());
                tokio::spawn(async move {
                    if let Err(e) = job.process(&settler, d.tag, d.message).await {
                        let _ = errors.send((generation, e));
                    }
                    drop(permit);
                });
            };
            Ok::<_, anyhow::Error>((sub, r))
        };
        let outcome = tokio::select! {
            r = attempt => match r {
                Ok((sub, r)) => { last_sub = Some(sub); r }
                Err(e) => Err(e),
            },
            () = stop_signal() => break Err(interrupted()),
        };
        match outcome {
            Ok(()) => break Ok(()),
            Err(e) => {
                if let Err(e) = link.recover(e).await {
                    break Err(e);
                }
            }
        }
    };
    if result.is_ok() {
        // Let the jobs in flight finish (and settle) before closing the channel.
        let _ = slots.acquire_many(u32::from(concurrency)).await;
        while let Ok((generation, e)) = errors_rx.try_recv() {
            if generation == link.reconnects {
                job.progress.finish();
                return Err(e);
            }
        }
    }
    job.progress.finish();
    // Closing the channel requeues whatever was taken but not settled.
    if let Some(sub) = last_sub {
        sub.close().await;
    }
    link.close().await;
    result
}

/// The next failure of a job of this connection (older ones were reported already).
async fn next_error(
    errors: &mut tokio::sync::mpsc::UnboundedReceiver<JobError>,
    generation: u64,
) -> anyhow::Error {
    loop {
        match errors.recv().await {
            Some((g, e)) if g == generation => return e,
            Some(_) => continue,
            None => return anyhow::anyhow!("worker task vanished"),
        }
    }
}

impl Job {
    /// Run the work, settle, and only then say how it ended: " [x] Done" means the ack
    /// was written, not merely that the work finished.
    async fn process(&self, settler: &Settler, tag: u64, msg: Message) -> anyhow::Result<()> {
        let text = String::from_utf8_lossy(&msg.body).into_owned();
        let out = &self.ctx_out;
        let (outcome, failed) = match &self.exec {
            None => {
                out.line(&format!(" [x] Received '{text}'"))?;
                out.flush()?;
                let dots = msg.body.iter().filter(|b| **b == b'.').count();
                tokio::time::sleep(self.dot_time * u32::try_from(dots).unwrap_or(u32::MAX)).await;
                (Settle::Ack, None)
            }
            Some(cmd) => {
                out.note(&format!(" [x] Received '{text}'"));
                out.flush()?;
                let r = exec::run(cmd, &self.queue, tag, &msg, false).await?;
                if r.status.success() {
                    (Settle::Ack, None)
                } else {
                    (self.failure, Some(format!("`{cmd}` failed ({})", r.status)))
                }
            }
        };
        if let Err(e) = settler.settle(tag, outcome).await {
            out.warn(&format!(
                "message {tag} was processed but its {} could not be sent ({e:#}): the broker will deliver it again",
                if outcome == Settle::Ack { "ack" } else { "nack" }
            ));
            return Err(e);
        }
        match (&self.exec, failed) {
            (_, Some(why)) => {
                let what = match self.failure {
                    Settle::Reject => "rejected",
                    _ => "requeued",
                };
                out.note(&format!(" [!] {why}: message {what}"));
            }
            (None, None) => {
                out.line(" [x] Done")?;
                out.flush()?;
            }
            (Some(_), None) => out.note(" [x] Done"),
        }
        self.progress.inc();
        Ok(())
    }
}
