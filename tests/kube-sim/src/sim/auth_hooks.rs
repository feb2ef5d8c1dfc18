//! The server's hooks for identities: which paths are non-resource requests, and the endpoints that
//! answer without storing (TokenRequest, access reviews, SelfSubjectReview).

use super::auth::Identity;
use super::server::Server;
use super::status::ApiError;
use super::store::ResourceDef;
use serde_json::{Value, json};

/// Whether the path (split on `/`) is a non-resource request (discovery, `/version`, health, OpenAPI).
pub fn is_non_resource(segs: &[&str]) -> bool {
    match segs {
        [] => true,
        ["api"] | ["api", _] | ["apis"] | ["apis", _] | ["apis", _, _] => true,
        ["api", ..] | ["apis", ..] => false,
        _ => true,
    }
}

/// Subresources written like `/status` (whole-object merge of the status only).
pub fn is_status_like(def: &ResourceDef, sub: &str) -> bool {
    sub == "approval"
        && def.group == "certificates.k8s.io"
        && def.plural == "certificatesigningrequests"
}

/// Subresources besides `/status` that discovery lists: (name, kind, verbs).
pub fn extra_subresources(
    def: &ResourceDef,
) -> Vec<(&'static str, &'static str, &'static [&'static str])> {
    match (def.group.as_str(), def.plural.as_str()) {
        ("certificates.k8s.io", "certificatesigningrequests") => {
            vec![(
                "approval",
                "CertificateSigningRequest",
                &["get", "patch", "update"],
            )]
        }
        ("", "serviceaccounts") => vec![("token", "TokenRequest", &["create"])],
        _ => Vec::new(),
    }
}

/// An endpoint answered without storage.
#[derive(Debug)]
pub enum Special {
    /// `POST …/serviceaccounts/NAME/token`.
    TokenRequest {
        /// Namespace.
        ns: String,
        /// ServiceAccount.
        name: String,
    },
    /// `POST …/subjectaccessreviews`.
    AccessReview,
    /// `POST …/selfsubjectaccessreviews`.
    SelfAccessReview,
    /// `POST …/selfsubjectreviews`.
    SelfReview,
}

/// The special endpoint a request is for, if any.
///
/// # Errors
/// 405 for another verb than create on a review.
pub fn special(
    def: &ResourceDef,
    ns: &Option<String>,
    name: &Option<String>,
    sub: &Option<String>,
    verb: &str,
) -> Result<Option<Special>, ApiError> {
    if def.group.is_empty() && def.plural == "serviceaccounts" && sub.as_deref() == Some("token") {
        if verb != "create" {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource (serviceaccounts/token supports create, not {verb})"
            )));
        }
        return Ok(Some(Special::TokenRequest {
            ns: ns.clone().unwrap_or_default(),
            name: name.clone().unwrap_or_default(),
        }));
    }
    if !super::release::is_review(&def.group, &def.plural) {
        return Ok(None);
    }
    if verb != "create" || name.is_some() {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({} supports create only)",
            def.plural
        )));
    }
    Ok(Some(match def.plural.as_str() {
        "subjectaccessreviews" => Special::AccessReview,
        "selfsubjectaccessreviews" => Special::SelfAccessReview,
        _ => Special::SelfReview,
    }))
}

/// Answer a special endpoint.
///
/// # Errors
/// As each endpoint does (400 bad body, 404 missing ServiceAccount, 422 bad spec).
pub fn serve(server: &Server, id: &Identity, sp: Special, body: Value) -> Result<Value, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON or YAML object",
        ));
    }
    match sp {
        Special::TokenRequest { ns, name } => {
            super::auth::token_request(&server.auth, &server.store, &ns, &name, body)
        }
        Special::AccessReview => super::rbac::access_review(&server.store, None, body),
        Special::SelfAccessReview => super::rbac::access_review(&server.store, Some(id), body),
        Special::SelfReview => Ok(json!({
            "kind": "SelfSubjectReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "status": {"userInfo": id.user_info()},
        })),
    }
}
