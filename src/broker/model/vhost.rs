//! A virtual host: its exchanges, queues and bindings, each behind its own lock so that
//! publishing to one queue never waits for another; creating and removing them with
//! their durable records. Routing is `route`, the checked operations `topology`.

use crate::broker::error::{AmqpError, AmqpResult, code};
use crate::broker::model::exchange::{Binding, Dest, Exchange, ExchangeKind};
use crate::broker::model::policy::{Policies, PolicySet, Target};
use crate::broker::model::queue::expiry::Expiry;
use crate::broker::model::queue::{Consumer, Queue, QueueSpec};
use crate::broker::ops::counters::VhostCounters;
use crate::broker::ops::vhost_limits::VhostLimits;
use crate::broker::store::Store;
use crate::broker::store::definitions::{Def, encode_args};
use crate::broker::store::queue_log::QueueLog;
use amq_protocol::types::FieldTable;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

/// One vhost's registry.
#[derive(Debug)]
pub(crate) struct VHost {
    pub(crate) name: String,
    pub(crate) exchanges: RwLock<HashMap<String, Arc<Exchange>>>,
    pub(crate) queues: RwLock<HashMap<String, Arc<Queue>>>,
    /// Serialises creating and removing queues and exchanges with their definitions
    /// records (so records follow the order of the changes they describe). Their disk
    /// work (a queue's log directory, the record, their fsyncs) runs without the
    /// `queues` and `exchanges` locks: publishes and lookups, which take those, never
    /// wait behind it.
    declaring: Mutex<()>,
    /// Persistence (`--data-dir`); None keeps everything in memory.
    pub(crate) store: Option<Arc<Store>>,
    /// Publish counts and deleted queues' totals, for `message_stats` (management API).
    pub(crate) counters: VhostCounters,
    /// `x-expires` deadlines of its queues, on one timer.
    pub(crate) expiry: Arc<Expiry>,
    /// `max-connections` and `max-queues`.
    pub(crate) limits: VhostLimits,
    /// Policies and operator policies (`policy.rs`). Lock order: before `queues` and
    /// `exchanges`, which a policy change walks while holding it.
    pub(crate) policies: Policies,
}

/// The exchanges every RabbitMQ vhost starts with.
const STANDARD_EXCHANGES: &[(&str, ExchangeKind, bool)] = &[
    ("", ExchangeKind::Direct, false),
    ("amq.direct", ExchangeKind::Direct, false),
    ("amq.fanout", ExchangeKind::Fanout, false),
    ("amq.topic", ExchangeKind::Topic, false),
    ("amq.headers", ExchangeKind::Headers, false),
    ("amq.match", ExchangeKind::Headers, false),
    ("amq.rabbitmq.trace", ExchangeKind::Topic, true),
];

impl VHost {
    pub(crate) fn new(name: &str, store: Option<Arc<Store>>) -> VHost {
        let exchanges = STANDARD_EXCHANGES
            .iter()
            .map(|(n, kind, internal)| {
                (
                    n.to_string(),
                    Arc::new(Exchange::new(
                        n,
                        *kind,
                        true,
                        false,
                        *internal,
                        FieldTable::default(),
                    )),
                )
            })
            .collect();
        VHost {
            name: name.to_string(),
            exchanges: RwLock::new(exchanges),
            queues: RwLock::new(HashMap::new()),
            declaring: Mutex::new(()),
            store,
            counters: VhostCounters::default(),
            expiry: Arc::default(),
            limits: VhostLimits::default(),
            policies: Policies::default(),
        }
    }

    /// Change the vhost's policies with `change`, then put what now applies in force on
    /// every queue and exchange (RabbitMQ's update_matched_objects). The policies stay
    /// locked throughout, so a queue or exchange created meanwhile waits and is created
    /// under the new ones.
    pub(crate) fn change_policies<T>(&self, change: impl FnOnce(&mut PolicySet) -> T) -> T {
        let mut set = self.policies.write();
        let out = change(&mut set);
        let exchanges: Vec<Arc<Exchange>> = self
            .exchanges
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for x in exchanges {
            x.apply_policy(set.applied(Target::Exchange { name: &x.name }));
        }
        for q in self.queue_list() {
            q.apply_policy(set.applied(Target::Queue {
                name: &q.name,
                quorum: q.args.quorum,
            }));
        }
        out
    }

    /// RabbitMQ's refusal when `max-queues` is reached (`count` queues exist now).
    pub(crate) fn queue_limit(&self, name: &str, count: usize) -> AmqpResult<()> {
        match self.limits.max_queues() {
            Some(max) if count as u64 >= max => Err(AmqpError::precondition(format_args!(
                "cannot declare queue '{name}': queue limit in vhost '{}' ({max}) is reached",
                self.name
            ))),
            _ => Ok(()),
        }
    }

    /// Make a change of the durable topology durable (no-op in memory); 541 when it
    /// cannot be (a declare is then refused rather than lost at the next restart).
    pub(crate) fn record(&self, def: impl FnOnce(String) -> Def) -> AmqpResult {
        match &self.store {
            Some(store) => store.record(&def(self.name.clone())).map_err(|e| {
                AmqpError::new(
                    code::INTERNAL_ERROR,
                    format_args!("cannot make the change durable: {e}"),
                )
            }),
            None => Ok(()),
        }
    }

    /// The queue named in `spec`: the existing one (`false`), or one created from `spec`
    /// (`true`), with a message log when `persist` and the broker has a data directory.
    /// The one place queues are created (AMQP and the management API alike).
    pub(super) fn declare_queue(
        self: &Arc<Self>,
        spec: QueueSpec,
        persist: bool,
    ) -> AmqpResult<(Arc<Queue>, bool)> {
        if let Some(q) = self.queue(&spec.name) {
            return Ok((q, false));
        }
        match &self.store {
            Some(store) if persist => crate::broker::store::background::blocking(|| {
                self.declare_durable_queue(store, spec)
            }),
            _ => {
                self.queue_limit(&spec.name, self.queue_count())?;
                Ok(self.insert_queue(spec, None))
            }
        }
    }

    fn queue_count(&self) -> usize {
        self.queues.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// A durable queue's creation waits for the disk (its log directory, its definitions
    /// record): serialised with the other durable changes under `declaring`, which
    /// transient declares and lookups never take.
    fn declare_durable_queue(
        self: &Arc<Self>,
        store: &Store,
        spec: QueueSpec,
    ) -> AmqpResult<(Arc<Queue>, bool)> {
        let _declaring = self.declaring.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(q) = self.queue(&spec.name) {
            return Ok((q, false));
        }
        self.queue_limit(&spec.name, self.queue_count())?;
        let (id, log) = store.new_queue_log().map_err(|e| {
            AmqpError::new(
                code::INTERNAL_ERROR,
                format_args!("cannot create the log of queue '{}': {e}", spec.name),
            )
        })?;
        let recorded = self.record(|vhost| Def::Queue {
            vhost,
            name: spec.name.clone(),
            id,
            auto_delete: spec.auto_delete,
            args: encode_args(&spec.arguments),
        });
        if let Err(e) = recorded {
            log.destroy();
            return Err(e);
        }
        let (q, created) = self.insert_queue(spec, Some((id, log)));
        if !created {
            // A transient queue of the name came first: this one's record goes.
            let _ = self.record(|vhost| Def::DeleteQueue {
                vhost,
                name: q.name.clone(),
            });
        }
        Ok((q, created))
    }

    /// Create and list a queue from `spec` unless one of its name exists: the queue in
    /// place, and whether it is new (a log it was not given is destroyed). Policies are
    /// read until it is listed, so a policy change cannot pass it by.
    fn insert_queue(
        self: &Arc<Self>,
        spec: QueueSpec,
        log: Option<(u64, QueueLog)>,
    ) -> (Arc<Queue>, bool) {
        let policies = self.policies.read();
        let mut queues = self.queues.write().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = queues.get(&spec.name).cloned() {
            drop(queues);
            drop(policies);
            if let Some((_, log)) = log {
                log.destroy();
            }
            return (existing, false);
        }
        let applied = policies.applied(Target::Queue {
            name: &spec.name,
            quorum: spec.args.quorum,
        });
        let q = Queue::create(spec, self, log, applied);
        queues.insert(q.name.clone(), q.clone());
        (q, true)
    }

    /// The exchange named like `x`: the existing one (`false`), or `x` added (`true`),
    /// recorded first when durable. The one place exchanges are created (AMQP and the
    /// management API alike); the record's fsync holds no lock that publishers take.
    pub(super) fn declare_exchange(&self, x: Arc<Exchange>) -> AmqpResult<(Arc<Exchange>, bool)> {
        if let Some(existing) = self.exchange(&x.name) {
            return Ok((existing, false));
        }
        if !x.durable || self.store.is_none() {
            return Ok(self.insert_exchange(x));
        }
        let _declaring = self.declaring.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = self.exchange(&x.name) {
            return Ok((existing, false));
        }
        self.record(|vhost| Def::Exchange {
            vhost,
            name: x.name.clone(),
            kind: x.kind.as_str().to_string(),
            auto_delete: x.auto_delete,
            internal: x.internal,
            args: encode_args(&x.arguments),
        })?;
        let (in_place, created) = self.insert_exchange(x);
        if !created {
            // A transient exchange of the name came first: the record goes.
            let _ = self.record(|vhost| Def::DeleteExchange {
                vhost,
                name: in_place.name.clone(),
            });
        }
        Ok((in_place, created))
    }

    /// Insert `x` unless an exchange of its name exists: the one in place, and whether
    /// it is `x`. Policies are read until it is listed, so a policy change cannot pass it by.
    fn insert_exchange(&self, x: Arc<Exchange>) -> (Arc<Exchange>, bool) {
        let policies = self.policies.read();
        let mut exchanges = self.exchanges.write().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = exchanges.get(&x.name) {
            return (existing.clone(), false);
        }
        x.apply_policy(policies.applied(Target::Exchange { name: &x.name }));
        exchanges.insert(x.name.clone(), x.clone());
        (x, true)
    }

    /// Whether a binding from `source` to `dest` survives a restart.
    pub(crate) fn binding_is_durable(&self, source: &Exchange, dest: &Dest) -> bool {
        self.store.is_some()
            && source.durable
            && match dest {
                Dest::Queue(q) => q.log_id.is_some(),
                Dest::Exchange(x) => self.exchange(x).is_some_and(|x| x.durable),
            }
    }

    fn binding_def(
        &self,
        unbind: bool,
        source: &Exchange,
        dest: &Dest,
        key: &str,
        args: &FieldTable,
    ) -> Def {
        let (destination, to_queue) = match dest {
            Dest::Queue(q) => (q.name.clone(), true),
            Dest::Exchange(x) => (x.clone(), false),
        };
        let (vhost, source, key, args) = (
            self.name.clone(),
            source.name.clone(),
            key.to_string(),
            encode_args(args),
        );
        if unbind {
            Def::Unbind {
                vhost,
                source,
                destination,
                to_queue,
                key,
                args,
            }
        } else {
            Def::Bind {
                vhost,
                source,
                destination,
                to_queue,
                key,
                args,
            }
        }
    }

    /// Add a binding, recording it when both ends are durable.
    pub(crate) fn bind(&self, source: &Exchange, binding: Binding) {
        if self.binding_is_durable(source, &binding.dest)
            && let Some(store) = &self.store
        {
            let _ = store.record(&self.binding_def(
                false,
                source,
                &binding.dest,
                &binding.routing_key,
                &binding.arguments,
            ));
        }
        source.bind(binding);
    }

    /// Remove a binding (recorded when durable); returns whether it existed.
    pub(crate) fn unbind(
        &self,
        source: &Exchange,
        dest: &Dest,
        key: &str,
        args: &FieldTable,
    ) -> bool {
        let existed = source.unbind(dest, key, args);
        if existed
            && self.binding_is_durable(source, dest)
            && let Some(store) = &self.store
        {
            let _ = store.record(&self.binding_def(true, source, dest, key, args));
        }
        existed
    }

    pub(crate) fn exchange(&self, name: &str) -> Option<Arc<Exchange>> {
        self.exchanges
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    pub(crate) fn queue(&self, name: &str) -> Option<Arc<Queue>> {
        self.queues
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    pub(crate) fn exchange_or_404(&self, name: &str) -> AmqpResult<Arc<Exchange>> {
        self.exchange(name)
            .ok_or_else(|| AmqpError::not_found("exchange", name, &self.name))
    }

    /// Every queue, taken out of the registry's lock (unordered).
    pub(crate) fn queue_list(&self) -> Vec<Arc<Queue>> {
        self.queues
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub(crate) fn queue_or_404(&self, name: &str) -> AmqpResult<Arc<Queue>> {
        self.queue(name)
            .ok_or_else(|| AmqpError::not_found("queue", name, &self.name))
    }

    /// Remove a queue: from the registry, from every exchange, and cancel its consumers.
    /// Auto-delete exchanges left without bindings go too. Returns the ready count.
    pub(crate) fn delete_queue(&self, queue: &Arc<Queue>) -> u32 {
        let (count, consumers) = self.remove_queue(queue);
        notify_cancelled(consumers);
        count
    }

    /// `delete_queue` without telling the consumers yet: queue.delete answers delete-ok
    /// first and then sends basic.cancel, in RabbitMQ's order (clients such as amqplib
    /// resolve the delete before they see the cancel).
    pub(crate) fn remove_queue(&self, queue: &Arc<Queue>) -> (u32, Vec<Consumer>) {
        {
            // A durable one's removal and record under `declaring`: a queue of the same
            // name declared meanwhile is recorded after this deletion, not before it.
            let _declaring = queue
                .log_id
                .is_some()
                .then(|| self.declaring.lock().unwrap_or_else(|e| e.into_inner()));
            let removed = {
                let mut queues = self.queues.write().unwrap_or_else(|e| e.into_inner());
                let ours = queues
                    .get(&queue.name)
                    .is_some_and(|q| Arc::ptr_eq(q, queue));
                if ours {
                    queues.remove(&queue.name);
                }
                ours
            };
            // Only the call that removed it records the deletion: a later queue of the
            // same name must not lose its definition to a second, late delete.
            if removed && queue.log_id.is_some() {
                let _ = self.record(|vhost| Def::DeleteQueue {
                    vhost,
                    name: queue.name.clone(),
                });
            }
        }
        let emptied: Vec<String> = {
            let exchanges = self.exchanges.read().unwrap_or_else(|e| e.into_inner());
            exchanges
                .values()
                .filter(|x| {
                    x.unbind_all(&Dest::Queue(queue.clone())) > 0
                        && x.auto_delete
                        && x.binding_count() == 0
                })
                .map(|x| x.name.clone())
                .collect()
        };
        for name in emptied {
            self.delete_exchange(&name);
        }
        queue.mark_deleted()
    }

    /// Remove an exchange and every binding that leads to it; auto-delete exchanges
    /// that lose their last binding that way go too.
    pub(crate) fn delete_exchange(&self, name: &str) -> Option<Arc<Exchange>> {
        let removed = {
            // As for queues: a redeclare is recorded after this deletion.
            let durable = self.store.is_some() && self.exchange(name).is_some_and(|x| x.durable);
            let _declaring =
                durable.then(|| self.declaring.lock().unwrap_or_else(|e| e.into_inner()));
            let removed = self
                .exchanges
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(name)?;
            if removed.durable {
                let _ = self.record(|vhost| Def::DeleteExchange {
                    vhost,
                    name: name.to_string(),
                });
            }
            removed
        };
        let dest = Dest::Exchange(name.to_string());
        let emptied: Vec<String> = {
            let exchanges = self.exchanges.read().unwrap_or_else(|e| e.into_inner());
            exchanges
                .values()
                .filter(|x| x.unbind_all(&dest) > 0 && x.auto_delete && x.binding_count() == 0)
                .map(|x| x.name.clone())
                .collect()
        };
        for n in emptied {
            self.delete_exchange(&n);
        }
        Some(removed)
    }
}

/// Tell each consumer of a deleted queue (basic.cancel, for clients that asked).
pub(crate) fn notify_cancelled(consumers: Vec<Consumer>) {
    for c in consumers {
        c.channel.cancel_by_server(&c.tag);
    }
}
