//! What the `list-*` commands share: the management API's address, rabbitmqctl's info
//! item names as columns (mapped onto the API's JSON fields), name filtering, sorting.

use super::Ctx;
use crate::client::{ApiConfig, api_list, api_port, api_segment, parse_url};
use clap::Args;
use serde_json::{Map, Value};

/// The flags of every `list-*` command.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Virtual host (default: the URL's).
    #[arg(long, short = 'p', value_name = "VHOST")]
    pub(crate) vhost: Option<String>,
    /// Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring.
    #[arg(long, value_name = "PATTERN")]
    pub(crate) name: Option<String>,
    /// Management API base URL (default: the broker URL's host, port ?api_port= of the URL or
    /// 15672, same credentials, checked to serve that broker).
    #[arg(long, env = "RMQ_API_URL", value_name = "URL")]
    pub(crate) api_url: Option<String>,
}

/// One kind of listing.
pub(crate) struct Kind {
    /// The API path under `/api/`; `{vhost}` is replaced by the encoded vhost.
    pub(crate) path: &'static str,
    /// rabbitmqctl column names that differ from the API's fields: (column, dotted path).
    pub(crate) aliases: &'static [(&'static str, &'static str)],
    /// Columns whose values, in order, sort the rows and make the name filter's subject
    /// (the first one).
    pub(crate) sort: &'static [&'static str],
}

/// The value of `column` in `item`: an alias's path, a dotted path, or a plain field.
fn value(item: &Map<String, Value>, column: &str, kind: &Kind) -> Value {
    if let Some((_, path)) = kind.aliases.iter().find(|(c, _)| *c == column) {
        if let Some(constant) = path.strip_prefix('=') {
            return Value::String(constant.to_string());
        }
        return lookup(item, path);
    }
    lookup(item, column)
}

fn lookup(item: &Map<String, Value>, path: &str) -> Value {
    if let Some(v) = item.get(path) {
        return v.clone();
    }
    let mut parts = path.split('.');
    let first = parts.next().and_then(|k| item.get(k));
    parts
        .try_fold(first, |v, k| Some(v?.get(k)))
        .flatten()
        .cloned()
        .unwrap_or(Value::Null)
}

/// Glob match with `*` and `?`; a pattern without wildcards matches as a substring.
pub(crate) fn name_matches(pattern: &str, name: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return name.contains(pattern);
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Classic two-pointer glob with backtracking to the last `*`.
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn sort_key(item: &Map<String, Value>, kind: &Kind) -> Vec<String> {
    kind.sort
        .iter()
        .map(|c| match value(item, c, kind) {
            Value::String(s) => s,
            other => other.to_string(),
        })
        .collect()
}

/// Fetch, filter, sort and print a listing.
pub(crate) async fn run(
    ctx: &Ctx,
    args: &ListArgs,
    kind: &Kind,
    columns: &[String],
) -> anyhow::Result<()> {
    let (api, url_vhost) = api_config(ctx, args.api_url.clone())?;
    let vhost = args.vhost.clone().unwrap_or(url_vhost);
    let scoped = kind.path.contains("{vhost}");
    let mut path = kind.path.replace("{vhost}", &api_segment(&vhost));
    // Ask only for what is shown, sorted and filtered on (RabbitMQ honours `columns` too):
    // 10,000 queues with every field are megabytes of JSON.
    let mut wanted: Vec<String> = Vec::new();
    for c in columns
        .iter()
        .map(String::as_str)
        .chain(kind.sort.iter().copied())
        .chain(["vhost"])
    {
        let p = match kind.aliases.iter().find(|(a, _)| *a == c) {
            Some((_, p)) if p.starts_with('=') => continue,
            Some((_, p)) => p.to_string(),
            None => c.to_string(),
        };
        if !wanted.contains(&p) {
            wanted.push(p);
        }
    }
    let encoded: Vec<String> = wanted.iter().map(|c| api_segment(c)).collect();
    path.push_str(&format!("?columns={}", encoded.join(",")));
    let mut items = api_list(&api, &path, scoped.then_some(vhost.as_str())).await?;
    // Connection listings are broker-wide; an explicit --vhost narrows them.
    if let (false, Some(v)) = (scoped, &args.vhost) {
        items.retain(|i| i.get("vhost").and_then(Value::as_str) == Some(v.as_str()));
    }
    if let Some(pattern) = &args.name {
        let subject = kind.sort.first().copied().unwrap_or("name");
        items.retain(|i| match value(i, subject, kind) {
            Value::String(s) => name_matches(pattern, &s),
            _ => false,
        });
    }
    items.sort_by_cached_key(|i| sort_key(i, kind));
    let rows: Vec<Vec<Value>> = items
        .iter()
        .map(|i| columns.iter().map(|c| value(i, c, kind)).collect())
        .collect();
    ctx.out.rows(columns, &rows)?;
    Ok(())
}

/// The management API URL from `--api-url`'s fallbacks: `RMQ_API_URL` or the profile.
pub(crate) fn profile_api_url(ctx: &Ctx) -> Option<String> {
    ctx.settings.api_url.as_ref().map(|s| s.value.clone())
}

/// The management API to talk to (`--api-url`, else `RMQ_API_URL` or the profile's, else
/// the broker URL's host on its `?api_port=` or 15672, with its credentials, checked to
/// serve that broker) and the broker URL's vhost.
pub(crate) fn api_config(ctx: &Ctx, flag: Option<String>) -> anyhow::Result<(ApiConfig, String)> {
    let uri = parse_url(&ctx.connect.url)?;
    let api = ApiConfig::from_amqp(
        &uri,
        flag.or_else(|| profile_api_url(ctx)),
        api_port(&ctx.connect.url)?,
        ctx.connect.tls.clone(),
    );
    Ok((api, uri.vhost))
}

#[cfg(test)]
mod tests {
    use super::name_matches;

    #[test]
    fn globs_and_substrings() {
        assert!(name_matches("orders", "eu.orders.v1"));
        assert!(name_matches("eu.*", "eu.orders"));
        assert!(!name_matches("eu.*", "us.orders"));
        assert!(name_matches("q?", "q1"));
        assert!(name_matches("*a*b", "xxaxxb"));
    }
}
