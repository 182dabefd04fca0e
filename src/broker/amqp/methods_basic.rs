//! basic.*, confirm.* and tx.* handlers: decode, apply, reply — with RabbitMQ's checks
//! and texts (rabbit_channel is the reference for every error below).

use crate::broker::access::Access;
use crate::broker::access::Resource;
use crate::broker::amqp::channel::{Content, PendingPublish};
use crate::broker::amqp::session::Session;
use crate::broker::error::{AmqpError, AmqpResult, code};
use crate::broker::model::args::{as_int, type_name};
use crate::broker::model::delivery::{ConsumerCredit, Settle};
use crate::broker::model::queue::{ConsumeRefused, Consumer};
use crate::codec;
use amq_protocol::protocol::{AMQPClass, basic, confirm, tx};
use bytes::BytesMut;
use std::sync::Arc;

use super::REPLY_TO;

impl Session {
    pub(crate) fn basic_method(
        &mut self,
        ch: u16,
        m: basic::AMQPMethod,
        payload: &[u8],
    ) -> AmqpResult {
        match m {
            basic::AMQPMethod::Qos(q) => {
                // amq-protocol skips prefetch_size; read it from the raw payload (class,
                // method, then a long) because RabbitMQ refuses anything but 0.
                let size = payload
                    .get(4..8)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(0);
                if size != 0 {
                    return Err(AmqpError::not_implemented(format_args!(
                        "prefetch_size!=0 ({size})"
                    )));
                }
                let count = u32::from(q.prefetch_count);
                if q.global {
                    self.chan(ch).shared.lock().global_prefetch = count;
                    // A larger channel limit may free credit for every consumer.
                    let queues: Vec<_> = self
                        .chan(ch)
                        .shared
                        .lock()
                        .consumers
                        .values()
                        .flatten()
                        .cloned()
                        .collect();
                    for queue in queues {
                        queue.kick();
                    }
                } else {
                    self.chan(ch).settings.set_prefetch(count);
                }
                self.reply(
                    ch,
                    AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})),
                );
                Ok(())
            }
            basic::AMQPMethod::Consume(c) => self.consume(ch, c),
            basic::AMQPMethod::Cancel(c) => {
                let tag = c.consumer_tag.as_str();
                let shared = self.chan(ch).shared.clone();
                let removed = {
                    let mut st = shared.lock();
                    if st.reply_consumer.as_deref() == Some(tag) {
                        st.reply_consumer = None;
                    }
                    st.consumers.remove(tag)
                };
                if let Some(Some(queue)) = removed
                    && queue.remove_consumer(&shared, tag)
                {
                    self.vhost.delete_queue(&queue);
                }
                // Cancelling an unknown tag is not an error (AMQP 0-9-1 §1.8.3.5).
                if !c.nowait {
                    self.reply(
                        ch,
                        AMQPClass::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
                            consumer_tag: c.consumer_tag,
                        })),
                    );
                }
                Ok(())
            }
            basic::AMQPMethod::Publish(p) => {
                if p.immediate {
                    return Err(AmqpError::not_implemented("immediate=true"));
                }
                self.chan(ch).content = Content::Header(PendingPublish {
                    exchange: p.exchange.to_string(),
                    routing_key: p.routing_key.to_string(),
                    mandatory: p.mandatory,
                });
                Ok(())
            }
            basic::AMQPMethod::Get(g) => self.get(ch, g),
            basic::AMQPMethod::Ack(a) => self.settle_tags(ch, a.delivery_tag, a.multiple, None),
            basic::AMQPMethod::Nack(n) => {
                self.settle_tags(ch, n.delivery_tag, n.multiple, Some(n.requeue))
            }
            basic::AMQPMethod::Reject(r) => {
                self.settle_tags(ch, r.delivery_tag, false, Some(r.requeue))
            }
            basic::AMQPMethod::Recover(r) => {
                self.recover(ch, r.requeue)?;
                self.reply(
                    ch,
                    AMQPClass::Basic(basic::AMQPMethod::RecoverOk(basic::RecoverOk {})),
                );
                Ok(())
            }
            basic::AMQPMethod::RecoverAsync(r) => self.recover(ch, r.requeue),
            other => Err(AmqpError::new(
                code::COMMAND_INVALID,
                format_args!(
                    "unexpected method {} on channel {ch}",
                    crate::broker::amqp::session::method_name(&AMQPClass::Basic(other))
                ),
            )),
        }
    }

    fn consume(&mut self, ch: u16, c: basic::Consume) -> AmqpResult {
        let shared = self.chan(ch).shared.clone();
        let tag: Arc<str> = if c.consumer_tag.as_str().is_empty() {
            self.broker.random_name("amq.ctag-").into()
        } else {
            c.consumer_tag.as_str().into()
        };
        if shared.lock().consumers.contains_key(&tag) {
            // A connection error in RabbitMQ, not a channel error.
            return Err(AmqpError::new(
                code::NOT_ALLOWED,
                format_args!("attempt to reuse consumer tag '{tag}'"),
            ));
        }
        if c.queue.as_str() == REPLY_TO {
            return self.consume_reply_to(ch, c, tag);
        }
        let name = self.resolve_queue_name(ch, c.queue.as_str())?;
        self.permit(Access::Read, Resource::Queue, &name)?;
        let queue = self.usable_queue(ch, &name)?;
        let priority = match c.arguments.inner().get("x-priority") {
            None => 0,
            Some(v) => as_int(v).ok_or_else(|| {
                AmqpError::precondition(format_args!(
                    "invalid arg 'x-priority' for queue '{}' in vhost '{}': \"expected integer, got {}\"",
                    queue.name,
                    queue.vhost,
                    type_name(v)
                ))
            })?,
        };
        let consumer = Consumer {
            tag: tag.clone(),
            channel: shared.clone(),
            no_ack: c.no_ack,
            exclusive: c.exclusive,
            priority,
            credit: Arc::new(ConsumerCredit {
                prefetch: self.chan(ch).settings.prefetch(),
                ..ConsumerCredit::default()
            }),
        };
        shared
            .lock()
            .consumers
            .insert(tag.clone(), Some(queue.clone()));
        let conn = self.conn.clone();
        let nowait = c.nowait;
        let ok_tag = tag.clone();
        // consume-ok must precede the first delivery: it is sent from inside the queue's
        // critical section, before the queue dispatches to the new consumer.
        let added = queue.add_consumer(consumer, move || {
            if !nowait {
                conn.send_method(
                    ch,
                    AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                        consumer_tag: ok_tag.as_ref().into(),
                    })),
                );
            }
        });
        match added {
            Ok(()) => Ok(()),
            Err(refused) => {
                shared.lock().consumers.remove(&tag);
                Err(match refused {
                    ConsumeRefused::ExclusiveUse => AmqpError::access_refused(format_args!(
                        "queue '{}' in vhost '{}' in exclusive use",
                        queue.name, queue.vhost
                    )),
                    ConsumeRefused::Deleted => {
                        AmqpError::not_found("queue", &queue.name, &queue.vhost)
                    }
                })
            }
        }
    }

    /// Direct reply-to: the channel gets a token; messages published to
    /// `amq.rabbitmq.reply-to.<token>` come straight to this consumer, unacked.
    fn consume_reply_to(&mut self, ch: u16, c: basic::Consume, tag: Arc<str>) -> AmqpResult {
        if !c.no_ack {
            return Err(AmqpError::precondition("reply consumer cannot acknowledge"));
        }
        let shared = self.chan(ch).shared.clone();
        if shared.lock().reply_consumer.is_some() {
            return Err(AmqpError::precondition("reply consumer already set"));
        }
        if self.chan(ch).reply_token.is_none() {
            let token = self.broker.random_name("");
            self.broker
                .reply_to
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(token.clone(), Arc::downgrade(&shared));
            self.chan(ch).reply_token = Some(token);
        }
        {
            let mut st = shared.lock();
            st.reply_consumer = Some(tag.clone());
            st.consumers.insert(tag.clone(), None);
        }
        if !c.nowait {
            self.reply(
                ch,
                AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                    consumer_tag: tag.as_ref().into(),
                })),
            );
        }
        Ok(())
    }

    fn get(&mut self, ch: u16, g: basic::Get) -> AmqpResult {
        let name = self.resolve_queue_name(ch, g.queue.as_str())?;
        self.permit(Access::Read, Resource::Queue, &name)?;
        let queue = self.usable_queue(ch, &name)?;
        let shared = self.chan(ch).shared.clone();
        match queue.get(!g.no_ack) {
            None => {
                self.reply(
                    ch,
                    AMQPClass::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})),
                );
            }
            Some((entry, left)) => {
                let tag = shared.record_get(&queue, &entry, !g.no_ack);
                // Queue::get hands out loaded messages only.
                let Some(msg) = &entry.msg else {
                    return Err(AmqpError::new(code::INTERNAL_ERROR, "message not loaded"));
                };
                let counted;
                let msg = if queue.args.quorum {
                    counted = Arc::new(msg.with_delivery_count(entry.delivery_count));
                    &counted
                } else {
                    msg
                };
                let mut out = BytesMut::with_capacity(96 + msg.header.len() + msg.body.len());
                codec::put_method(
                    &mut out,
                    ch,
                    AMQPClass::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
                        delivery_tag: tag,
                        redelivered: entry.redelivered,
                        exchange: crate::codec::bounds::short(&msg.exchange),
                        routing_key: crate::codec::bounds::short(&msg.routing_key),
                        message_count: left,
                    })),
                );
                codec::put_content(&mut out, ch, &msg.header, &msg.body, self.frame_max);
                self.conn.send(out.freeze());
            }
        }
        Ok(())
    }

    /// ack (`requeue` None), nack and reject. Unknown tags close the channel with 406.
    /// Inside a transaction the settlement waits for tx.commit.
    fn settle_tags(
        &mut self,
        ch: u16,
        tag: u64,
        multiple: bool,
        requeue: Option<bool>,
    ) -> AmqpResult {
        let shared = self.chan(ch).shared.clone();
        let Some(taken) = shared.take_unacked(tag, multiple) else {
            return Err(AmqpError::precondition(format_args!(
                "unknown delivery tag {tag}"
            )));
        };
        let how = match requeue {
            None => Settle::Ack,
            Some(true) => Settle::Requeue,
            Some(false) => Settle::Reject,
        };
        let chan = self.chan(ch);
        if chan.settings.transactional() {
            chan.tx_acks.push((taken, how));
        } else {
            shared.settle(taken.into_iter().map(|(_, u)| u).collect(), how);
        }
        Ok(())
    }

    fn recover(&mut self, ch: u16, requeue: bool) -> AmqpResult {
        if !requeue {
            // RabbitMQ implements only requeue=true (rabbit_channel: not_implemented).
            return Err(AmqpError::not_implemented("requeue=false"));
        }
        let shared = self.chan(ch).shared.clone();
        let unacked = shared.take_all_unacked();
        shared.settle(unacked, Settle::Requeue);
        Ok(())
    }

    pub(crate) fn confirm_method(&mut self, ch: u16, m: confirm::AMQPMethod) -> AmqpResult {
        match m {
            confirm::AMQPMethod::Select(s) => {
                if self.chan(ch).settings.transactional() {
                    return Err(AmqpError::precondition(
                        "cannot switch from tx to confirm mode",
                    ));
                }
                self.chan(ch).settings.select_confirm();
                if !s.nowait {
                    self.reply(
                        ch,
                        AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {})),
                    );
                }
                Ok(())
            }
            confirm::AMQPMethod::SelectOk(_) => Err(AmqpError::new(
                code::COMMAND_INVALID,
                "unexpected confirm.select-ok",
            )),
        }
    }

    pub(crate) fn tx_method(&mut self, ch: u16, m: tx::AMQPMethod) -> AmqpResult {
        match m {
            tx::AMQPMethod::Select(_) => {
                if self.chan(ch).settings.confirm() {
                    return Err(AmqpError::precondition(
                        "cannot switch from confirm to tx mode",
                    ));
                }
                self.chan(ch).settings.select_tx();
                self.reply(ch, AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})));
            }
            tx::AMQPMethod::Commit(_) => {
                if !self.chan(ch).settings.transactional() {
                    return Err(AmqpError::precondition("channel is not transactional"));
                }
                // Publishes first, then acks, as RabbitMQ applies a transaction.
                for p in std::mem::take(&mut self.chan(ch).tx_publishes) {
                    self.route_published(ch, p.msg, p.ttl, p.mandatory);
                }
                let shared = self.chan(ch).shared.clone();
                for (taken, how) in std::mem::take(&mut self.chan(ch).tx_acks) {
                    shared.settle(taken.into_iter().map(|(_, u)| u).collect(), how);
                }
                // Like a confirm: commit-ok waits until committed persistent messages are on disk.
                let mut out = BytesMut::new();
                codec::put_method(
                    &mut out,
                    ch,
                    AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})),
                );
                self.send_after_sync(out.freeze());
            }
            tx::AMQPMethod::Rollback(_) => {
                if !self.chan(ch).settings.transactional() {
                    return Err(AmqpError::precondition("channel is not transactional"));
                }
                let chan = self.chan(ch);
                chan.tx_publishes.clear();
                // Acks inside the rolled-back transaction never happened: still unacked.
                let acks = std::mem::take(&mut chan.tx_acks);
                for (taken, _) in acks {
                    chan.shared.restore_unacked(taken);
                }
                self.reply(
                    ch,
                    AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})),
                );
            }
            other => {
                return Err(AmqpError::new(
                    code::COMMAND_INVALID,
                    format_args!(
                        "unexpected method {}",
                        crate::broker::amqp::session::method_name(&AMQPClass::Tx(other))
                    ),
                ));
            }
        }
        Ok(())
    }
}
