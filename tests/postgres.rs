//! Scale-out on Postgres: two server processes sharing one database, 100 concurrent branches, a database
//! outage (503, then recovery with nothing lost), a database that comes up after the server, and TLS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::db::{PostgresDb, TestDb};
use common::process::ServerProcess;
use common::proxy::Proxy;
use common::{assert_error, upstream, TestApp};
use serde_json::{json, Value};
use sqlx::Connection;
use threadline::config::Config;
use threadline::store::Store;

/// A replica: a `threadline serve` process with the echo model on `database_url`.
async fn replica(database_url: &str) -> ServerProcess {
    ServerProcess::start(&["--upstream", "echo", "--database-url", database_url], &[]).await
}

async fn post(client: &reqwest::Client, base: &str, path: &str, body: Value) -> (u16, Value) {
    let response = client.post(format!("{base}{path}")).json(&body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn output_text(response: &Value) -> &str {
    response["output"][0]["content"][0]["text"].as_str().unwrap()
}

#[tokio::test]
async fn two_replicas_share_chains_and_deletes() {
    let Some(db) = PostgresDb::create().await else { return };
    // Both start at once on a fresh database: the migrations run once, under an advisory lock.
    let (a, b) = tokio::join!(replica(&db.url), replica(&db.url));
    let client = reqwest::Client::new();
    let mut previous: Option<String> = None;
    for (n, replica) in [&a, &b, &a, &b].into_iter().enumerate() {
        let body = json!({"model": "echo", "input": format!("u{}", n + 1), "previous_response_id": previous});
        let (status, response) = post(&client, &replica.base, "/v1/responses", body).await;
        assert_eq!(status, 200, "{response}");
        assert_eq!(
            output_text(&response),
            format!("echo: u{} [turn {}, {} messages in context]", n + 1, n + 1, 2 * n + 1)
        );
        previous = response["id"].as_str().map(str::to_string);
    }
    let tip = previous.unwrap();
    // Deleting an ancestor on one replica takes it out of the next turn on the other at once.
    let (_, first) = post(&client, &a.base, "/v1/responses", json!({"model": "echo", "input": "u1"})).await;
    let first = first["id"].as_str().unwrap().to_string();
    let body = json!({"model": "echo", "input": "u2", "previous_response_id": first});
    let (_, second) = post(&client, &a.base, "/v1/responses", body).await;
    let deleted = client.delete(format!("{}/v1/responses/{first}", b.base)).send().await.unwrap();
    assert_eq!(deleted.status(), 200);
    let body = json!({"model": "echo", "input": "u3", "previous_response_id": second["id"]});
    let (_, third) = post(&client, &a.base, "/v1/responses", body).await;
    assert_eq!(output_text(&third), "echo: u3 [turn 2, 3 messages in context]");
    let deleted = client.delete(format!("{}/v1/responses/{tip}", a.base)).send().await.unwrap();
    assert_eq!(deleted.status(), 200);
    let got = client.get(format!("{}/v1/responses/{tip}", b.base)).send().await.unwrap();
    assert_eq!(got.status(), 404);
    let got =
        post(&client, &b.base, "/v1/responses", json!({"model": "echo", "input": "x", "previous_response_id": tip}))
            .await;
    assert_error(&got, 400, Some("previous_response_not_found"), Some("previous_response_id"));
}

#[tokio::test]
async fn a_hundred_concurrent_branches_each_see_their_own_history() {
    let Some(db) = PostgresDb::create().await else { return };
    // 100 requests at once: more than a tenant's default limit of requests in progress.
    let unlimited = |c: &mut threadline::config::Config| c.limits.max_concurrent_requests_per_tenant = 0;
    let database = Arc::new(TestDb::Postgres(db));
    let server = TestApp::builder().database(database).upstream("echo").config(unlimited).start().await.unwrap();
    let root = server.turn("root", None).await;
    let branches = futures::future::join_all((0..100).map(|n| {
        let (server, root) = (&server, root.clone());
        async move {
            let body = json!({"model": "m", "input": format!("b{n}"), "previous_response_id": root});
            (n, server.post("/v1/responses", body).await)
        }
    }))
    .await;
    for (n, (status, response)) in branches {
        assert_eq!(status, 200, "{response}");
        assert_eq!(output_text(&response), format!("echo: b{n} [turn 2, 3 messages in context]"));
        let id = response["id"].as_str().unwrap();
        let next = server.create(json!({"model": "m", "input": "again", "previous_response_id": id})).await;
        assert_eq!(output_text(&next), "echo: again [turn 3, 5 messages in context]");
        let history = server.store.history("default", id, 10).await.unwrap().unwrap();
        let texts: Vec<String> = history.items().into_iter().map(threadline::model::Item::text).collect();
        assert_eq!(
            texts,
            [
                "root".to_string(),
                "echo: root [turn 1, 1 messages in context]".into(),
                format!("b{n}"),
                format!("echo: b{n} [turn 2, 3 messages in context]"),
            ]
        );
    }
}

#[tokio::test]
async fn a_database_outage_is_a_503_and_service_resumes_with_nothing_lost() {
    let Some(db) = PostgresDb::create().await else { return };
    let proxy = Proxy::start(db.server_addr(), true).await;
    let url = db.url_via(proxy.addr);
    let configure = move |c: &mut Config| {
        c.database_url = url;
        c.database.acquire_timeout = Duration::from_secs(1);
    };
    let server = TestApp::builder().upstream("echo").config(configure).start().await.unwrap();
    let first = server.turn("before", None).await;

    proxy.cut().await;
    let got =
        server.post("/v1/responses", json!({"model": "m", "input": "during", "previous_response_id": first})).await;
    assert_error(&got, 503, Some("storage_unavailable"), None);
    assert_eq!(got.1["error"]["type"], "server_error");
    assert_error(&server.get(&format!("/v1/responses/{first}")).await, 503, Some("storage_unavailable"), None);
    assert_error(&server.get("/readyz").await, 503, Some("storage_unavailable"), None);
    assert_eq!(server.get("/healthz").await.0, 200);

    proxy.restore();
    assert_eq!(server.get("/readyz").await.0, 200);
    let after = server.create(json!({"model": "m", "input": "after", "previous_response_id": first})).await;
    assert_eq!(output_text(&after), "echo: after [turn 2, 3 messages in context]");
    let (status, stored) = server.get(&format!("/v1/responses/{first}")).await;
    assert_eq!((status, output_text(&stored)), (200, "echo: before [turn 1, 1 messages in context]"));
}

#[tokio::test]
async fn the_server_waits_for_a_database_that_starts_later() {
    let Some(db) = PostgresDb::create().await else { return };
    let proxy = Proxy::start(db.server_addr(), false).await;
    let config =
        Config { database_url: db.url_via(proxy.addr), upstreams: vec![upstream("echo")], ..Config::default() };
    let starting = tokio::spawn(async move { threadline::build_app(&config).await.map(|app| app.engine) });
    proxy.refused_at_least(2).await;
    assert!(!starting.is_finished());
    proxy.restore();
    let engine = starting.await.unwrap().expect("the server starts once the database is up");
    engine.store().ping().await.unwrap();
}

#[tokio::test]
async fn a_database_that_never_comes_up_fails_the_start_clearly() {
    let Some(db) = PostgresDb::create().await else { return };
    let proxy = Proxy::start(db.server_addr(), false).await;
    let mut config =
        Config { database_url: db.url_via(proxy.addr), upstreams: vec![upstream("echo")], ..Config::default() };
    config.database.startup_timeout = Duration::ZERO;
    let err = threadline::build_app(&config).await.err().expect("the start fails");
    assert_eq!(err.to_string(), "cannot open the database");
}

/// A turn through a server on `url`; returns how many of that server's database sessions are encrypted, and how
/// many it has. Its sessions are told apart from earlier servers' by a fresh `application_name`.
async fn sessions_with(db: &PostgresDb, url: String) -> (i64, i64) {
    let application = threadline::model::new_id("app");
    let url = format!("{url}&application_name={application}");
    let server = TestApp::builder().upstream("echo").config(move |c| c.database_url = url).start().await.unwrap();
    server.turn("over TLS?", None).await;
    let mut admin = sqlx::PgConnection::connect(&common::db::postgres_admin_url().unwrap()).await.unwrap();
    let query = "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_ssl s \
        JOIN pg_stat_activity a ON a.pid = s.pid WHERE a.datname = $1 AND a.application_name = $2";
    sqlx::query_as(query).bind(&db.name).bind(&application).fetch_one(&mut admin).await.unwrap()
}

#[tokio::test]
async fn the_database_connection_uses_tls_as_the_url_asks() {
    let Some(db) = PostgresDb::create().await else { return };
    let mut admin = sqlx::PgConnection::connect(&common::db::postgres_admin_url().unwrap()).await.unwrap();
    let (ssl,): (String,) = sqlx::query_as("SHOW ssl").fetch_one(&mut admin).await.unwrap();
    assert_eq!(ssl, "on", "the test server must offer TLS");
    let (certificate,): (String,) = sqlx::query_as("SHOW ssl_cert_file").fetch_one(&mut admin).await.unwrap();
    let with = |query: &str| format!("{}?{query}", db.url);

    // Plain text when asked for: the check below can tell the difference.
    let (encrypted, all) = sessions_with(&db, with("sslmode=disable")).await;
    assert!(all > 0 && encrypted == 0, "{encrypted} of {all}");
    for query in ["sslmode=require", "sslmode=prefer"] {
        let (encrypted, all) = sessions_with(&db, with(query)).await;
        assert!(all > 0 && encrypted == all, "{query}: {encrypted} of {all} sessions encrypted");
    }
    // A full check of the server's certificate (it names localhost) against the root given in the URL.
    let mut verified = reqwest::Url::parse(&with(&format!("sslmode=verify-full&sslrootcert={certificate}"))).unwrap();
    verified.set_host(Some("localhost")).unwrap();
    let (encrypted, all) = sessions_with(&db, verified.to_string()).await;
    assert!(all > 0 && encrypted == all, "verify-full: {encrypted} of {all}");
    // A certificate the given root did not sign is refused: the server does not start.
    let mut wrong =
        reqwest::Url::parse(&with("sslmode=verify-ca&sslrootcert=/etc/ssl/certs/ca-certificates.crt")).unwrap();
    wrong.set_host(Some("localhost")).unwrap();
    let mut config = Config { database_url: wrong.to_string(), upstreams: vec![upstream("echo")], ..Config::default() };
    config.database.startup_timeout = Duration::ZERO;
    let err = threadline::build_app(&config).await.err().expect("an unverifiable server is refused");
    assert!(format!("{err:#}").contains("certificate"), "{err:#}");
}

/// Whether a server on `url` fails to start, and why.
async fn refused(url: String) -> String {
    let mut config = Config { database_url: url, upstreams: vec![upstream("echo")], ..Config::default() };
    config.database.startup_timeout = Duration::ZERO;
    let err = threadline::build_app(&config).await.err().expect("the server is refused");
    format!("{err:#}")
}

#[tokio::test]
async fn verify_ca_checks_the_certificate_chain_and_not_the_host_name() {
    let Some(db) = PostgresDb::create().await else { return };
    let mut admin = sqlx::PgConnection::connect(&common::db::postgres_admin_url().unwrap()).await.unwrap();
    let (certificate,): (String,) = sqlx::query_as("SHOW ssl_cert_file").fetch_one(&mut admin).await.unwrap();
    // The server's certificate names localhost; the URLs address it by IP.
    let by_ip = |query: String| {
        let mut url = reqwest::Url::parse(&format!("{}?{query}", db.url)).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.to_string()
    };
    // verify-ca checks only the chain, as libpq does: the server is reached, over TLS.
    let (encrypted, all) = sessions_with(&db, by_ip(format!("sslmode=verify-ca&sslrootcert={certificate}"))).await;
    assert!(all > 0 && encrypted == all, "verify-ca: {encrypted} of {all}");
    // verify-full checks the name too: refused.
    let err = refused(by_ip(format!("sslmode=verify-full&sslrootcert={certificate}"))).await;
    assert!(err.contains("not valid for name"), "{err}");
    // A chain the given root did not sign is still refused by verify-ca, and says why.
    let err = refused(by_ip("sslmode=verify-ca&sslrootcert=/etc/ssl/certs/ca-certificates.crt".into())).await;
    assert!(err.contains("verify-ca") && err.contains("UnknownIssuer"), "{err}");
}
