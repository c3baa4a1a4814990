//! The server starts on local storage, answers the version check, and takes a push it can serve
//! back.

#[tokio::test]
async fn base_endpoint_answers() {
    let s = crate::common::Server::local().await;
    let c = crate::common::Client::new(&s.url);
    let r = c.get("/v2/").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
    assert_eq!(r.text().await.unwrap(), "{}");
}

#[tokio::test]
async fn pushed_image_pulls_back() {
    let s = crate::common::Server::local().await;
    let c = crate::common::Client::new(&s.url);
    let layer = b"layer bytes".repeat(1000);
    let md = c.push_image("smoke/img", "v1", &layer).await;
    let r = c.get("/v2/smoke/img/manifests/v1").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["docker-content-digest"], md.as_str());
    let r = c
        .get(&format!(
            "/v2/smoke/img/blobs/{}",
            crate::common::digest(&layer)
        ))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), layer.as_slice());
}
