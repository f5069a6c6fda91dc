//! Large bodies stream through the gateway in both directions without being
//! buffered: 256 MiB generated on the fly by one side and counted by the
//! other, while the process's peak resident memory stays far below the body
//! size (client, gateway and upstream all live in this test process).

mod support;

use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use support::*;

const CHUNK: usize = 64 * 1024;
const TOTAL: u64 = 256 * 1024 * 1024;
/// Peak memory may grow by this much at most: a small fraction of the body.
const GROWTH_BOUND_KIB: u64 = 64 * 1024;

/// `TOTAL` bytes as a stream of one shared 64 KiB chunk (cloning `Bytes` is a
/// reference count, so the generator itself holds one chunk).
fn generated_body() -> TestBody {
    let chunk = Bytes::from(vec![b'w'; CHUNK]);
    let n = TOTAL / CHUNK as u64;
    let frames = stream::iter((0..n).map(move |_| Ok::<_, BoxError>(Frame::data(chunk.clone()))));
    StreamBody::new(frames).boxed_unsync()
}

async fn gateway_to(up: &Upstream) -> TestGateway {
    let yaml = config(&format!(
        "upstreams:\n  big: {{ endpoints: [{}] }}\nroutes:\n  - name: big\n    match: {{ path_prefix: / }}\n    upstream: big\n    limits: {{ max_body_bytes: 1GiB }}\n",
        up.addr
    ));
    TestGateway::start(&yaml).await
}

#[tokio::test]
async fn large_upload_streams_with_bounded_memory() {
    let up = echo_upstream("sink").await;
    let gw = gateway_to(&up).await;
    // Warm up pools and buffers so the baseline includes them.
    assert_eq!(get(&gw.url("/warm")).await.status, 200);
    let before = proc_status_kib("VmHWM");

    let r = send(
        Request::post(gw.url("/upload"))
            .body(generated_body())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["body_len"],
        TOTAL,
        "the upstream counted every byte"
    );

    let after = proc_status_kib("VmHWM");
    eprintln!("VmHWM before {before} KiB, after {after} KiB");
    assert!(
        after.saturating_sub(before) < GROWTH_BOUND_KIB,
        "peak RSS grew by {} KiB while streaming {} MiB",
        after - before,
        TOTAL >> 20
    );
}

#[tokio::test]
async fn large_download_streams_with_bounded_memory() {
    let up = start_upstream(|req| async move {
        if req.uri().path() != "/download" {
            return text_response(200, "small");
        }
        Response::builder()
            .header("content-type", "application/octet-stream")
            .body(generated_body())
            .unwrap()
    })
    .await;
    let gw = gateway_to(&up).await;
    assert_eq!(get(&gw.url("/warm")).await.status, 200);
    let before = proc_status_kib("VmHWM");

    let resp = client()
        .request(Request::get(gw.url("/download")).body(empty()).unwrap())
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut counted = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(d) = frame.expect("body frame").data_ref() {
            counted += d.len() as u64;
        }
    }
    assert_eq!(counted, TOTAL, "the client counted every byte");

    let after = proc_status_kib("VmHWM");
    eprintln!("VmHWM before {before} KiB, after {after} KiB");
    assert!(
        after.saturating_sub(before) < GROWTH_BOUND_KIB,
        "peak RSS grew by {} KiB while streaming {} MiB",
        after - before,
        TOTAL >> 20
    );
}
