// The enrichment every mapping-benchmark user gets. One file, pulled in with `include!` by
// the component (`tests/mapbench/src/lib.rs`) and the native side (`tests/benches/mapping.rs`),
// so both measure exactly the same work.

/// The enrichment every benchmark user gets.
pub fn bench_enrichment() -> entra_connector::ocsf::Enrichment {
    use entra_connector::ocsf::{Enrichment, GroupRef, Mfa};
    Enrichment {
        groups: Some(vec![
            GroupRef {
                id: "g-1".into(),
                display_name: Some("All Company".into()),
            },
            GroupRef {
                id: "g-2".into(),
                display_name: Some("Engineering".into()),
            },
        ]),
        member_of_roles: vec![],
        roles: Some(vec!["Security Reader".into()]),
        eligible_roles: Some(vec![]),
        mfa: Some(Mfa::Methods(vec![
            "#microsoft.graph.passwordAuthenticationMethod".into(),
            "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod".into(),
        ])),
        admin_hint: false,
    }
}
