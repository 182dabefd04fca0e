//! The calling side of RPC (tutorial 6): requests with correlation ids, replies matched
//! back to them.
//!
//! Replies come through RabbitMQ's direct reply-to (`amq.rabbitmq.reply-to`, see its
//! "Direct Reply-to" guide) when the broker offers it — no queue to create or clean up.
//! lapin does not expose the server's `capabilities` table, so instead of reading
//! `direct_reply_to` there we simply try: consuming the pseudo-queue fails with a
//! channel error on a broker without it, and we fall back to an exclusive server-named
//! queue on a fresh channel.

use super::connect::Session;
use super::consume::{ConsumeOptions, Subscription};
use super::error::describe;
use super::message::{Message, Properties};
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The pseudo-queue of RabbitMQ's direct reply-to.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// A channel that can send requests and receive their replies.
pub struct RpcClient {
    /// The consumer of replies; requests are published on its channel because direct
    /// reply-to requires the same channel for both.
    replies: Subscription,
    /// What goes in each request's `reply_to`.
    reply_to: String,
    /// True when using direct reply-to (for the `--verbose`-style note).
    pub direct: bool,
}

impl Session {
    /// Set up the reply path (direct reply-to if possible, else an exclusive queue).
    pub async fn rpc_client(&self) -> anyhow::Result<RpcClient> {
        let no_ack = ConsumeOptions {
            prefetch: 0,
            no_ack: true,
            exclusive: false,
        };
        let chan = self.raw_channel().await?;
        if let Ok(replies) = self.subscribe_on(chan, DIRECT_REPLY_TO, &no_ack).await {
            return Ok(RpcClient {
                replies,
                reply_to: DIRECT_REPLY_TO.to_string(),
                direct: true,
            });
        }
        let chan = self.raw_channel().await?;
        let declare = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        };
        let q = chan
            .queue_declare("".into(), declare, FieldTable::default())
            .await
            .map_err(|e| describe("cannot declare a reply queue", e))?;
        let name = q.name().as_str().to_string();
        let replies = self.subscribe_on(chan, &name, &no_ack).await?;
        Ok(RpcClient {
            replies,
            reply_to: name,
            direct: false,
        })
    }
}

impl RpcClient {
    /// Send every request at once to `queue` and wait for the replies until `timeout`.
    /// The result is in request order; `None` where no reply came in time.
    pub async fn call_all(
        &mut self,
        queue: &str,
        requests: &[Vec<u8>],
        properties: &Properties,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Option<Message>>> {
        let prefix = correlation_prefix();
        let mut waiting: HashMap<String, usize> = HashMap::new();
        for (i, body) in requests.iter().enumerate() {
            let id = format!("{prefix}-{i}");
            let props = Properties {
                correlation_id: Some(id.clone()),
                reply_to: Some(self.reply_to.clone()),
                ..properties.clone()
            };
            let amqp = props.to_amqp()?;
            self.replies
                .chan
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions::default(),
                    body,
                    amqp,
                )
                .await
                .map_err(|e| describe(&format!("cannot send request to queue '{queue}'"), e))?;
            waiting.insert(id, i);
        }
        let mut out: Vec<Option<Message>> = vec![None; requests.len()];
        let deadline = Instant::now() + timeout;
        while !waiting.is_empty() {
            let next = tokio::time::timeout_at(deadline.into(), self.replies.next()).await;
            let delivery = match next {
                Err(_) => break,
                Ok(r) => match r? {
                    Some(d) => d,
                    None => break,
                },
            };
            // Replies with unknown ids are late answers to someone else's (or an earlier
            // run's) request on a shared reply queue: ignore them, as the tutorial does.
            let id = delivery
                .message
                .properties
                .correlation_id
                .clone()
                .unwrap_or_default();
            if let Some(i) = waiting.remove(&id) {
                out[i] = Some(delivery.message);
            }
        }
        Ok(out)
    }

    /// Close the reply channel.
    pub async fn close(self) {
        self.replies.close().await;
    }
}

/// A prefix no other caller uses at the same time: pid and clock.
fn correlation_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("rmq-{:x}-{nanos:x}", std::process::id())
}
