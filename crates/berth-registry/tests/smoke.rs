//! The server starts on local storage and answers the version check.

mod common;

#[tokio::test]
async fn base_endpoint_answers() {
    let s = common::Server::local().await;
    let c = common::Client::new(&s.url);
    let r = c.get("/v2/").await;
    assert!(r.status().is_success() || r.status().as_u16() == 405);
}
