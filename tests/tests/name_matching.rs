//! Name matching against the labelled evaluation set and the hand-kept
//! regression cases. The figures BENCHMARKS.md reports come from the same
//! generator (`outpost-bench names`); this test holds the line in CI.

use std::collections::HashMap;

use outpost_model::api::{NewEntryInput, SearchInput};
use outpost_model::search::{NameIndex, SearchQuery, WatchlistIndex, upsert};
use outpost_tests::names_eval::{EvalSet, eval_context, evaluate, index_for};
use outpost_tests::sample::entry_from;

#[test]
fn the_labelled_evaluation_meets_the_targets() {
    let set = EvalSet::generate(20_261_128, 2000, 2500, 2500);
    let index = index_for(&set).unwrap();
    let today = eval_context().today();
    for qualifiers in [false, true] {
        let report = evaluate(&set, &index, today, qualifiers);
        let recall = report.recall_at_5.rate();
        let false_hits = report.false_top1.rate();
        assert!(
            recall >= 0.98,
            "recall@5 {recall:.4} below 0.98 (qualifiers: {qualifiers}); misses:\n{}",
            report.misses.join("\n")
        );
        assert!(
            false_hits <= 0.02,
            "false top-1 alerts {false_hits:.4} above 0.02 (qualifiers: {qualifiers}):\n{}",
            report.false_hits.join("\n")
        );
    }
}

struct Case {
    line: usize,
    query: String,
    expected: Option<String>,
    expectation: String,
}

#[test]
fn the_regression_cases_still_hold() {
    let text = include_str!("../data/name_regressions.tsv");
    let ctx = eval_context();
    // The cases sit among a realistic list, so "no alert" means something.
    let background = EvalSet::generate(7, 2000, 0, 0);
    let mut index: NameIndex = index_for(&background).unwrap();
    let mut ids = HashMap::new();
    let mut cases = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["entry", key, names, dob, nationality] => {
                let input = NewEntryInput {
                    kind: "person".into(),
                    category: "wanted-for-arrest".into(),
                    reason: "regression case".into(),
                    names: names.split('|').map(str::to_string).collect(),
                    dobs: vec![dob.to_string()],
                    nationalities: vec![nationality.to_string()],
                    ..Default::default()
                };
                let id = outpost_model::EntryId::from_uuid(uuid::Uuid::from_u128(0xcafe_0000 + n as u128));
                upsert(&mut index, &entry_from(&input, id, &ctx).unwrap());
                ids.insert(key.to_string(), id);
            }
            ["query", query, expected, expectation] => cases.push(Case {
                line: n + 1,
                query: query.to_string(),
                expected: (*expected != "-").then(|| expected.to_string()),
                expectation: expectation.to_string(),
            }),
            _ if line.starts_with('#') || line.trim().is_empty() => {}
            _ => panic!("name_regressions.tsv line {}: cannot read {line:?}", n + 1),
        }
    }
    assert!(cases.len() >= 30, "only {} cases read", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let query = SearchQuery::parse(&SearchInput {
            query: case.query.clone(),
            purpose: "regression".into(),
            limit: Some(5),
            ..Default::default()
        })
        .unwrap();
        let hits = index.search(&query, ctx.today());
        let want = case.expected.as_ref().map(|k| ids[k]);
        let ok = match (case.expectation.as_str(), want) {
            ("alert", Some(id)) => hits.first().is_some_and(|h| h.id == id && h.alert),
            ("top5", Some(id)) => hits.iter().any(|h| h.id == id),
            ("no-alert", None) => hits.iter().all(|h| !h.alert),
            ("no-alert", Some(id)) => hits.iter().all(|h| h.id != id || !h.alert),
            (other, _) => panic!("line {}: unknown expectation {other}", case.line),
        };
        if !ok {
            let got: Vec<String> = hits
                .iter()
                .map(|h| format!("{} {:.2}{} ({})", h.name, h.score, if h.alert { " ALERT" } else { "" }, h.reason))
                .collect();
            failures.push(format!("line {}: {:?} expected {}: got {got:#?}", case.line, case.query, case.expectation));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases fail:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// Scoring stops early once no remaining candidate can reach the results
/// kept; a small limit must give exactly the head of a large one.
#[test]
fn stopping_early_never_changes_the_ranking() {
    let set = EvalSet::generate(99, 1500, 300, 300);
    let index = index_for(&set).unwrap();
    let today = eval_context().today();
    for q in set.variants.iter().chain(&set.distractors) {
        let search = |limit: u32, dob: Option<String>| {
            let input = SearchInput {
                query: q.text.clone(),
                purpose: "p".into(),
                limit: Some(limit),
                dob,
                ..Default::default()
            };
            index.search(&SearchQuery::parse(&input).unwrap(), today)
        };
        for dob in [None, Some(q.dob.clone())] {
            let few = search(5, dob.clone());
            let many = search(200, dob);
            let head: Vec<_> = many.iter().take(5).map(|h| (h.id, h.score)).collect();
            let got: Vec<_> = few.iter().map(|h| (h.id, h.score)).collect();
            assert_eq!(got, head, "{:?}", q.text);
        }
    }
}
