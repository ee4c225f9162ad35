//! Parsing and validating a Graph notification collection (docs/graph-protocol.md
//! sections 3-4) into the messages the fan-out stores.
//!
//! Two levels of failure, on purpose:
//! - the BODY is unusable (not JSON, no `value`, ...): the request is refused
//!   with a specific 4xx, because no retry will ever make it valid;
//! - an ITEM is unusable (wrong clientState, missing field): that item is
//!   rejected and recorded, the rest is accepted, and Graph still gets 202.
//!   Graph's guidance for forged items is to answer 202 so a forger learns
//!   nothing, and a bad neighbour must not cost a good item its delivery.

use graph_relay_proto::v1::{notification::Kind, ChangeNotification, LifecycleNotification, Notification};
use serde_json::Value;
use thiserror::Error;

use crate::client_state::ClientStates;
use crate::delivery::RequestId;
use crate::envelope::{self, EnvelopeError};
pub use crate::item_fields::ItemError;
use crate::item_fields::{self, object_json, optional, required, ItemFields};
use crate::json_object::{self, MaybeObject, RawObject};

/// Largest body accepted. Graph documents no maximum; 1 MiB is far above its
/// batches and well inside a Worker's memory.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Why a whole request body was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("body is not valid UTF-8")]
    NotUtf8,
    #[error("JSON is nested too deeply")]
    TooDeep,
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("body must be a JSON object with a \"value\" array")]
    NoValueArray,
    #[error("\"value\" is empty: there is nothing to accept")]
    EmptyValue,
}

/// An item that was not accepted, with what an operator needs to find it.
#[derive(Debug, PartialEq, Eq)]
pub struct Rejection {
    /// Position in `value`, to find the item in a captured payload.
    pub index: usize,
    /// Which Graph subscription it claims to come from, when it says so.
    pub subscription_id: Option<String>,
    pub reason: ItemError,
}

impl Rejection {
    /// Where the item is: `value[i] subscription=…` (`-` when it says none).
    pub fn locator(&self) -> String {
        format!("value[{}] subscription={}", self.index, self.subscription_id.as_deref().unwrap_or("-"))
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.locator(), self.reason)
    }
}

/// The outcome of a collection that parsed.
#[derive(Debug, Default)]
pub struct Batch {
    /// Accepted items, in the order Graph sent them, ready for the fan-out.
    pub notifications: Vec<Notification>,
    /// Items that were refused; they are logged, never forwarded.
    pub rejections: Vec<Rejection>,
    /// The envelope's `validationTokens` as sent (`Some(Null)` is meaningful).
    pub validation_tokens: Option<Value>,
    /// The `tenantId` of each item carrying `encryptedContent` ("" when it
    /// names none), accepted or not: the tokens must cover them all.
    pub rich_tenants: Vec<String>,
}

impl Batch {
    /// Whether any item carries `encryptedContent` (then tokens are required).
    pub fn has_encrypted_content(&self) -> bool {
        !self.rich_tenants.is_empty()
    }

    /// Whether the batch's validationTokens must be checked before anything
    /// of it is delivered. Only when some item passed clientState: a batch
    /// of forged items delivers nothing anyway, and must cost neither an RSA
    /// check nor a quarantine entry (forgers cannot fill either).
    pub fn needs_token_check(&self) -> bool {
        !self.notifications.is_empty() && (self.validation_tokens.is_some() || self.has_encrypted_content())
    }
}

/// Parses `body` and validates each item against `client_states`; each
/// accepted item gets its delivery id from `request` and its position.
pub fn parse(
    body: &[u8],
    client_states: &ClientStates,
    received_at_unix_ms: i64,
    request: &RequestId,
) -> Result<Batch, BodyError> {
    let (items, validation_tokens) = envelope(body)?;
    let mut batch = Batch { validation_tokens, notifications: Vec::with_capacity(items.len()), ..Batch::default() };
    let mut client_state = ClientStateCheck::new(client_states);
    for (index, item) in items.iter().enumerate() {
        let MaybeObject::Object(item) = item else {
            batch.rejections.push(Rejection { index, subscription_id: None, reason: ItemError::NotAnObject });
            continue;
        };
        let fields = ItemFields::read(item);
        if item_fields::is_present(fields.encrypted_content) {
            batch
                .rich_tenants
                .push(item_fields::optional(fields.tenant_id, "tenantId").ok().flatten().unwrap_or_default());
        }
        match validate_item(item, &fields, &mut client_state) {
            Ok(kind) => batch.notifications.push(Notification {
                kind: Some(kind),
                received_at_unix_ms,
                delivery_id: request.item(index),
            }),
            Err(reason) => {
                let subscription_id = item_fields::optional(fields.subscription_id, "subscriptionId").ok().flatten();
                batch.rejections.push(Rejection { index, subscription_id, reason })
            }
        }
    }
    Ok(batch)
}

/// The envelope's `value` items and its `validationTokens` field.
fn envelope(body: &[u8]) -> Result<(Vec<MaybeObject<'_>>, Option<Value>), BodyError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(BodyError::TooLarge);
    }
    let text = std::str::from_utf8(body).map_err(|_| BodyError::NotUtf8)?;
    if !json_object::check_depth(text) {
        return Err(BodyError::TooDeep);
    }
    let envelope = envelope::read(text).map_err(|e| match e {
        EnvelopeError::Syntax(e) => BodyError::NotJson(e.to_string()),
        EnvelopeError::Shape => BodyError::NoValueArray,
    })?;
    match envelope.items {
        None => Err(BodyError::NoValueArray),
        Some(items) if items.is_empty() => Err(BodyError::EmptyValue),
        Some(items) => Ok((items, envelope.validation_tokens)),
    }
}

/// The clientState check of a batch. Graph sends one subscription's items
/// together, so a batch repeats one value: the constant-time comparison
/// runs once per distinct value in a row. Whether an item repeats the one
/// before compares two values the SENDER wrote, so its timing says nothing
/// about an accepted one.
struct ClientStateCheck<'s, 'a> {
    accepted: &'s ClientStates,
    /// The previous item's clientState as written, and whether it matched.
    last: Option<(&'a str, bool)>,
}

impl<'s, 'a> ClientStateCheck<'s, 'a> {
    fn new(accepted: &'s ClientStates) -> Self {
        Self { accepted, last: None }
    }

    /// Checks an item's raw `clientState` value.
    fn check(&mut self, raw: Option<&'a str>) -> Result<(), ItemError> {
        let raw = match raw {
            None | Some("null") => return Err(ItemError::ClientStateMissing),
            Some(raw) => raw,
        };
        let matched = match self.last {
            Some((last, matched)) if last == raw => matched,
            _ => {
                let matched = json_object::string_value(raw).is_some_and(|state| self.accepted.accepts(&state));
                self.last = Some((raw, matched));
                matched
            }
        };
        if matched {
            Ok(())
        } else {
            Err(ItemError::ClientStateMismatch)
        }
    }
}

/// Checks the clientState FIRST: a forged item is reported as forged, whatever
/// else is wrong with it.
fn validate_item<'a>(
    item: &RawObject<'a>,
    fields: &ItemFields<'a>,
    client_state: &mut ClientStateCheck<'_, 'a>,
) -> Result<Kind, ItemError> {
    client_state.check(fields.client_state)?;
    let subscription_id = required(fields.subscription_id, "subscriptionId")?;
    let expiration = || optional(fields.subscription_expiration_date_time, "subscriptionExpirationDateTime");
    let raw_json = || item.to_json_without("clientState");
    Ok(match (optional(fields.change_type, "changeType")?, optional(fields.lifecycle_event, "lifecycleEvent")?) {
        (Some(_), Some(_)) => return Err(ItemError::BothKinds),
        (None, None) => return Err(ItemError::NeitherKind),
        (Some(change_type), None) => Kind::Change(ChangeNotification {
            id: optional(fields.id, "id")?.unwrap_or_default(),
            subscription_expiration_date_time: expiration()?.unwrap_or_default(),
            change_type: lower_case(change_type),
            resource: required(fields.resource, "resource")?,
            tenant_id: optional(fields.tenant_id, "tenantId")?.unwrap_or_default(),
            organization_id: optional(fields.organization_id, "organizationId")?.unwrap_or_default(),
            resource_data_json: object_json(fields.resource_data, "resourceData")?,
            encrypted_content: item_fields::encrypted_content(fields.encrypted_content)?,
            subscription_id,
            raw_json: raw_json(),
            // Filled in by the fan-out, which holds the private keys.
            decrypted_resource_data_json: String::new(),
            decryption_error: String::new(),
        }),
        (None, Some(lifecycle_event)) => Kind::Lifecycle(LifecycleNotification {
            subscription_expiration_date_time: expiration()?.unwrap_or_default(),
            lifecycle_event,
            resource: optional(fields.resource, "resource")?.unwrap_or_default(),
            tenant_id: optional(fields.tenant_id, "tenantId")?.unwrap_or_default(),
            organization_id: optional(fields.organization_id, "organizationId")?.unwrap_or_default(),
            subscription_id,
            raw_json: raw_json(),
            // reason, previous_subscription_id: only the fan-out's resyncNeeded events.
            ..Default::default()
        }),
    })
}

/// `text` in ASCII lower case, in place: Graph's change types mostly
/// arrive lower-cased already, and need no second string.
fn lower_case(mut text: String) -> String {
    text.make_ascii_lowercase();
    text
}

#[cfg(test)]
#[path = "collection_tests.rs"]
mod tests;
