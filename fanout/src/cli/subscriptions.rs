//! `graph-relay subscriptions check|sync|list` and `graph-relay login`.

use std::path::Path;

use crate::graph::catalog::Permission;
use crate::graph::configuration;
use crate::graph::credentials;
use crate::graph::ledger::{self, Ledger, Record};
use crate::graph::now_ms;
use crate::graph::plan::Plan;
use crate::graph::reconciler::{Reconciler, Report};

type BoxError = Box<dyn std::error::Error>;

/// Prints every problem of the file; `Ok(false)` when there is any.
pub fn check(path: &Path) -> Result<bool, BoxError> {
    let plan = Plan::load(path)?;
    let findings = plan.check();
    for finding in &findings {
        println!(
            "{}: [{}] {}\n    fix: {}",
            finding.entry, finding.violation.rule, finding.violation.message, finding.violation.fix
        );
    }
    let broken: std::collections::HashSet<&str> = findings.iter().map(|f| f.entry.as_str()).collect();
    let kinds = plan.kinds();
    for entry in plan.subscriptions.iter().filter(|e| !broken.contains(e.name.as_str())) {
        let kind = kinds.get(&entry.name).map_or("?", |k| k.label);
        println!("{}: ok ({kind}, {})", entry.name, entry.permission);
    }
    for entry in &plan.subscriptions {
        for note in crate::graph::check::notes(&entry.check_request(&plan.edge)) {
            println!("{}: note: {note}", entry.name);
        }
    }
    println!("{} entries, {} problems", plan.subscriptions.len(), findings.len());
    Ok(findings.is_empty())
}

/// The reconciler for a checked file, its state in `data_dir`.
pub fn reconciler(path: &Path, data_dir: &Path) -> Result<Reconciler, BoxError> {
    let configuration = configuration::load(path)?;
    let ledger = Ledger::open(data_dir)?;
    Ok(Reconciler::configured(configuration, ledger))
}

/// One pass; `Ok(false)` if any entry could not be reconciled.
pub async fn sync(path: &Path, data_dir: &Path) -> Result<bool, BoxError> {
    let mut reconciler = reconciler(path, data_dir)?;
    let report = reconciler.sync_once().await;
    print_report(&report);
    Ok(report.failed.is_empty())
}

fn print_report(report: &Report) {
    let lines = [
        ("created", &report.created),
        ("adopted", &report.adopted),
        ("renewed", &report.renewed),
        ("recreated", &report.recreated),
        ("deleted", &report.deleted),
    ];
    for (what, names) in lines {
        if !names.is_empty() {
            println!("{what}: {}", names.join(", "));
        }
    }
    for (name, error) in &report.failed {
        println!("failed: {name}: {error}");
    }
}

fn ago(now: u64, at: u64) -> String {
    if at == 0 {
        return "never".into();
    }
    humantime::format_duration(std::time::Duration::from_secs(now.saturating_sub(at) / 1000)).to_string() + " ago"
}

fn health(now: u64, record: &Record) -> String {
    match &record.last_error {
        Some(error) => format!("error {}: {error}", ago(now, record.last_error_ms)),
        None if record.expiration_ms <= now => "EXPIRED".into(),
        None => "ok".into(),
    }
}

/// `subscriptions list`: readable while `serve` runs (no lock taken).
pub fn list(data_dir: &Path) -> Result<(), BoxError> {
    let state = ledger::read(&data_dir.join(ledger::FILE_NAME))?;
    let now = now_ms();
    if state.entries.is_empty() && state.not_created.is_empty() {
        println!("no subscriptions in {}", data_dir.display());
    }
    if let Some(failure) = &state.feed_failure {
        println!(
            "reconciler: lifecycle feed failed {} ({}), restarted {} times since the server started",
            ago(now, failure.at_ms),
            failure.reason,
            failure.restarts
        );
    }
    for (name, (error, at)) in &state.not_created {
        println!("{name}\n  not on Graph yet\n  health: error {}: {error}", ago(now, *at));
    }
    for (name, record) in &state.entries {
        let expires_in =
            humantime::format_duration(std::time::Duration::from_secs(record.expiration_ms.saturating_sub(now) / 1000));
        println!(
            "{name}\n  resource: {} ({})\n  id: {}\n  expires: {} (in {expires_in})\n  next renewal: {}\n  \
             last notification: {}\n  last renewal: {} ({} renewals)\n  health: {}",
            record.resource,
            record.change_types,
            record.subscription_id,
            crate::graph::format_time(record.expiration_ms),
            crate::graph::format_time(record.renew_at_ms),
            ago(now, record.last_notification_ms),
            ago(now, record.last_renewal_ms),
            record.renewals,
            health(now, record),
        );
    }
    Ok(())
}

/// `graph-relay login`: the device-code sign-in for delegated permissions.
pub async fn login(path: &Path, account: Permission) -> Result<(), BoxError> {
    if account == Permission::Application {
        return Err("login is for delegated permissions: --account delegated-work or delegated-personal".into());
    }
    let plan = Plan::load(path)?;
    let token_file = plan.graph.token_file.as_ref().ok_or("set [graph] token_file in the subscriptions file")?;
    credentials::device_login(&plan.graph, &plan.resolve(token_file), account).await?;
    Ok(())
}
