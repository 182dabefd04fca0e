//! A complete basic.publish (method, header, body): checks, direct reply-to, routing,
//! mandatory returns and the publisher-confirm count.

use super::codec;
use super::error::{AmqpError, AmqpResult, code};
use super::message::Message;
use super::methods_basic::REPLY_TO;
use super::session::{PendingPublish, Session};
use amq_protocol::protocol::{AMQPClass, BasicProperties, basic};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;

impl Session {
    pub(crate) fn publish(
        &mut self,
        ch: u16,
        publish: PendingPublish,
        header: Bytes,
        properties: BasicProperties,
        body: Bytes,
    ) -> AmqpResult {
        let exchange = self.vhost.exchange_or_404(&publish.exchange)?;
        if exchange.internal {
            return Err(AmqpError::access_refused(format_args!(
                "cannot publish to internal exchange '{}' in vhost '{}'",
                exchange.name, self.vhost.name
            )));
        }
        // RabbitMQ's validated user-id: a publisher may not claim to be someone else.
        if let Some(uid) = properties.user_id()
            && uid.as_str() != self.user
        {
            return Err(AmqpError::precondition(format_args!(
                "user_id property set to '{uid}' but authenticated user was '{}'",
                self.user
            )));
        }
        let mut msg = Message {
            exchange: publish.exchange,
            routing_key: publish.routing_key,
            header,
            properties,
            body,
        };
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
            _ => {
                let queues = self.vhost.route(
                    &exchange,
                    &msg.routing_key,
                    msg.properties.headers().as_ref(),
                );
                let mut any = false;
                for q in &queues {
                    any |= q.publish(msg.clone());
                }
                any
            }
        };
        if !routed && publish.mandatory {
            // basic.return goes out before the confirm (sent at the end of the read batch).
            let mut out = BytesMut::with_capacity(96 + msg.header.len() + msg.body.len());
            codec::put_method(
                &mut out,
                ch,
                AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
                    reply_code: code::NO_ROUTE,
                    reply_text: "NO_ROUTE".into(),
                    exchange: msg.exchange.as_str().into(),
                    routing_key: msg.routing_key.as_str().into(),
                })),
            );
            codec::put_content(&mut out, ch, &msg.header, &msg.body, self.frame_max);
            self.conn.send(out.freeze());
        }
        let chan = self.chan(ch);
        if chan.confirm {
            chan.publish_seq += 1;
            chan.unconfirmed = Some(chan.publish_seq);
        }
        Ok(())
    }
}
