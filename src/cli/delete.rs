//! `rmq delete queue|exchange`: strict by default, idempotent with `--if-exists`.

use super::Ctx;
use crate::client::Session;
use crate::exit::{self, coded};
use clap::{Args, Subcommand};
use serde_json::Value;

/// What to delete.
#[derive(Debug, Subcommand)]
pub(crate) enum DeleteCommand {
    /// Delete a queue (and its messages).
    #[command(
        after_help = "Examples:\n  rmq delete queue hello\n  rmq delete queue hello --if-empty --if-unused     # only if idle and drained\n  rmq delete queue maybe --if-exists                # no error if it is not there"
    )]
    Queue(DeleteQueueArgs),
    /// Delete an exchange (and its bindings).
    #[command(
        after_help = "Examples:\n  rmq delete exchange logs\n  rmq delete exchange logs --if-unused --if-exists"
    )]
    Exchange(DeleteExchangeArgs),
}

/// `rmq delete queue`.
#[derive(Debug, Args)]
pub(crate) struct DeleteQueueArgs {
    /// Queue name.
    name: String,
    /// Only if no consumer is attached.
    #[arg(long)]
    if_unused: bool,
    /// Only if it holds no messages.
    #[arg(long)]
    if_empty: bool,
    /// Succeed if it does not exist (without it, a missing queue is an error).
    #[arg(long)]
    if_exists: bool,
}

/// `rmq delete exchange`.
#[derive(Debug, Args)]
pub(crate) struct DeleteExchangeArgs {
    /// Exchange name.
    name: String,
    /// Only if nothing is bound to it.
    #[arg(long)]
    if_unused: bool,
    /// Succeed if it does not exist (without it, a missing exchange is an error).
    #[arg(long)]
    if_exists: bool,
}

pub(crate) async fn run(cmd: DeleteCommand, ctx: &Ctx) -> anyhow::Result<()> {
    let session = Session::connect(&ctx.connect).await?;
    // The broker treats deleting a missing queue or exchange as success, so a strict
    // delete checks first (passive declare).
    match cmd {
        DeleteCommand::Queue(a) => {
            // A missing queue deletes nothing, as queue.delete-ok answers for one.
            let exists = session.queue_exists(&a.name).await?.is_some();
            let n = if exists {
                session
                    .delete_queue(&a.name, a.if_unused, a.if_empty)
                    .await?
            } else {
                0
            };
            session.close().await;
            if !exists {
                missing("queue", &a.name, a.if_exists, ctx)?;
            }
            // Like purge: the messages deleted with it, in the chosen output format.
            let cols = ["queue", "messages"].map(String::from);
            ctx.out
                .rows(&cols, &[vec![Value::from(a.name), Value::from(n)]])?;
            return Ok(());
        }
        DeleteCommand::Exchange(a) => {
            if !session.exchange_exists(&a.name).await? {
                session.close().await;
                return missing("exchange", &a.name, a.if_exists, ctx);
            }
            session.delete_exchange(&a.name, a.if_unused).await?;
            ctx.out.note(&format!("deleted exchange '{}'", a.name));
        }
    }
    session.close().await;
    Ok(())
}

fn missing(what: &str, name: &str, if_exists: bool, ctx: &Ctx) -> anyhow::Result<()> {
    if if_exists {
        ctx.out.note(&format!(
            "{what} '{name}' does not exist: nothing to delete"
        ));
        Ok(())
    } else {
        Err(coded(
            exit::FAILURE,
            format!(
                "cannot delete {what} '{name}': it does not exist (add --if-exists to accept that)"
            ),
        ))
    }
}
