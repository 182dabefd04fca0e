//! The topology service: declare, delete, bind, unbind and purge as one vhost operation
//! each — permission check, equivalence, limits, the durable record and the creation.
//! AMQP handlers and the management API are thin adapters over these; a second copy of
//! any of it drifts, and a drifted permission check is a security hole (a configure-only
//! user dead-lettering into an exchange they may not write to).
//!
//! An operation whose durable record or log is disk work comes in two steps, `plan_*`
//! (checks, nothing changed) and `apply_*`, so AMQP can run the second off the runtime's
//! threads (`amqp::session_disk`); `*_touches_disk` says when it must.

use super::args::{
    DeclaredAs, QueueArgs, as_string, assert_args_equivalent, assert_equivalent, check_queue_type,
    type_name,
};
use super::exchange::{Binding, Dest, Exchange, ExchangeKind};
use super::queue::{Consumer, Queue, QueueSpec};
use super::vhost::VHost;
use crate::broker::error::{AmqpError, AmqpResult, code, found};
use amq_protocol::types::FieldTable;
use std::sync::Arc;

/// The three kinds of access RabbitMQ checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Configure,
    Write,
    Read,
}

/// Resource kinds as RabbitMQ names them in its refusals.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Resource {
    Queue,
    Exchange,
}

/// Who asks, as the topology service sees it: the one permission check every
/// operation makes. Owned here so `model` needs nothing from `access`; a connection's
/// `Grant` implements it (for the API, the caller's grant in the request's vhost).
pub(crate) trait Permit {
    /// 403 ACCESS_REFUSED unless `access` to the named resource is allowed.
    fn check(&mut self, access: Access, kind: Resource, name: &str) -> AmqpResult;
    /// 403 ACCESS_REFUSED unless the topic permissions on the topic exchange `exchange`
    /// allow `key` (write: publish; read: bind and unbind).
    fn check_topic(&mut self, access: Access, exchange: &str, key: &str) -> AmqpResult;
}

/// A definitions import: an administrator's route that, as in RabbitMQ, creates what the
/// file lists without per-resource checks.
#[derive(Debug)]
pub(crate) struct Trusted;

impl Permit for Trusted {
    fn check(&mut self, _: Access, _: Resource, _: &str) -> AmqpResult {
        Ok(())
    }

    fn check_topic(&mut self, _: Access, _: &str, _: &str) -> AmqpResult {
        Ok(())
    }
}

/// Topic permissions on `x` for `key`, when it is a topic exchange (RabbitMQ checks
/// them after the resource's).
pub(crate) fn permit_topic(
    permit: &mut dyn Permit,
    access: Access,
    x: &Exchange,
    key: &str,
) -> AmqpResult {
    if x.kind != ExchangeKind::Topic {
        return Ok(());
    }
    permit.check_topic(access, &x.name, key)
}

/// RabbitMQ's 406 for a redeclare that differs from what exists.
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

/// `x-queue-type` as declared: `classic`, `quorum`, or absent; others are refused.
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

/// 405 RESOURCE_LOCKED unless the queue is not exclusive or `requester` owns it (the
/// API, `None`, owns nothing: it cannot redeclare an exclusive queue).
pub(crate) fn usable_by(q: &Queue, requester: Option<u64>) -> AmqpResult {
    match q.exclusive_owner {
        Some(owner) if Some(owner) != requester => Err(AmqpError::locked(&q.name, &q.vhost)),
        _ => Ok(()),
    }
}

/// Another connection's exclusive queue is locked to a connection; the management API
/// (`None`) deletes, purges and binds it, as RabbitMQ's does.
fn usable_for_change(q: &Queue, requester: Option<u64>) -> AmqpResult {
    match requester {
        Some(_) => usable_by(q, requester),
        None => Ok(()),
    }
}

/// The default exchange cannot be bound, unbound or changed.
fn not_default(name: &str) -> AmqpResult {
    if name.is_empty() {
        return Err(AmqpError::access_refused(
            "operation not permitted on the default exchange",
        ));
    }
    Ok(())
}

/// A queue.declare (or `PUT /api/queues/..`), its name already resolved.
#[derive(Debug)]
pub(crate) struct QueueDeclare {
    pub(crate) name: String,
    /// The client sent an empty name and `name` was generated.
    pub(crate) server_named: bool,
    pub(crate) durable: bool,
    pub(crate) exclusive: bool,
    pub(crate) auto_delete: bool,
    pub(crate) arguments: FieldTable,
    /// The declaring connection: owner of an exclusive queue, and allowed to redeclare
    /// its own. `None` for the API.
    pub(crate) requester: Option<u64>,
}

/// A checked queue declare, nothing changed yet.
#[derive(Debug)]
pub(crate) struct QueuePlan {
    spec: QueueSpec,
    requested_type: Option<String>,
    exclusive: bool,
    requester: Option<u64>,
    persist: bool,
}

/// What a declare found: the object, and whether this declare created it.
#[derive(Debug)]
pub(crate) struct Declared<T> {
    pub(crate) object: Arc<T>,
    pub(crate) created: bool,
}

/// A binding to add or remove, by names.
#[derive(Debug)]
pub(crate) struct BindingSpec {
    pub(crate) source: String,
    /// Queue or exchange named `destination`.
    pub(crate) to_queue: bool,
    pub(crate) destination: String,
    pub(crate) key: String,
    pub(crate) arguments: FieldTable,
    /// A queue destination must be usable by the requester (exclusive queues).
    pub(crate) requester: Option<u64>,
}

/// A checked binding, both ends found.
#[derive(Debug)]
pub(crate) struct BindPlan {
    source: Arc<Exchange>,
    binding: Binding,
}

/// An exchange.declare (or `PUT /api/exchanges/..`).
#[derive(Debug)]
pub(crate) struct ExchangeDeclare {
    pub(crate) name: String,
    /// The type as named (`direct`, `topic`, ..): an unknown one is refused.
    pub(crate) kind: String,
    pub(crate) durable: bool,
    pub(crate) auto_delete: bool,
    pub(crate) internal: bool,
    pub(crate) arguments: FieldTable,
}

/// A checked exchange declare.
#[derive(Debug)]
pub(crate) struct ExchangePlan {
    exchange: Arc<Exchange>,
}

impl VHost {
    /// queue.declare's checks, in RabbitMQ's order: reserved names, configure on the
    /// queue, read on it and write on its dead-letter exchange when it has one, the
    /// arguments and the queue type. Nothing is created.
    pub(crate) fn plan_queue(
        &self,
        permit: &mut dyn Permit,
        req: QueueDeclare,
    ) -> AmqpResult<QueuePlan> {
        let name = req.name;
        if !req.server_named && name.starts_with("amq.") {
            return Err(AmqpError::access_refused(format_args!(
                "queue name '{name}' contains reserved prefix 'amq.*'"
            )));
        }
        permit.check(Access::Configure, Resource::Queue, &name)?;
        // Dead-lettering reads from this queue and writes to the DLX (RabbitMQ checks both).
        if let Some(dlx) = req
            .arguments
            .inner()
            .get("x-dead-letter-exchange")
            .and_then(as_string)
        {
            permit.check(Access::Read, Resource::Queue, &name)?;
            permit.check(Access::Write, Resource::Exchange, &dlx)?;
        }
        let args = QueueArgs::parse(&req.arguments, &name, &self.name)?;
        // Checked before anything is created: an unsupported type must leave no queue,
        // and a quorum queue must be declared as one can be.
        let requested_type = queue_type(&req.arguments)?;
        let declared = DeclaredAs {
            durable: req.durable,
            exclusive: req.exclusive,
            auto_delete: req.auto_delete,
            server_named: req.server_named,
        };
        check_queue_type(&req.arguments, &args, declared, &name, &self.name)?;
        let owner = if req.exclusive { req.requester } else { None };
        // Durable queues get a message log; exclusive ones die with their connection, so
        // RabbitMQ never brings them back.
        let persist = req.durable && owner.is_none();
        Ok(QueuePlan {
            spec: QueueSpec {
                name,
                durable: req.durable,
                exclusive_owner: owner,
                auto_delete: req.auto_delete,
                arguments: req.arguments,
                args,
            },
            requested_type,
            exclusive: req.exclusive,
            requester: req.requester,
            persist,
        })
    }

    /// Applying `plan` creates a queue's directory, first segment and definitions record.
    pub(crate) fn queue_touches_disk(&self, plan: &QueuePlan) -> bool {
        plan.persist && self.store.is_some() && self.queue(&plan.spec.name).is_none()
    }

    /// The planned queue: created (within the vhost's `max-queues`, recorded when
    /// durable), or the existing one when equivalent to the declare.
    pub(crate) fn apply_queue(self: &Arc<Self>, plan: QueuePlan) -> AmqpResult<Declared<Queue>> {
        let QueuePlan {
            spec,
            requested_type,
            exclusive,
            requester,
            persist,
        } = plan;
        let (name, durable, auto_delete) = (spec.name.clone(), spec.durable, spec.auto_delete);
        let arguments = spec.arguments.clone();
        let (queue, created) = self.declare_queue(spec, persist)?;
        let vhost = &self.name;
        usable_by(&queue, requester)?;
        if queue.exclusive_owner.is_some() != exclusive {
            return Err(AmqpError::locked(&name, vhost));
        }
        if queue.durable != durable {
            return Err(inequivalent(
                "durable",
                "queue",
                &name,
                vhost,
                durable,
                queue.durable,
            ));
        }
        if queue.auto_delete != auto_delete {
            return Err(inequivalent(
                "auto_delete",
                "queue",
                &name,
                vhost,
                auto_delete,
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
            && !(current == "quorum" && arguments.inner().get("x-queue-type").is_none())
        {
            return Err(AmqpError::precondition(format_args!(
                "inequivalent arg 'x-queue-type' for queue '{name}' in vhost '{vhost}': \
                 received the value '{received}' of type 'longstr' but current is the value '{current}' of type 'longstr'"
            )));
        }
        assert_equivalent(&arguments, &queue.arguments.table(), &name, vhost)?;
        // A declare counts as use for x-expires, as in RabbitMQ.
        queue.touch();
        Ok(Declared {
            object: queue,
            created,
        })
    }

    /// queue.delete's checks: configure on the name, then — when the queue exists — its
    /// owner and the `if-unused` / `if-empty` conditions. `None`: no such queue (which
    /// AMQP answers with delete-ok, as RabbitMQ 3.10 does).
    pub(crate) fn plan_queue_delete(
        &self,
        permit: &mut dyn Permit,
        name: &str,
        requester: Option<u64>,
        if_unused: bool,
        if_empty: bool,
    ) -> AmqpResult<Option<Arc<Queue>>> {
        permit.check(Access::Configure, Resource::Queue, name)?;
        let Some(q) = self.queue(name) else {
            return Ok(None);
        };
        usable_for_change(&q, requester)?;
        let (ready, _unacked, consumers) = q.counts();
        if if_unused && consumers > 0 {
            return Err(AmqpError::precondition(format_args!(
                "queue '{name}' in vhost '{}' in use",
                self.name
            )));
        }
        if if_empty && ready > 0 {
            return Err(AmqpError::precondition(format_args!(
                "queue '{name}' in vhost '{}' not empty",
                self.name
            )));
        }
        Ok(Some(q))
    }

    /// Deleting `q` removes its files and definitions record (a durable queue's).
    pub(crate) fn queue_delete_touches_disk(q: &Queue) -> bool {
        q.log_id.is_some()
    }

    /// Delete a queue `plan_queue_delete` returned; its consumers to be told (after
    /// delete-ok, in RabbitMQ's order) and its ready count.
    pub(crate) fn apply_queue_delete(&self, q: &Arc<Queue>) -> (u32, Vec<Consumer>) {
        self.remove_queue(q)
    }

    /// queue.purge: read on the queue, which must exist and be usable; the count purged.
    pub(crate) fn purge(
        &self,
        permit: &mut dyn Permit,
        name: &str,
        requester: Option<u64>,
    ) -> AmqpResult<u32> {
        permit.check(Access::Read, Resource::Queue, name)?;
        let q = self.queue_or_404(name)?;
        usable_for_change(&q, requester)?;
        Ok(q.purge())
    }

    /// exchange.declare's checks: configure on it, read on it and write on its
    /// alternate exchange when it has one, the type and arguments, reserved names.
    pub(crate) fn plan_exchange(
        &self,
        permit: &mut dyn Permit,
        req: ExchangeDeclare,
    ) -> AmqpResult<ExchangePlan> {
        let ExchangeDeclare {
            name,
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
        } = req;
        let name = name.as_str();
        let kind = kind.as_str();
        not_default(name)?;
        permit.check(Access::Configure, Resource::Exchange, name)?;
        // Unroutable messages go from this exchange to the alternate one.
        if let Some(ae) = arguments
            .inner()
            .get("alternate-exchange")
            .and_then(as_string)
        {
            permit.check(Access::Read, Resource::Exchange, name)?;
            permit.check(Access::Write, Resource::Exchange, &ae)?;
        }
        let Some(parsed) = ExchangeKind::parse(kind) else {
            return Err(AmqpError::new(
                code::COMMAND_INVALID,
                format_args!("unknown exchange type '{kind}'"),
            ));
        };
        if let Some(v) = arguments.inner().get("alternate-exchange")
            && as_string(v).is_none()
        {
            return Err(AmqpError::precondition(format_args!(
                "invalid type '{}' for arg 'alternate-exchange' in exchange '{name}' in vhost '{}'",
                type_name(v),
                self.name
            )));
        }
        if name.starts_with("amq.") && self.exchange(name).is_none() {
            return Err(AmqpError::access_refused(format_args!(
                "exchange name '{name}' contains reserved prefix 'amq.*'"
            )));
        }
        let exchange = Arc::new(Exchange::new(
            name,
            parsed,
            durable,
            auto_delete,
            internal,
            arguments,
        ));
        Ok(ExchangePlan { exchange })
    }

    /// Applying `plan` writes a definitions record.
    pub(crate) fn exchange_touches_disk(&self, plan: &ExchangePlan) -> bool {
        plan.exchange.durable
            && self.store.is_some()
            && self.exchange(&plan.exchange.name).is_none()
    }

    /// The planned exchange: created (recorded first when durable), or the existing
    /// one when equivalent to the declare.
    pub(crate) fn apply_exchange(&self, plan: ExchangePlan) -> AmqpResult<Declared<Exchange>> {
        let want = plan.exchange.clone();
        let (x, created) = self.declare_exchange(plan.exchange)?;
        let (name, vhost) = (&want.name, &self.name);
        if x.kind != want.kind {
            return Err(inequivalent(
                "type",
                "exchange",
                name,
                vhost,
                want.kind.as_str(),
                x.kind.as_str(),
            ));
        }
        for (arg, received, current) in [
            ("durable", want.durable, x.durable),
            ("auto_delete", want.auto_delete, x.auto_delete),
            ("internal", want.internal, x.internal),
        ] {
            if received != current {
                return Err(inequivalent(
                    arg, "exchange", name, vhost, received, current,
                ));
            }
        }
        assert_args_equivalent(
            &want.arguments,
            &x.arguments,
            &["alternate-exchange"],
            "exchange",
            name,
            vhost,
        )?;
        Ok(Declared { object: x, created })
    }

    /// exchange.delete: configure on it; system exchanges are refused; with `if_unused`
    /// one with bindings is kept. Whether it existed.
    pub(crate) fn delete_exchange_checked(
        &self,
        permit: &mut dyn Permit,
        name: &str,
        if_unused: bool,
    ) -> AmqpResult<bool> {
        not_default(name)?;
        if name.starts_with("amq.") {
            return Err(AmqpError::access_refused(format_args!(
                "deletion of system exchange '{name}' in vhost '{}' not allowed",
                self.name
            )));
        }
        permit.check(Access::Configure, Resource::Exchange, name)?;
        let Some(x) = self.exchange(name) else {
            return Ok(false);
        };
        if if_unused && x.binding_count() > 0 {
            return Err(AmqpError::precondition(format_args!(
                "exchange '{name}' in vhost '{}' in use",
                self.name
            )));
        }
        self.delete_exchange(name);
        Ok(true)
    }

    /// queue.bind / exchange.bind (and unbind) permissions, RabbitMQ's order
    /// (rabbit_channel:binding_action): write on the destination, read on the source,
    /// checked before either is looked up, then the topic permission on the key when
    /// the source exists. The default exchange's own refusal comes first.
    fn permit_binding(&self, permit: &mut dyn Permit, b: &BindingSpec) -> AmqpResult {
        if b.to_queue {
            permit.check(Access::Write, Resource::Queue, &b.destination)?;
        } else if b.destination.is_empty() || b.source.is_empty() {
            return Ok(());
        } else {
            permit.check(Access::Write, Resource::Exchange, &b.destination)?;
        }
        if b.source.is_empty() {
            return Ok(());
        }
        permit.check(Access::Read, Resource::Exchange, &b.source)?;
        match self.exchange(&b.source) {
            Some(x) => permit_topic(permit, Access::Read, &x, &b.key),
            None => Ok(()),
        }
    }

    /// An exchange a binding may name: not the default one, and existing.
    fn bindable_exchange(&self, name: &str) -> AmqpResult<Arc<Exchange>> {
        not_default(name)?;
        self.exchange_or_404(name)
    }

    /// A binding's destination: an existing queue the requester may use, or an
    /// existing exchange.
    fn binding_dest(&self, b: &BindingSpec) -> AmqpResult<Dest> {
        if b.to_queue {
            let q = self.queue_or_404(&b.destination)?;
            usable_for_change(&q, b.requester)?;
            Ok(Dest::Queue(q))
        } else {
            self.bindable_exchange(&b.destination)?;
            Ok(Dest::Exchange(b.destination.clone()))
        }
    }

    /// A bind's checks: permissions, then both ends exist.
    pub(crate) fn plan_bind(
        &self,
        permit: &mut dyn Permit,
        b: BindingSpec,
    ) -> AmqpResult<BindPlan> {
        self.permit_binding(permit, &b)?;
        // Looked up in the order RabbitMQ reports: a queue destination first, an
        // exchange's source first.
        let (source, dest) = if b.to_queue {
            let dest = self.binding_dest(&b)?;
            (self.bindable_exchange(&b.source)?, dest)
        } else {
            let source = self.bindable_exchange(&b.source)?;
            (source, self.binding_dest(&b)?)
        };
        Ok(BindPlan {
            source,
            binding: Binding {
                dest,
                routing_key: b.key,
                arguments: b.arguments,
            },
        })
    }

    /// Applying `plan` writes a definitions record (both ends durable).
    pub(crate) fn bind_touches_disk(&self, plan: &BindPlan) -> bool {
        self.binding_is_durable(&plan.source, &plan.binding.dest)
    }

    pub(crate) fn apply_bind(&self, plan: BindPlan) {
        self.bind(&plan.source, plan.binding);
    }

    /// Unbind: the bind's permissions; a missing binding, queue or exchange is no error
    /// (RabbitMQ 3.10: clients' clean-up paths unbind from what a peer may already have
    /// deleted). An auto-delete source left without bindings goes. Whether it existed.
    pub(crate) fn unbind_checked(
        &self,
        permit: &mut dyn Permit,
        b: BindingSpec,
    ) -> AmqpResult<bool> {
        self.permit_binding(permit, &b)?;
        let dest = found(self.binding_dest(&b))?;
        let source = found(self.bindable_exchange(&b.source))?;
        let (Some(source), Some(dest)) = (source, dest) else {
            return Ok(false);
        };
        let existed = self.unbind(&source, &dest, &b.key, &b.arguments);
        if existed && source.auto_delete && source.binding_count() == 0 {
            self.delete_exchange(&source.name);
        }
        Ok(existed)
    }
}
