//! Consuming with prefetch, and settling deliveries (ack / nack / reject).

use super::connect::Session;
use super::error::describe;
use super::message::{Message, Properties};
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;

/// How to consume.
#[derive(Debug, Clone, Default)]
pub struct ConsumeOptions {
    /// Most unacknowledged deliveries in flight (basic.qos, per consumer); 0 = unlimited.
    pub prefetch: u16,
    /// The broker considers a message handled once sent (nothing to ack, nothing redelivered).
    pub no_ack: bool,
    /// No other consumer may attach to the queue while we are on it.
    pub exclusive: bool,
}

/// One delivery: the message and the tag that settles it.
#[derive(Debug)]
pub struct Delivery {
    /// The message.
    pub message: Message,
    /// Delivery tag, counted per channel from 1 (spec §1.8.3.9).
    pub tag: u64,
}

/// How to settle a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Done with it.
    Ack,
    /// Put it back in the queue (it comes back with `redelivered` set).
    Requeue,
    /// Drop it, or dead-letter it when the queue has `x-dead-letter-exchange`.
    Reject,
}

/// An active consumer on its own channel.
pub struct Subscription {
    /// The channel it lives on (acks go here: tags are per channel).
    pub(crate) chan: lapin::Channel,
    /// lapin's delivery stream.
    consumer: lapin::Consumer,
    /// Queue name, for messages.
    queue: String,
    /// A delivery taken by [`Subscription::ready`] and not yet handed out.
    peeked: Option<anyhow::Result<Option<Delivery>>>,
}

impl Session {
    /// Start consuming from `queue`.
    pub async fn subscribe(
        &self,
        queue: &str,
        opts: &ConsumeOptions,
    ) -> anyhow::Result<Subscription> {
        let chan = self.raw_channel().await?;
        self.subscribe_on(chan, queue, opts).await
    }

    /// Start consuming on an existing channel (one that declared an exclusive queue, say).
    pub(crate) async fn subscribe_on(
        &self,
        chan: lapin::Channel,
        queue: &str,
        opts: &ConsumeOptions,
    ) -> anyhow::Result<Subscription> {
        if !opts.no_ack {
            chan.basic_qos(opts.prefetch, BasicQosOptions::default())
                .await
                .map_err(|e| describe("cannot set the prefetch", e))?;
        }
        let consume = BasicConsumeOptions {
            no_local: false,
            no_ack: opts.no_ack,
            exclusive: opts.exclusive,
            nowait: false,
        };
        let consumer = chan
            .basic_consume(queue.into(), "".into(), consume, FieldTable::default())
            .await
            .map_err(|e| describe(&format!("cannot consume from queue '{queue}'"), e))?;
        Ok(Subscription {
            chan,
            consumer,
            queue: queue.to_string(),
            peeked: None,
        })
    }

    /// Declare a server-named exclusive queue, bind it to `exchange` with each key, and
    /// consume from it — tutorials 3–5's `receive_logs` in one call. Returns the queue name.
    pub async fn subscribe_exchange(
        &self,
        queue: Option<&str>,
        exchange: &str,
        bindings: &[(String, serde_json::Map<String, serde_json::Value>)],
        opts: &ConsumeOptions,
    ) -> anyhow::Result<(String, Subscription)> {
        use lapin::options::{QueueBindOptions, QueueDeclareOptions};
        let chan = self.raw_channel().await?;
        // A private queue lives as long as this consumer: exclusive (gone with the
        // connection) and auto-delete (gone with the consumer), so a tap leaves nothing.
        let declare = QueueDeclareOptions {
            exclusive: queue.is_none(),
            auto_delete: queue.is_none(),
            ..QueueDeclareOptions::default()
        };
        let q = chan
            .queue_declare(queue.unwrap_or("").into(), declare, FieldTable::default())
            .await
            .map_err(|e| describe("cannot declare the receiving queue", e))?;
        let name = q.name().as_str().to_string();
        for (key, args) in bindings {
            let args = super::value::table_from_json(args).map_err(|e| {
                crate::exit::coded(
                    crate::exit::DATA_ERR,
                    format!("bad binding arguments: {e:#}"),
                )
            })?;
            chan.queue_bind(
                name.as_str().into(),
                exchange.into(),
                key.as_str().into(),
                QueueBindOptions::default(),
                args,
            )
            .await
            .map_err(|e| {
                describe(
                    &format!("cannot bind to exchange '{exchange}' with key '{key}'"),
                    e,
                )
            })?;
        }
        let sub = self.subscribe_on(chan, &name, opts).await?;
        Ok((name, sub))
    }
}

impl Subscription {
    /// The next delivery; `None` when the broker cancelled the consumer (queue deleted).
    pub async fn next(&mut self) -> anyhow::Result<Option<Delivery>> {
        if let Some(peeked) = self.peeked.take() {
            return peeked;
        }
        self.pull().await
    }

    /// Is a delivery (or the end) available without waiting?
    pub async fn ready(&mut self) -> bool {
        if self.peeked.is_none() {
            // Polling a stream's `next` once and dropping it loses nothing when pending.
            self.peeked = futures_lite::future::poll_once(self.pull()).await;
        }
        self.peeked.is_some()
    }

    async fn pull(&mut self) -> anyhow::Result<Option<Delivery>> {
        match self.consumer.next().await {
            None => Ok(None),
            Some(Err(e)) => Err(describe(
                &format!("consuming from queue '{}' failed", self.queue),
                e,
            )),
            Some(Ok(d)) => Ok(Some(Delivery {
                tag: d.delivery_tag,
                message: Message {
                    exchange: d.exchange.as_str().to_string(),
                    routing_key: d.routing_key.as_str().to_string(),
                    redelivered: d.redelivered,
                    properties: Properties::from_amqp(&d.properties),
                    body: d.data,
                },
            })),
        }
    }

    /// Settle `tag` (and, with `multiple`, every earlier unsettled tag on this channel).
    pub async fn settle(&self, tag: u64, how: Settle, multiple: bool) -> anyhow::Result<()> {
        let res = match how {
            Settle::Ack => self.chan.basic_ack(tag, BasicAckOptions { multiple }).await,
            Settle::Requeue | Settle::Reject => {
                let requeue = how == Settle::Requeue;
                self.chan
                    .basic_nack(tag, BasicNackOptions { multiple, requeue })
                    .await
            }
        };
        res.map_err(|e| describe("cannot settle a delivery", e))
    }

    /// Stop consuming and close the channel: unsettled deliveries go back to the queue.
    pub async fn close(self) {
        let _ = self
            .chan
            .basic_cancel(self.consumer.tag(), BasicCancelOptions::default())
            .await;
        let _ = self.chan.close(200, "done".into()).await;
    }

    /// A handle that settles deliveries from other tasks (a worker's concurrent jobs).
    pub fn settler(&self) -> Settler {
        Settler {
            chan: self.chan.clone(),
        }
    }

    /// The queue consumed from.
    pub fn queue(&self) -> &str {
        &self.queue
    }
}

/// Settles deliveries of one subscription from any task.
#[derive(Clone)]
pub struct Settler {
    /// The subscription's channel (delivery tags belong to it).
    chan: lapin::Channel,
}

impl Settler {
    /// Settle one delivery.
    pub async fn settle(&self, tag: u64, how: Settle) -> anyhow::Result<()> {
        let res = match how {
            Settle::Ack => {
                self.chan
                    .basic_ack(tag, BasicAckOptions { multiple: false })
                    .await
            }
            Settle::Requeue | Settle::Reject => {
                let requeue = how == Settle::Requeue;
                self.chan
                    .basic_nack(
                        tag,
                        BasicNackOptions {
                            multiple: false,
                            requeue,
                        },
                    )
                    .await
            }
        };
        res.map_err(|e| describe("cannot settle a delivery", e))
    }
}
