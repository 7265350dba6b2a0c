//! `GET /v1.0/groups/delta`: groups and their membership changes, round by round.
//!
//! `users/delta` never reports a membership change (memberships are not user properties), so a
//! connector that keeps `user.groups` fresh incrementally reads `groups/delta` with
//! `$select=…,members`. Per <https://learn.microsoft.com/graph/api/group-delta> (and
//! concepts/delta-query-overview.md):
//!
//! - `$select` picks group properties and the `members` relationship ("You can use
//!   `$select=members` to get membership changes … Only the **id** property of the related
//!   resource is returned"); without `$select` every property and `members` are tracked (the
//!   docs' first example shows `members@delta` without `$select`).
//! - `$expand`, `$top`, `$orderby` are not supported for groups (delta-query-overview.md); nor
//!   are `$count` and `$search`. `$filter=id eq '…'` is documented but not emulated: refused
//!   (stricter).
//! - The first round lists every group with `members@delta` holding its direct members; later
//!   rounds (following `@odata.deltaLink`) list only groups whose selected properties or
//!   membership changed, `members@delta` holding only the changed links, a removed member as
//!   `{"@odata.type", "id", "@removed": {"reason": "deleted"}}`.
//! - Pages: at most `Prefer: odata.maxpagesize` groups (default and most 200, "200 for
//!   objects") and at most 500 member links ("500 for directory link objects (group members,
//!   for example)", <https://learn.microsoft.com/en-us/answers/a/2052165>); a bigger group is
//!   split, appearing again on the next page with the rest of its links.
//! - Delta tokens expire like those of `users/delta`
//!   ([`Emulator::expire_delta_tokens`](crate::Emulator::expire_delta_tokens)).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::directory::GroupChange;
use crate::odata::{decode_token, encode_token, QueryOptions};
use crate::relations::{GROUP_PERMISSIONS, LINK_PAGE_CAP};
use crate::reply::{GraphError, Reply};
use crate::server::{HttpRequest, Shared};
use crate::users::delta_page_size;

/// The properties of `microsoft.graph.group` (v1.0) that `$select` accepts, besides `members`.
const GROUP_PROPERTIES: &[&str] = &[
    "id",
    "allowExternalSenders",
    "assignedLabels",
    "assignedLicenses",
    "autoSubscribeNewMembers",
    "classification",
    "createdDateTime",
    "deletedDateTime",
    "description",
    "displayName",
    "expirationDateTime",
    "groupTypes",
    "hasMembersWithLicenseErrors",
    "hideFromAddressLists",
    "hideFromOutlookClients",
    "isArchived",
    "isAssignableToRole",
    "isSubscribedByMail",
    "licenseProcessingState",
    "mail",
    "mailEnabled",
    "mailNickname",
    "membershipRule",
    "membershipRuleProcessingState",
    "onPremisesDomainName",
    "onPremisesLastSyncDateTime",
    "onPremisesNetBiosName",
    "onPremisesProvisioningErrors",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "preferredDataLocation",
    "preferredLanguage",
    "proxyAddresses",
    "renewedDateTime",
    "securityEnabled",
    "securityIdentifier",
    "serviceProvisioningErrors",
    "theme",
    "uniqueName",
    "unseenCount",
    "visibility",
];

/// Group relationships of type directoryObject collection the docs allow in `$select` but the
/// emulator does not model: refused rather than answered empty.
const UNMODELLED_RELATIONSHIPS: &[&str] = &["owners", "acceptedSenders", "rejectedSenders"];

/// What a round tracks: `None` = every property (no `$select`), and whether `members` is in.
#[derive(Clone, Debug)]
struct Selection {
    properties: Option<Vec<&'static str>>,
    members: bool,
}

impl Selection {
    fn parse(text: Option<&str>) -> Result<Selection, GraphError> {
        let Some(text) = text else {
            return Ok(Selection {
                properties: None,
                members: true,
            });
        };
        let mut properties = Vec::new();
        let mut members = false;
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name.eq_ignore_ascii_case("members") {
                members = true;
            } else if let Some(p) = GROUP_PROPERTIES
                .iter()
                .find(|p| p.eq_ignore_ascii_case(name))
            {
                if !properties.contains(p) {
                    properties.push(*p);
                }
            } else if UNMODELLED_RELATIONSHIPS
                .iter()
                .any(|r| r.eq_ignore_ascii_case(name))
            {
                return Err(GraphError::unsupported_query(format!(
                    "Tracking '{name}' in groups/delta is not supported by the emulator: select properties and members."
                )));
            } else {
                return Err(GraphError::bad_request(format!(
                    "Could not find a property named '{name}' on type 'microsoft.graph.group'."
                )));
            }
        }
        if properties.is_empty() && !members {
            return Err(GraphError::bad_request(
                "The query specified in the URI is not valid: $select is empty.",
            ));
        }
        Ok(Selection {
            properties: Some(properties),
            members,
        })
    }

    fn encode(&self) -> String {
        let mut names: Vec<&str> = match &self.properties {
            None => vec!["*"],
            Some(p) => p.clone(),
        };
        if self.members {
            names.push("members");
        }
        names.join(",")
    }

    fn decode(text: &str) -> Option<Selection> {
        if text == "*,members" {
            return Selection::parse(None).ok();
        }
        Selection::parse(Some(text)).ok()
    }

    /// Whether a property change is tracked.
    fn tracks_properties(&self) -> bool {
        self.properties
            .as_ref()
            .is_none_or(|p| p.iter().any(|n| *n != "id"))
    }

    /// The group object cut to the selection (`id` always).
    fn project(&self, group: &Value) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("id".into(), group.get("id").cloned().unwrap_or(Value::Null));
        match &self.properties {
            None => {
                if let Some(map) = group.as_object() {
                    for (k, v) in map {
                        if k != "id" {
                            out.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            Some(names) => {
                for name in names.iter().filter(|n| **n != "id") {
                    if let Some(v) = group.get(*name) {
                        out.insert((*name).to_owned(), v.clone());
                    }
                }
            }
        }
        out
    }
}

/// Member links as (user id, removed), rendered for the page only.
type Links<'a> = Vec<(&'a str, bool)>;

/// A member link of `members@delta`.
fn link(user: &str, removed: bool) -> Value {
    if removed {
        json!({"@odata.type": "#microsoft.graph.user", "id": user, "@removed": {"reason": "deleted"}})
    } else {
        json!({"@odata.type": "#microsoft.graph.user", "id": user})
    }
}

/// A token of a groups/delta round: selection, phase (`full`, `changes`, `link`), the version
/// the changes start after, the version they end at (`changes`), the next group to emit and
/// the member id after which its links resume.
fn token(
    select: &Selection,
    phase: &str,
    since: u64,
    upto: u64,
    group: &str,
    member: &str,
) -> String {
    encode_token(&[
        "gdelta".to_owned(),
        select.encode(),
        phase.to_owned(),
        since.to_string(),
        upto.to_string(),
        group.to_owned(),
        member.to_owned(),
    ])
}

/// `GET /v1.0/groups/delta`.
pub(crate) fn delta(shared: &Shared, request: &HttpRequest) -> Result<Reply, GraphError> {
    let opts = QueryOptions::for_delta(request.query.as_deref(), "groups")?;
    shared.require_any(GROUP_PERMISSIONS)?;
    let (groups_per_page, applied) = delta_page_size(request, shared.config.generous);
    let directory = shared.read();
    let invalid = || {
        GraphError::bad_request(
            "The delta or skip token is invalid: follow @odata.nextLink and @odata.deltaLink exactly as received.",
        )
    };
    let token_text = opts.get("$skiptoken").or(opts.get("$deltatoken"));
    // (selection, changes?, since, upto, next group, member cursor)
    let (select, changes, since, upto, from_group, from_member) = match token_text {
        None => (
            Selection::parse(opts.get("$select"))?,
            false,
            directory.version(),
            0,
            String::new(),
            String::new(),
        ),
        Some(text) => {
            let fields = decode_token(text).ok_or_else(invalid)?;
            let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
            let ["gdelta", select, phase, since, upto, group, member] = fields.as_slice() else {
                return Err(invalid());
            };
            let since: u64 = since.parse().map_err(|_| invalid())?;
            let upto: u64 = upto.parse().map_err(|_| invalid())?;
            if since < directory.delta_floor() {
                let (status, code) = directory.delta_expiry();
                return Err(GraphError::new(
                    status,
                    code,
                    "The sync state generation is not found: the delta token has expired. Start a full synchronization again without a token.",
                ));
            }
            let select = Selection::decode(select).ok_or_else(invalid)?;
            match *phase {
                "full" => (
                    select,
                    false,
                    since,
                    0,
                    (*group).to_owned(),
                    (*member).to_owned(),
                ),
                "changes" => (
                    select,
                    true,
                    since,
                    upto,
                    (*group).to_owned(),
                    (*member).to_owned(),
                ),
                "link" => (
                    select,
                    true,
                    since,
                    directory.version(),
                    String::new(),
                    String::new(),
                ),
                _ => return Err(invalid()),
            }
        }
    };

    // The groups of the round, by id, with their links.
    let catalog = directory.catalog();
    let mut round: BTreeMap<String, (Value, Links)> = BTreeMap::new();
    if changes {
        let mut touched: BTreeSet<&str> = BTreeSet::new();
        let mut links: BTreeMap<&str, BTreeMap<&str, (bool, bool)>> = BTreeMap::new();
        for change in directory.group_changes(since, upto) {
            match change {
                GroupChange::Properties { group } => {
                    touched.insert(group);
                }
                GroupChange::Link { group, user, added } => {
                    links
                        .entry(group)
                        .or_default()
                        .entry(user)
                        .and_modify(|(_, last)| *last = *added)
                        .or_insert((*added, *added));
                }
            }
        }
        let mut listed: BTreeSet<&str> = BTreeSet::new();
        if select.tracks_properties() {
            listed.extend(touched.iter().copied());
        }
        let mut net: BTreeMap<&str, Vec<(&str, bool)>> = BTreeMap::new();
        if select.members {
            for (group, users) in &links {
                // A user was a member before the round iff its first change was a departure,
                // and is one now iff its last change was a join: the link changed iff the first
                // and last changes agree (join…join: in; leave…leave: out).
                let changed: Vec<(&str, bool)> = users
                    .iter()
                    .filter(|(_, (first, last))| first == last)
                    .map(|(user, (_, last))| (*user, !*last))
                    .collect();
                if !changed.is_empty() {
                    listed.insert(group);
                    net.insert(group, changed);
                }
            }
        }
        for group in listed {
            let object = directory
                .known_group(group)
                .unwrap_or_else(|| json!({"id": group}));
            round.insert(
                group.to_owned(),
                (object, net.remove(group).unwrap_or_default()),
            );
        }
    } else {
        // Only the groups this page can reach (from the token's group on, until the page's
        // group and link caps are certainly filled): building every link of the tenant for
        // each page made a 700-group tenant take minutes.
        let by_id = &catalog.groups_by_id;
        let start = by_id.partition_point(|&p| {
            catalog.groups[p as usize].id.as_deref().unwrap_or_default() < from_group.as_str()
        });
        let mut links_so_far = 0usize;
        for group in by_id[start..].iter().map(|&p| &catalog.groups[p as usize]) {
            let id = group.id.as_deref().unwrap_or_default();
            if round.len() > groups_per_page || links_so_far > 2 * LINK_PAGE_CAP + 1 {
                break;
            }
            // The token's group resumes after its member cursor (members are in id order).
            // No page serves more than LINK_PAGE_CAP links of a group, so one more than that
            // (to know there are more) is all a group needs here: a 200,000-member group
            // costs a page no more than a 501-member one.
            let links: Links = if select.members {
                catalog
                    .group_member_ids
                    .get(id)
                    .map(|members| {
                        let from = if id == from_group && !from_member.is_empty() {
                            members.partition_point(|&seq| {
                                directory.user_id(seq).unwrap_or_default() <= from_member.as_str()
                            })
                        } else {
                            0
                        };
                        members[from..]
                            .iter()
                            .filter_map(|&seq| directory.user_id(seq))
                            .take(LINK_PAGE_CAP + 1)
                            .map(|u| (u, false))
                            .collect()
                    })
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            links_so_far += links.len();
            round.insert(id.to_owned(), (directory.group(group.object), links));
        }
    }

    // One page: at most `groups_per_page` groups and LINK_PAGE_CAP links.
    let mut value = Vec::new();
    let mut links_on_page = 0usize;
    let mut next: Option<(String, String)> = None;
    for (id, (object, links)) in round.range(from_group.clone()..) {
        if value.len() == groups_per_page {
            next = Some((id.clone(), String::new()));
            break;
        }
        let start = if *id == from_group && !from_member.is_empty() {
            links.partition_point(|l| l.0 <= from_member.as_str())
        } else {
            0
        };
        let rest = &links[start..];
        let room = LINK_PAGE_CAP - links_on_page;
        let mut out = select.project(object);
        if select.members {
            if rest.len() > room {
                if room == 0 {
                    next = Some((id.clone(), from_cursor(links, start)));
                    break;
                }
                let chunk = &rest[..room];
                out.insert("members@delta".into(), render_links(chunk));
                value.push(Value::Object(out));
                let last = chunk[room - 1].0.to_owned();
                next = Some((id.clone(), last));
                break;
            }
            links_on_page += rest.len();
            out.insert("members@delta".into(), render_links(rest));
        }
        value.push(Value::Object(out));
    }

    let base = &shared.graph_base;
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!("{base}/v1.0/$metadata#groups")),
    );
    body.insert("value".into(), Value::Array(value));
    let phase = if changes { "changes" } else { "full" };
    match next {
        Some((group, member)) => {
            body.insert(
                "@odata.nextLink".into(),
                json!(format!(
                    "{base}/v1.0/groups/delta?$skiptoken={}",
                    token(&select, phase, since, upto, &group, &member)
                )),
            );
        }
        None => {
            let from = if changes { upto } else { since };
            body.insert(
                "@odata.deltaLink".into(),
                json!(format!(
                    "{base}/v1.0/groups/delta?$deltatoken={}",
                    token(&select, "link", from, 0, "", "")
                )),
            );
        }
    }
    let mut reply = Reply::graph_json(200, Value::Object(body));
    if let Some(size) = applied {
        reply = reply.with_header("Preference-Applied", format!("odata.maxpagesize={size}"));
    }
    Ok(reply)
}

/// The member cursor that resumes a group's links at `start` ("" = from its first link).
fn from_cursor(links: &[(&str, bool)], start: usize) -> String {
    start
        .checked_sub(1)
        .and_then(|i| links.get(i))
        .map_or("", |l| l.0)
        .to_owned()
}

/// `members@delta` links as served.
fn render_links(links: &[(&str, bool)]) -> Value {
    links
        .iter()
        .map(|&(user, removed)| link(user, removed))
        .collect()
}
