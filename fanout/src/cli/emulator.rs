//! `graph-relay emulate trigger|lifecycle|approve`: the control endpoints
//! ([`crate::emulator::control`]) from the command line; prints the emulator's answer.

use serde_json::Value;

/// POSTs `body` to `{emulator}/emulator/{path}` and prints the JSON answer.
pub async fn post(emulator: &str, path: &str, body: &Value) -> Result<(), Box<dyn std::error::Error>> {
    let url = format!("{}/emulator/{path}", emulator.trim_end_matches('/'));
    let response = reqwest::Client::new().post(&url).json(body).send().await?;
    let status = response.status();
    let text = response.text().await?;
    let pretty = serde_json::from_str::<Value>(&text).and_then(|v| serde_json::to_string_pretty(&v)).unwrap_or(text);
    if !pretty.is_empty() {
        println!("{pretty}");
    }
    if !status.is_success() {
        return Err(format!("{url} answered {status}").into());
    }
    Ok(())
}
