//! How channels and connections end: a channel exception (close, then drop frames until
//! close-ok), releasing what a channel held (consumers, unacked messages, reply-to), the
//! connection's teardown, and RabbitMQ's consumer timeout.

use crate::broker::amqp::channel::{Channel, Content};
use crate::broker::amqp::session::Session;
use crate::broker::error::AmqpError;
use crate::broker::model::delivery::Settle;

impl Session {
    /// Channel exception: send channel.close, release what the channel held, and
    /// drop its frames until close-ok.
    pub(crate) fn close_channel(&mut self, ch: u16, err: AmqpError) {
        // One line per error, as RabbitMQ logs every channel exception.
        tracing::info!(
            "connection {} channel {ch}: channel error: {}",
            self.conn.id,
            err.text
        );
        let Some(mut chan) = self.channels.remove(&ch) else {
            return;
        };
        self.release_channel(&mut chan);
        chan.closing = true;
        chan.content = Content::Idle;
        self.channels.insert(ch, chan);
        self.conn.send_method(ch, err.channel_close());
    }

    /// Release a closing channel: stop deliveries, cancel its consumers (auto-delete
    /// queues may go), requeue its unacked messages as redelivered.
    pub(crate) fn release_channel(&mut self, chan: &mut Channel) {
        self.broker
            .registry
            .channel_closed(self.conn.id, chan.shared.id);
        let consumers = {
            let mut st = chan.shared.lock();
            st.open = false;
            st.reply_consumer = None;
            std::mem::take(&mut st.consumers)
        };
        for (tag, queue) in consumers {
            if let Some(q) = queue
                && q.remove_consumer(&chan.shared, &tag)
            {
                self.vhost.delete_queue(&q);
            }
        }
        // Held transactional acks never happened: their deliveries are requeued too.
        for (taken, _) in std::mem::take(&mut chan.tx_acks) {
            chan.shared.restore_unacked(taken);
        }
        let unacked = chan.shared.take_all_unacked();
        chan.shared.settle(unacked, Settle::Requeue);
        if let Some(token) = chan.reply_token.take() {
            self.broker
                .reply_to
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&token);
        }
    }

    /// The connection is gone: release every channel, then delete exclusive queues.
    pub(crate) fn teardown(&mut self) {
        let channels: Vec<_> = self.channels.drain().collect();
        for (_, mut chan) in channels {
            self.release_channel(&mut chan);
        }
        for q in std::mem::take(&mut self.exclusive_queues) {
            self.vhost.delete_queue(&q);
        }
    }

    /// Close (406) every channel holding a delivery unacknowledged for longer than
    /// `limit`; closing requeues its unacked messages (RabbitMQ's consumer_timeout).
    pub(crate) fn enforce_ack_timeout(&mut self, limit: std::time::Duration) {
        let late: Vec<u16> = self
            .channels
            .iter()
            .filter(|(_, c)| !c.closing)
            .filter(|(_, c)| {
                c.shared
                    .lock()
                    .unacked
                    .first_key_value()
                    .is_some_and(|(_, u)| u.at.elapsed() > limit)
            })
            .map(|(id, _)| *id)
            .collect();
        for ch in late {
            let err = AmqpError::precondition(format_args!(
                "delivery acknowledgement on channel {ch} timed out. Timeout value used: {} ms. \
                 This timeout value can be configured, see consumers doc guide to learn more",
                limit.as_millis()
            ));
            self.close_channel(ch, err);
        }
    }
}
