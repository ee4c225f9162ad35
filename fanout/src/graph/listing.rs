//! Reading Graph's subscription list without trusting it more than needed.
//!
//! The list decides what the reconciler recreates (`verify`) and adopts
//! (409), so a hostile or broken answer must not steer it:
//! - `@odata.nextLink` is followed only below the configured Graph base URL
//!   (the bearer token goes with every page) and for at most [`MAX_PAGES`];
//! - an item that does not parse is skipped and reported, and its `id`, when
//!   it has one, still counts as listed: one bad item must not make every
//!   subscription look gone.

use std::collections::HashSet;

use serde_json::Value;

use serde::Deserialize;

use super::parse_time;

/// Pages followed at most: Graph pages 100 subscriptions at a time, and an
/// app has far fewer than 100,000 (Graph's quotas are per mailbox, team or
/// tenant, in the thousands).
pub const MAX_PAGES: usize = 1_000;

/// Everything the list said, page after page.
#[derive(Debug, Default)]
pub struct Listing {
    /// The items that parsed.
    pub remotes: Vec<Remote>,
    /// Lower-cased ids of every item that named one, parsed or not.
    pub ids: HashSet<String>,
    /// Why items were skipped: "item N of page P: reason".
    pub malformed: Vec<String>,
    pages: usize,
}

/// Why the list could not be read whole.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ListError {
    #[error("@odata.nextLink {0:?} leaves the Graph base URL; not followed")]
    ForeignNextLink(String),
    #[error("more than {MAX_PAGES} pages of subscriptions; not followed further")]
    TooManyPages,
    #[error("a page of the list has no \"value\" array")]
    NoValue,
}

impl Listing {
    /// Adds one page; returns the next page's URL, if the list goes on.
    pub fn add_page(&mut self, page: &Value, base_url: &str) -> Result<Option<String>, ListError> {
        self.pages += 1;
        let items = page["value"].as_array().ok_or(ListError::NoValue)?;
        for (index, item) in items.iter().enumerate() {
            if let Some(id) = item["id"].as_str() {
                self.ids.insert(id.to_ascii_lowercase());
            }
            match serde_json::from_value::<Remote>(item.clone()) {
                Ok(remote) => self.remotes.push(remote),
                Err(e) => self.malformed.push(format!("item {index} of page {}: {e}", self.pages)),
            }
        }
        let Some(next) = page["@odata.nextLink"].as_str() else { return Ok(None) };
        if !is_below(next, base_url) {
            return Err(ListError::ForeignNextLink(next.to_string()));
        }
        if self.pages >= MAX_PAGES {
            return Err(ListError::TooManyPages);
        }
        Ok(Some(next.to_string()))
    }
}

/// Whether `url` has the base URL's scheme, host and port, and a path below
/// its path (`https://graph.microsoft.com/v1.0` takes
/// `https://graph.microsoft.com/v1.0/subscriptions?$skiptoken=…`).
fn is_below(url: &str, base_url: &str) -> bool {
    let (Ok(url), Ok(base)) = (reqwest::Url::parse(url), reqwest::Url::parse(base_url)) else { return false };
    let base_path = base.path().trim_end_matches('/');
    url.scheme() == base.scheme()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default()
        && url.username().is_empty()
        && url.path().strip_prefix(base_path).is_some_and(|rest| rest.starts_with('/'))
}

/// A subscription as Graph describes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Remote {
    pub id: String,
    pub resource: String,
    pub change_type: String,
    pub expiration_date_time: String,
    /// What Graph says of the rest of the definition (absent: not said).
    #[serde(default)]
    pub notification_url: Option<String>,
    #[serde(default)]
    pub lifecycle_notification_url: Option<String>,
    #[serde(default)]
    pub include_resource_data: Option<bool>,
}

impl Remote {
    /// Whether what Graph lists of this subscription agrees with `entry`
    /// and the edge's URLs: only then may a 409 adopt it.
    pub fn has_definition(&self, entry: &super::plan::Entry, edge: &super::plan::EdgeSettings) -> bool {
        let same_url = |listed: &Option<String>, wanted: Option<&String>| match (listed, wanted) {
            (None, _) => true,
            (Some(listed), Some(wanted)) => listed.eq_ignore_ascii_case(wanted),
            (Some(listed), None) => listed.is_empty(),
        };
        same_url(&self.notification_url, Some(&edge.notification_url))
            && same_url(&self.lifecycle_notification_url, edge.lifecycle_notification_url.as_ref())
            && self.include_resource_data.is_none_or(|rich| rich == entry.include_resource_data)
    }

    pub fn expiration_ms(&self) -> u64 {
        parse_time(&self.expiration_date_time).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BASE: &str = "https://graph.microsoft.com/v1.0";

    fn item(id: &str) -> Value {
        json!({"id": id, "resource": "/users", "changeType": "updated", "expirationDateTime": "2026-12-05T00:00:00Z"})
    }

    #[test]
    fn next_links_are_followed_only_below_the_base_url() {
        let next = |link: &str| Listing::default().add_page(&json!({"value": [], "@odata.nextLink": link}), BASE);
        let good = format!("{BASE}/subscriptions?$skiptoken=abc");
        assert_eq!(next(&good), Ok(Some(good.clone())));
        for foreign in [
            "https://evil.example.com/v1.0/subscriptions",
            "http://graph.microsoft.com/v1.0/subscriptions",
            "https://graph.microsoft.com:8443/v1.0/subscriptions",
            "https://graph.microsoft.com/beta/subscriptions",
            "https://graph.microsoft.com/v1.0evil/subscriptions",
            "https://user@graph.microsoft.com/v1.0/subscriptions",
            "not a url",
        ] {
            assert_eq!(next(foreign), Err(ListError::ForeignNextLink(foreign.into())), "{foreign}");
        }
    }

    #[test]
    fn a_malformed_item_is_skipped_and_reported_and_its_id_still_counts() {
        let mut listing = Listing::default();
        let page = json!({"value": [item("A"), {"id": "B", "resource": 7}, "junk", item("C")]});
        assert_eq!(listing.add_page(&page, BASE), Ok(None));
        let ids: Vec<&str> = listing.remotes.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["A", "C"]);
        assert_eq!(listing.ids, ["a", "b", "c"].into_iter().map(String::from).collect());
        assert_eq!(listing.malformed.len(), 2, "{:?}", listing.malformed);
        assert!(listing.malformed[0].starts_with("item 1 of page 1"));
    }

    #[test]
    fn pages_are_bounded_and_a_page_without_value_is_an_error() {
        let mut listing = Listing::default();
        let page = json!({"value": [], "@odata.nextLink": format!("{BASE}/subscriptions?$skiptoken=x")});
        for _ in 1..MAX_PAGES {
            assert!(listing.add_page(&page, BASE).unwrap().is_some());
        }
        assert_eq!(listing.add_page(&page, BASE), Err(ListError::TooManyPages));
        assert_eq!(Listing::default().add_page(&json!({"error": {}}), BASE), Err(ListError::NoValue));
    }
}
