//! A deterministic, realistic tenant generated from a seed.
//!
//! The demo, the end-to-end tests and the benchmarks need tenants of any size that look like a
//! real directory — guests, disabled accounts, nulls where Graph has nulls, several pages of
//! memberships, roles held through groups — and that are the same on every run. Every user is
//! a pure function of `(seed, index)`: the first hundred users of a 10,000-user tenant are the
//! users of a 100-user tenant with the same seed. The first [`hard_case::COUNT`] indexes hold
//! fixed hard cases (see [`hard_case`]); the rest are pseudo-random with realistic variety.
//!
//! One job per file: `seeded` (the seeded random stream and the ids derived from it),
//! `catalog` (what every user of a seed draws from: names, groups, roles, administrative
//! units, authentication method types), `random_users` (users from index
//! [`hard_case::COUNT`] on), `hard_cases` (the fixed users below it, [`hard_case`]) and
//! `role_cases` (grants only the role-management API shows, [`role_case`]). This file puts
//! them together. Changing any of them changes every generated tenant: the golden tests and
//! the emulator's own tests pin the output.

mod catalog;
mod hard_cases;
mod random_users;
mod role_cases;
mod scale;
mod seeded;

use crate::tenant::Tenant;
use catalog::Catalog;
use hard_cases::hard_case_user;
use random_users::random_user;
use role_cases::{custom_definitions, role_grants};

pub use catalog::{AUTH_METHOD_TYPES, INITIAL_DOMAIN, VERIFIED_DOMAIN};
pub use hard_cases::hard_case;
pub use role_cases::role_case;
pub use scale::ScaleSpec;
pub(crate) use seeded::{fnv1a, guid};

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
