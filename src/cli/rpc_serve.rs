//! `rmq rpc-serve`: tutorial 6's server — answer each request on its `reply_to` queue
//! with its `correlation_id`, then ack it.

use super::Ctx;
use super::args::QueueArgs;
use super::exec;
use super::resume::Link;
use super::signals::{interrupted, stop_signal};
use crate::client::{
    ConsumeOptions, DeclareMode, Message, Properties, PublishOptions, QueueSpec, Session, Settle,
};
use crate::exit::{self, coded};
use clap::Args;
use serde_json::{Map, Value};

/// The header a failed `--exec` reply carries (the command's exit code); `rpc-call` exits 1 on it.
pub(crate) const EXIT_STATUS_HEADER: &str = "x-rmq-exit-status";

/// Answer RPC requests from a queue.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq rpc-serve rpc_queue --fib                      # tutorial 6: replies fib(n)\n  rmq rpc-serve upper --exec 'tr a-z A-Z'            # request on stdin, reply from stdout\n  rmq rpc-serve rpc_queue --fib --count 3            # stop after three requests\n\nA failing --exec command still replies (its stdout), with the header x-rmq-exit-status."
)]
pub(crate) struct RpcServeArgs {
    /// Queue the requests arrive on.
    queue: String,
    /// Shell command per request: request body on stdin, reply is its stdout.
    #[arg(
        long,
        value_name = "CMD",
        required_unless_present = "fib",
        conflicts_with = "fib"
    )]
    exec: Option<String>,
    /// The tutorial's demo: the request is n, the reply fib(n).
    #[arg(long)]
    fib: bool,
    /// Stop after N requests.
    #[arg(long, short = 'n', value_name = "N")]
    count: Option<u64>,
    /// Requests held at once (1 spreads load evenly over several servers).
    #[arg(long, default_value_t = 1, value_name = "N")]
    prefetch: u16,
    #[command(flatten)]
    queue_args: QueueArgs,
}

pub(crate) async fn run(args: RpcServeArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let (spec, mode) = args.queue_args.spec(&args.queue)?;
    let mut link = Link::open(ctx, true).await?;
    let mut served: u64 = 0;
    let mut said_ready = false;
    let result = loop {
        let attempt = serve(
            &args,
            link.session(),
            &spec,
            mode,
            &mut served,
            &mut said_ready,
            ctx,
        );
        let r = tokio::select! {
            r = attempt => r,
            _ = stop_signal() => break Err(interrupted()),
        };
        match r {
            Ok(()) => break Ok(()),
            Err(e) => {
                if let Err(e) = link.recover(e).await {
                    break Err(e);
                }
            }
        }
    };
    link.close().await;
    result
}

/// Consume and answer until `--count` (or a failure); called again after a reconnect.
async fn serve(
    args: &RpcServeArgs,
    session: &Session,
    spec: &QueueSpec,
    mode: DeclareMode,
    served: &mut u64,
    said_ready: &mut bool,
    ctx: &Ctx,
) -> anyhow::Result<()> {
    session.prepare_queue(spec, mode).await?;
    let mut sub = session
        .subscribe(
            &args.queue,
            &ConsumeOptions {
                prefetch: args.prefetch,
                no_ack: false,
                exclusive: false,
            },
        )
        .await?;
    // Replies are confirmed before the request is acked: a crash in between answers
    // twice (the caller ignores the duplicate) rather than never.
    let mut replies = session
        .publisher(PublishOptions {
            confirm: true,
            window: 1,
            mandatory: false,
            retain: false,
        })
        .await?;
    if !*said_ready {
        ctx.out
            .ready(&format!(" [x] Awaiting RPC requests on '{}'", args.queue));
        *said_ready = true;
    }
    while args.count.is_none_or(|n| *served < n) {
        let Some(d) = sub.next().await? else {
            return Err(coded(
                exit::FAILURE,
                "the broker cancelled the consumer (was the queue deleted?)",
            ));
        };
        let (body, failed) = answer(args, &d.message, d.tag).await?;
        match &d.message.properties.reply_to {
            Some(reply_to) => {
                let mut props = Properties {
                    correlation_id: d.message.properties.correlation_id.clone(),
                    ..Properties::default()
                };
                if let Some(code) = failed {
                    let mut h = Map::new();
                    h.insert(EXIT_STATUS_HEADER.into(), Value::from(code));
                    props.headers = Some(h);
                }
                replies.publish("", reply_to, &props, &body).await?;
                replies.flush().await?;
            }
            None => ctx
                .out
                .note(" [!] request without reply_to: no one to answer"),
        }
        sub.settle(d.tag, Settle::Ack, false).await?;
        *served += 1;
    }
    sub.close().await;
    let _ = replies.finish().await;
    Ok(())
}

/// The reply body, and the command's exit code if it failed.
async fn answer(
    args: &RpcServeArgs,
    msg: &Message,
    tag: u64,
) -> anyhow::Result<(Vec<u8>, Option<i64>)> {
    if let Some(cmd) = &args.exec {
        let r = exec::run(cmd, &args.queue, tag, msg, true).await?;
        let failed = (!r.status.success()).then(|| i64::from(r.status.code().unwrap_or(-1)));
        return Ok((r.stdout, failed));
    }
    let text = String::from_utf8_lossy(&msg.body);
    Ok(match text.trim().parse::<u32>() {
        Ok(n) if n <= 186 => (fib(n).to_string().into_bytes(), None),
        _ => (
            format!("error: '{}' is not an integer from 0 to 186", text.trim()).into_bytes(),
            Some(1),
        ),
    })
}

/// The n-th Fibonacci number (iterative: the tutorial's recursion is exponential).
fn fib(n: u32) -> u128 {
    let (mut a, mut b) = (0u128, 1u128);
    for _ in 0..n {
        // Saturating: the last step computes fib(n + 1), which may not fit when n = 186.
        (a, b) = (b, a.saturating_add(b));
    }
    a
}

#[cfg(test)]
mod tests {
    #[test]
    fn fib_matches_the_tutorial() {
        assert_eq!(super::fib(0), 0);
        assert_eq!(super::fib(1), 1);
        assert_eq!(super::fib(30), 832040);
        assert!(super::fib(186) > 0);
    }
}
