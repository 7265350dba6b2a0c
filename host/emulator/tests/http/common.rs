//! A small HTTP client for the emulator tests: real requests over 127.0.0.1, answers as
//! (status, headers, JSON).
//!
//! Every test talks to the emulator exactly as the connector will, through its two ports,
//! so what is asserted is the wire behaviour, not internal state.

use graph_emulator::{Emulator, EmulatorConfig, Tenant};
use serde_json::Value;

/// One answer: status, headers (lower-case names) and the body as JSON (a JSON string holding
/// the raw text when it is not JSON).
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub raw: String,
}

impl Answer {
    /// The sub-response with `id` of a `$batch` answer (answers come in any order).
    pub fn batch_item(&self, id: &str) -> Value {
        self.body["responses"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["id"] == id))
            .cloned()
            .unwrap_or_else(|| panic!("the batch answers id {id}: {}", self.body))
    }

    /// The first header of this name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `error.code` of a Graph error body.
    pub fn graph_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// The `value` array of a collection (empty when absent).
    pub fn values(&self) -> Vec<Value> {
        self.body["value"].as_array().cloned().unwrap_or_default()
    }

    /// `@odata.nextLink`, if any.
    pub fn next_link(&self) -> Option<String> {
        self.body["@odata.nextLink"].as_str().map(str::to_owned)
    }
}

/// A client bound to one emulator.
pub struct Client {
    pub http: reqwest::Client,
    pub graph: String,
    pub token_url: String,
    pub config: EmulatorConfig,
    pub scope: String,
    pub token: String,
}

impl Client {
    /// A client that already holds a valid token.
    pub async fn new(emulator: &Emulator) -> Client {
        let mut client = Client {
            http: reqwest::Client::new(),
            graph: emulator.graph_endpoint(),
            token_url: emulator.token_url(),
            config: emulator.config(),
            scope: format!("{}/.default", emulator.graph_endpoint()),
            token: String::new(),
        };
        let answer = client.request_token(&[]).await;
        assert_eq!(answer.status, 200, "token request failed: {}", answer.raw);
        client.token = answer.body["access_token"]
            .as_str()
            .expect("access_token is a string")
            .to_owned();
        client
    }

    /// POSTs a client-credentials request; `overrides` replace or add form fields.
    pub async fn request_token(&self, overrides: &[(&str, &str)]) -> Answer {
        self.request_token_at(&self.token_url, overrides).await
    }

    /// Same, to any URL.
    pub async fn request_token_at(&self, url: &str, overrides: &[(&str, &str)]) -> Answer {
        let mut form: Vec<(String, String)> = vec![
            ("grant_type".into(), "client_credentials".into()),
            ("client_id".into(), self.config.client_id.clone()),
            ("client_secret".into(), self.config.client_secret.clone()),
            ("scope".into(), self.scope.clone()),
        ];
        for (key, value) in overrides {
            form.retain(|(k, _)| k != key);
            if !value.is_empty() {
                form.push(((*key).into(), (*value).into()));
            }
        }
        let response = self
            .http
            .post(url)
            .form(&form)
            .send()
            .await
            .expect("token request sent");
        answer(response).await
    }

    /// GETs a path under the Graph server (or an absolute URL) with the token and extra headers.
    pub async fn get(&self, path_or_url: &str, headers: &[(&str, &str)]) -> Answer {
        self.get_with(path_or_url, Some(&self.token), headers).await
    }

    /// GETs with an explicit bearer token (or none).
    pub async fn get_with(
        &self,
        path_or_url: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.graph)
        };
        let mut request = self.http.get(url);
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        answer(request.send().await.expect("Graph request sent")).await
    }

    /// POSTs a JSON body to a path under the Graph server.
    pub async fn post_json(&self, path: &str, body: &Value) -> Answer {
        let response = self
            .http
            .post(format!("{}{path}", self.graph))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("Graph request sent");
        answer(response).await
    }

    /// Follows next links from `first` to the end; returns every page.
    pub async fn walk(&self, first: &str, headers: &[(&str, &str)]) -> Vec<Answer> {
        let mut pages = Vec::new();
        let mut url = Some(first.to_owned());
        while let Some(current) = url {
            let page = self.get(&current, headers).await;
            assert_eq!(page.status, 200, "page {current} failed: {}", page.raw);
            url = page.next_link();
            if let Some(next) = &url {
                assert!(
                    next.starts_with(&self.graph),
                    "next link {next} leaves the Graph host"
                );
            }
            pages.push(page);
            assert!(pages.len() < 10_000, "paging does not end");
        }
        pages
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let raw = response.text().await.expect("body read");
    let body = serde_json::from_str(&raw).unwrap_or_else(|_| Value::String(raw.clone()));
    Answer {
        status,
        headers,
        body,
        raw,
    }
}

/// Starts an emulator on a generated tenant.
pub async fn start(seed: u64, users: usize) -> Emulator {
    Emulator::start(Tenant::generated(seed, users), EmulatorConfig::default())
        .await
        .expect("emulator starts")
}

/// Starts an emulator on a generated tenant with `generous: true` (for tests about something
/// else than Graph's limits, which would otherwise throttle or refuse their requests).
pub async fn start_generous(seed: u64, users: usize) -> Emulator {
    Emulator::start(Tenant::generated(seed, users), generous())
        .await
        .expect("emulator starts")
}

/// The default configuration with `generous: true`.
pub fn generous() -> EmulatorConfig {
    EmulatorConfig {
        generous: true,
        ..EmulatorConfig::default()
    }
}

/// `ConsistencyLevel: eventual`, the advanced-query header.
pub const EVENTUAL: (&str, &str) = ("ConsistencyLevel", "eventual");

/// The ids of every user in a list of pages, in order.
pub fn ids(pages: &[Answer]) -> Vec<String> {
    pages
        .iter()
        .flat_map(Answer::values)
        .map(|u| u["id"].as_str().expect("every user has an id").to_owned())
        .collect()
}

/// The id of the generated user at `index`.
pub fn id_at(tenant: &Tenant, index: usize) -> String {
    tenant.users()[index]
        .id()
        .expect("generated users have ids")
        .to_owned()
}
