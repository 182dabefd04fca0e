//! Publishing with windowed publisher confirms.
//!
//! Waiting for each confirm would cost a round trip per message; never waiting would
//! let a fast producer run unboundedly ahead of the broker. A window of outstanding
//! confirms (RabbitMQ's "publish in batches, handle confirms asynchronously" advice in
//! its publisher-confirms guide) keeps the pipe full and memory bounded.
//!
//! lapin's `basic_publish` also waits until its I/O loop has written the frames — a
//! cross-task hop per message that caps one publisher near 20k msg/s. Its frames and
//! delivery tag are registered on the future's first poll, in call order, so we poll each
//! publish once and keep up to [`MAX_WRITING`] of them in flight instead of awaiting each.

use super::connect::Session;
use super::error::describe;
use super::message::Properties;
use crate::exit::{self, coded};
use bytes::Bytes;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{Confirmation, PublisherConfirm};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

/// Publishes handed to lapin but not yet written to the socket.
const MAX_WRITING: usize = 256;

/// A `basic_publish` in progress.
type Writing = Pin<Box<dyn Future<Output = lapin::Result<PublisherConfirm>> + Send>>;

/// How to publish.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Wait for the broker's confirms (spec extension `confirm.select`).
    pub confirm: bool,
    /// Most confirms outstanding at once.
    pub window: usize,
    /// Ask the broker to return unroutable messages (basic.return) instead of dropping them.
    pub mandatory: bool,
    /// Keep each message until it is confirmed, to publish it again after a lost
    /// connection (`send` from a stream).
    pub retain: bool,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            confirm: true,
            window: 1000,
            mandatory: false,
            retain: false,
        }
    }
}

/// What happened to what was published.
#[derive(Debug, Clone, Default)]
pub struct PublishReport {
    /// Messages handed to the broker.
    pub published: u64,
    /// Messages the broker confirmed (all of them without confirms once written).
    pub confirmed: u64,
    /// Mandatory messages the broker returned as unroutable: (reply text, routing key).
    pub returned: Vec<(String, String)>,
}

/// A channel set up for publishing.
pub struct Publisher {
    /// The publishing channel.
    chan: lapin::Channel,
    /// Publishes not yet written by lapin's I/O loop, oldest first.
    writing: VecDeque<Writing>,
    /// Confirms not yet received, oldest first.
    pending: VecDeque<PublisherConfirm>,
    /// Settings fixed at creation.
    opts: PublishOptions,
    /// Running totals, also reported on failure.
    report: PublishReport,
    /// With [`PublishOptions::retain`]: every message not yet confirmed, oldest first,
    /// so that a lost connection does not lose them ([`Publisher::take_unconfirmed`]).
    unconfirmed: VecDeque<Retained>,
}

/// A message kept until the broker confirmed it.
#[derive(Debug, Clone)]
pub struct Retained {
    /// Exchange it went to.
    pub exchange: String,
    /// Its routing key.
    pub routing_key: String,
    /// Its properties.
    pub properties: Properties,
    /// Its body (shared, not copied).
    pub body: Bytes,
}

impl Session {
    /// Open a publishing channel.
    pub async fn publisher(&self, opts: PublishOptions) -> anyhow::Result<Publisher> {
        let chan = self.raw_channel().await?;
        if opts.confirm {
            chan.confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(|e| describe("cannot enable publisher confirms", e))?;
        }
        Ok(Publisher {
            chan,
            writing: VecDeque::new(),
            pending: VecDeque::new(),
            opts,
            report: PublishReport::default(),
            unconfirmed: VecDeque::new(),
        })
    }
}

impl Publisher {
    /// Publish one message; waits only when the confirm window is full.
    pub async fn publish(
        &mut self,
        exchange: &str,
        routing_key: &str,
        properties: &Properties,
        body: &[u8],
    ) -> anyhow::Result<()> {
        self.publish_shared(
            exchange,
            routing_key,
            properties,
            Bytes::copy_from_slice(body),
        )
        .await
    }

    /// The same with a body the caller hands over (`Bytes::from(vec)` copies nothing):
    /// lapin copies the body into its frames once, and a large body must not be copied
    /// again per publish (`send --file` of 256 MiB, or `--count` of it).
    pub async fn publish_shared(
        &mut self,
        exchange: &str,
        routing_key: &str,
        properties: &Properties,
        body: Bytes,
    ) -> anyhow::Result<()> {
        let props = properties
            .to_amqp()
            .map_err(|e| coded(exit::DATA_ERR, format!("{e:#}")))?;
        if self.pending.len() + self.writing.len() >= self.opts.window.max(1) {
            self.settle_one().await?;
        }
        let opts = BasicPublishOptions {
            mandatory: self.opts.mandatory,
            immediate: false,
        };
        // Counted before the attempt so that a failure reports "N of M" including this one.
        self.report.published += 1;
        if self.opts.retain {
            self.unconfirmed.push_back(Retained {
                exchange: exchange.to_string(),
                routing_key: routing_key.to_string(),
                properties: properties.clone(),
                body: body.clone(),
            });
        }
        let chan = self.chan.clone();
        let (exchange, routing_key) = (exchange.to_string(), routing_key.to_string());
        let mut writing: Writing = Box::pin(async move {
            chan.basic_publish(exchange.into(), routing_key.into(), opts, &body, props)
                .await
        });
        // The first poll queues the frames and takes the next delivery tag (see module doc).
        match futures_lite::future::poll_once(&mut writing).await {
            // Older publishes still writing keep their place: confirms stay in tag order.
            Some(written) if self.writing.is_empty() => self.written(written).await?,
            Some(written) => self
                .writing
                .push_back(Box::pin(std::future::ready(written))),
            None => self.writing.push_back(writing),
        }
        while self.writing.len() > MAX_WRITING {
            self.write_one().await?;
        }
        Ok(())
    }

    /// Publish as mandatory and wait for the confirm: `false` when the broker returned the
    /// message unroutable (it then counts as not published). Through the default exchange
    /// that means no queue has the name, which tells `send` whether to declare it without
    /// a passive probe that fails (and is logged by the broker) for every new queue.
    /// Needs confirms: the broker sends basic.return before the basic.ack.
    pub async fn publish_probe(
        &mut self,
        exchange: &str,
        routing_key: &str,
        properties: &Properties,
        body: Bytes,
    ) -> anyhow::Result<bool> {
        let before = self.report.returned.len();
        let mandatory = std::mem::replace(&mut self.opts.mandatory, true);
        let sent = self
            .publish_shared(exchange, routing_key, properties, body)
            .await;
        self.opts.mandatory = mandatory;
        sent?;
        self.flush().await?;
        if self.report.returned.len() == before {
            return Ok(true);
        }
        self.report.returned.truncate(before);
        self.report.published -= 1;
        self.report.confirmed -= 1;
        Ok(false)
    }

    /// Wait for the oldest publish to be written.
    async fn write_one(&mut self) -> anyhow::Result<()> {
        if let Some(writing) = self.writing.pop_front() {
            let written = writing.await;
            self.written(written).await?;
        }
        Ok(())
    }

    async fn written(&mut self, written: lapin::Result<PublisherConfirm>) -> anyhow::Result<()> {
        let confirm = written.map_err(|e| self.failed(e))?;
        if self.opts.confirm {
            self.pending.push_back(confirm);
        } else {
            self.report.confirmed += 1;
            self.unconfirmed.pop_front();
            // The confirm resolves at once (NotRequested) but may carry a basic.return.
            let outcome = confirm.await.map_err(|e| self.failed(e))?;
            self.record(outcome)?;
        }
        Ok(())
    }

    /// Wait for every outstanding confirm and report.
    pub async fn finish(mut self) -> anyhow::Result<PublishReport> {
        while !self.writing.is_empty() || !self.pending.is_empty() {
            self.settle_one().await?;
        }
        let _ = self.chan.close(200, "done".into()).await;
        Ok(self.report)
    }

    /// Wait for every outstanding confirm (the channel stays open).
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        while !self.writing.is_empty() || !self.pending.is_empty() {
            self.settle_one().await?;
        }
        Ok(())
    }

    /// Messages published and not confirmed, oldest first (with `retain`), taken out:
    /// after a lost connection they are to be published again on a new channel.
    pub fn take_unconfirmed(&mut self) -> Vec<Retained> {
        self.writing.clear();
        self.pending.clear();
        self.unconfirmed.drain(..).collect()
    }

    /// Totals so far, taken: the publisher counts from zero again (its successor after a
    /// lost connection adds them up).
    pub fn take_report(&mut self) -> PublishReport {
        std::mem::take(&mut self.report)
    }

    /// Totals so far (for progress display).
    pub fn report(&self) -> &PublishReport {
        &self.report
    }

    async fn settle_one(&mut self) -> anyhow::Result<()> {
        if self.pending.is_empty() {
            self.write_one().await?;
        }
        if let Some(confirm) = self.pending.pop_front() {
            let outcome = confirm.await.map_err(|e| self.failed(e))?;
            if outcome.is_nack() {
                return Err(coded(
                    exit::FAILURE,
                    format!(
                        "the broker refused (nacked) message {} after confirming {} of {} published (it could not store it: check the broker's log and disk space)",
                        self.report.confirmed + 1,
                        self.report.confirmed,
                        self.report.published
                    ),
                ));
            }
            self.report.confirmed += 1;
            self.unconfirmed.pop_front();
            self.record(outcome)?;
        }
        Ok(())
    }

    fn record(&mut self, outcome: Confirmation) -> anyhow::Result<()> {
        if let Some(returned) = outcome.take_message() {
            self.report.returned.push((
                returned.reply_text.as_str().to_string(),
                returned.delivery.routing_key.as_str().to_string(),
            ));
        }
        Ok(())
    }

    fn failed(&self, e: lapin::Error) -> anyhow::Error {
        let what = format!(
            "publishing failed after {} of {} messages were confirmed",
            self.report.confirmed, self.report.published
        );
        describe(&what, e)
    }
}
