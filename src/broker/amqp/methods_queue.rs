//! queue.* handlers: decode, apply, reply — with RabbitMQ's checks and texts.

use crate::broker::access::grant::Checked;
use crate::broker::amqp::session::Session;
use crate::broker::error::{AmqpError, AmqpResult, code};
use crate::broker::model::queue::{Consumer, Queue};
use crate::broker::model::topology::{BindingSpec, QueueDeclare, usable_by};
use crate::broker::model::vhost::{VHost, notify_cancelled};
use amq_protocol::protocol::{AMQPClass, queue};
use amq_protocol::types::FieldTable;
use std::sync::Arc;

impl Session {
    /// An empty queue name means the channel's last declared queue (RabbitMQ extension).
    pub(crate) fn resolve_queue_name(&mut self, ch: u16, name: &str) -> AmqpResult<String> {
        if !name.is_empty() {
            return Ok(name.to_string());
        }
        self.chan(ch)
            .last_queue
            .clone()
            .ok_or_else(|| AmqpError::new(code::NOT_FOUND, "no previously declared queue"))
    }

    /// Look a queue up for use by this connection (404 missing, 405 another's exclusive).
    pub(crate) fn usable_queue(&mut self, ch: u16, name: &str) -> AmqpResult<Arc<Queue>> {
        let name = self.resolve_queue_name(ch, name)?;
        let q = self.vhost.queue_or_404(&name)?;
        self.check_exclusive(&q)?;
        Ok(q)
    }

    fn check_exclusive(&self, q: &Queue) -> AmqpResult {
        usable_by(q, Some(self.conn.id))
    }

    /// A binding of queue.bind / unbind, names resolved (the last declared queue, and
    /// RabbitMQ's shortcut for its key).
    fn queue_binding(
        &mut self,
        ch: u16,
        queue: &str,
        exchange: &str,
        key: &str,
        arguments: FieldTable,
    ) -> AmqpResult<BindingSpec> {
        let key = self.binding_key_shortcut(ch, queue, key);
        Ok(BindingSpec {
            source: exchange.to_string(),
            to_queue: true,
            destination: self.resolve_queue_name(ch, queue)?,
            key,
            arguments,
            requester: Some(self.conn.id),
        })
    }

    pub(crate) fn queue_method(&mut self, ch: u16, m: queue::AMQPMethod) -> AmqpResult {
        match m {
            queue::AMQPMethod::Declare(d) => self.queue_declare(ch, d),
            queue::AMQPMethod::Bind(b) => {
                let spec = self.queue_binding(
                    ch,
                    b.queue.as_str(),
                    b.exchange.as_str(),
                    b.routing_key.as_str(),
                    b.arguments,
                )?;
                let ok = AMQPClass::Queue(queue::AMQPMethod::BindOk(queue::BindOk {}));
                self.bind(ch, spec, (!b.nowait).then_some(ok))
            }
            queue::AMQPMethod::Unbind(u) => {
                let spec = self.queue_binding(
                    ch,
                    u.queue.as_str(),
                    u.exchange.as_str(),
                    u.routing_key.as_str(),
                    u.arguments,
                )?;
                let mut permit = Checked {
                    grant: &mut self.grant,
                    db: &self.broker.auth,
                };
                self.vhost.unbind_checked(&mut permit, spec)?;
                self.reply(
                    ch,
                    AMQPClass::Queue(queue::AMQPMethod::UnbindOk(queue::UnbindOk {})),
                );
                Ok(())
            }
            queue::AMQPMethod::Purge(p) => {
                let name = self.resolve_queue_name(ch, p.queue.as_str())?;
                let mut permit = Checked {
                    grant: &mut self.grant,
                    db: &self.broker.auth,
                };
                let n = self.vhost.purge(&mut permit, &name, Some(self.conn.id))?;
                if !p.nowait {
                    self.reply(
                        ch,
                        AMQPClass::Queue(queue::AMQPMethod::PurgeOk(queue::PurgeOk {
                            message_count: n,
                        })),
                    );
                }
                Ok(())
            }
            queue::AMQPMethod::Delete(d) => {
                let name = self.resolve_queue_name(ch, d.queue.as_str())?;
                let mut permit = Checked {
                    grant: &mut self.grant,
                    db: &self.broker.auth,
                };
                // Deleting a queue that does not exist succeeds (RabbitMQ 3.10).
                let Some(q) = self.vhost.plan_queue_delete(
                    &mut permit,
                    &name,
                    Some(self.conn.id),
                    d.if_unused,
                    d.if_empty,
                )?
                else {
                    self.queue_deleted(ch, d.nowait, 0, Vec::new());
                    return Ok(());
                };
                if VHost::queue_delete_touches_disk(&q) {
                    // Its definitions record and its files are disk work (`session_disk`).
                    let vhost = self.vhost.clone();
                    return self.after_disk(
                        ch,
                        move || vhost.apply_queue_delete(&q),
                        move |s, (count, cancelled)| {
                            s.queue_deleted(ch, d.nowait, count, cancelled);
                            Ok(())
                        },
                    );
                }
                let (count, cancelled) = self.vhost.apply_queue_delete(&q);
                self.exclusive_queues.retain(|e| !Arc::ptr_eq(e, &q));
                self.queue_deleted(ch, d.nowait, count, cancelled);
                Ok(())
            }
            other => Err(AmqpError::new(
                code::COMMAND_INVALID,
                format_args!("unexpected method {:?}", other),
            )),
        }
    }

    /// RabbitMQ's shortcut: queue '' and routing key '' in bind/unbind mean the last
    /// declared queue, bound with its own name as the key.
    fn binding_key_shortcut(&mut self, ch: u16, queue: &str, key: &str) -> String {
        match (
            queue.is_empty() && key.is_empty(),
            &self.chan(ch).last_queue,
        ) {
            (true, Some(last)) => last.clone(),
            _ => key.to_string(),
        }
    }

    fn queue_declare(&mut self, ch: u16, d: queue::Declare) -> AmqpResult {
        // Fault injection for tests: a bug anywhere in a handler, raised only for queues
        // named `failpoint-...` so tests running alongside are untouched.
        fail::fail_point!(
            "amqp-queue-declare",
            d.queue.as_str().starts_with("failpoint-"),
            |_| Err(AmqpError::new(code::INTERNAL_ERROR, "failpoint"))
        );
        let requested = d.queue.as_str().to_string();
        if d.passive {
            let name = self.resolve_queue_name(ch, &requested)?;
            let (ready, consumers) = if name == super::REPLY_TO {
                (0, 0)
            } else {
                let q = self.vhost.queue_or_404(&name)?;
                self.check_exclusive(&q)?;
                // A passive declare counts as use for x-expires, as in RabbitMQ.
                q.touch();
                let (ready, _, consumers) = q.counts();
                (ready, consumers)
            };
            return self.declare_ok(ch, d.nowait, name, ready, consumers);
        }
        let server_named = requested.is_empty();
        let name = if server_named {
            self.broker.random_name("amq.gen-")
        } else {
            requested
        };
        let req = QueueDeclare {
            name: name.clone(),
            server_named,
            durable: d.durable,
            exclusive: d.exclusive,
            auto_delete: d.auto_delete,
            arguments: d.arguments.clone(),
            requester: Some(self.conn.id),
        };
        let mut permit = Checked {
            grant: &mut self.grant,
            db: &self.broker.auth,
        };
        let plan = self.vhost.plan_queue(&mut permit, req)?;
        let (exclusive, nowait) = (d.exclusive, d.nowait);
        if self.vhost.queue_touches_disk(&plan) {
            // Its directory, first segment and definitions record are disk work: done
            // off the runtime's threads while this connection waits.
            let vhost = self.vhost.clone();
            return self.after_disk(
                ch,
                move || vhost.apply_queue(plan),
                move |s, declared| s.queue_declared(ch, exclusive, nowait, name, declared),
            );
        }
        let declared = self.vhost.apply_queue(plan);
        self.queue_declared(ch, exclusive, nowait, name, declared)
    }

    /// queue.declare once the topology service answered: an exclusive queue this
    /// connection created is its to delete at close; declare-ok.
    fn queue_declared(
        &mut self,
        ch: u16,
        exclusive: bool,
        nowait: bool,
        name: String,
        declared: AmqpResult<crate::broker::model::topology::Declared<Queue>>,
    ) -> AmqpResult {
        let declared = declared?;
        let queue = declared.object;
        if declared.created && exclusive {
            self.exclusive_queues.push(queue.clone());
        }
        let (ready, _, consumers) = queue.counts();
        self.declare_ok(ch, nowait, name, ready, consumers)
    }

    /// delete-ok, then basic.cancel to the deleted queue's consumers (RabbitMQ's order).
    fn queue_deleted(&mut self, ch: u16, nowait: bool, count: u32, cancelled: Vec<Consumer>) {
        if !nowait {
            self.reply(
                ch,
                AMQPClass::Queue(queue::AMQPMethod::DeleteOk(queue::DeleteOk {
                    message_count: count,
                })),
            );
        }
        notify_cancelled(cancelled);
    }

    fn declare_ok(
        &mut self,
        ch: u16,
        nowait: bool,
        name: String,
        ready: u32,
        consumers: u32,
    ) -> AmqpResult {
        if !nowait {
            self.reply(
                ch,
                AMQPClass::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                    queue: name.as_str().into(),
                    message_count: ready,
                    consumer_count: consumers,
                })),
            );
        }
        self.chan(ch).last_queue = Some(name);
        Ok(())
    }
}
