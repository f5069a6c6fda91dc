//! One `admission.k8s.io/v1` AdmissionReview: request in, response out.
//!
//! The webhook must never be the reason a pod cannot be created: anything
//! wrong with the pod (bad annotation, odd shape) is answered `allowed: true`
//! without a patch and with a warning that `kubectl` prints. Only a body that
//! is not an AdmissionReview at all (no `request.uid` to answer) is an HTTP 400.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::options::InjectOptions;
use crate::pod::{Outcome, inject_pod_template};

const API_VERSION: &str = "admission.k8s.io/v1";

/// A body that cannot be answered with an AdmissionReview.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("body is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("not an {API_VERSION} AdmissionReview: {0}")]
    NotAReview(&'static str),
}

/// Answers one AdmissionReview body. `Ok` is the response review to send
/// with HTTP 200; `Err` means HTTP 400.
pub fn review(body: &[u8], opts: &InjectOptions) -> Result<Value, ReviewError> {
    let review: Value = serde_json::from_slice(body).map_err(ReviewError::NotJson)?;
    if review.get("kind").and_then(Value::as_str) != Some("AdmissionReview") {
        return Err(ReviewError::NotAReview("kind is not AdmissionReview"));
    }
    if review.get("apiVersion").and_then(Value::as_str) != Some(API_VERSION) {
        return Err(ReviewError::NotAReview(
            "apiVersion is not admission.k8s.io/v1",
        ));
    }
    let Some(request) = review.get("request") else {
        return Err(ReviewError::NotAReview("no request"));
    };
    let Some(uid) = request.get("uid").and_then(Value::as_str) else {
        return Err(ReviewError::NotAReview("request.uid is missing"));
    };
    let decision = decide(request, opts);
    let mut response = json!({"uid": uid, "allowed": true});
    match decision {
        Decision::Patch(patch) => {
            response["patchType"] = json!("JSONPatch");
            response["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(patch));
        }
        Decision::Unchanged => {}
        Decision::Warn(message) => {
            tracing::warn!(uid, %message, "admitted without injection");
            response["warnings"] = json!([format!("weir: sidecar not injected: {message}")]);
        }
    }
    Ok(json!({"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}))
}

enum Decision {
    /// JSONPatch bytes.
    Patch(Vec<u8>),
    Unchanged,
    Warn(String),
}

fn decide(request: &Value, opts: &InjectOptions) -> Decision {
    let is_pod = request.pointer("/kind/kind").and_then(Value::as_str) == Some("Pod")
        && request
            .pointer("/kind/group")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .is_empty();
    let is_create = request.get("operation").and_then(Value::as_str) == Some("CREATE");
    let sub_resource = request
        .get("subResource")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !is_pod || !is_create || !sub_resource.is_empty() {
        return Decision::Unchanged;
    }
    let Some(original) = request.get("object").filter(|o| o.is_object()) else {
        return Decision::Warn("request.object is not a Pod object".into());
    };
    let mut pod = original.clone();
    match inject_pod_template(&mut pod, opts) {
        Ok(Outcome::Injected) => {
            tracing::info!(
                namespace = request
                    .get("namespace")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default(),
                pod = original
                    .pointer("/metadata/name")
                    .or_else(|| original.pointer("/metadata/generateName"))
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default(),
                "injecting the sidecar"
            );
            // The diff of the pod against the CLI's result for the same pod,
            // so both ways of injecting agree by construction.
            let patch = json_patch::diff(original, &pod);
            match serde_json::to_vec(&patch) {
                Ok(bytes) => Decision::Patch(bytes),
                Err(e) => Decision::Warn(format!("cannot encode the patch: {e}")),
            }
        }
        Ok(Outcome::Skipped(_)) => Decision::Unchanged,
        Err(e) => Decision::Warn(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review_of(object: Value, operation: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": API_VERSION,
            "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "operation": operation,
                "object": object,
            }
        }))
        .expect("json")
    }

    #[test]
    fn non_create_is_allowed_unchanged() {
        let body = review_of(json!({"spec": {}}), "UPDATE");
        let out = review(&body, &InjectOptions::default()).expect("review");
        assert_eq!(
            out["response"],
            json!({"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": true})
        );
    }

    #[test]
    fn malformed_pod_is_allowed_with_a_warning() {
        let pod = json!({"metadata": {"annotations": {"weir.dev/inject": "enabled"}}, "spec": {"containers": "nope"}});
        let out = review(&review_of(pod, "CREATE"), &InjectOptions::default()).expect("review");
        assert_eq!(out["response"]["allowed"], true);
        assert!(out["response"].get("patch").is_none());
        let warning = out["response"]["warnings"][0].as_str().expect("warning");
        assert!(warning.contains("spec.containers"), "{warning}");
    }

    #[test]
    fn garbage_and_non_reviews_are_rejected() {
        assert!(matches!(
            review(b"{not json", &InjectOptions::default()),
            Err(ReviewError::NotJson(_))
        ));
        let no_uid = serde_json::to_vec(
            &json!({"apiVersion": API_VERSION, "kind": "AdmissionReview", "request": {}}),
        )
        .expect("json");
        assert!(matches!(
            review(&no_uid, &InjectOptions::default()),
            Err(ReviewError::NotAReview(_))
        ));
    }
}
