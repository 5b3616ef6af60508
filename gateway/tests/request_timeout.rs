//! A request whose body never arrives in full gets 408 once its time
//! budget and a second of grace have passed, instead of holding its
//! connection open.

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn an_unfinished_body_gets_408() {
    let platform = common::start_with(|settings| {
        settings.request_timeout = Duration::from_millis(500);
    })
    .await;
    let address = platform.base.trim_start_matches("http://").to_owned();
    let token = common::token("slow-client", true);
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /api/v1/users HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"name\":\"a\""
    );
    stream.write_all(head.as_bytes()).await.unwrap();

    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("the gateway answered and closed the connection within 10 s");
    read.unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("REQUEST_TIMEOUT"), "{text}");
}
