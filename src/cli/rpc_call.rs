//! `rmq rpc-call`: tutorial 6's client — several requests at once, replies printed in
//! request order.

use super::Ctx;
use super::args::parse_secs;
use super::rpc_serve::EXIT_STATUS_HEADER;
use super::signals::{interrupted, stop_signal};
use crate::client::{Properties, Session};
use crate::exit::{self, coded};
use clap::Args;
use std::time::Duration;

/// Send RPC requests and print the replies.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq rpc-call rpc_queue 30                          # tutorial 6: prints 832040\n  rmq rpc-call rpc_queue 10 20 30 --timeout 5        # three calls at once, answers in order\n  rmq rpc-call upper hello --output jsonl            # the whole reply, properties included\n\nExit: 0 every reply came; 3 some did not within --timeout; 1 a server reported failure."
)]
pub(crate) struct RpcCallArgs {
    /// Queue the server listens on.
    queue: String,
    /// Request bodies; each is a separate call, all sent at once.
    #[arg(required = true, value_name = "REQUEST")]
    requests: Vec<String>,
    /// Seconds to wait for all replies.
    #[arg(long, value_parser = parse_secs, default_value = "30", value_name = "SECS")]
    timeout: Duration,
    /// content_type of the requests.
    #[arg(long, value_name = "MIME")]
    content_type: Option<String>,
    /// Print each reply through a template ({body}, {correlation_id}, {headers.NAME}, ...;
    /// see `rmq receive --help`).
    #[arg(long, short = 'f', value_name = "TEMPLATE")]
    format: Option<String>,
}

pub(crate) async fn run(args: RpcCallArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let format = ctx.out.message_format(args.format.as_deref())?;
    let session = Session::connect(&ctx.connect).await?;
    // Publishing to a missing queue silently drops the request: say so instead of timing out.
    if session.queue_exists(&args.queue).await?.is_none() {
        return Err(coded(
            exit::FAILURE,
            format!(
                "no RPC server: queue '{}' does not exist (start one with `rmq rpc-serve {} --exec CMD`)",
                args.queue, args.queue
            ),
        ));
    }
    let mut client = session.rpc_client().await?;
    let requests: Vec<Vec<u8>> = args
        .requests
        .iter()
        .map(|r| r.clone().into_bytes())
        .collect();
    let props = Properties {
        content_type: args.content_type.clone(),
        ..Properties::default()
    };
    let replies = tokio::select! {
        r = client.call_all(&args.queue, &requests, &props, args.timeout) => r?,
        _ = stop_signal() => return Err(interrupted()),
    };
    client.close().await;
    session.close().await;

    let mut missing = Vec::new();
    let mut failed = 0;
    for (request, reply) in args.requests.iter().zip(&replies) {
        match reply {
            Some(m) => {
                ctx.out.message(m, 0, &format)?;
                if m.properties
                    .headers
                    .as_ref()
                    .is_some_and(|h| h.contains_key(EXIT_STATUS_HEADER))
                {
                    failed += 1;
                }
            }
            None => missing.push(request.as_str()),
        }
    }
    ctx.out.flush()?;
    if !missing.is_empty() {
        return Err(coded(
            exit::INCOMPLETE,
            format!(
                "no reply to {} of {} requests within {:?} (first: '{}'; is `rmq rpc-serve {}` running?)",
                missing.len(),
                replies.len(),
                args.timeout,
                missing[0],
                args.queue
            ),
        ));
    }
    if failed > 0 {
        return Err(coded(
            exit::FAILURE,
            format!(
                "the server reported failure for {failed} of {} requests",
                replies.len()
            ),
        ));
    }
    Ok(())
}
