//! queue.bind, exchange.bind and their unbinds over the vhost (AMQP and HTTP).

// The requests, plans, `Permit` and shared checks of the service (mod.rs).
use super::*;

impl VHost {
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
