//! The tables `graph-relay-bench fanout` prints, and its CSV.

use std::io::Write;
use std::path::Path;

use crate::measure::Outcome;

/// One outcome as a table row.
pub fn print_row(o: &Outcome) {
    println!(
        "| {} | {} | {} | {} | {} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} / {:.2} ms | {}/{} | {:.2} | {} / {} | {:.0} MB |",
        o.system,
        o.subscribers,
        o.selectivity,
        o.load,
        o.in_flight,
        o.delivered_per_second(),
        o.p50_us as f64 / 1000.0,
        o.p99_us as f64 / 1000.0,
        o.p999_us as f64 / 1000.0,
        o.answer_p50_us as f64 / 1000.0,
        o.answer_p99_us as f64 / 1000.0,
        o.delivered,
        o.expected,
        o.server_cpu,
        cores(o.server_waited, "-"),
        cores(o.bench_waited, "-"),
        o.server_peak_rss_mb
    );
    let _ = std::io::stdout().flush();
}

/// A wait in cores to two decimals, or `missing` where it was not measured.
fn cores(waited: Option<f64>, missing: &str) -> String {
    waited.map_or_else(|| missing.to_string(), |cores| format!("{cores:.2}"))
}

/// Delivered/s at saturation: relay / NATS and relay / JetStream.
pub fn print_ratios(outcomes: &[Outcome]) {
    println!();
    println!("| subscribers | filter | relay delivered/s | ÷ NATS core | ÷ JetStream | p99 at equal load: relay / NATS core |");
    println!("|---:|---|---:|---:|---:|---|");
    for relay in outcomes.iter().filter(|o| o.system == "relay" && o.load == "saturation") {
        let ratio = |system| {
            find(outcomes, system, relay.round, (relay.subscribers, relay.selectivity), relay.load)
                .map(|other| format!("{:.2}", relay.delivered_per_second() / other.delivered_per_second()))
                .unwrap_or_else(|| "-".into())
        };
        println!(
            "| {} | {} | {:.0} | {} | {} | {} |",
            relay.subscribers,
            relay.selectivity,
            relay.delivered_per_second(),
            ratio("nats"),
            ratio("jetstream"),
            equal_p99s(outcomes, relay.round, (relay.subscribers, relay.selectivity)).unwrap_or_else(|| "-".into())
        );
    }
}

/// "relay / NATS ms at N delivered/s" from one round's equal-load runs.
fn equal_p99s(outcomes: &[Outcome], round: usize, configuration: (usize, &str)) -> Option<String> {
    let relay = find(outcomes, "relay", round, configuration, "equal")?;
    let nats = find(outcomes, "nats", round, configuration, "equal")?;
    Some(format!(
        "{:.2} / {:.2} ms at {:.0}/s",
        relay.p99_us as f64 / 1000.0,
        nats.p99_us as f64 / 1000.0,
        relay.delivered_per_second()
    ))
}

/// Every outcome, for the plot (`scripts/plot-bench.py`).
pub fn write_csv(path: &Path, outcomes: &[Outcome]) -> Result<(), String> {
    let mut text = String::from(
        "round,system,subscribers,filter,load,delivered_per_s,p50_us,p99_us,p999_us,server_cpu,peak_rss_mb,answer_p50_us,answer_p99_us,in_flight,server_waited,bench_waited\n",
    );
    for o in outcomes {
        text.push_str(&format!(
            "{},{},{},{},{},{:.0},{},{},{},{:.3},{:.1},{},{},{},{},{}\n",
            o.round,
            o.system,
            o.subscribers,
            o.selectivity,
            o.load,
            o.delivered_per_second(),
            o.p50_us,
            o.p99_us,
            o.p999_us,
            o.server_cpu,
            o.server_peak_rss_mb,
            o.answer_p50_us,
            o.answer_p99_us,
            o.in_flight,
            cores(o.server_waited, ""),
            cores(o.bench_waited, "")
        ));
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// With several rounds: for each configuration, relay ÷ NATS core per round
/// (each against the NATS run of the same round) and both p99s at 50%, so a
/// claim about a noisy machine rests on more than one run.
pub fn print_rounds(outcomes: &[Outcome], rounds: usize) {
    if rounds < 2 {
        return;
    }
    println!();
    println!("| subscribers | filter | ÷ NATS core, per round | median | relay p99 at 50%, per round | under 5 ms | NATS p99 at 50%, per round | p99 at equal load, relay / NATS, per round |");
    println!("|---:|---|---|---:|---|---:|---|---|");
    let mut configurations: Vec<(usize, &str)> = Vec::new();
    for o in outcomes.iter().filter(|o| o.system == "relay") {
        if !configurations.contains(&(o.subscribers, o.selectivity)) {
            configurations.push((o.subscribers, o.selectivity));
        }
    }
    for (subscribers, selectivity) in configurations {
        let of =
            |system: &str, load: &str, round: usize| find(outcomes, system, round, (subscribers, selectivity), load);
        let mut ratios = Vec::new();
        let (mut relay_p99, mut nats_p99, mut under) = (Vec::new(), Vec::new(), 0);
        let mut equal = Vec::new();
        for round in 1..=rounds {
            if let (Some(relay), Some(nats)) = (of("relay", "saturation", round), of("nats", "saturation", round)) {
                ratios.push(relay.delivered_per_second() / nats.delivered_per_second());
            }
            if let Some(relay) = of("relay", "50%", round) {
                relay_p99.push(format!("{:.2}", relay.p99_us as f64 / 1000.0));
                under += usize::from(relay.p99_us < 5_000);
            }
            if let Some(nats) = of("nats", "50%", round) {
                nats_p99.push(format!("{:.2}", nats.p99_us as f64 / 1000.0));
            }
            if let (Some(relay), Some(nats)) = (of("relay", "equal", round), of("nats", "equal", round)) {
                equal.push(format!("{:.2} / {:.2}", relay.p99_us as f64 / 1000.0, nats.p99_us as f64 / 1000.0));
            }
        }
        let listed: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "| {subscribers} | {selectivity} | {} | {} | {} ms | {under} of {} | {} ms | {} ms |",
            listed.join(", "),
            median(&mut ratios).map_or("-".into(), |m| format!("{m:.2}")),
            relay_p99.join(", "),
            relay_p99.len(),
            nats_p99.join(", "),
            equal.join(", "),
        );
    }
    let _ = std::io::stdout().flush();
}

/// The outcome of `system` in one round, configuration (subscribers,
/// filter) and load.
fn find<'a>(
    outcomes: &'a [Outcome],
    system: &str,
    round: usize,
    (subscribers, selectivity): (usize, &str),
    load: &str,
) -> Option<&'a Outcome> {
    outcomes.iter().find(|o| {
        o.system == system
            && o.round == round
            && o.subscribers == subscribers
            && o.selectivity == selectivity
            && o.load == load
    })
}

fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    match values.len() {
        0 => None,
        n if n % 2 == 1 => Some(values[middle]),
        _ => Some((values[middle - 1] + values[middle]) / 2.0),
    }
}
