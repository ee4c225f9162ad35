//! What a subscriber's filter reads of an event, and reading only that from
//! a stored event.
//!
//! A subscriber catching up from the log decides for every stored event
//! whether its filter takes it, and with a selective filter it drops most of
//! them. Decoding each into a `graphrelay.v1.Event` allocated and UTF-8
//! checked every string of the notification (its ~1 KB `raw_json` and
//! `resource_data_json` too) only to look at four short ones. Reading just
//! those fields takes 170 ns per ~1 KB event instead of ~360 ns, and a
//! selective replay scans ~10% more events per second (docs/performance-history.md,
//! "Selective replay").
//!
//! # Layout
//! - `Route`: the borrowed view a `Filter` decides on, whichever way the
//!   event arrived. The live path takes it from the event it already holds
//!   decoded (`Route::of`).
//! - `StoredRoute`: a prost message declaring only the fields of
//!   `graphrelay.v1.Event` (`proto/graphrelay/v1/fanout.proto`) that a
//!   `Route` needs, under the same tags. prost skips every other field by its
//!   length, and the fields kept are `bytes` slices of the stored buffer (no
//!   copy). Tests below check it against the generated `Event` so the two
//!   cannot drift apart unnoticed.
//! - `RouteSpans`: where a read route's fields lie in the stored event, kept
//!   by the log's group index (`index`) so the route is read once per event,
//!   not once per subscriber scanning it.

use bytes::Bytes;
use graph_relay_proto::v1::event::Payload;

/// What distinguishes the kinds of event for a filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind<'a> {
    /// A change notification and its `changeType`.
    Change(&'a str),
    /// A lifecycle notification and its `lifecycleEvent`.
    Lifecycle(&'a str),
    /// A gap: every subscriber must learn of it, whatever its filter.
    Gap,
}

/// The fields of an event a filter decides on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route<'a> {
    pub kind: Kind<'a>,
    pub subscription_id: &'a str,
    pub tenant_id: &'a str,
    /// The Graph resource path, as Graph sent it (a leading `/` or not).
    pub resource: &'a str,
}

impl<'a> Route<'a> {
    /// The route of an event held decoded.
    pub fn of(payload: &'a Payload) -> Self {
        match payload {
            Payload::Change(c) => Self {
                kind: Kind::Change(&c.change_type),
                subscription_id: &c.subscription_id,
                tenant_id: &c.tenant_id,
                resource: &c.resource,
            },
            Payload::Lifecycle(l) => Self {
                kind: Kind::Lifecycle(&l.lifecycle_event),
                subscription_id: &l.subscription_id,
                tenant_id: &l.tenant_id,
                resource: &l.resource,
            },
            Payload::Gap(_) => Self::GAP,
        }
    }

    const GAP: Self = Self { kind: Kind::Gap, subscription_id: "", tenant_id: "", resource: "" };
}

/// Why a stored event's route could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("stored event does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("stored event has a field that is not UTF-8: {0}")]
    NotText(#[from] std::str::Utf8Error),
    /// Only a change in how prost decodes `bytes` fields gets here.
    #[error("a field of the stored event was not read as a slice of it")]
    NotASlice,
}

/// A stored `graphrelay.v1.Event`, read for its route only.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredRoute {
    #[prost(oneof = "StoredPayload", tags = "2, 3, 5")]
    payload: Option<StoredPayload>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum StoredPayload {
    #[prost(message, tag = "2")]
    Change(ChangeRoute),
    #[prost(message, tag = "3")]
    Lifecycle(LifecycleRoute),
    #[prost(message, tag = "5")]
    Gap(GapRoute),
}

/// `graphrelay.v1.ChangeNotification`'s routing fields (`string` on the
/// wire, read as bytes so they stay slices of the stored buffer).
#[derive(Clone, PartialEq, prost::Message)]
struct ChangeRoute {
    #[prost(bytes = "bytes", tag = "2")]
    subscription_id: Bytes,
    #[prost(bytes = "bytes", tag = "4")]
    change_type: Bytes,
    #[prost(bytes = "bytes", tag = "5")]
    resource: Bytes,
    #[prost(bytes = "bytes", tag = "6")]
    tenant_id: Bytes,
    /// Read only to know whether a subscriber without the decrypted scope
    /// needs a redacted copy.
    #[prost(bytes = "bytes", tag = "11")]
    decrypted_resource_data_json: Bytes,
}

/// `graphrelay.v1.LifecycleNotification`'s routing fields.
#[derive(Clone, PartialEq, prost::Message)]
struct LifecycleRoute {
    #[prost(bytes = "bytes", tag = "1")]
    subscription_id: Bytes,
    #[prost(bytes = "bytes", tag = "3")]
    lifecycle_event: Bytes,
    #[prost(bytes = "bytes", tag = "4")]
    resource: Bytes,
    #[prost(bytes = "bytes", tag = "5")]
    tenant_id: Bytes,
}

/// A gap carries nothing a filter reads.
#[derive(Clone, PartialEq, prost::Message)]
struct GapRoute {}

impl StoredRoute {
    /// Reads the route of the encoded event `stored`, sharing its buffer.
    pub fn read(stored: Bytes) -> Result<Self, RouteError> {
        Ok(<Self as prost::Message>::decode(stored)?)
    }

    /// The route, or `None` for an event without a payload (which no filter
    /// takes).
    pub fn route(&self) -> Result<Option<Route<'_>>, RouteError> {
        Ok(Some(match &self.payload {
            None => return Ok(None),
            Some(StoredPayload::Change(c)) => Route {
                kind: Kind::Change(text(&c.change_type)?),
                subscription_id: text(&c.subscription_id)?,
                tenant_id: text(&c.tenant_id)?,
                resource: text(&c.resource)?,
            },
            Some(StoredPayload::Lifecycle(l)) => Route {
                kind: Kind::Lifecycle(text(&l.lifecycle_event)?),
                subscription_id: text(&l.subscription_id)?,
                tenant_id: text(&l.tenant_id)?,
                resource: text(&l.resource)?,
            },
            Some(StoredPayload::Gap(_)) => Route::GAP,
        }))
    }

    /// Whether the event carries decrypted resource data, which a subscriber
    /// without the decrypted scope must get redacted (`wire::redacted`).
    pub fn carries_decrypted_data(&self) -> bool {
        matches!(&self.payload, Some(StoredPayload::Change(c)) if !c.decrypted_resource_data_json.is_empty())
    }
}

/// A field's place in the stored event: offset and length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    /// Where `field`, a slice of `event` as prost leaves it, lies in it.
    fn of(field: &Bytes, event: &[u8]) -> Result<Self, RouteError> {
        if field.is_empty() {
            return Ok(Self::default());
        }
        let start = (field.as_ptr() as usize).wrapping_sub(event.as_ptr() as usize);
        let inside = start.checked_add(field.len()).is_some_and(|end| end <= event.len());
        match (inside, u32::try_from(start), u32::try_from(field.len())) {
            (true, Ok(start), Ok(len)) => Ok(Self { start, len }),
            _ => Err(RouteError::NotASlice),
        }
    }

    fn text<'a>(&self, event: &'a [u8]) -> Result<&'a str, RouteError> {
        let (start, len) = (self.start as usize, self.len as usize);
        let field = event.get(start..start + len).ok_or(RouteError::NotASlice)?;
        Ok(std::str::from_utf8(field)?)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SpanKind {
    Change(Span),
    Lifecycle(Span),
    Gap,
}

/// A stored event's route as places in its bytes: read once (with
/// `StoredRoute::spans`), it gives the `Route` again without decoding, and
/// without holding a reference to the buffer (no shared counter touched).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteSpans {
    kind: SpanKind,
    subscription_id: Span,
    tenant_id: Span,
    resource: Span,
    /// Whether the event carries decrypted resource data (`carries_decrypted_data`).
    decrypted: bool,
}

impl RouteSpans {
    /// The route, from the same bytes the spans were read from.
    pub fn route<'a>(&self, event: &'a [u8]) -> Result<Route<'a>, RouteError> {
        let kind = match self.kind {
            SpanKind::Change(span) => Kind::Change(span.text(event)?),
            SpanKind::Lifecycle(span) => Kind::Lifecycle(span.text(event)?),
            SpanKind::Gap => return Ok(Route::GAP),
        };
        Ok(Route {
            kind,
            subscription_id: self.subscription_id.text(event)?,
            tenant_id: self.tenant_id.text(event)?,
            resource: self.resource.text(event)?,
        })
    }

    pub fn carries_decrypted_data(&self) -> bool {
        self.decrypted
    }
}

impl StoredRoute {
    /// Where this route's fields lie in `event`, the bytes it was read from;
    /// `None` for an event without a payload. Fails on a field that is not
    /// UTF-8, as `route` does.
    pub fn spans(&self, event: &Bytes) -> Result<Option<RouteSpans>, RouteError> {
        let span = |field: &Bytes| {
            text(field)?;
            Span::of(field, event)
        };
        Ok(Some(match &self.payload {
            None => return Ok(None),
            Some(StoredPayload::Change(c)) => RouteSpans {
                kind: SpanKind::Change(span(&c.change_type)?),
                subscription_id: span(&c.subscription_id)?,
                tenant_id: span(&c.tenant_id)?,
                resource: span(&c.resource)?,
                decrypted: self.carries_decrypted_data(),
            },
            Some(StoredPayload::Lifecycle(l)) => RouteSpans {
                kind: SpanKind::Lifecycle(span(&l.lifecycle_event)?),
                subscription_id: span(&l.subscription_id)?,
                tenant_id: span(&l.tenant_id)?,
                resource: span(&l.resource)?,
                decrypted: false,
            },
            Some(StoredPayload::Gap(_)) => RouteSpans {
                kind: SpanKind::Gap,
                subscription_id: Span::default(),
                tenant_id: Span::default(),
                resource: Span::default(),
                decrypted: false,
            },
        }))
    }
}

/// A `string` field read as bytes, checked now that it is needed.
fn text(field: &Bytes) -> Result<&str, std::str::Utf8Error> {
    std::str::from_utf8(field)
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
