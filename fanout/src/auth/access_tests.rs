use super::*;
use graph_relay_proto::v1::{event::Payload, ChangeNotification};

fn metadata(token: &str) -> MetadataMap {
    let mut map = MetadataMap::new();
    map.insert("authorization", format!("Bearer {token}").parse().unwrap());
    map
}

fn access() -> Access {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("subscribers.toml");
    let file = format!(
        r#"
[[subscriber]]
name = "mail"
token_sha256 = "{}"
tenants = ["tenant-a"]
resources = ["users/*/messages/*"]

[[subscriber]]
name = "security"
token_sha256 = "{}"
decrypted_data = true
"#,
        hash_token("mail-token-0123456789"),
        hash_token("security-token-0123456789")
    );
    std::fs::write(&path, file).unwrap();
    Access::load(&path).unwrap()
}

fn change(tenant: &str, resource: &str) -> Payload {
    Payload::Change(ChangeNotification { tenant_id: tenant.into(), resource: resource.into(), ..Default::default() })
}

#[test]
fn tokens_authenticate_to_their_scope_only() {
    let access = access();
    assert_eq!(access.authenticate(&metadata("mail-token-0123456789")).unwrap().name, "mail");
    let security = access.authenticate(&metadata("security-token-0123456789")).unwrap();
    assert!(security.decrypted_data && security.tenants.is_empty());
    for bad in ["mail-token-012345678", "unknown-token-0000000", ""] {
        assert_eq!(access.authenticate(&metadata(bad)).unwrap_err().code(), tonic::Code::Unauthenticated, "{bad}");
    }
    assert_eq!(access.authenticate(&MetadataMap::new()).unwrap_err().code(), tonic::Code::Unauthenticated);
}

#[test]
fn empty_filters_are_narrowed_and_wider_ones_refused() {
    let access = access();
    let mail = access.authenticate(&metadata("mail-token-0123456789")).unwrap();
    let mut empty = pb::Filter::default();
    mail.authorize(&mut empty).unwrap();
    assert_eq!(empty.tenant_ids, ["tenant-a"]);
    assert_eq!(empty.resources, ["users/*/messages/*"]);

    let mut narrower = pb::Filter { resources: vec!["/Users/u-1/messages/*".into()], ..Default::default() };
    mail.authorize(&mut narrower).unwrap();
    for wider in [
        pb::Filter { tenant_ids: vec!["tenant-b".into()], ..Default::default() },
        pb::Filter { resources: vec!["users/**".into()], ..Default::default() },
        pb::Filter { resources: vec!["groups/*".into()], ..Default::default() },
    ] {
        let status = mail.authorize(&mut wider.clone()).unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{wider:?}");
        assert!(status.message().contains("\"mail\""));
    }
}

#[test]
fn the_scope_applies_at_delivery_whatever_the_filter() {
    let access = access();
    let mail = access.authenticate(&metadata("mail-token-0123456789")).unwrap();
    let filter = Filter::compile(None).unwrap().within(mail.filter());
    assert!(filter.matches(&change("tenant-a", "users/u/messages/m")));
    assert!(!filter.matches(&change("tenant-b", "users/u/messages/m")));
    assert!(!filter.matches(&change("tenant-a", "users/u/events/e")));
}

#[test]
fn bad_files_are_refused_with_the_culprit_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(&path, "[[subscriber]]\nname = \"x\"\ntoken_sha256 = \"abc\"\n").unwrap();
    assert!(Access::load(&path).unwrap_err().contains("subscriber \"x\": token_sha256 must be 64 hex digits"));
    std::fs::write(&path, "[[subscriber]]\nname = \"x\"\ntoken = \"plaintext\"\n").unwrap();
    assert!(Access::load(&path).is_err(), "plaintext tokens are not accepted");
}

#[test]
fn scope_entries_that_name_nothing_are_refused_instead_of_granting_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    let digest = "ab".repeat(32);
    for (field, culprit) in [
        ("tenants = [\"t1\", \"\"]", "tenants[1] is empty"),
        ("tenants = [\"  \"]", "tenants[0] is empty"),
        ("resources = [\"/\"]", "resources[0] \"/\" names no resource"),
        ("resources = [\"users/*\", \"//\"]", "resources[1] \"//\" names no resource"),
    ] {
        std::fs::write(&path, format!("[[subscriber]]\nname = \"team\"\ntoken_sha256 = \"{digest}\"\n{field}\n"))
            .unwrap();
        let error = Access::load(&path).unwrap_err();
        assert!(error.contains("subscriber \"team\"") && error.contains(culprit), "{field}: {error}");
    }
    std::fs::write(
        &path,
        format!("[[subscriber]]\nname = \"team\"\ntoken_sha256 = \"{digest}\"\nresources = [\"/users/*\"]\n"),
    )
    .unwrap();
    assert!(Access::load(&path).is_ok(), "a leading slash is fine");
}
