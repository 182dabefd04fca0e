//! queue.declare, queue.delete and queue.purge over the vhost (AMQP and HTTP).

// The requests, plans, `Permit` and shared checks of the service (mod.rs).
use super::*;

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
}
