//! The flow-control load test's driver (run it through `bench/load.sh`): runs
//! `rmq::perf::load` against a broker, prints the figures as a Markdown table and fails
//! when a confirmed message was lost or duplicated, or the broker's peak RSS went past
//! the watermark plus the margin.

use clap::Parser;
use rmq::perf::load::{LoadConfig, LoadReport, run};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2F")]
    url: String,
    #[arg(long, default_value_t = 1000)]
    connections: u32,
    /// Of the connections, how many publish (the rest consume).
    #[arg(long, default_value_t = 500)]
    publishers: u32,
    #[arg(long, default_value_t = 10_000)]
    queues: u32,
    #[arg(long, default_value_t = 1024)]
    size: usize,
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    #[arg(long, default_value_t = 20)]
    window: u64,
    #[arg(long, default_value_t = 10)]
    prefetch: u16,
    /// All consumers together while publishing, messages per second.
    #[arg(long, default_value_t = 20_000.0)]
    consume_rate: f64,
    /// The broker's pid, for its RSS.
    #[arg(long)]
    pid: Option<u32>,
    /// The broker's memory watermark in bytes: peak RSS must stay under it plus the margin.
    #[arg(long)]
    watermark: Option<u64>,
    /// Allowed overshoot, as a fraction of the watermark.
    #[arg(long, default_value_t = 0.10)]
    margin: f64,
    #[arg(long, default_value_t = 120)]
    drain_timeout: u64,
    /// Name of the broker in the table.
    #[arg(long, default_value = "rmq serve")]
    name: String,
}

fn table(name: &str, r: &LoadReport, watermark: Option<u64>) -> String {
    let mib = |b: u64| format!("{:.0} MiB", b as f64 / (1 << 20) as f64);
    let rows = [
        (
            "connections (publishers / consumers)",
            format!("{} ({} / {})", r.connections, r.publishers, r.consumers),
        ),
        ("queues", r.queues.to_string()),
        ("publishing time", format!("{:.1} s", r.seconds)),
        (
            "published / confirmed / nacked",
            format!("{} / {} / {}", r.published, r.confirmed, r.nacked),
        ),
        ("delivered (after drain)", r.delivered.to_string()),
        (
            "confirmed but lost / out of order",
            format!("{} / {}", r.lost_confirmed, r.out_of_order),
        ),
        ("publish rate (run)", format!("{:.0} msg/s", r.publish_rate)),
        (
            "deliver rate (run, consumers capped)",
            format!("{:.0} msg/s", r.deliver_rate_during_run),
        ),
        ("drain time", format!("{:.1} s", r.drain_seconds)),
        (
            "broker peak RSS / watermark",
            format!(
                "{} / {}",
                mib(r.peak_rss),
                watermark.map_or("-".into(), mib)
            ),
        ),
        (
            "time blocked per publisher (avg)",
            format!(
                "{:.1} s ({:.0}% of the run)",
                r.blocked_seconds_avg,
                100.0 * r.blocked_seconds_avg / r.seconds
            ),
        ),
        (
            "connection.blocked notifications / most blocked at once",
            format!("{} / {}", r.blocked_events, r.max_blocked_publishers),
        ),
    ];
    let mut out = format!("| {name} | |\n|---|---|\n");
    for (k, v) in rows {
        out.push_str(&format!("| {k} | {v} |\n"));
    }
    out
}

#[tokio::main]
async fn main() -> ExitCode {
    let a = Args::parse();
    let cfg = LoadConfig {
        url: a.url,
        connections: a.connections,
        publishers: a.publishers,
        queues: a.queues,
        size: a.size,
        seconds: a.seconds,
        window: a.window,
        prefetch: a.prefetch,
        consume_rate: a.consume_rate,
        broker_pid: a.pid,
        drain_timeout: Duration::from_secs(a.drain_timeout),
    };
    let report = match run(cfg).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("load: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", table(&a.name, &report, a.watermark));
    println!("{}", serde_json::to_string(&report).unwrap_or_default());
    let mut ok = true;
    if report.lost_confirmed > 0 || report.out_of_order > 0 {
        eprintln!("FAIL: confirmed messages lost or delivered out of order");
        ok = false;
    }
    if report.delivered < report.confirmed {
        eprintln!("FAIL: fewer deliveries than confirms");
        ok = false;
    }
    if let Some(w) = a.watermark
        && report.peak_rss as f64 > w as f64 * (1.0 + a.margin)
    {
        eprintln!(
            "FAIL: broker RSS went past the watermark + {:.0}%",
            a.margin * 100.0
        );
        ok = false;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
