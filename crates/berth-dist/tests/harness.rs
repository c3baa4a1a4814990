//! The harness itself: an image uploaded with plain HTTP is served back byte for byte.
mod common;
use common::*;

#[tokio::test]
async fn uploaded_image_is_served() {
    let reg = Registry::start().await;
    let l = layer(&[("a.txt", b"hello")], Compression::Gzip);
    let (manifest, d) = reg
        .put_image("t/a", "v1", std::slice::from_ref(&l), ("linux", "amd64"))
        .await;
    let got = reqwest::Client::new()
        .get(format!("{}/v2/t/a/manifests/{d}", reg.url()))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&got[..], &manifest[..]);
    assert_eq!(
        std::fs::read(reg.blob_path(&digest(&l.blob))).unwrap(),
        l.blob
    );
}
