//! Bad requests get a specific 4xx and a plain-text reason; the worker keeps
//! serving and loses nothing afterwards.

use graph_relay_proto::v1::Filter;
use graph_relay_tests::subscriber::{subscribe, subscription_id};
use graph_relay_tests::{edge::Edge, fanout::Fanout, graph, CLIENT_STATE};

#[tokio::test]
async fn every_kind_of_bad_input_gets_its_own_status_and_reason() {
    let fanout = Fanout::start().await;
    let edge = Edge::start(fanout.url()).await;
    let url = format!("{}/graph/notifications", edge.url);
    let json = Some("application/json");
    let deep = format!("{{\"value\":{}{}}}", "[".repeat(5000), "]".repeat(5000));
    let valid_body = graph::collection(vec![graph::change("s", "r", "created", "t", CLIENT_STATE)]).to_string();
    type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("non-JSON", json, b"{not json".to_vec(), 400, "body is not valid JSON"),
        (
            "wrong content type",
            Some("text/plain"),
            valid_body.clone().into_bytes(),
            415,
            "content-type must be application/json",
        ),
        ("no content type", None, valid_body.into_bytes(), 415, "content-type must be application/json"),
        ("over 1 MiB", json, vec![b' '; (1 << 20) + 1], 413, "body is larger than 1048576 bytes"),
        ("deep nesting", json, deep.into_bytes(), 400, "JSON is nested too deeply"),
        ("invalid UTF-8", json, vec![b'{', 0xff, 0xfe, b'}'], 400, "body is not valid UTF-8"),
        ("empty value", json, br#"{"value":[]}"#.to_vec(), 400, "\"value\" is empty: there is nothing to accept"),
        ("no value", json, br#"{"values":[]}"#.to_vec(), 400, "body must be a JSON object with a \"value\" array"),
        ("array body", json, b"[1,2]".to_vec(), 400, "body must be a JSON object with a \"value\" array"),
    ];
    for (name, content_type, body, status, reason) in cases {
        let answer = graph::post(&url, content_type, body).await;
        assert_eq!(answer.status, status, "{name}: {}", answer.body);
        assert!(answer.body.starts_with(reason), "{name}: {:?}", answer.body);
        assert!(answer.content_type.starts_with("text/plain"), "{name}");
    }

    let client = reqwest::Client::new();
    let wrong_method = client.get(&url).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(wrong_method.headers()["allow"], "POST");
    assert_eq!(wrong_method.text().await.unwrap(), "GET is not allowed on /graph/notifications: use POST");
    let put = client.put(format!("{}/graph/lifecycle", edge.url)).send().await.unwrap();
    assert_eq!(put.status(), 405);
    let wrong_path = graph::post(&format!("{}/graph/notification", edge.url), json, "{}").await;
    assert_eq!(wrong_path.status, 404);
    assert!(wrong_path.body.starts_with("no route /graph/notification"), "{}", wrong_path.body);
}

#[tokio::test]
async fn the_worker_keeps_serving_after_bad_input() {
    let fanout = Fanout::start().await;
    let edge = Edge::start(fanout.url()).await;
    let mut subscriber = subscribe(&fanout.url(), Filter::default()).await;
    let url = format!("{}/graph/notifications", edge.url);
    let garbage: Vec<Vec<u8>> = vec![
        vec![0; 64],
        b"{\"value\":[null, 1, \"x\", [], {}]}".to_vec(),
        b"{\"value\":[{\"clientState\":{\"a\":1}}]}".to_vec(),
        format!("{{\"value\":[{{\"clientState\":\"{CLIENT_STATE}\",\"subscriptionId\":7}}]}}").into_bytes(),
        "\u{FEFF}{\"value\":1}".as_bytes().to_vec(),
        b"{\"value\":[1e999999]}".to_vec(),
    ];
    for body in garbage {
        let answer = graph::post(&url, Some("application/json"), body.clone()).await;
        assert!(
            answer.status == 202 || answer.status == 400,
            "{:?} -> {}",
            String::from_utf8_lossy(&body),
            answer.status
        );
    }
    let health = graph::answer(reqwest::get(format!("{}/healthz", edge.url)).await.unwrap()).await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
    let good =
        graph::collection(vec![graph::change("after-garbage", "users/u/messages/m", "created", "t", CLIENT_STATE)]);
    assert_eq!(graph::deliver(&edge.url, "/graph/notifications", &good).await.status, 202);
    assert_eq!(
        subscription_id(&subscriber.next().await),
        "after-garbage",
        "garbage delivered nothing, then the good item"
    );
}
