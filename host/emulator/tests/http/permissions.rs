//! Application permissions the app was not granted, and licences, as Graph refuses them.

use graph_emulator::{hard_case, Emulator, EmulatorConfig, Tenant};

use crate::common::{id_at, Answer, Client};

const REPORT: &str = "/v1.0/reports/authenticationMethods/userRegistrationDetails";
const DEFINITIONS: &str = "/v1.0/roleManagement/directory/roleDefinitions";
const ASSIGNMENTS: &str = "/v1.0/roleManagement/directory/roleAssignments";
const ELIGIBILITY: &str = "/v1.0/roleManagement/directory/roleEligibilityScheduleInstances";

async fn setup() -> (Tenant, Emulator, Client) {
    let tenant = Tenant::generated(121, 30);
    let emulator = Emulator::start(
        tenant.clone(),
        EmulatorConfig {
            reports_limit: None,
            sign_in_activity_limit: None,
            ..EmulatorConfig::default()
        },
    )
    .await
    .expect("starts");
    let client = Client::new(&emulator).await;
    (tenant, emulator, client)
}

fn denied(answer: &Answer, what: &str) {
    assert_eq!(
        (answer.status, answer.graph_code()),
        (403, "Authorization_RequestDenied"),
        "{what}: {}",
        answer.raw
    );
    assert_eq!(
        answer.body["error"]["message"],
        "Insufficient privileges to complete the operation."
    );
}

#[tokio::test]
async fn sign_in_activity_and_the_report_need_audit_log_read_all() {
    let (tenant, emulator, client) = setup().await;
    let user = id_at(&tenant, 0);
    for path in ["/v1.0/users?$select=id,signInActivity", REPORT] {
        assert_eq!(client.get(path, &[]).await.status, 200, "{path}");
    }
    emulator.set_missing_permissions(&["AuditLog.Read.All"]);
    assert_eq!(emulator.config().missing_permissions, ["AuditLog.Read.All"]);
    for path in [
        "/v1.0/users?$select=id,signInActivity".to_owned(),
        format!("/v1.0/users/{user}?$select=displayName,signInActivity"),
    ] {
        let refused = client.get(&path, &[]).await;
        assert_eq!(
            (refused.status, refused.graph_code()),
            (403, "Authentication_MSGraphPermissionMissing"),
            "{path}"
        );
        assert_eq!(
            refused.body["error"]["message"],
            "Calling principal does not have required MSGraph permissions AuditLog.Read.All"
        );
    }
    assert_eq!(
        client.get("/v1.0/users?$select=id,mail", &[]).await.status,
        200,
        "without signInActivity"
    );
    // The report also accepts UserAuthenticationMethod.Read.All (its permissions table).
    assert_eq!(client.get(REPORT, &[]).await.status, 200);
    emulator.set_missing_permissions(&["auditlog.read.all", "UserAuthenticationMethod.Read.All"]);
    for path in [REPORT.to_owned(), format!("{REPORT}/{user}")] {
        let refused = client.get(&path, &[]).await;
        assert_eq!(
            (refused.status, refused.graph_code()),
            (403, "Authentication_MSGraphPermissionMissing"),
            "{path}"
        );
    }
    // The licence is checked first.
    emulator.set_premium(false);
    for path in ["/v1.0/users?$select=id,signInActivity", REPORT] {
        assert_eq!(
            client.get(path, &[]).await.graph_code(),
            "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
            "{path}"
        );
    }
    emulator.set_premium(true);
    emulator.set_missing_permissions(&[]);
    assert_eq!(client.get(REPORT, &[]).await.status, 200);
    emulator.shutdown().await;
}

#[tokio::test]
async fn role_management_needs_its_read_permissions() {
    let (_, emulator, client) = setup().await;
    for path in [DEFINITIONS, ASSIGNMENTS, ELIGIBILITY] {
        assert_eq!(client.get(path, &[]).await.status, 200, "{path}");
    }
    // RoleManagement.Read.All alone: assignments yes, definitions no (their table lists only
    // RoleManagement.Read.Directory and Directory.Read.All).
    emulator.set_missing_permissions(&["RoleManagement.Read.Directory", "Directory.Read.All"]);
    assert_eq!(client.get(ASSIGNMENTS, &[]).await.status, 200);
    denied(&client.get(DEFINITIONS, &[]).await, "definitions");
    assert_eq!(client.get(ELIGIBILITY, &[]).await.status, 200);
    // None of the three: both refused; eligibility still readable with
    // RoleEligibilitySchedule.Read.Directory.
    emulator.set_missing_permissions(&[
        "RoleManagement.Read.Directory",
        "RoleManagement.Read.All",
        "Directory.Read.All",
    ]);
    denied(&client.get(ASSIGNMENTS, &[]).await, "assignments");
    denied(&client.get(DEFINITIONS, &[]).await, "definitions");
    assert_eq!(client.get(ELIGIBILITY, &[]).await.status, 200);
    emulator.set_missing_permissions(&[
        "RoleManagement.Read.Directory",
        "RoleManagement.Read.All",
        "RoleEligibilitySchedule.Read.Directory",
    ]);
    denied(
        &client.get(ELIGIBILITY, &[]).await,
        "eligibility: Directory.Read.All is not enough",
    );
    // Without P2 the licence answers first.
    emulator.set_p2(false);
    let refused = client.get(ELIGIBILITY, &[]).await;
    assert_eq!(
        (refused.status, refused.graph_code()),
        (400, "AadPremiumLicenseRequired")
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn groups_and_members_need_a_group_read_permission() {
    let (tenant, emulator, client) = setup().await;
    let group = tenant.users()[hard_case::GLOBAL_ADMIN].member_of[1]["id"]
        .as_str()
        .expect("group")
        .to_owned();
    let paths = [
        "/v1.0/groups".to_owned(),
        "/v1.0/groups/delta".to_owned(),
        format!("/v1.0/groups/{group}/members"),
        format!("/v1.0/groups/{group}/transitiveMembers/microsoft.graph.user?$count=true"),
    ];
    let eventual = [("ConsistencyLevel", "eventual")];
    emulator.set_missing_permissions(&["GroupMember.Read.All", "Group.Read.All"]);
    for path in &paths {
        assert_eq!(client.get(path, &eventual).await.status, 200, "{path}");
    }
    emulator.set_missing_permissions(&[
        "GroupMember.Read.All",
        "Group.Read.All",
        "Directory.Read.All",
    ]);
    for path in &paths {
        denied(&client.get(path, &eventual).await, path);
    }
    // Other endpoints do not ask for them.
    let user = id_at(&tenant, 0);
    assert_eq!(
        client
            .get(&format!("/v1.0/users/{user}/memberOf"), &[])
            .await
            .status,
        200
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn authentication_methods_need_user_authentication_method_read_all() {
    let (tenant, emulator, client) = setup().await;
    let path = format!("/v1.0/users/{}/authentication/methods", id_at(&tenant, 0));
    assert_eq!(client.get(&path, &[]).await.status, 200);
    emulator.set_missing_permissions(&["UserAuthenticationMethod.Read.All"]);
    denied(&client.get(&path, &[]).await, "methods");
    emulator.shutdown().await;

    let emulator = Emulator::start(
        Tenant::generated(122, 5),
        EmulatorConfig {
            missing_permissions: vec!["UserAuthenticationMethod.Read.All".into()],
            ..EmulatorConfig::default()
        },
    )
    .await
    .expect("starts");
    let client = Client::new(&emulator).await;
    let id = emulator.users()[0].id().expect("id").to_owned();
    denied(
        &client
            .get(&format!("/v1.0/users/{id}/authentication/methods"), &[])
            .await,
        "from the configuration",
    );
    emulator.shutdown().await;
}
