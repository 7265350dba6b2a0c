//! What a staged full walk gives each page of users in its users phase: the [`Stage`]
//! (which tenant-wide sources the walk read, and where their facts are) and [`join`], a
//! page's users joined against it. Apart from the walk (`staged.rs`) so the pipeline that
//! delivers pages (`pipeline.rs`) and the walk that prepares them do not import each other.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::walk::{Source, Walk};
use crate::enrich::{Memberships, RoleIndex};
use crate::facts::Facts;
use connector_sdk::doors::Doors;
use connector_sdk::error::ConnectorError;

/// What the users phase joins against: which sources the walk read, and where.
#[derive(Clone, Debug)]
pub struct Stage {
    /// The generation.
    pub gen: String,
    /// Groups staged.
    pub groups_read: bool,
    /// Registration staged.
    pub registration_read: bool,
    /// Sign-in data staged.
    pub sign_ins_read: bool,
    /// Active roles staged.
    pub roles_read: bool,
    /// Eligible roles staged.
    pub eligible_read: bool,
    /// Active roles partial.
    pub roles_partial: bool,
    /// Eligible roles partial.
    pub eligible_partial: bool,
    /// Groups that hold a role.
    pub role_groups: HashSet<String>,
}

impl Stage {
    pub(super) fn of(walk: &Walk) -> Stage {
        Stage {
            gen: walk.gen.clone(),
            groups_read: walk.read(Source::Groups),
            registration_read: walk.read(Source::Registration),
            sign_ins_read: walk.read(Source::SignIns),
            roles_read: walk.read(Source::Roles),
            eligible_read: walk.eligible_read,
            roles_partial: walk.roles_partial,
            eligible_partial: walk.eligible_partial,
            role_groups: walk.role_groups.iter().cloned().collect(),
        }
    }
}

/// The page-local sources of a page of users, from their facts: memberships, MFA, roles,
/// sign-in data, and the report's `isAdmin`.
pub struct PageJoin {
    /// Memberships of the page's users (None: not staged; read per user).
    pub memberships: Option<Memberships>,
    /// MFA vocabulary names of the page's users in the report (None: not staged).
    pub mfa: Option<HashMap<String, Vec<String>>>,
    /// Roles of the page's users.
    pub roles: RoleIndex,
    /// Sign-in data of the page's users.
    pub sign_ins: Option<HashMap<String, Value>>,
    /// `isAdmin` of the page's users in the report.
    pub is_admin: HashMap<String, bool>,
}

/// Joins a page's users against the facts of the walk.
pub fn join<D: Doors>(
    stage: &Stage,
    facts: &mut Facts,
    doors: &D,
    ids: &[&str],
) -> Result<PageJoin, ConnectorError> {
    let known = facts.lookup(doors, ids)?;
    let mut memberships = Memberships::default();
    let mut mfa = HashMap::new();
    let mut active = HashMap::new();
    let mut eligible = HashMap::new();
    let mut sign_ins = HashMap::new();
    let mut is_admin = HashMap::new();
    for (id, known) in ids.iter().zip(known) {
        let Some(known) = known else { continue };
        memberships.set(id, known.groups);
        let f = known.facts;
        if let Some(m) = f.mfa {
            mfa.insert(id.to_string(), m);
        }
        if !f.roles.is_empty() {
            active.insert(id.to_string(), f.roles.into_iter().collect());
        }
        if !f.eligible.is_empty() {
            eligible.insert(id.to_string(), f.eligible.into_iter().collect());
        }
        if let Some(s) = f
            .sign_in
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        {
            sign_ins.insert(id.to_string(), s);
        }
        if let Some(a) = f.is_admin {
            is_admin.insert(id.to_string(), a);
        }
    }
    Ok(PageJoin {
        memberships: stage.groups_read.then_some(memberships),
        mfa: stage.registration_read.then_some(mfa),
        roles: RoleIndex {
            active: stage.roles_read.then_some(active),
            eligible: stage.eligible_read.then_some(eligible),
            active_partial: stage.roles_partial,
            eligible_partial: stage.eligible_partial,
            groups: stage.role_groups.clone(),
            ..RoleIndex::default()
        },
        sign_ins: stage.sign_ins_read.then_some(sign_ins),
        is_admin,
    })
}
