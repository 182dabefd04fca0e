//! What every list endpoint shares (rabbit_mgmt_util): `name`/`use_regex` filtering and
//! `page`/`page_size` paging (with RabbitMQ's envelope and errors), `sort`/`sort_reverse`,
//! and `columns` selection, applied to the JSON objects an endpoint built.

use super::error::ApiError;
use serde_json::{Map, Value, json};
use std::cmp::Ordering;
use std::collections::HashMap;

/// RabbitMQ refuses larger pages.
const MAX_PAGE_SIZE: u64 = 500;
/// RabbitMQ's default `page_size`.
const DEFAULT_PAGE_SIZE: u64 = 100;

/// The value at a dotted path (`message_stats.publish_details.rate`).
fn path<'a>(v: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(v, |v, k| v.get(k))
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&y.as_f64().unwrap_or(0.0))
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (x, y) => x.map(Value::to_string).cmp(&y.map(Value::to_string)),
    }
}

/// Keep only `columns` (dotted paths keep their nesting).
fn select(item: &Value, columns: &[&str]) -> Value {
    let mut out = Map::new();
    for c in columns {
        let Some(v) = path(item, c) else { continue };
        let mut keys = c.split('.').peekable();
        let mut at = &mut out;
        while let Some(k) = keys.next() {
            if keys.peek().is_none() {
                at.insert(k.to_string(), v.clone());
            } else {
                let next = at
                    .entry(k.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !next.is_object() {
                    *next = Value::Object(Map::new());
                }
                at = next.as_object_mut().expect("made an object above");
            }
        }
    }
    Value::Object(out)
}

fn param_u64(q: &HashMap<String, String>, k: &str) -> Result<Option<u64>, ()> {
    match q.get(k) {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| ()),
    }
}

/// Whether the answer needs `field`: no `columns` (everything), a column inside it, or
/// a `sort` by it.
pub(crate) fn wants(q: &HashMap<String, String>, field: &str) -> bool {
    let inside = |c: &str| c == field || c.starts_with(&format!("{field}."));
    match q.get("columns") {
        None => true,
        Some(cols) => cols.split(',').any(inside) || q.get("sort").is_some_and(|s| inside(s)),
    }
}

/// Apply the query to `items` (already in the endpoint's default order) and build the
/// answer: a plain list, or RabbitMQ's paging envelope when `page` is given.
pub(crate) fn respond(
    mut items: Vec<Value>,
    q: &HashMap<String, String>,
) -> Result<Value, ApiError> {
    if let Some(key) = q.get("sort").filter(|s| !s.is_empty()) {
        items.sort_by(|a, b| compare(path(a, key), path(b, key)));
    }
    if q.get("sort_reverse").is_some_and(|v| v == "true") {
        items.reverse();
    }
    let columns: Option<Vec<&str>> = q
        .get("columns")
        .map(|c| c.split(',').filter(|s| !s.is_empty()).collect());
    let shape = |items: Vec<Value>| -> Vec<Value> {
        match &columns {
            Some(cols) => items.iter().map(|i| select(i, cols)).collect(),
            None => items,
        }
    };
    let page = param_u64(q, "page");
    let page_size = param_u64(q, "page_size");
    let bad_paging = || {
        ApiError::new(
            400,
            "invalid_pagination_parameters",
            format!(
                "Invalid pagination parameters: page number {}, page size {}",
                q.get("page").map_or("undefined", String::as_str),
                q.get("page_size").map_or("undefined", String::as_str)
            ),
        )
    };
    let (Ok(page), Ok(page_size)) = (page, page_size) else {
        return Err(bad_paging());
    };
    let Some(page) = page else {
        return Ok(Value::Array(shape(items)));
    };
    let page_size = page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if page == 0 || page_size == 0 || page_size > MAX_PAGE_SIZE {
        return Err(bad_paging());
    }
    let total = items.len();
    if let Some(name) = q.get("name").filter(|n| !n.is_empty()) {
        if q.get("use_regex").is_some_and(|v| v == "true") {
            return Err(ApiError::new(
                400,
                "bad_request",
                "use_regex=true is not supported by rmq serve; use a plain name fragment",
            ));
        }
        // RabbitMQ matches the fragment anywhere in the name, ignoring case.
        let needle = name.to_lowercase();
        items.retain(|i| {
            i.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.to_lowercase().contains(&needle))
        });
    }
    let filtered = items.len() as u64;
    let page_count = filtered.div_ceil(page_size);
    if page > page_count.max(1) {
        return Err(ApiError::new(
            400,
            "page_out_of_range",
            format!("Page out of range, page: {page} page size: {page_size}, len: {filtered}"),
        ));
    }
    let start = ((page - 1) * page_size) as usize;
    let chunk: Vec<Value> = items
        .into_iter()
        .skip(start)
        .take(page_size as usize)
        .collect();
    Ok(json!({
        "filtered_count": filtered,
        "item_count": chunk.len(),
        "items": shape(chunk),
        "page": page,
        "page_count": page_count,
        "page_size": page_size,
        "total_count": total,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn pages_filter_sort_and_select() {
        let items: Vec<Value> = (0..5)
            .map(|i| json!({"name": format!("q{i}"), "messages": 5 - i, "x": {"y": i}}))
            .collect();
        let v = respond(
            items.clone(),
            &q(&[("page", "2"), ("page_size", "2"), ("sort", "messages")]),
        )
        .unwrap();
        assert_eq!(v["page_count"], 3);
        assert_eq!(v["total_count"], 5);
        assert_eq!(v["items"][0]["name"], "q2");
        let v = respond(items.clone(), &q(&[("columns", "name,x.y")])).unwrap();
        assert_eq!(v[1], json!({"name": "q1", "x": {"y": 1}}));
        assert_eq!(
            respond(items, &q(&[("page", "9")])).unwrap_err().status,
            400
        );
    }
}
