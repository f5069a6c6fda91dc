//! Matchers, API versioning, deprecation, weighted splits and rewrites, end
//! to end: a real client, the gateway, and echo upstreams that report what
//! they received. Each route tags its responses with `x-route`, so a test
//! sees which route won.

mod support;

use http::Request;
use support::*;

/// One route that tags responses with its name; `extra` is more YAML under
/// the route (indented four spaces), `rewrite` extra keys under `rewrite:`.
fn route(name: &str, matches: &str, target: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    match: {matches}\n    {target}\n    rewrite:\n      response_headers: {{ set: {{ x-route: {name} }} }}\n{extra}"
    )
}

async fn gateway(routes: &[String], versioning: &str) -> (TestGateway, Upstream, Upstream) {
    let a = echo_upstream("a").await;
    let b = echo_upstream("b").await;
    let yaml = config(&format!(
        "upstreams:\n  a: {{ endpoints: [{}] }}\n  b: {{ endpoints: [{}] }}\n{versioning}routes:\n{}",
        a.addr,
        b.addr,
        routes.concat()
    ));
    (TestGateway::start(&yaml).await, a, b)
}

#[tokio::test]
async fn host_exact_beats_wildcard_and_wildcard_skips_apex() {
    let (gw, _a, _b) = gateway(
        &[
            route(
                "exact",
                "{ host: api.example.com, path_prefix: /h }",
                "upstream: a",
                "",
            ),
            route(
                "wild",
                "{ host: '*.example.com', path_prefix: /h }",
                "upstream: b",
                "",
            ),
        ],
        "",
    )
    .await;
    let r = get_with(&gw.url("/h/1"), &[("host", "api.example.com")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-route"), Some("exact"));
    assert_eq!(r.header("x-upstream"), Some("a"));

    let r = get_with(&gw.url("/h/1"), &[("host", "Shop.Example.com:8080")]).await;
    assert_eq!(
        r.header("x-route"),
        Some("wild"),
        "host is case-insensitive, port ignored"
    );
    assert_eq!(r.header("x-upstream"), Some("b"));

    let r = get_with(&gw.url("/h/1"), &[("host", "example.com")]).await;
    assert_problem(&r, 404, "route-not-found");
}

#[tokio::test]
async fn path_exact_prefix_and_template() {
    let (gw, _a, _b) = gateway(
        &[
            route("exact", "{ path: /exact/thing }", "upstream: a", ""),
            route("prefix", "{ path_prefix: /files }", "upstream: a", ""),
            route(
                "template",
                "{ path_template: '/users/{id}/posts/{post}' }",
                "upstream: b",
                "      path: '/internal/{id}/{post}'\n",
            ),
        ],
        "",
    )
    .await;
    let r = get(&gw.url("/exact/thing")).await;
    assert_eq!(r.header("x-route"), Some("exact"));
    assert_problem(
        &get(&gw.url("/exact/thing/more")).await,
        404,
        "route-not-found",
    );

    let r = get(&gw.url("/files/a/b.txt?x=1")).await;
    assert_eq!(r.header("x-route"), Some("prefix"));
    assert_eq!(r.json()["uri"], "/files/a/b.txt?x=1");
    assert_eq!(
        get(&gw.url("/files")).await.header("x-route"),
        Some("prefix")
    );
    assert_problem(&get(&gw.url("/filesx")).await, 404, "route-not-found");

    let r = get(&gw.url("/users/42/posts/7?full=1")).await;
    assert_eq!(r.header("x-route"), Some("template"));
    assert_eq!(
        r.json()["uri"],
        "/internal/42/7?full=1",
        "params substituted, query kept"
    );
    assert_problem(
        &get(&gw.url("/users/42/posts")).await,
        404,
        "route-not-found",
    );
}

#[tokio::test]
async fn methods_and_headers() {
    let (gw, _a, _b) = gateway(
        &[
            route(
                "post-only",
                "{ path: /m, methods: [POST] }",
                "upstream: a",
                "",
            ),
            route(
                "blue",
                "{ path: /t, headers: [{ name: x-tenant, value: blue }] }",
                "upstream: b",
                "",
            ),
            route(
                "debug",
                "{ path: /t, headers: [{ name: x-debug, present: true }] }",
                "upstream: b",
                "",
            ),
            route("any-tenant", "{ path: /t }", "upstream: a", ""),
        ],
        "",
    )
    .await;
    let r = send(Request::post(gw.url("/m")).body(full("x")).unwrap()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-route"), Some("post-only"));
    assert_eq!(r.json()["body_len"], 1);
    let r = get(&gw.url("/m")).await;
    assert_problem(&r, 405, "method-not-allowed");
    assert_eq!(r.header("allow"), Some("POST"));

    assert_eq!(
        get_with(&gw.url("/t"), &[("x-tenant", "blue")])
            .await
            .header("x-route"),
        Some("blue")
    );
    assert_eq!(
        get_with(&gw.url("/t"), &[("x-tenant", "red")])
            .await
            .header("x-route"),
        Some("any-tenant")
    );
    assert_eq!(
        get_with(&gw.url("/t"), &[("x-debug", "")])
            .await
            .header("x-route"),
        Some("debug")
    );
    assert_eq!(
        get(&gw.url("/t")).await.header("x-route"),
        Some("any-tenant")
    );
}

#[tokio::test]
async fn version_from_path_headers_media_type_and_default() {
    let (gw, _a, _b) = gateway(
        &[
            route("products-v1", "{ path_prefix: /products }", "upstream: a", "    version: 1\n"),
            route("products-v2", "{ path_prefix: /products }", "upstream: b", "    version: 2\n"),
            route("products-v3", "{ path_prefix: /products }", "upstream: b", "    version: 3\n"),
        ],
        "versioning:\n  default: 2\n  headers: [Api-Version, Accept-Version]\n  media_type: application/vnd.weir.v{n}+json\n",
    )
    .await;
    let r = get(&gw.url("/v1/products/9")).await;
    assert_eq!(r.header("x-route"), Some("products-v1"));
    assert_eq!(
        r.json()["uri"],
        "/products/9",
        "the /vN segment is not forwarded by default"
    );
    assert_eq!(
        get(&gw.url("/v3/products/9")).await.header("x-route"),
        Some("products-v3")
    );

    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("api-version", "1")], "products-v1"),
        (&[("accept-version", "v3")], "products-v3"),
        (
            &[("accept", "text/html, application/vnd.weir.v1+json;q=0.9")],
            "products-v1",
        ),
        (&[("accept", "application/json")], "products-v2"),
        (&[], "products-v2"),
        // The header is consulted before the media type.
        (
            &[
                ("api-version", "3"),
                ("accept", "application/vnd.weir.v1+json"),
            ],
            "products-v3",
        ),
    ];
    for (headers, want) in cases {
        let r = get_with(&gw.url("/products/9"), headers).await;
        assert_eq!(r.status, 200, "{headers:?}");
        assert_eq!(r.header("x-route"), Some(*want), "{headers:?}");
        assert_eq!(r.json()["uri"], "/products/9");
    }
    // No route serves version 4.
    assert_problem(
        &get_with(&gw.url("/products/9"), &[("api-version", "4")]).await,
        404,
        "route-not-found",
    );
    assert_problem(
        &get(&gw.url("/v4/products/9")).await,
        404,
        "route-not-found",
    );
}

#[tokio::test]
async fn deprecated_route_carries_headers_and_sunset_route_is_gone() {
    let (gw, a, _b) = gateway(
        &[
            route(
                "old-search",
                "{ path_prefix: /search }",
                "upstream: a",
                "    deprecated: { since: 2025-01-01T00:00:00Z, sunset: 2099-01-01T00:00:00Z, link: https://docs.example.com/migrate }\n",
            ),
            route(
                "retired",
                "{ path_prefix: /retired }",
                "upstream: a",
                "    deprecated: { sunset: 2020-01-01T00:00:00Z, link: https://docs.example.com/retired }\n",
            ),
        ],
        "",
    )
    .await;
    let r = get(&gw.url("/search?q=x")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("deprecation"), Some("@1735689600"));
    assert_eq!(r.header("sunset"), Some("Thu, 01 Jan 2099 00:00:00 GMT"));
    assert_eq!(
        r.header("link"),
        Some("<https://docs.example.com/migrate>; rel=\"deprecation\"")
    );

    let before = a.requests();
    let r = get(&gw.url("/retired/x")).await;
    let doc = assert_problem(&r, 410, "api-version-sunset");
    assert!(
        doc["detail"].as_str().unwrap_or("").contains("retired"),
        "{doc}"
    );
    assert_eq!(r.header("sunset"), Some("Wed, 01 Jan 2020 00:00:00 GMT"));
    assert_eq!(
        r.header("link"),
        Some("<https://docs.example.com/retired>; rel=\"deprecation\"")
    );
    assert_eq!(
        a.requests(),
        before,
        "a sunset route never reaches the upstream"
    );
}

#[tokio::test]
async fn weighted_split_reaches_both_upstreams() {
    let (gw, a, b) = gateway(
        &["  - name: canary\n    match: { path_prefix: /canary }\n    split: [{ upstream: a, weight: 90 }, { upstream: b, weight: 10 }]\n".to_owned()],
        "",
    )
    .await;
    let client = client();
    let (mut to_a, mut to_b) = (0, 0);
    for _ in 0..400 {
        let r = send_with(
            &client,
            Request::get(gw.url("/canary")).body(empty()).unwrap(),
        )
        .await;
        assert_eq!(r.status, 200);
        match r.header("x-upstream") {
            Some("a") => to_a += 1,
            Some("b") => to_b += 1,
            other => panic!("unexpected upstream {other:?}"),
        }
    }
    assert_eq!(to_a + to_b, 400);
    assert!(to_b > 0 && to_a > to_b, "a={to_a} b={to_b}");
    assert_eq!(a.requests(), to_a);
    assert_eq!(b.requests(), to_b);
}

#[tokio::test]
async fn path_and_header_rewrites() {
    let (gw, _a, _b) = gateway(
        &[
            route("strip", "{ path_prefix: /strip }", "upstream: a", "      strip_prefix: /strip\n"),
            route(
                "replace",
                "{ path_prefix: /old-api }",
                "upstream: a",
                "      replace_prefix: { from: /old-api, to: /new-api/v9 }\n",
            ),
            "  - name: headers\n    match: { path_prefix: /hdr }\n    upstream: b\n    rewrite:\n      \
                 request_headers: { set: { x-set: gateway }, add: { x-add: gateway }, remove: [x-remove] }\n      \
                 response_headers: { set: { x-resp-set: yes }, add: { x-resp-add: two }, remove: [x-upstream] }\n"
            .to_owned(),
        ],
        "",
    )
    .await;
    let r = get(&gw.url("/strip/x/y?q=1")).await;
    assert_eq!(r.json()["uri"], "/x/y?q=1");
    assert_eq!(get(&gw.url("/strip")).await.json()["uri"], "/");

    let r = get(&gw.url("/old-api/items/3")).await;
    assert_eq!(r.json()["uri"], "/new-api/v9/items/3");

    let r = get_with(
        &gw.url("/hdr"),
        &[
            ("x-set", "client"),
            ("x-add", "client"),
            ("x-remove", "secret"),
            ("x-keep", "1"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.seen("x-set"), ["gateway"]);
    assert_eq!(r.seen("x-add"), ["client", "gateway"]);
    assert!(r.seen("x-remove").is_empty(), "removed before forwarding");
    assert_eq!(r.seen("x-keep"), ["1"]);
    assert_eq!(r.header("x-resp-set"), Some("yes"));
    assert_eq!(r.header("x-resp-add"), Some("two"));
    assert_eq!(r.header("x-upstream"), None, "removed from the response");
}
