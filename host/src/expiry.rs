//! Credentials whose end is in sight: when each of a tenant's secrets stops working, and what
//! the host says about it before it does.
//!
//! A client secret or a certificate that expires stops every run of its tenant with an
//! authentication error, and nothing before that day says so. The host knows the day from
//! two places: the operator's `expires = "YYYY-MM-DD"` on a `[secrets.NAME]` (an Entra client
//! secret's "Expires" column), and a private key's certificate (`notAfter`). The earlier of the
//! two counts. Both are read at each run (the certificate file with the key), so a rotated
//! certificate or a changed tenant file is seen at the next run without a restart.
//!
//! What the host does with it:
//! - `check`: a `credentials` line — `warn` under [`WARN_DAYS`] days, `FAIL` once expired
//!   (verdict: credentials refused, exit 3), nothing when no day is known;
//! - runs: one WARN log line per secret per UTC day per process while under [`WARN_DAYS`]
//!   days or expired ([`warn_daily`]; a CLI run is its own process and says it once);
//! - `serve`: `connector_credential_expiry_timestamp_seconds{tenant,secret}`, set when the
//!   tenants file is loaded and again after each run (a rotated certificate moves it).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Days before the end under which `check` warns and runs log a warning.
pub const WARN_DAYS: u64 = 30;

const DAY: u64 = 86_400;

/// Where the host learnt a credential's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpirySource {
    /// The operator's `expires = "YYYY-MM-DD"`.
    Written,
    /// The certificate's `notAfter`.
    Certificate,
}

/// When one secret of a tenant stops working.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expiry {
    /// The secret's name (`[secrets.NAME]`).
    pub secret: String,
    /// The first instant it no longer works.
    pub at: SystemTime,
    /// Where the host learnt it.
    pub source: ExpirySource,
}

/// The earliest of each secret's known ends, by secret name (one entry per secret).
pub fn earliest(found: impl IntoIterator<Item = Expiry>) -> Vec<Expiry> {
    let mut by_secret: std::collections::BTreeMap<String, Expiry> = Default::default();
    for e in found {
        match by_secret.get(&e.secret) {
            Some(known) if known.at <= e.at => {}
            _ => {
                by_secret.insert(e.secret.clone(), e);
            }
        }
    }
    by_secret.into_values().collect()
}

/// How `e` stands at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// More than [`WARN_DAYS`] days left.
    Fine,
    /// Under [`WARN_DAYS`] days left: whole days left (0 on its last day).
    Soon(u64),
    /// Ended: whole days since (0 on the day it ended).
    Expired(u64),
}

/// How `e` stands at `now`.
pub fn standing(e: &Expiry, now: SystemTime) -> Standing {
    match e.at.duration_since(now) {
        Ok(left) if left >= Duration::from_secs(WARN_DAYS * DAY) => Standing::Fine,
        Ok(left) if !left.is_zero() => Standing::Soon(left.as_secs() / DAY),
        Ok(_) => Standing::Expired(0),
        Err(past) => Standing::Expired(past.duration().as_secs() / DAY),
    }
}

/// `YYYY-MM-DD HH:MM UTC` of an instant (the day alone when it is midnight).
fn when(at: SystemTime) -> String {
    let text = humantime::format_rfc3339_seconds(at).to_string();
    let day = &text[..10.min(text.len())];
    match text.get(11..16) {
        Some("00:00") | None => day.to_string(),
        Some(hm) => format!("{day} {hm} UTC"),
    }
}

fn from_where(e: &Expiry) -> &'static str {
    match e.source {
        ExpirySource::Written => "by its expires setting",
        ExpirySource::Certificate => "by its certificate's notAfter",
    }
}

fn fix(e: &Expiry) -> String {
    match e.source {
        ExpirySource::Written => format!(
            "create a new one with the provider (e.g. a new client secret of the app registration), point [secrets.{}] env/file at it and set its expires",
            e.secret
        ),
        ExpirySource::Certificate => format!(
            "create a new key and certificate, upload the certificate to the app, and replace the files [secrets.{}] names (picked up at the next run)",
            e.secret
        ),
    }
}

/// One line saying how `e` stands at `now`, with the fix; `None` when it is [`Standing::Fine`].
pub fn message(e: &Expiry, now: SystemTime) -> Option<String> {
    let name = &e.secret;
    match standing(e, now) {
        Standing::Fine => None,
        Standing::Soon(days) => Some(format!(
            "[secrets.{name}] expires on {} (in {days} day(s), {}): every run of the tenant fails to authenticate from then; {}",
            when(e.at),
            from_where(e),
            fix(e)
        )),
        Standing::Expired(days) => Some(format!(
            "[secrets.{name}] expired on {} ({days} day(s) ago, {}): the provider refuses it and every run fails to authenticate; {}",
            when(e.at),
            from_where(e),
            fix(e)
        )),
    }
}

/// What `check`'s `credentials` line says: `Err(detail)` (a failure) when one has expired,
/// `Ok(detail)` (a warning) when one ends within [`WARN_DAYS`] days, `None` when every known
/// end is further or none is known. [`crate::check`] makes the line of it.
pub fn check_line(expiries: &[Expiry], now: SystemTime) -> Option<Result<String, String>> {
    let expired: Vec<String> = expiries
        .iter()
        .filter(|e| matches!(standing(e, now), Standing::Expired(_)))
        .filter_map(|e| message(e, now))
        .collect();
    if !expired.is_empty() {
        return Some(Err(format!("token refused: {}", expired.join("; "))));
    }
    let soon: Vec<String> = expiries.iter().filter_map(|e| message(e, now)).collect();
    (!soon.is_empty()).then(|| Ok(format!("warning: {}", soon.join("; "))))
}

/// What was already said today, by key: the UTC day number it was said on.
static SAID: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);

/// Whether `key` is said for the first time on `now`'s UTC day in this process (recording
/// it): a warning that would repeat at every run of a `serve` is said once a day.
pub fn first_today(key: &str, now: SystemTime) -> bool {
    let day = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / DAY);
    let Ok(mut said) = SAID.lock() else {
        return true;
    };
    let said = said.get_or_insert_with(HashMap::new);
    if said.get(key) == Some(&day) {
        return false;
    }
    said.insert(key.to_string(), day);
    true
}

/// The lines to log for `tenant` at `now`: each secret under [`WARN_DAYS`] days or expired,
/// once per UTC day per process (later calls the same day return nothing for it).
pub fn due_today(tenant: &str, expiries: &[Expiry], now: SystemTime) -> Vec<String> {
    expiries
        .iter()
        .filter_map(|e| {
            let line = message(e, now)?;
            first_today(&format!("expiry\0{tenant}\0{}", e.secret), now).then_some(line)
        })
        .collect()
}

/// Logs [`due_today`]'s lines at WARN, naming the tenant.
pub fn warn_daily(tenant: &str, expiries: &[Expiry]) {
    for line in due_today(tenant, expiries, SystemTime::now()) {
        tracing::warn!(tenant = %tenant, "credential expiry: {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SystemTime {
        humantime::parse_rfc3339(text).unwrap()
    }

    fn e(secret: &str, day: &str, source: ExpirySource) -> Expiry {
        Expiry {
            secret: secret.into(),
            at: at(&format!("{day}T00:00:00Z")),
            source,
        }
    }

    #[test]
    fn operator_check_warns_under_30_days_and_fails_once_expired() {
        let now = at("2026-12-07T13:00:00Z");
        let far = e("client_secret", "2027-06-30", ExpirySource::Written);
        assert_eq!(check_line(std::slice::from_ref(&far), now), None);
        let soon = e(
            "client_certificate",
            "2026-12-20",
            ExpirySource::Certificate,
        );
        let line = check_line(&[far.clone(), soon.clone()], now).unwrap();
        assert_eq!(
            line.unwrap(),
            "warning: [secrets.client_certificate] expires on 2026-12-20 (in 12 day(s), by its certificate's notAfter): every run of the tenant fails to authenticate from then; create a new key and certificate, upload the certificate to the app, and replace the files [secrets.client_certificate] names (picked up at the next run)"
        );
        // 30 days exactly is not yet a warning; a second under is.
        let edge = Expiry {
            at: now + Duration::from_secs(30 * DAY),
            ..far.clone()
        };
        assert_eq!(standing(&edge, now), Standing::Fine);
        let under = Expiry {
            at: now + Duration::from_secs(30 * DAY - 1),
            ..far.clone()
        };
        assert_eq!(standing(&under, now), Standing::Soon(29));
        let gone = e("client_secret", "2026-12-01", ExpirySource::Written);
        let line = check_line(&[soon, gone.clone()], now)
            .unwrap()
            .expect_err("an expired credential fails the check");
        assert!(
            line.starts_with("token refused: [secrets.client_secret] expired on 2026-12-01 (6 day(s) ago, by its expires setting)")
                && !line.contains("client_certificate")
                && !line.contains('\n'),
            "{line}"
        );
        // The instant it ends, it has ended.
        assert_eq!(
            standing(&gone, at("2026-12-01T00:00:00Z")),
            Standing::Expired(0)
        );
    }

    #[test]
    fn a_certificate_ending_mid_day_shows_its_time() {
        let c = Expiry {
            secret: "k".into(),
            at: at("2026-12-10T17:45:09Z"),
            source: ExpirySource::Certificate,
        };
        let m = message(&c, at("2026-12-07T00:00:00Z")).unwrap();
        assert!(
            m.contains("expires on 2026-12-10 17:45 UTC (in 3 day(s)"),
            "{m}"
        );
    }

    #[test]
    fn the_earlier_of_the_written_day_and_the_certificate_counts() {
        let got = earliest([
            e("k", "2027-03-01", ExpirySource::Written),
            e("k", "2027-02-01", ExpirySource::Certificate),
            e("s", "2027-05-01", ExpirySource::Written),
        ]);
        assert_eq!(
            got,
            [
                e("k", "2027-02-01", ExpirySource::Certificate),
                e("s", "2027-05-01", ExpirySource::Written)
            ]
        );
    }

    #[test]
    fn a_key_is_said_once_a_utc_day() {
        let key = "first-today-test-key";
        assert!(first_today(key, at("2026-12-07T00:00:00Z")));
        assert!(!first_today(key, at("2026-12-07T23:59:59Z")));
        assert!(first_today(
            "first-today-test-other",
            at("2026-12-07T12:00:00Z")
        ));
        assert!(first_today(key, at("2026-12-08T00:00:00Z")));
    }

    #[test]
    fn operator_runs_log_one_warning_a_day_per_secret() {
        let list = [
            e("client_secret", "2026-12-20", ExpirySource::Written),
            e("fine", "2028-01-01", ExpirySource::Written),
        ];
        let tenant = "expiry-daily-test-tenant";
        let morning = at("2026-12-07T08:00:00Z");
        let first = due_today(tenant, &list, morning);
        assert_eq!(first.len(), 1, "{first:?}");
        assert!(first[0].starts_with("[secrets.client_secret] expires on 2026-12-20"));
        // Later the same day: nothing; another tenant: its own warning; the next day: again.
        assert!(due_today(tenant, &list, at("2026-12-07T23:59:59Z")).is_empty());
        assert_eq!(due_today("expiry-daily-other", &list, morning).len(), 1);
        let next = due_today(tenant, &list, at("2026-12-08T00:00:01Z"));
        assert_eq!(next.len(), 1);
        assert!(next[0].contains("(in 11 day(s)"), "{next:?}");
    }
}
