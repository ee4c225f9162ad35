//! Graph's validation handshake against the real worker.

use graph_relay_tests::{edge::Edge, fanout::Fanout, graph};

#[tokio::test]
async fn both_routes_reflect_the_decoded_token_as_plain_text() {
    let fanout = Fanout::start().await;
    let edge = Edge::start(fanout.url()).await;
    let cases = [
        (
            "Validation%3A%20Testing%20client%20application%20reachability",
            "Validation: Testing client application reachability",
        ),
        ("a%2Fb%2Bc", "a/b+c"),
        ("plus+means+space", "plus means space"),
        ("caf%C3%A9%20%E2%9C%93%20%F0%9F%93%A8", "café ✓ 📨"),
        ("%3Cscript%3Ealert(1)%3C%2Fscript%3E", "<script>alert(1)</script>"),
    ];
    for route in ["/graph/notifications", "/graph/lifecycle"] {
        for (encoded, decoded) in cases {
            // Graph sends text/plain and no meaningful body.
            let answer =
                graph::post(&format!("{}{route}?validationToken={encoded}", edge.url), Some("text/plain"), "").await;
            assert_eq!(answer.status, 200, "{route} {encoded}: {}", answer.body);
            assert_eq!(answer.body, decoded, "{route}");
            assert!(answer.content_type.starts_with("text/plain"), "{route}: {}", answer.content_type);
        }
    }
}

#[tokio::test]
async fn overlong_or_invalid_tokens_get_a_clear_400() {
    let fanout = Fanout::start().await;
    let edge = Edge::start(fanout.url()).await;
    let url = format!("{}/graph/notifications", edge.url);
    let at_limit = "t".repeat(1024);
    let answer = graph::post(&format!("{url}?validationToken={at_limit}"), None, "").await;
    assert_eq!((answer.status, answer.body.len()), (200, 1024));
    let answer = graph::post(&format!("{url}?validationToken={}", "t".repeat(5000)), None, "").await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body, "validationToken is longer than 1024 bytes");
    let answer = graph::post(&format!("{url}?validationToken=%FF%FE"), None, "").await;
    assert_eq!((answer.status, answer.body.as_str()), (400, "validationToken is not valid UTF-8 once decoded"));
    let answer = graph::post(&format!("{url}?validationToken="), None, "").await;
    assert_eq!((answer.status, answer.body.as_str()), (400, "validationToken is empty"));
}
