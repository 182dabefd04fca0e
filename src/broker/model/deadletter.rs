//! Dead-lettering as RabbitMQ 3.10 does it (rabbit_dead_letter): the message is
//! republished to the queue's `x-dead-letter-exchange` with an `x-death` history entry
//! (count, reason, queue, time, exchange, routing-keys, original-expiration) — the entry for
//! the same queue and reason is counted up and moved to the front — plus the
//! `x-first-death-*` headers; the `expiration` property is removed. A message that would
//! come back to a queue it already died in, with no `rejected` in that loop, is dropped.

use crate::broker::model::args::as_string;
use crate::broker::model::message::{Message, without_expiration};
use amq_protocol::types::{AMQPValue, FieldArray, FieldTable};
use std::collections::BTreeMap;

/// Why a message is dead-lettered (the `reason` in `x-death`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// basic.reject / basic.nack with requeue=false.
    Rejected,
    /// Per-queue or per-message TTL.
    Expired,
    /// x-max-length / x-max-length-bytes overflow.
    Maxlen,
    /// A quorum queue's `x-delivery-limit` was passed.
    DeliveryLimit,
}

impl Reason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::Rejected => "rejected",
            Reason::Expired => "expired",
            Reason::Maxlen => "maxlen",
            Reason::DeliveryLimit => "delivery_limit",
        }
    }
}

fn longstr(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.as_bytes().to_vec().into())
}

fn field(t: &FieldTable, key: &str) -> Option<String> {
    t.inner().get(key).and_then(as_string)
}

fn x_deaths(headers: &FieldTable) -> Vec<FieldTable> {
    match headers.inner().get("x-death") {
        Some(AMQPValue::FieldArray(a)) => a
            .as_slice()
            .iter()
            .filter_map(|v| match v {
                AMQPValue::FieldTable(t) => Some(t.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The message as it is republished to the dead-letter exchange `dlx`. `dlrk` is the
/// queue's `x-dead-letter-routing-key`: with it the copy goes out under that key alone and
/// loses its `CC`/`BCC` headers; without it, under all its original keys.
pub(crate) fn dead_lettered(
    msg: &Message,
    queue: &str,
    reason: Reason,
    dlx: &str,
    dlrk: Option<&str>,
) -> Message {
    let mut headers: BTreeMap<_, _> = msg
        .properties
        .headers()
        .as_ref()
        .map(|h| h.inner().clone())
        .unwrap_or_default();
    let old = FieldTable::from(headers.clone());
    let mut deaths = x_deaths(&old);
    if deaths.is_empty() {
        headers.insert("x-first-death-exchange".into(), longstr(&msg.exchange));
        headers.insert("x-first-death-queue".into(), longstr(queue));
        headers.insert("x-first-death-reason".into(), longstr(reason.as_str()));
    }
    let same = deaths.iter().position(|d| {
        field(d, "queue").as_deref() == Some(queue)
            && field(d, "reason").as_deref() == Some(reason.as_str())
    });
    let entry = match same {
        Some(i) => {
            let mut d = deaths.remove(i).inner().clone();
            let count = match d.get("count") {
                Some(v) => crate::broker::model::args::as_int(v).unwrap_or(0),
                None => 0,
            };
            d.insert("count".into(), AMQPValue::LongLongInt(count + 1));
            FieldTable::from(d)
        }
        None => {
            let mut d = FieldTable::default();
            d.insert("count".into(), AMQPValue::LongLongInt(1));
            d.insert("reason".into(), longstr(reason.as_str()));
            d.insert("queue".into(), longstr(queue));
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            d.insert("time".into(), AMQPValue::Timestamp(now));
            d.insert("exchange".into(), longstr(&msg.exchange));
            d.insert(
                "routing-keys".into(),
                AMQPValue::FieldArray(FieldArray::from(
                    // The publish key and the CC keys: BCC stays secret.
                    std::iter::once(&msg.routing_key)
                        .chain(&msg.cc)
                        .map(|k| longstr(k))
                        .collect::<Vec<_>>(),
                )),
            );
            if let Some(exp) = msg.properties.expiration() {
                d.insert("original-expiration".into(), longstr(exp.as_str()));
            }
            d
        }
    };
    let mut list = vec![AMQPValue::FieldTable(entry)];
    list.extend(deaths.into_iter().map(AMQPValue::FieldTable));
    headers.insert(
        "x-death".into(),
        AMQPValue::FieldArray(FieldArray::from(list)),
    );
    if dlrk.is_some() {
        headers.remove("CC");
    }
    let properties = without_expiration(&msg.properties).with_headers(FieldTable::from(headers));
    let mut out = msg.with_properties(properties);
    out.exchange = dlx.to_string();
    if let Some(key) = dlrk {
        out.routing_key = key.to_string();
        out.cc.clear();
        out.bcc.clear();
    }
    out
}

/// Would delivering the dead-lettered `msg` to `queue` close an automatic loop? True when
/// `queue` appears in its `x-death` history and no death up to and including that one
/// was a rejection (rabbit_dead_letter:is_cycle). Rejections never count as cycles.
pub(crate) fn is_cycle(msg: &Message, queue: &str, reason: Reason) -> bool {
    if reason == Reason::Rejected {
        return false;
    }
    let Some(headers) = msg.properties.headers() else {
        return false;
    };
    let deaths = x_deaths(headers);
    let Some(at) = deaths
        .iter()
        .position(|d| field(d, "queue").as_deref() == Some(queue))
    else {
        return false;
    };
    deaths[..=at]
        .iter()
        .all(|d| field(d, "reason").as_deref() != Some("rejected"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::header::encode_header;
    use amq_protocol::protocol::BasicProperties;
    use bytes::Bytes;

    fn message(props: BasicProperties) -> Message {
        Message {
            exchange: "ex".into(),
            routing_key: "rk".into(),
            cc: Vec::new(),
            bcc: Vec::new(),
            header: encode_header(2, &props),
            properties: props,
            body: Bytes::from_static(b"hi"),
        }
    }

    #[test]
    fn x_death_is_added_then_counted_and_first_death_kept() {
        let m = message(BasicProperties::default().with_expiration("100".into()));
        let d1 = dead_lettered(&m, "a", Reason::Expired, "dlx", Some("rk2"));
        assert_eq!(
            (d1.exchange.as_str(), d1.routing_key.as_str()),
            ("dlx", "rk2")
        );
        assert!(d1.properties.expiration().is_none());
        let h = d1.properties.headers().clone().unwrap();
        assert_eq!(field(&h, "x-first-death-queue").as_deref(), Some("a"));
        let deaths = x_deaths(&h);
        assert_eq!(deaths.len(), 1);
        assert_eq!(
            deaths[0].inner().get("count"),
            Some(&AMQPValue::LongLongInt(1))
        );
        assert_eq!(
            field(&deaths[0], "original-expiration").as_deref(),
            Some("100")
        );
        assert_eq!(field(&deaths[0], "exchange").as_deref(), Some("ex"));

        let d2 = dead_lettered(&d1, "b", Reason::Rejected, "dlx", None);
        let d3 = dead_lettered(&d2, "a", Reason::Expired, "dlx", Some("rk2"));
        let h = d3.properties.headers().clone().unwrap();
        let deaths = x_deaths(&h);
        assert_eq!(deaths.len(), 2);
        assert_eq!(field(&deaths[0], "queue").as_deref(), Some("a"));
        assert_eq!(
            deaths[0].inner().get("count"),
            Some(&AMQPValue::LongLongInt(2))
        );
        assert_eq!(
            field(&h, "x-first-death-reason").as_deref(),
            Some("expired")
        );
    }

    #[test]
    fn cycles_without_rejection_are_detected() {
        let m = message(BasicProperties::default());
        let d = dead_lettered(&m, "a", Reason::Expired, "dlx", Some("a"));
        assert!(is_cycle(&d, "a", Reason::Expired));
        assert!(!is_cycle(&d, "b", Reason::Expired));
        let r = dead_lettered(&m, "a", Reason::Rejected, "dlx", Some("a"));
        assert!(
            !is_cycle(&r, "a", Reason::Expired),
            "a rejection breaks the cycle"
        );
        assert!(!is_cycle(&d, "a", Reason::Rejected));
    }
}
