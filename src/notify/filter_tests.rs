use super::*;
use crate::notify::event::{Commit, Counts, Source};
use crate::notify::resources::AlertSpec;

fn spec(sources: &[(&str, &[(&str, &str)])]) -> AlertSpec {
    AlertSpec {
        provider_ref: crate::agent::crd::LocalRef { name: "p".into() },
        event_sources: sources
            .iter()
            .map(|(name, labels)| EventSource {
                kind: None,
                name: (*name).into(),
                match_labels: labels
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect(),
            })
            .collect(),
        event_severity: None,
        event_reasons: vec![],
        inclusion_list: vec![],
        exclusion_list: vec![],
        only_on_change: false,
        reminder_interval: None,
        dependency_timeout: None,
        summary: None,
        suspend: false,
    }
}

fn note(kind: Kind, message: &str) -> Notification {
    Notification {
        kind,
        source: Source {
            namespace: "apps".into(),
            name: "web".into(),
            url: "https://git.example/org/repo.git".into(),
            cluster: "prod".into(),
        },
        commit: Some(Commit {
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
            ..Commit::default()
        }),
        reason: "RenderFailed".into(),
        message: message.into(),
        counts: None,
        objects: vec![],
        duration: None,
        timestamp: "2026-12-05T00:00:00Z".into(),
    }
}

fn no_labels() -> BTreeMap<String, String> {
    BTreeMap::new()
}

#[test]
fn sources_select_by_name_star_and_labels() {
    let by_name = Rule::compile(&spec(&[("web", &[])])).unwrap();
    let n = note(Kind::Applied, "");
    assert!(by_name.hears("web", &no_labels(), &n));
    assert!(!by_name.hears("api", &no_labels(), &n));
    let labelled = Rule::compile(&spec(&[("*", &[("team", "a")])])).unwrap();
    let team_a = BTreeMap::from([("team".to_string(), "a".to_string())]);
    assert!(labelled.hears("api", &team_a, &n));
    assert!(!labelled.hears("api", &no_labels(), &n));
}

#[test]
fn severity_reasons_and_lists_filter() {
    let mut s = spec(&[("*", &[])]);
    s.event_severity = Some("error".into());
    let errors = Rule::compile(&s).unwrap();
    assert!(!errors.hears("web", &no_labels(), &note(Kind::Applied, "")));
    assert!(errors.hears("web", &no_labels(), &note(Kind::Failed, "x")));
    s.event_severity = None;
    s.event_reasons = vec!["stalled".into()];
    s.exclusion_list = vec!["^ignore me".into()];
    let stalled = Rule::compile(&s).unwrap();
    assert!(stalled.hears("web", &no_labels(), &note(Kind::Stalled, "bad.yaml")));
    assert!(!stalled.hears("web", &no_labels(), &note(Kind::Stalled, "ignore me")));
    assert!(!stalled.hears("web", &no_labels(), &note(Kind::Failed, "bad.yaml")));
}

#[test]
fn only_on_change_skips_revisions_that_wrote_nothing() {
    let mut s = spec(&[("*", &[])]);
    s.only_on_change = true;
    let rule = Rule::compile(&s).unwrap();
    let mut n = note(Kind::Applied, "");
    n.counts = Some(Counts {
        unchanged: 4,
        ..Counts::default()
    });
    assert!(!rule.hears("web", &no_labels(), &n));
    n.counts = Some(Counts {
        configured: 1,
        ..Counts::default()
    });
    assert!(rule.hears("web", &no_labels(), &n));
}

#[test]
fn dependency_blocked_waits_for_the_alerts_patience() {
    let mut s = spec(&[("*", &[])]);
    s.dependency_timeout = Some("5m".into());
    let rule = Rule::compile(&s).unwrap();
    let mut n = note(Kind::DependencyBlocked, "waiting for apps/db");
    n.duration = Some(Duration::from_secs(60));
    assert!(!rule.hears("web", &no_labels(), &n));
    n.duration = Some(Duration::from_secs(301));
    assert!(rule.hears("web", &no_labels(), &n));
}

#[test]
fn bad_alerts_are_refused_by_field() {
    let mut s = spec(&[("*", &[])]);
    s.inclusion_list = vec!["(".into()];
    assert!(matches!(
        Rule::compile(&s),
        Err(RuleError::Regex {
            field: "inclusionList",
            ..
        })
    ));
    let mut s = spec(&[("*", &[])]);
    s.event_reasons = vec!["Exploded".into()];
    assert_eq!(
        Rule::compile(&s).unwrap_err(),
        RuleError::Reason("Exploded".into())
    );
    assert_eq!(Rule::compile(&spec(&[])).unwrap_err(), RuleError::NoSources);
    let mut s = spec(&[("*", &[])]);
    s.reminder_interval = Some("soon".into());
    assert!(matches!(Rule::compile(&s), Err(RuleError::Duration { .. })));
}

#[test]
fn repeats_send_on_change_and_remind_failures_only() {
    let mut r = Repeats::default();
    let t0 = Instant::now();
    let hour = Some(Duration::from_secs(3600));
    let failed = note(Kind::Failed, "a.yaml: bad");
    assert!(r.admit("k", &failed, hour, t0));
    assert!(!r.admit("k", &failed, hour, t0 + Duration::from_secs(60)));
    assert!(r.admit("k", &failed, hour, t0 + Duration::from_secs(3601)));
    let other = note(Kind::Failed, "b.yaml: bad");
    assert!(r.admit("k", &other, hour, t0 + Duration::from_secs(3602)));
    let applied = note(Kind::Applied, "");
    assert!(r.admit("k", &applied, hour, t0 + Duration::from_secs(3603)));
    assert!(!r.admit("k", &applied, hour, t0 + Duration::from_secs(99_999)));
    assert!(r.admit("other", &applied, None, t0), "keys are independent");
    r.forget("k");
    assert!(r.admit("k", &applied, hour, t0));
}
