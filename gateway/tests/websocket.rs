//! WebSocket through the gateway: the `Upgrade` handshake is forwarded, the
//! connection becomes a tunnel, and a tunnel opened before a reload keeps
//! working after it (even when the reload replaced its route and upstream).

mod support;

use futures_util::{SinkExt, StreamExt};
use http::Response;
use hyper_util::rt::TokioIo;
use support::*;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// An upstream that accepts WebSocket upgrades and echoes each message back
/// prefixed with `name`.
async fn ws_upstream(name: &'static str) -> Upstream {
    start_upstream(move |mut req| async move {
        let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
            return text_response(400, "websocket only");
        };
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(upgraded) = upgrade.await else { return };
            let mut ws =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            // Text is echoed; a close (or anything else) ends the session.
            while let Some(Ok(Message::Text(t))) = ws.next().await {
                if ws
                    .send(Message::text(format!("{name}: {t}")))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        Response::builder()
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
            .body(empty())
            .unwrap()
    })
    .await
}

fn ws_config(upstream: &str, addr: std::net::SocketAddr, path: &str) -> String {
    config(&format!(
        "upstreams:\n  {upstream}: {{ endpoints: [{addr}] }}\nroutes:\n  - name: ws\n    match: {{ path_prefix: {path} }}\n    upstream: {upstream}\n"
    ))
}

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

async fn round_trip(ws: &mut Ws, text: &str) -> String {
    ws.send(Message::text(text)).await.expect("send");
    let msg = within("websocket echo", ws.next())
        .await
        .expect("stream open")
        .expect("message");
    msg.into_text().expect("text").to_string()
}

#[tokio::test]
async fn websocket_is_tunnelled() {
    let up = ws_upstream("one").await;
    let gw = TestGateway::start(&ws_config("one", up.addr, "/ws")).await;
    let (mut ws, resp) = connect_async(format!("ws://{}/ws/chat", gw.addr()))
        .await
        .expect("websocket handshake");
    assert_eq!(resp.status(), 101);
    assert!(resp.headers().get("x-request-id").is_some());
    for i in 0..20 {
        assert_eq!(
            round_trip(&mut ws, &format!("m{i}")).await,
            format!("one: m{i}")
        );
    }
    ws.close(None).await.expect("close");
}

#[tokio::test]
async fn websocket_survives_reloads() {
    let one = ws_upstream("one").await;
    let two = ws_upstream("two").await;
    let gw = TestGateway::start(&ws_config("one", one.addr, "/ws")).await;
    let (mut old, _) = connect_async(format!("ws://{}/ws", gw.addr()))
        .await
        .expect("websocket handshake");
    assert_eq!(round_trip(&mut old, "before").await, "one: before");

    // The new config sends /ws elsewhere and drops the old upstream entirely.
    gw.replace_config(&ws_config("two", two.addr, "/ws"))
        .await
        .expect("reload");
    assert_eq!(
        round_trip(&mut old, "after").await,
        "one: after",
        "the open tunnel is untouched"
    );

    let (mut new, _) = connect_async(format!("ws://{}/ws", gw.addr()))
        .await
        .expect("websocket handshake");
    assert_eq!(
        round_trip(&mut new, "fresh").await,
        "two: fresh",
        "new connections follow the new config"
    );

    // More reloads, including one that removes the route.
    gw.replace_config(&ws_config("two", two.addr, "/elsewhere"))
        .await
        .expect("reload");
    gw.replace_config(&ws_config("one", one.addr, "/other"))
        .await
        .expect("reload");
    for i in 0..5 {
        assert_eq!(
            round_trip(&mut old, &format!("o{i}")).await,
            format!("one: o{i}")
        );
        assert_eq!(
            round_trip(&mut new, &format!("n{i}")).await,
            format!("two: n{i}")
        );
    }
    assert!(
        connect_async(format!("ws://{}/ws", gw.addr()))
            .await
            .is_err(),
        "the route is gone for new handshakes"
    );
    old.close(None).await.expect("close");
    new.close(None).await.expect("close");
}

#[tokio::test]
async fn open_websockets_count_against_max_connections() {
    let up = ws_upstream("one").await;
    let yaml = format!(
        "{}limits:\n  max_connections: 2\n",
        ws_config("one", up.addr, "/ws")
    );
    let gw = TestGateway::start(&yaml).await;
    let url = format!("ws://{}/ws", gw.addr());
    let (mut first, _) = connect_async(&url).await.expect("first websocket");
    let (mut second, _) = connect_async(&url).await.expect("second websocket");
    assert_eq!(round_trip(&mut first, "1").await, "one: 1");
    assert_eq!(round_trip(&mut second, "2").await, "one: 2");
    let m = gw.metrics().await;
    assert_eq!(metric(&m, "weir_active_connections"), Some(2.0), "{m}");

    // Both slots are held by tunnels: a third handshake waits.
    let third_url = url.clone();
    let third = tokio::spawn(async move { connect_async(third_url).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served with max_connections 2"
    );

    // Closing a WebSocket frees its slot.
    first.close(None).await.expect("close");
    while first.next().await.is_some() {}
    drop(first);
    let (mut third, _) = within("the third handshake", third)
        .await
        .unwrap()
        .expect("third websocket");
    assert_eq!(round_trip(&mut third, "3").await, "one: 3");
    assert_eq!(round_trip(&mut second, "2 again").await, "one: 2 again");
}
