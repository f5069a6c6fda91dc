//! The identity pieces of the Kubernetes manifests agree with each other:
//! the URL the webhook injects names the issuer's Service and a name on its
//! serving certificate, the audience injected sidecars' tokens carry is the
//! one the issuer checks, and the issuer's ServiceAccount may create
//! TokenReviews. (Schema validation is in `k8s_schema.rs`.)

use std::path::Path;

use serde_json::Value as Json;
use serde_norway::Value;
use weir_inject::{InjectOptions, inject_yaml};

fn docs(file: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/k8s/base")
        .join(file);
    let text = std::fs::read_to_string(path).expect("manifest");
    serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind}"))
}

fn strs(v: &Value) -> Vec<String> {
    v.as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

#[test]
fn injected_sidecars_reach_the_issuer_it_trusts_them_and_it_may_review_tokens() {
    let issuer = docs("identity/issuer.yaml");
    let webhook = docs("webhook/webhook.yaml");

    // The URL the webhook gives sidecars.
    let env = &kind(&webhook, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"];
    let url = env
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str() == Some("WEIR_INJECT_IDENTITY_ISSUER"))
        .and_then(|e| e["value"].as_str())
        .expect("the webhook sets WEIR_INJECT_IDENTITY_ISSUER")
        .to_owned();
    let uri: http::Uri = url.parse().unwrap();
    let host = uri.host().unwrap();

    // … names the Service and its port …
    let svc = kind(&issuer, "Service");
    let svc_host = format!(
        "{}.{}.svc",
        svc["metadata"]["name"].as_str().unwrap(),
        svc["metadata"]["namespace"].as_str().unwrap()
    );
    assert_eq!(host, svc_host);
    assert_eq!(
        svc["spec"]["ports"][0]["port"].as_u64(),
        uri.port_u16().map(u64::from)
    );

    // … and a name on the issuer's serving certificate.
    let deploy = kind(&issuer, "Deployment");
    let pod = &deploy["spec"]["template"]["spec"];
    let args = strs(&pod["containers"][0]["args"]);
    let names: Vec<String> = args
        .iter()
        .filter_map(|a| a.strip_prefix("--server-name="))
        .flat_map(|n| n.split(',').map(str::to_owned))
        .collect();
    assert!(names.contains(&host.to_owned()), "{names:?}");
    assert!(args.contains(&"--kubernetes".to_owned()));

    // The audience of injected tokens is the issuer's.
    let audience = args
        .iter()
        .find_map(|a| a.strip_prefix("--audience="))
        .expect("--audience");
    let pod_yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {weir.dev/inject: enabled}}\nspec: {containers: [{name: app, image: app}]}\n";
    let out = inject_yaml(
        pod_yaml,
        &InjectOptions {
            identity_issuer: Some(url.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    let injected: Json = serde_norway::from_str(&out).unwrap();
    let volume = injected["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "weir-identity")
        .expect("identity volume");
    assert_eq!(
        volume["projected"]["sources"][0]["serviceAccountToken"]["audience"],
        audience
    );

    // The issuer's ServiceAccount is bound to system:auth-delegator.
    let sa = pod["serviceAccountName"].as_str().unwrap();
    let binding = kind(&issuer, "ClusterRoleBinding");
    assert_eq!(
        binding["roleRef"]["name"].as_str(),
        Some("system:auth-delegator")
    );
    assert_eq!(binding["subjects"][0]["name"].as_str(), Some(sa));
    assert_eq!(
        binding["subjects"][0]["namespace"].as_str(),
        deploy["metadata"]["namespace"].as_str()
    );
}
