//! The counting and the refresher's scheduling, without a cluster.

use super::*;
use crate::ui::overview::tests::gitsync;
use crate::ui::tree::NodeHealth;
use crate::ui::tree::tests::obj;

fn with(word: HealthWord) -> LiveObject {
    let mut o = obj("ConfigMap", Some("a"), "x", "u");
    o.health = NodeHealth {
        word,
        reason: String::new(),
    };
    o
}

#[test]
fn counts_are_by_health_word() {
    let managed: Vec<LiveObject> = [
        HealthWord::Healthy,
        HealthWord::Healthy,
        HealthWord::Progressing,
        HealthWord::Failed,
        HealthWord::Missing,
        HealthWord::Missing,
    ]
    .into_iter()
    .map(with)
    .collect();
    let c = Counts::of(&managed);
    assert_eq!(
        c,
        Counts {
            healthy: 2,
            progressing: 1,
            failed: 1,
            missing: 2
        }
    );
    assert_eq!(c.total(), 6);
    assert!(c.troubled());
    assert!(!Counts::of(&[with(HealthWord::Healthy)]).troubled());
    assert_eq!(Counts::of(&[]), Counts::default());
}

fn measured(counts: Option<Counts>, at: Instant, mark: &str) -> Measured {
    Measured {
        counts,
        at,
        mark: mark.into(),
    }
}

#[test]
fn a_gitsync_is_due_when_new_changed_or_aged_by_its_health() {
    let opts = RefreshOptions::default();
    let t0 = Instant::now();
    let healthy = Counts {
        healthy: 3,
        ..Counts::default()
    };
    let failing = Counts {
        failed: 1,
        ..healthy
    };
    assert_eq!(due("m", None, t0, &opts), Some(Due::New));
    let ok = measured(Some(healthy), t0, "m");
    assert_eq!(due("m2", Some(&ok), t0, &opts), Some(Due::Changed));
    assert_eq!(due("m", Some(&ok), t0 + opts.troubled_every, &opts), None);
    assert_eq!(
        due("m", Some(&ok), t0 + opts.healthy_every, &opts),
        Some(Due::Aged)
    );
    let bad = measured(Some(failing), t0, "m");
    assert_eq!(
        due("m", Some(&bad), t0 + Duration::from_secs(59), &opts),
        None
    );
    assert_eq!(
        due("m", Some(&bad), t0 + opts.troubled_every, &opts),
        Some(Due::Aged)
    );
    let unread = measured(None, t0, "m");
    assert_eq!(
        due("m", Some(&unread), t0, &opts),
        None,
        "not retried at once"
    );
    assert_eq!(
        due("m", Some(&unread), t0 + opts.troubled_every, &opts),
        Some(Due::Aged)
    );
    assert_eq!(opts.healthy_every, Duration::from_secs(300));
}

#[test]
fn the_changed_come_first_then_the_new_then_the_oldest_in_batches() {
    let opts = RefreshOptions::default();
    let healths = Healths::default();
    let t0 = Instant::now();
    let all: Vec<Arc<GitSync>> = (0..40)
        .map(|i| Arc::new(gitsync("a", &format!("g{i:02}"), "True", "Succeeded", "ok")))
        .collect();
    let ok = Some(Counts {
        healthy: 1,
        ..Counts::default()
    });
    // g00–g29 measured (g00 oldest), g05 since synced again; g30–g39 never.
    for (i, gs) in all.iter().enumerate().take(30) {
        let m = if i == 5 { "old".to_string() } else { mark(gs) };
        healths.record(&key(gs), ok, m, t0 + Duration::from_secs(i as u64));
    }
    let now = t0 + opts.healthy_every + Duration::from_secs(4);
    let names: Vec<String> = pick(&all, &healths, now, &opts)
        .iter()
        .map(|gs| gs.name_any())
        .collect();
    assert_eq!(names.len(), BATCH);
    assert_eq!(names[0], "g05");
    assert_eq!(
        names[1..11],
        (30..40).map(|i| format!("g{i}")).collect::<Vec<_>>()
    );
    assert_eq!(names[11..], ["g00", "g01", "g02", "g03", "g04"]);
    // Nothing due right after a measure.
    assert!(pick(&all[..1], &healths, t0, &opts).is_empty());
}

#[test]
fn records_bump_only_on_change_and_deleted_gitsyncs_are_dropped() {
    let healths = Healths::default();
    let rx = healths.subscribe();
    let t0 = Instant::now();
    let one = Counts {
        healthy: 1,
        ..Counts::default()
    };
    healths.record("a/x", Some(one), "m".into(), t0);
    assert_eq!(*rx.borrow(), 1);
    healths.record("a/x", Some(one), "m".into(), t0);
    assert_eq!(*rx.borrow(), 1, "same counts: no news");
    healths.record("a/x", None, "m".into(), t0);
    assert_eq!(
        healths.snapshot()["a/x"],
        one,
        "a failed read keeps the counts"
    );
    healths.record("a/y", None, "m".into(), t0);
    assert!(
        !healths.snapshot().contains_key("a/y"),
        "never read: no counts"
    );
    healths.retain(&HashSet::from(["a/y".to_string()]));
    assert!(healths.snapshot().is_empty());
    assert!(healths.get("a/y").is_some());
}

#[test]
fn the_mark_changes_with_a_sync_not_with_time() {
    let gs = gitsync("a", "x", "True", "Succeeded", "ok");
    let same = gitsync("a", "x", "True", "Succeeded", "another message");
    assert_eq!(mark(&gs), mark(&same));
    let failed = gitsync("a", "x", "False", "ApplyFailed", "ok");
    assert_ne!(mark(&gs), mark(&failed));
}
