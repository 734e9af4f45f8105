//! The S3 state store against a real S3 API (moto; FORMATS.md, "Testing against AWS"): plain
//! and conditional writes, compare-and-swap under contention, pagination, and errors.
//!
//! moto 5.2.5 honours `If-None-Match: *` and `If-Match: <etag>` on PutObject (412
//! PreconditionFailed; 404 NoSuchKey for `If-Match` on a missing key), but checks them apart
//! from the write: its threaded server looks the key up, then stores it, and two racing
//! conditional writes can both pass. Measured: about one round in 200 of 16 racing
//! `If-None-Match` puts had two winners, and the compare-and-swap counter below lost an
//! increment in 2 runs of 15. S3 decides each conditional write atomically. So the two
//! contention tests run against [`SerialMoto`] — the same moto application, served one request
//! at a time, which makes each request atomic as S3's are — while the replicas still race
//! through their own clients and connections. Everything else runs against
//! [`MotoServer`] as the other integration tests do.

use crate::common;

use std::time::Instant;

use aws_sdk_s3::Client;
use common::MotoServer;
use driftd::s3_uri::S3Uri;
use driftd::store::{S3Store, StateStore, StoreError};

fn uri(text: &str) -> S3Uri {
    S3Uri::parse(text).unwrap()
}

/// A store under `s3://<bucket>/driftd/state`, in a bucket made for the test.
async fn store_with(s3: Client, bucket: &str) -> (Client, StateStore) {
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    let store = S3Store::new(s3.clone(), &uri(&format!("s3://{bucket}/driftd/state"))).unwrap();
    (s3, store.into())
}

async fn store(moto: &MotoServer, bucket: &str) -> (Client, StateStore) {
    store_with(moto.s3().await, bucket).await
}

/// Another replica's view of the same store: its own client and connections.
async fn replica(moto: &SerialMoto, bucket: &str) -> StateStore {
    S3Store::new(
        moto.s3().await,
        &uri(&format!("s3://{bucket}/driftd/state")),
    )
    .unwrap()
    .into()
}

/// moto's application (what `moto_server` serves) on a single-threaded server, so that it
/// handles one request at a time, each atomically, as S3 does (see the top of this file).
/// Answers HTTP/1.0 and closes every connection, so no client holds the server. Killed when
/// dropped.
struct SerialMoto {
    child: std::process::Child,
    endpoint_url: String,
}

const SERIAL_MOTO: &str = r#"
import os, sys
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication, MotoRequestHandler, create_backend_app)
port = int(sys.argv[1])
os.environ["MOTO_PORT"] = str(port)
run_simple("127.0.0.1", port, DomainDispatcherApplication(create_backend_app),
           threaded=False, request_handler=MotoRequestHandler)
"#;

impl SerialMoto {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let child = std::process::Command::new(common::python())
            .args(["-c", SERIAL_MOTO, &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start moto's application on a single-threaded server");
        let server = SerialMoto {
            child,
            endpoint_url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto did not listen on {port} within 60 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        server
    }

    /// A client as [`MotoServer::s3`] makes one.
    async fn s3(&self) -> Client {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint_url)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
            .load()
            .await;
        let config = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build();
        Client::from_conf(config)
    }
}

impl Drop for SerialMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn object_keys(s3: &Client, bucket: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut pages = s3.list_objects_v2().bucket(bucket).into_paginator().send();
    while let Some(page) = pages.next().await {
        keys.extend(
            page.unwrap()
                .contents()
                .iter()
                .filter_map(|o| o.key().map(String::from)),
        );
    }
    keys
}

/// Deleting many keys takes one DeleteObjects request per 1000: 1001 keys cross the boundary,
/// and a key that does not exist is no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_many_deletes_every_key_across_requests_of_1000() {
    let moto = MotoServer::start();
    let (_, store) = store(&moto, "store-delete-many").await;
    let keys: Vec<String> = (0..1001).map(|i| format!("parts/w/{i:05}")).collect();
    for key in &keys {
        store.put(key, Vec::new()).await.unwrap();
    }
    store.put("parts/other/kept", Vec::new()).await.unwrap();
    let mut doomed = keys.clone();
    doomed.push("parts/w/never".into());
    store.delete_many(&doomed).await.unwrap();
    assert_eq!(store.list("parts/").await.unwrap(), ["parts/other/kept"]);
    store.delete_many(&[]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_list_and_delete() {
    let moto = MotoServer::start();
    let bucket = "store-round-trip";
    let (s3, store) = store(&moto, bucket).await;
    assert_eq!(store.describe(), "s3://store-round-trip/driftd/state");

    assert_eq!(store.get("ledger/a1").await.unwrap(), None);
    for key in [
        "parts/3/ep/1700000000/bb",
        "ledger/b2",
        "parts/30/x",
        "ledger/a1",
        "parts/3/ep/1700000000/aa",
        "lease",
    ] {
        store.put(key, key.as_bytes().to_vec()).await.unwrap();
    }
    store.put("ledger/a1", b"second".to_vec()).await.unwrap();
    assert_eq!(
        store.get("ledger/a1").await.unwrap().as_deref(),
        Some(&b"second"[..])
    );
    // Objects beside the store: outside its prefix, under a longer name that starts the same,
    // and a console "folder" marker, which no key can name.
    for foreign in ["other/x", "driftd/stateful/y", "driftd/state/"] {
        s3.put_object()
            .bucket(bucket)
            .key(foreign)
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b""))
            .send()
            .await
            .unwrap();
    }

    let all = [
        "lease",
        "ledger/a1",
        "ledger/b2",
        "parts/3/ep/1700000000/aa",
        "parts/3/ep/1700000000/bb",
        "parts/30/x",
    ];
    assert_eq!(store.list("").await.unwrap(), all);
    assert_eq!(store.list("parts/3").await.unwrap(), all[3..]);
    assert_eq!(store.list("parts/3/").await.unwrap(), all[3..5]);
    assert_eq!(store.list("ledger/b").await.unwrap(), ["ledger/b2"]);
    assert_eq!(store.list("nothing/").await.unwrap(), Vec::<String>::new());
    // Keys are objects under the prefix, named as they were put.
    let got = s3
        .get_object()
        .bucket(bucket)
        .key("driftd/state/parts/30/x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"parts/30/x"
    );

    store.delete("ledger/a1").await.unwrap();
    store.delete("ledger/a1").await.unwrap();
    store.delete("never/was").await.unwrap();
    assert_eq!(store.get("ledger/a1").await.unwrap(), None);
    assert_eq!(store.list("ledger/").await.unwrap(), ["ledger/b2"]);

    // A store at the bucket's root sees every object a key can name.
    let root: StateStore = S3Store::new(s3.clone(), &uri(&format!("s3://{bucket}")))
        .unwrap()
        .into();
    assert_eq!(root.describe(), "s3://store-round-trip");
    let mut expected: Vec<String> = all
        .iter()
        .filter(|k| **k != "ledger/a1")
        .map(|k| format!("driftd/state/{k}"))
        .chain(["driftd/stateful/y".into(), "other/x".into()])
        .collect();
    expected.sort();
    assert_eq!(root.list("").await.unwrap(), expected);
    assert_eq!(
        root.get("driftd/state/lease").await.unwrap().as_deref(),
        Some(&b"lease"[..])
    );

    // Bad keys are refused before anything is sent.
    let version = store.get_versioned("lease").await.unwrap().unwrap().1;
    for key in [
        "", "/abs", "a//b", "a/", "..", "a/../b", ".hidden", "a/.tmp",
    ] {
        let errors = [
            store.put(key, vec![]).await.unwrap_err(),
            store.put_new(key, vec![]).await.unwrap_err(),
            store.get(key).await.unwrap_err(),
            store.get_versioned(key).await.unwrap_err(),
            store.replace(key, vec![], &version).await.unwrap_err(),
            store.delete(key).await.unwrap_err(),
        ];
        for error in errors {
            assert!(
                matches!(&error, StoreError::InvalidKey { key: k, .. } if k == key),
                "{key:?}: {error}"
            );
            assert!(!error.is_retryable());
        }
    }
    assert!(matches!(
        store.list("../").await,
        Err(StoreError::InvalidKey { .. })
    ));
    assert_eq!(object_keys(&s3, bucket).await.len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_new_creates_once() {
    let moto = MotoServer::start();
    let (_s3, store) = store(&moto, "store-put-new").await;
    assert!(store.put_new("lease/w1", b"first".to_vec()).await.unwrap());
    assert!(!store.put_new("lease/w1", b"second".to_vec()).await.unwrap());
    assert_eq!(
        store.get("lease/w1").await.unwrap().as_deref(),
        Some(&b"first"[..])
    );
    store.delete("lease/w1").await.unwrap();
    assert!(store.put_new("lease/w1", b"third".to_vec()).await.unwrap());
    assert_eq!(
        store.get("lease/w1").await.unwrap().as_deref(),
        Some(&b"third"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_writes_only_over_the_expected_version() {
    let moto = MotoServer::start();
    let (_s3, store) = store(&moto, "store-replace").await;
    store.put("rules/r1", b"v1".to_vec()).await.unwrap();
    let (bytes, v1) = store.get_versioned("rules/r1").await.unwrap().unwrap();
    assert_eq!(bytes, b"v1");

    assert!(
        store
            .replace("rules/r1", b"v2".to_vec(), &v1)
            .await
            .unwrap()
    );
    let (bytes, v2) = store.get_versioned("rules/r1").await.unwrap().unwrap();
    assert_eq!(bytes, b"v2");
    assert_ne!(v1, v2);

    // v1 is stale now (412): refused, and the content stays.
    assert!(
        !store
            .replace("rules/r1", b"v3".to_vec(), &v1)
            .await
            .unwrap()
    );
    assert_eq!(store.get("rules/r1").await.unwrap().unwrap(), b"v2");

    // A plain put also makes an earlier version stale.
    store.put("rules/r1", b"v4".to_vec()).await.unwrap();
    assert!(
        !store
            .replace("rules/r1", b"v5".to_vec(), &v2)
            .await
            .unwrap()
    );

    // A deleted or never-written key has no version to match (404 NoSuchKey): refused, and
    // nothing is created.
    let (_, v4) = store.get_versioned("rules/r1").await.unwrap().unwrap();
    store.delete("rules/r1").await.unwrap();
    assert!(
        !store
            .replace("rules/r1", b"v6".to_vec(), &v4)
            .await
            .unwrap()
    );
    assert_eq!(store.get("rules/r1").await.unwrap(), None);
    assert!(
        !store
            .replace("rules/none", b"x".to_vec(), &v4)
            .await
            .unwrap()
    );
    assert_eq!(store.get_versioned("rules/none").await.unwrap(), None);
}

/// Eight replicas race to create one key: exactly one wins, and the key holds its bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_put_new_has_exactly_one_winner() {
    let moto = SerialMoto::start();
    let bucket = "store-put-new-race";
    let (_s3, store) = store_with(moto.s3().await, bucket).await;
    let mut replicas = Vec::new();
    for _ in 0..8 {
        replicas.push(replica(&moto, bucket).await);
    }
    let mut tasks = tokio::task::JoinSet::new();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(replicas.len()));
    for (i, replica) in replicas.into_iter().enumerate() {
        let start = start.clone();
        tasks.spawn(async move {
            start.wait().await;
            let body = format!("replica {i}").into_bytes();
            (i, replica.put_new("lease/w1", body).await.unwrap())
        });
    }
    let winners: Vec<usize> = tasks
        .join_all()
        .await
        .into_iter()
        .filter_map(|(i, won)| won.then_some(i))
        .collect();
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(
        store.get("lease/w1").await.unwrap().unwrap(),
        format!("replica {}", winners[0]).into_bytes()
    );
}

/// Replicas increment one counter by read, add one, compare-and-swap, again on conflict: no
/// increment may be lost. Without the `If-Match` this ends far below the total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_through_replace_are_all_kept() {
    const REPLICAS: u64 = 6;
    const EACH: u64 = 8;
    let moto = SerialMoto::start();
    let bucket = "store-cas-counter";
    let (_s3, store) = store_with(moto.s3().await, bucket).await;
    store.put("counter", b"0".to_vec()).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..REPLICAS {
        let replica = replica(&moto, bucket).await;
        tasks.spawn(async move {
            let mut conflicts = 0u64;
            for _ in 0..EACH {
                loop {
                    let (bytes, version) = replica.get_versioned("counter").await.unwrap().unwrap();
                    let n: u64 = std::str::from_utf8(&bytes).unwrap().parse().unwrap();
                    let next = (n + 1).to_string().into_bytes();
                    if replica.replace("counter", next, &version).await.unwrap() {
                        break;
                    }
                    conflicts += 1;
                }
            }
            conflicts
        });
    }
    let conflicts: u64 = tasks.join_all().await.into_iter().sum();
    eprintln!("{conflicts} compare-and-swap conflicts retried");
    let total = store.get("counter").await.unwrap().unwrap();
    assert_eq!(
        std::str::from_utf8(&total).unwrap(),
        (REPLICAS * EACH).to_string(),
        "lost increments ({conflicts} conflicts retried)"
    );
}

/// ListObjectsV2 returns at most 1,000 keys a page; the store follows the continuation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_follows_pages_past_1000_keys() {
    const KEYS: usize = 1050;
    const UPLOADERS: usize = 16;
    let moto = MotoServer::start();
    let bucket = "store-pages";
    let (s3, store) = store(&moto, bucket).await;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for uploader in 0..UPLOADERS {
        let store = store.clone();
        tasks.spawn(async move {
            for i in (uploader..KEYS).step_by(UPLOADERS) {
                store
                    .put(&format!("ledger/{i:05}"), vec![b'x'])
                    .await
                    .unwrap();
            }
        });
    }
    tasks.join_all().await;
    eprintln!("{KEYS} puts took {:?}", started.elapsed());
    store.put("other", vec![]).await.unwrap();

    // The emulator does page at 1,000, so one call would not have been enough.
    let first_page = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix("driftd/state/ledger/")
        .send()
        .await
        .unwrap();
    assert_eq!(first_page.contents().len(), 1000);
    assert_eq!(first_page.is_truncated(), Some(true));

    let expected: Vec<String> = (0..KEYS).map(|i| format!("ledger/{i:05}")).collect();
    assert_eq!(store.list("ledger/").await.unwrap(), expected);
    let all = store.list("").await.unwrap();
    assert_eq!(all.len(), KEYS + 1);
    assert_eq!(all.last().map(String::as_str), Some("other"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_store_and_say_whether_to_retry() {
    let moto = MotoServer::start();
    let s3 = moto.s3().await;
    let missing: StateStore = S3Store::new(s3, &uri("s3://no-such-bucket/driftd"))
        .unwrap()
        .into();
    for error in [
        missing.get("ledger/a").await.unwrap_err(),
        missing.put("ledger/a", vec![]).await.unwrap_err(),
        missing.put_new("ledger/a", vec![]).await.unwrap_err(),
        missing.list("ledger/").await.unwrap_err(),
    ] {
        let text = error.to_string();
        assert!(
            text.contains("s3://no-such-bucket/driftd") && text.contains("NoSuchBucket"),
            "{text}"
        );
        assert!(text.contains("\"ledger/"), "{text}");
        assert!(!error.is_retryable(), "{text}");
    }

    // Nothing listens: a transport failure, worth retrying later.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = aws_sdk_s3::config::Builder::from(&moto.sdk_config().await)
        .endpoint_url(format!("http://127.0.0.1:{closed_port}"))
        .force_path_style(true)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .build();
    let unreachable: StateStore =
        S3Store::new(Client::from_conf(config), &uri("s3://some-bucket/driftd"))
            .unwrap()
            .into();
    let error = unreachable.get("ledger/a").await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("state store s3://some-bucket/driftd: get \"ledger/a\" failed:"),
        "{error}"
    );
}

/// A state-store read whose body stops flowing (a half-open connection after the response
/// headers) fails, retryably, instead of hanging the finaliser: the SDK's stalled-stream
/// protection (on by default; driftd must not turn it off) gives up after its grace period.
/// The endpoint is a fault injector on 127.0.0.1: it answers every request with the headers
/// of a 1,000-byte object and ten bytes of it, then nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_object_body_fails_the_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nETag: \"e\"\r\nContent-Type: application/octet-stream\r\n\r\n";
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&[b'x'; 10]).await;
                // Hold the connection open, sending nothing more.
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            });
        }
    });
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "k", "s", None, None, "test",
        ))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .force_path_style(true)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .build();
    let store: StateStore = S3Store::new(
        Client::from_conf(config),
        &uri("s3://stalled-bucket/driftd"),
    )
    .unwrap()
    .into();
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), store.get("ledger/a"))
        .await
        .expect("the read gives up on its own");
    let error = read.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert!(error.to_string().contains("stalled"), "{error}");
}
