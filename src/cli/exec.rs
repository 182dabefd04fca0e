//! Running a command for a message: body on stdin, properties in `RMQ_*` variables.

use crate::client::{Message, Properties};
use anyhow::Context;
use std::process::{ExitStatus, Stdio};
use tokio::io::AsyncWriteExt;

/// What came back from the command.
pub(crate) struct Outcome {
    /// Its exit status.
    pub(crate) status: ExitStatus,
    /// Its stdout, when captured (rpc-serve's reply).
    pub(crate) stdout: Vec<u8>,
}

/// Run `sh -c CMD` with the message; stdout is captured or inherited.
pub(crate) async fn run(
    cmd: &str,
    queue: &str,
    tag: u64,
    msg: &Message,
    capture: bool,
) -> anyhow::Result<Outcome> {
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(if capture {
            Stdio::piped()
        } else {
            Stdio::inherit()
        })
        .stderr(Stdio::inherit())
        // Ctrl-C or an error in rmq must not leave commands running unsupervised.
        .kill_on_drop(true);
    for (k, v) in env(queue, tag, msg) {
        command.env(k, v);
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run `{cmd}`"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let body = msg.body.clone();
        // A command that ignores its stdin closes the pipe early: not an error.
        tokio::spawn(async move {
            let _ = stdin.write_all(&body).await;
        });
    }
    let out = child
        .wait_with_output()
        .await
        .with_context(|| format!("cannot wait for `{cmd}`"))?;
    Ok(Outcome {
        status: out.status,
        stdout: out.stdout,
    })
}

/// The variables a command sees: `RMQ_ROUTING_KEY`, `RMQ_CORRELATION_ID`, `RMQ_HEADER_<NAME>`…
pub(crate) fn env(queue: &str, tag: u64, msg: &Message) -> Vec<(String, String)> {
    let p = &msg.properties;
    let mut vars: Vec<(String, String)> = vec![
        ("RMQ_QUEUE".into(), queue.to_string()),
        ("RMQ_EXCHANGE".into(), msg.exchange.clone()),
        ("RMQ_ROUTING_KEY".into(), msg.routing_key.clone()),
        ("RMQ_REDELIVERED".into(), msg.redelivered.to_string()),
        ("RMQ_DELIVERY_TAG".into(), tag.to_string()),
    ];
    let mut opt = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            vars.push((k.to_string(), v));
        }
    };
    opt("RMQ_CONTENT_TYPE", p.content_type.clone());
    opt("RMQ_CONTENT_ENCODING", p.content_encoding.clone());
    opt("RMQ_DELIVERY_MODE", p.delivery_mode.map(|v| v.to_string()));
    opt("RMQ_PRIORITY", p.priority.map(|v| v.to_string()));
    opt("RMQ_CORRELATION_ID", p.correlation_id.clone());
    opt("RMQ_REPLY_TO", p.reply_to.clone());
    opt("RMQ_EXPIRATION", p.expiration.clone());
    opt("RMQ_MESSAGE_ID", p.message_id.clone());
    opt("RMQ_TIMESTAMP", p.timestamp.map(|v| v.to_string()));
    opt("RMQ_TYPE", p.kind.clone());
    opt("RMQ_USER_ID", p.user_id.clone());
    opt("RMQ_APP_ID", p.app_id.clone());
    for (k, v) in p.headers.iter().flatten() {
        let name: String = k
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        vars.push((format!("RMQ_HEADER_{name}"), Properties::header_text(v)));
    }
    // The OS refuses NUL bytes in the environment; such a value cannot be passed.
    vars.retain(|(_, v)| !v.contains('\0'));
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_become_variables() {
        let mut headers = serde_json::Map::new();
        headers.insert("x-tenant.id".into(), serde_json::json!("acme"));
        let msg = Message {
            routing_key: "k".into(),
            properties: Properties {
                headers: Some(headers),
                correlation_id: Some("c".into()),
                ..Properties::default()
            },
            ..Message::default()
        };
        let vars = env("q", 7, &msg);
        assert!(vars.contains(&("RMQ_HEADER_X_TENANT_ID".into(), "acme".into())));
        assert!(vars.contains(&("RMQ_CORRELATION_ID".into(), "c".into())));
        assert!(vars.contains(&("RMQ_ROUTING_KEY".into(), "k".into())));
    }
}
