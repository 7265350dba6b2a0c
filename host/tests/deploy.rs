//! `deploy/`: the operator's files are checked against the real product, not read by eye.
//!
//! - Every metric the Grafana dashboard and the Prometheus alert rules query is on a real
//!   `/metrics` page: a fleet `serve` process (the test PostgreSQL) with simulated tenants, a
//!   tenant whose runs fail, a credential with an `expires` day, and a lease left unreleased by
//!   a "ghost" host so that one tenant is taken over. A renamed or removed metric fails here.
//! - The alert rules and the dashboard are well formed and cover what operators asked for
//!   (a tenant failing, credentials near expiry, a stalled walk, lease churn).
//! - The systemd unit's `ExecStart` is a command line the real binary accepts (run once on a
//!   simulated tenant), and the unit keeps its hardening.
//! - The Kubernetes manifest's tenants file loads as a `serve` file, every file it names is
//!   mounted, and the probes hit `/healthz` on the port `serve` listens on.

mod pg;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use connector_host::fleet::Fleet;
use connector_host::serve::ServeFile;
use pg::*;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The metric names an expression queries: identifiers starting `connector_` (a histogram's
/// `_bucket`, `_sum` and `_count` samples are named as such, as on the page).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut i = 0;
    while i < bytes.len() {
        let starts = (i == 0 || !ident(bytes[i - 1])) && expr[i..].starts_with("connector_");
        if starts {
            let end = (i..bytes.len())
                .find(|&j| !ident(bytes[j]))
                .unwrap_or(bytes.len());
            names.insert(expr[i..end].to_string());
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

/// Each alert rule: (name, expr, the rule as YAML).
fn alert_rules() -> Vec<(String, String, serde_yaml::Value)> {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&read("deploy/prometheus/alerts.yml")).expect("alerts.yml is YAML");
    let mut rules = Vec::new();
    for group in doc["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"]
                .as_str()
                .expect("every rule is an alert")
                .to_string();
            let expr = rule["expr"].as_str().expect("expr").to_string();
            rules.push((name, expr, rule.clone()));
        }
    }
    rules
}

/// Each dashboard query: (panel title, expr).
fn dashboard_queries() -> Vec<(String, String)> {
    let doc: serde_json::Value = serde_json::from_str(&read("deploy/grafana/connector-host.json"))
        .expect("the dashboard is JSON");
    let mut queries = Vec::new();
    for panel in doc["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().expect("title").to_string();
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel '{title}' queries nothing");
        for t in targets {
            queries.push((title.clone(), t["expr"].as_str().expect("expr").to_string()));
        }
    }
    queries
}

/// Every metric queried, with where (for the failure message).
fn queried() -> BTreeMap<String, Vec<String>> {
    let mut all: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, expr, _) in alert_rules() {
        for m in metric_names(&expr) {
            all.entry(m).or_default().push(format!("alert {name}"));
        }
    }
    for (title, expr) in dashboard_queries() {
        for m in metric_names(&expr) {
            all.entry(m).or_default().push(format!("panel '{title}'"));
        }
    }
    all
}

#[test]
fn metric_names_are_read_out_of_promql() {
    assert_eq!(
        metric_names(
            "histogram_quantile(0.5, sum by (le) (rate(connector_run_duration_seconds_bucket[5m]))) and on(tenant) connector_x >= 3"
        ),
        BTreeSet::from([
            "connector_run_duration_seconds_bucket".to_string(),
            "connector_x".to_string()
        ])
    );
    // Not inside another identifier, not a label value's prefix.
    assert!(metric_names("my_connector_y + z{kind=\"auth\"}").is_empty());
}

#[test]
fn alert_rules_cover_failing_tenants_expiring_credentials_stalled_walks_and_lease_churn() {
    let rules = alert_rules();
    let names: BTreeSet<&str> = rules.iter().map(|(n, _, _)| n.as_str()).collect();
    for wanted in [
        "ConnectorTenantFailing",
        "ConnectorCredentialExpiresSoon",
        "ConnectorCredentialExpired",
        "ConnectorWalkStalled",
        "ConnectorLeaseChurn",
    ] {
        assert!(names.contains(wanted), "no alert {wanted} in {names:?}");
    }
    assert_eq!(names.len(), rules.len(), "two alerts share a name");
    for (name, expr, rule) in &rules {
        assert!(!metric_names(expr).is_empty(), "{name} queries no metric");
        let severity = rule["labels"]["severity"].as_str();
        assert!(
            matches!(severity, Some("info" | "warning" | "critical")),
            "{name}: severity {severity:?}"
        );
        assert!(
            rule["annotations"]["summary"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{name} has no summary"
        );
    }
    let expiry = &rules
        .iter()
        .find(|(n, _, _)| n == "ConnectorCredentialExpiresSoon")
        .unwrap()
        .1;
    assert!(expiry.contains("30 * 86400"), "{expiry}");
}

#[test]
fn the_dashboard_has_unique_panel_ids_and_a_prometheus_datasource_variable() {
    let doc: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/connector-host.json")).unwrap();
    let ids: Vec<u64> = doc["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().expect("panel id"))
        .collect();
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        ids.len(),
        "{ids:?}"
    );
    let vars = doc["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter()
            .any(|v| v["name"] == "datasource" && v["query"] == "prometheus"),
        "{vars:?}"
    );
    for p in doc["panels"].as_array().unwrap() {
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
    }
}

/// The sample names on a `/metrics` page (labels and values cut).
fn sample_names(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

const STRONG_SECRET: &str = "q7Z~v2.Kp9XwR4tLm8Ns3Fh6Jd1Gb5Yc0Ue";

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_the_dashboard_and_alert_rules_query_is_on_a_real_metrics_page() {
    let wanted = queried();
    assert!(wanted.len() >= 15, "{wanted:?}");
    let url = fresh_database("deploy_metrics").await;
    // A ghost host claims sim-0000 for 1 s and never renews or releases it: the serve host
    // takes it over once the lease expires (connector_lease_takeovers_total).
    let ghost = Fleet::connect(&url, Some(&password()), "ghost")
        .await
        .unwrap_or_else(|e| unreachable(e));
    ghost.migrate().await.unwrap();
    ghost.register(&["sim-0000".to_string()]).await.unwrap();
    let leases = ghost.claim(1, Duration::from_secs(1)).await.unwrap();
    assert_eq!(leases.len(), 1, "the ghost holds sim-0000");

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("tenants.d")).unwrap();
    std::fs::write(d.join("broken.secret"), STRONG_SECRET).unwrap();
    // A tenant whose runs fail (nothing listens on port 1): failures by kind, consecutive
    // failures; its secret says when it expires.
    std::fs::write(
        d.join("tenants.d/broken.toml"),
        "[tenant]\nkey = \"broken\"\n[config]\ntenant_id = \"broken.example\"\n\
         client_id = \"00000000-0000-0000-0000-000000000001\"\n\
         login_endpoint = \"http://127.0.0.1:1\"\ngraph_endpoint = \"http://127.0.0.1:1\"\n\
         [secrets.client_secret]\nfile = \"../broken.secret\"\nexpires = \"2027-06-30\"\n\
         [egress]\nallow_loopback_http = true\n[state]\ncheckpoint_db = \"../broken.sqlite\"\n\
         [sink]\nkind = \"jsonl\"\npath = \"../broken.jsonl\"\n",
    )
    .unwrap();
    std::fs::write(
        d.join("tenants.toml"),
        format!(
            "include = [\"tenants.d/*.toml\"]\n[serve]\nlisten = \"127.0.0.1:0\"\n\
             [schedule]\ninterval_secs = 2\njitter_secs = 1\nbackoff_initial_secs = 1\n\
             backoff_max_secs = 2\n[simulation]\ntenants = 4\nusers_per_tenant = 300\n\
             [fleet]\nurl = \"{url}\"\npassword = {{ env = \"FLEET_DB_PASSWORD\" }}\n\
             lease_ttl_secs = 3\npoll_secs = 0.2\n"
        ),
    )
    .unwrap();
    let log = d.join("serve.log");
    let mut child = spawn_serve(d, &d.join("cache"), "host-a", &log);
    let deadline = Instant::now() + Duration::from_secs(120);
    let addr = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(rest) = text.split("metrics http://").nth(1) {
            break rest.split('/').next().unwrap().to_string();
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("serve did not start:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Scrape until every queried metric has been seen (some, like the walk's wait, exist
    // only while a run waits), at most 150 s.
    let client = reqwest::Client::new();
    let mut seen = BTreeSet::new();
    let mut last = String::new();
    let deadline = Instant::now() + Duration::from_secs(150);
    let missing = loop {
        if let Ok(resp) = client
            .get(format!("http://{addr}/metrics"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
            if let Ok(text) = resp.text().await {
                seen.extend(sample_names(&text));
                last = text;
            }
        }
        let missing: Vec<&String> = wanted.keys().filter(|m| !seen.contains(*m)).collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing
                .into_iter()
                .map(|m| format!("{m} (queried by {})", wanted[m].join(", ")))
                .collect::<Vec<_>>();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        missing.is_empty(),
        "queried by deploy/ but never on /metrics: {missing:#?}\nlast scrape:\n{last}\nlog:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // The takeover and the credential are this test's, not the page's defaults.
    assert!(last.contains("connector_lease_takeovers_total{tenant=\"sim-0000\"}"));
    // 2027-06-30T00:00:00Z.
    assert!(
        last.contains("connector_credential_expiry_timestamp_seconds{tenant=\"broken\",secret=\"client_secret\"} 1814313600"),
        "{last}"
    );
}

/// The unit's `key=value` lines (the last of a repeated key wins, as for most keys).
fn unit_keys(unit: &str) -> BTreeMap<String, Vec<String>> {
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in unit.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with('[') || line.is_empty() {
            continue;
        }
        let (k, v) = line.split_once('=').expect("key=value");
        keys.entry(k.to_string()).or_default().push(v.to_string());
    }
    keys
}

#[test]
fn the_systemd_unit_is_hardened_and_its_command_line_runs_the_real_binary() {
    let unit = read("deploy/systemd/connector-host.service");
    let keys = unit_keys(&unit);
    let one = |k: &str| -> &str {
        keys.get(k)
            .and_then(|v| v.last())
            .unwrap_or_else(|| panic!("the unit has no {k}"))
    };
    for (k, v) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("User", "connector-host"),
        ("CapabilityBoundingSet", ""),
        ("RestartPreventExitStatus", "2"),
    ] {
        assert_eq!(one(k), v, "{k}");
    }
    assert!(one("ReadOnlyPaths").contains("/etc/connector-host"));
    // Wasmtime maps compiled code executable: that setting would stop every run.
    assert!(!keys.contains_key("MemoryDenyWriteExecute"));
    // The command line, with the binary and the tenants file swapped for the test's, runs
    // a simulated tenant once and exits 0.
    let exec = one("ExecStart");
    let mut args: Vec<String> = exec.split_whitespace().map(str::to_string).collect();
    assert_eq!(args[0], "/usr/local/bin/connector-host");
    let dir = tempfile::tempdir().unwrap();
    let tenants = dir.path().join("tenants.toml");
    std::fs::write(
        &tenants,
        "[serve]\nonce = true\nlisten = \"127.0.0.1:0\"\n[simulation]\ntenants = 1\n\
         users_per_tenant = 20\n",
    )
    .unwrap();
    let at = args
        .iter()
        .position(|a| a == "/etc/connector-host/tenants.toml")
        .expect("ExecStart names /etc/connector-host/tenants.toml");
    args[at] = tenants.display().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_connector-host"))
        .args(&args[1..])
        .current_dir(dir.path())
        .env("CONNECTOR_HOST_CACHE_DIR", dir.path().join("cache"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_kubernetes_tenants_file_loads_and_every_file_it_names_is_mounted() {
    let docs: Vec<serde_yaml::Value> =
        serde_yaml::Deserializer::from_str(&read("deploy/kubernetes/fleet.yaml"))
            .map(|d| serde::Deserialize::deserialize(d).expect("a YAML document"))
            .collect();
    let kind = |k: &str| {
        docs.iter()
            .find(|d| d["kind"] == k)
            .unwrap_or_else(|| panic!("no {k}"))
            .clone()
    };
    let config = kind("ConfigMap");
    let deployment = kind("Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    // Probes on /healthz, at the port serve listens on.
    let port = container["ports"][0]["containerPort"].as_u64().unwrap();
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(container[probe]["httpGet"]["path"], "/healthz", "{probe}");
    }
    let tenants_toml = config["data"]["tenants.toml"].as_str().unwrap();
    let contoso = config["data"]["contoso.toml"].as_str().unwrap();
    // Every absolute path the files name lies under a mount of the container.
    let mounts: Vec<String> = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap().to_string())
        .collect();
    let mut named = Vec::new();
    for text in [tenants_toml, contoso] {
        for part in text.split('"') {
            if part.starts_with('/') {
                named.push(part.to_string());
            }
            if let Some(i) = part.find("sslrootcert=") {
                named.push(part[i + "sslrootcert=".len()..].to_string());
            }
        }
    }
    assert!(named.len() >= 4, "{named:?}");
    for path in &named {
        assert!(
            mounts.iter().any(|m| path.starts_with(m.as_str())),
            "{path} is named but not mounted ({mounts:?})"
        );
    }
    // The secrets are files, never environment values.
    let env = container["env"].as_sequence().unwrap();
    assert!(env.iter().all(|e| e["valueFrom"]["secretKeyRef"].is_null()));
    // The files load as serve would load them, with the mounted paths moved to a folder.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let moved = |text: &str| text.replace("/etc/connector-host/", &format!("{root}/etc/"));
    std::fs::create_dir_all(dir.path().join("etc/tenants.d")).unwrap();
    std::fs::write(
        dir.path().join("etc/tenants.d/contoso.toml"),
        moved(contoso),
    )
    .unwrap();
    // The database's CA is read at load: the test PostgreSQL's (scripts/test-postgres).
    std::fs::create_dir_all(dir.path().join("etc/db-ca")).unwrap();
    std::fs::copy(
        env_or("CONNECTOR_TEST_POSTGRES_CA", DEFAULT_CA),
        dir.path().join("etc/db-ca/ca.crt"),
    )
    .unwrap_or_else(|e| unreachable(e));
    let path = dir.path().join("etc/tenants.toml");
    std::fs::write(&path, moved(tenants_toml)).unwrap();
    let file = ServeFile::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(u64::from(file.listen.port()), port);
    assert!(file.fleet.is_some(), "the manifest runs a fleet");
    assert_eq!(file.tenants.len(), 1);
    assert_eq!(
        file.tenants[0].secrets["client_secret"].expiry().unwrap(),
        Some(std::time::UNIX_EPOCH + Duration::from_secs(1_814_313_600))
    );
}

/// The codes of an exit-code table: lines `  N  text` of `--help`, or rows `| N | … |` of
/// the README's table.
fn codes(lines: impl Iterator<Item = String>) -> Vec<u8> {
    lines
        .filter_map(|l| {
            let t = l.trim_start_matches(['|', ' ']);
            let (n, rest) = t.split_once(' ')?;
            (!rest.trim().is_empty()).then_some(())?;
            n.parse().ok()
        })
        .collect()
}

#[test]
fn every_subcommand_help_ends_with_the_exit_code_table_the_readme_has() {
    let help = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_connector-host"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let top = help(&["--help"]);
    let subcommands: Vec<String> = top
        .split("Commands:")
        .nth(1)
        .expect("a Commands: section")
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect();
    assert!(
        subcommands.len() >= 5 && subcommands.iter().any(|c| c == "serve"),
        "{subcommands:?}"
    );
    let table = |text: &str| -> Vec<u8> {
        let after = text
            .split("Exit codes (README.md")
            .nth(1)
            .unwrap_or_else(|| panic!("no exit-code table in:\n{text}"));
        codes(after.lines().skip(1).map(str::to_string))
    };
    let expected: Vec<u8> = (0..=7).collect();
    assert_eq!(table(&top), expected);
    for c in &subcommands {
        assert_eq!(
            table(&help(&[c.as_str(), "--help"])),
            expected,
            "{c} --help"
        );
    }
    // The README's table: the same codes, each with what to do.
    let readme = read("README.md");
    let section = readme
        .split("### Exit codes and what to do")
        .nth(1)
        .expect("README has 'Exit codes and what to do'");
    let rows: Vec<String> = section
        .lines()
        .skip_while(|l| !l.starts_with("| code"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(str::to_string)
        .collect();
    assert_eq!(codes(rows.iter().cloned()), expected, "{rows:#?}");
    for r in &rows {
        let cells: Vec<&str> = r.split('|').map(str::trim).collect();
        assert!(cells.len() >= 5 && !cells[4].is_empty(), "{r}");
    }
}
