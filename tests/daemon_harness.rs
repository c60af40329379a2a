//! Tests of the test harness itself: the real `redis-server` wrapper and the
//! fake Horde server behave as the daemon tests rely on (outage and restart on
//! the same port, pub/sub delivery, every route and every misbehaviour mode).

mod common;

use common::horde_server::{copy_dataset, HordeServer, Mode, Route, HUGE_BODY_BYTES};
use common::redis_server::RedisServer;
use std::time::Duration;

/// What a GET answered: status, body (or the body error), request headers sent.
struct Got {
    status: u16,
    body: Result<Vec<u8>, String>,
}

/// GET with awc in a throw-away actix system, body capped at `limit` bytes.
fn get(url: &str, limit: usize, timeout: Duration) -> Result<Got, String> {
    let url = url.to_string();
    actix_rt::System::new().block_on(async move {
        let client = awc::Client::builder().timeout(timeout).finish();
        let mut resp = client
            .get(&url)
            .insert_header(("Client-Agent", "harness-test:1:nobody"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp.body().limit(limit).await.map(|b| b.to_vec()).map_err(|e| e.to_string());
        Ok(Got { status, body })
    })
}

#[test]
fn redis_server_answers_stops_and_restarts_on_the_same_port() {
    let mut redis = RedisServer::start();
    let mut c = redis.client();
    c.set("k", b"v\x00\xff");
    assert_eq!(c.get("k").as_deref(), Some(&b"v\x00\xff"[..]));
    assert_eq!(c.ttl("k"), -1);
    assert_eq!(c.ttl("missing"), -2);
    assert_eq!(c.keys("*"), vec!["k".to_string()]);

    let sub = redis.subscribe("chan");
    assert_eq!(c.subscribers("chan"), 1);
    assert_eq!(c.publish("chan", b"{\"ok\": true}"), 1);
    assert_eq!(sub.recv_json(Duration::from_secs(5)), Some(serde_json::json!({"ok": true})));
    assert_eq!(sub.recv(Duration::from_millis(100)), None);
    drop(sub);

    let port = redis.port();
    redis.stop();
    assert!(!redis.is_running());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "port still answers after stop");
    redis.start_again();
    assert_eq!(redis.port(), port);
    let mut c = redis.client();
    assert!(c.ping());
    assert_eq!(c.get("k"), None, "nothing is persisted across a restart");
}

#[test]
fn fake_horde_serves_every_route_from_the_files() {
    let seed = common::example_data();
    let data = copy_dataset(&seed);
    let horde = HordeServer::start(data.path());
    let urls = [
        (Route::StatusImage, format!("{}/v2/status/models?type=image&model_state=known", horde.api_url())),
        (Route::StatusText, format!("{}/v2/status/models?type=text&model_state=known", horde.api_url())),
        (Route::StatsImage, format!("{}/v2/stats/img/models?model_state=known", horde.api_url())),
        (Route::StatsText, format!("{}/v2/stats/text/models?model_state=known", horde.api_url())),
        (Route::ImageReference, format!("{}/model_references/v2/image_generation", horde.reference_url())),
        (Route::TextReference, format!("{}/model_references/v2/text_generation", horde.reference_url())),
    ];
    for (route, url) in &urls {
        let got = get(url, 64 << 20, Duration::from_secs(10)).unwrap();
        assert_eq!(got.status, 200, "{url}");
        assert_eq!(
            got.body.unwrap(),
            std::fs::read(data.path().join(route.file().unwrap())).unwrap(),
            "{url}"
        );
        assert_eq!(horde.count(*route), 1);
    }
    let unknown =
        get(&format!("{}/v2/status/models?type=video", horde.api_url()), 1 << 20, Duration::from_secs(5));
    assert_eq!(unknown.unwrap().status, 404);
    assert_eq!(horde.count(Route::Unknown), 1);
    let reqs = horde.requests();
    assert_eq!(reqs.len(), 7);
    assert!(reqs.iter().all(|r| r.client_agent.as_deref() == Some("harness-test:1:nobody")));
    assert_eq!(reqs[0].query, "type=image&model_state=known");

    // Files are re-read on every request.
    let path = data.path().join("horde/stats_text_models.json");
    std::fs::write(&path, b"{\"day\": {}, \"month\": {}, \"total\": {}}").unwrap();
    let got = get(&urls[3].1, 1 << 20, Duration::from_secs(5)).unwrap();
    assert_eq!(got.body.unwrap(), b"{\"day\": {}, \"month\": {}, \"total\": {}}");
}

#[test]
fn fake_horde_misbehaves_on_demand() {
    let seed = common::example_data();
    let horde = HordeServer::start(&seed);
    let url = format!("{}/v2/status/models?type=text&model_state=known", horde.api_url());
    let reference = format!("{}/model_references/v2/image_generation", horde.reference_url());
    let file_len = std::fs::metadata(seed.join("horde/status_models_text.json")).unwrap().len() as usize;

    horde.set_mode(Mode::Status(500));
    assert_eq!(get(&url, 1 << 20, Duration::from_secs(5)).unwrap().status, 500);

    horde.set_mode(Mode::Garbage);
    let got = get(&url, 1 << 20, Duration::from_secs(5)).unwrap();
    assert_eq!(got.status, 200);
    assert!(serde_json::from_slice::<serde_json::Value>(&got.body.unwrap()).is_err());

    horde.set_mode(Mode::Truncated);
    let got = get(&url, 64 << 20, Duration::from_secs(5));
    // Either the response or its body fails: the stream is cut before its end.
    match got {
        Err(_) => {}
        Ok(got) => match got.body {
            Err(_) => {}
            Ok(body) => panic!("truncated body read whole: {} of {file_len} bytes", body.len()),
        },
    }

    horde.set_mode(Mode::Slow(Duration::from_secs(3)));
    let got = get(&url, 1 << 20, Duration::from_millis(300));
    assert!(got.is_err(), "a slow answer beat a 300 ms timeout");

    horde.set_mode(Mode::Huge);
    let got = get(&url, 1 << 20, Duration::from_secs(10)).unwrap();
    assert_eq!(got.status, 200);
    let err = got.body.expect_err("a 1 MiB limit must stop the huge body");
    assert!(err.to_lowercase().contains("overflow") || err.contains("limit"), "{err}");
    const { assert!(HUGE_BODY_BYTES > 100 << 20) };

    // Per-route modes win over the global one; reset restores normal answers.
    horde.set_mode(Mode::Status(503));
    horde.set_route_mode(Route::ImageReference, Mode::Normal);
    assert_eq!(get(&reference, 64 << 20, Duration::from_secs(5)).unwrap().status, 200);
    assert_eq!(get(&url, 1 << 20, Duration::from_secs(5)).unwrap().status, 503);
    horde.reset_modes();
    let got = get(&url, 64 << 20, Duration::from_secs(5)).unwrap();
    assert_eq!(got.body.unwrap().len(), file_len);
}
