use super::*;
use crate::vocab::Warning;

fn ctx() -> PostContext {
    PostContext {
        now: Timestamp::parse("now", "2026-11-27T10:00:00Z").unwrap(),
        offset: crate::date::parse_utc_offset("+05:00").unwrap(),
        authority: "KAZ-BS".into(),
        post: "kz-nurzhol".into(),
    }
}

fn id() -> EntryId {
    EntryId::parse("0193a5c2-7b1e-7d3f-9c4a-5e6f7a8b9c0d").unwrap()
}

fn person() -> NewEntryInput {
    NewEntryInput {
        kind: "person".into(),
        category: "wanted-for-arrest".into(),
        reason: "Heroin trafficking, case 12/2026".into(),
        names: vec!["Мухаммад Алиев".into(), "Muhammad Aliyev".into()],
        dobs: vec!["1985-03".into()],
        nationalities: vec!["tjk".into()],
        documents: vec!["passport:TJK:a 1234567".into()],
        warnings: vec!["armed".into()],
        ..Default::default()
    }
}

fn error_of(input: &NewEntryInput) -> String {
    new_entry(input, id(), &ctx()).unwrap_err().to_string()
}

#[test]
fn a_full_person_entry_validates() {
    let draft = new_entry(&person(), id(), &ctx()).unwrap();
    let Subject::Person(p) = &draft.subject else { panic!("not a person") };
    assert_eq!(p.names[0].kind, NameKind::Primary);
    assert_eq!(p.names[0].script, crate::vocab::Script::Cyrillic);
    assert_eq!(p.names[1].kind, NameKind::Alias);
    assert_eq!(p.nationalities, vec!["TJK".to_string()]);
    assert_eq!(p.documents[0].number, "A1234567");
    assert!(draft.warnings.contains(&Warning::Armed));
    assert_eq!(draft.valid_from.to_string(), "2026-11-27");
    assert_eq!(draft.authority, "KAZ-BS");
}

#[test]
fn an_impossible_date_of_birth_is_named() {
    let input = NewEntryInput { dobs: vec!["1985-02-30".into()], ..person() };
    assert!(error_of(&input).contains("impossible date \"1985-02-30\""));
}

#[test]
fn a_date_of_birth_in_the_future_is_refused() {
    let input = NewEntryInput { dobs: vec!["2027".into()], ..person() };
    assert!(error_of(&input).contains("in the future"));
}

#[test]
fn an_unknown_category_lists_the_known_ones() {
    let input = NewEntryInput { category: "bad-guy".into(), ..person() };
    let err = error_of(&input);
    assert!(err.contains("unknown category \"bad-guy\""), "{err}");
    assert!(err.contains("locate-and-inform"), "{err}");
}

#[test]
fn an_empty_name_is_refused() {
    let input = NewEntryInput { names: vec!["   ".into()], ..person() };
    assert_eq!(error_of(&input), "name must not be empty");
    let input = NewEntryInput { names: vec![], ..person() };
    assert!(error_of(&input).contains("needs at least one --name"));
}

#[test]
fn expiry_before_start_is_refused() {
    let input = NewEntryInput { valid_from: Some("2026-12-01".into()), expires: Some("2026-11-30".into()), ..person() };
    assert_eq!(error_of(&input), "expiry 2026-11-30 is before the start date 2026-12-01");
}

#[test]
fn fields_of_another_kind_are_refused() {
    let input = NewEntryInput { plates: vec!["123ABC02".into()], ..person() };
    assert_eq!(error_of(&input), "plate does not apply to a person entry");
}

#[test]
fn unknown_country_codes_are_refused() {
    let input = NewEntryInput { nationalities: vec!["TJ".into()], ..person() };
    assert!(error_of(&input).contains("unknown country code \"TJ\""));
}

#[test]
fn vehicles_need_a_plate_or_vin_and_fold_lookalikes() {
    let mut input = NewEntryInput {
        kind: "vehicle".into(),
        category: "seize-object".into(),
        reason: "stolen".into(),
        ..Default::default()
    };
    assert!(error_of(&input).contains("needs a --plate or a --vin"));
    input.plates = vec!["777 АВС 02".into(), "777ABC02".into()];
    let draft = new_entry(&input, id(), &ctx()).unwrap();
    let Subject::Vehicle(v) = draft.subject else { panic!() };
    assert_eq!(v.plates.len(), 1, "look-alike spellings are one plate");
    assert_eq!(v.plates[0].normalized, "777ABC02");
}

#[test]
fn travel_documents_need_their_identity() {
    let input = NewEntryInput {
        kind: "document".into(),
        category: "seize-object".into(),
        reason: "reported stolen".into(),
        doc_type: Some("passport".into()),
        number: Some("N1234567".into()),
        issuing_state: Some("KGZ".into()),
        ..Default::default()
    };
    assert!(error_of(&input).contains("--doc-status"));
    let input = NewEntryInput { doc_status: Some("stolen".into()), ..input };
    assert!(new_entry(&input, id(), &ctx()).is_ok());
}

#[test]
fn seized_items_need_a_unit_and_a_positive_quantity() {
    assert!(seized_item("heroin:1.5:kg").is_ok());
    assert_eq!(
        seized_item("heroin:1.5").unwrap_err().to_string(),
        "quantity \"heroin:1.5\" has no unit; write SUBSTANCE:QUANTITY:UNIT, e.g. heroin:1.5:kg"
    );
    assert!(matches!(seized_item("heroin:1.5:"), Err(ValidationError::QuantityWithoutUnit { .. })));
    assert!(matches!(seized_item("heroin:-2:kg"), Err(ValidationError::BadQuantity { .. })));
    assert!(matches!(seized_item("heroin:lots:kg"), Err(ValidationError::BadQuantity { .. })));
    assert!(matches!(seized_item("heroin:2:tonnes"), Err(ValidationError::UnknownTerm { .. })));
    assert_eq!(seized_item("hashish:0.250:KG").unwrap().quantity, "0.250");
}

#[test]
fn incidents_take_post_time_and_refuse_the_future() {
    let input = NewIncidentInput {
        incident_type: "seizure".into(),
        at: Some("2026-11-27 14:05".into()),
        narrative: "Found in spare tyre".into(),
        seized: vec!["heroin:1.2:kg".into()],
        ..Default::default()
    };
    let iid = IncidentId::parse("0193a5c2-7b1e-7d3f-9c4a-5e6f7a8b9c0e").unwrap();
    let draft = new_incident(&input, iid, &ctx()).unwrap();
    assert_eq!(draft.occurred_at.to_string(), "2026-11-27T14:05:00+05:00");
    let future = NewIncidentInput { at: Some("2026-11-28T10:00:00Z".into()), ..input };
    assert!(new_incident(&future, iid, &ctx()).unwrap_err().to_string().contains("future"));
}

#[test]
fn an_empty_amendment_is_refused() {
    let err = amendment(&AmendInput::default(), SubjectKind::Person, ctx().today(), &ctx()).unwrap_err();
    assert_eq!(err, ValidationError::NothingToChange);
}
