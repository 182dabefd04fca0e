//! `rmq declare queue|exchange`.

use super::Ctx;
use super::args::json_object;
use crate::client::{ExchangeSpec, QueueSpec, Session};
use crate::exit::{self, coded};
use clap::{Args, Subcommand};
use serde_json::Value;

/// What to declare.
#[derive(Debug, Subcommand)]
pub(crate) enum DeclareCommand {
    /// Declare a queue (prints its name, messages and consumers).
    #[command(
        after_help = "Examples:\n  rmq declare queue task_queue --durable            # tutorial 2\n  rmq declare queue orders --durable --arguments '{\"x-queue-type\":\"quorum\"}'\n  rmq declare queue jobs --arguments '{\"x-dead-letter-exchange\":\"dlx\",\"x-message-ttl\":60000}'\n  rmq declare queue hello --passive                  # does it exist? how many messages?"
    )]
    Queue(DeclareQueueArgs),
    /// Declare an exchange.
    #[command(
        after_help = "Examples:\n  rmq declare exchange logs --type fanout            # tutorial 3\n  rmq declare exchange topic_logs --type topic --durable\n  rmq declare exchange main --type direct --arguments '{\"alternate-exchange\":\"unrouted\"}'"
    )]
    Exchange(DeclareExchangeArgs),
}

/// `rmq declare queue`.
#[derive(Debug, Args)]
pub(crate) struct DeclareQueueArgs {
    /// Queue name.
    name: String,
    /// Survive a broker restart.
    #[arg(long)]
    durable: bool,
    /// Delete it when its last consumer goes.
    #[arg(long)]
    auto_delete: bool,
    /// Arguments as a JSON object (x-message-ttl, x-max-length, x-queue-type, x-dead-letter-exchange, ...).
    #[arg(long, value_name = "JSON")]
    arguments: Option<String>,
    /// Only check that it exists and report its counts.
    #[arg(long)]
    passive: bool,
}

/// `rmq declare exchange`.
#[derive(Debug, Args)]
pub(crate) struct DeclareExchangeArgs {
    /// Exchange name.
    name: String,
    /// direct, fanout, topic or headers.
    #[arg(long = "type", short = 't', value_name = "TYPE")]
    kind: String,
    /// Survive a broker restart.
    #[arg(long)]
    durable: bool,
    /// Delete it when its last binding goes.
    #[arg(long)]
    auto_delete: bool,
    /// Only reachable through exchange-to-exchange bindings.
    #[arg(long)]
    internal: bool,
    /// Arguments as a JSON object (e.g. alternate-exchange).
    #[arg(long, value_name = "JSON")]
    arguments: Option<String>,
}

pub(crate) async fn run(cmd: DeclareCommand, ctx: &Ctx) -> anyhow::Result<()> {
    match cmd {
        DeclareCommand::Queue(a) => {
            let spec = QueueSpec {
                name: a.name.clone(),
                durable: a.durable,
                exclusive: false,
                auto_delete: a.auto_delete,
                arguments: json_object("--arguments", a.arguments.as_deref())?,
            };
            let session = Session::connect(&ctx.connect).await?;
            let info = if a.passive {
                session.queue_exists(&a.name).await?.ok_or_else(|| {
                    coded(
                        exit::FAILURE,
                        format!(
                            "queue '{}' does not exist in vhost '{}'",
                            a.name,
                            session.vhost()
                        ),
                    )
                })?
            } else {
                session.declare_queue(&spec).await?
            };
            session.close().await;
            let cols = ["name", "messages", "consumers"].map(String::from);
            ctx.out.rows(
                &cols,
                &[vec![
                    Value::from(info.name),
                    Value::from(info.messages),
                    Value::from(info.consumers),
                ]],
            )?;
        }
        DeclareCommand::Exchange(a) => {
            let spec = ExchangeSpec {
                name: a.name.clone(),
                kind: a.kind.clone(),
                durable: a.durable,
                auto_delete: a.auto_delete,
                internal: a.internal,
                arguments: json_object("--arguments", a.arguments.as_deref())?,
            };
            let session = Session::connect(&ctx.connect).await?;
            session.declare_exchange(&spec).await?;
            session.close().await;
            ctx.out
                .note(&format!("declared {} exchange '{}'", a.kind, a.name));
        }
    }
    Ok(())
}
