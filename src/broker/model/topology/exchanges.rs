//! exchange.declare and exchange.delete over the vhost (AMQP and HTTP).

// The requests, plans, `Permit` and shared checks of the service (mod.rs).
use super::*;

impl VHost {
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
}
