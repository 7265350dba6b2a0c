//! A deterministic, realistic tenant generated from a seed.
//!
//! The demo, the end-to-end tests and the benchmarks need tenants of any size that look like a
//! real directory — guests, disabled accounts, nulls where Graph has nulls, several pages of
//! memberships, roles held through groups — and that are the same on every run. Every user is
//! a pure function of `(seed, index)`: the first hundred users of a 10,000-user tenant are the
//! users of a 100-user tenant with the same seed. The first [`hard_case::COUNT`] indexes hold
//! fixed hard cases (see [`hard_case`]); the rest are pseudo-random with realistic variety.

use serde_json::{json, Map, Value};

use crate::clock::{days_from_civil, format_iso};
use crate::roles::BUILT_IN_ROLES;
use crate::tenant::{
    SimUser, Tenant, ADMINISTRATIVE_UNIT_TYPE, DIRECTORY_ROLE_TYPE, GROUP_TYPE, VIA_GROUP,
};

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

/// Which generated indexes hold the role grants only the role-management API shows (for every
/// tenant of at least [`role_case::COUNT`] users). They are random users (index 20 and up) with
/// these grants added to [`SimUser::role_assignments`](crate::SimUser::role_assignments); the
/// rest of their data is what the seed gives them anyway (they may hold legacy roles too),
/// except [`role_case::ELIGIBLE_ONLY`], whose active roles and role-assignable groups are taken
/// away. Beyond [`role_case::COUNT`], each user gets each kind of grant with a chance of one in
/// [`role_case::ONE_IN`] (eligibility only when the user holds no active role), drawn from a
/// stream of its own so every other fact of the user is unchanged.
///
/// | index | grant |
/// |---|---|
/// | 20 | the custom role "Contoso Helpdesk Tier 1" at tenant scope (`/`) |
/// | 21 | the built-in User Administrator scoped to the administrative unit "Paris Office" (`/administrativeUnits/{id}`) |
/// | 22 | the built-in Application Administrator scoped to one application (`/{application object id}`) |
/// | 23 | PIM-eligible only: Global Administrator and Security Administrator at `/`, no active role at all |
/// | 24, 25 | the custom role "Contoso Support Desk" through the role-assignable group "Role - Support Desk" (the group is the assignment's principal; both users are in it, `viaGroup` names it) |
///
/// The generated tenant's custom role definitions (see
/// [`Tenant::role_definitions`](crate::Tenant::role_definitions)) are "Contoso Helpdesk Tier
/// 1", "Contoso App Registration Reader" and "Contoso Support Desk".
pub mod role_case {
    /// A custom role at tenant scope.
    pub const CUSTOM_ROLE: usize = 20;
    /// A built-in role scoped to an administrative unit.
    pub const UNIT_SCOPED: usize = 21;
    /// A built-in role scoped to an application.
    pub const APP_SCOPED: usize = 22;
    /// PIM-eligible roles only, no active role.
    pub const ELIGIBLE_ONLY: usize = 23;
    /// A custom role held through a role-assignable group.
    pub const VIA_GROUP: [usize; 2] = [24, 25];
    /// How many leading indexes hold the fixed cases (hard cases included).
    pub const COUNT: usize = 26;
    /// Beyond [`COUNT`], the chance of each kind of grant is one in this.
    pub const ONE_IN: u64 = 100;
}

/// Names of the generated tenant's custom role definitions.
const CUSTOM_ROLES: [(&str, &str); 3] = [
    (
        "Contoso Helpdesk Tier 1",
        "Resets passwords and reads sign-in logs for front-line staff.",
    ),
    (
        "Contoso App Registration Reader",
        "Reads application registrations and their owners.",
    ),
    (
        "Contoso Support Desk",
        "Manages support tickets and reads user profiles; granted through a role-assignable group.",
    ),
];

/// The tenant's initial domain (guest UPNs end with it).
pub const INITIAL_DOMAIN: &str = "contoso.onmicrosoft.com";
/// The verified domain of member users' UPNs and mail.
pub const VERIFIED_DOMAIN: &str = "contoso.com";

/// Every authentication method type the generator hands out, the last one unknown to the
/// connector on purpose.
pub const AUTH_METHOD_TYPES: [&str; 11] = [
    "#microsoft.graph.passwordAuthenticationMethod",
    "#microsoft.graph.emailAuthenticationMethod",
    "#microsoft.graph.temporaryAccessPassAuthenticationMethod",
    "#microsoft.graph.phoneAuthenticationMethod",
    "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod",
    "#microsoft.graph.softwareOathAuthenticationMethod",
    "#microsoft.graph.fido2AuthenticationMethod",
    "#microsoft.graph.windowsHelloForBusinessAuthenticationMethod",
    "#microsoft.graph.platformCredentialAuthenticationMethod",
    "#microsoft.graph.externalAuthenticationMethod",
    "#microsoft.graph.passkeyFutureAuthenticationMethod",
];

const PASSWORD: usize = 0;
const EMAIL: usize = 1;
const TAP: usize = 2;
const PHONE: usize = 3;
const AUTHENTICATOR: usize = 4;
const OATH: usize = 5;
const FIDO2: usize = 6;
const HELLO: usize = 7;
const PLATFORM: usize = 8;
const EXTERNAL: usize = 9;
const FUTURE: usize = 10;

/// The directory roles the generator hands out: the first eight built-in roles of
/// [`BUILT_IN_ROLES`] (real names and template ids; their order is part of every generated
/// tenant, so it never changes).
const ROLES: &[(&str, &str, &str)] = (&BUILT_IN_ROLES as &[(&str, &str, &str)]).split_at(8).0;
const GLOBAL_ADMINISTRATOR: usize = 0;
const USER_ADMINISTRATOR: usize = 1;
const PRIVILEGED_ROLE_ADMINISTRATOR: usize = 7;

/// Role-assignable groups first (each grants the role at the same position of
/// `ROLE_GROUP_GRANTS`), then ordinary groups.
const GROUPS: [&str; 50] = [
    "Role - Global Administrators",
    "Role - User Administrators",
    "Role - Helpdesk",
    "Role - Security Readers",
    "All Company",
    "Engineering",
    "Finance",
    "Human Resources",
    "Sales",
    "Marketing",
    "Legal",
    "Customer Support",
    "IT Operations",
    "Research",
    "Product Management",
    "Design",
    "Data Science",
    "Platform Team",
    "Mobile Team",
    "Web Team",
    "Quality Assurance",
    "DevOps",
    "Security Team",
    "Executives",
    "People Managers",
    "Interns",
    "Contractors",
    "VPN Users",
    "Conditional Access Exclusions",
    "Office Paris",
    "Office London",
    "Office Seattle",
    "Office Tokyo",
    "Office São Paulo",
    "Project Falcon",
    "Project Orion",
    "Project Zephyr",
    "Guests - Fabrikam Project",
    "Book Club",
    "Running Club",
    "Sustainability Network",
    "Women in Tech",
    "Pride Network",
    "Volunteers",
    "Hackathon 2024",
    "Board Committee",
    "Procurement",
    "Facilities",
    "Payroll",
    "Training & Onboarding",
];
const ROLE_GROUP_GRANTS: [usize; 4] = [0, 1, 4, 2];
// Hard cases 0 and 6 inherit Global and User Administrator through groups 0 and 1.
const _: () = assert!(
    ROLE_GROUP_GRANTS[0] == GLOBAL_ADMINISTRATOR && ROLE_GROUP_GRANTS[1] == USER_ADMINISTRATOR
);
const ALL_COMPANY: usize = 4;
const GUESTS_GROUP: usize = 37;

const ADMIN_UNITS: [&str; 3] = ["Paris Office", "Contractors", "EMEA Region"];

const FIRST_NAMES: [(&str, &str); 40] = [
    ("Amelia", "amelia"),
    ("Noah", "noah"),
    ("Olivia", "olivia"),
    ("Liam", "liam"),
    ("Zoë", "zoe"),
    ("José", "jose"),
    ("Søren", "soren"),
    ("Małgorzata", "malgorzata"),
    ("Chloé", "chloe"),
    ("Ngozi", "ngozi"),
    ("Hiroshi", "hiroshi"),
    ("Priya", "priya"),
    ("Ahmed", "ahmed"),
    ("Olga", "olga"),
    ("Mateo", "mateo"),
    ("Aisha", "aisha"),
    ("Björn", "bjorn"),
    ("Camille", "camille"),
    ("Dmitri", "dmitri"),
    ("Elif", "elif"),
    ("Fatima", "fatima"),
    ("Gabriel", "gabriel"),
    ("Hannah", "hannah"),
    ("Ingrid", "ingrid"),
    ("Jun", "jun"),
    ("Kwame", "kwame"),
    ("Léa", "lea"),
    ("Mohammed", "mohammed"),
    ("Nadia", "nadia"),
    ("Oskar", "oskar"),
    ("Paulo", "paulo"),
    ("Quinn", "quinn"),
    ("Rania", "rania"),
    ("Sebastián", "sebastian"),
    ("Thu", "thu"),
    ("Uma", "uma"),
    ("Valentina", "valentina"),
    ("Wei", "wei"),
    ("Yara", "yara"),
    ("Zanele", "zanele"),
];

const LAST_NAMES: [(&str, &str); 40] = [
    ("Smith", "smith"),
    ("Müller", "muller"),
    ("García", "garcia"),
    ("Nguyễn", "nguyen"),
    ("O'Brien", "obrien"),
    ("Kowalski", "kowalski"),
    ("Tanaka", "tanaka"),
    ("Okafor", "okafor"),
    ("Rossi", "rossi"),
    ("Dubois", "dubois"),
    ("Andersson", "andersson"),
    ("Patel", "patel"),
    ("Haddad", "haddad"),
    ("Ivanova", "ivanova"),
    ("Silva", "silva"),
    ("Kim", "kim"),
    ("Novak", "novak"),
    ("Jensen", "jensen"),
    ("Yılmaz", "yilmaz"),
    ("Mensah", "mensah"),
    ("Fernández", "fernandez"),
    ("Schmidt", "schmidt"),
    ("Lefèvre", "lefevre"),
    ("Chen", "chen"),
    ("Walker", "walker"),
    ("Hughes", "hughes"),
    ("Costa", "costa"),
    ("Nakamura", "nakamura"),
    ("Petrov", "petrov"),
    ("Horvat", "horvat"),
    ("Bianchi", "bianchi"),
    ("Moreau", "moreau"),
    ("Lindqvist", "lindqvist"),
    ("Adeyemi", "adeyemi"),
    ("Khan", "khan"),
    ("Ortiz", "ortiz"),
    ("Svoboda", "svoboda"),
    ("Wagner", "wagner"),
    ("Zhang", "zhang"),
    ("Ó Súilleabháin", "osullivan"),
];

const DEPARTMENTS: [&str; 12] = [
    "Engineering",
    "Finance",
    "Human Resources",
    "Sales",
    "Marketing",
    "Legal",
    "Customer Support",
    "IT",
    "Research",
    "Operations",
    "Product",
    "Facilities",
];
const JOB_TITLES: [&str; 14] = [
    "Software Engineer",
    "Senior Software Engineer",
    "Accountant",
    "HR Business Partner",
    "Account Executive",
    "Marketing Manager",
    "Counsel",
    "Support Engineer",
    "IT Administrator",
    "Research Scientist",
    "Operations Analyst",
    "Product Manager",
    "Director",
    "Intern",
];
const OFFICES: [&str; 6] = [
    "Paris",
    "London",
    "Seattle 18/2111",
    "Tokyo",
    "São Paulo",
    "Remote",
];
const GUEST_DOMAINS: [&str; 5] = [
    "fabrikam.com",
    "tailspintoys.com",
    "northwindtraders.com",
    "adventure-works.com",
    "woodgrovebank.com",
];
const LANGUAGES: [Option<&str>; 6] = [
    Some("en-US"),
    Some("fr-FR"),
    Some("de-DE"),
    Some("ja-JP"),
    Some("pt-BR"),
    None,
];

/// Creation times are spread over this window (Unix seconds).
fn created_window() -> (i64, i64) {
    (
        days_from_civil(2019, 1, 1) * 86_400,
        days_from_civil(2025, 6, 1) * 86_400,
    )
}

/// "Now" of the generated tenant: sign-ins happen before it. Fixed so output never depends on
/// the wall clock.
fn tenant_now() -> i64 {
    days_from_civil(2025, 7, 1) * 86_400
}

/// splitmix64: a tiny, well-mixed PRNG, enough for test data and free of dependencies.
struct SplitMix(u64);

impl SplitMix {
    fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True `percent` times in a hundred.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn between(&mut self, low: i64, high: i64) -> i64 {
        low + self.below((high - low).max(1) as u64) as i64
    }
}

/// A 64-bit value from the seed, a salt naming what is derived, and an index.
pub(crate) fn derive(seed: u64, salt: &str, index: u64) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in salt.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut rng =
        SplitMix::new(hash ^ seed.rotate_left(17) ^ index.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    rng.next()
}

/// A version-4-shaped GUID derived from the seed, a salt and an index.
pub(crate) fn guid(seed: u64, salt: &str, index: u64) -> String {
    let mut rng = SplitMix::new(derive(seed, salt, index));
    let (a, b) = (rng.next(), rng.next());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        8 + (b >> 62),
        (b >> 48) & 0xfff,
        b & 0xffff_ffff_ffff
    )
}

/// The groups, roles and administrative units every user of one seed draws from.
struct Catalog {
    groups: Vec<Value>,
    roles: Vec<Value>,
    units: Vec<Value>,
}

impl Catalog {
    fn new(seed: u64) -> Catalog {
        let groups = GROUPS
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let role_assignable = i < ROLE_GROUP_GRANTS.len();
                let unified = !role_assignable && i % 3 == 0;
                let mail = unified.then(|| format!("{}@{VERIFIED_DOMAIN}", slug(name)));
                json!({
                    "@odata.type": GROUP_TYPE,
                    "id": guid(seed, "group", i as u64),
                    "displayName": name,
                    "description": format!("Members of {name}"),
                    "groupTypes": if unified { json!(["Unified"]) } else { json!([]) },
                    "mail": mail,
                    "mailEnabled": unified,
                    "securityEnabled": !unified || i % 2 == 0,
                    "isAssignableToRole": if role_assignable { json!(true) } else { Value::Null },
                })
            })
            .collect();
        let roles = ROLES
            .iter()
            .enumerate()
            .map(|(i, (name, template, description))| {
                json!({
                    "@odata.type": DIRECTORY_ROLE_TYPE,
                    "id": guid(seed, "role", i as u64),
                    "deletedDateTime": null,
                    "displayName": name,
                    "description": description,
                    "roleTemplateId": template,
                })
            })
            .collect();
        let units = ADMIN_UNITS
            .iter()
            .enumerate()
            .map(|(i, name)| {
                json!({
                    "@odata.type": ADMINISTRATIVE_UNIT_TYPE,
                    "id": guid(seed, "unit", i as u64),
                    "deletedDateTime": null,
                    "displayName": name,
                    "description": format!("Administrative unit for {name}"),
                    "visibility": null,
                })
            })
            .collect();
        Catalog {
            groups,
            roles,
            units,
        }
    }

    fn group(&self, i: usize) -> Value {
        self.groups[i].clone()
    }

    fn role(&self, i: usize) -> Value {
        self.roles[i].clone()
    }

    /// The role granted by role-assignable group `g` (an index below
    /// `ROLE_GROUP_GRANTS.len()`), as an inherited role naming that group in `viaGroup`.
    fn role_via_group(&self, g: usize) -> Value {
        let mut role = self.role(ROLE_GROUP_GRANTS[g]);
        role[VIA_GROUP] = self.groups[g]["id"].clone();
        role
    }
}

fn slug(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_lowercase()
}

fn methods(kinds: &[usize]) -> Vec<String> {
    kinds
        .iter()
        .map(|&k| AUTH_METHOD_TYPES[k].to_owned())
        .collect()
}

/// A `signInActivity` object with sign-ins between `after` and the tenant's "now".
fn sign_in_activity(rng: &mut SplitMix, seed: u64, index: u64, after: i64) -> Value {
    let now = tenant_now();
    let low = after.max(now - 400 * 86_400);
    let interactive = rng.between(low, now);
    let non_interactive = rng.between(interactive, now);
    let successful = if rng.chance(90) {
        interactive
    } else {
        rng.between(low, interactive.max(low + 1))
    };
    json!({
        "lastSignInDateTime": format_iso(interactive),
        "lastSignInRequestId": guid(seed, "signin", index),
        "lastNonInteractiveSignInDateTime": format_iso(non_interactive),
        "lastNonInteractiveSignInRequestId": guid(seed, "signin-ni", index),
        "lastSuccessfulSignInDateTime": format_iso(successful),
        "lastSuccessfulSignInRequestId": guid(seed, "signin-ok", index),
    })
}

/// The `signInActivity` of someone who never signed in: Graph's year-0001 placeholder.
fn never_signed_in() -> Value {
    json!({
        "lastSignInDateTime": "0001-01-01T00:00:00Z",
        "lastSignInRequestId": null,
        "lastNonInteractiveSignInDateTime": "0001-01-01T00:00:00Z",
        "lastNonInteractiveSignInRequestId": null,
        "lastSuccessfulSignInDateTime": null,
        "lastSuccessfulSignInRequestId": null,
    })
}

/// A property that is sometimes set, sometimes null and sometimes not there at all.
enum Field {
    Set(Value),
    Null,
    Absent,
}

fn put(user: &mut Map<String, Value>, key: &str, field: Field) {
    match field {
        Field::Set(v) => {
            user.insert(key.to_owned(), v);
        }
        Field::Null => {
            user.insert(key.to_owned(), Value::Null);
        }
        Field::Absent => {
            user.remove(key);
        }
    }
}

/// A random user (index 20 and beyond).
fn random_user(seed: u64, index: usize, catalog: &Catalog) -> SimUser {
    let i = index as u64;
    let mut rng = SplitMix::new(derive(seed, "user", i));
    let (first, first_ascii) = *rng.pick(&FIRST_NAMES);
    let (last, last_ascii) = *rng.pick(&LAST_NAMES);
    let alias = format!("{first_ascii}.{last_ascii}{index}");
    let guest = rng.chance(8);
    let (window_start, window_end) = created_window();
    let created = (!rng.chance(1)).then(|| rng.between(window_start, window_end));

    let mut user = Map::new();
    user.insert("id".into(), json!(guid(seed, "user", i)));
    user.insert("displayName".into(), json!(format!("{first} {last}")));
    user.insert("givenName".into(), json!(first));
    user.insert("surname".into(), json!(last));
    user.insert("mailNickname".into(), json!(alias));
    if guest {
        let domain = *rng.pick(&GUEST_DOMAINS);
        let home = format!("{alias}@{domain}");
        let external = format!("{alias}_{domain}#EXT#");
        user.insert(
            "userPrincipalName".into(),
            json!(format!("{external}@{INITIAL_DOMAIN}")),
        );
        user.insert("mailNickname".into(), json!(external));
        user.insert("mail".into(), json!(home));
        user.insert("userType".into(), json!("Guest"));
    } else {
        let upn = format!("{alias}@{VERIFIED_DOMAIN}");
        let mail = if rng.chance(3) {
            Value::Null
        } else {
            json!(upn)
        };
        user.insert("userPrincipalName".into(), json!(upn));
        user.insert("mail".into(), mail);
        user.insert("userType".into(), json!("Member"));
    }
    user.insert("accountEnabled".into(), json!(!rng.chance(5)));
    user.insert(
        "createdDateTime".into(),
        created.map_or(Value::Null, |c| json!(format_iso(c))),
    );
    let optional = |rng: &mut SplitMix, set: u64, value: Value| -> Field {
        let roll = rng.below(100);
        if roll < set {
            Field::Set(value)
        } else if roll < set + (100 - set) * 2 / 3 {
            Field::Null
        } else {
            Field::Absent
        }
    };
    let staff = !guest;
    let department = json!(rng.pick(&DEPARTMENTS));
    let field = optional(&mut rng, if staff { 75 } else { 5 }, department);
    put(&mut user, "department", field);
    let title = json!(rng.pick(&JOB_TITLES));
    let field = optional(&mut rng, if staff { 75 } else { 5 }, title);
    put(&mut user, "jobTitle", field);
    let employee_id = json!(format!("E{:06}", 100_000 + index));
    let field = optional(&mut rng, if staff { 80 } else { 0 }, employee_id);
    put(&mut user, "employeeId", field);
    let kind = json!(*rng.pick(&["Employee", "Employee", "Employee", "Contractor", "Vendor"]));
    let field = optional(&mut rng, if staff { 85 } else { 0 }, kind);
    put(&mut user, "employeeType", field);
    let company = json!(*rng.pick(&[
        "Contoso Ltd",
        "Contoso Ltd",
        "Contoso Ltd",
        "Contoso Pharmaceuticals"
    ]));
    let field = optional(&mut rng, if staff { 90 } else { 0 }, company);
    put(&mut user, "companyName", field);
    let office = json!(rng.pick(&OFFICES));
    user.insert(
        "officeLocation".into(),
        if staff && rng.chance(80) {
            office
        } else {
            Value::Null
        },
    );
    let restricted = match rng.below(100) {
        0 => json!(true),
        1 | 2 => Value::Null,
        _ => json!(false),
    };
    user.insert("isManagementRestricted".into(), restricted);
    if staff && rng.chance(30) {
        let sam: String = format!("{}{}", &first_ascii[..1], last_ascii)
            .chars()
            .take(16)
            .collect();
        user.insert("onPremisesSyncEnabled".into(), json!(true));
        user.insert(
            "onPremisesSamAccountName".into(),
            json!(format!("{sam}{}", index % 10_000)),
        );
    } else {
        user.insert("onPremisesSyncEnabled".into(), Value::Null);
        user.insert("onPremisesSamAccountName".into(), Value::Null);
    }
    let mobile = rng
        .chance(50)
        .then(|| format!("+1 425 555 {:04}", rng.below(10_000)));
    user.insert("mobilePhone".into(), json!(mobile));
    let business: Vec<String> = if staff && rng.chance(60) {
        vec![format!("+1 206 555 {:04}", rng.below(10_000))]
    } else {
        Vec::new()
    };
    user.insert("businessPhones".into(), json!(business));
    user.insert("preferredLanguage".into(), json!(rng.pick(&LANGUAGES)));
    let sign_in_roll = rng.below(100);
    if sign_in_roll >= 8 {
        let after = created.unwrap_or(window_start);
        user.insert(
            "signInActivity".into(),
            sign_in_activity(&mut rng, seed, i, after),
        );
    } else if sign_in_roll >= 4 {
        user.insert("signInActivity".into(), never_signed_in());
    }

    // Memberships.
    let mut member_of = Vec::new();
    let mut inherited_roles = Vec::new();
    let ordinary = (ROLE_GROUP_GRANTS.len()..GROUPS.len()).collect::<Vec<_>>();
    let how_many = if guest {
        rng.below(2) as usize
    } else {
        match rng.below(100) {
            0..=9 => 0,
            10..=59 => 1 + rng.below(3) as usize,
            60..=89 => 4 + rng.below(3) as usize,
            _ => 7 + rng.below(4) as usize,
        }
    };
    let mut chosen: Vec<usize> = Vec::new();
    while chosen.len() < how_many {
        let g = *rng.pick(&ordinary);
        if !chosen.contains(&g) {
            chosen.push(g);
        }
    }
    member_of.extend(chosen.iter().map(|&g| catalog.group(g)));
    if staff {
        let direct_role = rng
            .chance(4)
            .then(|| rng.below(ROLES.len() as u64) as usize);
        if let Some(role) = direct_role {
            member_of.push(catalog.role(role));
        }
        if rng.chance(3) {
            let g = rng.below(ROLE_GROUP_GRANTS.len() as u64) as usize;
            member_of.push(catalog.group(g));
            if direct_role != Some(ROLE_GROUP_GRANTS[g]) {
                inherited_roles.push(catalog.role_via_group(g));
            }
        }
        if rng.chance(5) {
            member_of.push(rng.pick(&catalog.units).clone());
        }
    }

    // Authentication methods.
    let mut kinds = Vec::new();
    if guest {
        if rng.chance(70) {
            kinds.push(EMAIL);
        }
    } else {
        if rng.chance(97) {
            kinds.push(PASSWORD);
        }
        for (kind, percent) in [
            (EMAIL, 20),
            (TAP, 3),
            (PHONE, 40),
            (AUTHENTICATOR, 60),
            (OATH, 10),
            (FIDO2, 8),
            (HELLO, 15),
            (PLATFORM, 3),
            (EXTERNAL, 1),
            (FUTURE, 1),
        ] {
            if rng.chance(percent) {
                kinds.push(kind);
            }
        }
    }

    SimUser {
        user: Value::Object(user),
        member_of,
        inherited_roles,
        auth_methods: methods(&kinds),
        role_assignments: Vec::new(),
    }
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
fn hard_case_user(seed: u64, index: usize, catalog: &Catalog) -> SimUser {
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

/// The generated tenant's custom role definitions.
fn custom_definitions(seed: u64) -> Vec<Value> {
    CUSTOM_ROLES
        .iter()
        .enumerate()
        .map(|(i, (name, description))| {
            let id = guid(seed, "custom-role", i as u64);
            json!({"id": id, "displayName": name, "description": description, "isBuiltIn": false, "templateId": id})
        })
        .collect()
}

/// The role-assignable group that grants the custom role "Contoso Support Desk".
fn support_desk_group(seed: u64) -> Value {
    json!({
        "@odata.type": GROUP_TYPE,
        "id": guid(seed, "custom-role-group", 0),
        "displayName": "Role - Support Desk",
        "description": "Members of Role - Support Desk",
        "groupTypes": [],
        "mail": null,
        "mailEnabled": false,
        "securityEnabled": true,
        "isAssignableToRole": true,
    })
}

/// The kinds of grant only the role-management API shows.
#[derive(Clone, Copy)]
enum GrantKind {
    Custom,
    UnitScoped,
    AppScoped,
    EligibleOnly,
    ViaGroup,
}

/// Adds grants of `kinds` to a random user (`rng`: the user's own grant stream).
fn add_grants(
    seed: u64,
    sim: &mut SimUser,
    kinds: &[GrantKind],
    catalog: &Catalog,
    rng: &mut SplitMix,
) {
    let customs = custom_definitions(seed);
    for kind in kinds {
        match kind {
            GrantKind::Custom => {
                let definition = &customs[rng.below(2) as usize]["id"];
                sim.role_assignments
                    .push(json!({"roleDefinitionId": definition, "directoryScopeId": "/"}));
            }
            GrantKind::UnitScoped => {
                let role = *rng.pick(&[
                    "User Administrator",
                    "Helpdesk Administrator",
                    "Authentication Administrator",
                ]);
                let unit = &rng.pick(&catalog.units)["id"];
                sim.role_assignments.push(json!({
                    "roleDefinitionId": crate::roles::built_in_id(role),
                    "directoryScopeId": format!("/administrativeUnits/{}", unit.as_str().unwrap_or_default()),
                }));
            }
            GrantKind::AppScoped => {
                let role = *rng.pick(&[
                    "Application Administrator",
                    "Cloud Application Administrator",
                ]);
                let app = guid(seed, "application", rng.below(2));
                sim.role_assignments.push(json!({
                    "roleDefinitionId": crate::roles::built_in_id(role),
                    "directoryScopeId": format!("/{app}"),
                }));
            }
            GrantKind::EligibleOnly => {
                for role in ["Global Administrator", "Security Administrator"] {
                    sim.role_assignments.push(json!({
                        "roleDefinitionId": crate::roles::built_in_id(role),
                        "directoryScopeId": "/",
                        "eligible": true,
                    }));
                }
            }
            GrantKind::ViaGroup => {
                let group = support_desk_group(seed);
                sim.role_assignments.push(json!({
                    "roleDefinitionId": customs[2]["id"],
                    "directoryScopeId": "/",
                    VIA_GROUP: group["id"],
                }));
                sim.member_of.push(group);
            }
        }
    }
}

/// Whether a user holds an active role anywhere in its data.
fn holds_active_role(sim: &SimUser) -> bool {
    !sim.directory_roles().is_empty()
        || sim
            .role_assignments
            .iter()
            .any(|a| a.get("eligible").and_then(Value::as_bool) != Some(true))
}

/// The grants of user `index` that only the role-management API shows (see [`role_case`]).
fn role_grants(seed: u64, index: usize, sim: &mut SimUser, catalog: &Catalog) {
    if index < hard_case::COUNT {
        return;
    }
    let mut rng = SplitMix::new(derive(seed, "role-grant", index as u64));
    let unit = |u: usize| {
        format!(
            "/administrativeUnits/{}",
            catalog.units[u]["id"].as_str().unwrap_or_default()
        )
    };
    match index {
        role_case::CUSTOM_ROLE => sim.role_assignments.push(json!({
            "roleDefinitionId": custom_definitions(seed)[0]["id"],
            "directoryScopeId": "/",
        })),
        role_case::UNIT_SCOPED => sim.role_assignments.push(json!({
            "roleDefinitionId": crate::roles::built_in_id("User Administrator"),
            "directoryScopeId": unit(0),
        })),
        role_case::APP_SCOPED => sim.role_assignments.push(json!({
            "roleDefinitionId": crate::roles::built_in_id("Application Administrator"),
            "directoryScopeId": format!("/{}", guid(seed, "application", 0)),
        })),
        role_case::ELIGIBLE_ONLY => {
            sim.member_of.retain(|o| {
                crate::tenant::odata_type(o) != Some(DIRECTORY_ROLE_TYPE)
                    && o.get("isAssignableToRole") != Some(&json!(true))
            });
            sim.inherited_roles.clear();
            add_grants(seed, sim, &[GrantKind::EligibleOnly], catalog, &mut rng);
        }
        i if role_case::VIA_GROUP.contains(&i) => {
            add_grants(seed, sim, &[GrantKind::ViaGroup], catalog, &mut rng);
        }
        _ => {
            let mut kinds: Vec<GrantKind> = [
                GrantKind::Custom,
                GrantKind::UnitScoped,
                GrantKind::AppScoped,
                GrantKind::EligibleOnly,
                GrantKind::ViaGroup,
            ]
            .into_iter()
            .filter(|_| rng.below(role_case::ONE_IN) == 0)
            .collect();
            // Eligibility is drawn as "eligible only": dropped when the user holds, or is about
            // to get, an active role.
            let active = holds_active_role(sim)
                || kinds.iter().any(|k| !matches!(k, GrantKind::EligibleOnly));
            if active {
                kinds.retain(|k| !matches!(k, GrantKind::EligibleOnly));
            }
            add_grants(seed, sim, &kinds, catalog, &mut rng);
        }
    }
}

/// Generates the tenant behind [`Tenant::generated`].
pub(crate) fn generate(seed: u64, users: usize) -> Tenant {
    let catalog = Catalog::new(seed);
    let users = (0..users)
        .map(|index| {
            let mut sim = if index < hard_case::COUNT {
                hard_case_user(seed, index, &catalog)
            } else {
                random_user(seed, index, &catalog)
            };
            role_grants(seed, index, &mut sim, &catalog);
            sim
        })
        .collect();
    Tenant::from_trusted(users).with_role_definitions(custom_definitions(seed))
}

impl Tenant {
    /// A deterministic tenant of `users` users from `seed` (same seed and size => byte-identical
    /// responses, up to the emulator's own address in links and `@odata.context`). Indexes below [`hard_case::COUNT`] hold the hard cases listed in
    /// [`hard_case`]; user `i` depends only on `seed` and `i`.
    pub fn generated(seed: u64, users: usize) -> Tenant {
        generate(seed, users)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_well_formed_and_distinct() {
        let a = guid(7, "user", 0);
        let b = guid(7, "user", 1);
        let c = guid(8, "user", 0);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn a_prefix_of_a_large_tenant_is_the_small_tenant() {
        let small = Tenant::generated(42, 50).to_fixture();
        let large = Tenant::generated(42, 500).to_fixture();
        assert_eq!(small["users"].as_array().map(Vec::len), Some(50));
        assert_eq!(small["users"][49], large["users"][49]);
        assert_ne!(
            Tenant::generated(43, 50).to_fixture()["users"][30],
            small["users"][30]
        );
    }
}
