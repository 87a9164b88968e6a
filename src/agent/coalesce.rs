//! Coalescing webhook triggers, so that a flood of pushes costs the API server a bounded load.
//!
//! A verified webhook asks for "sync the GitSyncs of repository R (branch B)", which is one
//! LIST of GitSyncs and a PATCH per match. A thousand identical requests a second must not
//! become a thousand LISTs and PATCHes a second. So per key (repositories + branch):
//!
//! - at most one trigger runs, and at most one more waits behind it ([`Coalescer::submit`]);
//! - the request that queues the waiting trigger gets its outcome ([`Submitted::Done`]); every
//!   request arriving while one is already waiting joins it and is answered at once
//!   ([`Submitted::Coalesced`]) — its push will be seen by that trigger's sync;
//! - triggers of one key start at least `min_interval` apart;
//! - at most `max_keys` keys are in flight; beyond that a request is refused
//!   ([`Submitted::Busy`], a 503), so memory stays bounded whatever arrives.
//!
//! Nothing is lost: a push that arrives while a trigger runs gets a trigger after it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// What a trigger returns: the GitSyncs it annotated, or why it failed.
pub type Outcome = Result<Vec<String>, String>;

/// What became of a submitted request.
#[derive(Debug, PartialEq, Eq)]
pub enum Submitted {
    /// This request queued a trigger and waited for it.
    Done(Outcome),
    /// A trigger for the same key was already waiting to run; this request rides on it.
    Coalesced,
    /// Too many keys in flight.
    Busy,
}

/// Per-key state: whether a driver task runs, and the waiting batch, if any.
#[derive(Default)]
struct Slot {
    waiting: Option<watch::Sender<Option<Outcome>>>,
}

/// Bounded, coalescing runner of triggers. See the module docs.
pub struct Coalescer {
    slots: Mutex<HashMap<String, Slot>>,
    max_keys: usize,
    min_interval: Duration,
}

impl Coalescer {
    /// At most `max_keys` keys in flight; one key's triggers at least `min_interval` apart.
    pub fn new(max_keys: usize, min_interval: Duration) -> Arc<Self> {
        Arc::new(Coalescer {
            slots: Mutex::new(HashMap::new()),
            max_keys,
            min_interval,
        })
    }

    /// Keys with a trigger running or waiting now.
    pub fn in_flight(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Submits a request for `key`; `trigger` does the work when this request starts a batch.
    pub async fn submit<F, Fut>(self: &Arc<Self>, key: String, trigger: F) -> Submitted
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let mut rx = {
            let Ok(mut slots) = self.slots.lock() else {
                return Submitted::Busy;
            };
            let full = slots.len() >= self.max_keys;
            let start_driver = match slots.get(&key) {
                Some(slot) if slot.waiting.is_some() => return Submitted::Coalesced,
                Some(_) => false,
                None if full => return Submitted::Busy,
                None => true,
            };
            let (tx, rx) = watch::channel(None);
            slots.entry(key.clone()).or_default().waiting = Some(tx);
            if start_driver {
                tokio::spawn(self.clone().drive(key, trigger));
            }
            rx
        };
        match rx.wait_for(Option::is_some).await {
            Ok(outcome) => Submitted::Done(outcome.clone().unwrap_or(Ok(Vec::new()))),
            Err(_) => Submitted::Done(Err("the webhook trigger task stopped".into())),
        }
    }

    /// Runs the waiting batches of `key` one after the other until none is left.
    async fn drive<F, Fut>(self: Arc<Self>, key: String, trigger: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let mut last: Option<Instant> = None;
        loop {
            if let Some(last) = last {
                tokio::time::sleep_until(last + self.min_interval).await;
            }
            let batch = {
                let Ok(mut slots) = self.slots.lock() else {
                    return;
                };
                match slots.get_mut(&key).and_then(|s| s.waiting.take()) {
                    Some(tx) => tx,
                    None => {
                        slots.remove(&key);
                        return;
                    }
                }
            };
            let outcome = trigger().await;
            last = Some(Instant::now());
            let _ = batch.send(Some(outcome));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_flood_of_one_key_runs_few_triggers_and_loses_none() {
        let c = Coalescer::new(4, Duration::from_millis(50));
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        let started = std::time::Instant::now();
        for _ in 0..500 {
            let (c, runs) = (c.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                let trigger = move || {
                    let runs = runs.clone();
                    async move {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        runs.fetch_add(1, Ordering::SeqCst);
                        Ok(vec!["ns/gs".to_string()])
                    }
                };
                c.submit("repo".into(), trigger).await
            }));
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        let submitting = started.elapsed();
        let mut done = 0;
        let mut coalesced = 0;
        for t in tasks {
            match t.await.expect("task") {
                Submitted::Done(Ok(names)) => {
                    assert_eq!(names, vec!["ns/gs".to_string()]);
                    done += 1;
                }
                Submitted::Coalesced => coalesced += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        let runs = runs.load(Ordering::SeqCst);
        assert_eq!(
            done, runs,
            "each run answers exactly the request that queued it"
        );
        assert_eq!(done + coalesced, 500);
        // At most one run per 70 ms (50 ms apart + 20 ms each), +2 for the first and the last.
        let bound = usize::try_from(submitting.as_millis() / 70).unwrap_or(usize::MAX) + 2;
        assert!(
            runs <= bound,
            "{runs} triggers ran for one key in {submitting:?}"
        );
        assert!(runs < 100, "{runs} triggers for 500 requests");
        // The driver forgets the key once an interval passed with nothing waiting.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(c.in_flight(), 0, "idle keys are forgotten");
    }

    #[tokio::test]
    async fn too_many_keys_are_refused() {
        let c = Coalescer::new(2, Duration::ZERO);
        let slow = || async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(Vec::new())
        };
        let a = tokio::spawn({
            let c = c.clone();
            async move { c.submit("a".into(), slow).await }
        });
        let b = tokio::spawn({
            let c = c.clone();
            async move { c.submit("b".into(), slow).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(c.submit("c".into(), slow).await, Submitted::Busy);
        assert_eq!(a.await.expect("a"), Submitted::Done(Ok(Vec::new())));
        assert_eq!(b.await.expect("b"), Submitted::Done(Ok(Vec::new())));
    }
}
