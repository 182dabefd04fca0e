//! AMQP field values ⇄ JSON, losslessly.
//!
//! The common types map to plain JSON (long string ⇄ string, bool, signed 64-bit ⇄
//! integer, double ⇄ float, table ⇄ object, array ⇄ array, void ⇄ null). Every other
//! AMQP type — and a table that itself has a `$type` key — becomes a tagged object
//! `{"$type": "i32", "value": 5}`, so that a message read with `receive --output jsonl`
//! and sent back with `send --input jsonl` carries the very same header types
//! (consumers such as pika tell `I` from `l`, and RabbitMQ's `x-death` uses them).

use amq_protocol::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable};
use anyhow::{Context, bail};
use base64::Engine;
use serde_json::{Map, Value, json};

const TAG: &str = "$type";

/// An AMQP value as JSON (see the module doc for the mapping).
pub fn to_json(value: &AMQPValue) -> Value {
    let tagged = |ty: &str, v: Value| json!({ TAG: ty, "value": v });
    match value {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(v) => tagged("i8", json!(v)),
        AMQPValue::ShortShortUInt(v) => tagged("u8", json!(v)),
        AMQPValue::ShortInt(v) => tagged("i16", json!(v)),
        AMQPValue::ShortUInt(v) => tagged("u16", json!(v)),
        AMQPValue::LongInt(v) => tagged("i32", json!(v)),
        AMQPValue::LongUInt(v) => tagged("u32", json!(v)),
        AMQPValue::LongLongInt(v) => json!(v),
        AMQPValue::Float(v) => tagged("f32", json!(v)),
        AMQPValue::Double(v) => json!(v),
        AMQPValue::DecimalValue(d) => {
            tagged("decimal", json!({"scale": d.scale, "value": d.value}))
        }
        AMQPValue::ShortString(s) => tagged("shortstr", json!(s.as_str())),
        AMQPValue::LongString(s) => match std::str::from_utf8(s.as_bytes()) {
            Ok(text) => Value::String(text.to_string()),
            Err(_) => tagged("longstr-base64", json!(b64(s.as_bytes()))),
        },
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(to_json).collect()),
        AMQPValue::Timestamp(t) => tagged("timestamp", json!(t)),
        AMQPValue::FieldTable(t) => {
            let obj = table_to_json(t);
            if obj.contains_key(TAG) {
                tagged("table", Value::Object(obj))
            } else {
                Value::Object(obj)
            }
        }
        AMQPValue::ByteArray(b) => tagged("bytes", json!(b64(b.as_slice()))),
        AMQPValue::Void => Value::Null,
    }
}

/// A field table as a JSON object.
pub(super) fn table_to_json(table: &FieldTable) -> Map<String, Value> {
    table
        .inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), to_json(v)))
        .collect()
}

/// A JSON object as a field table (inverse of [`table_to_json`]).
pub fn table_from_json(obj: &Map<String, Value>) -> anyhow::Result<FieldTable> {
    let mut table = FieldTable::default();
    for (k, v) in obj {
        let key = amq_protocol::types::ShortString::try_new(k.clone())
            .map_err(|e| anyhow::anyhow!("key '{k}' is too long: {e}"))?;
        table.insert(key, from_json(v).with_context(|| format!("in '{k}'"))?);
    }
    Ok(table)
}

/// A JSON value as an AMQP value (inverse of [`to_json`]).
pub fn from_json(value: &Value) -> anyhow::Result<AMQPValue> {
    Ok(match value {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                AMQPValue::LongLongInt(i)
            } else if n.is_u64() {
                bail!("integer {n} does not fit a signed 64-bit AMQP value")
            } else {
                AMQPValue::Double(n.as_f64().unwrap_or_default())
            }
        }
        Value::String(s) => AMQPValue::LongString(s.as_bytes().to_vec().into()),
        Value::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items
                .iter()
                .map(from_json)
                .collect::<anyhow::Result<Vec<_>>>()?,
        )),
        Value::Object(obj) => match obj.get(TAG) {
            Some(Value::String(ty)) => tagged_from_json(ty, obj.get("value"))?,
            Some(_) => bail!("'{TAG}' must be a string"),
            None => AMQPValue::FieldTable(table_from_json(obj)?),
        },
    })
}

fn tagged_from_json(ty: &str, value: Option<&Value>) -> anyhow::Result<AMQPValue> {
    let value = value.with_context(|| format!("tagged value of type '{ty}' has no 'value'"))?;
    let int = || {
        value
            .as_i64()
            .with_context(|| format!("'{ty}' needs an integer, got {value}"))
    };
    let out_of_range = || anyhow::anyhow!("{value} is out of range for '{ty}'");
    Ok(match ty {
        "i8" => AMQPValue::ShortShortInt(i8::try_from(int()?).map_err(|_| out_of_range())?),
        "u8" => AMQPValue::ShortShortUInt(u8::try_from(int()?).map_err(|_| out_of_range())?),
        "i16" => AMQPValue::ShortInt(i16::try_from(int()?).map_err(|_| out_of_range())?),
        "u16" => AMQPValue::ShortUInt(u16::try_from(int()?).map_err(|_| out_of_range())?),
        "i32" => AMQPValue::LongInt(i32::try_from(int()?).map_err(|_| out_of_range())?),
        "u32" => AMQPValue::LongUInt(u32::try_from(int()?).map_err(|_| out_of_range())?),
        "i64" => AMQPValue::LongLongInt(int()?),
        "f32" => AMQPValue::Float(
            value
                .as_f64()
                .with_context(|| format!("'f32' needs a number, got {value}"))? as f32,
        ),
        "f64" => AMQPValue::Double(
            value
                .as_f64()
                .with_context(|| format!("'f64' needs a number, got {value}"))?,
        ),
        "timestamp" => {
            AMQPValue::Timestamp(value.as_u64().with_context(|| {
                format!("'timestamp' needs seconds since the epoch, got {value}")
            })?)
        }
        "decimal" => {
            let scale = value
                .get("scale")
                .and_then(Value::as_u64)
                .and_then(|s| u8::try_from(s).ok());
            let v = value
                .get("value")
                .and_then(Value::as_u64)
                .and_then(|s| u32::try_from(s).ok());
            match (scale, v) {
                (Some(scale), Some(value)) => {
                    AMQPValue::DecimalValue(DecimalValue { scale, value })
                }
                _ => bail!("'decimal' needs {{\"scale\": u8, \"value\": u32}}, got {value}"),
            }
        }
        "shortstr" => {
            let s = value
                .as_str()
                .with_context(|| format!("'shortstr' needs a string, got {value}"))?;
            AMQPValue::ShortString(
                amq_protocol::types::ShortString::try_new(s).map_err(|e| anyhow::anyhow!("{e}"))?,
            )
        }
        "longstr" => AMQPValue::LongString(
            value
                .as_str()
                .with_context(|| format!("'longstr' needs a string, got {value}"))?
                .as_bytes()
                .to_vec()
                .into(),
        ),
        "longstr-base64" => AMQPValue::LongString(unb64(value)?.into()),
        "bytes" => AMQPValue::ByteArray(ByteArray::from(unb64(value)?)),
        "table" => match value {
            Value::Object(obj) => AMQPValue::FieldTable(table_from_json(obj)?),
            _ => bail!("'table' needs an object, got {value}"),
        },
        other => bail!(
            "unknown AMQP type '{other}' (known: i8 u8 i16 u16 i32 u32 i64 f32 f64 decimal shortstr longstr longstr-base64 bytes timestamp table)"
        ),
    })
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(value: &Value) -> anyhow::Result<Vec<u8>> {
    let s = value
        .as_str()
        .with_context(|| format!("expected a base64 string, got {value}"))?;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .with_context(|| format!("'{s}' is not valid base64"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips() {
        let mut inner = FieldTable::default();
        inner.insert("$type".into(), AMQPValue::LongString("x".into()));
        let values = vec![
            AMQPValue::Boolean(true),
            AMQPValue::ShortShortInt(-3),
            AMQPValue::ShortShortUInt(250),
            AMQPValue::ShortInt(-300),
            AMQPValue::ShortUInt(60000),
            AMQPValue::LongInt(-70000),
            AMQPValue::LongUInt(4_000_000_000),
            AMQPValue::LongLongInt(i64::MIN),
            AMQPValue::Float(1.5),
            AMQPValue::Double(2.0),
            AMQPValue::DecimalValue(DecimalValue {
                scale: 2,
                value: 314,
            }),
            AMQPValue::ShortString("short".into()),
            AMQPValue::LongString("long".into()),
            AMQPValue::LongString(vec![0xff, 0x00].into()),
            AMQPValue::FieldArray(vec![AMQPValue::LongInt(1), AMQPValue::Void].into()),
            AMQPValue::Timestamp(1_700_000_000),
            AMQPValue::FieldTable(inner),
            AMQPValue::ByteArray(vec![1, 2, 3].into()),
            AMQPValue::Void,
        ];
        for v in values {
            let json = to_json(&v);
            let text = serde_json::to_string(&json).unwrap();
            let back = from_json(&serde_json::from_str(&text).unwrap()).unwrap();
            assert_eq!(back, v, "via {text}");
        }
    }

    #[test]
    fn bad_tags_are_errors() {
        assert!(from_json(&json!({"$type": "i8", "value": 300})).is_err());
        assert!(from_json(&json!({"$type": "nope", "value": 1})).is_err());
        assert!(from_json(&json!({"$type": "bytes", "value": "!!"})).is_err());
    }
}
