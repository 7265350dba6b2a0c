//! One user's row of the registration-details report
//! (`/reports/authenticationMethods/userRegistrationDetails`), derived from the user's
//! authentication methods with Microsoft's documentation as the only source.
//!
//! The connector reads this report to learn who has MFA; an emulator that shared the
//! connector's idea of "MFA method" would pass the connector whatever that idea is. So nothing
//! here comes from the connector: each method type's report name and capabilities are a row of
//! [`METHODS`], and each row cites the page it comes from.
//!
//! Sources (Microsoft Learn; the paths are those of `microsoftgraph/microsoft-graph-docs-contrib`
//! and `MicrosoftDocs/entra-docs`):
//! - Graph `resources/userregistrationdetails.md` (v1.0 and beta): `isMfaRegistered` "the user
//!   has registered a strong authentication method for multifactor authentication. The method
//!   may not necessarily be allowed by the authentication methods policy"; `isMfaCapable` the
//!   same, and "the method must be allowed by the authentication methods policy";
//!   `isPasswordlessCapable` "a passwordless strong authentication method (including FIDO2,
//!   Windows Hello for Business, and Microsoft Authenticator (Passwordless)) that is allowed by
//!   the authentication methods policy"; `isSsprRegistered` "the required number of
//!   authentication methods for self-service password reset"; `isAdmin` "has an admin role in
//!   the tenant"; `userType` `member` or `guest`; `methodsRegistered` a string collection
//!   "such as `mobilePhone`, `email`, `fido2`" (v1.0) / "`mobilePhone`, `email`,
//!   `passKeyDeviceBound`" (beta).
//! - Graph `api/authenticationmethodsroot-list-userregistrationdetails.md`, the example
//!   response: `methodsRegistered` `["microsoftAuthenticatorPush", "softwareOneTimePasscode"]`
//!   and `["mobilePhone", "microsoftAuthenticatorPush", "softwareOneTimePasscode"]`.
//! - Graph `beta/resources/usageauthmethod.md`, "the authentication method used for user
//!   credential and registration activity": the names the report uses — `email`,
//!   `mobilePhone`, `alternateMobilePhone`, `officePhone`, `microsoftAuthenticatorPush`,
//!   `microsoftAuthenticatorPasswordless`, `softwareOneTimePasscode`,
//!   `hardwareOneTimePasscode`, `fido2SecurityKey`, `passKeyDeviceBound`,
//!   `passKeyDeviceBoundAuthenticator`, `passKeyDeviceBoundWindowsHello`, `passKeySynced`,
//!   `windowsHelloForBusiness`, `macOsSecureEnclaveKey`, `temporaryAccessPass`,
//!   `externalAuthMethod`, … (no password member: a password is never listed).
//! - Entra `identity/authentication/concept-authentication-methods.md`, the table "when an
//!   authentication method can be used during a sign-in event": Secondary authentication is
//!   "MFA" (or "MFA and SSPR") for Windows Hello for Business, Platform Credential for macOS,
//!   passkeys (FIDO2), Microsoft Authenticator push, hardware and software OATH tokens,
//!   external authentication methods, Temporary Access Pass, SMS and voice call; "No" for
//!   password; email is "only used for SSPR". That column is what "strong authentication method
//!   for multifactor authentication" means here.
//! - Entra `identity/authentication/concept-sspr-howitworks.md`, "Authentication methods": the
//!   methods available for SSPR are mobile app notification, mobile app code, email, mobile
//!   phone, office phone and security questions; the policy requires one or two of them.
//! - Entra `identity/authentication/concept-authentication-platform-credential-for-macos.md`:
//!   Platform Credential "allows users to go passwordless", with a Secure Enclave key.
//!
//! The emulated tenant's policies: every method is allowed by the authentication methods
//! policy (so `isMfaCapable` equals `isMfaRegistered`), and self-service password reset needs
//! one registered method.

use serde_json::{json, Value};

use crate::tenant::SimUser;

/// What the docs say about one authentication method type, as the report sees it.
struct MethodFacts {
    /// The `@odata.type` of the method in `/users/{id}/authentication/methods`.
    odata_type: &'static str,
    /// Its `methodsRegistered` value; `None`: never listed (the password).
    registered_as: Option<&'static str>,
    /// A strong method for multifactor authentication (concept-authentication-methods.md,
    /// Secondary authentication "MFA").
    mfa: bool,
    /// Usable for self-service password reset (concept-sspr-howitworks.md).
    sspr: bool,
    /// A passwordless strong method (userregistrationdetails.md, isPasswordlessCapable).
    passwordless: bool,
}

/// The method types the emulator serves (Graph v1.0 `authenticationMethod` subtypes, each with
/// its resource page `resources/<type>.md`). A type not listed (e.g. a future one) is not in
/// the report and counts for nothing.
const METHODS: [MethodFacts; 10] = [
    // passwordauthenticationmethod.md; usageAuthMethod has no password member; "Password |
    // Secondary authentication: No".
    MethodFacts {
        odata_type: "#microsoft.graph.passwordAuthenticationMethod",
        registered_as: None,
        mfa: false,
        sspr: false,
        passwordless: false,
    },
    // emailauthenticationmethod.md ("as part of the Self-Service Password Reset (SSPR)
    // process"); usageAuthMethod `email`; "Email address - only used for SSPR".
    MethodFacts {
        odata_type: "#microsoft.graph.emailAuthenticationMethod",
        registered_as: Some("email"),
        mfa: false,
        sspr: true,
        passwordless: false,
    },
    // temporaryaccesspassauthenticationmethod.md; usageAuthMethod `temporaryAccessPass`;
    // "Temporary Access Pass (TAP) | Primary: Yes | Secondary: MFA"; not an SSPR method.
    MethodFacts {
        odata_type: "#microsoft.graph.temporaryAccessPassAuthenticationMethod",
        registered_as: Some("temporaryAccessPass"),
        mfa: true,
        sspr: false,
        passwordless: false,
    },
    // phoneauthenticationmethod.md: a user "must have a mobile phone before an alternate
    // mobile phone is added", so a lone phone method is the mobile one: `mobilePhone` (the
    // list example); "SMS sign-in / Voice call | Secondary: MFA and SSPR".
    MethodFacts {
        odata_type: "#microsoft.graph.phoneAuthenticationMethod",
        registered_as: Some("mobilePhone"),
        mfa: true,
        sspr: true,
        passwordless: false,
    },
    // microsoftauthenticatorauthenticationmethod.md; `microsoftAuthenticatorPush` (the list
    // example); "Microsoft Authenticator push notifications | Secondary: MFA and SSPR". Push,
    // not passwordless phone sign-in (`microsoftAuthenticatorPasswordless`).
    MethodFacts {
        odata_type: "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod",
        registered_as: Some("microsoftAuthenticatorPush"),
        mfa: true,
        sspr: true,
        passwordless: false,
    },
    // softwareoathauthenticationmethod.md; `softwareOneTimePasscode` (the list example);
    // "Software OATH tokens | Secondary: MFA and SSPR" ("mobile app code" for SSPR).
    MethodFacts {
        odata_type: "#microsoft.graph.softwareOathAuthenticationMethod",
        registered_as: Some("softwareOneTimePasscode"),
        mfa: true,
        sspr: true,
        passwordless: false,
    },
    // fido2authenticationmethod.md; `passKeyDeviceBound` (the beta resource's example;
    // usageAuthMethod "the device-bound passkey authentication method"); "Passkey (FIDO2) |
    // Primary: Yes | Secondary: MFA"; FIDO2 is named by isPasswordlessCapable.
    MethodFacts {
        odata_type: "#microsoft.graph.fido2AuthenticationMethod",
        registered_as: Some("passKeyDeviceBound"),
        mfa: true,
        sspr: false,
        passwordless: true,
    },
    // windowshelloforbusinessauthenticationmethod.md; usageAuthMethod
    // `windowsHelloForBusiness`; "Windows Hello for Business | Primary: Yes | Secondary: MFA";
    // named by isPasswordlessCapable.
    MethodFacts {
        odata_type: "#microsoft.graph.windowsHelloForBusinessAuthenticationMethod",
        registered_as: Some("windowsHelloForBusiness"),
        mfa: true,
        sspr: false,
        passwordless: true,
    },
    // platformcredentialauthenticationmethod.md (Platform Credential for macOS); usageAuthMethod
    // `macOsSecureEnclaveKey`; "Platform Credential for macOS | Primary: Yes | Secondary: MFA";
    // concept-authentication-platform-credential-for-macos.md: "go passwordless".
    MethodFacts {
        odata_type: "#microsoft.graph.platformCredentialAuthenticationMethod",
        registered_as: Some("macOsSecureEnclaveKey"),
        mfa: true,
        sspr: false,
        passwordless: true,
    },
    // externalauthenticationmethod.md; usageAuthMethod `externalAuthMethod`; "External
    // authentication methods | Primary: No | Secondary: MFA".
    MethodFacts {
        odata_type: "#microsoft.graph.externalAuthenticationMethod",
        registered_as: Some("externalAuthMethod"),
        mfa: true,
        sspr: false,
        passwordless: false,
    },
];

/// Registered `lastUpdatedDateTime` of every row (the report's refresh time, unrelated to the
/// user's registrations: howto-authentication-methods-activity.md).
const LAST_UPDATED: &str = "2025-07-01T00:00:00Z";

/// The report row of one user. `is_admin`: the user holds an active directory role in the
/// tenant (userregistrationdetails.md, `isAdmin`: "Indicates whether the user has an admin
/// role in the tenant"); the caller decides it from the directory's grants, which a user's own
/// data does not show in full (a role held through a group another user declares). A user only
/// PIM-eligible for a role does not "have" it until activated: `false`.
pub(crate) fn row(sim: &SimUser, is_admin: bool) -> Value {
    let facts: Vec<&MethodFacts> = sim
        .auth_methods
        .iter()
        .filter_map(|t| METHODS.iter().find(|m| m.odata_type == t))
        .collect();
    let mut registered: Vec<&str> = Vec::new();
    for name in facts.iter().filter_map(|m| m.registered_as) {
        if !registered.contains(&name) {
            registered.push(name);
        }
    }
    let mfa_registered = facts.iter().any(|m| m.mfa);
    // One method satisfies the emulated SSPR policy (one required, every method enabled).
    let sspr_registered = facts.iter().any(|m| m.sspr);
    let user_type = match sim.text("userType") {
        Some(t) if t.eq_ignore_ascii_case("guest") => "guest",
        _ => "member",
    };
    json!({
        "id": sim.id(),
        "userPrincipalName": sim.user.get("userPrincipalName").cloned().unwrap_or(Value::Null),
        "userDisplayName": sim.user.get("displayName").cloned().unwrap_or(Value::Null),
        "userType": user_type,
        "isAdmin": is_admin,
        "isSsprRegistered": sspr_registered,
        "isMfaRegistered": mfa_registered,
        // Every method is allowed by the emulated authentication methods policy.
        "isMfaCapable": mfa_registered,
        "isPasswordlessCapable": facts.iter().any(|m| m.passwordless),
        "methodsRegistered": registered,
        "lastUpdatedDateTime": LAST_UPDATED,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(methods: &[&str]) -> SimUser {
        SimUser {
            user: json!({"id": "u1", "userType": "Member", "accountEnabled": false}),
            member_of: Vec::new(),
            inherited_roles: Vec::new(),
            auth_methods: methods
                .iter()
                .map(|m| format!("#microsoft.graph.{m}"))
                .collect(),
            role_assignments: Vec::new(),
        }
    }

    #[test]
    fn every_generated_method_type_has_documented_facts() {
        let known: Vec<&str> = METHODS.iter().map(|m| m.odata_type).collect();
        let unknown: Vec<&&str> = crate::AUTH_METHOD_TYPES
            .iter()
            .filter(|t| !known.contains(t))
            .collect();
        // The generator's last type is unknown to Graph on purpose.
        assert_eq!(
            unknown,
            [&"#microsoft.graph.passkeyFutureAuthenticationMethod"]
        );
    }

    #[test]
    fn password_and_email_alone_are_not_mfa() {
        let row = row(
            &user(&["passwordAuthenticationMethod", "emailAuthenticationMethod"]),
            false,
        );
        assert_eq!(row["isMfaRegistered"], false);
        assert_eq!(row["isMfaCapable"], false);
        assert_eq!(row["isSsprRegistered"], true, "email is an SSPR method");
        assert_eq!(row["methodsRegistered"], json!(["email"]));
    }

    #[test]
    fn a_temporary_access_pass_is_a_strong_method() {
        // concept-authentication-methods.md: TAP, Secondary authentication "MFA".
        let row = row(&user(&["temporaryAccessPassAuthenticationMethod"]), false);
        assert_eq!(row["isMfaRegistered"], true);
        assert_eq!(row["isSsprRegistered"], false);
        assert_eq!(row["methodsRegistered"], json!(["temporaryAccessPass"]));
    }

    #[test]
    fn capability_follows_policy_not_the_account_state() {
        // The user is disabled: the docs tie isMfaCapable to the methods policy only.
        let row = row(&user(&["softwareOathAuthenticationMethod"]), false);
        assert_eq!(row["isMfaRegistered"], true);
        assert_eq!(row["isMfaCapable"], true);
        assert_eq!(row["isSsprRegistered"], true, "mobile app code");
        assert_eq!(row["isPasswordlessCapable"], false);
        assert_eq!(row["methodsRegistered"], json!(["softwareOneTimePasscode"]));
    }

    #[test]
    fn passwordless_methods_are_fido2_hello_and_platform_credential() {
        for method in [
            "fido2AuthenticationMethod",
            "windowsHelloForBusinessAuthenticationMethod",
            "platformCredentialAuthenticationMethod",
        ] {
            let row = row(&user(&[method]), false);
            assert_eq!(row["isPasswordlessCapable"], true, "{method}");
            assert_eq!(row["isMfaRegistered"], true, "{method}");
        }
        let row = row(
            &user(&["microsoftAuthenticatorAuthenticationMethod"]),
            false,
        );
        assert_eq!(
            row["isPasswordlessCapable"], false,
            "push is not passwordless"
        );
    }

    #[test]
    fn each_name_is_listed_once_in_order() {
        let row = row(
            &user(&[
                "phoneAuthenticationMethod",
                "microsoftAuthenticatorAuthenticationMethod",
                "phoneAuthenticationMethod",
                "passkeyFutureAuthenticationMethod",
            ]),
            false,
        );
        assert_eq!(
            row["methodsRegistered"],
            json!(["mobilePhone", "microsoftAuthenticatorPush"])
        );
    }
}
