//! A message as rmq sees it — plain data, free of lapin types — and its lossless
//! JSON-lines form (`receive --output jsonl` writes it, `send --input jsonl` reads it).

use super::value;
use amq_protocol::protocol::BasicProperties;
use amq_protocol::types::ShortString;
use anyhow::{Context, bail};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One message: where it came from, its properties and its body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Exchange it was published to (`""` is the default exchange); informative on input.
    #[serde(default)]
    pub exchange: String,
    /// Routing key it was published with; informative on input unless replaying into an exchange.
    #[serde(default)]
    pub routing_key: String,
    /// Whether the broker delivered it before (a consumer died or nacked it).
    #[serde(default)]
    pub redelivered: bool,
    /// The AMQP basic properties, headers included.
    #[serde(default)]
    pub properties: Properties,
    /// The payload, exactly as published.
    #[serde(with = "body_serde", flatten)]
    pub body: Vec<u8>,
}

/// AMQP 0-9-1 basic properties (spec §1.8.4 "basic" class); `None` means absent on the wire.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    /// MIME type of the body.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content_type: Option<String>,
    /// Encoding of the body (e.g. gzip).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content_encoding: Option<String>,
    /// Application headers in the typed JSON form of [`value`]; the headers exchange routes on them.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub headers: Option<Map<String, Value>>,
    /// 1 transient, 2 persistent (written to disk by durable queues).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub delivery_mode: Option<u8>,
    /// 0–9 (priority queues only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub priority: Option<u8>,
    /// Pairs an RPC reply with its request.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub correlation_id: Option<String>,
    /// Queue the RPC reply goes to.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reply_to: Option<String>,
    /// Per-message TTL in milliseconds, as a string per RabbitMQ.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expiration: Option<String>,
    /// Application message id.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub message_id: Option<String>,
    /// Seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub timestamp: Option<u64>,
    /// Application message type.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none", default)]
    pub kind: Option<String>,
    /// Must equal the connection's user on RabbitMQ (validated user id).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_id: Option<String>,
    /// Publishing application.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub app_id: Option<String>,
    /// Deprecated in 0-9-1 but carried for losslessness.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cluster_id: Option<String>,
}

impl Message {
    /// Parse one line of the JSON-lines format.
    pub fn from_jsonl(line: &str) -> anyhow::Result<Message> {
        let msg: Message =
            serde_json::from_str(line).context("not a message in rmq's JSON-lines format")?;
        // Validate the headers now so a bad line fails before anything is sent.
        msg.properties.to_amqp()?;
        Ok(msg)
    }

    /// The JSON-lines form (one line, no trailing newline).
    pub fn to_jsonl(&self) -> String {
        // Serialising plain strings, numbers and maps cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The same line written to `w` without building it in memory first: the body, the
    /// bulk of a large message, goes out as it is escaped (or base64-encoded, 48 KiB at a
    /// time), so `receive --save-dir` of a 256 MiB body does not hold two more copies.
    pub fn write_jsonl(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        let head = Message {
            exchange: self.exchange.clone(),
            routing_key: self.routing_key.clone(),
            redelivered: self.redelivered,
            properties: self.properties.clone(),
            body: Vec::new(),
        };
        let text = serde_json::to_string(&head)?;
        // The body's entries come last (flattened after the fields): an empty one reads so.
        let Some(prefix) = text.strip_suffix(r#","body":"","body_encoding":"utf8"}"#) else {
            return w.write_all(self.to_jsonl().as_bytes());
        };
        w.write_all(prefix.as_bytes())?;
        w.write_all(br#","body":"#)?;
        match std::str::from_utf8(&self.body) {
            Ok(text) => {
                serde_json::to_writer(&mut *w, text)?;
                w.write_all(br#","body_encoding":"utf8"}"#)
            }
            Err(_) => {
                w.write_all(b"\"")?;
                // Whole 3-byte groups per chunk: no padding but at the very end.
                for chunk in self.body.chunks(3 * 16 * 1024) {
                    w.write_all(value::b64(chunk).as_bytes())?;
                }
                w.write_all(br#"","body_encoding":"base64"}"#)
            }
        }
    }
}

impl Properties {
    /// Into lapin's representation; fails on a malformed typed header or a too-long short string.
    pub fn to_amqp(&self) -> anyhow::Result<BasicProperties> {
        fn short(what: &str, s: &str) -> anyhow::Result<ShortString> {
            ShortString::try_new(s).map_err(|e| anyhow::anyhow!("{what} is too long: {e}"))
        }
        let mut p = BasicProperties::default();
        if let Some(v) = &self.content_type {
            p = p.with_content_type(short("content_type", v)?);
        }
        if let Some(v) = &self.content_encoding {
            p = p.with_content_encoding(short("content_encoding", v)?);
        }
        if let Some(h) = &self.headers {
            p = p.with_headers(value::table_from_json(h).context("bad header")?);
        }
        if let Some(v) = self.delivery_mode {
            p = p.with_delivery_mode(v);
        }
        if let Some(v) = self.priority {
            p = p.with_priority(v);
        }
        if let Some(v) = &self.correlation_id {
            p = p.with_correlation_id(short("correlation_id", v)?);
        }
        if let Some(v) = &self.reply_to {
            p = p.with_reply_to(short("reply_to", v)?);
        }
        if let Some(v) = &self.expiration {
            p = p.with_expiration(short("expiration", v)?);
        }
        if let Some(v) = &self.message_id {
            p = p.with_message_id(short("message_id", v)?);
        }
        if let Some(v) = self.timestamp {
            p = p.with_timestamp(v);
        }
        if let Some(v) = &self.kind {
            p = p.with_type(short("type", v)?);
        }
        if let Some(v) = &self.user_id {
            p = p.with_user_id(short("user_id", v)?);
        }
        if let Some(v) = &self.app_id {
            p = p.with_app_id(short("app_id", v)?);
        }
        if let Some(v) = &self.cluster_id {
            p = p.with_cluster_id(short("cluster_id", v)?);
        }
        Ok(p)
    }

    /// From lapin's representation (lossless).
    pub fn from_amqp(p: &BasicProperties) -> Properties {
        let s = |v: &Option<ShortString>| v.as_ref().map(|s| s.as_str().to_string());
        Properties {
            content_type: s(p.content_type()),
            content_encoding: s(p.content_encoding()),
            headers: p.headers().as_ref().map(value::table_to_json),
            delivery_mode: *p.delivery_mode(),
            priority: *p.priority(),
            correlation_id: s(p.correlation_id()),
            reply_to: s(p.reply_to()),
            expiration: s(p.expiration()),
            message_id: s(p.message_id()),
            timestamp: *p.timestamp(),
            kind: s(p.kind()),
            user_id: s(p.user_id()),
            app_id: s(p.app_id()),
            cluster_id: s(p.cluster_id()),
        }
    }

    /// A header as display text (strings bare, anything else as JSON).
    pub fn header_text(value: &Value) -> String {
        match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

/// `"body": "...", "body_encoding": "utf8" | "base64"` — text stays readable, binary stays exact.
mod body_serde {
    use super::*;
    use serde::{Deserializer, Serializer, ser::SerializeMap};

    pub(super) fn serialize<S: Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        match std::str::from_utf8(body) {
            Ok(text) => {
                map.serialize_entry("body", text)?;
                map.serialize_entry("body_encoding", "utf8")?;
            }
            Err(_) => {
                map.serialize_entry("body", &value::b64(body))?;
                map.serialize_entry("body_encoding", "base64")?;
            }
        }
        map.end()
    }

    #[derive(Deserialize)]
    struct Raw {
        #[serde(default)]
        body: String,
        #[serde(default)]
        body_encoding: Option<String>,
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let raw = Raw::deserialize(d)?;
        decode(raw.body, raw.body_encoding.as_deref()).map_err(serde::de::Error::custom)
    }

    fn decode(body: String, encoding: Option<&str>) -> anyhow::Result<Vec<u8>> {
        match encoding {
            None | Some("utf8") => Ok(body.into_bytes()),
            Some("base64") => base64::engine::general_purpose::STANDARD
                .decode(body.as_bytes())
                .context("body is not valid base64"),
            Some(other) => bail!("unknown body_encoding '{other}' (utf8 or base64)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_body_and_properties_round_trip() {
        let mut headers = Map::new();
        headers.insert("n".into(), serde_json::json!({"$type": "i32", "value": 7}));
        let msg = Message {
            exchange: "x".into(),
            routing_key: "k".into(),
            redelivered: true,
            properties: Properties {
                content_type: Some("application/octet-stream".into()),
                headers: Some(headers),
                delivery_mode: Some(2),
                kind: Some("t".into()),
                ..Properties::default()
            },
            body: vec![0, 159, 146, 150],
        };
        let line = msg.to_jsonl();
        assert!(line.contains("\"body_encoding\":\"base64\""), "{line}");
        assert_eq!(Message::from_jsonl(&line).unwrap(), msg);
        let amqp = msg.properties.to_amqp().unwrap();
        assert_eq!(Properties::from_amqp(&amqp), msg.properties);
    }

    #[test]
    fn written_lines_equal_built_ones() {
        let mut binary: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
        binary.push(0xff);
        for body in [b"".to_vec(), b"he said \"hi\"\n\t".to_vec(), binary] {
            let msg = Message {
                exchange: "x".into(),
                routing_key: "k".into(),
                redelivered: true,
                properties: Properties {
                    content_type: Some("text/plain".into()),
                    ..Properties::default()
                },
                body,
            };
            let mut out = Vec::new();
            msg.write_jsonl(&mut out).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), msg.to_jsonl());
        }
    }

    #[test]
    fn text_body_stays_readable() {
        let msg = Message {
            body: b"hello".to_vec(),
            ..Message::default()
        };
        assert!(msg.to_jsonl().contains("\"body\":\"hello\""));
        assert!(Message::from_jsonl("{\"body\":\"a\",\"body_encoding\":\"rot13\"}").is_err());
        assert!(Message::from_jsonl("{\"body\":\"a\",\"properties\":{\"colour\":1}}").is_err());
    }
}
