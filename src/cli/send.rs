//! `rmq send`: publish to a queue (declared if needed) with windowed publisher confirms.

use super::Ctx;
use super::args::{PropertyArgs, QueueArgs};
use super::resume::Link;
use super::send_out::Outbox;
use super::signals::{interrupted, stop_signal};
use crate::client::{DeclareMode, Message, Properties, PublishOptions};
use crate::exit::{self, coded};
use anyhow::Context;
use bytes::Bytes;
use clap::{Args, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, BufReader};

/// Publish messages to a queue.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq send hello 'Hello World!'                      # tutorial 1\n  rmq send task_queue --durable --persistent 'A very hard task...'   # tutorial 2\n  seq 100000 | rmq send numbers --lines              # one message per line, confirmed\n  rmq send files --file report.pdf --content-type application/pdf\n  rmq receive q --output jsonl | rmq send copy --input jsonl    # move a queue, losslessly\n  rmq send --exchange amq.topic quick.orange.rabbit 'hi'         # QUEUE is the routing key with --exchange\n  rmq send q -H tenant=acme -H attempt:=3 --correlation-id 42 'x'\n  rmq send q2 --replay-dir dump/                     # what `rmq receive q --save-dir dump/` saved\n\nWithout MESSAGE or --file, stdin is read: as one message, or one per line with --lines.\nExit: 0 all confirmed; 1 refused (nack, channel error) or unroutable with --mandatory; 65 bad input."
)]
pub(crate) struct SendArgs {
    /// Queue to send to (through the default exchange). With --exchange, the routing key.
    queue: String,
    /// The message; several words are joined with spaces, as in the tutorials.
    #[arg(value_name = "MESSAGE")]
    message: Vec<String>,
    /// Send each line of the input as its own message.
    #[arg(long, short = 'l')]
    lines: bool,
    /// Read the message(s) from this file instead of stdin.
    #[arg(long, value_name = "PATH", conflicts_with = "message")]
    file: Option<PathBuf>,
    /// Input format: raw bytes, or rmq's lossless JSON lines (from `receive --output jsonl`).
    #[arg(long, value_enum, default_value = "raw", value_name = "FORMAT")]
    input: InputFormat,
    /// Send the messages that `receive --save-dir DIR` saved, in order, with their
    /// properties and typed headers (DIR/NNNNNN.json; the body from NNNNNN.body).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["message", "file", "lines", "input"])]
    replay_dir: Option<PathBuf>,
    /// Publish to this exchange instead of the default one (no queue is declared).
    #[arg(long, value_name = "NAME")]
    exchange: Option<String>,
    /// Routing key (default: QUEUE; with --input jsonl and --exchange, each line's own key).
    #[arg(long, value_name = "KEY")]
    routing_key: Option<String>,
    /// type property (application message type).
    #[arg(long = "type", value_name = "TYPE")]
    kind: Option<String>,
    /// Send every message N times.
    #[arg(long, short = 'n', default_value_t = 1, value_name = "N")]
    count: u64,
    /// Do not wait for publisher confirms (faster, but a refused message goes unnoticed).
    #[arg(long)]
    no_confirm: bool,
    /// Most publisher confirms outstanding at once.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    confirm_window: usize,
    /// Fail (exit 1) if a message cannot be routed to any queue.
    #[arg(long)]
    mandatory: bool,
    #[command(flatten)]
    queue_args: QueueArgs,
    #[command(flatten)]
    props: PropertyArgs,
}

/// `--input` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum InputFormat {
    /// Bytes: the whole input, or one message per line with --lines.
    Raw,
    /// rmq's lossless JSON lines, as `receive --output jsonl` writes them.
    Jsonl,
}

/// The largest body echoed whole in " [x] Sent '...'": a larger one would flood the
/// terminal (and cost copies of the body: a 256 MiB binary file became a gigabyte of
/// replacement characters).
const PREVIEW: usize = 1024;

/// Where messages come from.
enum Source {
    /// The MESSAGE words.
    Args(Vec<u8>),
    /// A file or stdin, read as a stream.
    Stream(Box<dyn AsyncBufRead + Unpin + Send>),
}

pub(crate) async fn run(args: SendArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let props = args.props.properties(args.kind.clone())?;
    let (spec, mode) = args.queue_args.spec(&args.queue)?;
    // Validate every JSON line (or saved message) before the first publish: a bad one
    // must not leave half of the input sent.
    let (source, prepared) = if let Some(dir) = &args.replay_dir {
        (None, Some(crate::output::read_saved(dir)?))
    } else if args.input == InputFormat::Jsonl {
        (None, Some(read_jsonl(open_source(&args).await?).await?))
    } else {
        (Some(open_source(&args).await?), None)
    };

    // A stream may run for long (a pipe from another program): it survives a lost
    // connection. A message given on the command line is one step of a script: 69.
    let streaming = matches!(source, Some(Source::Stream(_)));
    let link = Link::open(ctx, streaming).await?;
    // The first message finds out whether the queue exists (see Outbox::probe); without
    // confirms, or when the routing key is not the queue's name, the queue is declared first.
    let key_is_queue = args.routing_key.as_deref().is_none_or(|k| k == args.queue);
    let probe = (args.exchange.is_none()
        && mode == DeclareMode::Ensure
        && !args.no_confirm
        && key_is_queue
        && !spec.name.is_empty())
    .then(|| spec.clone());
    if args.exchange.is_none() && probe.is_none() {
        link.session().prepare_queue(&spec, mode).await?;
    }
    let opts = PublishOptions {
        confirm: !args.no_confirm,
        window: args.confirm_window,
        mandatory: args.mandatory,
        retain: streaming,
    };
    let redeclare = args.exchange.is_none().then(|| (spec.clone(), mode));
    let mut publisher = Outbox::new(link, opts, probe, redeclare).await?;
    let exchange = args.exchange.clone().unwrap_or_default();
    let total = prepared
        .as_ref()
        .map(|m| m.len() as u64 * args.count)
        .or_else(|| {
            (args.count > 1 && matches!(source, Some(Source::Args(_)))).then_some(args.count)
        });
    let progress = ctx.out.progress(total, "sending", false);
    let mut last_body: Option<Bytes> = None;

    let work = async {
        if let Some(messages) = prepared {
            for m in messages {
                let key = match (&args.routing_key, &args.exchange) {
                    (Some(k), _) => k.as_str(),
                    (None, Some(_)) => m.routing_key.as_str(),
                    (None, None) => args.queue.as_str(),
                };
                let mut p = m.properties.clone();
                overlay(&mut p, &props);
                repeat(
                    &mut publisher,
                    args.count,
                    &exchange,
                    key,
                    &p,
                    Bytes::from(m.body),
                    &progress,
                )
                .await?;
            }
            return Ok::<(), anyhow::Error>(());
        }
        let key = args.routing_key.as_deref().unwrap_or(&args.queue);
        match source {
            Some(Source::Args(body)) => {
                let body = Bytes::from(body);
                repeat(
                    &mut publisher,
                    args.count,
                    &exchange,
                    key,
                    &props,
                    body.clone(),
                    &progress,
                )
                .await?;
                last_body = Some(body);
            }
            Some(Source::Stream(mut reader)) if args.lines => {
                let mut line = Vec::new();
                loop {
                    line.clear();
                    if reader
                        .read_until(b'\n', &mut line)
                        .await
                        .context("cannot read the input")?
                        == 0
                    {
                        break;
                    }
                    strip_newline(&mut line);
                    repeat(
                        &mut publisher,
                        args.count,
                        &exchange,
                        key,
                        &props,
                        Bytes::copy_from_slice(&line),
                        &progress,
                    )
                    .await?;
                }
            }
            Some(Source::Stream(mut reader)) => {
                // A file's size is known: one allocation, where growing by doubling
                // would copy the body several times on the way.
                let size = match &args.file {
                    Some(path) => tokio::fs::metadata(path).await.map_or(0, |m| m.len()),
                    None => 0,
                };
                let mut body = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                reader
                    .read_to_end(&mut body)
                    .await
                    .context("cannot read the input")?;
                let body = Bytes::from(body);
                repeat(
                    &mut publisher,
                    args.count,
                    &exchange,
                    key,
                    &props,
                    body.clone(),
                    &progress,
                )
                .await?;
                last_body = Some(body);
            }
            None => {}
        }
        Ok(())
    };
    tokio::select! {
        r = work => r?,
        _ = stop_signal() => {
            progress.finish();
            let r = publisher.report();
            ctx.out.note(&format!("interrupted after {} published, {} confirmed", r.published, r.confirmed));
            return Err(interrupted());
        }
    }
    // Nothing was sent (empty --lines input): the queue is still declared, as asked.
    if let Some(spec) = publisher.take_probe() {
        publisher
            .link()
            .session()
            .prepare_queue(&spec, mode)
            .await?;
    }
    let republished = publisher.republished;
    let report = publisher.finish().await?;
    progress.finish();

    if !report.returned.is_empty() {
        let (text, key) = &report.returned[0];
        return Err(coded(
            exit::FAILURE,
            format!(
                "{} of {} messages could not be routed ({text}, routing key '{key}'): no queue is bound for it (declare and bind one, or check the key)",
                report.returned.len(),
                report.published
            ),
        ));
    }
    let target = match &args.exchange {
        Some(x) => format!("exchange '{x}'"),
        None => format!("queue '{}'", args.queue),
    };
    match (&last_body, report.published) {
        // The tutorials' line, for a message a terminal can show.
        (Some(body), 1) if body.len() <= PREVIEW => ctx
            .out
            .note(&format!(" [x] Sent '{}'", String::from_utf8_lossy(body))),
        (Some(body), 1) => ctx.out.note(&format!(
            " [x] Sent a message of {} bytes to {target}{}",
            body.len(),
            if args.no_confirm { "" } else { " (confirmed)" }
        )),
        _ => ctx.out.note(&format!(
            " [x] Sent {} messages to {target}{}",
            report.published,
            if args.no_confirm {
                String::new()
            } else {
                format!(" ({} confirmed)", report.confirmed)
            }
        )),
    }
    if republished > 0 {
        ctx.out.note(&format!(
            " [x] {republished} of them were published again after a lost connection (the broker may hold duplicates)"
        ));
    }
    Ok(())
}

/// Command-line properties override those of a JSON line, field by field.
fn overlay(p: &mut Properties, cli: &Properties) {
    macro_rules! take {
        ($($f:ident),*) => { $( if cli.$f.is_some() { p.$f = cli.$f.clone(); } )* };
    }
    take!(
        content_type,
        content_encoding,
        delivery_mode,
        priority,
        correlation_id,
        reply_to,
        expiration,
        message_id,
        timestamp,
        kind,
        user_id,
        app_id
    );
    if let Some(h) = &cli.headers {
        let mut merged = p.headers.clone().unwrap_or_default();
        merged.extend(h.clone());
        p.headers = Some(merged);
    }
}

async fn repeat(
    publisher: &mut Outbox<'_>,
    count: u64,
    exchange: &str,
    key: &str,
    props: &Properties,
    body: Bytes,
    progress: &crate::output::Progress,
) -> anyhow::Result<()> {
    for _ in 0..count {
        publisher
            .publish(exchange, key, props, body.clone())
            .await?;
        progress.inc();
    }
    Ok(())
}

fn strip_newline(line: &mut Vec<u8>) {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
}

async fn open_source(args: &SendArgs) -> anyhow::Result<Source> {
    if !args.message.is_empty() {
        if args.lines {
            return Ok(Source::Stream(Box::new(BufReader::new(
                std::io::Cursor::new(args.message.join(" ").into_bytes()),
            ))));
        }
        return Ok(Source::Args(args.message.join(" ").into_bytes()));
    }
    if let Some(path) = &args.file {
        let f = tokio::fs::File::open(path).await.map_err(|e| {
            coded(
                exit::DATA_ERR,
                format!("cannot read --file '{}': {e}", path.display()),
            )
        })?;
        return Ok(Source::Stream(Box::new(BufReader::with_capacity(
            256 * 1024,
            f,
        ))));
    }
    if std::io::stdin().is_terminal() {
        return Err(coded(
            exit::USAGE,
            "nothing to send: give a MESSAGE, --file PATH, or pipe the input into stdin",
        ));
    }
    Ok(Source::Stream(Box::new(BufReader::with_capacity(
        256 * 1024,
        tokio::io::stdin(),
    ))))
}

/// Read and check every JSON line (numbered in errors); blank lines are skipped.
async fn read_jsonl(source: Source) -> anyhow::Result<Vec<Message>> {
    let mut reader: Box<dyn AsyncBufRead + Unpin + Send> = match source {
        Source::Args(body) => Box::new(BufReader::new(std::io::Cursor::new(body))),
        Source::Stream(r) => r,
    };
    let mut out = Vec::new();
    let mut line = String::new();
    let mut n = 0;
    loop {
        line.clear();
        if reader
            .read_line(&mut line)
            .await
            .context("cannot read the input (JSON lines must be UTF-8)")?
            == 0
        {
            break;
        }
        n += 1;
        if line.trim().is_empty() {
            continue;
        }
        let m = Message::from_jsonl(line.trim_end()).map_err(|e| {
            coded(
                exit::DATA_ERR,
                format!("input line {n}: {e:#} (nothing was sent)"),
            )
        })?;
        out.push(m);
    }
    Ok(out)
}
