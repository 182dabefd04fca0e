//! exchange.* handlers: decode, apply, reply — with RabbitMQ's checks and texts.

use crate::broker::access::grant::Checked;
use crate::broker::amqp::session::Session;
use crate::broker::error::{AmqpError, AmqpResult, code};
use crate::broker::model::topology::{BindingSpec, ExchangeDeclare};
use amq_protocol::protocol::{AMQPClass, exchange};

impl Session {
    pub(crate) fn exchange_method(&mut self, ch: u16, m: exchange::AMQPMethod) -> AmqpResult {
        match m {
            exchange::AMQPMethod::Declare(d) => {
                let name = d.exchange.as_str();
                if d.passive {
                    if name.is_empty() {
                        return Err(AmqpError::access_refused(
                            "operation not permitted on the default exchange",
                        ));
                    }
                    self.vhost.exchange_or_404(name)?;
                    return self.exchange_declared(ch, d.nowait);
                }
                let mut permit = Checked {
                    grant: &mut self.grant,
                    db: &self.broker.auth,
                };
                let req = ExchangeDeclare {
                    name: name.to_string(),
                    kind: d.kind.to_string(),
                    durable: d.durable,
                    auto_delete: d.auto_delete,
                    internal: d.internal,
                    arguments: d.arguments,
                };
                let plan = self.vhost.plan_exchange(&mut permit, req)?;
                let nowait = d.nowait;
                if self.vhost.exchange_touches_disk(&plan) {
                    // Its definitions record is disk work (`session_disk`).
                    let vhost = self.vhost.clone();
                    return self.after_disk(
                        ch,
                        move || vhost.apply_exchange(plan),
                        move |s, declared| {
                            declared?;
                            s.exchange_declared(ch, nowait)
                        },
                    );
                }
                self.vhost.apply_exchange(plan)?;
                self.exchange_declared(ch, nowait)
            }
            exchange::AMQPMethod::Delete(d) => {
                let mut permit = Checked {
                    grant: &mut self.grant,
                    db: &self.broker.auth,
                };
                self.vhost.delete_exchange_checked(
                    &mut permit,
                    d.exchange.as_str(),
                    d.if_unused,
                )?;
                if !d.nowait {
                    self.reply(
                        ch,
                        AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {})),
                    );
                }
                Ok(())
            }
            exchange::AMQPMethod::Bind(b) => {
                let spec = BindingSpec {
                    source: b.source.to_string(),
                    to_queue: false,
                    destination: b.destination.to_string(),
                    key: b.routing_key.to_string(),
                    arguments: b.arguments,
                    requester: Some(self.conn.id),
                };
                let ok = AMQPClass::Exchange(exchange::AMQPMethod::BindOk(exchange::BindOk {}));
                self.bind(ch, spec, (!b.nowait).then_some(ok))
            }
            exchange::AMQPMethod::Unbind(u) => {
                let spec = BindingSpec {
                    source: u.source.to_string(),
                    to_queue: false,
                    destination: u.destination.to_string(),
                    key: u.routing_key.to_string(),
                    arguments: u.arguments,
                    requester: Some(self.conn.id),
                };
                let mut permit = Checked {
                    grant: &mut self.grant,
                    db: &self.broker.auth,
                };
                self.vhost.unbind_checked(&mut permit, spec)?;
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

    fn exchange_declared(&mut self, ch: u16, nowait: bool) -> AmqpResult {
        if !nowait {
            self.reply(
                ch,
                AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {})),
            );
        }
        Ok(())
    }
}
