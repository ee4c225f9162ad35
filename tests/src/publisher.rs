//! Publishing straight into the fan-out, as the edge does (with its token).

use graph_relay_proto::v1::{
    fanout_client::FanoutClient, notification::Kind, ChangeNotification, Notification, PublishRequest, PublishResponse,
};
use tonic::transport::Channel;

pub struct Publisher {
    client: FanoutClient<Channel>,
}

impl Publisher {
    pub async fn connect(fanout_url: &str) -> Publisher {
        Publisher { client: FanoutClient::connect(fanout_url.to_owned()).await.expect("fan-out reachable") }
    }

    pub async fn publish(&mut self, notifications: Vec<Notification>) -> Result<PublishResponse, tonic::Status> {
        let mut request = tonic::Request::new(PublishRequest { notifications });
        let token = format!("Bearer {}", crate::INGEST_TOKEN).parse().expect("ascii token");
        request.metadata_mut().insert("authorization", token);
        Ok(self.client.publish(request).await?.into_inner())
    }
}

/// A change notification whose id is `id` and subscription `subscription`,
/// as one delivery: publishing it again is a redelivery of the same one.
pub fn change(subscription: &str, id: u64) -> Notification {
    let change = ChangeNotification {
        id: id.to_string(),
        subscription_id: subscription.into(),
        change_type: "created".into(),
        resource: format!("users/u/messages/{id}"),
        raw_json: format!(r#"{{"id":"{id}","subscriptionId":"{subscription}"}}"#),
        ..Default::default()
    };
    Notification {
        kind: Some(Kind::Change(change)),
        received_at_unix_ms: 1,
        delivery_id: format!("test/{subscription}/{id}"),
    }
}

/// Notification ids `from..to` of `subscription`.
pub fn changes(subscription: &str, ids: std::ops::Range<u64>) -> Vec<Notification> {
    ids.map(|id| change(subscription, id)).collect()
}
