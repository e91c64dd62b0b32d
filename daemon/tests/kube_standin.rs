//! The API stand-in's own contract, through kube's client: what the adapter tests and kubectl
//! rely on it to get right.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

mod support;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
use kube_standin::StandIn;
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_with_continue_and_filter_by_label() {
    let standin = StandIn::start().await.unwrap();
    for i in 0..7 {
        let app = if i % 2 == 0 { "even" } else { "odd" };
        standin.create(running_pod(&format!("p{i}"), "n1", None, json!({"app": app}))).unwrap();
    }
    let pods: Api<Pod> = Api::namespaced(client(&standin), "default");
    let mut names = Vec::new();
    let mut params = ListParams::default().limit(3);
    loop {
        let page = pods.list(&params).await.unwrap();
        assert!(page.items.len() <= 3);
        names.extend(page.items.iter().filter_map(|p| p.metadata.name.clone()));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    assert_eq!(names, ["p0", "p1", "p2", "p3", "p4", "p5", "p6"]);
    let even = pods.list(&ListParams::default().labels("app=even")).await.unwrap();
    assert_eq!(even.items.len(), 4);
    let on_node = pods.list(&ListParams::default().fields("spec.nodeName=n1,metadata.name!=p0")).await.unwrap();
    assert_eq!(on_node.items.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_update_conflicts_and_an_expired_watch_gets_410() {
    let standin = StandIn::start().await.unwrap();
    standin.create(running_pod("p", "n1", None, json!({"app": "x"}))).unwrap();
    let pods: Api<Pod> = Api::namespaced(client(&standin), "default");
    let read = pods.get("p").await.unwrap();
    let mut first = read.clone();
    first.metadata.labels.get_or_insert_default().insert("v".into(), "1".into());
    pods.replace("p", &PostParams::default(), &first).await.unwrap();
    let mut stale = read;
    stale.metadata.labels.get_or_insert_default().insert("v".into(), "2".into());
    match pods.replace("p", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(status)) => assert_eq!((status.code, status.reason.as_str()), (409, "Conflict")),
        other => panic!("a stale write must conflict, got {other:?}"),
    }

    let old = read_version(&pods).await;
    standin.create(running_pod("q", "n1", None, json!({"app": "x"}))).unwrap();
    standin.compact();
    let mut stream = pods.watch(&WatchParams::default(), &old).await.unwrap().boxed();
    match stream.try_next().await {
        Ok(Some(WatchEvent::Error(e))) => assert_eq!(e.code, 410),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
}

async fn read_version(pods: &Api<Pod>) -> String {
    pods.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap()
}
