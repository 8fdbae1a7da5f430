//! `outpost-bench names`: name matching on the labelled evaluation set.

use std::time::Instant;

#[derive(Debug, clap::Args)]
pub(crate) struct NamesArgs {
    /// Persons on the list.
    #[arg(long, default_value_t = 3_000)]
    listed: usize,
    /// Queries for listed persons.
    #[arg(long, default_value_t = 10_000)]
    variants: usize,
    /// Queries for persons not on the list.
    #[arg(long, default_value_t = 10_000)]
    distractors: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the misses and false hits as well.
    #[arg(long)]
    show: bool,
}

pub(crate) fn names(args: &NamesArgs) -> anyhow::Result<()> {
    use outpost_tests::names_eval::{EvalSet, Report, Tally, eval_context, evaluate, index_for};
    println!(
        "listed: {}, variants: {}, distractors: {}, seed: {}\n",
        args.listed, args.variants, args.distractors, args.seed
    );
    let set = EvalSet::generate(args.seed, args.listed, args.variants, args.distractors);
    let index = index_for(&set)?;
    let today = eval_context().today();
    let started = Instant::now();
    let plain = evaluate(&set, &index, today, false);
    let per_query = started.elapsed() / (args.variants + args.distractors).max(1) as u32;
    let qualified = evaluate(&set, &index, today, true);
    let pct = |t: &Tally| format!("{:.2}%", 100.0 * t.rate());
    println!("| rendering | recall@5 | found as top-1 alert | false top-1 alerts |");
    println!("|---|---|---|---|");
    for (rendering, (found, total)) in &plain.recall_at_5.by_rendering {
        let alert = plain.found_as_alert.by_rendering.get(rendering).copied().unwrap_or_default();
        let false_hits = plain.false_top1.by_rendering.get(rendering).copied().unwrap_or_default();
        println!("| {rendering} | {found}/{total} | {}/{} | {}/{} |", alert.0, alert.1, false_hits.0, false_hits.1);
    }
    println!();
    println!("| figure | name only | with DOB and nationality | target |");
    println!("|---|---|---|---|");
    type Row = (&'static str, fn(&Report) -> &Tally, &'static str);
    let rows: [Row; 5] = [
        ("recall@5 on variants", |r| &r.recall_at_5, "≥ 98%"),
        ("variant found as the top-1 alert", |r| &r.found_as_alert, "—"),
        ("false top-1 alerts on names not listed", |r| &r.false_top1, "≤ 2%"),
        ("… whose words are all on the list", |r| &r.false_top1_listed_words, "—"),
        ("… with a given name or surname the list has never seen", |r| &r.false_top1_unlisted_words, "—"),
    ];
    for (label, tally, target) in &rows {
        println!("| {label} | {} | {} | {target} |", pct(tally(&plain)), pct(tally(&qualified)));
    }
    println!("\nin-process search, name only: {:.3} ms per query (mean)", per_query.as_secs_f64() * 1000.0);
    if args.show {
        println!("\nmisses (name only):");
        plain.misses.iter().for_each(|m| println!("  {m}"));
        println!("\nfalse hits (name only):");
        plain.false_hits.iter().for_each(|m| println!("  {m}"));
    }
    Ok(())
}
