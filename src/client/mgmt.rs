//! The RabbitMQ management HTTP API (`/api/...`), for what AMQP cannot tell or do:
//! listings, the overview, and the operator's changes (users, vhosts, permissions,
//! policies, definitions, closing connections).

use super::tls::{TlsOptions, unused_config};
use crate::exit::{self, coded};
use anyhow::Context;
use lapin::uri::AMQPScheme;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// Where the management API is and who we are there.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Base URL, e.g. `http://127.0.0.1:15672` (no trailing `/api`).
    pub base: String,
    /// HTTP basic-auth user.
    pub user: String,
    /// HTTP basic-auth password.
    pub password: String,
    /// Whole-request limit: a listing must not hang a script.
    pub timeout: Duration,
    /// Certificates for an https:// base (the same as for amqps://).
    pub tls: TlsOptions,
    /// For an address rmq derived itself (not `--api-url`): the broker URL's AMQP port,
    /// which the API's `/api/overview` must list before anything else is asked.
    pub owner: Option<Owner>,
}

/// The AMQP port an API must serve, checked once per process (never cached on disk: the
/// broker behind a port can change between runs).
#[derive(Debug, Clone)]
pub struct Owner {
    /// The broker URL's port.
    pub port: u16,
    /// Set once the check passed.
    checked: Arc<tokio::sync::OnceCell<()>>,
}

impl ApiConfig {
    /// The default for an AMQP URI: same host, port `api_port` (the URL's `?api_port=`)
    /// else 15672, same credentials; https for amqps:// (as `rmq serve --tls-cert` serves
    /// it). A derived address must prove it belongs to the URL's broker; `base` (from
    /// `--api-url` and its fallbacks) is taken as given.
    pub fn from_amqp(
        uri: &lapin::uri::AMQPUri,
        base: Option<String>,
        api_port: Option<u16>,
        tls: TlsOptions,
    ) -> ApiConfig {
        let host = &uri.authority.host;
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let scheme = match uri.scheme {
            AMQPScheme::AMQP => "http",
            AMQPScheme::AMQPS => "https",
        };
        let owner = base.is_none().then(|| Owner {
            port: uri.authority.port,
            checked: Arc::default(),
        });
        let port = api_port.unwrap_or(15672);
        ApiConfig {
            base: base.unwrap_or_else(|| format!("{scheme}://{host}:{port}")),
            user: uri.authority.userinfo.username.clone(),
            password: uri.authority.userinfo.password.clone(),
            timeout: Duration::from_secs(10),
            tls,
            owner,
        }
    }
}

/// The `api_port` query parameter of a broker URL (`amqp://h:5673/%2F?api_port=15673`),
/// rmq's own addition: lapin ignores query parameters it does not know.
pub fn api_port(url: &str) -> anyhow::Result<Option<u16>> {
    let Some((_, query)) = url.split_once('?') else {
        return Ok(None);
    };
    let Some(value) = query.split('&').find_map(|kv| kv.strip_prefix("api_port=")) else {
        return Ok(None);
    };
    match value.parse::<u16>() {
        Ok(port) if port > 0 => Ok(Some(port)),
        _ => Err(coded(
            exit::DATA_ERR,
            format!(
                "malformed broker URL: api_port={value} is not a port (1-65535: the management API's port, e.g. ?api_port=15672)"
            ),
        )),
    }
}

/// Refuse an API that serves another broker: `rmq serve --port 0` next to a RabbitMQ on
/// 15672 would otherwise list RabbitMQ's queues. RabbitMQ's `/api/overview` names its
/// listeners (`{"protocol":"amqp","port":5672,..}`) for users with the `monitoring` or
/// `administrator` tag; without that list (or without an answer) there is nothing to judge.
async fn check_owner(api: &ApiConfig, owner: &Owner) -> anyhow::Result<()> {
    let reply = send(api, Method::Get, "overview", None, None).await?;
    if reply.status != 200 {
        return Ok(());
    }
    let amqp: Vec<u64> = reply
        .body
        .get("listeners")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|l| {
            l.get("protocol")
                .and_then(Value::as_str)
                .is_some_and(|p| p.starts_with("amqp"))
        })
        .filter_map(|l| l.get("port").and_then(Value::as_u64))
        .collect();
    if amqp.is_empty() || amqp.contains(&u64::from(owner.port)) {
        return Ok(());
    }
    let base = api.base.trim_end_matches('/');
    let ports: Vec<String> = amqp.iter().map(u64::to_string).collect();
    Err(coded(
        exit::CONFIG,
        format!(
            "the management API at {base} belongs to another broker (it serves AMQP on port {}, the broker URL names port {}): pass the right one with --api-url http://HOST:PORT or add ?api_port=PORT to the URL (`rmq serve` prints both)",
            ports.join(", "),
            owner.port
        ),
    ))
}

/// Percent-encode one path segment (a vhost `/` becomes `%2F`).
pub fn segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET /api/queues/{vhost}`: one JSON object per queue, with RabbitMQ's field names.
pub async fn list_queues(api: &ApiConfig, vhost: &str) -> anyhow::Result<Vec<Map<String, Value>>> {
    list(api, &format!("queues/{}", segment(vhost)), Some(vhost)).await
}

/// `GET /api/{path}` as a list of objects (a paged answer's `items` too). `vhost` names
/// the vhost in a 404's message when the path is vhost-scoped.
pub async fn list(
    api: &ApiConfig,
    path: &str,
    vhost: Option<&str>,
) -> anyhow::Result<Vec<Map<String, Value>>> {
    let base = api.base.trim_end_matches('/');
    let items = match get(api, path, vhost).await? {
        Value::Array(items) => items,
        // Paged answers wrap the list.
        Value::Object(mut o) => match o.remove("items") {
            Some(Value::Array(items)) => items,
            _ => return Err(unreachable(base, "unexpected JSON (no list)".into())),
        },
        _ => return Err(unreachable(base, "unexpected JSON (no list)".into())),
    };
    Ok(items
        .into_iter()
        .filter_map(|v| match v {
            Value::Object(o) => Some(o),
            _ => None,
        })
        .collect())
}

fn unreachable(base: &str, why: String) -> anyhow::Error {
    coded(
        exit::UNAVAILABLE,
        format!(
            "cannot reach the management API at {base}: {why} (is the plugin on? `rabbitmq-plugins enable rabbitmq_management`; or point --api-url / RMQ_API_URL at it)"
        ),
    )
}

/// `GET /api/{path}` as JSON, with the answers scripts need told apart: unreachable (69),
/// refused login (77), unknown vhost or object (1).
pub async fn get(api: &ApiConfig, path: &str, vhost: Option<&str>) -> anyhow::Result<Value> {
    let base = api.base.trim_end_matches('/');
    let reply = request(api, Method::Get, path, None, None).await?;
    match reply.status {
        200 => Ok(reply.body),
        404 => {
            let what = match vhost {
                Some(v) => format!("has no vhost '{v}'"),
                None => format!("has no /api/{path}"),
            };
            Err(coded(
                exit::FAILURE,
                format!("the management API at {base} {what} (404)"),
            ))
        }
        status => Err(unreachable(base, format!("HTTP {status}"))),
    }
}

/// The HTTP methods rmq uses on the management API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Read.
    Get,
    /// Create or replace (users, vhosts, permissions, policies).
    Put,
    /// Act (definitions import).
    Post,
    /// Remove (users, vhosts, policies, connections).
    Delete,
}

/// An answer the caller must judge: what a 404 or a 400 means depends on what was asked.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body (`Null` when empty or not JSON, as 201 and 204 answers are).
    pub body: Value,
}

impl Reply {
    /// The broker's reason for a refusal: RabbitMQ's `{"error","reason"}` body (its reason
    /// may be a term rendered as a list, and is HTML-escaped), else the status line.
    pub fn reason(&self) -> String {
        let text = match self.body.get("reason").or_else(|| self.body.get("error")) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => format!("HTTP {}", self.status),
        };
        let text = text
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&");
        // RabbitMQ's validation reasons run over lines ("Validation failed\n\n..."):
        // errors are one line.
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// `{method} /api/{path}` with an optional JSON body and `X-Reason` header (connection
/// closes). Unreachable (69), a refused login (77) and a derived address that serves
/// another broker (78) are errors here, whatever was asked; every other status is the
/// caller's to judge.
pub async fn request(
    api: &ApiConfig,
    method: Method,
    path: &str,
    body: Option<&Value>,
    reason: Option<&str>,
) -> anyhow::Result<Reply> {
    if let Some(owner) = &api.owner {
        owner
            .checked
            .get_or_try_init(|| check_owner(api, owner))
            .await?;
    }
    send(api, method, path, body, reason).await
}

/// One HTTP request, unchecked.
async fn send(
    api: &ApiConfig,
    method: Method,
    path: &str,
    body: Option<&Value>,
    reason: Option<&str>,
) -> anyhow::Result<Reply> {
    let base = api.base.trim_end_matches('/');
    let url = format!("{base}/api/{path}");
    // Always our rustls configuration: reqwest has no crypto provider of its own here.
    let tls = if url.starts_with("https://") {
        api.tls.client_config()?
    } else {
        unused_config()?
    };
    let client = reqwest::Client::builder()
        .timeout(api.timeout)
        .tls_backend_preconfigured(tls)
        .build()
        .context("cannot set up an HTTP client")?;
    let mut req = match method {
        Method::Get => client.get(&url),
        Method::Put => client.put(&url),
        Method::Post => client.post(&url),
        Method::Delete => client.delete(&url),
    }
    .basic_auth(&api.user, Some(&api.password));
    if let Some(body) = body {
        // RabbitMQ answers 415 to a body without this header.
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    if let Some(reason) = reason {
        req = req.header("x-reason", reason);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| unreachable(base, root_cause(&e)))?;
    let status = resp.status().as_u16();
    if status == 401 {
        return Err(coded(
            exit::NOPERM,
            format!(
                "the management API at {base} refused user '{}' (401: wrong password, or the user lacks the 'management' tag; users, vhosts, permissions and definitions need 'administrator')",
                api.user
            ),
        ));
    }
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| unreachable(base, format!("the answer was cut short ({e})")))?;
    let body = if bytes.is_empty() {
        Value::Null
    } else if status == 200 {
        serde_json::from_slice(&bytes)
            .map_err(|e| unreachable(base, format!("the answer is not JSON ({e})")))?
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    Ok(Reply { status, body })
}

/// reqwest's top-level message is "error sending request"; the cause says why.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn vhost_segments_are_encoded() {
        assert_eq!(super::segment("/"), "%2F");
        assert_eq!(super::segment("a b"), "a%20b");
    }
}
