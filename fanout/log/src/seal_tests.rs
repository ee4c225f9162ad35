use super::*;

const A: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const B: &str = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f";

fn keys(text: &str) -> LogKeys {
    LogKeys::parse(text).unwrap()
}

fn with(keys: Option<&LogKeys>) -> Opening<'_> {
    Opening { keys, sealed_from: None }
}

#[test]
fn a_sealed_group_opens_to_its_plaintext_and_hides_it() {
    let group = b"\0\0\0\x05hello message body";
    let sealed = keys(A).seal(7, group).unwrap();
    assert!(!sealed.windows(5).any(|w| w == b"hello"), "no plaintext in the sealed form");
    assert_eq!(open(with(Some(&keys(A))), 7, &sealed).unwrap().as_ref(), group);
    assert_ne!(keys(A).seal(7, group).unwrap(), sealed, "a fresh nonce per seal");
}

#[test]
fn a_sealed_group_needs_its_key_its_sequence_and_every_byte() {
    let sealed = keys(A).seal(7, b"\0\0\0\x01x").unwrap();
    assert_eq!(open(with(None), 7, &sealed), Err(SealError::NoKey { first: 7 }));
    assert_eq!(open(with(Some(&keys(B))), 7, &sealed), Err(SealError::UnknownKey { first: 7 }));
    assert_eq!(
        open(with(Some(&keys(A))), 8, &sealed),
        Err(SealError::Altered { first: 8 }),
        "moved to another sequence"
    );
    let mut altered = sealed.clone();
    *altered.last_mut().unwrap() ^= 1;
    assert_eq!(open(with(Some(&keys(A))), 7, &altered), Err(SealError::Altered { first: 7 }));
    assert_eq!(open(with(Some(&keys(A))), 7, &sealed[..10]), Err(SealError::Altered { first: 7 }), "cut short");
}

#[test]
fn the_first_key_seals_and_every_key_opens_so_keys_rotate() {
    let old = keys(A).seal(1, b"\0\0\0\x03old").unwrap();
    let rotated = keys(&format!("# new first\n{B}\n\n{A}\n"));
    let new = rotated.seal(2, b"\0\0\0\x03new").unwrap();
    assert_eq!(open(with(Some(&rotated)), 1, &old).unwrap().as_ref(), b"\0\0\0\x03old");
    assert_eq!(open(with(Some(&rotated)), 2, &new).unwrap().as_ref(), b"\0\0\0\x03new");
    assert_eq!(open(with(Some(&keys(A))), 2, &new), Err(SealError::UnknownKey { first: 2 }), "sealed with B");
}

#[test]
fn plaintext_groups_read_as_they_are_with_or_without_keys() {
    let group = b"\0\0\0\x03abc";
    assert!(matches!(open(with(Some(&keys(A))), 1, group), Ok(Cow::Borrowed(g)) if g == group));
    assert!(matches!(open(with(None), 1, group), Ok(Cow::Borrowed(g)) if g == group));
}

#[test]
fn keys_are_64_hex_characters_one_per_line() {
    assert_eq!(LogKeys::parse("abcd").unwrap_err(), SealError::KeyLength { line: 1, found: 4 });
    assert_eq!(
        LogKeys::parse(&format!("{A}\n{}", A.replace("0a", "zz"))).unwrap_err(),
        SealError::KeyNotHex { line: 2 }
    );
    assert_eq!(LogKeys::parse(&A.replace("0a", "+a")).unwrap_err(), SealError::KeyNotHex { line: 1 });
    assert_eq!(LogKeys::parse("# only a comment\n\n").unwrap_err(), SealError::NoKeys);
    assert!(LogKeys::parse(&format!("  {}\n", A.to_uppercase())).is_ok());
    assert_eq!(format!("{:?}", keys(&format!("{A}\n{B}"))), "LogKeys(2 keys)");
}

#[test]
fn from_its_sealed_from_on_a_plaintext_group_does_not_open() {
    let keys = keys(A);
    let plain = b"a plaintext group".to_vec();
    let opening = Opening { keys: Some(&keys), sealed_from: Some(10) };
    assert!(open(opening, 9, &plain).is_ok(), "stored before the log was sealed");
    assert_eq!(open(opening, 10, &plain), Err(SealError::NotSealed { first: 10, sealed_from: 10 }));
    let sealed = keys.seal(10, &plain).unwrap();
    assert_eq!(open(opening, 10, &sealed).unwrap().as_ref(), plain.as_slice());
}

#[test]
fn shared_log_messages_open_only_with_the_key_and_only_as_messages() {
    let keys = LogKeys::parse(&"ab".repeat(32)).unwrap();
    let sealed = seal_message(Some(&keys), b"a notification").unwrap().into_owned();
    assert!(!sealed.windows(14).any(|w| w == b"a notification"), "nothing readable at rest");
    assert_eq!(open_message(Some(&keys), &sealed).unwrap().as_ref(), b"a notification");
    assert_eq!(open_message(None, &sealed), Err(SealError::NoKey { first: u64::MAX }));
    // A plaintext message where every message must be sealed is refused.
    assert!(matches!(open_message(Some(&keys), b"\x0aplain"), Err(SealError::NotSealed { .. })));
    // A sealed log group is not a message.
    let group = keys.seal(1, b"a group").unwrap();
    assert!(matches!(open_message(Some(&keys), &group), Err(SealError::Altered { .. })));
    assert_eq!(seal_message(None, b"as is").unwrap().as_ref(), b"as is");
}
