//! Publisher confirms: one cumulative `basic.ack multiple=true` per channel per read
//! batch (with nacks for refused messages), sent after the group-commit fsync when the
//! batch wrote to a queue log, and never ahead of an earlier batch still waiting for it.

use crate::broker::amqp::session::Session;
use crate::broker::error::{AmqpError, code};
use crate::codec;
use amq_protocol::protocol::{AMQPClass, basic};
use bytes::{Bytes, BytesMut};
use std::sync::atomic::Ordering;

impl Session {
    /// Publisher confirms for everything handled in this batch: one cumulative
    /// `basic.ack multiple=true` per channel instead of one frame per message.
    pub(crate) fn flush_confirms(&mut self) {
        let mut out = BytesMut::new();
        for (id, ch) in self.channels.iter_mut() {
            let Some(upto) = ch.unconfirmed.take() else {
                continue;
            };
            let ack = |out: &mut BytesMut, tag: u64| {
                codec::put_method(
                    out,
                    *id,
                    AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                        delivery_tag: tag,
                        multiple: true,
                    })),
                );
            };
            let mut done = ch.confirmed_upto;
            ch.nacks.sort_unstable();
            for n in ch.nacks.drain(..) {
                if n > done + 1 {
                    ack(&mut out, n - 1);
                }
                codec::put_method(
                    &mut out,
                    *id,
                    AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack {
                        delivery_tag: n,
                        multiple: false,
                        requeue: false,
                    })),
                );
                done = n;
            }
            if upto > done {
                ack(&mut out, upto);
            }
            ch.confirmed_upto = upto;
        }
        if !out.is_empty() {
            self.send_after_sync(out.freeze());
        }
    }

    /// Send frames that acknowledge publishes: after the next fsync when this batch
    /// wrote to a queue log (or an earlier such send is still waiting), else now.
    pub(crate) fn send_after_sync(&mut self, frames: Bytes) {
        let must_wait = std::mem::take(&mut self.awaiting_sync)
            || self.sync_outstanding.load(Ordering::Acquire) > 0;
        match self.vhost.store.as_ref().filter(|_| must_wait) {
            Some(store) => {
                self.sync_outstanding.fetch_add(1, Ordering::AcqRel);
                let conn = self.conn.clone();
                let outstanding = self.sync_outstanding.clone();
                store.syncer.after_sync(Box::new(move |durable| {
                    match durable {
                        Ok(()) => conn.send(frames),
                        // Never confirm what is not on disk: the publisher learns at once
                        // (RabbitMQ's answer to an internal failure is 541).
                        Err(why) => conn.fail(AmqpError::new(
                            code::INTERNAL_ERROR,
                            format_args!("cannot make published messages durable: {why}"),
                        )),
                    }
                    outstanding.fetch_sub(1, Ordering::AcqRel);
                }));
            }
            None => self.conn.send(frames),
        }
    }
}
