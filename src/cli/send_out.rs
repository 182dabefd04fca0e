//! Where `send` publishes: a publisher over a [`Link`], with the first-message probe
//! that declares the queue only when it is missing, and — for a stream (stdin, a file)
//! — reconnecting: what was published and not confirmed when the connection went is
//! published again on the new one, and counted; nothing is dropped silently.

use super::resume::Link;
use crate::client::{
    DeclareMode, Properties, PublishOptions, PublishReport, Publisher, QueueSpec, Retained,
};
use bytes::Bytes;
use std::collections::VecDeque;

/// The publishing end of `send`.
pub(crate) struct Outbox<'a> {
    link: Link<'a>,
    publisher: Publisher,
    opts: PublishOptions,
    /// The queue, until the first message has told whether it exists: that message goes
    /// out mandatory, and a basic.return (312 NO_ROUTE: no queue has that name) makes
    /// `send` declare the queue and publish it again. A new queue and an existing one
    /// (whatever its flags) then cost the broker no channel error, where a passive probe
    /// failed with 404 for every new queue and a plain declare with 406 for a queue made
    /// with other flags, and RabbitMQ logs each.
    probe: Option<QueueSpec>,
    /// What to declare again on a new connection (a queue on a node that died may have
    /// to be made again; a durable one elsewhere in the cluster is found as it is).
    redeclare: Option<(QueueSpec, DeclareMode)>,
    /// Totals of the publishers before the current one.
    earlier: PublishReport,
    /// Messages published again after a reconnect.
    pub(crate) republished: u64,
}

impl<'a> Outbox<'a> {
    /// A publisher on `link`; `probe` as described on the field, `redeclare` for reconnects.
    pub(crate) async fn new(
        link: Link<'a>,
        opts: PublishOptions,
        probe: Option<QueueSpec>,
        redeclare: Option<(QueueSpec, DeclareMode)>,
    ) -> anyhow::Result<Outbox<'a>> {
        let publisher = link.session().publisher(opts.clone()).await?;
        Ok(Outbox {
            link,
            publisher,
            opts,
            probe,
            redeclare,
            earlier: PublishReport::default(),
            republished: 0,
        })
    }

    /// Publish one message (waiting only when the confirm window is full).
    pub(crate) async fn publish(
        &mut self,
        exchange: &str,
        key: &str,
        props: &Properties,
        body: Bytes,
    ) -> anyhow::Result<()> {
        loop {
            let before = self.publisher.report().published;
            let r = self.try_publish(exchange, key, props, body.clone()).await;
            let Err(e) = r else { return Ok(()) };
            // Taken (and so among the unconfirmed that `recover` publishes again), or not
            // yet: then it is published below, on the new connection.
            let taken = self.publisher.report().published > before;
            self.recover(e).await?;
            if taken {
                return Ok(());
            }
        }
    }

    async fn try_publish(
        &mut self,
        exchange: &str,
        key: &str,
        props: &Properties,
        body: Bytes,
    ) -> anyhow::Result<()> {
        let Some(spec) = self.probe.take() else {
            return self
                .publisher
                .publish_shared(exchange, key, props, body)
                .await;
        };
        let found = match self
            .publisher
            .publish_probe(exchange, key, props, body.clone())
            .await
        {
            Ok(found) => found,
            Err(e) => {
                // Not settled by the probe: the next connection declares it first.
                self.probe = Some(spec);
                return Err(e);
            }
        };
        if !found {
            self.link
                .session()
                .prepare_queue(&spec, DeclareMode::Ensure)
                .await?;
            self.publisher
                .publish_shared(exchange, key, props, body)
                .await?;
        }
        Ok(())
    }

    /// After a failure: a lost connection is regained (or the error returned), the queue
    /// declared again, and every unconfirmed message published again, in order.
    async fn recover(&mut self, mut err: anyhow::Error) -> anyhow::Result<()> {
        // Messages still to publish again, oldest first.
        let mut carry: VecDeque<Retained> = VecDeque::new();
        loop {
            // What this publisher sent and the broker did not confirm goes before what
            // an earlier attempt had not yet sent again.
            let mine = self.publisher.take_unconfirmed();
            let old = self.publisher.take_report();
            self.earlier.published += old.published - mine.len() as u64;
            self.earlier.confirmed += old.confirmed;
            self.earlier.returned.extend(old.returned);
            for m in mine.into_iter().rev() {
                carry.push_front(m);
            }
            self.link.recover(err).await?;
            let n = carry.len() as u64;
            let attempt = async {
                self.publisher = self.link.session().publisher(self.opts.clone()).await?;
                if let Some((spec, mode)) = self.redeclare.as_ref() {
                    // A probe cut short: the queue may not exist yet.
                    let mode = if self.probe.take().is_some() {
                        DeclareMode::Ensure
                    } else {
                        *mode
                    };
                    self.link.session().prepare_queue(spec, mode).await?;
                }
                while let Some(m) = carry.front() {
                    let m = m.clone();
                    let before = self.publisher.report().published;
                    let r = self
                        .publisher
                        .publish_shared(&m.exchange, &m.routing_key, &m.properties, m.body)
                        .await;
                    if r.is_ok() || self.publisher.report().published > before {
                        // Now the new publisher's to keep until confirmed.
                        carry.pop_front();
                    }
                    r?;
                }
                Ok::<(), anyhow::Error>(())
            };
            match attempt.await {
                Ok(()) => {
                    if n > 0 {
                        self.republished += n;
                        self.link.warn(&format!(
                            "published again {n} message(s) that were not confirmed when the connection was lost"
                        ));
                    }
                    return Ok(());
                }
                Err(e) => err = e,
            }
        }
    }

    /// Wait for every confirm (reconnecting and republishing when the connection goes
    /// meanwhile) and close.
    pub(crate) async fn finish(mut self) -> anyhow::Result<PublishReport> {
        loop {
            match self.publisher.flush().await {
                Ok(()) => break,
                Err(e) => self.recover(e).await?,
            }
        }
        let report = self.report();
        let _ = self.publisher.finish().await;
        self.link.close().await;
        Ok(report)
    }

    /// Totals over every connection: each message counted once.
    pub(crate) fn report(&self) -> PublishReport {
        let now = self.publisher.report();
        let mut returned = self.earlier.returned.clone();
        returned.extend(now.returned.iter().cloned());
        PublishReport {
            published: self.earlier.published + now.published,
            confirmed: self.earlier.confirmed + now.confirmed,
            returned,
        }
    }

    /// The session in use (for a final declare).
    pub(crate) fn link(&self) -> &Link<'a> {
        &self.link
    }

    /// The probe not yet settled (nothing was sent), taken.
    pub(crate) fn take_probe(&mut self) -> Option<QueueSpec> {
        self.probe.take()
    }
}
