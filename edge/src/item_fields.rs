//! The fields of a notification item the edge reads, typed, and why an item
//! is refused ([`ItemError`], naming the field).
//!
//! An item's members are looked through once ([`ItemFields::read`]), not
//! once per field: an item has about ten members and the edge reads about
//! ten fields, and the search by name was a sizeable part of the per-item
//! work in the Worker.

use graph_relay_proto::v1::EncryptedContent;
use thiserror::Error;

use crate::json_object::{self, MaybeObject, RawObject};

/// Why one item of `value` was not accepted. Never carries a secret.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ItemError {
    #[error("item is not a JSON object")]
    NotAnObject,
    #[error("clientState is missing")]
    ClientStateMissing,
    #[error("clientState does not match any accepted value")]
    ClientStateMismatch,
    #[error("required field {0} is missing")]
    Missing(&'static str),
    #[error("field {0} must be a string")]
    NotAString(&'static str),
    #[error("field {0} must be an object")]
    NotAnObjectField(&'static str),
    #[error("item has both changeType and lifecycleEvent")]
    BothKinds,
    #[error("item has neither changeType nor lifecycleEvent")]
    NeitherKind,
}

/// The raw JSON text of each field the edge reads, `None` when absent. A
/// repeated key counts as its last value, as [`RawObject::get`] reads it.
#[derive(Debug, Default)]
pub struct ItemFields<'a> {
    pub client_state: Option<&'a str>,
    pub subscription_id: Option<&'a str>,
    pub change_type: Option<&'a str>,
    pub lifecycle_event: Option<&'a str>,
    pub id: Option<&'a str>,
    pub subscription_expiration_date_time: Option<&'a str>,
    pub resource: Option<&'a str>,
    pub tenant_id: Option<&'a str>,
    pub organization_id: Option<&'a str>,
    pub resource_data: Option<&'a str>,
    pub encrypted_content: Option<&'a str>,
}

impl<'a> ItemFields<'a> {
    /// Finds the fields in one pass over `item`'s members.
    pub fn read(item: &RawObject<'a>) -> Self {
        let mut fields = Self::default();
        for (key, value) in item.members() {
            let slot = match key {
                "clientState" => &mut fields.client_state,
                "subscriptionId" => &mut fields.subscription_id,
                "changeType" => &mut fields.change_type,
                "lifecycleEvent" => &mut fields.lifecycle_event,
                "id" => &mut fields.id,
                "subscriptionExpirationDateTime" => &mut fields.subscription_expiration_date_time,
                "resource" => &mut fields.resource,
                "tenantId" => &mut fields.tenant_id,
                "organizationId" => &mut fields.organization_id,
                "resourceData" => &mut fields.resource_data,
                "encryptedContent" => &mut fields.encrypted_content,
                _ => continue,
            };
            *slot = Some(value);
        }
        fields
    }
}

/// Whether a field is there and not null.
pub fn is_present(raw: Option<&str>) -> bool {
    raw.is_some_and(|raw| raw != "null")
}

/// A string field that may be absent, null or empty (all `None`).
pub fn optional(raw: Option<&str>, name: &'static str) -> Result<Option<String>, ItemError> {
    match raw {
        None | Some("null") => Ok(None),
        Some(raw) => match json_object::string_value(raw) {
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => Ok(Some(s.into_owned())),
            None => Err(ItemError::NotAString(name)),
        },
    }
}

/// A string field that must be there.
pub fn required(raw: Option<&str>, name: &'static str) -> Result<String, ItemError> {
    optional(raw, name)?.ok_or(ItemError::Missing(name))
}

/// An object field kept whole as the sender's JSON text ("" when absent).
pub fn object_json(raw: Option<&str>, name: &'static str) -> Result<String, ItemError> {
    match raw {
        None | Some("null") => Ok(String::new()),
        Some(object) if object.starts_with('{') => Ok(object.to_owned()),
        Some(_) => Err(ItemError::NotAnObjectField(name)),
    }
}

/// The `encryptedContent` field of a rich notification.
pub fn encrypted_content(raw: Option<&str>) -> Result<Option<EncryptedContent>, ItemError> {
    let content = match raw {
        None | Some("null") => return Ok(None),
        Some(raw) => match MaybeObject::read(raw) {
            Ok(MaybeObject::Object(content)) => content,
            _ => return Err(ItemError::NotAnObjectField("encryptedContent")),
        },
    };
    let field = |name| content.get(name);
    Ok(Some(EncryptedContent {
        data: required(field("data"), "data")?,
        data_key: required(field("dataKey"), "dataKey")?,
        data_signature: optional(field("dataSignature"), "dataSignature")?.unwrap_or_default(),
        encryption_certificate_id: optional(field("encryptionCertificateId"), "encryptionCertificateId")?
            .unwrap_or_default(),
        encryption_certificate_thumbprint: optional(
            field("encryptionCertificateThumbprint"),
            "encryptionCertificateThumbprint",
        )?
        .unwrap_or_default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_object::read_object as object;

    #[test]
    fn every_field_is_found_and_a_repeated_key_reads_as_its_last_value() {
        let text = r#"{"clientState":"a","subscriptionId":"s","changeType":"created","lifecycleEvent":null,
            "id":"i","subscriptionExpirationDateTime":"x","resource":"r","tenantId":"t","organizationId":"o",
            "resourceData":{"k":1},"encryptedContent":{},"other":"ignored","id":"last"}"#;
        let item = object(text);
        let fields = ItemFields::read(&item);
        let named = [
            ("clientState", fields.client_state),
            ("subscriptionId", fields.subscription_id),
            ("changeType", fields.change_type),
            ("lifecycleEvent", fields.lifecycle_event),
            ("id", fields.id),
            ("subscriptionExpirationDateTime", fields.subscription_expiration_date_time),
            ("resource", fields.resource),
            ("tenantId", fields.tenant_id),
            ("organizationId", fields.organization_id),
            ("resourceData", fields.resource_data),
            ("encryptedContent", fields.encrypted_content),
        ];
        for (name, found) in named {
            assert_eq!(found, item.get(name), "{name}");
            assert!(found.is_some(), "{name}");
        }
        assert_eq!(fields.id, Some(r#""last""#));
    }

    #[test]
    fn absent_fields_are_none_and_typed_reads_name_the_field() {
        let item = object(r#"{"subscriptionId":7,"resourceData":"text"}"#);
        let fields = ItemFields::read(&item);
        assert_eq!(fields.client_state, None);
        assert!(!is_present(Some("null")) && !is_present(None) && is_present(Some("1")));
        assert_eq!(optional(fields.id, "id"), Ok(None));
        assert_eq!(optional(Some(r#""""#), "id"), Ok(None), "empty counts as absent");
        assert_eq!(required(fields.resource, "resource"), Err(ItemError::Missing("resource")));
        assert_eq!(required(fields.subscription_id, "subscriptionId"), Err(ItemError::NotAString("subscriptionId")));
        assert_eq!(object_json(fields.resource_data, "resourceData"), Err(ItemError::NotAnObjectField("resourceData")));
        assert_eq!(optional(Some(r#""a\"b""#), "id"), Ok(Some("a\"b".to_owned())), "escapes are decoded");
    }
}
