//! CPU cost of the edge's request path, natively (`make bench`):
//! parse + validate a collection of 1, 10 and 100 notifications, and check
//! a batch's validationTokens with cached keys. Workers bill CPU per request
//! (10 ms on the free plan), so these are the numbers that decide the budget.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use graph_relay_edge::client_state::ClientStates;
use graph_relay_edge::inbound;
use graph_relay_edge::validation_tokens::{Keys, Policy};
use graph_relay_tests::tokens::check_natively as check_batch;
use graph_relay_tests::tokens::{valid_claims, SigningKey, APP_ID, TENANT};
use graph_relay_tests::{graph, CLIENT_STATE};
use serde_json::json;

fn collection(size: usize) -> Vec<u8> {
    let items = (0..size)
        .map(|i| graph::change(&format!("sub-{i}"), &format!("Users/u/Messages/m-{i}"), "created", "t", CLIENT_STATE))
        .collect();
    graph::collection(items).to_string().into_bytes()
}

fn parse_and_validate(c: &mut Criterion) {
    let states = ClientStates::parse(&format!("{CLIENT_STATE},rotated")).unwrap();
    let request = graph_relay_edge::delivery::RequestId::from_bytes([0; 16]);
    let mut group = c.benchmark_group("parse_and_validate");
    for size in [1, 10, 100] {
        let body = collection(size);
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(format!("{size} notifications"), |b| {
            b.iter(|| inbound::accept_body(black_box(&body), &states, 0, &request).unwrap())
        });
    }
    group.finish();
}

fn validation_tokens(c: &mut Criterion) {
    let (key, _) = SigningKey::pair();
    let keys = Keys::from_jwks(&json!({ "keys": [key.jwk()] }).to_string()).unwrap();
    let policy = Policy { app_ids: vec![APP_ID.into()], allowed_tenants: vec![] };
    let one = json!([key.sign(&valid_claims())]);
    let now = graph_relay_tests::tokens::now();
    // Two different tokens (identical ones would be one verification).
    let mut second = valid_claims();
    second["iat"] = json!(now - 30);
    let two = json!([key.sign(&valid_claims()), key.sign(&second)]);
    let rich = vec![TENANT.to_owned()];
    let mut group = c.benchmark_group("validation_tokens");
    // First sight: the keys have not verified these tokens yet (RS256 runs).
    group.bench_function("1 token, first sight (cached keys)", |b| {
        b.iter_batched(
            || keys.clone(),
            |fresh| check_batch(Some(black_box(&one)), &rich, &fresh, &policy, now).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("2 tokens, first sight (cached keys)", |b| {
        b.iter_batched(
            || keys.clone(),
            |fresh| check_batch(Some(black_box(&two)), &rich, &fresh, &policy, now).unwrap(),
            BatchSize::SmallInput,
        )
    });
    // Graph sends the same token with every batch for about an hour.
    check_batch(Some(&one), &rich, &keys, &policy, now).unwrap();
    group.bench_function("1 token, seen before", |b| {
        b.iter(|| check_batch(Some(black_box(&one)), &rich, &keys, &policy, now).unwrap())
    });
    group.finish();
}

criterion_group!(benches, parse_and_validate, validation_tokens);
criterion_main!(benches);
