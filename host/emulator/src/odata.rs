//! OData query options as Graph reads them: `$select`, `$top`, `$count`, `$filter` and
//! `$orderby` on `createdDateTime`, and the opaque `$skiptoken` of next links.
//!
//! Graph is strict about queries and the connector must cope with that strictness, so the
//! emulator refuses what Graph refuses (unknown options, repeated options, page sizes out of
//! range, filters it cannot evaluate) with Graph's error codes. Skip tokens are opaque to
//! clients but carry a fingerprint of the query that minted them: a next link followed with a
//! different query is refused instead of silently returning the wrong page.

use std::ops::Bound;

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::clock::{parse_iso, Stamp};
use crate::generate::fnv1a;
use crate::reply::GraphError;

/// Characters escaped in query values of the links the emulator writes.
const QUERY_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'[')
    .add(b']');

/// Percent-encodes a query value for a link.
pub(crate) fn encode_value(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// The query options of one request, decoded, in the order they were sent.
#[derive(Clone, Debug, Default)]
pub(crate) struct QueryOptions {
    /// (lower-case name, name as sent, decoded value).
    options: Vec<(String, String, String)>,
}

impl QueryOptions {
    /// Decodes a raw query string and refuses options the endpoint does not know (400
    /// `BadRequest`) and options given twice. `allowed` holds lower-case names with their `$`.
    pub(crate) fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<QueryOptions, GraphError> {
        let mut options: Vec<(String, String, String)> = Vec::new();
        for (name, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if name.is_empty() {
                continue;
            }
            let lower = name.to_ascii_lowercase();
            if !allowed.contains(&lower.as_str()) {
                return Err(GraphError::bad_request(format!(
                    "Unrecognized query argument specified: '{name}'."
                )));
            }
            if options.iter().any(|(l, _, _)| *l == lower) {
                return Err(GraphError::bad_request(format!(
                    "Query option '{name}' was specified more than once, but it must be specified at most once."
                )));
            }
            options.push((lower, name.into_owned(), value.into_owned()));
        }
        Ok(QueryOptions { options })
    }

    /// The value of an option by lower-case name (with its `$`).
    pub(crate) fn get(&self, lower: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(l, _, _)| l == lower)
            .map(|(_, _, v)| v.as_str())
    }

    /// The lower-case names of the options sent, in order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.options.iter().map(|(l, _, _)| l.as_str())
    }

    /// A short hash of everything but `$skiptoken`, tying a skip token to its query.
    pub(crate) fn fingerprint(&self, scope: &str) -> String {
        let mut parts: Vec<(&str, &str)> = self
            .options
            .iter()
            .filter(|(l, _, _)| l != "$skiptoken")
            .map(|(l, _, v)| (l.as_str(), v.as_str()))
            .collect();
        parts.sort();
        let mut text = scope.to_owned();
        for (name, value) in parts {
            text.push('\u{1f}');
            text.push_str(name);
            text.push('=');
            text.push_str(value);
        }
        format!("{:016x}", fnv1a(text.as_bytes()))
    }

    /// The options except `$skiptoken`, re-encoded for a next link (`$select=…&$top=…`).
    pub(crate) fn link_query(&self) -> String {
        self.options
            .iter()
            .filter(|(l, _, _)| l != "$skiptoken")
            .map(|(_, name, value)| format!("{name}={}", encode_value(value)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// A next link: `base` + `path`, this query without its skip token, and `token`.
    pub(crate) fn next_link(&self, base: &str, path: &str, token: &str) -> String {
        let query = self.link_query();
        let separator = if query.is_empty() { "" } else { "&" };
        format!("{base}{path}?{query}{separator}$skiptoken={token}")
    }

    /// The options of a delta query on `resource` (`users`, `groups`): `$select` and the
    /// tokens; the options Graph documents as unsupported with delta are refused by name.
    pub(crate) fn for_delta(raw: Option<&str>, resource: &str) -> Result<QueryOptions, GraphError> {
        const REFUSED: [&str; 6] = [
            "$top", "$orderby", "$expand", "$count", "$search", "$filter",
        ];
        let mut allowed = vec!["$select", "$skiptoken", "$deltatoken"];
        allowed.extend(REFUSED);
        let opts = QueryOptions::parse(raw, &allowed)?;
        if let Some(name) = opts.names().find(|n| REFUSED.contains(n)) {
            return Err(GraphError::unsupported_query(format!(
                "The query option '{name}' is not supported with delta queries on {resource}."
            )));
        }
        Ok(opts)
    }
}

/// Resolves a `$select` list against the properties of an entity type, case-insensitively,
/// into their canonical spelling. Unknown names are refused as Graph refuses them.
pub(crate) fn parse_select(
    value: &str,
    known: &[&'static str],
    entity: &str,
) -> Result<Vec<&'static str>, GraphError> {
    let mut selected = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let canonical = known
            .iter()
            .find(|k| k.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                GraphError::bad_request(format!(
                    "Could not find a property named '{name}' on type 'microsoft.graph.{entity}'."
                ))
            })?;
        if !selected.contains(canonical) {
            selected.push(*canonical);
        }
    }
    if selected.is_empty() {
        return Err(GraphError::bad_request(
            "The query specified in the URI is not valid: $select is empty.",
        ));
    }
    Ok(selected)
}

/// A `$select` list for objects of mixed types (directory objects): names as sent.
pub(crate) fn parse_free_select(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Reads `$top`: `default` when absent, else an integer in `1..=max`.
pub(crate) fn parse_top(
    value: Option<&str>,
    max: usize,
    default: usize,
) -> Result<usize, GraphError> {
    let Some(text) = value else {
        return Ok(default);
    };
    let top: usize = text.trim().parse().map_err(|_| {
        GraphError::bad_request(format!(
            "Invalid value '{text}' for query option '$top': expected a positive integer."
        ))
    })?;
    if top == 0 || top > max {
        return Err(GraphError::unsupported_query(format!(
            "Invalid page size specified: '{top}'. Must be between 1 and {max} inclusive."
        )));
    }
    Ok(top)
}

/// Reads `$count`: `true` or `false` (any case); absent is `false`.
pub(crate) fn parse_count(value: Option<&str>) -> Result<bool, GraphError> {
    match value.map(str::trim) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(GraphError::bad_request(format!(
            "Invalid value '{v}' for query option '$count': expected true or false."
        ))),
    }
}

/// A `$filter` on `createdDateTime`: the range of creation times that match. Users with a
/// null `createdDateTime` never match.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CreatedFilter {
    /// Lower bound.
    pub low: Bound<Stamp>,
    /// Upper bound.
    pub high: Bound<Stamp>,
}

impl CreatedFilter {
    /// Whether a creation time matches.
    pub(crate) fn matches(&self, created: Option<Stamp>) -> bool {
        let Some(c) = created else {
            return false;
        };
        let above = match self.low {
            Bound::Included(l) => c >= l,
            Bound::Excluded(l) => c > l,
            Bound::Unbounded => true,
        };
        let below = match self.high {
            Bound::Included(h) => c <= h,
            Bound::Excluded(h) => c < h,
            Bound::Unbounded => true,
        };
        above && below
    }
}

/// Parses `createdDateTime ge 2023-01-01T00:00:00Z`, with `gt`, `ge`, `lt`, `le`, `eq`,
/// clauses joined by `and`. Other properties and operators are refused with
/// `Request_UnsupportedQuery`, malformed text with `BadRequest`.
pub(crate) fn parse_created_filter(text: &str) -> Result<CreatedFilter, GraphError> {
    let mut filter = CreatedFilter {
        low: Bound::Unbounded,
        high: Bound::Unbounded,
    };
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() {
        return Err(GraphError::bad_request(
            "Invalid filter clause: the filter is empty.",
        ));
    }
    for clause in words.split(|w| w.eq_ignore_ascii_case("and")) {
        let [property, operator, value] = clause else {
            return Err(GraphError::bad_request(format!(
                "Invalid filter clause: '{}'. Expected 'createdDateTime <op> <date-time>'.",
                clause.join(" ")
            )));
        };
        if !property.eq_ignore_ascii_case("createdDateTime") {
            return Err(GraphError::unsupported_query(format!(
                "Unsupported or invalid query filter clause specified for property '{property}' of resource 'User'."
            )));
        }
        let value = value.trim_matches('\'');
        let stamp = parse_iso(value).ok_or_else(|| {
            GraphError::bad_request(format!(
                "Invalid filter clause: '{value}' is not a valid DateTimeOffset."
            ))
        })?;
        let op = operator.to_ascii_lowercase();
        match op.as_str() {
            "ge" => filter.low = tighter_low(filter.low, Bound::Included(stamp)),
            "gt" => filter.low = tighter_low(filter.low, Bound::Excluded(stamp)),
            "le" => filter.high = tighter_high(filter.high, Bound::Included(stamp)),
            "lt" => filter.high = tighter_high(filter.high, Bound::Excluded(stamp)),
            "eq" => {
                filter.low = tighter_low(filter.low, Bound::Included(stamp));
                filter.high = tighter_high(filter.high, Bound::Included(stamp));
            }
            _ => {
                return Err(GraphError::unsupported_query(format!(
                    "Unsupported query operator '{operator}' for property 'createdDateTime'."
                )))
            }
        }
    }
    Ok(filter)
}

fn tighter_low(a: Bound<Stamp>, b: Bound<Stamp>) -> Bound<Stamp> {
    match (a, b) {
        (Bound::Unbounded, x) | (x, Bound::Unbounded) => x,
        (x, y) => {
            let (vx, vy) = (bound_value(x), bound_value(y));
            if vx > vy || (vx == vy && matches!(x, Bound::Excluded(_))) {
                x
            } else {
                y
            }
        }
    }
}

fn tighter_high(a: Bound<Stamp>, b: Bound<Stamp>) -> Bound<Stamp> {
    match (a, b) {
        (Bound::Unbounded, x) | (x, Bound::Unbounded) => x,
        (x, y) => {
            let (vx, vy) = (bound_value(x), bound_value(y));
            if vx < vy || (vx == vy && matches!(x, Bound::Excluded(_))) {
                x
            } else {
                y
            }
        }
    }
}

fn bound_value(b: Bound<Stamp>) -> Stamp {
    match b {
        Bound::Included(v) | Bound::Excluded(v) => v,
        Bound::Unbounded => (0, 0),
    }
}

/// The sort order of `$orderby=createdDateTime [asc|desc]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CreatedOrder {
    /// Oldest first; null creation times before every other.
    Ascending,
    /// Newest first; null creation times last.
    Descending,
}

/// Parses `$orderby`; only `createdDateTime` is sortable here.
pub(crate) fn parse_orderby(text: &str) -> Result<CreatedOrder, GraphError> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        [p] if p.eq_ignore_ascii_case("createdDateTime") => Ok(CreatedOrder::Ascending),
        [p, d] if p.eq_ignore_ascii_case("createdDateTime") && d.eq_ignore_ascii_case("asc") => {
            Ok(CreatedOrder::Ascending)
        }
        [p, d] if p.eq_ignore_ascii_case("createdDateTime") && d.eq_ignore_ascii_case("desc") => {
            Ok(CreatedOrder::Descending)
        }
        _ => Err(GraphError::unsupported_query(format!(
            "Sorting by '{text}' is not supported: order by 'createdDateTime' or 'createdDateTime desc'."
        ))),
    }
}

/// A literal of a `$filter` comparison.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Literal {
    /// `'text'` (with `''` for a quote).
    Str(String),
    /// `true` / `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// Anything else unquoted (numbers, dates).
    Other(String),
}

/// One `property eq value` or `property in (v1, v2, …)` clause.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Comparison {
    /// The property as written.
    pub property: String,
    /// One value for `eq`, the list for `in`.
    pub values: Vec<Literal>,
    /// Whether the clause used `in`.
    pub is_in: bool,
}

/// A `$filter` made of `eq`/`in` clauses, all joined by `and` or all by `or`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FilterExpr {
    /// true: clauses joined by `or`; false: by `and` (or a single clause).
    pub any: bool,
    /// The clauses, in order.
    pub clauses: Vec<Comparison>,
}

/// Most expressions an `in` (or a chain of `or`) may hold in a simple query. Source: Graph
/// known issues, <https://learn.microsoft.com/graph/known-issues> ("When using the in operator,
/// the request is limited to 15 expressions in the filter clause by default OR a URL length of
/// 2,048 characters when using advanced query capabilities").
pub(crate) const MAX_IN_EXPRESSIONS: usize = 15;
/// The URL length limit that replaces it in advanced queries (same source).
pub(crate) const MAX_ADVANCED_URL: usize = 2048;

impl FilterExpr {
    /// How many expressions the filter holds (each `eq`, each value of an `in`).
    pub(crate) fn expressions(&self) -> usize {
        self.clauses.iter().map(|c| c.values.len()).sum()
    }

    /// Refuses more than [`MAX_IN_EXPRESSIONS`] expressions in a simple query, and URLs longer
    /// than [`MAX_ADVANCED_URL`] in an advanced one (`advanced`: `ConsistencyLevel: eventual`
    /// and `$count=true` were sent). The error text is the emulator's own (the docs do not
    /// quote Graph's).
    pub(crate) fn check_in_limit(
        &self,
        advanced: bool,
        request: &crate::server::HttpRequest,
    ) -> Result<(), GraphError> {
        if advanced {
            let length = request.path.len() + request.query.as_deref().map_or(0, |q| q.len() + 1);
            if length > MAX_ADVANCED_URL {
                return Err(GraphError::unsupported_query(format!(
                    "The request URL is {length} characters long: advanced queries are limited to {MAX_ADVANCED_URL} characters."
                )));
            }
            return Ok(());
        }
        let count = self.expressions();
        if count > MAX_IN_EXPRESSIONS {
            return Err(GraphError::unsupported_query(format!(
                "Too many child clauses specified in search filter expression containing 'OR' operators: {count}. Max allowed: {MAX_IN_EXPRESSIONS}."
            )));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq)]
enum FilterToken {
    Word(String),
    Quoted(String),
    Open,
    Close,
    Comma,
}

fn filter_tokens(text: &str) -> Option<Vec<FilterToken>> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(FilterToken::Open);
            }
            ')' => {
                chars.next();
                tokens.push(FilterToken::Close);
            }
            ',' => {
                chars.next();
                tokens.push(FilterToken::Comma);
            }
            '\'' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next()? {
                        '\'' if chars.peek() == Some(&'\'') => {
                            chars.next();
                            value.push('\'');
                        }
                        '\'' => break,
                        other => value.push(other),
                    }
                }
                tokens.push(FilterToken::Quoted(value));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | ',' | '\'') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(FilterToken::Word(word));
            }
        }
    }
    Some(tokens)
}

fn filter_literal(token: &FilterToken) -> Option<Literal> {
    match token {
        FilterToken::Quoted(s) => Some(Literal::Str(s.clone())),
        FilterToken::Word(w) if w.eq_ignore_ascii_case("true") => Some(Literal::Bool(true)),
        FilterToken::Word(w) if w.eq_ignore_ascii_case("false") => Some(Literal::Bool(false)),
        FilterToken::Word(w) if w.eq_ignore_ascii_case("null") => Some(Literal::Null),
        FilterToken::Word(w) => Some(Literal::Other(w.clone())),
        _ => None,
    }
}

/// Parses a `$filter` of `eq`/`in` clauses joined by `and` or by `or` (not both). Anything
/// else — other operators, functions, lambdas, mixed joiners — is refused with 400
/// `Request_UnsupportedQuery`.
pub(crate) fn parse_filter(text: &str) -> Result<FilterExpr, GraphError> {
    let unsupported = || {
        GraphError::unsupported_query(format!(
            "Unsupported or invalid query filter clause specified: '{text}'. The emulator understands 'property eq value' and 'property in (value, …)' joined by 'and' or by 'or'."
        ))
    };
    let tokens = filter_tokens(text).ok_or_else(unsupported)?;
    let mut clauses = Vec::new();
    let mut joiner: Option<bool> = None;
    let mut i = 0;
    loop {
        let Some(FilterToken::Word(property)) = tokens.get(i) else {
            return Err(unsupported());
        };
        let Some(FilterToken::Word(op)) = tokens.get(i + 1) else {
            return Err(unsupported());
        };
        i += 2;
        if op.eq_ignore_ascii_case("eq") {
            let value = tokens
                .get(i)
                .and_then(filter_literal)
                .ok_or_else(unsupported)?;
            i += 1;
            clauses.push(Comparison {
                property: property.clone(),
                values: vec![value],
                is_in: false,
            });
        } else if op.eq_ignore_ascii_case("in") {
            if tokens.get(i) != Some(&FilterToken::Open) {
                return Err(unsupported());
            }
            i += 1;
            let mut values = Vec::new();
            loop {
                let value = tokens
                    .get(i)
                    .and_then(filter_literal)
                    .ok_or_else(unsupported)?;
                values.push(value);
                i += 1;
                match tokens.get(i) {
                    Some(FilterToken::Comma) => i += 1,
                    Some(FilterToken::Close) => {
                        i += 1;
                        break;
                    }
                    _ => return Err(unsupported()),
                }
            }
            clauses.push(Comparison {
                property: property.clone(),
                values,
                is_in: true,
            });
        } else {
            return Err(unsupported());
        }
        match tokens.get(i) {
            None => break,
            Some(FilterToken::Word(w))
                if w.eq_ignore_ascii_case("and") || w.eq_ignore_ascii_case("or") =>
            {
                let any = w.eq_ignore_ascii_case("or");
                if joiner.is_some_and(|j| j != any) {
                    return Err(unsupported());
                }
                joiner = Some(any);
                i += 1;
            }
            Some(_) => return Err(unsupported()),
        }
    }
    Ok(FilterExpr {
        any: joiner.unwrap_or(false),
        clauses,
    })
}

/// Encodes the fields of a continuation token as opaque URL-safe text.
pub(crate) fn encode_token(fields: &[String]) -> String {
    let mut text = String::from("emu1");
    for field in fields {
        text.push('\u{1f}');
        text.push_str(field);
    }
    let check = fnv1a(text.as_bytes());
    text.push('\u{1f}');
    text.push_str(&format!("{check:016x}"));
    base64url_encode(text.as_bytes())
}

/// Decodes a token made by [`encode_token`]; `None` when it was not made here or was altered.
pub(crate) fn decode_token(token: &str) -> Option<Vec<String>> {
    let bytes = base64url_decode(token.trim())?;
    let text = String::from_utf8(bytes).ok()?;
    let (body, check) = text.rsplit_once('\u{1f}')?;
    if format!("{:016x}", fnv1a(body.as_bytes())) != check {
        return None;
    }
    let mut fields = body.split('\u{1f}');
    if fields.next()? != "emu1" {
        return None;
    }
    Some(fields.map(str::to_owned).collect())
}

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(BASE64URL[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = BASE64URL.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_detect_tampering() {
        let fields = vec!["u".to_owned(), "abc".to_owned(), "k:12.5|7".to_owned()];
        let token = encode_token(&fields);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(decode_token(&token), Some(fields));
        let mut tampered = token.clone().into_bytes();
        tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            decode_token(&String::from_utf8(tampered).unwrap_or_default()),
            None
        );
        assert_eq!(decode_token("not a token!"), None);
    }

    #[test]
    fn filters_combine_into_one_range() {
        let f = parse_created_filter(
            "createdDateTime ge 2023-01-01T00:00:00Z and createdDateTime lt 2024-01-01",
        )
        .expect("valid filter");
        assert!(f.matches(parse_iso("2023-06-01T00:00:00Z")));
        assert!(f.matches(parse_iso("2023-01-01T00:00:00Z")));
        assert!(!f.matches(parse_iso("2024-01-01T00:00:00Z")));
        assert!(!f.matches(None));
        let gt = parse_created_filter("createdDateTime gt 2023-01-01T00:00:00Z").expect("valid");
        assert!(!gt.matches(parse_iso("2023-01-01T00:00:00Z")));
        assert_eq!(
            parse_created_filter("displayName eq 'x'")
                .map_err(|e| e.code)
                .err(),
            Some("Request_UnsupportedQuery")
        );
        assert_eq!(
            parse_created_filter("createdDateTime ge soon")
                .map_err(|e| e.code)
                .err(),
            Some("BadRequest")
        );
    }

    #[test]
    fn eq_and_in_filters_parse() {
        let f = parse_filter("id in ('a', 'b''c') or ID eq 'd'").expect("valid");
        assert!(f.any);
        assert_eq!(f.expressions(), 3);
        assert_eq!(f.clauses[0].values[1], Literal::Str("b'c".into()));
        assert!(f.clauses[0].is_in);
        let g = parse_filter("isBuiltIn eq false and displayName eq 'X'").expect("valid");
        assert!(!g.any);
        assert_eq!(g.clauses[0].values, vec![Literal::Bool(false)]);
        for bad in [
            "id eq 'a' and id eq 'b' or id eq 'c'",
            "startsWith(displayName,'a')",
            "id ne 'a'",
            "id in 'a'",
            "id eq",
            "id eq 'unterminated",
            "",
        ] {
            assert_eq!(
                parse_filter(bad).map_err(|e| e.code).err(),
                Some("Request_UnsupportedQuery"),
                "{bad}"
            );
        }
    }

    #[test]
    fn options_are_checked() {
        let opts =
            QueryOptions::parse(Some("$Select=id&$top=5"), &["$select", "$top"]).expect("ok");
        assert_eq!(opts.get("$select"), Some("id"));
        assert_eq!(opts.link_query(), "$Select=id&$top=5");
        assert!(QueryOptions::parse(Some("$expand=manager"), &["$select"]).is_err());
        assert!(QueryOptions::parse(Some("$top=1&$TOP=2"), &["$top"]).is_err());
        assert_eq!(
            parse_top(Some("1000"), 999, 100).map_err(|e| e.code).err(),
            Some("Request_UnsupportedQuery")
        );
        assert_eq!(parse_top(None, 999, 100).ok(), Some(100));
        assert_eq!(
            parse_select("ID,displayname", &["id", "displayName"], "user").ok(),
            Some(vec!["id", "displayName"])
        );
    }
}
