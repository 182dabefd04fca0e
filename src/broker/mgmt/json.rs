//! AMQP field tables and message properties as the management API writes and reads them
//! (rabbit_mgmt_format): integers, strings, booleans, nested tables and arrays.

use crate::codec::bounds::{MAX_TABLE_DEPTH, cut};
use amq_protocol::protocol::BasicProperties;
use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use serde_json::{Map, Value, json};

/// A field table as a JSON object.
pub(crate) fn table(t: &FieldTable) -> Value {
    Value::Object(
        t.inner()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), value(v)))
            .collect(),
    )
}

fn value(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::ShortShortInt(n) => json!(n),
        AMQPValue::ShortShortUInt(n) => json!(n),
        AMQPValue::ShortInt(n) => json!(n),
        AMQPValue::ShortUInt(n) => json!(n),
        AMQPValue::LongInt(n) => json!(n),
        AMQPValue::LongUInt(n) => json!(n),
        AMQPValue::LongLongInt(n) => json!(n),
        AMQPValue::Float(n) => json!(n),
        AMQPValue::Double(n) => json!(n),
        AMQPValue::DecimalValue(d) => json!(f64::from(d.value) / 10f64.powi(i32::from(d.scale))),
        AMQPValue::ShortString(s) => json!(s.as_str()),
        AMQPValue::LongString(s) => json!(String::from_utf8_lossy(s.as_bytes())),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(value).collect()),
        AMQPValue::Timestamp(t) => json!(t),
        AMQPValue::FieldTable(t) => table(t),
        AMQPValue::ByteArray(b) => json!(String::from_utf8_lossy(b.as_slice())),
        AMQPValue::Void => Value::Null,
    }
}

/// A JSON object as a field table (RabbitMQ: integers are `long`, strings `longstr`);
/// `null` is the empty table. Err says what is wrong (the caller answers 400): not an
/// object, a key past 255 bytes (a short string on the wire), or nesting deeper than the
/// broker accepts from AMQP peers (`bounds::MAX_TABLE_DEPTH`).
pub(crate) fn to_table(v: &Value) -> Result<FieldTable, String> {
    match v {
        Value::Null => Ok(FieldTable::default()),
        Value::Object(_) => match to_value(v, 1)? {
            AMQPValue::FieldTable(t) => Ok(t),
            _ => Err("expected an object".into()),
        },
        _ => Err("expected an object".into()),
    }
}

fn to_value(v: &Value, depth: usize) -> Result<AMQPValue, String> {
    let nested = |depth: usize| {
        if depth > MAX_TABLE_DEPTH {
            Err(format!(
                "objects and arrays nested deeper than {MAX_TABLE_DEPTH} levels are refused"
            ))
        } else {
            Ok(())
        }
    };
    Ok(match v {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => AMQPValue::Double(n.as_f64().ok_or("a number out of range")?),
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_bytes())),
        Value::Array(a) => {
            nested(depth)?;
            let mut arr = FieldArray::default();
            for x in a {
                arr.push(to_value(x, depth + 1)?);
            }
            AMQPValue::FieldArray(arr)
        }
        Value::Object(obj) => {
            nested(depth)?;
            let mut t = FieldTable::default();
            for (k, v) in obj {
                if k.len() > 255 {
                    return Err(format!("key '{}...' is longer than 255 bytes", cut(k, 32)));
                }
                t.insert(ShortString::from(k.as_str()), to_value(v, depth + 1)?);
            }
            AMQPValue::FieldTable(t)
        }
    })
}

/// Message properties as `POST .../get` shows them; RabbitMQ writes an empty Erlang
/// proplist, so no properties at all is `[]`, not `{}`.
pub(crate) fn properties(p: &BasicProperties) -> Value {
    let mut m = Map::new();
    let mut s = |k: &str, v: &Option<ShortString>| {
        if let Some(v) = v {
            m.insert(k.into(), json!(v.as_str()));
        }
    };
    s("content_type", p.content_type());
    s("content_encoding", p.content_encoding());
    s("correlation_id", p.correlation_id());
    s("reply_to", p.reply_to());
    s("expiration", p.expiration());
    s("message_id", p.message_id());
    s("type", p.kind());
    s("user_id", p.user_id());
    s("app_id", p.app_id());
    s("cluster_id", p.cluster_id());
    if let Some(d) = p.delivery_mode() {
        m.insert("delivery_mode".into(), json!(d));
    }
    if let Some(n) = p.priority() {
        m.insert("priority".into(), json!(n));
    }
    if let Some(t) = p.timestamp() {
        m.insert("timestamp".into(), json!(t));
    }
    if let Some(h) = p.headers() {
        m.insert("headers".into(), table(h));
    }
    if m.is_empty() {
        Value::Array(Vec::new())
    } else {
        Value::Object(m)
    }
}

/// Properties from a `POST .../publish` body; Err names the bad field.
pub(crate) fn to_properties(v: &Value) -> Result<BasicProperties, String> {
    let mut p = BasicProperties::default();
    let obj = match v {
        Value::Object(o) => o,
        Value::Null => return Ok(p),
        Value::Array(a) if a.is_empty() => return Ok(p),
        _ => return Err("properties must be an object".into()),
    };
    for (k, v) in obj {
        let text = || -> Result<ShortString, String> {
            match v.as_str() {
                Some(s) if s.len() > 255 => Err(format!("property {k} is longer than 255 bytes")),
                Some(s) => Ok(ShortString::from(s)),
                None => Err(format!("property {k} must be a string")),
            }
        };
        let int = || -> Result<u64, String> {
            v.as_u64()
                .ok_or_else(|| format!("property {k} must be a non-negative integer"))
        };
        p = match k.as_str() {
            "content_type" => p.with_content_type(text()?),
            "content_encoding" => p.with_content_encoding(text()?),
            "correlation_id" => p.with_correlation_id(text()?),
            "reply_to" => p.with_reply_to(text()?),
            "expiration" => p.with_expiration(text()?),
            "message_id" => p.with_message_id(text()?),
            "type" => p.with_type(text()?),
            "user_id" => p.with_user_id(text()?),
            "app_id" => p.with_app_id(text()?),
            "cluster_id" => p.with_cluster_id(text()?),
            "delivery_mode" => p.with_delivery_mode(int()?.min(255) as u8),
            "priority" => p.with_priority(int()?.min(255) as u8),
            "timestamp" => p.with_timestamp(int()?),
            "headers" => p.with_headers(to_table(v).map_err(|e| format!("headers: {e}"))?),
            other => return Err(format!("unknown property {other}")),
        };
    }
    Ok(p)
}

/// `{"rate": r}`, the `_details` of every counter.
pub(crate) fn rate(r: f64) -> Value {
    json!({ "rate": (r * 10.0).round() / 10.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_round_trip_through_json() {
        let v = json!({"x-max-length": 5, "s": "a", "b": true, "n": {"k": [1, "x"]}});
        let t = to_table(&v).unwrap();
        assert_eq!(table(&t), v);
    }

    #[test]
    fn deep_or_long_keyed_json_is_refused_not_a_panic() {
        let mut deep = json!(1);
        for _ in 0..MAX_TABLE_DEPTH {
            deep = json!({ "k": deep });
        }
        assert!(to_table(&deep).is_ok(), "at the bound");
        assert!(to_table(&json!({ "k": deep })).is_err(), "past the bound");
        assert!(to_table(&json!({ "k".repeat(256): 1 })).is_err());
        assert!(to_properties(&json!({ "content_type": "x".repeat(256) })).is_err());
        assert!(to_table(&json!([1])).is_err());
    }

    #[test]
    fn no_properties_is_an_empty_list() {
        assert_eq!(properties(&BasicProperties::default()), json!([]));
        let p = to_properties(&json!({"delivery_mode": 2, "headers": {"a": 1}})).unwrap();
        assert_eq!(
            properties(&p),
            json!({"delivery_mode": 2, "headers": {"a": 1}})
        );
    }
}
