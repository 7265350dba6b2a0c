//! `GET /v1.0/users`, `GET /v1.0/users/{id}` and `GET /v1.0/users/delta`.
//!
//! Listing users is the heart of every sync and where Graph's rules bite: `$select`
//! projections with nulls kept, page sizes capped at 999 (500 with `signInActivity`), the
//! licence check on `signInActivity`, the advanced-query rules for `$filter` + `$orderby` and
//! `$count`, `$filter` on `createdDateTime` or `id` (`eq`, `in`, at most 15 values in a simple
//! query), the Entra reports limits and `AuditLog.Read.All` on `signInActivity`, and next
//! links that must be followed verbatim. Delta adds full rounds, change rounds, `@removed`
//! entries, expiring tokens, pages of at most 200 (100 by default) and a short page now and
//! then. Pages are read from the directory's indexes,
//! so a page costs what it holds, not what the tenant holds.

use std::ops::Bound;

use serde_json::{json, Map, Value};

use crate::directory::{Change, CreatedKey, Directory, UserEntry};
use crate::graph::{collection, eventual};
use crate::odata::{
    decode_token, encode_token, parse_count, parse_created_filter, parse_filter, parse_orderby,
    parse_select, parse_top, CreatedFilter, CreatedOrder, Literal, QueryOptions,
};
use crate::reply::{GraphError, Reply};
use crate::server::{HttpRequest, Shared};

/// The properties of `microsoft.graph.user` that `$select` accepts: the v1.0 user resource's
/// properties (resources/user.md, "Properties").
pub(crate) const USER_PROPERTIES: &[&str] = &[
    "id",
    "aboutMe",
    "accountEnabled",
    "ageGroup",
    "assignedLicenses",
    "assignedPlans",
    "authorizationInfo",
    "birthday",
    "businessPhones",
    "city",
    "companyName",
    "consentProvidedForMinor",
    "country",
    "createdDateTime",
    "creationType",
    "customSecurityAttributes",
    "deletedDateTime",
    "department",
    "displayName",
    "employeeHireDate",
    "employeeId",
    "employeeLeaveDateTime",
    "employeeOrgData",
    "employeeType",
    "externalUserState",
    "externalUserStateChangeDateTime",
    "faxNumber",
    "givenName",
    "hireDate",
    "identities",
    "imAddresses",
    "interests",
    "isManagementRestricted",
    "isResourceAccount",
    "jobTitle",
    "lastPasswordChangeDateTime",
    "legalAgeGroupClassification",
    "licenseAssignmentStates",
    "mail",
    "mailboxSettings",
    "mailNickname",
    "mobilePhone",
    "mySite",
    "officeLocation",
    "onPremisesDistinguishedName",
    "onPremisesDomainName",
    "onPremisesExtensionAttributes",
    "onPremisesImmutableId",
    "onPremisesLastSyncDateTime",
    "onPremisesProvisioningErrors",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "onPremisesUserPrincipalName",
    "otherMails",
    "passwordPolicies",
    "passwordProfile",
    "pastProjects",
    "postalCode",
    "preferredDataLocation",
    "preferredLanguage",
    "preferredName",
    "provisionedPlans",
    "proxyAddresses",
    "responsibilities",
    "schools",
    "securityIdentifier",
    "serviceProvisioningErrors",
    "showInAddressList",
    "signInActivity",
    "signInSessionsValidFromDateTime",
    "skills",
    "state",
    "streetAddress",
    "surname",
    "usageLocation",
    "userPrincipalName",
    "userType",
];

/// What `/users` returns without `$select`. Source: user-list.md ("By default, only a limited
/// set of properties are returned (businessPhones, displayName, givenName, id, jobTitle, mail,
/// mobilePhone, officeLocation, preferredLanguage, surname, and userPrincipalName)").
pub(crate) const DEFAULT_SELECT: &[&str] = &[
    "id",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "userPrincipalName",
    "jobTitle",
    "officeLocation",
    "mobilePhone",
    "businessPhones",
    "preferredLanguage",
];

/// Default page size of `users/delta` and `groups/delta` (without a `Prefer: odata.maxpagesize`
/// header) and the most `Prefer: odata.maxpagesize` obtains (larger values are served as 200
/// and said so in `Preference-Applied`). Source: a Microsoft answer on delta page sizes,
/// <https://learn.microsoft.com/en-us/answers/a/2052165> ("The odata.maxpagesize maximum value
/// is: 200 for objects, such as users and contacts … And the same number is returned if
/// odata.maxpagesize is not set. Even if a higher value is specified, the API will cap the page
/// size to these limits"); the API pages (user-delta.md, group-delta.md) give no number.
/// `generous` honours up to 999.
pub(crate) const DELTA_PAGE_SIZE: usize = 200;
/// See [`DELTA_PAGE_SIZE`].
pub(crate) const DELTA_MAX_PAGE_SIZE: usize = 200;
/// Every this-many-th page of a delta round (by its number in the round, from 1) holds only
/// half its size, as Graph's pages do "if it is unable to gather and return" a full page before
/// its internal timeout (same answer; delta-query-overview.md: "The number of objects in each
/// page can vary"). Deterministic, so tests can rely on it; off when `generous`.
pub(crate) const SHORT_PAGE_EVERY: u64 = 5;

/// Permission needed to read `signInActivity` (resources/user.md, the note on the property:
/// it needs AuditLog.Read.All, added after microsoftgraph/microsoft-graph-docs#12764). The 403 Graph answers
/// without it is `Authentication_MSGraphPermissionMissing`, "Calling principal does not have
/// required MSGraph permissions AuditLog.Read.All" (microsoftgraph/microsoft-graph-explorer-v4#2731).
const SIGN_IN_PERMISSION: &str = "AuditLog.Read.All";

/// The page size a `Prefer: odata.maxpagesize=N` header obtains on a delta query, if it asks
/// for one: `(size, applied)`, where `applied` is what `Preference-Applied` reports.
pub(crate) fn delta_page_size(request: &HttpRequest, generous: bool) -> (usize, Option<usize>) {
    let asked = request
        .header("prefer")
        .and_then(|p| {
            p.split(',')
                .filter_map(|part| part.trim().split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("odata.maxpagesize"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        })
        .filter(|n| *n >= 1);
    let applied = if generous {
        asked.filter(|n| *n <= 999)
    } else {
        asked.map(|n| n.min(DELTA_MAX_PAGE_SIZE))
    };
    (applied.unwrap_or(DELTA_PAGE_SIZE), applied)
}

/// The size of page number `page` (from 1) of a delta round of pages of `size`.
pub(crate) fn round_page_size(size: usize, page: u64, generous: bool) -> usize {
    if !generous && page > 0 && page.is_multiple_of(SHORT_PAGE_EVERY) {
        (size / 2).max(1)
    } else {
        size
    }
}

/// Licence first (tenants without P1/P2), then AuditLog.Read.All, for a request reading
/// `signInActivity`. The docs do not say which Graph checks first; the licence check comes
/// first here.
fn sign_in_allowed(shared: &Shared) -> Result<(), GraphError> {
    if !shared.premium() {
        return Err(non_premium());
    }
    if !shared.has_any(&[SIGN_IN_PERMISSION]) {
        return Err(GraphError::permission_missing(SIGN_IN_PERMISSION));
    }
    Ok(())
}

/// A `/users` `$filter`: on `createdDateTime`, or on `id` (`eq`, `in`, or `eq` clauses joined
/// by `or`), the latter per filter-query-parameter.md and aad-advanced-queries.md ("The `in`
/// operator is supported by default whenever `eq` operator is supported by default") with the
/// 15-expression limit of known-issues.md.
enum UserFilter {
    Created(CreatedFilter),
    Ids(Vec<String>),
}

fn parse_user_filter(
    text: &str,
    advanced: bool,
    request: &HttpRequest,
) -> Result<UserFilter, GraphError> {
    let first = text.split_whitespace().next().unwrap_or("");
    if !first.eq_ignore_ascii_case("id") {
        return parse_created_filter(text).map(UserFilter::Created);
    }
    let filter = parse_filter(text)?;
    filter.check_in_limit(advanced, request)?;
    if filter.clauses.len() > 1 && !filter.any {
        return Err(GraphError::unsupported_query(
            "Clauses on 'id' joined by 'and' are not supported: use 'id in (...)' or 'or'.",
        ));
    }
    let mut ids = Vec::new();
    for clause in &filter.clauses {
        if !clause.property.eq_ignore_ascii_case("id") {
            return Err(GraphError::unsupported_query(format!(
                "Unsupported or invalid query filter clause specified for property '{}' of resource 'User'.",
                clause.property
            )));
        }
        for value in &clause.values {
            match value {
                Literal::Str(id) => {
                    if !ids.contains(id) {
                        ids.push(id.clone());
                    }
                }
                _ => {
                    return Err(GraphError::bad_request(
                        "Invalid filter clause: an id is compared with a quoted string, e.g. id eq '…'.",
                    ))
                }
            }
        }
    }
    Ok(UserFilter::Ids(ids))
}

/// The 403 Graph sends when `signInActivity` is asked of a tenant without P1/P2.
pub(crate) fn non_premium() -> GraphError {
    GraphError::new(
        403,
        "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
        "Neither tenant is B2C or tenant doesn't have premium license",
    )
}

/// A user object cut down to the selected properties: `id` always, every other selected
/// property the user has (nulls included), nothing else.
pub(crate) fn project(user: &Value, select: &[&str]) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), user.get("id").cloned().unwrap_or(Value::Null));
    for property in select.iter().filter(|p| **p != "id") {
        if let Some(value) = user.get(*property) {
            out.insert((*property).to_owned(), value.clone());
        }
    }
    Value::Object(out)
}

fn selection(opts: &QueryOptions) -> Result<(Vec<&'static str>, bool), GraphError> {
    match opts.get("$select") {
        Some(list) => Ok((parse_select(list, USER_PROPERTIES, "user")?, true)),
        None => Ok((DEFAULT_SELECT.to_vec(), false)),
    }
}

fn context(shared: &Shared, select: &[&str], explicit: bool, suffix: &str) -> String {
    if explicit {
        format!(
            "{}/v1.0/$metadata#users({}){suffix}",
            shared.graph_base,
            select.join(",")
        )
    } else {
        format!("{}/v1.0/$metadata#users{suffix}", shared.graph_base)
    }
}

/// Where the next page of a `/users` listing starts.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Position {
    /// After this sequence number, in insertion order.
    AfterSeq(u64),
    /// After this key of the creation-time index (in the listing's direction).
    AfterKey(CreatedKey),
}

impl Position {
    fn encode(self, fingerprint: &str) -> String {
        let mut fields = vec!["users".to_owned(), fingerprint.to_owned()];
        match self {
            Position::AfterSeq(seq) => fields.extend(["s".to_owned(), seq.to_string()]),
            Position::AfterKey((created, seq)) => {
                let (secs, nanos) = created
                    .map_or(("null".to_owned(), "0".to_owned()), |(s, n)| {
                        (s.to_string(), n.to_string())
                    });
                fields.extend(["k".to_owned(), secs, nanos, seq.to_string()]);
            }
        }
        encode_token(&fields)
    }

    fn decode(token: &str, fingerprint: &str) -> Result<Position, GraphError> {
        let invalid = || {
            GraphError::bad_request(
                "The $skiptoken is invalid or does not belong to this query: follow @odata.nextLink exactly as received.",
            )
        };
        let fields = decode_token(token).ok_or_else(invalid)?;
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        match fields.as_slice() {
            ["users", fp, "s", seq] if *fp == fingerprint => {
                seq.parse().map(Position::AfterSeq).map_err(|_| invalid())
            }
            ["users", fp, "k", secs, nanos, seq] if *fp == fingerprint => {
                let created = if *secs == "null" {
                    None
                } else {
                    Some((
                        secs.parse().map_err(|_| invalid())?,
                        nanos.parse().map_err(|_| invalid())?,
                    ))
                };
                Ok(Position::AfterKey((
                    created,
                    seq.parse().map_err(|_| invalid())?,
                )))
            }
            _ => Err(invalid()),
        }
    }
}

/// The creation-time index bounds matching a filter (nulls excluded whenever filtering).
fn filter_bounds(filter: Option<&CreatedFilter>) -> (Bound<CreatedKey>, Bound<CreatedKey>) {
    let Some(f) = filter else {
        return (Bound::Unbounded, Bound::Unbounded);
    };
    let low = match f.low {
        Bound::Included(s) => Bound::Included((Some(s), 0)),
        Bound::Excluded(s) => Bound::Excluded((Some(s), u64::MAX)),
        Bound::Unbounded => Bound::Excluded((None, u64::MAX)),
    };
    let high = match f.high {
        Bound::Included(s) => Bound::Included((Some(s), u64::MAX)),
        Bound::Excluded(s) => Bound::Excluded((Some(s), 0)),
        Bound::Unbounded => Bound::Unbounded,
    };
    (low, high)
}

/// One page of users and where the next one starts.
fn page<'d>(
    directory: &'d Directory,
    filter: Option<&CreatedFilter>,
    order: Option<CreatedOrder>,
    resume: Option<Position>,
    top: usize,
) -> (Vec<&'d UserEntry>, Option<Position>) {
    match order {
        None => {
            let after = match resume {
                Some(Position::AfterSeq(seq)) => Some(seq),
                _ => None,
            };
            let mut matching = directory
                .users_after(after)
                .filter(|(_, e)| filter.is_none_or(|f| f.matches(e.created)));
            let page: Vec<(u64, &UserEntry)> = matching.by_ref().take(top).collect();
            let more = matching.next().is_some();
            let next = page
                .last()
                .filter(|_| more)
                .map(|(seq, _)| Position::AfterSeq(*seq));
            (page.into_iter().map(|(_, e)| e).collect(), next)
        }
        Some(order) => {
            let (mut low, mut high) = filter_bounds(filter);
            if let Some(Position::AfterKey(key)) = resume {
                match order {
                    CreatedOrder::Ascending => low = Bound::Excluded(key),
                    CreatedOrder::Descending => high = Bound::Excluded(key),
                }
            }
            let range = directory.created_range(low, high);
            let keys: Vec<CreatedKey> = match order {
                CreatedOrder::Ascending => range.take(top + 1).copied().collect(),
                CreatedOrder::Descending => range.rev().take(top + 1).copied().collect(),
            };
            let more = keys.len() > top;
            let keys = &keys[..keys.len().min(top)];
            let next = keys.last().filter(|_| more).map(|k| Position::AfterKey(*k));
            let entries = keys
                .iter()
                .filter_map(|(_, seq)| directory.entry(*seq))
                .collect();
            (entries, next)
        }
    }
}

/// One page of the users whose ids are listed, and where the next one starts.
fn page_ids<'d>(
    directory: &'d Directory,
    ids: &[String],
    order: Option<CreatedOrder>,
    resume: Option<Position>,
    top: usize,
) -> (Vec<&'d UserEntry>, Option<Position>, usize) {
    let mut found: Vec<(u64, &UserEntry)> = Vec::new();
    for id in ids {
        let Some(seq) = directory.seq_of(id) else {
            continue;
        };
        if let Some(entry) = directory.entry(seq) {
            if !found.iter().any(|(s, _)| *s == seq) {
                found.push((seq, entry));
            }
        }
    }
    let total = found.len();
    let mut keyed: Vec<(CreatedKey, &UserEntry)> = found
        .into_iter()
        .map(|(seq, e)| ((e.created, seq), e))
        .collect();
    match order {
        None => keyed.sort_by_key(|(k, _)| k.1),
        Some(CreatedOrder::Ascending) => keyed.sort_by_key(|(k, _)| *k),
        Some(CreatedOrder::Descending) => {
            keyed.sort_by_key(|(k, _)| *k);
            keyed.reverse();
        }
    }
    let remaining: Vec<(CreatedKey, &UserEntry)> = keyed
        .into_iter()
        .filter(|(key, _)| match (resume, order) {
            (None, _) => true,
            (Some(Position::AfterSeq(seq)), None) => key.1 > seq,
            (Some(Position::AfterKey(k)), Some(CreatedOrder::Ascending)) => *key > k,
            (Some(Position::AfterKey(k)), Some(CreatedOrder::Descending)) => *key < k,
            _ => false,
        })
        .collect();
    let more = remaining.len() > top;
    let page: Vec<(CreatedKey, &UserEntry)> = remaining.into_iter().take(top).collect();
    let next = page.last().filter(|_| more).map(|(key, _)| match order {
        None => Position::AfterSeq(key.1),
        Some(_) => Position::AfterKey(*key),
    });
    (page.into_iter().map(|(_, e)| e).collect(), next, total)
}

/// `GET /v1.0/users`.
pub(crate) fn list(shared: &Shared, request: &HttpRequest) -> Result<Reply, GraphError> {
    let opts = QueryOptions::parse(
        request.query.as_deref(),
        &[
            "$select",
            "$top",
            "$filter",
            "$orderby",
            "$count",
            "$skiptoken",
        ],
    )?;
    let (select, explicit) = selection(&opts)?;
    let sign_in = select.contains(&"signInActivity")
        || opts
            .get("$filter")
            .is_some_and(|f| f.to_ascii_lowercase().contains("signinactivity"));
    if sign_in {
        sign_in_allowed(shared)?;
    }
    let top = parse_top(
        opts.get("$top"),
        if select.contains(&"signInActivity") {
            500
        } else {
            999
        },
        100,
    )?;
    let count = parse_count(opts.get("$count"))?;
    let advanced = count && eventual(request);
    let filter = opts
        .get("$filter")
        .map(|f| parse_user_filter(f, advanced, request))
        .transpose()?;
    let order = opts.get("$orderby").map(parse_orderby).transpose()?;
    let sorted_filter = filter.is_some() && order.is_some();
    if (count || sorted_filter) && !eventual(request) {
        return Err(GraphError::unsupported_query(
            "This is an advanced query ($count, or $filter together with $orderby): send the header 'ConsistencyLevel: eventual' with it, on every page.",
        ));
    }
    if sorted_filter && !count {
        return Err(GraphError::unsupported_query(
            "Sorting a filtered list ($filter with $orderby) is an advanced query: add $count=true and the header 'ConsistencyLevel: eventual', on every page.",
        ));
    }
    let fingerprint = opts.fingerprint("users");
    let resume = opts
        .get("$skiptoken")
        .map(|token| Position::decode(token, &fingerprint))
        .transpose()?;

    let directory = shared.read();
    let (entries, next, total) = match &filter {
        Some(UserFilter::Ids(ids)) => {
            let (entries, next, total) = page_ids(&directory, ids, order, resume, top);
            (entries, next, (count && resume.is_none()).then_some(total))
        }
        other => {
            let created = match other {
                Some(UserFilter::Created(f)) => Some(f),
                _ => None,
            };
            let (entries, next) = page(&directory, created, order, resume, top);
            let total = (count && resume.is_none()).then(|| match created {
                None => directory.len(),
                Some(f) => {
                    let (low, high) = filter_bounds(Some(f));
                    directory.created_range(low, high).count()
                }
            });
            (entries, next, total)
        }
    };
    let value: Vec<Value> = entries
        .iter()
        .map(|e| project(&e.user(), &select))
        .collect();
    drop(directory);

    let next_link = next.map(|position| {
        let query = opts.link_query();
        let separator = if query.is_empty() { "" } else { "&" };
        format!(
            "{}/v1.0/users?{query}{separator}$skiptoken={}",
            shared.users_link_base(),
            position.encode(&fingerprint)
        )
    });
    Ok(collection(
        context(shared, &select, explicit, ""),
        total,
        value,
        next_link,
    ))
}

/// `GET /v1.0/users/{id or userPrincipalName}`.
pub(crate) fn get(shared: &Shared, request: &HttpRequest, id: &str) -> Result<Reply, GraphError> {
    let opts = QueryOptions::parse(request.query.as_deref(), &["$select"])?;
    let (select, explicit) = selection(&opts)?;
    if select.contains(&"signInActivity") {
        sign_in_allowed(shared)?;
    }
    let directory = shared.read();
    let entry = directory
        .find(id)
        .ok_or_else(|| GraphError::resource_not_found(id))?;
    let mut body = project(&entry.user(), &select);
    drop(directory);
    if let Some(object) = body.as_object_mut() {
        object.insert(
            "@odata.context".into(),
            json!(context(shared, &select, explicit, "/$entity")),
        );
    }
    Ok(Reply::graph_json(200, body))
}

/// Where a delta round stands, carried in its skip and delta tokens.
enum DeltaState {
    /// First round: every user, in insertion order, after `after`; the round's changes start
    /// at version `since`.
    Full { since: u64, after: Option<u64> },
    /// Later round: changes after version `after`.
    Changes { after: u64 },
}

/// A delta token: the selection, the phase, the version the round's changes start after, the
/// position, and the number of the page it leads to in the round (1 for a delta link).
fn delta_token(select: &[&str], phase: &str, since: u64, position: &str, page: u64) -> String {
    encode_token(&[
        "delta".to_owned(),
        select.join(","),
        phase.to_owned(),
        since.to_string(),
        position.to_owned(),
        page.to_string(),
    ])
}

/// `GET /v1.0/users/delta`.
pub(crate) fn delta(shared: &Shared, request: &HttpRequest) -> Result<Reply, GraphError> {
    let opts = QueryOptions::for_delta(request.query.as_deref(), "users")?;
    let generous = shared.config.generous;
    let (size, page_size) = delta_page_size(request, generous);

    let token = opts.get("$skiptoken").or(opts.get("$deltatoken"));
    let directory = shared.read();
    let (select, state, page_number): (Vec<&'static str>, DeltaState, u64) = match token {
        None => {
            let (select, _) = selection(&opts)?;
            (
                select,
                DeltaState::Full {
                    since: directory.version(),
                    after: None,
                },
                1,
            )
        }
        Some(token) => {
            let invalid = || {
                GraphError::bad_request(
                    "The delta or skip token is invalid: follow @odata.nextLink and @odata.deltaLink exactly as received.",
                )
            };
            let fields = decode_token(token).ok_or_else(invalid)?;
            let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
            let ["delta", select, phase, since, position, page] = fields.as_slice() else {
                return Err(invalid());
            };
            let since: u64 = since.parse().map_err(|_| invalid())?;
            let page: u64 = page.parse().map_err(|_| invalid())?;
            if since < directory.delta_floor() {
                let (status, code) = directory.delta_expiry();
                let message = if code == "syncStateNotFound" {
                    "The sync state generation is not found: the delta token has expired. Start a full synchronization again without a token."
                } else {
                    "The delta token is no longer valid: a resynchronization is required. Start a full synchronization again without a token."
                };
                return Err(GraphError::new(status, code, message));
            }
            let select = parse_select(select, USER_PROPERTIES, "user").map_err(|_| invalid())?;
            let state = match *phase {
                "full" => DeltaState::Full {
                    since,
                    after: position.parse().ok(),
                },
                "changes" => DeltaState::Changes {
                    after: position.parse().map_err(|_| invalid())?,
                },
                "link" => DeltaState::Changes { after: since },
                _ => return Err(invalid()),
            };
            (select, state, page.max(1))
        }
    };
    if select.contains(&"signInActivity") {
        return Err(GraphError::unsupported_query(
            "Property 'signInActivity' is not supported in delta queries: read it with /users?$select=id,signInActivity instead.",
        ));
    }
    let size = round_page_size(size, page_number, generous);
    let next_page = page_number + 1;
    let mut value = Vec::new();
    let (next_token, delta_token_value) = match state {
        DeltaState::Full { since, after } => {
            let mut users = directory.users_after(after);
            let page: Vec<(u64, &UserEntry)> = users.by_ref().take(size).collect();
            let more = users.next().is_some();
            value.extend(page.iter().map(|(_, e)| project(&e.user(), &select)));
            match page.last() {
                Some((seq, _)) if more => (
                    Some(delta_token(
                        &select,
                        "full",
                        since,
                        &seq.to_string(),
                        next_page,
                    )),
                    None,
                ),
                _ => (None, Some(delta_token(&select, "link", since, "", 1))),
            }
        }
        DeltaState::Changes { after } => {
            let mut changes = directory.changes_after(after);
            let page: Vec<(u64, &Change)> = changes.by_ref().take(size).collect();
            let more = changes.next().is_some();
            for (_, change) in &page {
                match change {
                    Change::Upsert(seq) => {
                        if let Some(entry) = directory.entry(*seq) {
                            value.push(project(&entry.user(), &select));
                        }
                    }
                    Change::Removed { id, reason } => value.push(json!({
                        "@odata.type": "#microsoft.graph.user",
                        "id": id,
                        "@removed": {"reason": reason},
                    })),
                }
            }
            match page.last() {
                Some((version, _)) if more => (
                    Some(delta_token(
                        &select,
                        "changes",
                        after,
                        &version.to_string(),
                        next_page,
                    )),
                    None,
                ),
                _ => (
                    None,
                    Some(delta_token(&select, "link", directory.version(), "", 1)),
                ),
            }
        }
    };
    drop(directory);

    let base = shared.users_link_base();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(context(shared, &select, true, "")),
    );
    body.insert("value".into(), Value::Array(value));
    if let Some(token) = next_token {
        body.insert(
            "@odata.nextLink".into(),
            json!(format!("{base}/v1.0/users/delta?$skiptoken={token}")),
        );
    }
    if let Some(token) = delta_token_value {
        body.insert(
            "@odata.deltaLink".into(),
            json!(format!("{base}/v1.0/users/delta?$deltatoken={token}")),
        );
    }
    let mut reply = Reply::graph_json(200, Value::Object(body));
    if let Some(size) = page_size {
        reply = reply.with_header("Preference-Applied", format!("odata.maxpagesize={size}"));
    }
    Ok(reply)
}
