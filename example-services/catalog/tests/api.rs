//! Catalog over real HTTP with a real SQLite file.

use std::time::Duration;

use catalog::Config;
use serde_json::{Value, json};
use service_kit::testing::{Running, TestClient, TestDir, eventually};

async fn start(dir: &TestDir, tweak: impl FnOnce(&mut Config)) -> Running<catalog::Error> {
    let mut config = Config::new(dir.path());
    tweak(&mut config);
    Running::start(move |listener, shutdown| catalog::run(config, listener, shutdown)).await
}

const ADMIN: (&str, &str) = ("x-weir-admin", "true");

async fn create(client: &TestClient, base: &str, sku: &str, price: i64, stock: i64) -> Value {
    let body = json!({"sku": sku, "name": format!("Product {sku}"), "description": "test", "price_minor": price, "currency": "EUR", "stock": stock});
    let response = client
        .post(&format!("{base}/v1/products"), &[ADMIN], &body)
        .await;
    assert_eq!(response.status, 201, "{:?}", response.json);
    response.json
}

#[tokio::test]
async fn seeds_pages_and_filters_products() {
    let dir = TestDir::new("catalog");
    let server = start(&dir, |_| {}).await;
    let client = TestClient::new();
    let base = server.url();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{base}/v1/products?limit=10&cursor={c}"),
            None => format!("{base}/v1/products?limit=10"),
        };
        let page = client.get(&url).await;
        assert_eq!(page.status, 200);
        let items = page.json["items"].as_array().unwrap().clone();
        assert!(items.len() <= 10);
        seen.extend(items.iter().map(|p| p["id"].as_str().unwrap().to_owned()));
        match page.json["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert!(
        seen.len() >= 30,
        "seed has a few dozen products, got {}",
        seen.len()
    );
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "pages never repeat a product");

    let cheap = client
        .get(&format!("{base}/v1/products?max_price=1000&limit=100"))
        .await;
    let cheap = cheap.json["items"].as_array().unwrap().clone();
    assert!(!cheap.is_empty());
    assert!(
        cheap
            .iter()
            .all(|p| p["price_minor"].as_i64().unwrap() <= 1000)
    );

    let coffee = client
        .get(&format!(
            "{base}/v1/products?q=COFFEE&in_stock=true&limit=100"
        ))
        .await;
    let coffee = coffee.json["items"].as_array().unwrap().clone();
    assert!(!coffee.is_empty());
    for p in &coffee {
        let text = format!("{} {}", p["name"], p["description"]).to_lowercase();
        assert!(text.contains("coffee"));
        assert!(p["stock"].as_i64().unwrap() > 0);
    }

    let bad = client.get(&format!("{base}/v1/products?limit=0")).await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.json["field"], "limit");
    assert_eq!(bad.headers["content-type"], "application/problem+json");
    assert!(bad.json["request_id"].is_string());
    let bad = client
        .get(&format!("{base}/v1/products?min_price=abc"))
        .await;
    assert_eq!(bad.json["field"], "min_price");

    server.stop().await.unwrap();
}

#[tokio::test]
async fn v2_nests_the_price_and_admin_writes_are_checked() {
    let dir = TestDir::new("catalog");
    let server = start(&dir, |c| c.seed = false).await;
    let client = TestClient::new();
    let base = server.url();

    let body =
        json!({"sku": "MUG-1", "name": "Mug", "price_minor": 1200, "currency": "EUR", "stock": 3});
    let denied = client
        .post(&format!("{base}/v1/products"), &[], &body)
        .await;
    assert_eq!(denied.status, 403);

    let product = create(&client, &base, "MUG-1", 1200, 3).await;
    let id = product["id"].as_str().unwrap();
    let v1 = client.get(&format!("{base}/v1/products/{id}")).await;
    assert_eq!(v1.json["price_minor"], 1200);
    let v2 = client.get(&format!("{base}/v2/products/{id}")).await;
    assert_eq!(v2.json["price"], json!({"amount": 1200, "currency": "EUR"}));
    assert!(v2.json.get("price_minor").is_none());

    let dup = client
        .post(&format!("{base}/v1/products"), &[ADMIN], &body)
        .await;
    assert_eq!(dup.status, 409);
    assert_eq!(dup.json["type"], "https://weir.dev/problems/sku-taken");

    let bad =
        json!({"sku": "MUG-2", "name": "Mug", "price_minor": 1200, "currency": "euro", "stock": 3});
    let invalid = client
        .post(&format!("{base}/v1/products"), &[ADMIN], &bad)
        .await;
    assert_eq!(invalid.status, 422);
    assert_eq!(invalid.json["field"], "currency");
    let missing = client
        .post(
            &format!("{base}/v1/products"),
            &[ADMIN],
            &json!({"sku": "X"}),
        )
        .await;
    assert_eq!(missing.status, 422);
    assert_eq!(missing.json["field"], "name");
    let wrong_type = client
        .post(
            &format!("{base}/v1/products"),
            &[ADMIN],
            &json!({"sku": "X", "name": "n", "price_minor": "ten", "currency": "EUR", "stock": 1}),
        )
        .await;
    assert_eq!(wrong_type.status, 422);
    assert_eq!(wrong_type.json["field"], "price_minor");

    let update = json!({"sku": "MUG-1", "name": "Big mug", "price_minor": 1500, "currency": "EUR", "stock": 9});
    let updated = client
        .put(&format!("{base}/v1/products/{id}"), &[ADMIN], &update)
        .await;
    assert_eq!(updated.status, 200);
    assert_eq!(updated.json["stock"], 9);
    let missing = client
        .put(&format!("{base}/v1/products/nope"), &[ADMIN], &update)
        .await;
    assert_eq!(missing.status, 404);

    let deleted = client
        .call(
            http::Method::DELETE,
            &format!("{base}/v1/products/{id}"),
            &[ADMIN],
            None,
        )
        .await
        .unwrap();
    assert_eq!(deleted.status, 204);
    assert_eq!(
        client.get(&format!("{base}/v1/products/{id}")).await.status,
        404
    );

    let doc = client.get(&format!("{base}/openapi.json")).await;
    assert!(doc.json["paths"]["/v2/products/{id}"].is_object());
    assert!(doc.json["paths"]["/v1/reservations/{id}/commit"].is_object());
    assert_eq!(client.get(&format!("{base}/readyz")).await.status, 200);
    assert_eq!(client.get(&format!("{base}/nowhere")).await.status, 404);

    server.stop().await.unwrap();
}

#[tokio::test]
async fn admin_token_replaces_the_header_check() {
    let dir = TestDir::new("catalog");
    let server = start(&dir, |c| {
        c.seed = false;
        c.admin_token = Some("s3cret".into());
    })
    .await;
    let client = TestClient::new();
    let body = json!({"sku": "T-1", "name": "T", "price_minor": 1, "currency": "EUR", "stock": 1});
    let url = format!("{}/v1/products", server.url());
    assert_eq!(client.post(&url, &[ADMIN], &body).await.status, 403);
    assert_eq!(
        client
            .post(&url, &[("x-weir-admin-token", "wrong")], &body)
            .await
            .status,
        403
    );
    assert_eq!(
        client
            .post(&url, &[("x-weir-admin-token", "s3cret")], &body)
            .await
            .status,
        201
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn reservations_are_all_or_nothing_idempotent_and_reversible() {
    let dir = TestDir::new("catalog");
    let server = start(&dir, |c| c.seed = false).await;
    let client = TestClient::new();
    let base = server.url();
    let a = create(&client, &base, "A", 500, 5).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = create(&client, &base, "B", 250, 1).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stock = |id: String| {
        let client = client.clone();
        let base = base.clone();
        async move {
            client.get(&format!("{base}/v1/products/{id}")).await.json["stock"]
                .as_i64()
                .unwrap()
        }
    };

    // Short on B: nothing is taken from A either.
    let short = client
        .post(&format!("{base}/v1/reservations"), &[], &json!({"order_id": "o1", "items": [{"product_id": a, "quantity": 2}, {"product_id": b, "quantity": 2}]}))
        .await;
    assert_eq!(short.status, 409);
    assert_eq!(
        short.json["type"],
        "https://weir.dev/problems/insufficient-stock"
    );
    assert_eq!(stock(a.clone()).await, 5);

    let request = json!({"order_id": "o2", "items": [{"product_id": a, "quantity": 2}, {"product_id": b, "quantity": 1}]});
    let held = client
        .post(&format!("{base}/v1/reservations"), &[], &request)
        .await;
    assert_eq!(held.status, 201);
    assert_eq!(held.json["status"], "held");
    assert_eq!(held.json["total_minor"], 2 * 500 + 250);
    assert_eq!((stock(a.clone()).await, stock(b.clone()).await), (3, 0));

    let again = client
        .post(&format!("{base}/v1/reservations"), &[], &request)
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json["id"], held.json["id"]);
    assert_eq!(
        stock(a.clone()).await,
        3,
        "a repeated reservation takes nothing more"
    );

    let id = held.json["id"].as_str().unwrap();
    let released = client
        .post(
            &format!("{base}/v1/reservations/{id}/release"),
            &[],
            &json!({}),
        )
        .await;
    assert_eq!(released.json["status"], "released");
    assert_eq!((stock(a.clone()).await, stock(b.clone()).await), (5, 1));
    let twice = client
        .post(
            &format!("{base}/v1/reservations/{id}/release"),
            &[],
            &json!({}),
        )
        .await;
    assert_eq!(twice.status, 200);
    assert_eq!(
        stock(a.clone()).await,
        5,
        "releasing twice returns stock once"
    );
    let commit = client
        .post(
            &format!("{base}/v1/reservations/{id}/commit"),
            &[],
            &json!({}),
        )
        .await;
    assert_eq!(commit.status, 409);

    let r3 = client
        .post(
            &format!("{base}/v1/reservations"),
            &[],
            &json!({"order_id": "o3", "items": [{"product_id": a, "quantity": 5}]}),
        )
        .await;
    let id3 = r3.json["id"].as_str().unwrap();
    let committed = client
        .post(
            &format!("{base}/v1/reservations/{id3}/commit"),
            &[],
            &json!({}),
        )
        .await;
    assert_eq!(committed.json["status"], "committed");
    let no_release = client
        .post(
            &format!("{base}/v1/reservations/{id3}/release"),
            &[],
            &json!({}),
        )
        .await;
    assert_eq!(no_release.status, 409);
    assert_eq!(stock(a.clone()).await, 0);

    let invalid = client
        .post(
            &format!("{base}/v1/reservations"),
            &[],
            &json!({"order_id": "o4", "items": [{"product_id": a, "quantity": 0}]}),
        )
        .await;
    assert_eq!(invalid.status, 422);
    assert_eq!(invalid.json["field"], "items[0].quantity");
    let unknown = client
        .post(
            &format!("{base}/v1/reservations"),
            &[],
            &json!({"order_id": "o5", "items": [{"product_id": "nope", "quantity": 1}]}),
        )
        .await;
    assert_eq!(unknown.status, 422);
    assert_eq!(unknown.json["field"], "items[0].product_id");

    server.stop().await.unwrap();
}

#[tokio::test]
async fn concurrent_reservations_never_oversell() {
    let dir = TestDir::new("catalog");
    let server = start(&dir, |c| c.seed = false).await;
    let client = TestClient::new();
    let base = server.url();
    let id = create(&client, &base, "LAST", 100, 3).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut tasks = Vec::new();
    for i in 0..12 {
        let client = client.clone();
        let url = format!("{base}/v1/reservations");
        let body =
            json!({"order_id": format!("race-{i}"), "items": [{"product_id": id, "quantity": 1}]});
        tasks.push(tokio::spawn(async move {
            client.post(&url, &[], &body).await.status
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap().as_u16() {
            201 => won += 1,
            409 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(won, 3);
    let left = client.get(&format!("{base}/v1/products/{id}")).await;
    assert_eq!(left.json["stock"], 0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn uncommitted_reservations_expire_and_return_stock() {
    let dir = TestDir::new("catalog");
    let server = start(&dir, |c| {
        c.seed = false;
        c.reservation_ttl = Duration::ZERO;
        c.sweep_interval = Duration::from_millis(20);
    })
    .await;
    let client = TestClient::new();
    let base = server.url();
    let id = create(&client, &base, "EXP", 100, 2).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let held = client
        .post(
            &format!("{base}/v1/reservations"),
            &[],
            &json!({"order_id": "late", "items": [{"product_id": id, "quantity": 2}]}),
        )
        .await;
    assert_eq!(held.status, 201);
    let rid = held.json["id"].as_str().unwrap().to_owned();

    // The sweeper returns the stock; wait for it (bounded), then a late commit is refused.
    eventually(Duration::from_secs(10), async || {
        let r = client.get(&format!("{base}/v1/reservations/{rid}")).await;
        if r.json["status"] == "expired" {
            Ok(())
        } else {
            Err("reservation never expired".to_owned())
        }
    })
    .await;
    assert_eq!(
        client.get(&format!("{base}/v1/products/{id}")).await.json["stock"],
        2
    );
    let late = client
        .post(
            &format!("{base}/v1/reservations/{rid}/commit"),
            &[],
            &json!({}),
        )
        .await;
    assert_eq!(late.status, 409);
    server.stop().await.unwrap();
}
