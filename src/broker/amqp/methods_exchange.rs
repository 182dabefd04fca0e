//! exchange.* handlers: decode, apply, reply — with RabbitMQ's checks and texts.

use crate::broker::access::Access;
use crate::broker::access::grant::Resource;
use crate::broker::amqp::methods_queue::inequivalent;
use crate::broker::amqp::session::Session;
use crate::broker::error::{AmqpError, AmqpResult, code, found};
use crate::broker::model::args::{as_string, assert_args_equivalent, type_name};
use crate::broker::model::exchange::{Binding, Dest, Exchange, ExchangeKind};
use amq_protocol::protocol::{AMQPClass, exchange};
use std::sync::Arc;

impl Session {
    pub(crate) fn exchange_method(&mut self, ch: u16, m: exchange::AMQPMethod) -> AmqpResult {
        match m {
            exchange::AMQPMethod::Declare(d) => {
                let name = d.exchange.as_str();
                if name.is_empty() {
                    return Err(AmqpError::access_refused(
                        "operation not permitted on the default exchange",
                    ));
                }
                if !d.passive {
                    self.permit(Access::Configure, Resource::Exchange, name)?;
                    // Unroutable messages go from this exchange to the alternate one.
                    if let Some(ae) = d
                        .arguments
                        .inner()
                        .get("alternate-exchange")
                        .and_then(as_string)
                    {
                        self.permit(Access::Read, Resource::Exchange, name)?;
                        self.permit(Access::Write, Resource::Exchange, &ae)?;
                    }
                }
                let vhost = &self.vhost.name;
                if d.passive {
                    self.vhost.exchange_or_404(name)?;
                } else {
                    let Some(kind) = ExchangeKind::parse(d.kind.as_str()) else {
                        return Err(AmqpError::new(
                            code::COMMAND_INVALID,
                            format_args!("unknown exchange type '{}'", d.kind),
                        ));
                    };
                    if let Some(v) = d.arguments.inner().get("alternate-exchange")
                        && as_string(v).is_none()
                    {
                        return Err(AmqpError::precondition(format_args!(
                            "invalid type '{}' for arg 'alternate-exchange' in exchange '{name}' in vhost '{vhost}'",
                            type_name(v)
                        )));
                    }
                    let existing = self.vhost.exchange(name);
                    match existing {
                        Some(x) => {
                            if x.kind != kind {
                                return Err(inequivalent(
                                    "type",
                                    "exchange",
                                    name,
                                    vhost,
                                    d.kind.as_str(),
                                    x.kind.as_str(),
                                ));
                            }
                            if x.durable != d.durable {
                                return Err(inequivalent(
                                    "durable", "exchange", name, vhost, d.durable, x.durable,
                                ));
                            }
                            if x.auto_delete != d.auto_delete {
                                return Err(inequivalent(
                                    "auto_delete",
                                    "exchange",
                                    name,
                                    vhost,
                                    d.auto_delete,
                                    x.auto_delete,
                                ));
                            }
                            if x.internal != d.internal {
                                return Err(inequivalent(
                                    "internal", "exchange", name, vhost, d.internal, x.internal,
                                ));
                            }
                            assert_args_equivalent(
                                &d.arguments,
                                &x.arguments,
                                &["alternate-exchange"],
                                "exchange",
                                name,
                                vhost,
                            )?;
                        }
                        None => {
                            if name.starts_with("amq.") {
                                return Err(AmqpError::access_refused(format_args!(
                                    "exchange name '{name}' contains reserved prefix 'amq.*'"
                                )));
                            }
                            let x = Arc::new(Exchange::new(
                                name,
                                kind,
                                d.durable,
                                d.auto_delete,
                                d.internal,
                                d.arguments.clone(),
                            ));
                            if x.durable && self.vhost.store.is_some() {
                                // Its definitions record is disk work: done off the
                                // runtime's threads, then the declare is handled again
                                // and finds the exchange (equivalence, declare-ok).
                                let vhost = self.vhost.clone();
                                let again = d.clone();
                                return self.after_disk(
                                    ch,
                                    move || vhost.declare_exchange(x),
                                    move |s, declared| {
                                        declared?;
                                        s.exchange_method(ch, exchange::AMQPMethod::Declare(again))
                                    },
                                );
                            }
                            self.vhost.declare_exchange(x)?;
                        }
                    }
                }
                if !d.nowait {
                    self.reply(
                        ch,
                        AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(
                            exchange::DeclareOk {},
                        )),
                    );
                }
                Ok(())
            }
            exchange::AMQPMethod::Delete(d) => {
                let name = d.exchange.as_str();
                if name.is_empty() {
                    return Err(AmqpError::access_refused(
                        "operation not permitted on the default exchange",
                    ));
                }
                if name.starts_with("amq.") {
                    return Err(AmqpError::access_refused(format_args!(
                        "deletion of system exchange '{name}' in vhost '{}' not allowed",
                        self.vhost.name
                    )));
                }
                self.permit(Access::Configure, Resource::Exchange, name)?;
                if let Some(x) = self.vhost.exchange(name) {
                    if d.if_unused && x.binding_count() > 0 {
                        return Err(AmqpError::precondition(format_args!(
                            "exchange '{name}' in vhost '{}' in use",
                            self.vhost.name
                        )));
                    }
                    self.vhost.delete_exchange(name);
                }
                if !d.nowait {
                    self.reply(
                        ch,
                        AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {})),
                    );
                }
                Ok(())
            }
            exchange::AMQPMethod::Bind(b) => {
                self.permit_exchange_binding(
                    b.source.as_str(),
                    b.destination.as_str(),
                    b.routing_key.as_str(),
                )?;
                let source = self.bindable_exchange(b.source.as_str())?;
                self.bindable_exchange(b.destination.as_str())?;
                let binding = Binding {
                    dest: Dest::Exchange(b.destination.to_string()),
                    routing_key: b.routing_key.to_string(),
                    arguments: b.arguments,
                };
                let bind_ok = move |s: &mut Session, ()| {
                    if !b.nowait {
                        s.reply(
                            ch,
                            AMQPClass::Exchange(exchange::AMQPMethod::BindOk(exchange::BindOk {})),
                        );
                    }
                    Ok(())
                };
                if self.vhost.binding_is_durable(&source, &binding.dest) {
                    // Its definitions record is disk work (`session_disk`).
                    let vhost = self.vhost.clone();
                    return self.after_disk(ch, move || vhost.bind(&source, binding), bind_ok);
                }
                self.vhost.bind(&source, binding);
                bind_ok(self, ())
            }
            exchange::AMQPMethod::Unbind(u) => {
                self.permit_exchange_binding(
                    u.source.as_str(),
                    u.destination.as_str(),
                    u.routing_key.as_str(),
                )?;
                // Missing source or destination: nothing to unbind, unbind-ok (RabbitMQ 3.10).
                let source = found(self.bindable_exchange(u.source.as_str()))?;
                let dest_exists = found(self.bindable_exchange(u.destination.as_str()))?;
                let dest = Dest::Exchange(u.destination.to_string());
                if let (Some(source), Some(_)) = (source, dest_exists)
                    && self
                        .vhost
                        .unbind(&source, &dest, u.routing_key.as_str(), &u.arguments)
                    && source.auto_delete
                    && source.binding_count() == 0
                {
                    self.vhost.delete_exchange(&source.name);
                }
                if !u.nowait {
                    self.reply(
                        ch,
                        AMQPClass::Exchange(exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {})),
                    );
                }
                Ok(())
            }
            other => Err(AmqpError::new(
                code::COMMAND_INVALID,
                format_args!("unexpected method {:?}", other),
            )),
        }
    }

    /// exchange.bind / unbind: write on the destination, read on the source (RabbitMQ's
    /// order), then the topic permission on the key when the source exists; the
    /// default exchange's own refusal comes first.
    fn permit_exchange_binding(
        &mut self,
        source: &str,
        destination: &str,
        key: &str,
    ) -> AmqpResult {
        if source.is_empty() || destination.is_empty() {
            return Ok(());
        }
        self.permit(Access::Write, Resource::Exchange, destination)?;
        self.permit(Access::Read, Resource::Exchange, source)?;
        match self.vhost.exchange(source) {
            Some(x) => self.permit_topic(Access::Read, &x, key),
            None => Ok(()),
        }
    }
}
