//! `rmq perf`: throughput and latency, PerfTest-style flags.

use crate::client::ConnectOptions;
use crate::output::Output;
use crate::perf::{PerfConfig, Summary};
use clap::Args;

/// Measure throughput and latency (flag names follow RabbitMQ's PerfTest).
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rmq perf -z 10                                  # 1 producer, 1 consumer, 16-byte messages, 10 s\n  \
    rmq perf -x 1 -y 1 -s 1024 -A 100 --qos 500 -z 10   # 1 KB, multi-ack every 100\n  \
    rmq perf -s 1024 -c 256 -f persistent -y 0 -C 100000   # persistent with confirms\n  \
    rmq perf -e fanout_x -t fanout --queues 4 -y 4 -z 10  # fanout 1 -> 4\n  \
    rmq perf -r 5000 -z 10                          # latency at a fixed rate\n  \
    rmq perf -z 5 -o json                           # a JSON summary on stdout\n\n\
Differences from PerfTest: the prefetch is --qos (-q is --quiet here); bodies are at\n\
least 14 bytes (the sequence/timestamp stamp). Status lines go to stdout, or stderr with -o json.")]
pub(crate) struct PerfArgs {
    /// Producers, each on its own connection.
    #[arg(short = 'x', long = "producers", default_value_t = 1)]
    producers: u32,
    /// Consumers, each on its own connection.
    #[arg(short = 'y', long = "consumers", default_value_t = 1)]
    consumers: u32,
    /// Message size in bytes (at least 14).
    #[arg(short = 's', long = "size", default_value_t = 16)]
    size: usize,
    /// Messages per second per producer (default: as fast as possible).
    #[arg(short = 'r', long = "rate")]
    rate: Option<f64>,
    /// Publisher confirms with this many outstanding (default: no confirms).
    #[arg(short = 'c', long = "confirm", value_name = "WINDOW")]
    confirm: Option<u64>,
    /// Consumers use automatic acknowledgement (no-ack).
    #[arg(short = 'a', long = "autoack")]
    autoack: bool,
    /// Acknowledge with `multiple` every N messages (default: each message).
    #[arg(short = 'A', long = "multi-ack-every", default_value_t = 0)]
    multi_ack: u32,
    /// Consumer prefetch (basic.qos), 0 for unlimited.
    #[arg(long = "qos", default_value_t = 0)]
    qos: u16,
    /// Run for this many seconds (default: until Ctrl-C or the counts are reached).
    #[arg(short = 'z', long = "time", value_name = "SECONDS")]
    time: Option<f64>,
    /// Messages each producer sends.
    #[arg(short = 'C', long = "pmessages")]
    pmessages: Option<u64>,
    /// Messages each consumer receives.
    #[arg(short = 'D', long = "cmessages")]
    cmessages: Option<u64>,
    /// Message flags: `persistent` (durable queues, delivery_mode 2).
    #[arg(short = 'f', long = "flag", value_name = "FLAG")]
    flags: Vec<String>,
    /// Queue name (default: generated, deleted at the end).
    #[arg(short = 'u', long = "queue")]
    queue: Option<String>,
    /// Publish to this exchange (declared with --type) instead of the default exchange.
    #[arg(short = 'e', long = "exchange")]
    exchange: Option<String>,
    /// Exchange type for --exchange.
    #[arg(short = 't', long = "type", default_value = "direct")]
    kind: String,
    /// Spread producers and consumers over this many queues.
    #[arg(long = "queues", default_value_t = 1)]
    queues: u32,
    /// Arguments for the declared queues, as a JSON object (e.g. '{"x-expires": 60000}').
    #[arg(long = "queue-args", value_name = "JSON")]
    queue_args: Option<String>,
}

pub(crate) async fn run(
    args: PerfArgs,
    connect: &ConnectOptions,
    out: &Output,
) -> anyhow::Result<()> {
    let url = connect.url.clone();
    let persistent = args.flags.iter().any(|f| f == "persistent");
    if let Some(bad) = args.flags.iter().find(|f| f.as_str() != "persistent") {
        return Err(crate::exit::coded(
            crate::exit::USAGE,
            format!("unknown --flag '{bad}' (known: persistent)"),
        ));
    }
    let json = out.is_json();
    let queue_args = match &args.queue_args {
        None => Default::default(),
        Some(text) => {
            let parsed: serde_json::Value = serde_json::from_str(text).map_err(|e| {
                crate::exit::coded(
                    crate::exit::DATA_ERR,
                    format!("--queue-args is not JSON: {e}"),
                )
            })?;
            let Some(obj) = parsed.as_object() else {
                return Err(crate::exit::coded(
                    crate::exit::DATA_ERR,
                    "--queue-args must be a JSON object",
                ));
            };
            crate::client::table_from_json(obj)?
        }
    };
    let cfg = PerfConfig {
        url,
        producers: args.producers,
        consumers: args.consumers,
        size: args.size,
        rate: args.rate,
        confirm: args.confirm,
        auto_ack: args.autoack,
        multi_ack: args.multi_ack,
        prefetch: args.qos,
        seconds: args.time,
        producer_count: args.pmessages,
        consumer_count: args.cmessages,
        persistent,
        queue: args.queue,
        exchange: args.exchange,
        kind: args.kind,
        queues: args.queues.max(1),
        queue_args,
        quiet: out.is_quiet(),
        status_to_stderr: json,
        events: connect.events.clone(),
    };
    let summary = crate::perf::run(cfg).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    // Without confirms a broker promises nothing about messages in flight when a publisher
    // closes (RabbitMQ can drop a few), so only confirmed messages make a loss an error.
    if summary.duplicates > 0 || summary.lost_confirmed > 0 {
        anyhow::bail!(
            "{} confirmed messages lost and {} duplicated: the broker did not deliver every message exactly once",
            summary.lost_confirmed,
            summary.duplicates
        );
    }
    Ok(())
}

fn print_summary(s: &Summary) {
    let l = &s.latency_us;
    println!(
        "summary: {:.1} s, sent {} ({:.0} msg/s), received {} ({:.0} msg/s), confirmed {}, nacked {}, lost {}, duplicated {}",
        s.seconds,
        s.sent,
        s.send_rate,
        s.received,
        s.receive_rate,
        s.confirmed,
        s.nacked,
        s.lost,
        s.duplicates
    );
    println!(
        "consumer latency min/median/75th/95th/99th/max: {:.0}/{:.0}/{:.0}/{:.0}/{:.0}/{:.0} µs; rmq perf CPU {:.2} µs per message",
        l.min, l.p50, l.p75, l.p95, l.p99, l.max, s.client_cpu_us_per_message
    );
}
