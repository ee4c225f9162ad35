//! Events on the wire, encoded once.
//!
//! A published event goes to many subscribers and is replayed from the log.
//! Encoding it per subscriber would multiply the CPU cost by the audience;
//! instead prost encodes it once into [`EncodedEvent`], the log stores those
//! bytes, and each subscriber's stream copies them. A stream sends them in
//! [`EncodedBatch`]es: a `graphrelay.v1.EventBatch` framed around the stored
//! bytes, so batching costs no re-encoding either.

use bytes::{BufMut, Bytes, BytesMut};
use graph_relay_proto::v1::{event::Payload, notification::Kind, ChangeNotification, Event, Gap, Notification};
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

/// `Event.sequence`, `Event.received_at_unix_ms`, `Event.payload.change`,
/// `Event.payload.lifecycle`, and the kinds' fields in `Notification.kind`.
const SEQUENCE_FIELD: u32 = 1;
const RECEIVED_AT_FIELD: u32 = 4;
const EVENT_CHANGE: u32 = 2;
const EVENT_LIFECYCLE: u32 = 3;
const KIND_CHANGE: u32 = 1;
const KIND_LIFECYCLE: u32 = 2;
/// Room kept in front of an [`EventBody`] for the sequence field: its key
/// (1 byte) and a varint of up to 10.
const SEQUENCE_ROOM: usize = 11;

/// A notification's `graphrelay.v1.Event`, encoded once before it has a
/// sequence. The publish handlers prepare it in parallel, so the single
/// writer only puts the sequence in front: before, the handler encoded the
/// notification to compute its dedup key and the writer encoded it again.
///
/// # Layout
/// `[SEQUENCE_ROOM spare bytes][payload field][received_at field]`. prost
/// encodes an `Event`'s fields in tag order (sequence 1, payload 2 or 3,
/// received_at 4), so the finished bytes are exactly `Event::encode`'s.
pub struct EventBody {
    /// The spare room, then the fields after the sequence.
    buf: Vec<u8>,
    /// Where the payload's message is (after its key and length): what the
    /// notification's identity is read from.
    message: std::ops::Range<usize>,
    /// The payload's field number in `Notification.kind`, 0 without one.
    kind_field: u32,
}

impl EventBody {
    pub fn of(notification: &Notification) -> Self {
        let mut buf = Vec::with_capacity(SEQUENCE_ROOM + notification.encoded_len());
        buf.resize(SEQUENCE_ROOM, 0);
        let (kind_field, message_at) = match &notification.kind {
            Some(Kind::Change(change)) => (KIND_CHANGE, put_message(&mut buf, EVENT_CHANGE, change)),
            Some(Kind::Lifecycle(lifecycle)) => (KIND_LIFECYCLE, put_message(&mut buf, EVENT_LIFECYCLE, lifecycle)),
            None => (0, buf.len()),
        };
        let message_end = buf.len();
        if notification.received_at_unix_ms != 0 {
            prost::encoding::int64::encode(RECEIVED_AT_FIELD, &notification.received_at_unix_ms, &mut buf);
        }
        Self { buf, message: message_at..message_end, kind_field }
    }

    /// The encoded event's length with the longest sequence: an upper bound.
    pub fn len_at_most(&self) -> usize {
        self.buf.len()
    }

    /// `Notification.kind` as prost encodes it, in two parts (the field's
    /// key and length, then the message): the identity the dedup key hashes,
    /// the same whatever the stored layout.
    pub fn kind_encoding(&self) -> (Vec<u8>, &[u8]) {
        let message = self.buf.get(self.message.clone()).unwrap_or_default();
        let mut header = Vec::with_capacity(SEQUENCE_ROOM);
        if self.kind_field != 0 {
            prost::encoding::encode_key(self.kind_field, WireType::LengthDelimited, &mut header);
            prost::encoding::encode_varint(message.len() as u64, &mut header);
        }
        (header, message)
    }
}

/// Appends `message` as field `field`; returns where its bytes start.
fn put_message(buf: &mut Vec<u8>, field: u32, message: &impl Message) -> usize {
    prost::encoding::encode_key(field, WireType::LengthDelimited, buf);
    prost::encoding::encode_varint(message.encoded_len() as u64, buf);
    let message_at = buf.len();
    message.encode_raw(buf);
    message_at
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
    let Some(Payload::Change(change)) = &event.payload else { return None };
    let change = without_decrypted_data(change)?;
    // The other fields by name: `..event.clone()` would copy the whole
    // payload (~1 KB of JSON) only to drop it.
    Some(EncodedEvent::from_event(&Event {
        sequence: event.sequence,
        payload: Some(Payload::Change(change)),
        received_at_unix_ms: event.received_at_unix_ms,
    }))
}

/// `change` without what Graph's encrypted content decrypted to, for
/// subscribers not allowed to see it; `None` when it carries none. The one
/// place that knows which fields that is, for live and replayed events.
pub fn without_decrypted_data(change: &ChangeNotification) -> Option<ChangeNotification> {
    if change.decrypted_resource_data_json.is_empty() {
        return None;
    }
    let mut change = change.clone();
    change.decrypted_resource_data_json.clear();
    Some(change)
}

/// Up to this many events go in one batch...
pub const MAX_BATCH_EVENTS: usize = 256;
/// ...or up to about this many bytes (a bigger single event goes alone).
///
/// This bounds what a busy subscriber holds on the server. tonic encodes each
/// batch into a buffer its stream keeps for as long as the subscriber stays
/// connected, grown (by doubling) to fit the biggest batch so far, and HTTP/2
/// holds the encoded batch until the connection has written it. At 1 MiB
/// (256 notifications of ~1 KB filled a batch) 1000 subscribers at saturation
/// peaked at 0.6–1.3 GB; at 64 KiB (~58 of them) at 0.3–0.8 GB, with the same
/// deliveries per second (docs/performance-history.md, "2026-11-28, 65da36e").
pub const MAX_BATCH_BYTES: usize = 64 << 10;

/// A `graphrelay.v1.EventBatch` made of already encoded events.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EncodedBatch {
    events: Vec<EncodedEvent>,
    /// Their encoded size so far, to know when the batch is full.
    bytes: usize,
}

impl EncodedBatch {
    pub fn push(&mut self, event: EncodedEvent) {
        self.bytes += event.bytes.len();
        self.events.push(event);
    }

    /// Whether another event should start a new batch.
    pub fn is_full(&self) -> bool {
        self.events.len() >= MAX_BATCH_EVENTS || self.bytes >= MAX_BATCH_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn events(&self) -> &[EncodedEvent] {
        &self.events
    }

    /// Hands over the events so far and starts empty again.
    pub fn take(&mut self) -> Self {
        std::mem::take(self)
    }
}

/// `EventBatch.events` is field 1.
const EVENTS_FIELD: u32 = 1;

impl Message for EncodedBatch {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for event in &self.events {
            prost::encoding::encode_key(EVENTS_FIELD, WireType::LengthDelimited, buf);
            prost::encoding::encode_varint(event.bytes.len() as u64, buf);
            buf.put_slice(&event.bytes);
        }
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
        let key = prost::encoding::key_len(EVENTS_FIELD);
        self.events
            .iter()
            .map(|e| key + prost::encoding::encoded_len_varint(e.bytes.len() as u64) + e.bytes.len())
            .sum()
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

impl EncodedEvent {
    pub fn from_event(event: &Event) -> Self {
        let mut bytes = BytesMut::with_capacity(event.encoded_len());
        event.encode_raw(&mut bytes);
        Self { bytes: bytes.freeze(), sequence: event.sequence }
    }

    /// `body` as event `sequence`. The sequence goes into the body's spare
    /// room, so its bytes are not copied.
    pub fn sequenced(sequence: u64, body: EventBody) -> Self {
        let mut field = [0u8; SEQUENCE_ROOM];
        let mut unused = &mut field[..];
        if sequence != 0 {
            prost::encoding::encode_key(SEQUENCE_FIELD, WireType::Varint, &mut unused);
            prost::encoding::encode_varint(sequence, &mut unused);
        }
        let start = unused.len();
        let mut buf = body.buf;
        buf[start..SEQUENCE_ROOM].copy_from_slice(&field[..SEQUENCE_ROOM - start]);
        Self { bytes: Bytes::from(buf).slice(start..), sequence }
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
        let notification = Notification {
            kind: Some(Kind::Lifecycle(lifecycle.clone())),
            received_at_unix_ms: 7,
            ..Default::default()
        };
        let encoded = EncodedEvent::from_event(&to_event(99, notification));
        let event = Event::decode(encoded.encode_to_vec().as_slice()).unwrap();
        assert_eq!(event.sequence, 99);
        assert_eq!(event.received_at_unix_ms, 7);
        assert_eq!(event.payload, Some(Payload::Lifecycle(lifecycle)));
        assert_eq!(encoded.sequence(), 99);
    }

    #[test]
    fn a_batch_decodes_as_an_event_batch_of_its_events_in_order() {
        let mut batch = EncodedBatch::default();
        let small = Notification {
            kind: Some(Kind::Lifecycle(LifecycleNotification::default())),
            received_at_unix_ms: 1,
            ..Default::default()
        };
        let big_change = graph_relay_proto::v1::ChangeNotification { raw_json: "x".repeat(300), ..Default::default() };
        let big = Notification { kind: Some(Kind::Change(big_change)), received_at_unix_ms: 2, ..Default::default() };
        let events = [to_event(5, small), to_event(6, big)];
        for event in &events {
            batch.push(EncodedEvent::from_event(event));
        }
        let encoded = batch.encode_to_vec();
        assert_eq!(encoded.len(), batch.encoded_len());
        let decoded = graph_relay_proto::v1::EventBatch::decode(encoded.as_slice()).unwrap();
        assert_eq!(decoded.events, events, "a length over 127 bytes takes a two-byte varint");
    }

    #[test]
    fn a_batch_is_full_at_its_event_or_byte_limit() {
        let mut batch = EncodedBatch::default();
        let one = gap(1, 1, "x");
        while !batch.is_full() {
            batch.push(one.clone());
        }
        assert_eq!(batch.events().len(), MAX_BATCH_EVENTS);
        let mut batch = EncodedBatch::default();
        batch.push(EncodedEvent::from_stored(1, Bytes::from(vec![0; MAX_BATCH_BYTES])));
        assert!(batch.is_full(), "one huge event fills a batch alone");
        assert!(batch.take().events().len() == 1 && batch.is_empty());
    }

    #[test]
    fn notifications_of_a_kilobyte_fill_a_batch_by_bytes_long_before_the_event_limit() {
        let mut batch = EncodedBatch::default();
        let notification = EncodedEvent::from_stored(1, Bytes::from(vec![0; 1024]));
        while !batch.is_full() {
            batch.push(notification.clone());
        }
        assert_eq!(batch.events().len(), MAX_BATCH_BYTES / 1024);
        assert!(batch.events().len() < MAX_BATCH_EVENTS / 2, "the byte limit is what bounds a busy stream");
    }

    #[test]
    fn a_redacted_event_keeps_everything_but_the_decrypted_data() {
        let change = ChangeNotification {
            raw_json: "{}".into(),
            decrypted_resource_data_json: "{\"subject\":\"secret\"}".into(),
            ..Default::default()
        };
        let event = to_event(
            42,
            Notification { kind: Some(Kind::Change(change.clone())), received_at_unix_ms: 7, ..Default::default() },
        );
        let copy = Event::decode(redacted(&event).expect("it has decrypted data").bytes().as_ref()).unwrap();
        let expected = ChangeNotification { decrypted_resource_data_json: String::new(), ..change };
        assert_eq!(copy, Event { sequence: 42, payload: Some(Payload::Change(expected)), received_at_unix_ms: 7 });
        let plain = Notification {
            kind: Some(Kind::Change(ChangeNotification::default())),
            received_at_unix_ms: 1,
            ..Default::default()
        };
        assert!(redacted(&to_event(1, plain)).is_none(), "nothing to redact, no copy");
    }

    #[test]
    fn a_gap_carries_its_range_and_takes_its_last_sequence() {
        let event = Event::decode(gap(3, 9, "retention").bytes().as_ref()).unwrap();
        assert_eq!(event.sequence, 9);
        let Some(Payload::Gap(gap)) = event.payload else { panic!("gap expected") };
        assert_eq!((gap.from_sequence, gap.to_sequence, gap.reason.as_str()), (3, 9, "retention"));
    }
}
