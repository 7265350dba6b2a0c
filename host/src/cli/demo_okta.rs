//! `connector-host demo --connector okta`: the built-in Okta connector against a simulated
//! Okta org (the Okta emulator, `okta-emulator`, on 127.0.0.1, at Okta's documented default
//! rate limits, on the real clock), with an API token held by the host, into
//! `<out>/events.jsonl` and `<out>/checkpoints.sqlite`; then the run's summary, as the Entra
//! demo prints it.

use std::path::Path;

use connector_host::simulation::okta_emulator::{Emulator, OktaClock, OktaConfig, Org};
use connector_host::ConnectorChoice;

use super::output::{note, print_summary};
use super::{exit_code, fail, print_quietly, progress, runtime_for, shown_path, EXIT_HOST};

/// Runs the demo; returns the exit code.
pub(super) async fn demo(users: usize, seed: u64, out: &Path) -> i32 {
    if users == 0 {
        return fail(
            "--users 0: the simulated org needs at least 1 user",
            super::EXIT_CONFIG,
        );
    }
    super::clear_demo_out(out);
    let clock = OktaClock::system();
    note(&format!(
        "starting the Okta emulator with a simulated org of {users} users (seed {seed})…"
    ));
    let org = Org::generated(seed, users, clock.now_ms());
    let emu = match Emulator::start(org, OktaConfig::default(), clock).await {
        Ok(e) => e,
        Err(e) => return fail(format!("cannot start the Okta emulator: {e:#}"), EXIT_HOST),
    };
    note(&format!(
        "org URL {}  (an API token, Authorization: SSWS …, held by the host)",
        emu.base_url()
    ));
    let code = run(&emu, users, out).await;
    emu.shutdown().await;
    code
}

async fn run(emu: &Emulator, users: usize, out: &Path) -> i32 {
    let choice = ConnectorChoice::Builtin(connector_host::simulation::okta::BUILTIN_NAME.into());
    let rt = match runtime_for(&choice).await {
        Ok(rt) => rt,
        Err((e, code)) => return fail(e, code),
    };
    let run = match connector_host::simulation::okta_tenant_run(
        emu,
        "demo-okta",
        &out.join("checkpoints.sqlite"),
        &out.join("events.jsonl"),
    ) {
        Ok(r) => r,
        Err(e) => return fail(e, EXIT_HOST),
    };
    let shown = progress::Shown::run(&run, Some(users as u64));
    let outcome = shown.watch(&rt, &run.tenant, rt.run(&run)).await;
    shown.finish();
    match outcome {
        // The summary on stdout, as `run`'s; the notes and progress on stderr.
        Ok(report) => print_quietly(&format!(
            "first run (full sync)\n{}  okta emulator served    {} requests\n  events file             {}\n",
            okta_summary(&print_summary(&report)),
            emu.stats().http_requests,
            shown_path(&out.join("events.jsonl"))
        )),
        Err(e) => fail(&e, exit_code(&e)),
    }
}

/// The run summary with the inventory named as an Okta org's events carry it: Okta has no
/// guest account type; its `profile.userType` becomes `user.ldap_person.labels`
/// (host/okta-emulator/OKTA.md, "Mapping"), so the `guests` line counts users whose
/// `userType` is `Guest`, and says so.
fn okta_summary(summary: &str) -> String {
    summary
        .lines()
        .map(|l| match l.strip_prefix("    guests") {
            Some(rest) => format!("    guests (userType){}\n", &rest[rest.len().min(11)..]),
            None => format!("{l}\n"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_okta_summary_names_guests_by_user_type() {
        let text = "  users                   3\n    admins                1\n    guests                0\n    disabled              1\n";
        assert_eq!(
            super::okta_summary(text),
            "  users                   3\n    admins                1\n    guests (userType)     0\n    disabled              1\n"
        );
    }
}
