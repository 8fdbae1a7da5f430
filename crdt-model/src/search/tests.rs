use super::*;
use crate::api::NewEntryInput;
use crate::names::MatchHow;
use crate::schema::{ChangeMeta, DocKind, Document};
use crate::validate::{PostContext, new_entry};
use crate::watchlist::Subject;

fn ctx() -> PostContext {
    PostContext {
        now: crate::date::Timestamp::parse("now", "2026-11-27T10:00:00Z").unwrap(),
        offset: time::UtcOffset::UTC,
        authority: "KAZ-BS".into(),
        post: "kz-nurzhol".into(),
    }
}

fn entry(n: u128, input: NewEntryInput) -> Entry {
    let id = EntryId::from_uuid(uuid::Uuid::from_u128(n));
    let draft = new_entry(&input, id, &ctx()).unwrap();
    let mut doc = Document::genesis(DocKind::watchlist_for("KAZ-BS", &id)).unwrap();
    let meta = ChangeMeta { at: ctx().now, by: "1000@test".into(), op: "watchlist.add" };
    doc.transact(&meta, |r| r.add_entry(&draft)).unwrap();
    crate::schema::watchlist::read_entry(&doc, id).unwrap().unwrap()
}

fn person(names: &[&str], dob: &str, nationality: &str) -> NewEntryInput {
    NewEntryInput {
        kind: "person".into(),
        category: "wanted-for-arrest".into(),
        reason: "test".into(),
        names: names.iter().map(|n| n.to_string()).collect(),
        dobs: vec![dob.into()],
        nationalities: vec![nationality.into()],
        documents: vec!["passport:TJK:A1234567".into()],
        ..Default::default()
    }
}

fn query(text: &str) -> SearchQuery {
    SearchQuery::parse(&SearchInput { query: text.into(), purpose: "test".into(), ..Default::default() }).unwrap()
}

fn index() -> NameIndex {
    let mut index = NameIndex::new();
    upsert(&mut index, &entry(1, person(&["Мухаммад Алиев"], "1985-03-07", "TJK")));
    upsert(&mut index, &entry(2, person(&["Алишер Каримов"], "1990", "UZB")));
    upsert(
        &mut index,
        &entry(
            3,
            NewEntryInput {
                kind: "vehicle".into(),
                category: "seize-object".into(),
                reason: "stolen".into(),
                plates: vec!["777 АВС 02".into()],
                ..Default::default()
            },
        ),
    );
    index
}

fn today() -> Day {
    ctx().today()
}

#[test]
fn latin_query_finds_cyrillic_name_in_any_order_and_shows_the_original() {
    let index = index();
    for q in ["MUKHAMMAD ALIEV", "aliev muhammad", "ALIEV<<MUKHAMMAD", "Муҳаммад Алиев", "Muxammad Aliyev"]
    {
        let hits = index.search(&query(q), today());
        assert_eq!(hits.len(), 1, "{q}");
        assert_eq!(hits[0].name, "Мухаммад Алиев");
        assert_eq!(hits[0].score, 1.0);
        assert!(hits[0].reason.starts_with("given name transliteration variant, surname "), "{q}: {}", hits[0].reason);
        assert!(hits[0].alert);
    }
    let hits = index.search(&query("Мухаммад Алиев"), today());
    assert_eq!(hits[0].reason, "given name exact, surname exact");
}

#[test]
fn every_hit_explains_which_words_aligned_and_why() {
    let hits = index().search(&query("ALIEV Magomed Karimovich"), today());
    assert_eq!(hits.len(), 1);
    type Line<'a> = (Option<&'a str>, Option<&'a str>, Option<MatchHow>, &'a str);
    let lines: Vec<Line> = hits[0]
        .explanation
        .iter()
        .map(|w| (w.query.as_deref(), w.stored.as_deref(), w.how, w.detail.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            (Some("ALIEV"), Some("Алиев"), Some(MatchHow::Transliteration), "Cyrillic→Latin, y/i, ye/e"),
            (Some("Magomed"), Some("Мухаммад"), Some(MatchHow::Equivalent), "forms of Muhammad"),
            (Some("Karimovich"), None, None, "no stored word is close"),
        ]
    );
    assert!(hits[0].score >= STRONG_MATCH, "a missing patronymic costs little: {}", hits[0].score);
}

#[test]
fn a_typo_still_finds_the_entry() {
    let hits = index().search(&query("Mukhamamd Aliev"), today());
    assert_eq!(hits.len(), 1);
    assert!(hits[0].score > 0.9 && hits[0].reason.contains("close spelling"), "{hits:?}");
}

#[test]
fn partial_name_scores_lower() {
    let hits = index().search(&query("Aliev"), today());
    assert_eq!(hits.len(), 1);
    assert!(hits[0].score < 1.0 && hits[0].score > 0.5, "{}", hits[0].score);
}

#[test]
fn plates_and_document_numbers_match_exactly_after_normalisation() {
    let index = index();
    let hits = index.search(&query("777abc02"), today());
    assert_eq!(hits[0].score, 1.0);
    assert_eq!(hits[0].reason, "plate exact");
    let hits = index.search(&query("a-123456 7"), today());
    assert_eq!(hits[0].reason, "document number exact");
    assert!(index.search(&query("A1234568"), today()).is_empty());
}

#[test]
fn qualifiers_lower_clashing_candidates() {
    let index = index();
    let mut q = query("Mukhammad Aliev");
    q.dob = Some(PartialDate::parse("dob", "1970").unwrap());
    q.nationality = Some("KAZ".into());
    let hits = index.search(&q, today());
    assert!(hits[0].score < 0.7, "{}", hits[0].score);
    assert!(hits[0].reason.contains("birth year clashes"), "{}", hits[0].reason);
    assert!(hits[0].reason.contains("nationality differs"), "{}", hits[0].reason);
}

#[test]
fn updates_and_removals_reach_the_index() {
    let mut index = index();
    let id = EntryId::from_uuid(uuid::Uuid::from_u128(1));
    index.remove(&id);
    assert!(index.search(&query("Mukhammad Aliev"), today()).is_empty());
    assert_eq!(index.len(), 2);
}

#[test]
fn an_empty_query_or_missing_purpose_is_refused() {
    let err =
        SearchQuery::parse(&SearchInput { query: "<<".into(), purpose: "x".into(), ..Default::default() }).unwrap_err();
    assert!(err.to_string().contains("search query"));
    let err = SearchQuery::parse(&SearchInput { query: "Aliev".into(), ..Default::default() }).unwrap_err();
    assert_eq!(err.to_string(), "purpose must not be empty");
}

#[test]
fn a_weak_match_on_a_live_entry_is_shown_but_never_an_alert() {
    let hits = index().search(&query("Aliev"), today());
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert!(!hits[0].alert && hits[0].score < STRONG_MATCH, "{hits:?}");
    assert!(hits[0].reason.contains("given name not given"), "{}", hits[0].reason);
}

#[test]
fn half_a_name_on_two_different_people_is_not_shown() {
    assert_eq!(index().search(&query("Mukhammad Karimov"), today()), vec![]);
}

#[test]
fn a_matching_date_of_birth_raises_the_score() {
    let index = index();
    let plain = index.search(&query("Aliev"), today())[0].score;
    let mut q = query("Aliev");
    q.dob = Some(PartialDate::parse("dob", "1985-03-07").unwrap());
    let hits = index.search(&q, today());
    assert!(hits[0].score > plain, "{} vs {plain}", hits[0].score);
    assert!(hits[0].reason.contains("DOB matches"), "{}", hits[0].reason);
}

#[test]
fn reinserting_an_entry_replaces_what_it_matches() {
    let mut index = index();
    let mut changed = entry(2, person(&["Алишер Каримов"], "1990", "UZB"));
    if let Subject::Person(p) = &mut changed.subject {
        p.names[0].text = "Шерзод Каримов".into();
    }
    upsert(&mut index, &changed);
    assert!(index.search(&query("Alisher Karimov"), today()).iter().all(|h| h.score < 1.0));
    assert_eq!(index.search(&query("Sherzod Karimov"), today())[0].score, 1.0);
    assert_eq!(index.len(), 3);
    let record = index.prepare(&changed);
    let bytes = serde_json::to_vec(&record).unwrap();
    assert_eq!(serde_json::from_slice::<IndexRecord>(&bytes).unwrap(), record);
}

#[test]
fn repeated_query_words_count_once() {
    let hits = index().search(&query("Karimov Karimov"), today());
    assert_eq!(hits.len(), 1);
    assert!(hits[0].score < STRONG_MATCH && !hits[0].alert, "{hits:?}");
}

#[test]
fn overlong_queries_are_refused() {
    let long = "Алиев ".repeat(60);
    let err = SearchQuery::parse(&SearchInput { query: long, purpose: "x".into(), ..Default::default() }).unwrap_err();
    assert!(err.to_string().contains("search query is"), "{err}");
    let many = "a b c d e f g h i j k l m".to_string();
    let err = SearchQuery::parse(&SearchInput { query: many, purpose: "x".into(), ..Default::default() }).unwrap_err();
    assert!(err.to_string().contains("too many words"), "{err}");
}

#[test]
fn a_name_added_at_another_post_is_found_after_the_merge() {
    let id = EntryId::from_uuid(uuid::Uuid::from_u128(9));
    let draft = new_entry(&person(&["Мухаммад Алиев"], "1985-03-07", "TJK"), id, &ctx()).unwrap();
    let kind = DocKind::watchlist_for("KAZ-BS", &id);
    let mut here = Document::genesis(kind).unwrap();
    let meta = ChangeMeta { at: ctx().now, by: "1000@here".into(), op: "watchlist.add" };
    here.transact(&meta, |r| r.add_entry(&draft)).unwrap();
    let mut index = NameIndex::new();
    upsert(&mut index, &crate::schema::watchlist::read_entry(&here, id).unwrap().unwrap());
    assert!(index.search(&query("Magomed Gadzhiev"), today()).is_empty());

    let mut there = here.fork(automerge::ActorId::from([2u8; 16]));
    let alias = crate::watchlist::NameVariant {
        text: "Магомед Гаджиев".into(),
        script: crate::vocab::Script::Cyrillic,
        kind: crate::vocab::NameKind::Alias,
    };
    let amendment = crate::watchlist::Amendment { add_names: vec![alias], ..Default::default() };
    let meta = ChangeMeta { at: ctx().now, by: "1000@there".into(), op: "watchlist.amend" };
    there.transact(&meta, |r| r.amend_entry(&id, &amendment)).unwrap();
    here.merge(&mut there).unwrap();

    upsert(&mut index, &crate::schema::watchlist::read_entry(&here, id).unwrap().unwrap());
    let hits = index.search(&query("MAGOMED GADZHIEV"), today());
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].name, "Магомед Гаджиев");
    assert!(hits[0].alert);
    assert_eq!(index.len(), 1);
}

#[test]
fn closed_and_expired_entries_are_shown_as_such_never_as_alerts() {
    let mut index = index();
    let mut closed = entry(1, person(&["Мухаммад Алиев"], "1985-03-07", "TJK"));
    closed.status = EntryStatus::Closed;
    upsert(&mut index, &closed);
    let mut expired = entry(4, person(&["Шерзод Рахимов"], "1980", "UZB"));
    expired.expires = Some(Day::parse("expires", "2020-01-01").unwrap());
    upsert(&mut index, &expired);
    let hit = &index.search(&query("Mukhammad Aliev"), today())[0];
    assert_eq!((hit.score, hit.status, hit.alert), (1.0, EntryStatus::Closed, false));
    let hit = &index.search(&query("Sherzod Rakhimov"), today())[0];
    assert!(hit.expired && !hit.alert, "{hit:?}");
    assert_eq!(index.alerts(today()), 2, "only the vehicle and Alisher Karimov remain live");
}

/// Stored index records hold skeletons. If a fold rule changes a skeleton,
/// records written by the old rules no longer meet queries folded by the
/// new ones: bump `INDEX_RECORD_VERSION` (the daemon then rebuilds the
/// records at start) and update this pin.
#[test]
fn skeletons_are_pinned_to_the_index_record_version() {
    let names = "Мухаммад Алиев Нұрсұлтан Ҷамшед Раҳмонзода Бахтиёр Ғуломов Ўткир Щербаков Цой Юлдуз Яхё Эргашев \
                 Mukhammad Aliyev Baxtiyor G‘ulomov Dzhamshed Çaryýew Jaqsybekov Nūrsūltan Cy`bikov Evgenij Yo‘ldoshev Najmiddin";
    let skeletons = crate::names::name_tokens(names).join(" ");
    assert_eq!(
        (INDEX_RECORD_VERSION, skeletons.as_str()),
        (
            2,
            "muhamad alev nursultan jamshed rahmonzoda bahter gulomov utkir sherbakov coi iulduz iahe ergashev \
             muhamad alev bahter gulomov jamshed charev jaksibekov nursultan cibikov evgenij iuldoshev najmidin"
        )
    );
}

#[test]
fn oversized_or_damaged_records_are_bounded_not_fatal() {
    let mut index = index();
    let mut record = index.prepare(&entry(5, person(&["Мухаммад Алиев"], "1985", "TJK")));
    let long_word = "а".repeat(20_000);
    record.names =
        (0..1000).map(|_| (long_word.clone(), vec!["x".repeat(20_000), "ünicode".into(), String::new()])).collect();
    record.names.push(("Шерзод Рахимов".into(), vec!["sherzod".into(), "rahimov".into()]));
    index.insert(&record);
    let hits = index.search(&query(&"x".repeat(150)), today());
    assert!(hits.iter().all(|h| h.id == record.id), "{hits:?}");
    // Names beyond the cap are not indexed; the entry itself is untouched.
    assert!(index.search(&query("Sherzod Rakhimov"), today()).iter().all(|h| h.id != record.id));
}
