//! A published message as the broker keeps it: routing data, the publisher's raw content
//! header (forwarded unchanged: re-encoding would reorder header tables), parsed properties
//! for the broker's own decisions, and a body shared by every queue it was routed to.

use crate::codec::header::{decode_header, encode_header};
use amq_protocol::protocol::BasicProperties;
use amq_protocol::types::{AMQPValue, FieldTable};
use bytes::Bytes;
use std::sync::Arc;

/// An immutable published message; queues hold it behind an `Arc`.
#[derive(Debug)]
pub(crate) struct Message {
    /// Exchange it was published to (reported in deliveries).
    pub(crate) exchange: String,
    /// Routing key it was published with.
    pub(crate) routing_key: String,
    /// Further routing keys from the `CC` header (sender-selected distribution).
    pub(crate) cc: Vec<String>,
    /// Routing keys from the `BCC` header, which is removed before delivery.
    pub(crate) bcc: Vec<String>,
    /// Content header payload exactly as it goes on the wire (class, weight, size, properties).
    pub(crate) header: Bytes,
    /// Decoded properties: headers-exchange routing, persistence, reply-to.
    pub(crate) properties: BasicProperties,
    /// The body, shared, never copied per queue.
    pub(crate) body: Bytes,
}

impl Message {
    /// The parts the store writes in a publish record.
    pub(crate) fn record(&self) -> crate::broker::store::queue_log::PublishRecord<'_> {
        crate::broker::store::queue_log::PublishRecord {
            exchange: &self.exchange,
            routing_key: &self.routing_key,
            cc: &self.cc,
            bcc: &self.bcc,
            header: &self.header,
            body: &self.body,
        }
    }

    /// delivery_mode 2 marks a message to be kept on disk in durable queues.
    pub(crate) fn is_persistent(&self) -> bool {
        self.properties.delivery_mode() == &Some(2)
    }

    /// A copy with other properties (and so a re-encoded header), e.g. a rewritten reply_to.
    pub(crate) fn with_properties(&self, properties: BasicProperties) -> Message {
        Message {
            exchange: self.exchange.clone(),
            routing_key: self.routing_key.clone(),
            cc: self.cc.clone(),
            bcc: self.bcc.clone(),
            header: encode_header(self.body.len() as u64, &properties),
            properties,
            body: self.body.clone(),
        }
    }
}

impl Message {
    /// A copy carrying `x-delivery-count: n` in its headers, as a quorum queue delivers a
    /// message that came back (RabbitMQ 3.10: on every basic.get, on redeliveries to
    /// consumers). The queue keeps the original.
    pub(crate) fn with_delivery_count(&self, n: u32) -> Message {
        let mut headers = self.properties.headers().clone().unwrap_or_default();
        headers.insert(
            "x-delivery-count".into(),
            AMQPValue::LongLongInt(i64::from(n)),
        );
        self.with_properties(self.properties.clone().with_headers(headers))
    }

    /// A message read back from a queue log.
    pub(crate) fn from_stored(p: crate::broker::store::segment::StoredPublish) -> Option<Message> {
        let (_, _, properties) = decode_header(&p.header).ok()?;
        Some(Message {
            exchange: p.exchange,
            routing_key: p.routing_key,
            cc: p.cc,
            bcc: p.bcc,
            header: Bytes::from(p.header),
            properties,
            body: Bytes::from(p.body),
        })
    }
}

/// Shared handle to a message.
pub(crate) type MessageRef = Arc<Message>;

/// `p` without its `expiration` (amq-protocol has setters but no way to unset a field).
pub(crate) fn without_expiration(p: &BasicProperties) -> BasicProperties {
    let mut out = BasicProperties::default();
    if let Some(v) = p.content_type() {
        out = out.with_content_type(v.clone());
    }
    if let Some(v) = p.content_encoding() {
        out = out.with_content_encoding(v.clone());
    }
    if let Some(v) = p.headers() {
        out = out.with_headers(v.clone());
    }
    if let Some(v) = p.delivery_mode() {
        out = out.with_delivery_mode(*v);
    }
    if let Some(v) = p.priority() {
        out = out.with_priority(*v);
    }
    if let Some(v) = p.correlation_id() {
        out = out.with_correlation_id(v.clone());
    }
    if let Some(v) = p.reply_to() {
        out = out.with_reply_to(v.clone());
    }
    if let Some(v) = p.message_id() {
        out = out.with_message_id(v.clone());
    }
    if let Some(v) = p.timestamp() {
        out = out.with_timestamp(*v);
    }
    if let Some(v) = p.kind() {
        out = out.with_type(v.clone());
    }
    if let Some(v) = p.user_id() {
        out = out.with_user_id(v.clone());
    }
    if let Some(v) = p.app_id() {
        out = out.with_app_id(v.clone());
    }
    if let Some(v) = p.cluster_id() {
        out = out.with_cluster_id(v.clone());
    }
    out
}

/// The routing keys in header `name` (`CC` or `BCC`): an array of strings; RabbitMQ
/// ignores other shapes.
pub(crate) fn header_keys(headers: Option<&FieldTable>, name: &str) -> Vec<String> {
    match headers.and_then(|h| h.inner().get(name)) {
        Some(AMQPValue::FieldArray(a)) => a
            .as_slice()
            .iter()
            .filter_map(crate::broker::model::args::as_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// `headers` without the named entries.
pub(crate) fn without_headers(headers: &FieldTable, names: &[&str]) -> FieldTable {
    let mut map = headers.inner().clone();
    for n in names {
        map.remove(*n);
    }
    FieldTable::from(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_reply_to("amq.rabbitmq.reply-to.x".into());
        let h = encode_header(42, &props);
        let (class, size, back) = decode_header(&h).unwrap();
        assert_eq!((class, size), (60, 42));
        assert_eq!(back, props);
    }
}
