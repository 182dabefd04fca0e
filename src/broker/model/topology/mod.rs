//! The topology service: declare, delete, bind, unbind and purge as one vhost operation
//! each — permission check, equivalence, limits, the durable record and the creation.
//! AMQP handlers and the management API are thin adapters over these; a second copy of
//! any of it drifts, and a drifted permission check is a security hole (a configure-only
//! user dead-lettering into an exchange they may not write to).
//!
//! An operation whose durable record or log is disk work comes in two steps, `plan_*`
//! (checks, nothing changed) and `apply_*`, so AMQP can run the second off the runtime's
//! threads (`amqp::session_disk`); `*_touches_disk` says when it must.
//!
//! - here        the permission vocabulary (`Permit`), shared checks, requests and plans
//! - `queues`    queue.declare, queue.delete, queue.purge
//! - `exchanges` exchange.declare, exchange.delete
//! - `bindings`  queue.bind, exchange.bind and their unbinds

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

mod bindings;
mod exchanges;
mod queues;
