use super::*;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

/// A server connection and a tungstenite client over real loopback TCP.
async fn pair() -> (WsConnection, WebSocketStream<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap());
    let (client, accepted) = tokio::join!(client, listener.accept());
    let server = WsConnection::new(accepted.unwrap().0, &[], WebSocketConfig::default());
    let client = WebSocketStream::from_raw_socket(client.unwrap(), Role::Client, None).await;
    (server, client)
}

fn chat(id: u64, text: &str) -> Frame {
    Frame::from_text(&format!(r#"{{"id":{id},"text":"{text}"}}"#), id)
}

/// Drives the connection until it reads a message.
async fn next_message(server: &mut WsConnection) -> Message {
    loop {
        match server.next_event(true).await {
            Event::Message(message) => return message,
            Event::Drained => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// More than the socket buffers hold, so writes are partial and resume mid-frame; the client
/// must still read every frame, whole and in order.
#[tokio::test]
async fn partial_writes_resume_exactly_where_they_stopped() {
    let (mut server, mut client) = pair().await;
    let text = "x".repeat(3000);
    let frames = 2000u64;
    for id in 1..=frames {
        server.queue(chat(id, &text));
    }
    let reader = tokio::spawn(async move {
        let mut ids = Vec::new();
        while ids.len() < frames as usize {
            let message = client.next().await.unwrap().unwrap();
            let value: serde_json::Value =
                serde_json::from_str(message.to_text().unwrap()).unwrap();
            assert_eq!(value["text"].as_str().unwrap().len(), 3000);
            ids.push(value["id"].as_u64().unwrap());
        }
        ids
    });
    server.flush().await.unwrap();
    assert_eq!(server.queued_bytes(), 0);
    let ids = reader.await.unwrap();
    assert_eq!(ids, (1..=frames).collect::<Vec<_>>());
}

/// Full duplex: with megabytes queued for a client that does not read, the connection still
/// reads what the client sends, and the stall is visible to the caller.
#[tokio::test]
async fn reads_go_on_while_output_waits_for_a_full_socket() {
    let (mut server, mut client) = pair().await;
    let text = "y".repeat(4000);
    for id in 1..=2000 {
        server.queue(chat(id, &text));
    }
    assert!(!server.try_flush().unwrap(), "8 MB do not fit the socket");
    assert!(server.stalled_since().is_some());
    for i in 0..100 {
        client.send(Message::text(format!("m{i}"))).await.unwrap();
    }
    for i in 0..100 {
        let message = tokio::time::timeout(Duration::from_secs(10), next_message(&mut server))
            .await
            .expect("the client's messages are read while output waits");
        assert_eq!(message, Message::text(format!("m{i}")));
    }
    assert!(server.queued_bytes() > 0, "the client still reads nothing");
}

/// A client that keeps the socket busy must not keep the task from yielding: on this
/// single-threaded runtime, the test itself only gets to run again if the reading task yields.
#[tokio::test]
async fn a_flooding_client_cannot_hold_the_thread() {
    let (mut server, client) = pair().await;
    let mut raw = client.into_inner().into_std().unwrap();
    raw.set_nonblocking(false).unwrap();
    // Masked, empty pings, as fast as a blocking thread can write them.
    std::thread::spawn(move || {
        let pings = [0x89u8, 0x80, 1, 2, 3, 4].repeat(10_000);
        while std::io::Write::write_all(&mut raw, &pings).is_ok() {}
    });
    let (done, watchdog) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if watchdog.recv_timeout(Duration::from_secs(20)).is_err() {
            eprintln!("the reading task never yielded to the runtime");
            std::process::exit(1);
        }
    });
    let reader = tokio::spawn(async move {
        loop {
            match server.next_event(true).await {
                Event::Message(_) | Event::Drained => {}
                _ => return,
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    done.send(()).unwrap();
    assert!(!reader.is_finished(), "the flood is still being read");
    reader.abort();
}

/// A ping flood from a client that never reads leaves one pong queued, not one per ping.
#[tokio::test]
async fn a_ping_flood_queues_one_pong() {
    let (mut server, mut client) = pair().await;
    // Fill the client's receive side first, so the pongs cannot be written.
    for id in 1..=2000 {
        server.queue(chat(id, &"z".repeat(4000)));
    }
    assert!(!server.try_flush().unwrap());
    let queued = server.outbox.len();
    for i in 0..5000u32 {
        client
            .feed(Message::Ping(i.to_be_bytes().to_vec().into()))
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    for _ in 0..5000 {
        let message = tokio::time::timeout(Duration::from_secs(10), next_message(&mut server))
            .await
            .expect("every ping is read");
        assert!(matches!(message, Message::Ping(_)));
    }
    assert!(
        server.outbox.len() <= queued + 1,
        "at most one pong more: {} items vs {queued}",
        server.outbox.len()
    );
}

/// After the server's close frame, lingering sends FIN (the client reads the close, then the
/// end of the stream), reads past input the server never processed, and ends as soon as the
/// client closes its side — long before its own limit.
#[tokio::test]
async fn linger_shuts_writing_drains_input_and_ends_when_the_client_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut server, client) = pair().await;
    let mut raw = client.into_inner();
    // Unread input, as after a frame too big to read.
    raw.write_all(&[0u8; 64 * 1024]).await.unwrap();
    server.queue_close(CloseFrame {
        code: CloseCode::Size,
        reason: "too big".into(),
    });
    server.flush().await.unwrap();
    let linger = tokio::spawn(async move { server.linger(Duration::from_secs(600)).await });
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut received))
        .await
        .expect("the server's side ends (FIN)")
        .unwrap();
    assert_eq!(
        &received[..2],
        &[0x88, 2 + 7],
        "a close frame with code and reason"
    );
    assert_eq!(&received[2..4], &1009u16.to_be_bytes());
    drop(raw);
    tokio::time::timeout(Duration::from_secs(10), linger)
        .await
        .expect("linger ends when the client closes")
        .unwrap();
}

/// A ping is answered with a pong carrying its payload, queued behind frames already waiting.
#[tokio::test]
async fn pings_are_answered_in_order() {
    let (mut server, mut client) = pair().await;
    client
        .send(Message::Ping(b"hi".to_vec().into()))
        .await
        .unwrap();
    server.queue(chat(1, "before the pong"));
    let received = next_message(&mut server).await;
    assert!(matches!(received, Message::Ping(_)));
    server.flush().await.unwrap();
    let first = client.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("before the pong"));
    let second = client.next().await.unwrap().unwrap();
    assert_eq!(second, Message::Pong(b"hi".to_vec().into()));
}
