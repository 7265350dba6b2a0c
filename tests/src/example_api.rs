//! The example connector's API (`examples/example-connector`), served on 127.0.0.1 for
//! `tests/example.rs`: a token from a form-posted API key, then a paged, sorted list of users
//! behind that token. Strict on purpose: 401 for a wrong key or a missing or wrong token,
//! 400 for a page or time it does not understand, and a 429 with `Retry-After` on the first
//! listing request when asked, so the test sees the connector retry.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

/// Users per page.
pub const PAGE_SIZE: usize = 2;

/// One user of the API.
#[derive(Clone, Debug)]
pub struct ApiUser {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
    /// Last change, RFC 3339 UTC with `Z` (sorted as text).
    pub updated_at: String,
}

/// What the server holds and counts.
#[derive(Debug, Default)]
pub struct ApiState {
    /// The users.
    pub users: Vec<ApiUser>,
    /// The API key a token is issued for.
    pub api_key: String,
    /// Tokens issued.
    pub tokens: Vec<String>,
    /// Listing requests still to answer with 429.
    pub throttle: u32,
    /// Answers by status.
    pub answered: std::collections::BTreeMap<u16, u64>,
    /// Every listing request's query.
    pub queries: Vec<String>,
}

/// The server on 127.0.0.1.
pub struct ExampleApi {
    /// Its base URL (`http://127.0.0.1:<port>`).
    pub base_url: String,
    /// Its state, for the test to change users and read counts.
    pub state: Arc<Mutex<ApiState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ExampleApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ExampleApi {
    /// Starts the server with `users`, accepting `api_key`.
    pub async fn start(users: Vec<ApiUser>, api_key: &str) -> ExampleApi {
        let state = Arc::new(Mutex::new(ApiState {
            users,
            api_key: api_key.to_string(),
            ..ApiState::default()
        }));
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("a loopback port");
        let base_url = format!("http://{}", listener.local_addr().expect("its address"));
        let app = Router::new()
            .route("/token", post(token))
            .route("/users", get(users_page))
            .with_state((state.clone(), base_url.clone()));
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the example API serves");
        });
        ExampleApi {
            base_url,
            state,
            task,
        }
    }

    /// How many answers had `status`.
    pub fn answered(&self, status: u16) -> u64 {
        let state = self.state.lock().unwrap();
        state.answered.get(&status).copied().unwrap_or(0)
    }
}

type Shared = (Arc<Mutex<ApiState>>, String);

fn answer(state: &mut ApiState, status: StatusCode, body: Value) -> Response {
    *state.answered.entry(status.as_u16()).or_default() += 1;
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn token(State((state, _)): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let mut state = state.lock().unwrap();
    let form = headers.get("content-type").and_then(|v| v.to_str().ok());
    // The key is plain ASCII: its form encoding is itself.
    if form != Some("application/x-www-form-urlencoded")
        || body != format!("api_key={}", state.api_key)
    {
        return answer(
            &mut state,
            StatusCode::UNAUTHORIZED,
            json!({"error": "bad key"}),
        );
    }
    let token = format!("tok-{}", state.tokens.len() + 1);
    state.tokens.push(token.clone());
    answer(&mut state, StatusCode::OK, json!({"access_token": token}))
}

async fn users_page(
    State((state, base)): State<Shared>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let mut state = state.lock().unwrap();
    let query = query.unwrap_or_default();
    state.queries.push(query.clone());
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok());
    let token_ok = bearer
        .and_then(|b| b.strip_prefix("Bearer "))
        .is_some_and(|t| state.tokens.iter().any(|k| k == t));
    if !token_ok {
        return answer(
            &mut state,
            StatusCode::UNAUTHORIZED,
            json!({"error": "no token"}),
        );
    }
    if state.throttle > 0 {
        state.throttle -= 1;
        *state.answered.entry(429).or_default() += 1;
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            "slow down",
        )
            .into_response();
    }
    let (mut page, mut after) = (0usize, None::<String>);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("page", n)) => match n.parse() {
                Ok(n) => page = n,
                Err(_) => return answer(&mut state, StatusCode::BAD_REQUEST, json!({})),
            },
            Some(("updated_after", t)) if t.len() == 20 && t.ends_with('Z') => {
                after = Some(t.to_string())
            }
            _ => return answer(&mut state, StatusCode::BAD_REQUEST, json!({"bad": pair})),
        }
    }
    let mut listed: Vec<&ApiUser> = state
        .users
        .iter()
        .filter(|u| after.as_ref().is_none_or(|a| u.updated_at > *a))
        .collect();
    listed.sort_by(|a, b| (&a.updated_at, &a.id).cmp(&(&b.updated_at, &b.id)));
    let items: Vec<Value> = listed
        .iter()
        .skip(page * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|u| json!({"id": u.id, "name": u.name, "email": u.email, "updated_at": u.updated_at}))
        .collect();
    let next = ((page + 1) * PAGE_SIZE < listed.len()).then(|| match &after {
        Some(a) => format!("{base}/users?page={}&updated_after={a}", page + 1),
        None => format!("{base}/users?page={}", page + 1),
    });
    answer(
        &mut state,
        StatusCode::OK,
        json!({"users": items, "next": next}),
    )
}
