//! queue.* handlers: decode, apply, reply — with RabbitMQ's checks and texts.

use crate::broker::access::Access;
use crate::broker::access::grant::Resource;
use crate::broker::amqp::session::Session;
use crate::broker::error::{AmqpError, AmqpResult, code, found};
use crate::broker::model::args::{
    DeclaredAs, QueueArgs, as_string, assert_equivalent, check_queue_type,
};
use crate::broker::model::exchange::{Binding, Dest, Exchange};
use crate::broker::model::queue::{Consumer, Queue, QueueSpec};
use crate::broker::model::vhost::notify_cancelled;
use amq_protocol::protocol::{AMQPClass, queue};
use amq_protocol::types::FieldTable;
use std::sync::Arc;

pub(crate) fn inequivalent(
    arg: &str,
    kind: &str,
    name: &str,
    vhost: &str,
    received: impl std::fmt::Display,
    current: impl std::fmt::Display,
) -> AmqpError {
    AmqpError::precondition(format_args!(
        "inequivalent arg '{arg}' for {kind} '{name}' in vhost '{vhost}': received '{received}' but current is '{current}'"
    ))
}

pub(crate) fn queue_type(arguments: &FieldTable) -> AmqpResult<Option<String>> {
    let Some(v) = arguments.inner().get("x-queue-type") else {
        return Ok(None);
    };
    let Some(t) = as_string(v) else {
        return Err(AmqpError::precondition(
            "invalid arg 'x-queue-type' for queue",
        ));
    };
    match t.as_str() {
        "classic" | "quorum" => Ok(Some(t)),
        other => Err(AmqpError::not_implemented(format_args!(
            "queue type '{other}' is not supported by rmq serve"
        ))),
    }
}

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
        match q.exclusive_owner {
            Some(owner) if owner != self.conn.id => Err(AmqpError::locked(&q.name, &q.vhost)),
            _ => Ok(()),
        }
    }

    pub(crate) fn queue_method(&mut self, ch: u16, m: queue::AMQPMethod) -> AmqpResult {
        match m {
            queue::AMQPMethod::Declare(d) => self.queue_declare(ch, d),
            queue::AMQPMethod::Bind(b) => {
                let key = self.binding_key_shortcut(ch, b.queue.as_str(), b.routing_key.as_str());
                self.permit_binding(ch, b.queue.as_str(), b.exchange.as_str(), &key)?;
                let q = self.usable_queue(ch, b.queue.as_str())?;
                let x = self.bindable_exchange(b.exchange.as_str())?;
                let binding = Binding {
                    dest: Dest::Queue(q),
                    routing_key: key,
                    arguments: b.arguments,
                };
                let bind_ok = move |s: &mut Session, ()| {
                    if !b.nowait {
                        s.reply(
                            ch,
                            AMQPClass::Queue(queue::AMQPMethod::BindOk(queue::BindOk {})),
                        );
                    }
                    Ok(())
                };
                if self.vhost.binding_is_durable(&x, &binding.dest) {
                    // Its definitions record is disk work (`session_disk`).
                    let vhost = self.vhost.clone();
                    return self.after_disk(ch, move || vhost.bind(&x, binding), bind_ok);
                }
                self.vhost.bind(&x, binding);
                bind_ok(self, ())
            }
            queue::AMQPMethod::Unbind(u) => {
                let key = self.binding_key_shortcut(ch, u.queue.as_str(), u.routing_key.as_str());
                self.permit_binding(ch, u.queue.as_str(), u.exchange.as_str(), &key)?;
                // Unbinding what does not exist succeeds, as in RabbitMQ 3.10: a missing
                // binding, and a missing queue or exchange too (clients' clean-up paths
                // unbind from what a peer may already have deleted).
                let q = found(self.usable_queue(ch, u.queue.as_str()))?;
                let x = found(self.bindable_exchange(u.exchange.as_str()))?;
                if let (Some(q), Some(x)) = (q, x)
                    && self.vhost.unbind(&x, &Dest::Queue(q), &key, &u.arguments)
                    && x.auto_delete
                    && x.binding_count() == 0
                {
                    self.vhost.delete_exchange(&x.name);
                }
                self.reply(
                    ch,
                    AMQPClass::Queue(queue::AMQPMethod::UnbindOk(queue::UnbindOk {})),
                );
                Ok(())
            }
            queue::AMQPMethod::Purge(p) => {
                let name = self.resolve_queue_name(ch, p.queue.as_str())?;
                self.permit(Access::Read, Resource::Queue, &name)?;
                let q = self.usable_queue(ch, &name)?;
                let n = q.purge();
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
                self.permit(Access::Configure, Resource::Queue, &name)?;
                let mut count = 0;
                let mut cancelled = Vec::new();
                // Deleting a queue that does not exist succeeds (RabbitMQ 3.10).
                let queue = self.vhost.queue(&name);
                if let Some(q) = &queue
                    && q.log_id.is_some()
                {
                    self.check_exclusive(q)?;
                    check_deletable(q, &d, &self.vhost.name)?;
                    // Its definitions record and its files are disk work (`session_disk`).
                    let (vhost, q) = (self.vhost.clone(), q.clone());
                    return self.after_disk(
                        ch,
                        move || vhost.remove_queue(&q),
                        move |s, (count, cancelled)| {
                            s.queue_deleted(ch, d.nowait, count, cancelled);
                            Ok(())
                        },
                    );
                }
                if let Some(q) = queue {
                    self.check_exclusive(&q)?;
                    check_deletable(&q, &d, &self.vhost.name)?;
                    let (n, consumers) = self.vhost.remove_queue(&q);
                    count = n;
                    cancelled = consumers;
                    self.exclusive_queues.retain(|e| !Arc::ptr_eq(e, &q));
                }
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

    /// queue.bind / unbind need write on the queue and read on the exchange, checked
    /// before either is looked up, then the topic permission on the key when the
    /// exchange exists, as RabbitMQ does (rabbit_channel:binding_action).
    fn permit_binding(&mut self, ch: u16, queue: &str, exchange: &str, key: &str) -> AmqpResult {
        let queue = self.resolve_queue_name(ch, queue)?;
        self.permit(Access::Write, Resource::Queue, &queue)?;
        if exchange.is_empty() {
            // The default exchange's own refusal comes first.
            return Ok(());
        }
        self.permit(Access::Read, Resource::Exchange, exchange)?;
        match self.vhost.exchange(exchange) {
            Some(x) => self.permit_topic(Access::Read, &x, key),
            None => Ok(()),
        }
    }

    pub(crate) fn bindable_exchange(&self, name: &str) -> AmqpResult<Arc<Exchange>> {
        if name.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        self.vhost.exchange_or_404(name)
    }

    fn queue_declare(&mut self, ch: u16, d: queue::Declare) -> AmqpResult {
        // Fault injection for tests: a bug anywhere in a handler, raised only for queues
        // named `failpoint-...` so tests running alongside are untouched.
        fail::fail_point!(
            "amqp-queue-declare",
            d.queue.as_str().starts_with("failpoint-"),
            |_| Err(AmqpError::new(code::INTERNAL_ERROR, "failpoint"))
        );
        let vhost = self.vhost.name.clone();
        let requested = d.queue.as_str().to_string();
        if d.passive {
            let name = self.resolve_queue_name(ch, &requested)?;
            let (ready, consumers) = if name == "amq.rabbitmq.reply-to" {
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
        let name = if requested.is_empty() {
            self.broker.random_name("amq.gen-")
        } else if requested.starts_with("amq.") {
            return Err(AmqpError::access_refused(format_args!(
                "queue name '{requested}' contains reserved prefix 'amq.*'"
            )));
        } else {
            requested
        };
        self.permit(Access::Configure, Resource::Queue, &name)?;
        // Dead-lettering reads from this queue and writes to the DLX (RabbitMQ checks both).
        if let Some(dlx) = d
            .arguments
            .inner()
            .get("x-dead-letter-exchange")
            .and_then(as_string)
        {
            self.permit(Access::Read, Resource::Queue, &name)?;
            self.permit(Access::Write, Resource::Exchange, &dlx)?;
        }
        let args = QueueArgs::parse(&d.arguments, &name, &vhost)?;
        // Checked before anything is created: an unsupported type must leave no queue,
        // and a quorum queue must be declared as one can be.
        let requested_type = queue_type(&d.arguments)?;
        let declared = DeclaredAs {
            durable: d.durable,
            exclusive: d.exclusive,
            auto_delete: d.auto_delete,
            server_named: d.queue.as_str().is_empty(),
        };
        check_queue_type(&d.arguments, &args, declared, &name, &vhost)?;
        let durable = d.durable;
        let owner = d.exclusive.then_some(self.conn.id);
        let spec = QueueSpec {
            name: name.clone(),
            durable,
            exclusive_owner: owner,
            auto_delete: d.auto_delete,
            arguments: d.arguments.clone(),
            args,
        };
        // Durable queues get a message log; exclusive ones die with their connection, so
        // RabbitMQ never brings them back.
        let persist = durable && owner.is_none();
        if persist && self.vhost.store.is_some() && self.vhost.queue(&name).is_none() {
            // Its directory, first segment and definitions record are disk work: done
            // off the runtime's threads while this connection waits.
            let vhost = self.vhost.clone();
            return self.after_disk(
                ch,
                move || vhost.declare_queue(spec, true),
                move |s, declared| {
                    let (queue, created) = declared?;
                    s.queue_declared(ch, &d, name, requested_type, queue, created)
                },
            );
        }
        let (queue, created) = self.vhost.declare_queue(spec, persist)?;
        self.queue_declared(ch, &d, name, requested_type, queue, created)
    }

    /// queue.declare once the queue exists: it must be the one declared; declare-ok.
    fn queue_declared(
        &mut self,
        ch: u16,
        d: &queue::Declare,
        name: String,
        requested_type: Option<String>,
        queue: Arc<Queue>,
        created: bool,
    ) -> AmqpResult {
        let vhost = self.vhost.name.clone();
        let durable = d.durable;
        if created && d.exclusive {
            self.exclusive_queues.push(queue.clone());
        }
        self.check_exclusive(&queue)?;
        if queue.exclusive_owner.is_some() != d.exclusive {
            return Err(AmqpError::locked(&name, &vhost));
        }
        if queue.durable != durable {
            return Err(inequivalent(
                "durable",
                "queue",
                &name,
                &vhost,
                durable,
                queue.durable,
            ));
        }
        if queue.auto_delete != d.auto_delete {
            return Err(inequivalent(
                "auto_delete",
                "queue",
                &name,
                &vhost,
                d.auto_delete,
                queue.auto_delete,
            ));
        }
        let (received, current) = (
            requested_type.unwrap_or_else(|| "classic".into()),
            queue_type(&queue.arguments.table())?.unwrap_or_else(|| "classic".into()),
        );
        // A missing x-queue-type means the default type, as in RabbitMQ 3.10; only a real
        // difference is an inequivalent redeclare.
        if received != current
            && !(current == "quorum" && d.arguments.inner().get("x-queue-type").is_none())
        {
            return Err(AmqpError::precondition(format_args!(
                "inequivalent arg 'x-queue-type' for queue '{name}' in vhost '{vhost}': \
                 received the value '{received}' of type 'longstr' but current is the value '{current}' of type 'longstr'"
            )));
        }
        assert_equivalent(&d.arguments, &queue.arguments.table(), &name, &vhost)?;
        queue.touch();
        let (ready, _, consumers) = queue.counts();
        self.declare_ok(ch, d.nowait, name, ready, consumers)
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

/// queue.delete's if-unused and if-empty conditions.
fn check_deletable(q: &Arc<Queue>, d: &queue::Delete, vhost: &str) -> AmqpResult {
    let (ready, _unacked, consumers) = q.counts();
    if d.if_unused && consumers > 0 {
        return Err(AmqpError::precondition(format_args!(
            "queue '{}' in vhost '{vhost}' in use",
            q.name
        )));
    }
    if d.if_empty && ready > 0 {
        return Err(AmqpError::precondition(format_args!(
            "queue '{}' in vhost '{vhost}' not empty",
            q.name
        )));
    }
    Ok(())
}
