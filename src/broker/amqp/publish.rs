//! A complete basic.publish (method, header, body): checks, direct reply-to, routing,
//! mandatory returns, transactions and the publisher-confirm count.

use crate::broker::access::Access;
use crate::broker::access::Resource;
use crate::broker::amqp::REPLY_TO;
use crate::broker::amqp::channel::{PendingPublish, TxPublish};
use crate::broker::amqp::session::Session;
use crate::broker::error::{AmqpError, AmqpResult, code};
use crate::broker::model::args::MAX_TTL_MS;
use crate::broker::model::message::{Message, MessageRef, header_keys, without_headers};
use crate::broker::model::queue::Enqueued;
use crate::broker::ops::counters::Stat;
use crate::codec;
use amq_protocol::protocol::{AMQPClass, BasicProperties, basic};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;

/// The per-message TTL in an `expiration` property, parsed like Erlang's
/// string:to_integer (an optional sign, digits, nothing after), with RabbitMQ's 406
/// texts (rabbit_basic:parse_expiration).
fn parse_expiration(s: &str) -> AmqpResult<u64> {
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let end = digits.bytes().take_while(u8::is_ascii_digit).count();
    if end == 0 {
        return Err(AmqpError::precondition(format_args!(
            "invalid expiration '{s}': no_integer"
        )));
    }
    if end < digits.len() {
        return Err(AmqpError::precondition(format_args!(
            "invalid expiration '{s}': {{leftover_string,\"{}\"}}",
            &digits[end..]
        )));
    }
    let value: u128 = digits.parse().unwrap_or(u128::MAX);
    if negative && value != 0 {
        return Err(AmqpError::precondition(format_args!(
            "invalid expiration '{s}': {{value_negative,-{digits}}}"
        )));
    }
    if value > u128::from(MAX_TTL_MS) {
        return Err(AmqpError::precondition(format_args!(
            "invalid expiration '{s}': {{value_too_large,{value}}}"
        )));
    }
    Ok(value as u64)
}

impl Session {
    pub(crate) fn publish(
        &mut self,
        ch: u16,
        publish: PendingPublish,
        header: Bytes,
        properties: BasicProperties,
        body: Bytes,
    ) -> AmqpResult {
        self.permit(Access::Write, Resource::Exchange, &publish.exchange)?;
        let exchange = self.vhost.exchange_or_404(&publish.exchange)?;
        if exchange.internal {
            return Err(AmqpError::access_refused(format_args!(
                "cannot publish to internal exchange '{}' in vhost '{}'",
                exchange.name, self.vhost.name
            )));
        }
        self.permit_topic(Access::Write, &exchange, &publish.routing_key)?;
        // RabbitMQ's validated user-id: a publisher may not claim to be someone else.
        if let Some(uid) = properties.user_id()
            && uid.as_str() != self.user
        {
            return Err(AmqpError::precondition(format_args!(
                "user_id property set to '{uid}' but authenticated user was '{}'",
                self.user
            )));
        }
        let ttl = match properties.expiration() {
            Some(e) => Some(parse_expiration(e.as_str())?),
            None => None,
        };
        let cc = header_keys(properties.headers().as_ref(), "CC");
        let bcc = header_keys(properties.headers().as_ref(), "BCC");
        let mut msg = Message {
            exchange: publish.exchange,
            routing_key: publish.routing_key,
            cc,
            bcc,
            header,
            properties,
            body,
        };
        // BCC routes but is never delivered (sender-selected distribution).
        if let Some(h) = msg
            .properties
            .headers()
            .as_ref()
            .filter(|h| h.contains_key("BCC"))
        {
            let props = msg
                .properties
                .clone()
                .with_headers(without_headers(h, &["BCC"]));
            msg = msg.with_properties(props);
        }
        if msg
            .properties
            .reply_to()
            .as_ref()
            .is_some_and(|r| r.as_str() == REPLY_TO)
        {
            let chan = self.chan(ch);
            let has_consumer = chan.shared.lock().reply_consumer.is_some();
            let Some(token) = chan.reply_token.clone().filter(|_| has_consumer) else {
                return Err(AmqpError::precondition(
                    "fast reply consumer does not exist",
                ));
            };
            let props = msg
                .properties
                .clone()
                .with_reply_to(format!("{REPLY_TO}.{token}").into());
            msg = msg.with_properties(props);
        }
        let msg = Arc::new(msg);
        let chan = self.chan(ch);
        if chan.settings.transactional() {
            chan.tx_publishes.push(TxPublish {
                msg,
                ttl,
                mandatory: publish.mandatory,
            });
            return Ok(());
        }
        self.route_published(ch, msg, ttl, publish.mandatory);
        Ok(())
    }

    /// Route a checked message into its queues; return it if mandatory and unroutable;
    /// count it for publisher confirms (nacked when a queue refused it).
    pub(crate) fn route_published(
        &mut self,
        ch: u16,
        msg: MessageRef,
        ttl: Option<u64>,
        mandatory: bool,
    ) {
        let mut refused = false;
        let mut stored = false;
        let routed = match msg
            .routing_key
            .strip_prefix(REPLY_TO)
            .and_then(|r| r.strip_prefix('.'))
        {
            Some(token) if msg.exchange.is_empty() => {
                let target = self
                    .broker
                    .reply_to
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(token)
                    .and_then(|w| w.upgrade());
                target.is_some_and(|c| c.deliver_reply(&msg))
            }
            // The exchange can be gone by tx.commit: then the message is unroutable.
            _ => self.vhost.exchange(&msg.exchange).is_some_and(|exchange| {
                let queues = self.vhost.route_message(&exchange, &msg);
                let mut any = false;
                for q in &queues {
                    match q.publish(msg.clone(), ttl) {
                        Enqueued::Accepted => any = true,
                        Enqueued::Stored => {
                            any = true;
                            stored = true;
                        }
                        Enqueued::Rejected => {
                            any = true;
                            refused = true;
                        }
                        Enqueued::Gone => {}
                    }
                }
                any
            }),
        };
        let counters = &self.vhost.counters.exchange;
        counters.add(Stat::Publish, 1);
        if !routed {
            counters.add(
                if mandatory {
                    Stat::ReturnUnroutable
                } else {
                    Stat::DropUnroutable
                },
                1,
            );
        }
        if !routed && mandatory {
            // basic.return goes out before the confirm (sent at the end of the read batch).
            let mut out = BytesMut::with_capacity(96 + msg.header.len() + msg.body.len());
            codec::put_method(
                &mut out,
                ch,
                AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
                    reply_code: code::NO_ROUTE,
                    reply_text: "NO_ROUTE".into(),
                    exchange: crate::codec::bounds::short(&msg.exchange),
                    routing_key: crate::codec::bounds::short(&msg.routing_key),
                })),
            );
            codec::put_content(&mut out, ch, &msg.header, &msg.body, self.frame_max);
            self.conn.send(out.freeze());
        }
        // Its confirm (or tx.commit-ok) must wait until the log is on disk.
        self.awaiting_sync |= stored;
        let chan = self.chan(ch);
        if chan.settings.confirm() {
            chan.publish_seq += 1;
            chan.unconfirmed = Some(chan.publish_seq);
            if refused {
                chan.nacks.push(chan.publish_seq);
            }
            self.vhost.counters.exchange.add(Stat::Confirm, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_expiration;

    #[test]
    fn expiration_parses_like_rabbitmq() {
        assert_eq!(parse_expiration("100").unwrap(), 100);
        assert_eq!(parse_expiration("0").unwrap(), 0);
        assert_eq!(
            parse_expiration("abc").unwrap_err().text,
            "PRECONDITION_FAILED - invalid expiration 'abc': no_integer"
        );
        assert!(
            parse_expiration("-5")
                .unwrap_err()
                .text
                .ends_with("{value_negative,-5}")
        );
        assert!(
            parse_expiration("10s")
                .unwrap_err()
                .text
                .contains("leftover_string")
        );
    }
}
