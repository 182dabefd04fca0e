//! `--format` templates for received messages: `{body}`, `{routing_key}`,
//! `{headers.NAME}`, `{properties.NAME}` ..., with `\n`/`\t` escapes and `{{`/`}}` for
//! literal braces. Parsed once, before connecting, so a typo is a usage error (exit 2)
//! rather than a surprise after the first message was taken off the queue.

use crate::client::{Message, Properties};
use base64::Engine;
use serde_json::Value;

/// The placeholders a template may use (besides `headers.NAME` and `properties.NAME`).
pub const PLACEHOLDERS: &[&str] = &[
    "body",
    "body_base64",
    "routing_key",
    "exchange",
    "redelivered",
    "delivery_tag",
    "content_type",
    "content_encoding",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
    "cluster_id",
];

/// The AMQP basic properties by name (`type` is the `type` property).
const PROPERTIES: &[&str] = &[
    "content_type",
    "content_encoding",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
    "cluster_id",
];

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Text printed as is.
    Literal(String),
    /// The raw body bytes.
    Body,
    /// The body in standard base64.
    BodyBase64,
    /// `routing_key`.
    RoutingKey,
    /// `exchange`.
    Exchange,
    /// `redelivered` (true/false).
    Redelivered,
    /// The delivery tag.
    DeliveryTag,
    /// A basic property by its AMQP name; empty when absent.
    Property(&'static str),
    /// A header; empty when absent.
    Header(String),
}

/// A parsed `--format` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The pieces, in order.
    parts: Vec<Part>,
}

impl Template {
    /// Parse; the error names the bad placeholder and lists the known ones.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => lit.push('\n'),
                    Some('t') => lit.push('\t'),
                    Some('r') => lit.push('\r'),
                    Some('0') => lit.push('\0'),
                    Some('\\') => lit.push('\\'),
                    Some(other) => {
                        lit.push('\\');
                        lit.push(other);
                    }
                    None => lit.push('\\'),
                },
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    lit.push('}');
                }
                '}' => {
                    return Err(format!(
                        "invalid --format '{text}': a lone '}}' (write '}}}}' for a literal brace)"
                    ));
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => {
                                return Err(format!(
                                    "invalid --format '{text}': '{{{name}' is not closed (write '{{{{' for a literal brace)"
                                ));
                            }
                        }
                    }
                    if !lit.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut lit)));
                    }
                    parts.push(placeholder(&name).ok_or_else(|| {
                        format!(
                            "invalid --format '{text}': unknown placeholder {{{name}}}; known: {}, {{headers.NAME}}, {{properties.NAME}}",
                            PLACEHOLDERS
                                .iter()
                                .map(|p| format!("{{{p}}}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })?);
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Literal(lit));
        }
        Ok(Template { parts })
    }

    /// Render one message (no newline added).
    pub fn render(&self, msg: &Message, delivery_tag: u64, out: &mut Vec<u8>) {
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.extend_from_slice(s.as_bytes()),
                Part::Body => out.extend_from_slice(&msg.body),
                Part::BodyBase64 => out.extend_from_slice(
                    base64::engine::general_purpose::STANDARD
                        .encode(&msg.body)
                        .as_bytes(),
                ),
                Part::RoutingKey => out.extend_from_slice(msg.routing_key.as_bytes()),
                Part::Exchange => out.extend_from_slice(msg.exchange.as_bytes()),
                Part::Redelivered => out.extend_from_slice(msg.redelivered.to_string().as_bytes()),
                Part::DeliveryTag => out.extend_from_slice(delivery_tag.to_string().as_bytes()),
                Part::Property(name) => {
                    out.extend_from_slice(property(&msg.properties, name).as_bytes());
                }
                Part::Header(name) => {
                    if let Some(v) = msg.properties.headers.as_ref().and_then(|h| h.get(name)) {
                        out.extend_from_slice(header_text(v).as_bytes());
                    }
                }
            }
        }
    }
}

fn placeholder(name: &str) -> Option<Part> {
    if let Some(h) = name.strip_prefix("headers.") {
        return (!h.is_empty()).then(|| Part::Header(h.to_string()));
    }
    let prop = name.strip_prefix("properties.").unwrap_or(name);
    if let Some(p) = PROPERTIES.iter().find(|p| **p == prop) {
        return Some(Part::Property(p));
    }
    if name.starts_with("properties.") {
        return None;
    }
    Some(match name {
        "body" => Part::Body,
        "body_base64" => Part::BodyBase64,
        "routing_key" => Part::RoutingKey,
        "exchange" => Part::Exchange,
        "redelivered" => Part::Redelivered,
        "delivery_tag" => Part::DeliveryTag,
        _ => return None,
    })
}

fn property(p: &Properties, name: &str) -> String {
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    let n = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
    match name {
        "content_type" => s(&p.content_type),
        "content_encoding" => s(&p.content_encoding),
        "delivery_mode" => n(p.delivery_mode.map(u64::from)),
        "priority" => n(p.priority.map(u64::from)),
        "correlation_id" => s(&p.correlation_id),
        "reply_to" => s(&p.reply_to),
        "expiration" => s(&p.expiration),
        "message_id" => s(&p.message_id),
        "timestamp" => n(p.timestamp),
        "type" => s(&p.kind),
        "user_id" => s(&p.user_id),
        "app_id" => s(&p.app_id),
        "cluster_id" => s(&p.cluster_id),
        _ => String::new(),
    }
}

/// A header as text: strings bare, typed values (`{"$type":..,"value":..}`) by their
/// value, anything else as JSON.
fn header_text(v: &Value) -> String {
    if let Value::Object(o) = v
        && o.contains_key("$type")
        && let Some(inner) = o.get("value")
    {
        return header_text(inner);
    }
    Properties::header_text(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &str, msg: &Message) -> String {
        let mut out = Vec::new();
        Template::parse(t).unwrap().render(msg, 7, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn placeholders_escapes_and_braces() {
        let mut headers = serde_json::Map::new();
        headers.insert("tenant".into(), "acme".into());
        headers.insert("n".into(), serde_json::json!({"$type": "i32", "value": 3}));
        let msg = Message {
            exchange: "x".into(),
            routing_key: "k.1".into(),
            redelivered: true,
            properties: Properties {
                headers: Some(headers),
                correlation_id: Some("c".into()),
                kind: Some("t".into()),
                ..Properties::default()
            },
            body: b"hi".to_vec(),
        };
        assert_eq!(
            render(
                "{{{routing_key}}}\\t{body}|{headers.tenant}|{headers.n}|{headers.none}|{properties.correlation_id}{type}|{delivery_tag}|{redelivered}|{body_base64}\\n",
                &msg
            ),
            "{k.1}\thi|acme|3||ct|7|true|aGk=\n"
        );
        let err = Template::parse("{bdy}").unwrap_err();
        assert!(
            err.contains("{bdy}") && err.contains("{routing_key}"),
            "{err}"
        );
        assert!(Template::parse("{properties.nope}").is_err());
        assert!(Template::parse("{body").is_err());
        assert!(Template::parse("a}b").is_err());
    }
}
