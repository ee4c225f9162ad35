//! A subscriber: every change to users' messages, resuming after any error
//! from the last sequence it handled (persist `cursor` to resume across
//! restarts, and give it back as GRAPH_RELAY_AFTER_SEQUENCE).
//! Python and Node.js versions: `examples/python`, `examples/node`.
use graph_relay_proto::v1::{event::Payload, fanout_client::FanoutClient, Filter, SubscribeRequest};

type Error = Box<dyn std::error::Error>;

async fn follow(server: &str, bearer: &str, cursor: &mut Option<u64>) -> Result<(), Error> {
    let filter = Filter { resources: vec!["users/*/messages/*".into()], ..Default::default() };
    let mut request = tonic::Request::new(SubscribeRequest { filter: Some(filter), after_sequence: *cursor });
    request.metadata_mut().insert("authorization", bearer.parse()?);
    let mut batches = FanoutClient::connect(server.to_string()).await?.subscribe(request).await?.into_inner();
    while let Some(batch) = batches.message().await? {
        for event in batch.events {
            if let Some(Payload::Change(change)) = &event.payload {
                println!("{} {} {}", event.sequence, change.change_type, change.resource);
            }
            *cursor = Some(event.sequence); // handled: resume after it
        }
    }
    Err("the stream ended".into())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let server = std::env::var("GRAPH_RELAY_SERVER").unwrap_or_else(|_| "http://127.0.0.1:50051".into());
    let bearer = format!("Bearer {}", std::env::var("GRAPH_RELAY_TOKEN")?);
    let mut cursor = std::env::var("GRAPH_RELAY_AFTER_SEQUENCE").ok().map(|s| s.parse()).transpose()?;
    loop {
        if let Err(e) = follow(&server, &bearer, &mut cursor).await {
            eprintln!("{e}; resuming after {cursor:?} in a second");
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}
