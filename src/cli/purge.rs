//! `rmq purge`: drop a queue's ready messages.

use super::Ctx;
use crate::client::Session;
use clap::Args;
use serde_json::Value;

/// Remove every ready message from a queue (unacknowledged ones stay).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq purge hello                                    # prints the number of messages removed\n  rmq purge hello --output json"
)]
pub(crate) struct PurgeArgs {
    /// Queue name.
    queue: String,
}

pub(crate) async fn run(args: PurgeArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let session = Session::connect(&ctx.connect).await?;
    let n = session.purge_queue(&args.queue).await?;
    session.close().await;
    let cols = ["queue", "purged"].map(String::from);
    ctx.out
        .rows(&cols, &[vec![Value::from(args.queue), Value::from(n)]])?;
    Ok(())
}
