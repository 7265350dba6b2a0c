//! Users from index [`hard_case::COUNT`](super::hard_case::COUNT) on: pseudo-random, with the
//! variety of a real directory (guests, disabled and synced accounts, properties set, null or
//! absent, zero to ten groups, the odd direct or group-granted role and administrative unit,
//! authentication methods in realistic proportions), and the `signInActivity` objects the
//! hard cases use too.

use serde_json::{json, Map, Value};

use super::catalog::{
    created_window, methods, tenant_now, Catalog, AUTHENTICATOR, DEPARTMENTS, EMAIL, EXTERNAL,
    FIDO2, FIRST_NAMES, FUTURE, GROUPS, GUEST_DOMAINS, HELLO, INITIAL_DOMAIN, JOB_TITLES,
    LANGUAGES, LAST_NAMES, OATH, OFFICES, PASSWORD, PHONE, PLATFORM, ROLES, ROLE_GROUP_GRANTS, TAP,
    VERIFIED_DOMAIN,
};
use super::seeded::{derive, guid, SplitMix};
use crate::clock::format_iso;
use crate::tenant::SimUser;

/// A `signInActivity` object with sign-ins between `after` and the tenant's "now".
pub(super) fn sign_in_activity(rng: &mut SplitMix, seed: u64, index: u64, after: i64) -> Value {
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
pub(super) fn never_signed_in() -> Value {
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
pub(super) fn random_user(seed: u64, index: usize, catalog: &Catalog) -> SimUser {
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
