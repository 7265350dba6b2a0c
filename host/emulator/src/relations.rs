//! Per-user relations and the bulk lists around them: `memberOf`, transitive directory
//! roles, authentication methods, `/groups` (+ members), `/directoryRoles` (+ members) and the
//! registration-details report (+ one user's row).
//!
//! Role members are what Graph lists: direct members only, users and role-assignable groups;
//! a user holding a role through a group is a member of the group
//! (`/groups/{id}/members`), not of the role. The `viaGroup` key that ties an inherited role
//! to its group in the tenant data is never served.
//!
//! These are the requests a connector makes once per user (tens of thousands in a run), so
//! they must be cheap and page like Graph: `$top` or the configured page size (at most 500
//! links a page), opaque skip tokens, `@odata.count` on the first page when `$count=true`
//! (which needs `ConsistencyLevel: eventual`; OData casts need both). Each endpoint checks the
//! application permissions its documentation lists, and refuses the query options it does
//! not. The bulk lists are the alternatives Microsoft recommends
//! over per-user calls; they are derived from the same data so both paths agree.

use std::borrow::Borrow;

use serde_json::{json, Map, Value};

use crate::directory::Catalog;
use crate::generate::{fnv1a, guid};
use crate::graph::{collection, eventual};
use crate::odata::{
    decode_token, encode_token, parse_count, parse_filter, parse_free_select, parse_top,
    FilterExpr, QueryOptions,
};
use crate::registration;
use crate::reply::{GraphError, Reply};
use crate::server::{HttpRequest, Shared};
use crate::tenant::{SimUser, VIA_GROUP};
use crate::users::non_premium;

/// Most directory links (members, memberOf entries) one page holds, whatever `$top` asks
/// (1..=999 is accepted; 501..=999 is served as 500). Source: a Microsoft answer on delta page
/// sizes, <https://learn.microsoft.com/en-us/answers/a/2052165> ("500 for directory link objects
/// (group members, for example) … Even if a higher value is specified, the API will cap the page
/// size to these limits"), and concepts/paging.md ("the requested page size might be ignored, it
/// might default to the maximum page size for that API"). `generous` serves up to 999.
pub(crate) const LINK_PAGE_CAP: usize = 500;

/// The 400 an OData cast on a member list gets without the advanced-query parameters. Source:
/// concepts/aad-advanced-queries.md, "Query scenarios that require advanced query
/// capabilities": "Use of OData cast with transitive members list" requires
/// `ConsistencyLevel: eventual` and `$count=true`; missing either answers
/// `Request_UnsupportedQuery`.
fn cast_needs_advanced_query() -> GraphError {
    GraphError::unsupported_query(
        "The OData cast on this member list is supported only in advanced queries: add the $count=true query parameter and the ConsistencyLevel:eventual header. Refer to https://aka.ms/graph-docs/advanced-queries for more information",
    )
}

/// Permissions that let an app read group members. Source: group-list-members-permissions.md
/// ("Application: GroupMember.Read.All | Directory.Read.All, Group.Read.All, …"); the same
/// holds for `/groups` (group-list-permissions.md) and `groups/delta`
/// (group-delta-permissions.md). Write permissions are not modelled.
pub(crate) const GROUP_PERMISSIONS: &[&str] = &[
    "GroupMember.Read.All",
    "Group.Read.All",
    "Directory.Read.All",
];

/// Permission to read other users' authentication methods. Source:
/// authentication-list-methods-2-permissions.md ("Application:
/// UserAuthenticationMethod.Read.All | UserAuthenticationMethod.ReadWrite.All").
const METHOD_PERMISSIONS: &[&str] = &["UserAuthenticationMethod.Read.All"];

/// Permissions of the registration report. Source:
/// authenticationmethodsroot-list-userregistrationdetails-permissions.md ("Application:
/// AuditLog.Read.All | UserAuthenticationMethod.Read.All").
const REPORT_PERMISSIONS: &[&str] = &["AuditLog.Read.All", "UserAuthenticationMethod.Read.All"];

/// The 403 of the registration report without its permissions: the reports service answers
/// `Authentication_MSGraphPermissionMissing` naming AuditLog.Read.All (reply.rs).
fn report_permission(shared: &Shared) -> Result<(), GraphError> {
    if shared.has_any(REPORT_PERMISSIONS) {
        Ok(())
    } else {
        Err(GraphError::permission_missing("AuditLog.Read.All"))
    }
}

/// The fixed id Graph gives every user's password method. Source: authenticationmethods-get-started.md
/// ("`28c10230-6103-485e-b985-444c60001490` is the globally unique ID of the password
/// authentication method across Microsoft Entra ID").
const PASSWORD_METHOD_ID: &str = "28c10230-6103-485e-b985-444c60001490";

/// The query of a paged relation list, checked.
struct ListQuery {
    opts: QueryOptions,
    select: Option<Vec<String>>,
    top: usize,
    count: bool,
    offset: usize,
    fingerprint: String,
}

impl ListQuery {
    /// Reads `$select`, `$top`, `$count` and `$skiptoken`; `scope` ties skip tokens to the
    /// list they came from (e.g. the user id). A page holds at most [`LINK_PAGE_CAP`] items
    /// unless `generous`.
    fn parse(
        shared: &Shared,
        request: &HttpRequest,
        scope: &str,
        default_top: usize,
    ) -> Result<ListQuery, GraphError> {
        ListQuery::parse_with(
            shared,
            request,
            scope,
            default_top,
            &["$select", "$top", "$count", "$skiptoken"],
        )
    }

    /// Like [`ListQuery::parse`], accepting only the options in `allowed`.
    fn parse_with(
        shared: &Shared,
        request: &HttpRequest,
        scope: &str,
        default_top: usize,
        allowed: &[&str],
    ) -> Result<ListQuery, GraphError> {
        let opts = QueryOptions::parse(request.query.as_deref(), allowed)?;
        let select = opts.get("$select").map(parse_free_select);
        let top = parse_top(opts.get("$top"), 999, default_top.max(1))?;
        let top = if shared.config.generous {
            top
        } else {
            top.min(LINK_PAGE_CAP)
        };
        let count = parse_count(opts.get("$count"))?;
        if count && !eventual(request) {
            return Err(GraphError::unsupported_query(
                "$count is an advanced query: send the header 'ConsistencyLevel: eventual' with it, on every page.",
            ));
        }
        let fingerprint = opts.fingerprint(scope);
        let offset = match opts.get("$skiptoken") {
            None => 0,
            Some(token) => decode_offset(token, &fingerprint)?,
        };
        Ok(ListQuery {
            opts,
            select,
            top,
            count,
            offset,
            fingerprint,
        })
    }

    /// The page of `items` this query asks for, with its next link.
    fn page<T: Borrow<Value>>(
        &self,
        shared: &Shared,
        request: &HttpRequest,
        context: String,
        items: &[T],
    ) -> Reply {
        self.page_of(shared, request, context, items, |item| {
            item.borrow().clone()
        })
    }

    /// Like [`ListQuery::page`], rendering only the items of the page (`render`).
    fn page_of<T>(
        &self,
        shared: &Shared,
        request: &HttpRequest,
        context: String,
        items: &[T],
        render: impl Fn(&T) -> Value,
    ) -> Reply {
        let start = self.offset.min(items.len());
        let end = start.saturating_add(self.top).min(items.len());
        let value = items[start..end]
            .iter()
            .map(|item| select_object(&render(item), self.select.as_deref()))
            .collect();
        let next_link = (end < items.len()).then(|| {
            let token =
                encode_token(&["list".to_owned(), self.fingerprint.clone(), end.to_string()]);
            self.opts
                .next_link(&shared.graph_base, &request.path, &token)
        });
        let count = (self.count && self.offset == 0).then_some(items.len());
        collection(context, count, value, next_link)
    }
}

fn decode_offset(token: &str, fingerprint: &str) -> Result<usize, GraphError> {
    let invalid = || {
        GraphError::bad_request(
            "The $skiptoken is invalid or does not belong to this query: follow @odata.nextLink exactly as received.",
        )
    };
    let fields = decode_token(token).ok_or_else(invalid)?;
    match fields.as_slice() {
        [kind, fp, offset] if kind == "list" && fp == fingerprint => {
            offset.parse().map_err(|_| invalid())
        }
        _ => Err(invalid()),
    }
}

/// A directory object cut to `$select` (names matched in any case); `@odata.type` and `id`
/// always stay; the tenant data's own `viaGroup` key never leaves.
fn select_object(object: &Value, select: Option<&[String]>) -> Value {
    let Some(map) = object.as_object() else {
        return object.clone();
    };
    let Some(select) = select else {
        if !map.contains_key(VIA_GROUP) {
            return object.clone();
        }
        let mut out = map.clone();
        out.remove(VIA_GROUP);
        return Value::Object(out);
    };
    let out: Map<String, Value> = map
        .iter()
        .filter(|(key, _)| {
            *key == "@odata.type"
                || *key == "id"
                || (*key != VIA_GROUP && select.iter().any(|s| s.eq_ignore_ascii_case(key)))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(out)
}

fn page_size(shared: &Shared) -> usize {
    shared.config.member_of_page_size
}

/// `GET /v1.0/users/{id}/memberOf`: the stored direct memberships.
pub(crate) fn member_of(
    shared: &Shared,
    request: &HttpRequest,
    id: &str,
) -> Result<Reply, GraphError> {
    let query = ListQuery::parse(
        shared,
        request,
        &format!("memberOf/{id}"),
        page_size(shared),
    )?;
    let directory = shared.read();
    let entry = directory
        .find(id)
        .ok_or_else(|| GraphError::resource_not_found(id))?;
    let context = format!("{}/v1.0/$metadata#directoryObjects", shared.graph_base);
    let member_of = directory.member_of(entry);
    drop(directory);
    Ok(query.page(shared, request, context, &member_of))
}

/// `GET /v1.0/users/{id}/transitiveMemberOf/microsoft.graph.directoryRole`: direct and
/// inherited roles, de-duplicated by id.
pub(crate) fn transitive_roles(
    shared: &Shared,
    request: &HttpRequest,
    id: &str,
) -> Result<Reply, GraphError> {
    let query = ListQuery::parse(shared, request, &format!("roles/{id}"), page_size(shared))?;
    if !(shared.config.generous || query.count && eventual(request)) {
        return Err(cast_needs_advanced_query());
    }
    let directory = shared.read();
    let entry = directory
        .find(id)
        .ok_or_else(|| GraphError::resource_not_found(id))?;
    let sim = directory.sim(entry);
    let roles = sim.directory_roles();
    let context = format!("{}/v1.0/$metadata#directoryRoles", shared.graph_base);
    Ok(query.page(shared, request, context, &roles))
}

/// The authentication-method objects of a user, with stable ids.
pub(crate) fn method_objects(sim: &SimUser) -> Vec<Value> {
    let owner = fnv1a(sim.id().unwrap_or_default().as_bytes());
    sim.auth_methods
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            let id = if kind == "#microsoft.graph.passwordAuthenticationMethod" {
                PASSWORD_METHOD_ID.to_owned()
            } else {
                guid(owner, kind, i as u64)
            };
            json!({"@odata.type": kind, "id": id})
        })
        .collect()
}

/// `GET /v1.0/users/{id}/authentication/methods`.
pub(crate) fn auth_methods(
    shared: &Shared,
    request: &HttpRequest,
    id: &str,
) -> Result<Reply, GraphError> {
    // authentication-list-methods.md: "This method does not support optional query
    // parameters to customize the response." Only the emulator's own $skiptoken (in the next
    // links it writes) is accepted, unless generous.
    let query = if shared.config.generous {
        ListQuery::parse(shared, request, &format!("methods/{id}"), page_size(shared))?
    } else {
        ListQuery::parse_with(
            shared,
            request,
            &format!("methods/{id}"),
            page_size(shared),
            &["$skiptoken"],
        )?
    };
    shared.require_any(METHOD_PERMISSIONS)?;
    let directory = shared.read();
    let entry = directory
        .find(id)
        .ok_or_else(|| GraphError::resource_not_found(id))?;
    let sim = directory.sim(entry);
    let methods = method_objects(&sim);
    let user_id = sim.id().unwrap_or(id).to_owned();
    drop(directory);
    let context = format!(
        "{}/v1.0/$metadata#users('{user_id}')/authentication/methods",
        shared.graph_base
    );
    Ok(query.page(shared, request, context, &methods))
}

/// `GET /v1.0/groups`: every group found in any user's `memberOf`.
pub(crate) fn groups(shared: &Shared, request: &HttpRequest) -> Result<Reply, GraphError> {
    let query = ListQuery::parse(shared, request, "groups", 100)?;
    shared.require_any(GROUP_PERMISSIONS)?;
    let directory = shared.read();
    let catalog = directory.catalog();
    let context = format!("{}/v1.0/$metadata#groups", shared.graph_base);
    Ok(
        query.page_of(shared, request, context, &catalog.groups, |g| {
            directory.group(g.object)
        }),
    )
}

/// `GET /v1.0/directoryRoles`: every role held by anyone (not paged).
pub(crate) fn directory_roles(shared: &Shared, request: &HttpRequest) -> Result<Reply, GraphError> {
    let opts = QueryOptions::parse(request.query.as_deref(), &["$select"])?;
    let select = opts.get("$select").map(parse_free_select);
    let catalog = shared.read().catalog();
    let value = catalog
        .roles
        .iter()
        .map(|r| select_object(r, select.as_deref()))
        .collect();
    let context = format!("{}/v1.0/$metadata#directoryRoles", shared.graph_base);
    Ok(collection(context, None, value, None))
}

/// `GET /v1.0/directoryRoles/{id}/members`: the role's direct members (not paged) — users
/// holding it directly (or inherited without a `viaGroup`) and each role-assignable group
/// granting it, once.
pub(crate) fn role_members(
    shared: &Shared,
    request: &HttpRequest,
    id: &str,
) -> Result<Reply, GraphError> {
    let opts = QueryOptions::parse(request.query.as_deref(), &["$select"])?;
    let select = opts.get("$select").map(parse_free_select);
    let catalog = shared.read().catalog();
    let members = catalog
        .role_members
        .get(id)
        .ok_or_else(|| GraphError::resource_not_found(id))?;
    let value = members
        .iter()
        .map(|m| select_object(m, select.as_deref()))
        .collect();
    let context = format!("{}/v1.0/$metadata#directoryObjects", shared.graph_base);
    Ok(collection(context, None, value, None))
}

/// `GET /v1.0/groups/{id}/members` and `…/transitiveMembers/microsoft.graph.user`: the users
/// whose `memberOf` holds the group (groups do not nest here, so both lists agree), paged
/// like the other relation lists (`$top` 1..=999, at most 500 served, default 100). The cast
/// (`cast`) is an advanced query.
pub(crate) fn group_members(
    shared: &Shared,
    request: &HttpRequest,
    id: &str,
    cast: bool,
) -> Result<Reply, GraphError> {
    let query = ListQuery::parse(shared, request, &format!("groupMembers/{id}"), 100)?;
    if cast && !shared.config.generous && !(query.count && eventual(request)) {
        return Err(cast_needs_advanced_query());
    }
    shared.require_any(GROUP_PERMISSIONS)?;
    let directory = shared.read();
    let catalog = directory.catalog();
    let members = catalog
        .group_members
        .get(id)
        .ok_or_else(|| GraphError::resource_not_found(id))?;
    let context = format!("{}/v1.0/$metadata#users", shared.graph_base);
    Ok(query.page_of(shared, request, context, members, |&seq| {
        directory.user_reference(seq)
    }))
}

/// `GET /v1.0/reports/authenticationMethods/userRegistrationDetails/{id}`: one user's row
/// (needs P1/P2, like the list, then AuditLog.Read.All). userregistrationdetails-get.md: "This
/// method does not support the OData query parameters": any query option is refused (400)
/// unless `generous`, which keeps `$select`.
pub(crate) fn registration_detail(
    shared: &Shared,
    request: &HttpRequest,
    id: &str,
) -> Result<Reply, GraphError> {
    let allowed: &[&str] = if shared.config.generous {
        &["$select"]
    } else {
        &[]
    };
    let opts = QueryOptions::parse(request.query.as_deref(), allowed)?;
    if !shared.premium() {
        return Err(non_premium());
    }
    report_permission(shared)?;
    let select = opts.get("$select").map(parse_free_select);
    let row = {
        let directory = shared.read();
        let entry = directory
            .find(id)
            .ok_or_else(|| GraphError::resource_not_found(id))?;
        report_row(&directory.catalog(), &directory.user_and_methods(entry))
    };
    let mut body = select_object(&row, select.as_deref());
    if let Some(object) = body.as_object_mut() {
        object.insert(
            "@odata.context".into(),
            json!(format!(
                "{}/v1.0/$metadata#reports/authenticationMethods/userRegistrationDetails/$entity",
                shared.graph_base
            )),
        );
    }
    Ok(Reply::graph_json(200, body))
}

/// A user's report row, `isAdmin` from the directory's active role holders.
fn report_row(catalog: &Catalog, sim: &SimUser) -> Value {
    let is_admin = sim
        .id()
        .is_some_and(|id| catalog.active_admins.contains(id));
    registration::row(sim, is_admin)
}

/// Report properties `$filter` may name here, with `eq` (`in` on `id` only). Source:
/// resources/userregistrationdetails.md ("Supports `$filter` (`eq`)" on isMfaCapable,
/// isMfaRegistered, isPasswordlessCapable, isSsprRegistered, …; `eq`, `startsWith` on
/// userPrincipalName and userDisplayName). The docs do not mark `id` filterable; `id eq` and
/// `id in (…)` (at most 15 values, known-issues.md) are accepted because the connector's
/// targeted re-reads need them and the by-id GET exists anyway — a known leniency.
/// `lastUpdatedDateTime` is not filterable per the docs: refused. Documented filters on
/// properties the emulator does not serve (isSsprEnabled, methodsRegistered/any, …) and
/// `startsWith` are refused too (stricter).
const REPORT_FILTERABLE: &[&str] = &[
    "id",
    "userPrincipalName",
    "userDisplayName",
    "isMfaRegistered",
    "isMfaCapable",
    "isPasswordlessCapable",
    "isSsprRegistered",
];

fn report_filter(text: &str, request: &HttpRequest) -> Result<FilterExpr, GraphError> {
    let filter = parse_filter(text)?;
    filter.check_in_limit(false, request)?;
    for clause in &filter.clauses {
        let known = REPORT_FILTERABLE
            .iter()
            .any(|p| p.eq_ignore_ascii_case(&clause.property));
        if !known || (clause.is_in && !clause.property.eq_ignore_ascii_case("id")) {
            return Err(GraphError::bad_request(format!(
                "Invalid filter clause: the property '{}' of 'microsoft.graph.userRegistrationDetails' is not filterable{}.",
                clause.property,
                if clause.is_in { " with 'in'" } else { "" }
            )));
        }
    }
    Ok(filter)
}

/// `$orderby` of the report: `userPrincipalName` or `userDisplayName`, `asc` or `desc`
/// (resources/userregistrationdetails.md marks only those two "Supports … `$orderby`").
fn report_order(text: &str) -> Result<(&'static str, bool), GraphError> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let (property, descending) = match words.as_slice() {
        [p] => (*p, false),
        [p, d] if d.eq_ignore_ascii_case("asc") => (*p, false),
        [p, d] if d.eq_ignore_ascii_case("desc") => (*p, true),
        _ => ("", false),
    };
    ["userPrincipalName", "userDisplayName"]
        .into_iter()
        .find(|k| k.eq_ignore_ascii_case(property))
        .map(|k| (k, descending))
        .ok_or_else(|| {
            GraphError::bad_request(format!(
                "Sorting by '{text}' is not supported: order by userPrincipalName or userDisplayName."
            ))
        })
}

/// Default page size of the report (and its only size without `$top`). Its API page gives
/// none; 100 stands in, the default of Graph's directory lists (user-list.md, group-list.md:
/// "The default and maximum page sizes are 100 and 999 … objects respectively").
const REPORT_PAGE_SIZE: usize = 100;

/// The page size `$top` asks of the report when [`EmulatorConfig::registration_top`] accepts
/// it: 1..=999 (the ceiling Microsoft's Entra PowerShell cmdlets send); anything else is a 400
/// `BadRequest` naming `$top`.
///
/// [`EmulatorConfig::registration_top`]: crate::EmulatorConfig::registration_top
fn report_top(value: &str) -> Result<usize, GraphError> {
    match value.trim().parse::<usize>() {
        Ok(top @ 1..=999) => Ok(top),
        _ => Err(GraphError::bad_request(format!(
            "Invalid value '{value}' for query option '$top' of userRegistrationDetails: expected an integer from 1 to 999."
        ))),
    }
}

/// `GET /v1.0/reports/authenticationMethods/userRegistrationDetails` (needs P1/P2, then
/// AuditLog.Read.All). authenticationmethodsroot-list-userregistrationdetails.md: "This method
/// supports only the `$filter` and `$orderBy` OData query parameters": `$select` and `$top` are
/// refused (400) unless `generous`; `$top` (1..=999) is accepted when
/// [`EmulatorConfig::registration_top`](crate::EmulatorConfig::registration_top) is on, as
/// Microsoft's own Entra PowerShell module sends it.
pub(crate) fn registration_details(
    shared: &Shared,
    request: &HttpRequest,
) -> Result<Reply, GraphError> {
    let generous = shared.config.generous;
    let top_allowed = shared.registration_top();
    let opts = QueryOptions::parse(
        request.query.as_deref(),
        &["$filter", "$orderby", "$select", "$top", "$skiptoken"],
    )?;
    if !generous {
        let refused = |n: &str| n == "$select" || (n == "$top" && !top_allowed);
        if let Some(name) = opts.names().find(|n| refused(n)) {
            return Err(GraphError::bad_request(format!(
                "The query option '{name}' is not supported by userRegistrationDetails: only $filter and $orderby are."
            )));
        }
    }
    let top = match opts.get("$top") {
        Some(value) if !generous => report_top(value)?,
        value => parse_top(value, 999, REPORT_PAGE_SIZE)?,
    };
    if !shared.premium() {
        return Err(non_premium());
    }
    report_permission(shared)?;
    let select = opts.get("$select").map(parse_free_select);
    let filter = opts
        .get("$filter")
        .map(|f| report_filter(f, request))
        .transpose()?;
    let order = opts.get("$orderby").map(report_order).transpose()?;
    let fingerprint = opts.fingerprint("registration");
    let invalid = || {
        GraphError::bad_request(
            "The $skiptoken is invalid or does not belong to this query: follow @odata.nextLink exactly as received.",
        )
    };
    // Unsorted: resume after a user sequence number; sorted: after an offset in the order.
    let after = match opts.get("$skiptoken") {
        None => None,
        Some(token) => match decode_token(token).as_deref() {
            Some([kind, fp, n]) if kind == "registration" && *fp == fingerprint => {
                Some(n.parse::<u64>().map_err(|_| invalid())?)
            }
            _ => return Err(invalid()),
        },
    };
    let matches = |row: &Value| filter.as_ref().is_none_or(|f| f.matches(row));
    let (value, next) = {
        let directory = shared.read();
        let catalog = directory.catalog();
        match order {
            None => {
                let mut rows = directory
                    .users_after(after)
                    .map(|(seq, e)| (seq, report_row(&catalog, &directory.user_and_methods(e))))
                    .filter(|(_, row)| matches(row));
                let page: Vec<(u64, Value)> = rows.by_ref().take(top).collect();
                let more = rows.next().is_some();
                let next = page.last().filter(|_| more).map(|(seq, _)| *seq);
                let value: Vec<Value> = page
                    .iter()
                    .map(|(_, row)| select_object(row, select.as_deref()))
                    .collect();
                (value, next)
            }
            Some((property, descending)) => {
                let mut rows: Vec<(String, u64, Value)> = directory
                    .users_after(None)
                    .map(|(seq, e)| (seq, report_row(&catalog, &directory.user_and_methods(e))))
                    .filter(|(_, row)| matches(row))
                    .map(|(seq, row)| {
                        let key = row[property].as_str().unwrap_or("").to_lowercase();
                        (key, seq, row)
                    })
                    .collect();
                rows.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
                if descending {
                    rows.reverse();
                }
                let start = usize::try_from(after.unwrap_or(0)).unwrap_or(usize::MAX);
                let start = start.min(rows.len());
                let end = start.saturating_add(top).min(rows.len());
                let value = rows[start..end]
                    .iter()
                    .map(|(_, _, row)| select_object(row, select.as_deref()))
                    .collect();
                (value, (end < rows.len()).then_some(end as u64))
            }
        }
    };
    let next_link = next.map(|n| {
        let token = encode_token(&[
            "registration".to_owned(),
            fingerprint.clone(),
            n.to_string(),
        ]);
        opts.next_link(&shared.graph_base, &request.path, &token)
    });
    let context = format!(
        "{}/v1.0/$metadata#reports/authenticationMethods/userRegistrationDetails",
        shared.graph_base
    );
    Ok(collection(context, None, value, next_link))
}
