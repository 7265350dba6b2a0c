//! The Management API endpoints the emulator serves, and the order every request goes
//! through: concurrency cap, authentication, rate limit, scope, handler.
//!
//! Endpoint behaviour, each from Okta's reference (developer.okta.com/docs/api/openapi/
//! okta-management/management/tag/`Tag`/, and OKTA.md's summary of it):
//! - `GET /api/v1/users` (management spec 2026.06.3, `listUsers`): `limit` default 200 (no
//!   maximum is documented; the emulator serves at most 200, the strict reading), 10 with `q`;
//!   paging by the `Link` header (`rel="self"`, and `rel="next"` with an opaque `after`
//!   cursor while more remain); "This operation omits users that have a status of
//!   `DEPROVISIONED` … To return all users, use a filter or search query instead" (and `q`
//!   omits them too, and "doesn't support pagination"); `search` "results are sourced from an
//!   eventually consistent datasource" (the lagging index), takes any profile attribute and
//!   `id`, `status`, `created`, `activated`, `statusChanged`, `lastUpdated`, `type.id`, "The
//!   `ne` (not equal) operator isn't supported", `co` only on `profile.firstName|lastName|
//!   email|login`, string values case-insensitive; `sortBy`/`sortOrder` "for search queries
//!   only", equal values "ordered by `id`"; `filter` takes `status`, `lastUpdated`, `id`,
//!   `profile.login|email|firstName|lastName`, `eq` only except `lastUpdated`
//!   (`gt ge lt le`), and "is case-sensitive for property names and query values";
//! - `GET /api/v1/users/{idOrLogin}`: 404 `E0000007` once deleted;
//! - `GET /api/v1/users/{id}/groups`, `/factors`, `/roles` (no paging);
//! - `GET /api/v1/groups` (`limit` maximum 10000, taken as the default too; `q` matches the
//!   name, unpaged, default limit 300; `filter` on `id`, `type`, `lastUpdated`,
//!   `lastMembershipUpdated`; `search` on every property; `expand=stats` with
//!   `_embedded.stats`, whose admin flag the spec spells `hasAdminPrivlege`; group `search`
//!   is eventually consistent too, served from a lagging copy like the users'),
//!   `GET /api/v1/groups/{id}/users` (`limit` default and maximum 1000, Link paging),
//!   `GET /api/v1/groups/{id}/roles`;
//! - `GET /api/v1/iam/assignees/users`: users holding a role, paged in the body
//!   (`_links.next.href`), `limit` default 100; whether users holding a role only through a
//!   group are listed is not documented — strict by default: they are not
//!   ([`OktaConfig::assignees_include_group_held`](crate::OktaConfig));
//! - `GET /api/v1/iam/roles`: custom roles (`{"roles": [...], "_links": {...}}`);
//! - `GET /api/v1/logs` (System Log API): `since` default 7 days back, `until`, `after`,
//!   `filter`, `q`, `limit` 1–1000 (default 100), `sortOrder` ASCENDING|DESCENDING; a polling
//!   query (`since`, no `until`, ascending) always answers a `next` link; events older than 90
//!   days are gone; a `since` more than 180 days back is refused.
//! - `GET /.well-known/okta-organization`: the org id, unauthenticated.
//!
//! Scopes per endpoint (the "Scopes and supported endpoints" table of the service-app guide):
//! users, a user's groups and factors `okta.users.read`; groups and members
//! `okta.groups.read`; roles and assignees `okta.roles.read`; logs `okta.logs.read`. A
//! token without the scope gets 403 `E0000006` with a `WWW-Authenticate: Bearer …
//! error="insufficient_scope"` header.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::auth::{AuthFailure, Presented};
use crate::clock::format_ms;
use crate::limits::Bucket;
use crate::model::{factor_json, role_json, LogEvent, OktaGroup, OktaUser, LOG_RETENTION_MS};
use crate::query::{decode_cursor, encode_cursor, lookup_path, parse, Expr, Op};
use crate::reply::{OktaError, Reply};
use crate::server::{HttpRequest, Shared};

type Answer = Result<Reply, OktaError>;

const DAY_MS: i64 = 86_400_000;

/// Query parameters in order, decoded.
fn params(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `limit`: a positive integer; values above `max` are served as `max`.
fn limit(params: &[(String, String)], default: usize, max: usize) -> Result<usize, OktaError> {
    match param(params, "limit") {
        None => Ok(default),
        Some(text) => match text.parse::<i64>() {
            Ok(n) if n >= 1 => Ok((n as usize).min(max)),
            _ => Err(OktaError::validation(format!(
                "limit: '{text}' is not a positive integer"
            ))),
        },
    }
}

/// The `Link` header values: self, and next with `after` when there is more.
fn link_headers(
    reply: Reply,
    base: &str,
    path: &str,
    params: &[(String, String)],
    next: Option<String>,
) -> Reply {
    let url = |after: Option<&str>| {
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        for (k, v) in params.iter().filter(|(k, _)| k != "after") {
            serializer.append_pair(k, v);
        }
        if let Some(after) = after {
            serializer.append_pair("after", after);
        }
        let query = serializer.finish();
        if query.is_empty() {
            format!("{base}{path}")
        } else {
            format!("{base}{path}?{query}")
        }
    };
    let self_link = url(param(params, "after"));
    let mut reply = reply.with_header("Link", format!("<{self_link}>; rel=\"self\""));
    if let Some(after) = next {
        reply = reply.with_header("Link", format!("<{}>; rel=\"next\"", url(Some(&after))));
    }
    reply
}

/// One page of items sorted by key (ascending, or descending when asked), after a cursor.
fn page<T>(
    shared: &Shared,
    mut items: Vec<(String, T)>,
    limit: usize,
    after: Option<&str>,
    descending: bool,
) -> Result<(Vec<T>, Option<String>), OktaError> {
    items.sort_by(|a, b| a.0.cmp(&b.0));
    if descending {
        items.reverse();
    }
    let start = match after {
        None => 0,
        Some(cursor) => {
            let key = decode_cursor(&shared.secret, cursor)
                .ok_or_else(|| OktaError::validation("after: not a cursor this org handed out; follow the Link header's next URL as given"))?;
            items
                .iter()
                .position(|(k, _)| if descending { *k < key } else { *k > key })
                .unwrap_or(items.len())
        }
    };
    let rest = items.len() - start;
    let mut out = Vec::with_capacity(limit.min(rest));
    let mut last = None;
    for (key, item) in items.into_iter().skip(start).take(limit) {
        last = Some(key);
        out.push(item);
    }
    let next = if rest > limit {
        last.map(|k| encode_cursor(&shared.secret, &k))
    } else {
        None
    };
    Ok((out, next))
}

/// The attribute values `search`/`filter` compare, for a user.
fn user_attr(user: &OktaUser, path: &str) -> Vec<Value> {
    let time = |t: Option<i64>| {
        t.map(|t| vec![Value::String(format_ms(t))])
            .unwrap_or_default()
    };
    match path {
        "id" => vec![json!(user.id)],
        "status" => vec![json!(user.status)],
        "created" => time(Some(user.created)),
        "activated" => time(user.activated),
        "statusChanged" => time(user.status_changed),
        "lastUpdated" => time(Some(user.last_updated)),
        "lastLogin" => time(user.last_login),
        "passwordChanged" => time(user.password_changed),
        "type.id" => vec![json!(user.type_id)],
        p => match p.strip_prefix("profile.") {
            Some(key) => match user.profile.get(key) {
                Some(Value::Null) | None => Vec::new(),
                Some(v) => vec![v.clone()],
            },
            None => Vec::new(),
        },
    }
}

fn parse_checked(
    text: &str,
    what: &str,
    allowed: &dyn Fn(&str, Op) -> bool,
) -> Result<Expr, OktaError> {
    let expr = parse(text).map_err(|e| OktaError::search(format!("{what}: {e} in '{text}'")))?;
    for (attr, op) in expr.comparisons() {
        if !allowed(attr, op) {
            return Err(OktaError::search(format!(
                "{what}: '{attr}' with operator {op:?} is not supported here"
            )));
        }
    }
    Ok(expr)
}

/// The top-level properties `search` takes ("`id`, `status`, `created`, `activated`,
/// `statusChanged`, and `lastUpdated`", and `type.id`; any profile attribute besides).
const USER_SEARCH_ATTRS: [&str; 7] = [
    "id",
    "status",
    "created",
    "activated",
    "statusChanged",
    "lastUpdated",
    "type.id",
];

/// `co` "only with … `profile.firstName`, `profile.lastName`, `profile.email`, and
/// `profile.login`".
fn user_search_allowed(attr: &str, op: Op) -> bool {
    let known = USER_SEARCH_ATTRS.contains(&attr) || attr.starts_with("profile.");
    let co_ok = matches!(
        attr,
        "profile.firstName" | "profile.lastName" | "profile.email" | "profile.login"
    );
    known && (op != Op::Co || co_ok)
}

/// "Filtering supports the following limited number of properties: `status`,
/// `lastUpdated`, `id`, `profile.login`, `profile.email`, `profile.firstName`, and
/// `profile.lastName`", `eq` only except `lastUpdated` (`gt`, `ge`, `lt`, `le`).
fn user_filter_allowed(attr: &str, op: Op) -> bool {
    match attr {
        "status" | "id" | "profile.login" | "profile.email" | "profile.firstName"
        | "profile.lastName" => op == Op::Eq,
        "lastUpdated" => matches!(op, Op::Eq | Op::Gt | Op::Ge | Op::Lt | Op::Le),
        _ => false,
    }
}

/// `GET /api/v1/users`.
fn list_users(shared: &Shared, params: &[(String, String)]) -> Answer {
    let search = param(params, "search");
    let filter = param(params, "filter");
    let q = param(params, "q");
    // "Defaults to 10 if `q` is provided"; `q` "doesn't support pagination".
    let limit = limit(params, if q.is_some() { 10 } else { 200 }, 200)?;
    if search.is_some() && filter.is_some() {
        return Err(OktaError::validation(
            "search and filter cannot be combined; use search",
        ));
    }
    let sort_by = param(params, "sortBy");
    let sort_order = param(params, "sortOrder");
    if (sort_by.is_some() || sort_order.is_some()) && search.is_none() {
        return Err(OktaError::validation(
            "sortBy and sortOrder are supported with search only",
        ));
    }
    let descending = match sort_order.map(str::to_ascii_lowercase).as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(OktaError::validation(format!(
                "sortOrder: '{other}' is not asc or desc"
            )))
        }
    };
    let after = param(params, "after");
    let base = shared.base.as_str();
    let now = shared.clock.now_ms();
    let (users, next): (Vec<Value>, Option<String>) = if let Some(search) = search {
        let expr = parse_checked(search, "search", &user_search_allowed)?;
        if let Some(sort) = sort_by {
            if !(USER_SEARCH_ATTRS.contains(&sort) || sort.starts_with("profile.")) {
                return Err(OktaError::validation(format!(
                    "sortBy: '{sort}' is not a user attribute"
                )));
            }
        }
        let mut org = shared.write();
        let index = org.search_index(now - shared.config.search_lag_ms);
        if matches!(sort_by, None | Some("id")) && !descending {
            // Ordered by id already: walk the index from the cursor, no sorting.
            let start = match after {
                Some(cursor) => Some(decode_cursor(&shared.secret, cursor).ok_or_else(|| {
                    OktaError::validation("after: not a cursor this org handed out; follow the Link header's next URL as given")
                })?),
                None => None,
            };
            let range = match &start {
                Some(key) => index.range::<String, _>((
                    std::ops::Bound::Excluded(key.clone()),
                    std::ops::Bound::Unbounded,
                )),
                None => index.range::<String, _>(..),
            };
            let mut chosen: Vec<&OktaUser> = Vec::with_capacity(limit);
            let mut more = false;
            for user in range.map(|(_, u)| u) {
                if !expr.matches(&|p| user_attr(user, p)) {
                    continue;
                }
                if chosen.len() == limit {
                    more = true;
                    break;
                }
                chosen.push(user);
            }
            let next = if more {
                chosen.last().map(|u| encode_cursor(&shared.secret, &u.id))
            } else {
                None
            };
            (chosen.into_iter().map(|u| u.to_json(base)).collect(), next)
        } else {
            let items: Vec<(String, &OktaUser)> = index
                .values()
                .filter(|u| expr.matches(&|p| user_attr(u, p)))
                .map(|u| {
                    let key = match sort_by {
                        None | Some("id") => u.id.clone(),
                        Some(attr) => {
                            let v = user_attr(u, attr)
                                .first()
                                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                                .unwrap_or_default();
                            format!("{v}\u{1}{}", u.id)
                        }
                    };
                    (key, u)
                })
                .collect();
            let (chosen, next) = page(shared, items, limit, after, descending)?;
            (chosen.into_iter().map(|u| u.to_json(base)).collect(), next)
        }
    } else {
        let expr = match filter {
            Some(text) => Some(parse_checked(text, "filter", &user_filter_allowed)?),
            None => None,
        };
        let org = shared.read();
        let start = match after {
            Some(cursor) => Some(decode_cursor(&shared.secret, cursor).ok_or_else(|| {
                OktaError::validation("after: not a cursor this org handed out; follow the Link header's next URL as given")
            })?),
            None => None,
        };
        let q = q.map(str::to_lowercase);
        let range = match &start {
            Some(key) => org.users.range::<String, _>((
                std::ops::Bound::Excluded(key.clone()),
                std::ops::Bound::Unbounded,
            )),
            None => org.users.range::<String, _>(..),
        };
        let mut out = Vec::new();
        let mut more = false;
        for user in range.map(|(_, u)| u) {
            let keep = match &expr {
                Some(expr) => expr.matches_case(&|p| user_attr(user, p), true),
                None => user.status != "DEPROVISIONED",
            } && q.as_ref().is_none_or(|q| {
                ["firstName", "lastName", "email"].iter().any(|k| {
                    user.profile
                        .get(*k)
                        .and_then(Value::as_str)
                        .is_some_and(|v| v.to_lowercase().starts_with(q.as_str()))
                })
            });
            if !keep {
                continue;
            }
            if out.len() == limit {
                more = true;
                break;
            }
            out.push(user);
        }
        let next = if more && q.is_none() {
            out.last().map(|u| encode_cursor(&shared.secret, &u.id))
        } else {
            None
        };
        (out.into_iter().map(|u| u.to_json(base)).collect(), next)
    };
    let reply = Reply::json(200, Value::Array(users));
    Ok(link_headers(reply, base, "/api/v1/users", params, next))
}

fn find_user(shared: &Shared, id_or_login: &str) -> Result<OktaUser, OktaError> {
    let org = shared.read();
    org.users
        .get(id_or_login)
        .or_else(|| {
            org.users
                .values()
                .find(|u| u.login().eq_ignore_ascii_case(id_or_login))
        })
        .cloned()
        .ok_or_else(|| OktaError::not_found(id_or_login, "User"))
}

fn group_json(group: &OktaGroup, base: &str, stats: Option<(usize, bool)>) -> Value {
    let mut value = json!({
        "id": group.id,
        "created": format_ms(group.created),
        "lastUpdated": format_ms(group.last_updated),
        "lastMembershipUpdated": format_ms(group.last_membership_updated),
        "objectClass": ["okta:user_group"],
        "type": group.group_type,
        "profile": {"name": group.name, "description": group.description},
        "_links": {
            "users": {"href": format!("{base}/api/v1/groups/{}/users", group.id)},
            "apps": {"href": format!("{base}/api/v1/groups/{}/apps", group.id)},
        },
    });
    if let Some((users, admin)) = stats {
        value["_embedded"] = json!({"stats": {
            "usersCount": users, "appsCount": 0, "groupPushMappingsCount": 0,
            "hasAdminPrivlege": admin,
        }});
    }
    value
}

fn group_attr(group: &OktaGroup, path: &str) -> Vec<Value> {
    match path {
        "id" => vec![json!(group.id)],
        "type" => vec![json!(group.group_type)],
        "created" => vec![json!(format_ms(group.created))],
        "lastUpdated" => vec![json!(format_ms(group.last_updated))],
        "lastMembershipUpdated" => vec![json!(format_ms(group.last_membership_updated))],
        "profile.name" => vec![json!(group.name)],
        "profile.description" => group.description.iter().map(|d| json!(d)).collect(),
        _ => Vec::new(),
    }
}

/// `GET /api/v1/groups`.
fn list_groups(shared: &Shared, params: &[(String, String)]) -> Answer {
    // `q`: "You can't page a query. The default limit for a query is 300 results."
    let q = param(params, "q").map(str::to_lowercase);
    let limit = limit(params, if q.is_some() { 300 } else { 10_000 }, 10_000)?;
    // filter: "`id`, `type`, `lastUpdated`, and `lastMembershipUpdated`"; search: every
    // property, `co` only on `profile.name` and `profile.description`.
    let filter_allowed = |attr: &str, op: Op| {
        op != Op::Co
            && matches!(
                attr,
                "id" | "type" | "lastUpdated" | "lastMembershipUpdated"
            )
    };
    let search_allowed = |attr: &str, op: Op| {
        (matches!(
            attr,
            "id" | "type" | "created" | "lastUpdated" | "lastMembershipUpdated"
        ) || attr.starts_with("profile."))
            && (op != Op::Co || matches!(attr, "profile.name" | "profile.description"))
    };
    let search = param(params, "search");
    let expr = match (search, param(params, "filter")) {
        (Some(_), Some(_)) => {
            return Err(OktaError::validation(
                "search and filter cannot be combined; use search",
            ))
        }
        (Some(text), None) => Some(parse_checked(text, "search", &search_allowed)?),
        (None, Some(text)) => Some(parse_checked(text, "filter", &filter_allowed)?),
        (None, None) => None,
    };
    let stats = match param(params, "expand") {
        None => false,
        Some("stats") => true,
        Some(other) => {
            return Err(OktaError::validation(format!(
                "expand: '{other}' is not supported; use stats"
            )))
        }
    };
    let base = shared.base.as_str();
    let now = shared.clock.now_ms();
    // `search` "results are sourced from an eventually consistent datasource": the lagging
    // copy decides which groups match (and what they say); stats are counted live.
    let mut org = shared.write();
    let candidates: Vec<OktaGroup> = if search.is_some() {
        org.group_search_index(now - shared.config.search_lag_ms)
            .values()
            .cloned()
            .collect()
    } else {
        org.groups
            .values()
            .map(|g| OktaGroup {
                members: Default::default(),
                ..g.clone()
            })
            .collect()
    };
    let items: Vec<(String, Value)> = candidates
        .iter()
        .filter(|g| {
            expr.as_ref()
                .is_none_or(|e| e.matches(&|p| group_attr(g, p)))
        })
        .filter(|g| {
            q.as_ref()
                .is_none_or(|q| g.name.to_lowercase().starts_with(q.as_str()))
        })
        .map(|g| {
            let stat = stats.then(|| {
                (
                    org.groups.get(&g.id).map_or(0, |live| live.members.len()),
                    org.group_roles.get(&g.id).is_some_and(|r| !r.is_empty()),
                )
            });
            (g.id.clone(), group_json(g, base, stat))
        })
        .collect();
    drop(org);
    let (groups, mut next) = page(shared, items, limit, param(params, "after"), false)?;
    if q.is_some() {
        next = None;
    }
    Ok(link_headers(
        Reply::json(200, Value::Array(groups)),
        base,
        "/api/v1/groups",
        params,
        next,
    ))
}

/// `GET /api/v1/groups/{id}/users`.
fn group_users(shared: &Shared, id: &str, params: &[(String, String)]) -> Answer {
    let limit = limit(params, 1000, 1000)?;
    let base = shared.base.as_str();
    let org = shared.read();
    let group = org
        .groups
        .get(id)
        .ok_or_else(|| OktaError::not_found(id, "UserGroup"))?;
    let items: Vec<(String, &OktaUser)> = group
        .members
        .iter()
        .filter_map(|m| org.users.get(m))
        .map(|u| (u.id.clone(), u))
        .collect();
    let (users, next) = page(shared, items, limit, param(params, "after"), false)?;
    let users: Vec<Value> = users.into_iter().map(|u| u.to_json(base)).collect();
    let path = format!("/api/v1/groups/{id}/users");
    Ok(link_headers(
        Reply::json(200, Value::Array(users)),
        base,
        &path,
        params,
        next,
    ))
}

/// `GET /api/v1/iam/assignees/users`: paging in the body.
fn assignees(shared: &Shared, params: &[(String, String)]) -> Answer {
    let limit = limit(params, 100, 100)?;
    let base = shared.base.as_str();
    let org = shared.read();
    let mut holders: std::collections::BTreeSet<String> = org
        .user_roles
        .iter()
        .filter(|(u, r)| !r.is_empty() && org.users.contains_key(*u))
        .map(|(u, _)| u.clone())
        .collect();
    if shared.config.assignees_include_group_held {
        for (group, roles) in &org.group_roles {
            if let (false, Some(g)) = (roles.is_empty(), org.groups.get(group)) {
                holders.extend(g.members.iter().cloned());
            }
        }
    }
    let org_id = org.org_id.clone();
    drop(org);
    let items: Vec<(String, String)> = holders.into_iter().map(|u| (u.clone(), u)).collect();
    let (users, next) = page(shared, items, limit, param(params, "after"), false)?;
    let value: Vec<Value> = users
        .iter()
        .map(|u| {
            json!({
                "id": u,
                "orn": format!("orn:okta:directory:{org_id}:users:{u}"),
                "_links": {"self": {"href": format!("{base}/api/v1/users/{u}")},
                           "roles": {"href": format!("{base}/api/v1/users/{u}/roles")}},
            })
        })
        .collect();
    let mut links = json!({});
    if let Some(after) = next {
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        serializer.append_pair("limit", &limit.to_string());
        serializer.append_pair("after", &after);
        links["next"] =
            json!({"href": format!("{base}/api/v1/iam/assignees/users?{}", serializer.finish())});
    }
    Ok(Reply::json(200, json!({"value": value, "_links": links})))
}

/// `GET /api/v1/logs`.
///
/// - `since` "Filters the lower time bound of the log events `published` property for bounded
///   queries or persistence time for polling queries", default "7 days prior to until";
///   `limit` default 100; `sortOrder` ASCENDING (default) or DESCENDING (spec, `listLogEvents`);
/// - polling (`since` without `until`, ascending) answers a `next` link on every page, empty or
///   not, and the client stores it (developer.okta.com/docs/reference/system-log-query,
///   "Polling requests"); a bounded query's last page has none;
/// - "Okta retains System Log events for 90 days" (support.okta.com, "Exporting Okta Log
///   Data"); a `since` more than 180 days back is an error (OKTA.md, from the System Log API
///   reference); `limit` above 1000 is refused (OKTA.md: `limit` ≤ 1000).
fn logs(shared: &Shared, params: &[(String, String)]) -> Answer {
    let now = shared.clock.now_ms();
    let limit = match param(params, "limit") {
        None => 100,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(OktaError::validation(format!(
                    "limit: '{text}' is not between 1 and 1000"
                )))
            }
        },
    };
    let time = |name: &str| -> Result<Option<i64>, OktaError> {
        match param(params, name) {
            None => Ok(None),
            Some(text) => crate::clock::parse_time(text).map(Some).ok_or_else(|| {
                OktaError::validation(format!(
                    "{name}: '{text}' is not an ISO 8601 time with a zone"
                ))
            }),
        }
    };
    let until = time("until")?;
    let since = time("since")?.unwrap_or(until.unwrap_or(now) - 7 * DAY_MS);
    if since < now - 180 * DAY_MS {
        return Err(OktaError::validation(
            "since: more than 180 days in the past; System Log data is kept 90 days",
        ));
    }
    if until.is_some_and(|u| u < since) {
        return Err(OktaError::validation("until: earlier than since"));
    }
    let descending = match param(params, "sortOrder") {
        None | Some("ASCENDING") => false,
        Some("DESCENDING") => true,
        Some(other) => {
            return Err(OktaError::validation(format!(
                "sortOrder: '{other}' is not ASCENDING or DESCENDING"
            )))
        }
    };
    let polling = until.is_none() && !descending && param(params, "since").is_some();
    let expr = match param(params, "filter") {
        Some(text) => Some(parse_checked(text, "filter", &|_, _| true)?),
        None => None,
    };
    let q: Vec<String> = param(params, "q")
        .map(|q| q.split_whitespace().map(str::to_lowercase).collect())
        .unwrap_or_default();
    let after = match param(params, "after") {
        None => None,
        Some(cursor) => Some(
            decode_cursor(&shared.secret, cursor)
                .and_then(|k| k.parse::<u64>().ok())
                .ok_or_else(|| OktaError::validation("after: not a cursor this org handed out; follow the Link header's next URL as given"))?,
        ),
    };
    let oldest = since.max(now - LOG_RETENTION_MS);
    let org = shared.read();
    let matching = |e: &&LogEvent| {
        e.published >= oldest
            && until.is_none_or(|u| e.published < u)
            && e.published <= now
            && expr
                .as_ref()
                .is_none_or(|x| x.matches(&|p| lookup_path(&e.body, p)))
            && (q.is_empty() || {
                let text = e.body.to_string().to_lowercase();
                q.iter().all(|k| text.contains(k.as_str()))
            })
    };
    let mut events: Vec<&LogEvent> = org.log.iter().filter(matching).collect();
    if descending {
        events.reverse();
    }
    let start = match after {
        None => 0,
        Some(seq) => events
            .iter()
            .position(|e| if descending { e.seq < seq } else { e.seq > seq })
            .unwrap_or(events.len()),
    };
    let rest = events.len() - start;
    let chosen: Vec<&LogEvent> = events.into_iter().skip(start).take(limit).collect();
    let body: Vec<Value> = chosen.iter().map(|e| e.body.clone()).collect();
    let last = chosen.last().map(|e| e.seq).or(after);
    drop(org);
    let next = if polling || rest > limit {
        last.map(|seq| encode_cursor(&shared.secret, &seq.to_string()))
    } else {
        None
    };
    let base = shared.base.as_str();
    let mut reply = link_headers(
        Reply::json(200, Value::Array(body)),
        base,
        "/api/v1/logs",
        params,
        next.clone(),
    );
    if polling && next.is_none() {
        // Nothing served yet and no cursor: the next poll is the same query.
        let self_link = reply
            .header("Link")
            .unwrap_or_default()
            .replace("rel=\"self\"", "rel=\"next\"");
        reply = reply.with_header("Link", self_link);
    }
    Ok(reply)
}

/// Which scope an endpoint needs, and its handler's name.
fn scope_of(parts: &[&str]) -> Option<&'static str> {
    Some(match parts {
        ["users"] | ["users", _] | ["users", _, "factors"] | ["users", _, "groups"] => {
            "okta.users.read"
        }
        ["users", _, "roles"]
        | ["groups", _, "roles"]
        | ["iam", "assignees", "users"]
        | ["iam", "roles"] => "okta.roles.read",
        ["groups"] | ["groups", _] | ["groups", _, "users"] => "okta.groups.read",
        ["logs"] => "okta.logs.read",
        _ => return None,
    })
}

fn route(shared: &Shared, parts: &[&str], params: &[(String, String)]) -> Answer {
    let base = shared.base.as_str();
    match parts {
        ["users"] => list_users(shared, params),
        ["users", id] => Ok(Reply::json(200, find_user(shared, id)?.to_json(base))),
        ["users", id, "factors"] => {
            let user = find_user(shared, id)?;
            let factors = shared.read().factors_of(&user.id);
            let body: Vec<Value> = factors
                .iter()
                .map(|f| factor_json(f, &user.id, base))
                .collect();
            Ok(Reply::json(200, Value::Array(body)))
        }
        ["users", id, "groups"] => {
            let user = find_user(shared, id)?;
            let org = shared.read();
            let body: Vec<Value> = org
                .groups_of(&user.id)
                .iter()
                .filter_map(|g| org.groups.get(g))
                .map(|g| group_json(g, base, None))
                .collect();
            Ok(Reply::json(200, Value::Array(body)))
        }
        ["users", id, "roles"] => {
            let user = find_user(shared, id)?;
            let org = shared.read();
            let roles = if shared.config.user_roles_include_group_held {
                org.effective_roles(&user.id)
            } else {
                org.roles_of(&user.id)
            };
            Ok(Reply::json(
                200,
                Value::Array(roles.iter().map(|r| role_json(r, base)).collect()),
            ))
        }
        ["groups"] => list_groups(shared, params),
        ["groups", id] => {
            let org = shared.read();
            let group = org
                .groups
                .get(*id)
                .ok_or_else(|| OktaError::not_found(id, "UserGroup"))?;
            Ok(Reply::json(200, group_json(group, base, None)))
        }
        ["groups", id, "users"] => group_users(shared, id, params),
        ["groups", id, "roles"] => {
            let org = shared.read();
            if !org.groups.contains_key(*id) {
                return Err(OktaError::not_found(id, "UserGroup"));
            }
            let roles = org.roles_of_group(id);
            Ok(Reply::json(
                200,
                Value::Array(roles.iter().map(|r| role_json(r, base)).collect()),
            ))
        }
        ["iam", "assignees", "users"] => assignees(shared, params),
        ["iam", "roles"] => {
            let org = shared.read();
            let roles: Vec<Value> = org
                .custom_roles()
                .map(|r| json!({"id": r.id, "label": r.label, "description": r.description,
                    "created": format_ms(r.created), "lastUpdated": format_ms(r.created),
                    "_links": {"permissions": {"href": format!("{base}/api/v1/iam/roles/{}/permissions", r.id)}}}))
                .collect();
            Ok(Reply::json(200, json!({"roles": roles, "_links": {}})))
        }
        ["logs"] => logs(shared, params),
        _ => Err(OktaError::not_found(&parts.join("/"), "Resource")),
    }
}

/// Answers one request (after the concurrency check made by the server).
pub(crate) fn handle(shared: &Shared, request: &HttpRequest) -> Reply {
    let now = shared.clock.now_ms();
    let url = format!("{}{}", shared.base, request.path);
    let dpop: Vec<&str> = request
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("dpop"))
        .map(|(_, v)| v.as_str())
        .collect();
    if request.path == "/.well-known/okta-organization" {
        let org_id = shared.read().org_id.clone();
        return Reply::json(
            200,
            json!({"id": org_id, "pipeline": "idx",
            "_links": {"organization": {"href": shared.base}}}),
        );
    }
    if request.path == "/oauth2/v1/token" {
        let form: HashMap<String, String> =
            form_urlencoded::parse(&request.body).into_owned().collect();
        let presented = Presented {
            method: &request.method,
            url,
            authorization: request.header("authorization"),
            dpop,
            form,
        };
        let client = presented
            .form
            .get("client_id")
            .cloned()
            .unwrap_or_else(|| "token-endpoint".into());
        let admission = shared.admit(Bucket::Token, &client, 100);
        if !admission.allowed {
            return shared
                .error(OktaError::rate_limited())
                .with_rate(&admission);
        }
        let apps = shared.apps();
        let reply = shared
            .auth()
            .token(&apps, &presented, now, shared.config.token_lifetime_secs);
        return reply.with_rate(&admission);
    }
    let Some(rest) = request.path.strip_prefix("/api/v1/") else {
        return shared.error(OktaError::not_found(&request.path, "Resource"));
    };
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let parts: Vec<String> = parts
        .iter()
        .map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let presented = Presented {
        method: &request.method,
        url,
        authorization: request.header("authorization"),
        dpop,
        form: HashMap::new(),
    };
    let api_tokens = shared.api_tokens();
    let principal = match shared.auth().authenticate(&api_tokens, &presented, now) {
        Ok(p) => p,
        Err(AuthFailure::Missing) => return shared.error(OktaError::no_session()),
        Err(AuthFailure::Invalid(why)) => {
            return shared.error(OktaError::invalid_token().with_cause(why))
        }
        Err(AuthFailure::BadProof(why)) => {
            let header = format!(
                "DPoP algs=\"RS256 RS384 RS512 ES256 ES384\", error=\"invalid_dpop_proof\", error_description=\"{}\"",
                why.replace('"', "'")
            );
            return shared.error(
                OktaError::invalid_token()
                    .with_cause(why)
                    .with_header("WWW-Authenticate", header),
            );
        }
    };
    let bucket = Bucket::of(&request.method, &request.path).unwrap_or(Bucket::OtherApi);
    let admission = shared.admit(
        bucket,
        &principal.client(),
        shared.config.client_share_percent,
    );
    if !admission.allowed {
        return shared
            .error(OktaError::rate_limited())
            .with_rate(&admission);
    }
    if request.method != "GET" {
        let error = OktaError::new(
            405,
            "E0000022",
            "The endpoint does not support the provided HTTP method",
        )
        .with_header("Allow", "GET");
        return shared.error(error).with_rate(&admission);
    }
    let Some(scope) = scope_of(&parts) else {
        return shared
            .error(OktaError::not_found(rest, "Resource"))
            .with_rate(&admission);
    };
    if !principal.has_scope(scope) {
        let www = format!(
            "Bearer authorization_uri=\"{base}/oauth2/v1/authorize\", realm=\"{base}\", scope=\"{scope}\", error=\"insufficient_scope\", error_description=\"The access token provided does not contain the required scopes.\", resource=\"{path}\"",
            base = shared.base,
            path = request.path
        );
        let error = OktaError::forbidden()
            .with_cause(format!("the access token lacks the scope {scope}"))
            .with_header("WWW-Authenticate", www);
        return shared.error(error).with_rate(&admission);
    }
    shared.count_served(bucket, &principal.client());
    let params = params(request.query.as_deref());
    match route(shared, &parts, &params) {
        Ok(mut reply) => {
            // `Content-Type: application/json; okta-response=…`: `omitCredentials` "Omits the
            // credentials subobject", `omitTransitioningToStatus` the `transitioningToStatus`
            // field (spec parameter `OktaResponse`; the emulator has no credential links).
            let content_type = request.header("content-type").unwrap_or("");
            let mut omit = Vec::new();
            if content_type.contains("omitCredentials") {
                omit.push("credentials");
            }
            if content_type.contains("omitTransitioningToStatus") {
                omit.push("transitioningToStatus");
            }
            let trim = |item: &mut Value| {
                if let Some(map) = item.as_object_mut() {
                    for key in &omit {
                        map.remove(*key);
                    }
                }
            };
            match &mut reply.body {
                Value::Array(items) => items.iter_mut().for_each(trim),
                item => trim(item),
            }
            reply.with_rate(&admission)
        }
        Err(error) => shared.error(error).with_rate(&admission),
    }
}
