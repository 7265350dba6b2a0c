//! The fixed users at the first [`hard_case::COUNT`] indexes of every generated tenant: each
//! one an ordinary, fully populated member bent into one hard case the connector must handle
//! (the table on [`hard_case`]).

use serde_json::{json, Map, Value};

use super::catalog::{
    created_window, methods, Catalog, ALL_COMPANY, AUTHENTICATOR, AUTH_METHOD_TYPES, DEPARTMENTS,
    EMAIL, EXTERNAL, FIDO2, GLOBAL_ADMINISTRATOR, GUESTS_GROUP, HELLO, INITIAL_DOMAIN, JOB_TITLES,
    OATH, OFFICES, PASSWORD, PHONE, PLATFORM, PRIVILEGED_ROLE_ADMINISTRATOR, TAP, VERIFIED_DOMAIN,
};
use super::random_users::{never_signed_in, sign_in_activity};
use super::seeded::{derive, guid, SplitMix};
use crate::tenant::SimUser;

/// Which generated index holds which hard case (for every tenant of at least
/// [`hard_case::COUNT`] users). Tests may rely on these indexes.
///
/// | index | user | hard case |
/// |---|---|---|
/// | 0 | Adele Vance | Global Administrator directly in `memberOf` *and* inherited through the role-assignable group "Role - Global Administrators" (`viaGroup`; de-duplication; she and the group are both direct members of the role); 9 `memberOf` items (3 pages at the default page size 4); password, Authenticator, FIDO2, phone |
/// | 1 | Jo Brown | guest: `userType` "Guest", UPN `jo_fabrikam.com#EXT#@contoso.onmicrosoft.com`, mail `jo@fabrikam.com`; `companyName` absent; e-mail method only |
/// | 2 | Alex Wilber | disabled (`accountEnabled` false), synced from on-premises (`onPremisesSyncEnabled` true, `onPremisesSamAccountName` "awilber") |
/// | 3 | Diego Siciliani | `mail` null, `createdDateTime` null, no `signInActivity` at all; department, job title, employee id and type all null |
/// | 4 | Zoë Ångström | `createdDateTime` null; never signed in (`lastSignInDateTime` "0001-01-01T00:00:00Z"); password and temporary access pass |
/// | 5 | 李小龍 | no groups, no roles, no administrative units; password only |
/// | 6 | Ωmega Δelta | User Administrator only through `inheritedRoles` (`viaGroup`: the role-assignable group "Role - User Administrators", of which the user is a member): listed in `directoryRoles/{id}/members` only through that group |
/// | 7, 8 | Megan Bowen, Lee Gu | created in the same second (`2023-05-17T08:12:44Z`) |
/// | 9, 10 | Isaiah Langer, Johanna Lorenz | created in the same second (`2020-11-02T16:45:00Z`) |
/// | 11 | Lidia Holloway | two administrative units and three groups in `memberOf` (2 pages at size 4) |
/// | 12 | Nestor Wilke | every authentication method type, plus the unknown `#microsoft.graph.passkeyFutureAuthenticationMethod` |
/// | 13 | Patti Fernandez | department only (job title, employee id and type null); password only |
/// | 14 | Pradeep Gupta | job title only (department, employee id and type absent) |
/// | 15 | Lynne Robbins | no employee fields and no `companyName` (keys absent); FIDO2 only (no password) |
/// | 16 | Grady Archie | `isManagementRestricted` true; Privileged Role Administrator directly in `memberOf` |
/// | 17 | Henrietta Mueller | `isManagementRestricted` null |
/// | 18 | Miriam Graham | `mail` "not-an-address" |
/// | 19 | Sam Taylor | second guest (`sam_tailspintoys.com#EXT#@contoso.onmicrosoft.com`), no `signInActivity`, no groups, no authentication methods |
///
/// Every other user has `isManagementRestricted` false or a random value; users from index 20
/// on are random (some of them with role grants only the role-management API shows: see
/// [`role_case`](crate::role_case)). Every inherited role the generator hands out carries `viaGroup` (see
/// [`VIA_GROUP`](crate::VIA_GROUP)) naming a role-assignable group in the user's `memberOf`
/// (the groups "Role - Global Administrators", "Role - User Administrators",
/// "Role - Helpdesk", "Role - Security Readers" grant Global Administrator, User
/// Administrator, Helpdesk Administrator, Security Reader); such a group is a direct member of
/// its role, and the users in it are members of the group only.
pub mod hard_case {
    /// Global Administrator both directly and inherited; `memberOf` spans 3 pages.
    pub const GLOBAL_ADMIN: usize = 0;
    /// A guest with a `#EXT#` UPN and an external mail address.
    pub const GUEST: usize = 1;
    /// A disabled account synced from on-premises Active Directory.
    pub const DISABLED_ON_PREMISES: usize = 2;
    /// `mail` null, `createdDateTime` null, no `signInActivity`, employee fields null.
    pub const NO_MAIL_NO_CREATED_NO_SIGN_IN: usize = 3;
    /// Never signed in (year-0001 sign-in time), `createdDateTime` null, unicode name.
    pub const NEVER_SIGNED_IN: usize = 4;
    /// No groups, roles or administrative units; password only; CJK name.
    pub const NO_MEMBERSHIPS: usize = 5;
    /// A directory role only through `inheritedRoles`; Greek name.
    pub const INHERITED_ROLE_ONLY: usize = 6;
    /// Two users created in the same second.
    pub const SAME_SECOND_A: [usize; 2] = [7, 8];
    /// Two more users created in the same second.
    pub const SAME_SECOND_B: [usize; 2] = [9, 10];
    /// Administrative units in `memberOf`.
    pub const ADMIN_UNITS: usize = 11;
    /// Every authentication method type, including an unknown future one.
    pub const EVERY_AUTH_METHOD: usize = 12;
    /// Department set, job title null.
    pub const DEPARTMENT_ONLY: usize = 13;
    /// Job title set, department absent.
    pub const JOB_TITLE_ONLY: usize = 14;
    /// No employee fields and no `companyName` at all (keys absent).
    pub const NO_EMPLOYEE_FIELDS: usize = 15;
    /// `isManagementRestricted` true.
    pub const MANAGEMENT_RESTRICTED: usize = 16;
    /// `isManagementRestricted` null.
    pub const MANAGEMENT_RESTRICTED_NULL: usize = 17;
    /// A `mail` that is not an e-mail address.
    pub const INVALID_MAIL: usize = 18;
    /// A second guest without `signInActivity`, groups or authentication methods.
    pub const GUEST_WITHOUT_SIGN_IN: usize = 19;
    /// Users with a password as their only method.
    pub const PASSWORD_ONLY: [usize; 2] = [5, 13];
    /// Users whose `memberOf` needs more than one page at the default page size (4).
    pub const MEMBER_OF_SEVERAL_PAGES: [usize; 2] = [0, 11];
    /// Users with unicode display names.
    pub const UNICODE_NAMES: [usize; 3] = [4, 5, 6];
    /// Users with a directory role directly in `memberOf`.
    pub const DIRECT_ROLE: [usize; 2] = [0, 16];
    /// Users whose `createdDateTime` is null.
    pub const NULL_CREATED: [usize; 2] = [3, 4];
    /// Users without any `signInActivity`.
    pub const NO_SIGN_IN_ACTIVITY: [usize; 2] = [3, 19];
    /// The guests.
    pub const GUESTS: [usize; 2] = [1, 19];
    /// How many leading indexes hold hard cases; a tenant needs at least this many users to
    /// contain them all.
    pub const COUNT: usize = 20;
}

/// Names and creation times of the hard cases, by index.
const HARD_CASE_PEOPLE: [(&str, &str, &str, &str, Option<&str>); hard_case::COUNT] = [
    (
        "Adele Vance",
        "Adele",
        "Vance",
        "adele.vance",
        Some("2021-03-14T09:26:53Z"),
    ),
    (
        "Jo Brown",
        "Jo",
        "Brown",
        "jo",
        Some("2022-11-30T17:05:12Z"),
    ),
    (
        "Alex Wilber",
        "Alex",
        "Wilber",
        "alex.wilber",
        Some("2019-06-03T07:41:09Z"),
    ),
    (
        "Diego Siciliani",
        "Diego",
        "Siciliani",
        "diego.siciliani",
        None,
    ),
    ("Zoë Ångström", "Zoë", "Ångström", "zoe.angstrom", None),
    (
        "李小龍",
        "小龍",
        "李",
        "xiaolong.li",
        Some("2024-02-29T12:00:01Z"),
    ),
    (
        "Ωmega Δelta",
        "Ωmega",
        "Δelta",
        "omega.delta",
        Some("2020-01-15T23:59:59Z"),
    ),
    (
        "Megan Bowen",
        "Megan",
        "Bowen",
        "megan.bowen",
        Some("2023-05-17T08:12:44Z"),
    ),
    (
        "Lee Gu",
        "Lee",
        "Gu",
        "lee.gu",
        Some("2023-05-17T08:12:44Z"),
    ),
    (
        "Isaiah Langer",
        "Isaiah",
        "Langer",
        "isaiah.langer",
        Some("2020-11-02T16:45:00Z"),
    ),
    (
        "Johanna Lorenz",
        "Johanna",
        "Lorenz",
        "johanna.lorenz",
        Some("2020-11-02T16:45:00Z"),
    ),
    (
        "Lidia Holloway",
        "Lidia",
        "Holloway",
        "lidia.holloway",
        Some("2024-09-10T10:10:10Z"),
    ),
    (
        "Nestor Wilke",
        "Nestor",
        "Wilke",
        "nestor.wilke",
        Some("2019-12-31T23:00:00Z"),
    ),
    (
        "Patti Fernandez",
        "Patti",
        "Fernandez",
        "patti.fernandez",
        Some("2022-04-01T08:00:00Z"),
    ),
    (
        "Pradeep Gupta",
        "Pradeep",
        "Gupta",
        "pradeep.gupta",
        Some("2025-01-20T14:30:45Z"),
    ),
    (
        "Lynne Robbins",
        "Lynne",
        "Robbins",
        "lynne.robbins",
        Some("2021-08-08T08:08:08Z"),
    ),
    (
        "Grady Archie",
        "Grady",
        "Archie",
        "grady.archie",
        Some("2019-02-11T11:11:11Z"),
    ),
    (
        "Henrietta Mueller",
        "Henrietta",
        "Mueller",
        "henrietta.mueller",
        Some("2023-10-05T19:20:30Z"),
    ),
    (
        "Miriam Graham",
        "Miriam",
        "Graham",
        "miriam.graham",
        Some("2024-06-18T06:18:00Z"),
    ),
    (
        "Sam Taylor",
        "Sam",
        "Taylor",
        "sam",
        Some("2025-03-03T03:03:03Z"),
    ),
];

/// A hard-case user: an ordinary, fully populated member bent into its hard case.
pub(super) fn hard_case_user(seed: u64, index: usize, catalog: &Catalog) -> SimUser {
    let mut sim = SimUser {
        user: Value::Null,
        member_of: Vec::new(),
        inherited_roles: Vec::new(),
        auth_methods: Vec::new(),
        role_assignments: Vec::new(),
    };
    let (display, given, surname, alias, created) = HARD_CASE_PEOPLE[index];
    let i = index as u64;
    let mut rng = SplitMix::new(derive(seed, "hard-case", i));
    let upn = format!("{alias}@{VERIFIED_DOMAIN}");
    let mut user = Map::new();
    user.insert("id".into(), json!(guid(seed, "user", i)));
    user.insert("displayName".into(), json!(display));
    user.insert("givenName".into(), json!(given));
    user.insert("surname".into(), json!(surname));
    user.insert("userPrincipalName".into(), json!(upn));
    user.insert("mail".into(), json!(upn));
    user.insert("mailNickname".into(), json!(alias));
    user.insert("accountEnabled".into(), json!(true));
    user.insert("userType".into(), json!("Member"));
    user.insert("createdDateTime".into(), json!(created));
    user.insert(
        "department".into(),
        json!(DEPARTMENTS[index % DEPARTMENTS.len()]),
    );
    user.insert(
        "jobTitle".into(),
        json!(JOB_TITLES[index % JOB_TITLES.len()]),
    );
    user.insert(
        "employeeId".into(),
        json!(format!("E{:06}", 100_000 + index)),
    );
    user.insert("employeeType".into(), json!("Employee"));
    user.insert("companyName".into(), json!("Contoso Ltd"));
    user.insert(
        "officeLocation".into(),
        json!(OFFICES[index % OFFICES.len()]),
    );
    user.insert("isManagementRestricted".into(), json!(false));
    user.insert("onPremisesSyncEnabled".into(), Value::Null);
    user.insert("onPremisesSamAccountName".into(), Value::Null);
    user.insert("mobilePhone".into(), Value::Null);
    user.insert(
        "businessPhones".into(),
        json!([format!("+1 206 555 01{index:02}")]),
    );
    user.insert("preferredLanguage".into(), json!("en-US"));
    let after = created
        .and_then(crate::clock::parse_iso)
        .map_or(created_window().0, |s| s.0);
    user.insert(
        "signInActivity".into(),
        sign_in_activity(&mut rng, seed, i, after),
    );
    sim.member_of = vec![catalog.group(ALL_COMPANY), catalog.group(5 + index % 20)];
    sim.inherited_roles = Vec::new();
    sim.auth_methods = methods(&[PASSWORD, AUTHENTICATOR]);

    match index {
        hard_case::GLOBAL_ADMIN => {
            sim.member_of = vec![catalog.role(GLOBAL_ADMINISTRATOR), catalog.group(0)];
            sim.member_of
                .extend((ALL_COMPANY..ALL_COMPANY + 7).map(|g| catalog.group(g)));
            sim.inherited_roles = vec![catalog.role_via_group(0)];
            sim.auth_methods = methods(&[PASSWORD, AUTHENTICATOR, FIDO2, PHONE]);
        }
        hard_case::GUEST | hard_case::GUEST_WITHOUT_SIGN_IN => {
            let domain = if index == hard_case::GUEST {
                "fabrikam.com"
            } else {
                "tailspintoys.com"
            };
            user.insert(
                "userPrincipalName".into(),
                json!(format!("{alias}_{domain}#EXT#@{INITIAL_DOMAIN}")),
            );
            user.insert("mail".into(), json!(format!("{alias}@{domain}")));
            user.insert(
                "mailNickname".into(),
                json!(format!("{alias}_{domain}#EXT#")),
            );
            user.insert("userType".into(), json!("Guest"));
            for key in [
                "department",
                "jobTitle",
                "employeeId",
                "employeeType",
                "officeLocation",
            ] {
                user.insert(key.into(), Value::Null);
            }
            user.insert("businessPhones".into(), json!([]));
            user.remove("companyName");
            if index == hard_case::GUEST {
                sim.member_of = vec![catalog.group(GUESTS_GROUP)];
                sim.auth_methods = methods(&[EMAIL]);
            } else {
                user.remove("signInActivity");
                sim.member_of = Vec::new();
                sim.auth_methods = Vec::new();
            }
        }
        hard_case::DISABLED_ON_PREMISES => {
            user.insert("accountEnabled".into(), json!(false));
            user.insert("onPremisesSyncEnabled".into(), json!(true));
            user.insert("onPremisesSamAccountName".into(), json!("awilber"));
            sim.auth_methods = methods(&[PASSWORD, PHONE]);
        }
        hard_case::NO_MAIL_NO_CREATED_NO_SIGN_IN => {
            user.insert("mail".into(), Value::Null);
            user.remove("signInActivity");
            for key in ["department", "jobTitle", "employeeId", "employeeType"] {
                user.insert(key.into(), Value::Null);
            }
        }
        hard_case::NEVER_SIGNED_IN => {
            user.insert("signInActivity".into(), never_signed_in());
            sim.auth_methods = methods(&[PASSWORD, TAP]);
        }
        hard_case::NO_MEMBERSHIPS => {
            sim.member_of = Vec::new();
            sim.auth_methods = methods(&[PASSWORD]);
            user.insert("preferredLanguage".into(), json!("zh-TW"));
        }
        hard_case::INHERITED_ROLE_ONLY => {
            sim.member_of = vec![catalog.group(1), catalog.group(ALL_COMPANY)];
            sim.inherited_roles = vec![catalog.role_via_group(1)];
            sim.auth_methods = methods(&[PASSWORD, OATH]);
        }
        8 => sim.auth_methods = methods(&[PASSWORD, HELLO]),
        9 => sim.auth_methods = methods(&[PASSWORD, PHONE]),
        10 => sim.auth_methods = methods(&[PASSWORD, PLATFORM]),
        hard_case::ADMIN_UNITS => {
            sim.member_of = vec![
                catalog.units[0].clone(),
                catalog.group(ALL_COMPANY),
                catalog.units[2].clone(),
                catalog.group(5),
                catalog.group(29),
            ];
        }
        hard_case::EVERY_AUTH_METHOD => {
            sim.auth_methods = AUTH_METHOD_TYPES.iter().map(|t| (*t).to_owned()).collect();
        }
        hard_case::DEPARTMENT_ONLY => {
            user.insert("department".into(), json!("Finance"));
            for key in ["jobTitle", "employeeId", "employeeType"] {
                user.insert(key.into(), Value::Null);
            }
            sim.auth_methods = methods(&[PASSWORD]);
        }
        hard_case::JOB_TITLE_ONLY => {
            user.insert("jobTitle".into(), json!("Contractor Liaison"));
            for key in ["department", "employeeId", "employeeType"] {
                user.remove(key);
            }
            sim.auth_methods = methods(&[PASSWORD, EXTERNAL]);
        }
        hard_case::NO_EMPLOYEE_FIELDS => {
            for key in [
                "department",
                "jobTitle",
                "employeeId",
                "employeeType",
                "companyName",
            ] {
                user.remove(key);
            }
            sim.auth_methods = methods(&[FIDO2]);
        }
        hard_case::MANAGEMENT_RESTRICTED => {
            user.insert("isManagementRestricted".into(), json!(true));
            sim.member_of = vec![
                catalog.role(PRIVILEGED_ROLE_ADMINISTRATOR),
                catalog.group(22),
            ];
            sim.auth_methods = methods(&[PASSWORD, AUTHENTICATOR, FIDO2]);
        }
        hard_case::MANAGEMENT_RESTRICTED_NULL => {
            user.insert("isManagementRestricted".into(), Value::Null);
            sim.auth_methods = methods(&[PASSWORD, EMAIL]);
        }
        hard_case::INVALID_MAIL => {
            user.insert("mail".into(), json!("not-an-address"));
            sim.auth_methods = methods(&[PASSWORD, PHONE]);
        }
        _ => {}
    }
    sim.user = Value::Object(user);
    sim
}
