//! What every user of one seed draws from: the tenant's domains, the authentication method
//! types, the directory roles, the groups and administrative units (built once per seed into
//! a [`Catalog`]), the people's names, departments, offices and languages, and the time window
//! creation and sign-in times fall in.
//!
//! The role names and template ids are Microsoft's built-in roles (`roles::BUILT_IN_ROLES`,
//! which cites its source); the method types are Graph's `authenticationMethod` subtypes (see
//! [`AUTH_METHOD_TYPES`]). The order of every list is part of every generated tenant.

use serde_json::{json, Value};

use super::seeded::guid;
use crate::clock::midnight_utc;
use crate::roles::BUILT_IN_ROLES;
use crate::tenant::{ADMINISTRATIVE_UNIT_TYPE, DIRECTORY_ROLE_TYPE, GROUP_TYPE, VIA_GROUP};

/// The tenant's initial domain (guest UPNs end with it).
pub const INITIAL_DOMAIN: &str = "contoso.onmicrosoft.com";
/// The verified domain of member users' UPNs and mail.
pub const VERIFIED_DOMAIN: &str = "contoso.com";

/// Every authentication method type the generator hands out: Graph v1.0's `authenticationMethod`
/// subtypes (resources/authentication.md relationships `passwordMethods`, `emailMethods`, …,
/// plus resources/platformcredentialauthenticationmethod.md and
/// resources/externalauthenticationmethod.md), and last a type Graph does not have, on purpose:
/// a client must cope with method types newer than itself.
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

pub(super) const PASSWORD: usize = 0;
pub(super) const EMAIL: usize = 1;
pub(super) const TAP: usize = 2;
pub(super) const PHONE: usize = 3;
pub(super) const AUTHENTICATOR: usize = 4;
pub(super) const OATH: usize = 5;
pub(super) const FIDO2: usize = 6;
pub(super) const HELLO: usize = 7;
pub(super) const PLATFORM: usize = 8;
pub(super) const EXTERNAL: usize = 9;
pub(super) const FUTURE: usize = 10;

/// The directory roles the generator hands out: the first eight built-in roles of
/// [`BUILT_IN_ROLES`] (real names and template ids; their order is part of every generated
/// tenant, so it never changes).
pub(super) const ROLES: &[(&str, &str, &str)] =
    (&BUILT_IN_ROLES as &[(&str, &str, &str)]).split_at(8).0;
pub(super) const GLOBAL_ADMINISTRATOR: usize = 0;
pub(super) const USER_ADMINISTRATOR: usize = 1;
pub(super) const PRIVILEGED_ROLE_ADMINISTRATOR: usize = 7;

/// Role-assignable groups first (each grants the role at the same position of
/// `ROLE_GROUP_GRANTS`), then ordinary groups.
pub(super) const GROUPS: [&str; 50] = [
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
pub(super) const ROLE_GROUP_GRANTS: [usize; 4] = [0, 1, 4, 2];
// Hard cases 0 and 6 inherit Global and User Administrator through groups 0 and 1.
const _: () = assert!(
    ROLE_GROUP_GRANTS[0] == GLOBAL_ADMINISTRATOR && ROLE_GROUP_GRANTS[1] == USER_ADMINISTRATOR
);
pub(super) const ALL_COMPANY: usize = 4;
pub(super) const GUESTS_GROUP: usize = 37;

const ADMIN_UNITS: [&str; 3] = ["Paris Office", "Contractors", "EMEA Region"];

pub(super) const FIRST_NAMES: [(&str, &str); 40] = [
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

pub(super) const LAST_NAMES: [(&str, &str); 40] = [
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

pub(super) const DEPARTMENTS: [&str; 12] = [
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
pub(super) const JOB_TITLES: [&str; 14] = [
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
pub(super) const OFFICES: [&str; 6] = [
    "Paris",
    "London",
    "Seattle 18/2111",
    "Tokyo",
    "São Paulo",
    "Remote",
];
pub(super) const GUEST_DOMAINS: [&str; 5] = [
    "fabrikam.com",
    "tailspintoys.com",
    "northwindtraders.com",
    "adventure-works.com",
    "woodgrovebank.com",
];
pub(super) const LANGUAGES: [Option<&str>; 6] = [
    Some("en-US"),
    Some("fr-FR"),
    Some("de-DE"),
    Some("ja-JP"),
    Some("pt-BR"),
    None,
];

/// Midnight UTC of one of the generator's fixed dates (all of which exist).
fn fixed_date(year: i32, month: u32, day: u32) -> i64 {
    midnight_utc(year, month, day).expect("the generator's fixed dates exist")
}

/// Creation times are spread over this window (Unix seconds).
pub(super) fn created_window() -> (i64, i64) {
    (fixed_date(2019, 1, 1), fixed_date(2025, 6, 1))
}

/// "Now" of the generated tenant: sign-ins happen before it. Fixed so output never depends on
/// the wall clock.
pub(super) fn tenant_now() -> i64 {
    fixed_date(2025, 7, 1)
}

/// The groups, roles and administrative units every user of one seed draws from.
pub(super) struct Catalog {
    pub(super) groups: Vec<Value>,
    pub(super) roles: Vec<Value>,
    pub(super) units: Vec<Value>,
}

impl Catalog {
    pub(super) fn new(seed: u64) -> Catalog {
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

    pub(super) fn group(&self, i: usize) -> Value {
        self.groups[i].clone()
    }

    pub(super) fn role(&self, i: usize) -> Value {
        self.roles[i].clone()
    }

    /// The role granted by role-assignable group `g` (an index below
    /// `ROLE_GROUP_GRANTS.len()`), as an inherited role naming that group in `viaGroup`.
    pub(super) fn role_via_group(&self, g: usize) -> Value {
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

pub(super) fn methods(kinds: &[usize]) -> Vec<String> {
    kinds
        .iter()
        .map(|&k| AUTH_METHOD_TYPES[k].to_owned())
        .collect()
}
