//! Groups, directory roles and MFA of users, in as few Graph calls as the set calls for.
//!
//! Two ways to the same facts, chosen by how many users a run enriches:
//!
//! - **Bulk** (a full walk, or many changed users): roles from `directoryRoles`, their
//!   members, and the members of the role-assignable groups among them (a handful of calls
//!   for the whole tenant; it counts roles held through groups, as `transitiveMemberOf`
//!   does); MFA from the `userRegistrationDetails` report (one call per 999 users) when the
//!   tenant is licensed for it. Only `memberOf` stays per user, twenty to a `$batch`.
//! - **Per user** (a few changed users): `memberOf`, `transitiveMemberOf/directoryRole` and
//!   the user's registration details (or, unlicensed, `authentication/methods`), all through
//!   `$batch`.
//!
//! Both give the same answer for a user, so events do not flap between runs. Each item of a
//! batch succeeds or fails on its own; a user whose part failed is emitted without that part
//! and counted as partial.

use std::collections::HashMap;

use serde_json::Value;

use crate::doors::{Doors, Level};
use crate::graph::{path_segment, GraphClient, GraphError, GraphGet, SubGet};
use crate::ocsf::{Enrichment, GroupRef, Mfa};
use crate::sync::Report;

/// From this many users on, the bulk sources are cheaper than per-user reads.
pub const BULK_THRESHOLD: usize = 200;

/// Graph error codes meaning "this tenant is not licensed for the report / sign-in data".
pub const NOT_LICENSED_CODES: &[&str] = &[
    "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
    "Authorization_RequestDenied",
];

/// Whether `e` is Graph refusing a premium-only read.
pub fn is_not_licensed(e: &GraphError) -> bool {
    e.status() == Some(403) && NOT_LICENSED_CODES.contains(&e.code())
}

/// Tenant-wide facts read once per run.
#[derive(Debug, Default)]
struct Bulk {
    /// User id → display names of the directory roles held (directly or through a group);
    /// None when the roles could not be read.
    roles: Option<HashMap<String, Vec<String>>>,
    /// User id → registration facts; None when the report is not available.
    registration: Option<HashMap<String, Mfa>>,
}

/// Enriches users for one run.
pub struct Enricher<'g, 'a, D: Doors> {
    graph: &'g GraphClient<'a, D>,
    bulk: Option<Bulk>,
    /// Whether the tenant has the registration report (None: not known yet).
    licensed: Option<bool>,
}

impl<'g, 'a, D: Doors> Enricher<'g, 'a, D> {
    /// An enricher that has read nothing yet.
    pub fn new(graph: &'g GraphClient<'a, D>) -> Self {
        Enricher {
            graph,
            bulk: None,
            licensed: None,
        }
    }

    /// Reads the tenant-wide roles and the registration report (once per run).
    pub fn load_bulk(&mut self, report: &mut Report) {
        if self.bulk.is_some() {
            return;
        }
        let roles = match self.read_role_holders() {
            Ok(r) => Some(r),
            Err(e) => {
                report.warn(
                    self.graph.doors(),
                    format!(
                        "directory roles not read ({e}): user.type is Admin only where memberOf shows a role, else Unknown; grant Directory.Read.All or RoleManagement.Read.Directory"
                    ),
                );
                report.unavailable.push("directoryRoles".into());
                None
            }
        };
        let registration = if self.licensed == Some(false) {
            None
        } else {
            match self.read_registration_report() {
                Ok(r) => {
                    self.licensed = Some(true);
                    Some(r)
                }
                Err(e) if is_not_licensed(&e) => {
                    self.licensed = Some(false);
                    self.graph.log(
                        Level::Info,
                        &format!(
                            "the userRegistrationDetails report is not available ({}): MFA comes from each user's authentication methods",
                            e.code()
                        ),
                    );
                    None
                }
                Err(e) => {
                    report.warn(
                        self.graph.doors(),
                        format!("the userRegistrationDetails report was not read ({e}): MFA comes from each user's authentication methods"),
                    );
                    None
                }
            }
        };
        self.bulk = Some(Bulk {
            roles,
            registration,
        });
    }

    /// `directoryRoles`, their members, and the users in role-assignable groups among them.
    fn read_role_holders(&self) -> Result<HashMap<String, Vec<String>>, GraphError> {
        let cfg = self.graph.config();
        let roles = self.graph.collect_lists(vec![GraphGet::new(
            cfg.graph_url("/directoryRoles?$select=id,displayName"),
        )]);
        let roles = roles.into_iter().next().unwrap_or_else(|| Ok(Vec::new()))?;
        let roles: Vec<(String, String)> = roles
            .iter()
            .filter_map(|r| {
                let id = r.get("id").and_then(Value::as_str)?;
                let name = r
                    .get("displayName")
                    .and_then(Value::as_str)
                    .filter(|s| !s.trim().is_empty())
                    .unwrap_or("directoryRole");
                Some((id.to_string(), name.to_string()))
            })
            .collect();
        let members = self.graph.batch_collect(
            roles
                .iter()
                .map(|(id, _)| {
                    SubGet::new(cfg.graph_url(&format!(
                        "/directoryRoles/{}/members?$select=id",
                        path_segment(id)
                    )))
                })
                .collect(),
        );
        let mut holders: HashMap<String, Vec<String>> = HashMap::new();
        // role-assignable group id → roles it grants
        let mut groups: HashMap<String, Vec<String>> = HashMap::new();
        for ((_, name), members) in roles.iter().zip(members) {
            for m in members? {
                let Some(id) = m.get("id").and_then(Value::as_str) else {
                    continue;
                };
                match odata_type(&m) {
                    "#microsoft.graph.group" => {
                        groups.entry(id.to_string()).or_default().push(name.clone())
                    }
                    "#microsoft.graph.user" | "" => holders
                        .entry(id.to_string())
                        .or_default()
                        .push(name.clone()),
                    _ => {}
                }
            }
        }
        let groups: Vec<(String, Vec<String>)> = groups.into_iter().collect();
        let group_members = self.graph.batch_collect(
            groups
                .iter()
                .map(|(gid, _)| {
                    SubGet::new(cfg.graph_url(&format!(
                        "/groups/{}/transitiveMembers/microsoft.graph.user?$select=id&$top=999",
                        path_segment(gid)
                    )))
                })
                .collect(),
        );
        for ((_, granted), members) in groups.iter().zip(group_members) {
            for m in members? {
                if let Some(id) = m.get("id").and_then(Value::as_str) {
                    holders
                        .entry(id.to_string())
                        .or_default()
                        .extend(granted.iter().cloned());
                }
            }
        }
        for names in holders.values_mut() {
            names.sort();
            names.dedup();
        }
        Ok(holders)
    }

    /// Every page of the registration report.
    fn read_registration_report(&self) -> Result<HashMap<String, Mfa>, GraphError> {
        let cfg = self.graph.config();
        let mut next = Some(GraphGet::new(cfg.graph_url(
            "/reports/authenticationMethods/userRegistrationDetails?$select=id,isMfaRegistered,methodsRegistered&$top=999",
        )));
        let mut out = HashMap::new();
        while let Some(get) = next.take() {
            let page = self.graph.page(get)?;
            for item in &page.items {
                if let Some(id) = item.get("id").and_then(Value::as_str) {
                    out.insert(id.to_string(), registration_mfa(item));
                }
            }
            next = page.next_link.map(GraphGet::new);
        }
        Ok(out)
    }

    /// Groups, roles and MFA of each user of `ids`, and whether any part failed.
    pub fn enrich(&mut self, ids: &[&str], report: &mut Report) -> Vec<(Enrichment, bool)> {
        if self.bulk.is_none() && ids.len() >= BULK_THRESHOLD {
            self.load_bulk(report);
        }
        let cfg = self.graph.config();
        let bulk_owned = self.bulk.take();
        let bulk = bulk_owned.as_ref();
        let roles_per_user = bulk.is_none();
        let mfa_from_report = bulk.and_then(|b| b.registration.as_ref());
        let mfa_source = match (mfa_from_report, self.licensed) {
            (Some(_), _) => MfaSource::Report,
            (None, Some(false)) => MfaSource::Methods,
            (None, _) if bulk.is_some() => MfaSource::Methods,
            (None, _) => MfaSource::RegistrationById,
        };
        let mut subs = Vec::with_capacity(ids.len() * 3);
        for id in ids {
            let seg = path_segment(id);
            subs.push(SubGet::new(cfg.graph_url(&format!(
                "/users/{seg}/memberOf?$select=id,displayName"
            ))));
            if roles_per_user {
                subs.push(SubGet::eventual(cfg.graph_url(&format!(
                    "/users/{seg}/transitiveMemberOf/microsoft.graph.directoryRole?$count=true&$select=id,displayName"
                ))));
            }
            match mfa_source {
                MfaSource::Report => {}
                MfaSource::Methods => subs.push(methods_get(self.graph, &seg)),
                MfaSource::RegistrationById => subs.push(SubGet::single(cfg.graph_url(&format!(
                    "/reports/authenticationMethods/userRegistrationDetails/{seg}?$select=id,isMfaRegistered,methodsRegistered"
                )))),
            }
        }
        let mut results = self.graph.batch_collect(subs).into_iter();
        let mut out = Vec::with_capacity(ids.len());
        // Registration reads refused as unlicensed / not permitted: (user index, error).
        let mut denied: Vec<(usize, GraphError)> = Vec::new();
        for (n, id) in ids.iter().enumerate() {
            let member_of = results.next();
            let roles = if roles_per_user { results.next() } else { None };
            let mfa = if mfa_source == MfaSource::Report {
                None
            } else {
                results.next()
            };
            let mut e = Enrichment::default();
            let mut partial = false;
            match member_of {
                Some(Ok(items)) => read_member_of(&items, &mut e),
                other => partial |= self.failed(id, "memberOf", other),
            }
            if roles_per_user {
                match roles {
                    Some(Ok(items)) => e.roles = Some(role_names(&items)),
                    other => partial |= self.failed(id, "directory roles", other),
                }
            } else if let Some(map) = bulk.and_then(|b| b.roles.as_ref()) {
                e.roles = Some(map.get(*id).cloned().unwrap_or_default());
            }
            match mfa_source {
                MfaSource::Report => {
                    e.mfa = mfa_from_report.and_then(|m| m.get(*id).cloned());
                }
                MfaSource::Methods => match mfa {
                    Some(Ok(items)) => e.mfa = Some(methods_mfa(&items)),
                    other => partial |= self.failed(id, "authentication methods", other),
                },
                MfaSource::RegistrationById => match mfa {
                    Some(Ok(items)) => {
                        self.licensed = Some(true);
                        e.mfa = items.first().map(registration_mfa);
                    }
                    Some(Err(err)) if is_not_licensed(&err) => {
                        denied.push((n, err));
                    }
                    // Not in the report yet (a brand-new user): has_mfa stays unknown.
                    Some(Err(err)) if err.status() == Some(404) => {}
                    other => partial |= self.failed(id, "registration details", other),
                },
            }
            out.push((e, partial));
        }
        self.bulk = bulk_owned;
        // Refused for every user: the tenant has no report (licence or permission), so
        // methods are the source. Refused for some only: those users are partial.
        let retry_methods: Vec<usize> = if self.licensed == Some(true) {
            for (n, err) in denied {
                out[n].1 |= self.failed(ids[n], "registration details", Some(Err(err)));
            }
            Vec::new()
        } else {
            denied.into_iter().map(|(n, _)| n).collect()
        };
        if !retry_methods.is_empty() {
            self.licensed = Some(false);
            self.graph.log(
                Level::Info,
                "the registration details are not available (not licensed): MFA comes from each user's authentication methods",
            );
            let subs = retry_methods
                .iter()
                .map(|&n| methods_get(self.graph, &path_segment(ids[n])))
                .collect();
            for (&n, result) in retry_methods.iter().zip(self.graph.batch_collect(subs)) {
                match result {
                    Ok(items) => out[n].0.mfa = Some(methods_mfa(&items)),
                    other => out[n].1 |= self.failed(ids[n], "authentication methods", Some(other)),
                }
            }
        }
        out
    }

    fn failed(&self, id: &str, what: &str, result: Option<Result<Vec<Value>, GraphError>>) -> bool {
        let why = match result {
            Some(Err(e)) => e.to_string(),
            _ => "no result".into(),
        };
        self.graph
            .log(Level::Warn, &format!("user {id}: {what} not read: {why}"));
        true
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MfaSource {
    Report,
    RegistrationById,
    Methods,
}

fn methods_get<D: Doors>(graph: &GraphClient<'_, D>, seg: &str) -> SubGet {
    SubGet::new(
        graph
            .config()
            .graph_url(&format!("/users/{seg}/authentication/methods?$select=id")),
    )
}

fn odata_type(item: &Value) -> &str {
    item.get("@odata.type")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Groups and directly held roles from `memberOf` items.
fn read_member_of(items: &[Value], e: &mut Enrichment) {
    let mut groups = Vec::new();
    for item in items {
        let name = item
            .get("displayName")
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string);
        match odata_type(item) {
            "#microsoft.graph.group" => {
                if let Some(gid) = item.get("id").and_then(Value::as_str) {
                    groups.push(GroupRef {
                        id: gid.to_string(),
                        display_name: name,
                    });
                }
            }
            "#microsoft.graph.directoryRole" => e
                .member_of_roles
                .push(name.unwrap_or_else(|| "directoryRole".into())),
            _ => {}
        }
    }
    e.groups = Some(groups);
}

fn role_names(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .filter_map(|r| r.get("displayName").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

fn methods_mfa(items: &[Value]) -> Mfa {
    Mfa::Methods(items.iter().map(|m| odata_type(m).to_string()).collect())
}

/// MFA facts of one registration-report entry.
pub fn registration_mfa(item: &Value) -> Mfa {
    Mfa::Registration {
        is_mfa_registered: item
            .get("isMfaRegistered")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        methods_registered: item
            .get("methodsRegistered")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    }
}
