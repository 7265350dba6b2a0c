//! "Test connector": acquire a token, then probe each Graph permission the sync needs with
//! the cheapest request that exercises it, so an operator learns what is missing before the
//! first run fails.

use serde_json::Value;

use crate::config::Config;
use crate::doors::Doors;
use crate::error::ConnectorError;
use crate::graph::{path_segment, GraphClient, GraphGet};

/// The outcome of one probe (mirror of `probe`).
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    /// What was probed.
    pub name: String,
    /// Whether it worked.
    pub ok: bool,
    /// One line: what was found or why it failed.
    pub detail: String,
}

/// Application permissions the connector needs, in the order they are probed.
pub const PERMISSIONS: &[&str] = &[
    "User.Read.All",
    "Group.Read.All",
    "GroupMember.Read.All",
    "Directory.Read.All",
    "UserAuthenticationMethod.Read.All",
    "AuditLog.Read.All",
];

/// Runs every probe. Fails only when no token can be had (nothing else can be probed then).
pub fn check<D: Doors>(doors: &D, config: &Config) -> Result<Vec<Probe>, ConnectorError> {
    let graph = GraphClient::new(doors, config);
    graph
        .ensure_token()
        .map_err(|e| e.into_connector("acquiring a token"))?;
    let mut probes = vec![Probe {
        name: "token".into(),
        ok: true,
        detail: format!("client credentials accepted by {}", config.login_endpoint),
    }];
    let first_user = graph
        .get(GraphGet::new(config.graph_url("/users?$select=id&$top=1")))
        .map(|v| {
            v.get("value")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(|u| u.get("id"))
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    let user_path = |suffix: &str| -> Option<String> {
        match &first_user {
            Ok(Some(id)) => Some(config.graph_url(&format!("/users/{}{suffix}", path_segment(id)))),
            _ => None,
        }
    };
    let probes_to_run: [(&str, Option<GraphGet>); 6] = [
        ("User.Read.All", None),
        (
            "Group.Read.All",
            Some(GraphGet::new(config.graph_url("/groups?$select=id&$top=1"))),
        ),
        (
            "GroupMember.Read.All",
            user_path("/memberOf").map(GraphGet::new),
        ),
        (
            "Directory.Read.All",
            Some(GraphGet::new(config.graph_url("/directoryRoles"))),
        ),
        (
            "UserAuthenticationMethod.Read.All",
            user_path("/authentication/methods").map(GraphGet::new),
        ),
        (
            "AuditLog.Read.All",
            Some(GraphGet::new(
                config.graph_url("/users?$select=id,signInActivity&$top=1"),
            )),
        ),
    ];
    for (name, get) in probes_to_run {
        let result = match (name, get) {
            ("User.Read.All", _) => first_user.as_ref().map(|_| ()).map_err(|e| e.to_string()),
            (_, Some(get)) => graph.get(get).map(|_| ()).map_err(|e| e.to_string()),
            (_, None) => Err("not probed: needs a readable user (User.Read.All) first".into()),
        };
        probes.push(match result {
            Ok(()) => Probe {
                name: name.into(),
                ok: true,
                detail: "granted".into(),
            },
            Err(why) => Probe {
                name: name.into(),
                ok: false,
                detail: format!("{why}; grant the application permission {name} and admin consent"),
            },
        });
    }
    Ok(probes)
}
