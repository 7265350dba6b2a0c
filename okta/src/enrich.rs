//! Reading what a user record does not hold: factors, groups and roles, for the walk and for
//! incremental runs (which read changed users by id and emit them complete).

use connector_sdk::doors::{Doors, HttpResponse};
use connector_sdk::paging::Trail;
use connector_sdk::ConnectorError;
use serde_json::Value;

use crate::client::{next_link, path_of, upstream, Client};
use crate::facts;
use crate::map::{Enrichment, FactorRef, GroupRef};
use crate::Ctx;

/// What an answer of an optional part says.
pub enum Part<T> {
    /// Read.
    Read(T),
    /// 403: the credential lacks the scope; the part is unavailable.
    Refused,
    /// 404: the user or group is gone.
    Gone,
}

/// Sorts an answer: 200 parsed by `parse`, 403 refused, 404 gone, 401 and anything else an
/// error naming the request.
pub fn part<T>(
    client: &Client<impl Doors>,
    url: &str,
    resp: &HttpResponse,
    parse: impl FnOnce(&Value) -> Option<T>,
) -> Result<Part<T>, ConnectorError> {
    match resp.status {
        200 => {
            let json: Value = serde_json::from_slice(&resp.body)
                .map_err(|e| upstream(url, format!("the answer is not JSON ({e})")))?;
            parse(&json)
                .map(Part::Read)
                .ok_or_else(|| upstream(url, "the answer is not the documented shape"))
        }
        403 => Ok(Part::Refused),
        404 => Ok(Part::Gone),
        401 => Err(ConnectorError::Auth(format!(
            "{} answered 401: check the secret '{}'",
            path_of(url),
            client.config().secret()
        ))),
        s => Err(upstream(url, format!("status {s}"))),
    }
}

/// An id as one path segment: Okta ids are letters and digits (`00u…`); anything else is
/// percent-encoded so that an id read from a log event cannot change the path.
pub fn seg(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The factors of a `GET /api/v1/users/{id}/factors` answer: each one's `factorType` and
/// `status` (spec, `listFactors`: an array of `UserFactor`).
pub fn factors_of(json: &Value) -> Option<Vec<FactorRef>> {
    Some(
        json.as_array()?
            .iter()
            .filter_map(|f| {
                Some(FactorRef {
                    factor_type: f["factorType"].as_str()?.to_string(),
                    status: f["status"].as_str().unwrap_or_default().to_string(),
                })
            })
            .collect(),
    )
}

/// The role names of a roles answer (`GET /api/v1/users/{id}/roles`,
/// `/api/v1/groups/{id}/roles`: an array of role assignments, each with its `type`, the
/// standard role's name such as SUPER_ADMIN, and `label`, "Label for the role assignment";
/// developer.okta.com/docs/api/openapi/okta-management/management/tag/RoleAssignmentAUser).
/// A standard role is named by its type, a custom one (type CUSTOM) by its label (the
/// custom role's id when no label came). Only ACTIVE assignments count (an absent status is
/// taken as active).
pub fn roles_of(json: &Value) -> Option<Vec<String>> {
    let mut out: Vec<String> = json
        .as_array()?
        .iter()
        .filter(|r| r["status"].as_str().is_none_or(|s| s == "ACTIVE"))
        .filter_map(|r| {
            let kind = r["type"].as_str().filter(|t| !t.is_empty())?;
            if kind != "CUSTOM" {
                return Some(kind.to_string());
            }
            let label = r["label"].as_str().map(str::trim).filter(|l| !l.is_empty());
            let id = r["role"].as_str().filter(|l| !l.is_empty());
            Some(label.or(id).unwrap_or("CUSTOM").to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    Some(out)
}

/// A group as `GroupRef` (`id`, `profile.name`, `type`; spec `Group`).
pub fn group_ref(g: &Value) -> Option<GroupRef> {
    Some(GroupRef {
        id: g["id"].as_str().filter(|s| !s.is_empty())?.to_string(),
        name: g["profile"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        kind: g["type"].as_str().unwrap_or_default().to_string(),
    })
}

/// The factors of users `ids`, in order: `GET /api/v1/users/{id}/factors` each (no bulk API
/// exists: OKTA.md, "MFA"), at most `max_concurrency` in flight ([`Client::get_all`]). A 403
/// (scope missing) gives None for every user; a 404 (the user is gone) an empty list.
pub fn read_factors<D: Doors>(
    client: &Client<D>,
    ids: &[String],
) -> Result<Vec<Option<Vec<FactorRef>>>, ConnectorError> {
    let org = &client.config().org_url;
    let urls: Vec<String> = ids
        .iter()
        .map(|id| format!("{org}/api/v1/users/{}/factors", seg(id)))
        .collect();
    let answers = client.get_all(&urls)?;
    let mut out = Vec::with_capacity(ids.len());
    for (url, resp) in urls.iter().zip(&answers) {
        match part(client, url, resp, factors_of)? {
            Part::Read(f) => out.push(Some(f)),
            Part::Gone => out.push(Some(Vec::new())),
            Part::Refused => return Ok(ids.iter().map(|_| None).collect()),
        }
    }
    Ok(out)
}

/// Users `ids` read complete by id (the user record by id is consistent, unlike the search
/// index: OKTA.md, "Users"): the record (`GET /api/v1/users/{id}`), its groups
/// (`/users/{id}/groups`, every page), factors (`/users/{id}/factors`), roles assigned to it
/// (`/users/{id}/roles`) and the roles of its groups from the group facts of generation `gen`
/// (Okta does not document that a user's roles list includes group-held ones: OKTA.md,
/// "Admin roles"). None for a user whose record answers 404 (deleted): the records are read
/// first, so a deleted user costs that one request. All requests at most `max_concurrency`
/// in flight.
#[allow(clippy::type_complexity)]
pub fn read_complete<D: Doors>(
    ctx: &Ctx<D>,
    gen: u32,
    ids: &[String],
) -> Result<Vec<(String, Option<(Value, Enrichment)>)>, ConnectorError> {
    let client = &ctx.client;
    let org = &ctx.config.org_url;
    // First the records: a deleted user (404) costs no more requests.
    let record_urls: Vec<String> = ids
        .iter()
        .map(|id| format!("{org}/api/v1/users/{}", seg(id)))
        .collect();
    let records = client.get_all(&record_urls)?;
    let mut found = Vec::with_capacity(ids.len());
    for ((id, url), resp) in ids.iter().zip(&record_urls).zip(records) {
        match part(client, url, &resp, |v| v.is_object().then(|| v.clone()))? {
            Part::Read(u) => found.push((id, url, Some(u))),
            Part::Gone => found.push((id, url, None)),
            Part::Refused => {
                return Err(ConnectorError::Permission(format!(
                    "{} answered 403: the credential cannot read users; grant okta.users.read",
                    path_of(url)
                )))
            }
        }
    }
    let mut urls = Vec::with_capacity(ids.len() * 3);
    for (_, base, user) in &found {
        if user.is_some() {
            urls.push(format!("{base}/groups"));
            urls.push(format!("{base}/factors"));
            urls.push(format!("{base}/roles"));
        }
    }
    let answers = client.get_all(&urls)?;
    let mut out = Vec::with_capacity(ids.len());
    let mut n = 0;
    for (id, _, user) in found {
        let Some(user) = user else {
            out.push((id.clone(), None));
            continue;
        };
        let first = 3 * n;
        n += 1;
        let at = |k: usize| (&urls[first + k - 1], &answers[first + k - 1]);
        let (url, resp) = at(1);
        let groups = match part(client, url, resp, |v| {
            v.as_array()
                .map(|a| a.iter().filter_map(group_ref).collect::<Vec<_>>())
        })? {
            Part::Read(mut first) => {
                let mut next = next_link(resp);
                let mut trail = Trail::default();
                while let Some(link) = next.take() {
                    if !link.starts_with(&format!("{org}/")) {
                        return Err(upstream(
                            url,
                            format!("the next link leaves the org ({link})"),
                        ));
                    }
                    let resp = client.get(&link)?;
                    let Part::Read(page) = part(client, &link, &resp, |v| v.as_array().cloned())?
                    else {
                        break;
                    };
                    trail.step(&page, &link).map_err(|e| upstream(&link, e))?;
                    first.extend(page.iter().filter_map(group_ref));
                    next = next_link(&resp);
                }
                Some(first)
            }
            Part::Gone => Some(Vec::new()),
            Part::Refused => None,
        };
        let (url, resp) = at(2);
        let factors = match part(client, url, resp, factors_of)? {
            Part::Read(f) => Some(f),
            Part::Gone => Some(Vec::new()),
            Part::Refused => None,
        };
        let (url, resp) = at(3);
        let roles = match part(client, url, resp, roles_of)? {
            Part::Read(r) => Some(r),
            Part::Gone => Some(Vec::new()),
            Part::Refused => None,
        };
        let roles = match (roles, &groups) {
            (Some(mut roles), Some(groups)) if !groups.is_empty() => {
                let gids: Vec<String> = groups.iter().map(|g| g.id.clone()).collect();
                for g in facts::group(ctx.doors, gen, &gids)?.into_iter().flatten() {
                    roles.extend(g.roles);
                }
                roles.sort();
                roles.dedup();
                Some(roles)
            }
            (roles, _) => roles,
        };
        out.push((
            id.clone(),
            Some((
                user,
                Enrichment {
                    groups,
                    roles,
                    factors,
                },
            )),
        ));
    }
    Ok(out)
}
