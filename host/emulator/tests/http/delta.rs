//! `GET /v1.0/users/delta`: full round, change rounds, removals, expired tokens.

use graph_emulator::{Emulator, EmulatorConfig, Endpoint, Tenant};
use serde_json::{json, Value};

use crate::common::{ids, Answer, Client};

/// Follows a delta round to its end; returns the pages and the delta link.
async fn round(client: &Client, first: &str) -> (Vec<Answer>, String) {
    let mut pages = Vec::new();
    let mut url = first.to_owned();
    loop {
        let page = client
            .get(&url, &[("Prefer", "odata.maxpagesize=10")])
            .await;
        assert_eq!(page.status, 200, "{url}: {}", page.raw);
        let next = page.next_link();
        let delta = page.body["@odata.deltaLink"].as_str().map(str::to_owned);
        pages.push(page);
        match (next, delta) {
            (Some(next), None) => url = next,
            (None, Some(delta)) => return (pages, delta),
            other => panic!("a delta page has exactly one of nextLink and deltaLink: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_replays_full_state_then_only_changes() {
    let tenant = Tenant::generated(41, 35);
    let all: Vec<String> = tenant
        .users()
        .iter()
        .filter_map(|u| u.id().map(str::to_owned))
        .collect();
    let emulator = Emulator::start(tenant, EmulatorConfig::default())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;

    let (pages, delta_link) = round(
        &client,
        "/v1.0/users/delta?$select=id,displayName,accountEnabled",
    )
    .await;
    assert_eq!(pages.len(), 4);
    assert_eq!(
        pages[0].header("preference-applied"),
        Some("odata.maxpagesize=10")
    );
    assert_eq!(ids(&pages), all);
    assert!(pages[0].values()[0]
        .as_object()
        .is_some_and(|o| o.len() == 3));
    assert!(delta_link.starts_with(&format!(
        "{}/v1.0/users/delta?$deltatoken=",
        emulator.graph_endpoint()
    )));

    let (quiet, quiet_link) = round(&client, &delta_link).await;
    assert_eq!(quiet.len(), 1);
    assert!(quiet[0].values().is_empty(), "no change, no entries");

    let mut hire = emulator.users()[0].clone();
    hire.user["id"] = json!("hire-1");
    emulator.add_user(hire);
    assert!(emulator.update_user(&all[5], json!({"accountEnabled": false})));
    assert!(emulator.remove_user(&all[6]));
    assert!(emulator.soft_delete_user(&all[7]));
    let (changes, next_link) = round(&client, &quiet_link).await;
    let entries: Vec<Value> = changes.iter().flat_map(|p| p.values()).collect();
    assert_eq!(entries.len(), 4, "{entries:?}");
    assert_eq!(entries[0]["id"], "hire-1");
    assert_eq!(
        (
            entries[1]["id"].clone(),
            entries[1]["accountEnabled"].clone()
        ),
        (json!(all[5]), json!(false))
    );
    assert_eq!(
        entries[2],
        json!({"@odata.type": "#microsoft.graph.user", "id": all[6], "@removed": {"reason": "deleted"}})
    );
    assert_eq!(entries[3]["@removed"]["reason"], "changed");
    // The old delta link still replays from where it was issued.
    let (replayed, _) = round(&client, &quiet_link).await;
    assert_eq!(replayed.iter().flat_map(|p| p.values()).count(), 4);

    emulator.expire_delta_tokens();
    let gone = client.get(&next_link, &[]).await;
    assert_eq!((gone.status, gone.graph_code()), (410, "syncStateNotFound"));
    let (fresh, _) = round(&client, "/v1.0/users/delta?$select=id").await;
    assert_eq!(
        fresh.iter().flat_map(|p| p.values()).count(),
        34,
        "35 + 1 hired - 2 removed"
    );
    assert!(emulator.counters()[&Endpoint::UsersDelta] >= 12);
    emulator.shutdown().await;
}

#[tokio::test]
async fn delta_refuses_what_graph_refuses() {
    let emulator = Emulator::start(Tenant::generated(42, 5), EmulatorConfig::default())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    for query in [
        "/v1.0/users/delta?$select=id,signInActivity",
        "/v1.0/users/delta?$top=10",
        "/v1.0/users/delta?$orderby=createdDateTime",
    ] {
        let answer = client.get(query, &[]).await;
        assert_eq!(
            (answer.status, answer.graph_code()),
            (400, "Request_UnsupportedQuery"),
            "{query}"
        );
    }
    let forged = client.get("/v1.0/users/delta?$deltatoken=abc", &[]).await;
    assert_eq!((forged.status, forged.graph_code()), (400, "BadRequest"));
    emulator.set_next_link_base(Some("https://elsewhere.example".into()));
    let redirected = client.get("/v1.0/users/delta", &[]).await;
    assert!(redirected.body["@odata.deltaLink"]
        .as_str()
        .is_some_and(|l| l.starts_with("https://elsewhere.example/v1.0/users/delta?")));
    emulator.shutdown().await;
}

#[tokio::test]
async fn expired_delta_tokens_can_answer_other_resync_codes() {
    let emulator = Emulator::start(Tenant::generated(43, 12), EmulatorConfig::default())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    let first = client
        .get(
            "/v1.0/users/delta?$select=id",
            &[("Prefer", "odata.maxpagesize=5")],
        )
        .await;
    let next_link = first.next_link().expect("a second page");
    let (_, delta_link) = round(&client, "/v1.0/users/delta?$select=id").await;

    emulator.expire_delta_tokens_with(410, "resyncRequired");
    for link in [&next_link, &delta_link] {
        let gone = client.get(link, &[]).await;
        assert_eq!(
            (gone.status, gone.graph_code()),
            (410, "resyncRequired"),
            "{link}"
        );
        assert!(gone.body["error"]["message"].is_string());
    }
    // A fresh round works and its links are not stale.
    let (fresh, fresh_link) = round(&client, "/v1.0/users/delta?$select=id").await;
    assert_eq!(fresh.iter().flat_map(|p| p.values()).count(), 12);
    assert_eq!(client.get(&fresh_link, &[]).await.status, 200);

    emulator.expire_delta_tokens_with(400, "badRequestResync");
    let refused = client.get(&fresh_link, &[]).await;
    assert_eq!(
        (refused.status, refused.graph_code()),
        (400, "badRequestResync")
    );
    emulator.expire_delta_tokens();
    let gone = client.get(&fresh_link, &[]).await;
    assert_eq!(
        (gone.status, gone.graph_code()),
        (410, "syncStateNotFound"),
        "the latest expiry decides the answer"
    );
    emulator.shutdown().await;
}

/// The emulator's earlier behaviour (`generous`): any size up to 999 honoured, no short pages.
/// The realistic caps are in `delta_limits.rs`.
#[tokio::test]
async fn prefer_maxpagesize_is_honoured_on_every_page() {
    let tenant = Tenant::generated(44, 23);
    let all: Vec<String> = tenant
        .users()
        .iter()
        .filter_map(|u| u.id().map(str::to_owned))
        .collect();
    let emulator = Emulator::start(tenant, crate::common::generous())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    let prefer = [("Prefer", "odata.maxpagesize=5")];

    let mut url = "/v1.0/users/delta?$select=id".to_owned();
    let mut sizes = Vec::new();
    let mut seen = Vec::new();
    let delta_link = loop {
        let page = client.get(&url, &prefer).await;
        assert_eq!(page.status, 200, "{}", page.raw);
        assert_eq!(
            page.header("preference-applied"),
            Some("odata.maxpagesize=5"),
            "{url}"
        );
        sizes.push(page.values().len());
        seen.extend(ids(std::slice::from_ref(&page)));
        match page.next_link() {
            Some(next) => url = next,
            None => {
                break page.body["@odata.deltaLink"]
                    .as_str()
                    .expect("delta")
                    .to_owned()
            }
        }
    };
    assert_eq!(sizes, [5, 5, 5, 5, 3]);
    assert_eq!(seen, all);

    // The page size follows the header of each request, not the first one.
    let first = client.get("/v1.0/users/delta?$select=id", &prefer).await;
    let rest = client
        .get(
            &first.next_link().expect("more"),
            &[("Prefer", "odata.maxpagesize=999")],
        )
        .await;
    assert_eq!(rest.values().len(), 18);
    assert_eq!(
        rest.header("preference-applied"),
        Some("odata.maxpagesize=999")
    );
    let default = client.get(&first.next_link().expect("more"), &[]).await;
    assert_eq!(default.values().len(), 18, "default 200");
    assert!(default.header("preference-applied").is_none());

    // Change rounds page by the header too.
    for (i, id) in all.iter().enumerate().take(5) {
        assert!(emulator.update_user(id, json!({"displayName": format!("Changed {i}")})));
    }
    let mut url = delta_link;
    let mut sizes = Vec::new();
    loop {
        let page = client
            .get(&url, &[("Prefer", "return=minimal, odata.maxpagesize=2")])
            .await;
        assert_eq!(
            page.header("preference-applied"),
            Some("odata.maxpagesize=2")
        );
        sizes.push(page.values().len());
        match page.next_link() {
            Some(next) => url = next,
            None => break,
        }
    }
    assert_eq!(sizes, [2, 2, 1]);

    // Out of range: ignored (default page size, nothing applied).
    for size in ["0", "1000", "lots"] {
        let page = client
            .get(
                "/v1.0/users/delta?$select=id",
                &[("Prefer", &format!("odata.maxpagesize={size}"))],
            )
            .await;
        assert_eq!(page.values().len(), 23, "{size}");
        assert!(page.header("preference-applied").is_none());
    }
    emulator.shutdown().await;
}

/// Graph's delta tokens are state tokens ("Microsoft Graph responds with the requested
/// resource and a state token", learn.microsoft.com/graph/delta-query-overview) that stay
/// valid for seven days whatever happens to Graph's own servers meanwhile (devblogs.microsoft.com
/// /microsoft365dev/duration-of-change-tracking-tokens-for-identity-and-education-resources/).
/// The emulator's tokens carry their whole state (selection, round, position, version), so a
/// new emulator of the same seeded tenant, on another port, continues a round an earlier one
/// began, and answers an earlier one's delta link with the changes since (none): the links
/// were written with the stable public base, and the client maps that base to the new port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_emulator_of_the_same_seeded_tenant_continues_an_earlier_ones_links() {
    let public = "http://graph.stable.example";
    let config = EmulatorConfig {
        public_graph_endpoint: Some(format!("{public}/")),
        ..EmulatorConfig::default()
    };
    let all: Vec<String> = Tenant::generated(43, 35)
        .users()
        .iter()
        .filter_map(|u| u.id().map(str::to_owned))
        .collect();
    let first = Emulator::start(Tenant::generated(43, 35), config.clone())
        .await
        .expect("starts");
    assert_eq!(first.public_graph_endpoint(), public);
    let client = Client::new(&first).await;
    let page = client
        .get(
            "/v1.0/users/delta?$select=id,displayName",
            &[("Prefer", "odata.maxpagesize=10")],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.raw);
    let next = page.next_link().expect("a next link");
    assert!(
        next.starts_with(&format!("{public}/v1.0/users/delta?$skiptoken=")),
        "{next}"
    );
    let mut seen = ids(std::slice::from_ref(&page));
    let first_port = first.graph_addr().port();
    first.shutdown().await;

    // Same seed, same users, another port: the stored link, mapped to the new socket.
    let second = Emulator::start(Tenant::generated(43, 35), config)
        .await
        .expect("starts");
    assert_ne!(second.graph_addr().port(), first_port);
    let client = Client::new(&second).await;
    let (rest, delta_link) = moved_round(&client, public, &next).await;
    seen.extend(ids(&rest));
    assert_eq!(
        seen, all,
        "the round goes on where the first emulator left it, no user twice"
    );
    assert!(delta_link.starts_with(&format!("{public}/v1.0/users/delta?$deltatoken=")));

    // The delta link of the finished round, on a third instance: no change, no resync.
    second.shutdown().await;
    let third = Emulator::start(
        Tenant::generated(43, 35),
        EmulatorConfig {
            public_graph_endpoint: Some(public.into()),
            ..EmulatorConfig::default()
        },
    )
    .await
    .expect("starts");
    let client = Client::new(&third).await;
    let (quiet, _) = moved_round(&client, public, &delta_link).await;
    assert_eq!(
        ids(&quiet),
        Vec::<String>::new(),
        "nothing changed: nothing again"
    );
    third.shutdown().await;
}

/// [`round`] through links written with the base `public`, each sent to the client's
/// emulator instead (what a client resolving `public` to that emulator's socket does).
async fn moved_round(client: &Client, public: &str, first: &str) -> (Vec<Answer>, String) {
    let mut pages = Vec::new();
    let mut url = first.to_owned();
    loop {
        let sent = url.replacen(public, &client.graph, 1);
        let page = client
            .get(&sent, &[("Prefer", "odata.maxpagesize=10")])
            .await;
        assert_eq!(page.status, 200, "{sent}: {}", page.raw);
        let next = page.next_link();
        let delta = page.body["@odata.deltaLink"].as_str().map(str::to_owned);
        pages.push(page);
        match (next, delta) {
            (Some(next), None) => url = next,
            (None, Some(delta)) => return (pages, delta),
            other => panic!("a delta page has exactly one of nextLink and deltaLink: {other:?}"),
        }
    }
}
