//! An enterprise-sized tenant (issue 17's scale benchmark: a million users, 200,000 groups, 15
//! direct memberships a user on average, users in 2,000 groups, groups of 200,000 members),
//! generated user by user straight into the emulator's directory, never as a whole-tenant
//! `Vec<SimUser>`.
//!
//! Every fact is a pure function of `(seed, index)`, like [`Tenant::generated`]'s users: the
//! user object, sign-in activity and authentication methods are `random_user`'s; its groups
//! are replaced by the spec's plain groups ([`ScaleSpec::group_ids_of`], the tests' oracle):
//!
//! - **huge groups** `0..huge_groups`: with `stride = users / huge_group_members`, huge group
//!   `k` holds the users with `index % stride == k % stride` (so ~`huge_group_members` each);
//! - **wide users**: `wide_users` users at evenly spaced indexes, wide user `j` in
//!   `wide_user_groups` groups spread evenly over all groups (offset by `j`);
//! - **everyone else** draws `n` further groups among the non-huge ones, `n` uniform in
//!   `0..=2m` (`m` chosen so the tenant's mean is `mean_memberships`), each group drawn as
//!   `floor(ordinary * u²)` (`u` uniform in `[0, 1)`): the first groups are much bigger than
//!   the last (the largest ~`sqrt(1/ordinary)` of all draws, the smallest a handful);
//! - **admin facts**: one user in 1,000 holds a built-in directory role directly (a
//!   `#microsoft.graph.directoryRole` in `memberOf`); one in 200 is in the role-assignable group
//!   "Role - Helpdesk" and inherits its role (`viaGroup`); one in 500 is PIM-eligible for
//!   Global Administrator and Security Administrator (`role_assignments` with `eligible`), as
//!   `role_cases` expresses them.

use serde_json::{json, Value};

use super::catalog::{Catalog, GROUPS, ROLES, ROLE_GROUP_GRANTS, VERIFIED_DOMAIN};
use super::random_users::random_user;
use super::seeded::{derive, guid, SplitMix};
use crate::directory::Directory;
use crate::server::Emulator;
use crate::tenant::GROUP_TYPE;
use crate::EmulatorConfig;

/// The shape of an enterprise tenant; every user a pure function of (seed, index).
#[derive(Clone, Debug)]
pub struct ScaleSpec {
    /// The seed every fact derives from.
    pub seed: u64,
    /// How many users.
    pub users: usize,
    /// Plain security/M365 groups (not role-assignable).
    pub groups: usize,
    /// Direct group memberships per user on average (15).
    pub mean_memberships: u32,
    /// Users in `wide_user_groups` groups each.
    pub wide_users: usize,
    /// How many groups a wide user is in (2,000).
    pub wide_user_groups: usize,
    /// Groups with `huge_group_members` members each.
    pub huge_groups: usize,
    /// Members of each huge group (200,000).
    pub huge_group_members: usize,
}

/// The role-assignable group of the scale tenant ("Role - Helpdesk", catalog group 2).
const ROLE_GROUP: usize = 2;
/// One user in this many holds a built-in role directly.
const DIRECT_ROLE_ONE_IN: u64 = 1_000;
/// One user in this many is in the role-assignable group.
const ROLE_GROUP_ONE_IN: u64 = 200;
/// One user in this many is PIM-eligible.
const ELIGIBLE_ONE_IN: u64 = 500;

impl ScaleSpec {
    /// 1,000,000 users -> 200,000 groups, mean 15, 100 wide users in 2,000 groups,
    /// 5 huge groups of 200,000; smaller tenants scale the same shape down
    /// (groups = users/5, huge_group_members = users/5, wide_users = max(1, users/10_000),
    /// wide_user_groups = min(2,000, groups)).
    pub fn enterprise(seed: u64, users: usize) -> ScaleSpec {
        let groups = users / 5;
        ScaleSpec {
            seed,
            users,
            groups,
            mean_memberships: 15,
            wide_users: (users / 10_000).max(1),
            wide_user_groups: groups.min(2_000),
            huge_groups: 5,
            huge_group_members: users / 5,
        }
    }

    /// User `index`'s object id (what the emulator serves as `id`).
    pub fn user_id(&self, index: usize) -> String {
        guid(self.seed, "user", index as u64)
    }

    /// The id of plain group `k` (`0..groups`).
    pub fn group_id(&self, k: usize) -> String {
        guid(self.seed, "scale-group", k as u64)
    }

    /// The ids of the plain groups user `index` is a direct member of (the oracle).
    pub fn group_ids_of(&self, index: usize) -> Vec<String> {
        self.groups_of(index)
            .into_iter()
            .map(|k| self.group_id(k))
            .collect()
    }

    /// Total direct group memberships of the tenant (sum over users; cheap to compute).
    pub fn total_memberships(&self) -> u64 {
        (0..self.users)
            .map(|index| match self.wide_rank(index) {
                Some(_) => self.groups_of(index).len() as u64,
                None => (self.huge_of(index).len() + self.draw_count(index)) as u64,
            })
            .sum()
    }

    /// How many huge groups there are (no more than there are groups).
    fn huge(&self) -> usize {
        self.huge_groups.min(self.groups)
    }

    /// Users `i` and `i + stride` share their huge groups.
    fn stride(&self) -> usize {
        (self.users / self.huge_group_members.max(1)).max(1)
    }

    /// The huge groups of user `index`.
    fn huge_of(&self, index: usize) -> Vec<usize> {
        let stride = self.stride();
        (index % stride..self.huge()).step_by(stride).collect()
    }

    /// Which wide user `index` is, if it is one (evenly spaced, the first at half a step).
    fn wide_rank(&self, index: usize) -> Option<usize> {
        let wide = self.wide_users.min(self.users);
        if wide == 0 {
            return None;
        }
        let step = self.users / wide;
        (index % step == step / 2 && index / step < wide).then_some(index / step)
    }

    /// Groups drawn by an ordinary user, on average: what makes the tenant's mean
    /// `mean_memberships` once huge groups and wide users are counted.
    fn mean_draws(&self) -> f64 {
        let users = self.users.max(1) as f64;
        let huge = (0..self.stride())
            .map(|slot| self.huge_of(slot).len())
            .sum::<usize>() as f64
            / self.stride() as f64;
        let wide = (self.wide_users.min(self.users) * self.wide_user_groups.min(self.groups))
            as f64
            / users;
        (f64::from(self.mean_memberships) - huge - wide).max(0.0)
    }

    /// How many non-huge groups ordinary user `index` draws (uniform in `0..=2m`).
    fn draw_count(&self, index: usize) -> usize {
        let ordinary = self.groups - self.huge();
        let mut rng = SplitMix::new(derive(self.seed, "scale-groups", index as u64));
        let span = 2.0 * self.mean_draws() + 1.0;
        ((unit(&mut rng) * span) as usize).min(ordinary)
    }

    /// The plain groups of user `index`, as group numbers, in `memberOf` order.
    fn groups_of(&self, index: usize) -> Vec<usize> {
        let mut out = self.huge_of(index);
        let huge = self.huge();
        if let Some(rank) = self.wide_rank(index) {
            let (all, wide) = (self.groups, self.wide_user_groups.min(self.groups));
            for t in 0..wide {
                let k = (t * all / wide + rank) % all;
                if k >= huge || !out.contains(&k) {
                    out.push(k);
                }
            }
            return out;
        }
        let ordinary = self.groups - huge;
        let n = self.draw_count(index);
        // The same stream as `draw_count`, past its first draw.
        let mut rng = SplitMix::new(derive(self.seed, "scale-groups", index as u64));
        unit(&mut rng);
        let first = out.len();
        while out.len() - first < n {
            let u = unit(&mut rng);
            let mut k = ((ordinary as f64 * u * u) as usize).min(ordinary - 1);
            while out[first..].contains(&(huge + k)) {
                k = (k + 1) % ordinary;
            }
            out.push(huge + k);
        }
        out
    }

    /// Plain group `k` as a `memberOf` entry shows it.
    fn group_object(&self, k: usize) -> Value {
        let base = GROUPS[ROLE_GROUP_GRANTS.len() + k % (GROUPS.len() - ROLE_GROUP_GRANTS.len())];
        let name = if k < self.huge() {
            format!("All Staff - Region {}", k + 1)
        } else {
            format!("{base} {k:06}")
        };
        let unified = k.is_multiple_of(3);
        let mail = unified.then(|| format!("group{k:06}@{VERIFIED_DOMAIN}"));
        json!({
            "@odata.type": GROUP_TYPE,
            "id": self.group_id(k),
            "displayName": name,
            "description": format!("Members of {name}"),
            "groupTypes": if unified { json!(["Unified"]) } else { json!([]) },
            "mail": mail,
            "mailEnabled": unified,
            "securityEnabled": !unified || k.is_multiple_of(2),
            "isAssignableToRole": Value::Null,
        })
    }

    /// User `index`'s admin facts (direct role, role-assignable group, PIM eligibility),
    /// appended to its relations.
    fn add_roles(&self, index: usize, sim: &mut crate::SimUser, catalog: &Catalog) {
        let roll = derive(self.seed, "scale-role", index as u64);
        if roll.is_multiple_of(DIRECT_ROLE_ONE_IN) {
            let role = (roll / DIRECT_ROLE_ONE_IN) as usize % ROLES.len();
            sim.member_of.push(catalog.role(role));
        }
        if roll % ROLE_GROUP_ONE_IN == 1 {
            sim.member_of.push(catalog.group(ROLE_GROUP));
            sim.inherited_roles.push(catalog.role_via_group(ROLE_GROUP));
        }
        if roll % ELIGIBLE_ONE_IN == 2 {
            for role in ["Global Administrator", "Security Administrator"] {
                sim.role_assignments.push(json!({
                    "roleDefinitionId": crate::roles::built_in_id(role),
                    "directoryScopeId": "/",
                    "eligible": true,
                }));
            }
        }
    }

    /// The directory of this tenant, filled user by user.
    fn directory(&self) -> Directory {
        let catalog = Catalog::new(self.seed);
        let mut directory = Directory::empty(Vec::new());
        let groups: Vec<u32> = (0..self.groups)
            .map(|k| directory.intern(self.group_object(k)))
            .collect();
        for index in 0..self.users {
            let mut sim = random_user(self.seed, index, &catalog);
            sim.member_of.clear();
            sim.inherited_roles.clear();
            sim.role_assignments.clear();
            self.add_roles(index, &mut sim, &catalog);
            let plain: Vec<u32> = self
                .groups_of(index)
                .into_iter()
                .map(|k| groups[k])
                .collect();
            directory.put_with_groups(sim, &plain);
        }
        directory.loaded();
        directory
    }
}

/// Uniform in `[0, 1)` from the top 53 bits of the next draw.
fn unit(rng: &mut SplitMix) -> f64 {
    (rng.next() >> 11) as f64 / (1u64 << 53) as f64
}

impl Emulator {
    /// An emulator serving `spec`'s tenant, generated user by user into the directory.
    pub async fn start_scaled(
        spec: &ScaleSpec,
        config: EmulatorConfig,
    ) -> anyhow::Result<Emulator> {
        crate::server::check_config(&config)?;
        // Tens of seconds for a million users: off the async workers.
        let spec = spec.clone();
        let directory = tokio::task::spawn_blocking(move || spec.directory())
            .await
            .map_err(|e| anyhow::anyhow!("generating the scaled tenant failed: {e}"))?;
        let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        Emulator::start_directory(directory, config, any, any).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shape_follows_the_spec() {
        let spec = ScaleSpec::enterprise(3, 2_000);
        assert_eq!(
            (spec.groups, spec.wide_users, spec.wide_user_groups),
            (400, 1, 400)
        );
        let mut sizes = vec![0usize; spec.groups];
        let mut total = 0u64;
        for index in 0..spec.users {
            let groups = spec.groups_of(index);
            let mut distinct = groups.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(
                distinct.len(),
                groups.len(),
                "user {index} lists a group twice"
            );
            total += groups.len() as u64;
            for k in groups {
                sizes[k] += 1;
            }
        }
        assert_eq!(spec.total_memberships(), total);
        let mean = total as f64 / spec.users as f64;
        assert!((14.0..16.0).contains(&mean), "mean {mean}");
        // Huge groups: a fifth of the users each (index % 5), plus the wide user (index 1,000,
        // in every group) in the four that are not its own.
        assert_eq!(spec.wide_rank(1_000), Some(0));
        assert_eq!(&sizes[..5], &[400, 401, 401, 401, 401]);
        assert_eq!(spec.groups_of(1_000).len(), 400);
        // Skew: the first ordinary groups are far bigger than the last ones.
        let head: usize = sizes[5..15].iter().sum();
        let tail: usize = sizes[spec.groups - 10..].iter().sum();
        assert!(head > 5 * tail, "head {head}, tail {tail}");
    }

    #[test]
    fn ids_follow_the_seed_and_index_and_groups_follow_the_shape() {
        let small = ScaleSpec::enterprise(9, 1_000);
        let large = ScaleSpec::enterprise(9, 50_000);
        assert_eq!(small.user_id(17), large.user_id(17));
        assert_eq!(small.group_id(3), large.group_id(3));
        // Different shapes give different groups; the same shape the same ones.
        assert_eq!(
            small.group_ids_of(123),
            ScaleSpec::enterprise(9, 1_000).group_ids_of(123)
        );
        assert_ne!(
            small.group_ids_of(123),
            ScaleSpec::enterprise(10, 1_000).group_ids_of(123)
        );
    }
}
