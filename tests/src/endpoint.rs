//! A scriptable notification endpoint, to test the Graph emulator itself:
//! how it runs the handshake, retries, and judges slow endpoints. (The
//! relay's real endpoint, the edge, is tested against the emulator elsewhere.)

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::Value;

/// How the endpoint answers a validation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// Correct: 200, text/plain, the decoded token.
    Echo,
    /// Reflects the token still URL-encoded.
    Encoded,
    /// Right body, but as text/html.
    Html,
}

/// How the endpoint answers the next notification POST.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Status(u16),
    /// 202 after this long.
    Slow(Duration),
}

#[derive(Default)]
struct Script {
    validation: Option<Validation>,
    answers: VecDeque<Answer>,
    /// Validation tokens received, decoded.
    tokens: Vec<String>,
    /// Notification bodies received (also those answered with an error).
    bodies: Vec<Value>,
}

#[derive(Clone)]
pub struct Endpoint {
    script: Arc<Mutex<Script>>,
    pub url: String,
}

impl Endpoint {
    pub async fn start() -> Endpoint {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("address"));
        let script = Arc::new(Mutex::new(Script { validation: Some(Validation::Echo), ..Default::default() }));
        let app = Router::new().route("/hook", post(hook)).with_state(script.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Endpoint { script, url }
    }

    pub fn validate_with(&self, validation: Validation) {
        self.script.lock().unwrap().validation = Some(validation);
    }

    /// Queues answers for the next notification POSTs (then 202).
    pub fn answer(&self, answers: &[Answer]) {
        self.script.lock().unwrap().answers.extend(answers.iter().copied());
    }

    pub fn tokens(&self) -> Vec<String> {
        self.script.lock().unwrap().tokens.clone()
    }

    pub fn bodies(&self) -> Vec<Value> {
        self.script.lock().unwrap().bodies.clone()
    }
}

async fn hook(
    State(script): State<Arc<Mutex<Script>>>,
    Query(query): Query<HashMap<String, String>>,
    body: String,
) -> Response {
    if let Some(token) = query.get("validationToken") {
        let mode = {
            let mut script = script.lock().unwrap();
            script.tokens.push(token.clone());
            script.validation.unwrap_or(Validation::Echo)
        };
        return match mode {
            Validation::Echo => ([("content-type", "text/plain")], token.clone()).into_response(),
            Validation::Encoded => {
                let encoded: String = url_encode(token);
                ([("content-type", "text/plain")], encoded).into_response()
            }
            Validation::Html => ([("content-type", "text/html")], token.clone()).into_response(),
        };
    }
    let answer = {
        let mut script = script.lock().unwrap();
        script.bodies.push(serde_json::from_str(&body).unwrap_or(Value::Null));
        script.answers.pop_front()
    };
    match answer {
        Some(Answer::Status(status)) => StatusCode::from_u16(status).unwrap().into_response(),
        Some(Answer::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            StatusCode::ACCEPTED.into_response()
        }
        None => StatusCode::ACCEPTED.into_response(),
    }
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
