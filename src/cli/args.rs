//! Arguments shared by several subcommands, and their conversion to plain config.

use crate::client::{DeclareMode, Properties, QueueSpec, value_from_json};
use crate::exit::{self, coded};
use clap::Args;
use serde_json::{Map, Value};

/// How the queue a command uses is declared.
#[derive(Debug, Args)]
pub(crate) struct QueueArgs {
    /// Create the queue durable (survives a broker restart) if it does not exist.
    #[arg(long)]
    pub(crate) durable: bool,
    /// Queue arguments as a JSON object, e.g. '{"x-queue-type":"quorum","x-message-ttl":60000}'.
    #[arg(long, value_name = "JSON")]
    pub(crate) arguments: Option<String>,
    /// Only check that the queue exists (error if not); never create it.
    #[arg(long, conflicts_with = "no_declare")]
    pub(crate) passive: bool,
    /// Do not declare or check the queue at all.
    #[arg(long)]
    pub(crate) no_declare: bool,
}

impl QueueArgs {
    /// The queue spec and declare mode for `name`.
    pub(crate) fn spec(&self, name: &str) -> anyhow::Result<(QueueSpec, DeclareMode)> {
        let spec = QueueSpec {
            name: name.to_string(),
            durable: self.durable,
            arguments: json_object("--arguments", self.arguments.as_deref())?,
            ..QueueSpec::default()
        };
        let mode = if self.passive {
            DeclareMode::Passive
        } else if self.no_declare {
            DeclareMode::Skip
        } else {
            DeclareMode::Ensure
        };
        Ok((spec, mode))
    }
}

/// How a stream of received messages is printed or saved (`receive`, `tail`).
#[derive(Debug, Args)]
pub(crate) struct MessageOutArgs {
    /// Print each message through a template instead of --output: {body}, {routing_key},
    /// {exchange}, {redelivered}, {delivery_tag}, {headers.NAME}, {properties.NAME} (or the
    /// bare property name: {correlation_id}, {type}, ...), {body_base64}; \n and \t escapes,
    /// {{ and }} for braces. A newline follows each message.
    #[arg(long, short = 'f', value_name = "TEMPLATE")]
    pub(crate) format: Option<String>,
    /// Save each message as DIR/NNNNNN.body (its bytes) and DIR/NNNNNN.json (the lossless
    /// JSON-lines object) instead of printing it; `send --replay-dir DIR` sends them again.
    #[arg(long, value_name = "DIR", conflicts_with = "format")]
    pub(crate) save_dir: Option<std::path::PathBuf>,
}

impl MessageOutArgs {
    /// Where messages go; a bad template or an unusable directory fails before connecting.
    pub(crate) fn sink(&self, out: &crate::output::Output) -> anyhow::Result<super::stream::Sink> {
        Ok(match &self.save_dir {
            Some(dir) => super::stream::Sink::Save(crate::output::SaveDir::open(dir)?),
            None => super::stream::Sink::Print(out.message_format(self.format.as_deref())?),
        })
    }
}

/// When a consuming command stops (`receive`, `tail`).
#[derive(Debug, Args)]
pub(crate) struct EndArgs {
    /// Stop after N messages.
    #[arg(long, short = 'n', value_name = "N")]
    pub(crate) count: Option<u64>,
    /// Give up after this many seconds overall.
    #[arg(long, value_parser = parse_secs, value_name = "SECS")]
    pub(crate) timeout: Option<std::time::Duration>,
    /// Give up after this many seconds without a message.
    #[arg(long, value_parser = parse_secs, value_name = "SECS")]
    pub(crate) idle_timeout: Option<std::time::Duration>,
}

/// Message properties (AMQP basic properties) shared by `send` and `emit-log`.
#[derive(Debug, Args)]
pub(crate) struct PropertyArgs {
    /// A header, KEY=VALUE (a string) or KEY:=JSON (typed: 5, true, {"$type":"i32","value":5}); repeatable.
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE")]
    pub(crate) headers: Vec<String>,
    /// Mark messages persistent (delivery_mode 2): durable queues keep them across restarts.
    #[arg(long)]
    pub(crate) persistent: bool,
    /// content_type property (MIME type), e.g. application/json.
    #[arg(long, value_name = "MIME")]
    pub(crate) content_type: Option<String>,
    /// content_encoding property, e.g. gzip.
    #[arg(long, value_name = "ENCODING")]
    pub(crate) content_encoding: Option<String>,
    /// correlation_id property (pairs RPC replies with requests).
    #[arg(long, value_name = "ID")]
    pub(crate) correlation_id: Option<String>,
    /// reply_to property (queue for the reply).
    #[arg(long, value_name = "QUEUE")]
    pub(crate) reply_to: Option<String>,
    /// Per-message TTL in milliseconds.
    #[arg(long, value_name = "MS")]
    pub(crate) expiration: Option<u64>,
    /// Priority 0–9 (for queues with x-max-priority).
    #[arg(long, value_name = "N")]
    pub(crate) priority: Option<u8>,
    /// message_id property.
    #[arg(long, value_name = "ID")]
    pub(crate) message_id: Option<String>,
    /// app_id property.
    #[arg(long, value_name = "NAME")]
    pub(crate) app_id: Option<String>,
    /// user_id property (RabbitMQ checks it equals the connection's user).
    #[arg(long, value_name = "USER")]
    pub(crate) user_id: Option<String>,
    /// timestamp property, in seconds since the Unix epoch ("now" for the current time).
    #[arg(long, value_name = "SECS|now")]
    pub(crate) timestamp: Option<String>,
}

impl PropertyArgs {
    /// Plain properties; a malformed header or timestamp is a data error (exit 65).
    pub(crate) fn properties(&self, kind: Option<String>) -> anyhow::Result<Properties> {
        let timestamp = match self.timestamp.as_deref() {
            None => None,
            Some("now") => Some(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default(),
            ),
            Some(s) => Some(s.parse::<u64>().map_err(|_| {
                coded(
                    exit::DATA_ERR,
                    format!(
                        "invalid --timestamp '{s}': expected seconds since the epoch, or 'now'"
                    ),
                )
            })?),
        };
        Ok(Properties {
            content_type: self.content_type.clone(),
            content_encoding: self.content_encoding.clone(),
            headers: parse_headers(&self.headers)?,
            delivery_mode: self.persistent.then_some(2),
            priority: self.priority,
            correlation_id: self.correlation_id.clone(),
            reply_to: self.reply_to.clone(),
            expiration: self.expiration.map(|ms| ms.to_string()),
            message_id: self.message_id.clone(),
            timestamp,
            kind,
            user_id: self.user_id.clone(),
            app_id: self.app_id.clone(),
            cluster_id: None,
        })
    }
}

/// `KEY=VALUE` (string) or `KEY:=JSON` (typed) pairs as a header table; `None` if empty.
pub(crate) fn parse_headers(items: &[String]) -> anyhow::Result<Option<Map<String, Value>>> {
    if items.is_empty() {
        return Ok(None);
    }
    let mut map = Map::new();
    for item in items {
        let bad = |why: &str| {
            coded(
                exit::DATA_ERR,
                format!("invalid header '{item}': {why} (expected KEY=VALUE or KEY:=JSON)"),
            )
        };
        let (key, value) = item.split_once('=').ok_or_else(|| bad("no '='"))?;
        let (key, value) = match key.strip_suffix(':') {
            Some(k) => {
                let v: Value =
                    serde_json::from_str(value).map_err(|e| bad(&format!("bad JSON: {e}")))?;
                value_from_json(&v).map_err(|e| bad(&format!("{e:#}")))?;
                (k, v)
            }
            None => (key, Value::String(value.to_string())),
        };
        if key.is_empty() {
            return Err(bad("empty key"));
        }
        map.insert(key.to_string(), value);
    }
    Ok(Some(map))
}

/// A JSON object argument (`--arguments`), empty when absent.
pub(crate) fn json_object(flag: &str, text: Option<&str>) -> anyhow::Result<Map<String, Value>> {
    let Some(text) = text else {
        return Ok(Map::new());
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => {
            value_from_json(&Value::Object(m.clone()))
                .map_err(|e| coded(exit::DATA_ERR, format!("invalid {flag}: {e:#}")))?;
            Ok(m)
        }
        Ok(_) => Err(coded(
            exit::DATA_ERR,
            format!(
                "invalid {flag} '{text}': expected a JSON object like '{{\"x-message-ttl\":60000}}'"
            ),
        )),
        Err(e) => Err(coded(
            exit::DATA_ERR,
            format!("invalid {flag} '{text}': {e}"),
        )),
    }
}

/// Seconds (fractions allowed) as a duration, for clap.
pub(crate) fn parse_secs(s: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !(0.0..=1e9).contains(&secs) {
        return Err(format!("'{s}' is out of range"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse() {
        let h = parse_headers(&["a=b=c".into(), "n:=5".into()])
            .unwrap()
            .unwrap();
        assert_eq!(h["a"], Value::String("b=c".into()));
        assert_eq!(h["n"], serde_json::json!(5));
        assert!(parse_headers(&["nope".into()]).is_err());
        assert!(parse_headers(&["=x".into()]).is_err());
        assert!(parse_headers(&["n:={".into()]).is_err());
    }
}
