//! Events on the wire, encoded once.
//!
//! A published event goes to many subscribers and is replayed from the log.
//! Encoding it per subscriber would multiply the CPU cost by the audience;
//! instead prost encodes it once into [`EncodedEvent`], the log stores those
//! bytes, and each subscriber's stream copies them.

use bytes::{BufMut, Bytes, BytesMut};
use graph_relay_proto::v1::{event::Payload, notification::Kind, Event, Gap, Notification};
use prost::encoding::{DecodeContext, WireType};
use prost::{DecodeError, Message};

/// A `graphrelay.v1.Event`, already protobuf-encoded. Cheap to clone.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EncodedEvent {
    /// The event's protobuf bytes, shared by every subscriber's buffer.
    bytes: Bytes,
    /// Kept beside the bytes so cursors and logs need no decoding.
    sequence: u64,
}

/// The event that stores `notification` as `sequence`.
pub fn to_event(sequence: u64, notification: Notification) -> Event {
    Event {
        sequence,
        received_at_unix_ms: notification.received_at_unix_ms,
        payload: notification.kind.map(|kind| match kind {
            Kind::Change(change) => Payload::Change(change),
            Kind::Lifecycle(lifecycle) => Payload::Lifecycle(lifecycle),
        }),
    }
}

/// The event telling a subscriber that `from..=to` are gone for it.
pub fn gap(from_sequence: u64, to_sequence: u64, reason: &str) -> EncodedEvent {
    EncodedEvent::from_event(&Event {
        sequence: to_sequence,
        received_at_unix_ms: 0,
        payload: Some(Payload::Gap(Gap { from_sequence, to_sequence, reason: reason.to_owned() })),
    })
}

/// The encoding of `event` without decrypted resource data, if it has any.
pub fn redacted(event: &Event) -> Option<EncodedEvent> {
    match &event.payload {
        Some(Payload::Change(change)) if !change.decrypted_resource_data_json.is_empty() => {
            let mut change = change.clone();
            change.decrypted_resource_data_json.clear();
            Some(EncodedEvent::from_event(&Event { payload: Some(Payload::Change(change)), ..event.clone() }))
        }
        _ => None,
    }
}

impl EncodedEvent {
    pub fn from_event(event: &Event) -> Self {
        let mut bytes = BytesMut::with_capacity(event.encoded_len());
        event.encode_raw(&mut bytes);
        Self { bytes: bytes.freeze(), sequence: event.sequence }
    }

    /// Bytes read back from the log for `sequence`.
    pub fn from_stored(sequence: u64, bytes: Bytes) -> Self {
        Self { bytes, sequence }
    }

    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
}

/// Encode-only: the fan-out sends events and never decodes them this way.
impl Message for EncodedEvent {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.bytes);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl bytes::Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.bytes.len()
    }

    fn clear(&mut self) {
        self.bytes = Bytes::new();
        self.sequence = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graph_relay_proto::v1::LifecycleNotification;

    #[test]
    fn encoded_bytes_decode_as_the_event() {
        let lifecycle = LifecycleNotification {
            subscription_id: "s".into(),
            lifecycle_event: "missed".into(),
            ..Default::default()
        };
        let notification = Notification { kind: Some(Kind::Lifecycle(lifecycle.clone())), received_at_unix_ms: 7 };
        let encoded = EncodedEvent::from_event(&to_event(99, notification));
        let event = Event::decode(encoded.encode_to_vec().as_slice()).unwrap();
        assert_eq!(event.sequence, 99);
        assert_eq!(event.received_at_unix_ms, 7);
        assert_eq!(event.payload, Some(Payload::Lifecycle(lifecycle)));
        assert_eq!(encoded.sequence(), 99);
    }

    #[test]
    fn a_gap_carries_its_range_and_takes_its_last_sequence() {
        let event = Event::decode(gap(3, 9, "retention").bytes().as_ref()).unwrap();
        assert_eq!(event.sequence, 9);
        let Some(Payload::Gap(gap)) = event.payload else { panic!("gap expected") };
        assert_eq!((gap.from_sequence, gap.to_sequence, gap.reason.as_str()), (3, 9, "retention"));
    }
}
