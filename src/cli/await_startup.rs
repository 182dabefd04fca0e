//! `rmq await-startup`: wait until the broker answers AMQP (and the management API, when
//! one is configured) — like `rabbitmqctl await_startup`, for scripts that have just
//! started a broker.

use super::Ctx;
use super::args::parse_secs;
use super::listing::{api_config, profile_api_url};
use super::signals::{interrupted, stop_signal};
use crate::client::{ApiMethod, Session, api_request, parse_url};
use crate::exit::{self, coded};
use clap::Args;
use std::time::Duration;
use tokio::time::Instant;

/// Between two attempts: short, since a starting broker is usually up within seconds and a
/// refused connection costs next to nothing.
const INTERVAL: Duration = Duration::from_millis(100);

/// Wait until the broker accepts connections.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq serve --port 5673 & rmq --url amqp://guest:guest@localhost:5673 await-startup --timeout 30\n  /etc/init.d/rabbitmq-server start && rmq await-startup --api-url http://localhost:15672\n\nEach attempt is a real AMQP login (bounded by the URL's connection_timeout, 10 s by default),\nrepeated every 0.1 s; with --api-url (or RMQ_API_URL, or a profile's api_url) the management\nAPI must then answer GET /api/overview too.\nExit: 0 up; 69 not up within --timeout; 77 login refused (waiting will not fix it); 65 bad URL."
)]
pub(crate) struct AwaitStartupArgs {
    /// Give up after this many seconds (exit 69).
    #[arg(long, value_parser = parse_secs, default_value = "300", value_name = "SECS")]
    timeout: Duration,
    /// Also wait for the management API at this base URL.
    #[arg(long, env = "RMQ_API_URL", value_name = "URL")]
    api_url: Option<String>,
}

pub(crate) async fn run(args: AwaitStartupArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let started = Instant::now();
    let deadline = started + args.timeout;
    let uri = parse_url(&ctx.connect.url)?;
    let target = format!("{}:{}", uri.authority.host, uri.authority.port);
    let give_up = |last: anyhow::Error| {
        coded(
            exit::UNAVAILABLE,
            format!(
                "the broker did not come up within {:?} (raise --timeout if it is still starting); the last attempt: {last:#}",
                args.timeout
            ),
        )
    };
    let waiting = async {
        // AMQP first: a login, not just an open port.
        loop {
            let attempt = tokio::time::timeout_at(deadline, Session::connect(&ctx.connect)).await;
            let err = match attempt {
                Ok(Ok(session)) => {
                    session.close().await;
                    break;
                }
                // Waiting will not change credentials or a malformed URL.
                Ok(Err(e)) if matches!(exit::code(&e), exit::NOPERM | exit::DATA_ERR) => {
                    return Err(e);
                }
                Ok(Err(e)) => e,
                Err(_) => anyhow::anyhow!("cannot connect to {target}: no answer in time"),
            };
            if Instant::now() + INTERVAL >= deadline {
                return Err(give_up(err));
            }
            tokio::time::sleep(INTERVAL).await;
        }
        let Some(base) = args.api_url.clone().or_else(|| profile_api_url(ctx)) else {
            return Ok(None);
        };
        let (mut api, _) = api_config(ctx, Some(base))?;
        loop {
            api.timeout = deadline
                .saturating_duration_since(Instant::now())
                .min(api.timeout)
                .max(Duration::from_millis(1));
            let err = match api_request(&api, ApiMethod::Get, "overview", None, None).await {
                Ok(reply) if reply.status == 200 => break,
                Ok(reply) => anyhow::anyhow!(
                    "the management API at {} answered HTTP {}",
                    api.base,
                    reply.status
                ),
                Err(e) if exit::code(&e) == exit::NOPERM => return Err(e),
                Err(e) => e,
            };
            if Instant::now() + INTERVAL >= deadline {
                return Err(give_up(err));
            }
            tokio::time::sleep(INTERVAL).await;
        }
        Ok(Some(api.base))
    };
    let api = tokio::select! {
        r = waiting => r?,
        _ = stop_signal() => return Err(interrupted()),
    };
    let elapsed = started.elapsed().as_secs_f64();
    ctx.out.note(&match api {
        Some(base) => format!(
            "the broker at {target} is up (AMQP, and the management API at {base}) after {elapsed:.1} s"
        ),
        None => format!("the broker at {target} is up (AMQP) after {elapsed:.1} s"),
    });
    Ok(())
}
